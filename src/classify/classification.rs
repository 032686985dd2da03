//! The result of reading one response: [`Classification`] and the provider's own code.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use http::{HeaderName, StatusCode};

use super::{ErrorKind, RetryVerdict};
use crate::ids::TraceId;
use crate::mask::{self, Secrets};

/// A provider's own error code, as it was given: text (`insufficient_quota`) or a number
/// (`130005`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProviderCode {
    /// A text code, such as `rate_limit_error` or `RESOURCE_EXHAUSTED`.
    Text(String),
    /// A numeric code, such as a gateway's business code `130005` under HTTP 200.
    Number(i64),
}

impl fmt::Display for ProviderCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderCode::Text(text) => f.write_str(text),
            ProviderCode::Number(n) => write!(f, "{n}"),
        }
    }
}

impl From<&str> for ProviderCode {
    fn from(text: &str) -> Self {
        ProviderCode::Text(text.to_owned())
    }
}

impl From<String> for ProviderCode {
    fn from(text: String) -> Self {
        ProviderCode::Text(text)
    }
}

impl From<i64> for ProviderCode {
    fn from(n: i64) -> Self {
        ProviderCode::Number(n)
    }
}

/// Which signal of an answer decided its [`ErrorKind`]: the most specific one found.
///
/// The order, most specific first: a provider's specific code in the body, then in a code
/// header; a phrase of the message; the HTTP status; a generic code (`invalid_request_error`,
/// `server_error`, `api_error`, …); a number in a code field read as a status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecidedBy {
    /// A code in this body field (`error.code`, `error.type`, `error.status`, `__type`, …), or
    /// `results.flagged` for a moderation verdict.
    BodyField(&'static str),
    /// A code in this response header (`x-amzn-errortype`).
    Header(HeaderName),
    /// A phrase of the message (`credit balance is too low`, `余额不足`).
    Message,
    /// The HTTP status.
    Status,
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::BodyField(field) => f.write_str(field),
            DecidedBy::Header(name) => write!(f, "header {name}"),
            DecidedBy::Message => f.write_str("message"),
            DecidedBy::Status => f.write_str("status"),
        }
    }
}

/// How much of the body classification read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyRead {
    /// Not read: a streamed or large success body, or a status that needs no body.
    NotRead,
    /// Read to its end, within the limit.
    Complete,
    /// Only a prefix was read: the body is longer than the limit, or it failed midway.
    Prefix,
}

/// What a response means: its kind of failure (if any), the provider's code and message, the
/// trace id for a support ticket, and how long the server asked to wait.
///
/// Put into the response's extensions by [`ClassifyLayer`](super::ClassifyLayer); built directly
/// by [`Classifier::classify`](super::Classifier::classify).
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) status: StatusCode,
    pub(crate) code: Option<ProviderCode>,
    pub(crate) message: Option<Message>,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) wait_hint: Option<Duration>,
    pub(crate) body_read: BodyRead,
    pub(crate) decided_by: Option<DecidedBy>,
}

impl Classification {
    /// Which signal decided the kind, or `None` for a success.
    pub fn decided_by(&self) -> Option<&DecidedBy> {
        self.decided_by.as_ref()
    }

    /// The kind of failure, or `None` when the response is a success.
    ///
    /// A 2xx response can still be a failure: a non-zero business `code`, a
    /// `success: false`, or an `error` object in a small JSON body.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.kind
    }

    /// Whether the response is a failure.
    pub fn is_failure(&self) -> bool {
        self.kind.is_some()
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The provider's own code, as given (the one that decided the kind, else the most specific
    /// one found).
    pub fn code(&self) -> Option<&ProviderCode> {
        self.code.as_ref()
    }

    /// The provider's human-readable message, with secret-named values (`api_key=…`,
    /// `"token": "…"`) masked.
    ///
    /// Masked when first read, so a classification nobody reads the message of costs no
    /// masking.
    pub fn message(&self) -> Option<&str> {
        self.message.as_ref().map(Message::masked)
    }

    /// The server's trace id for this response, from a header or a body field.
    pub fn trace_id(&self) -> Option<&TraceId> {
        self.trace_id.as_ref()
    }

    /// The wait the body alone asked for: Google's `RetryInfo.retryDelay`, a `retry_after`
    /// field, Hugging Face's `estimated_time`, or a wait stated in the message. The wait of the
    /// whole answer, headers (`Retry-After`) first, is a [`WaitHint`](crate::retry::WaitHint):
    /// see [`WaitHint::from_response`](crate::retry::WaitHint::from_response), and
    /// [`Attempts::wait_hint`](crate::Attempts::wait_hint) for the one the retry layer acted on.
    pub fn body_wait(&self) -> Option<Duration> {
        self.wait_hint
    }

    /// How much of the body was read to classify it.
    pub fn body_read(&self) -> BodyRead {
        self.body_read
    }

    /// What the failure allows next, or `None` on success.
    ///
    /// The kind's [default verdict](ErrorKind::default_verdict), except that an `Unknown` failure
    /// with a 5xx status backs off.
    pub fn verdict(&self) -> Option<RetryVerdict> {
        let kind = self.kind?;
        Some(match kind {
            ErrorKind::Unknown if self.status.is_server_error() => RetryVerdict::Backoff,
            kind => kind.default_verdict(),
        })
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status.as_u16())?;
        match self.kind {
            Some(kind) => write!(f, " {kind}")?,
            None => f.write_str(" ok")?,
        }
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = self.message() {
            write!(f, ": {message}")?;
        }
        if let Some(trace_id) = &self.trace_id {
            write!(f, " [trace id {trace_id}]")?;
        }
        Ok(())
    }
}

/// A provider's message: kept as sent, shown only masked.
///
/// Masking is done on the first read, not when the response is classified: most failures are
/// retried or returned without anyone reading their message.
#[derive(Clone)]
pub(crate) struct Message {
    sent: Box<str>,
    masked: OnceLock<String>,
}

impl Message {
    pub(crate) fn new(sent: &str) -> Self {
        Message {
            sent: sent.into(),
            masked: OnceLock::new(),
        }
    }

    /// The message with secret-named values masked.
    pub(crate) fn masked(&self) -> &str {
        self.masked
            .get_or_init(|| mask::mask_str(&self.sent, &Secrets::default()))
    }

    /// Masks, besides what is masked already, the given secrets (a request's key, which a server
    /// rejecting it may quote back).
    pub(crate) fn mask_secrets(&mut self, secrets: &Secrets) {
        let masked = mask::mask_str(self.masked(), secrets);
        self.masked = OnceLock::from(masked);
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.masked() == other.masked()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.masked(), f)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use crate::classify::{BodyRead, Classifier};

    #[test]
    fn a_message_is_masked_however_it_is_read() {
        let body =
            br#"{"error":{"message":"bad request: api_key=sk-live-123456789 was rejected"}}"#;
        let classification = Classifier::new().classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body,
            BodyRead::Complete,
        );
        let message = classification.message().unwrap();
        assert_eq!(message, "bad request: api_key=[masked] was rejected");
        for shown in [format!("{classification:?}"), classification.to_string()] {
            assert!(!shown.contains("sk-live"), "{shown}");
            assert!(shown.contains("api_key=[masked]"), "{shown}");
        }
        assert_eq!(classification.clone(), classification);
    }
}
