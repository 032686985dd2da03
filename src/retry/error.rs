//! [`RetryError`]: a request that ended without a response, with its attempts.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use super::replay::BoxError;
use super::Attempts;
use crate::classify::ErrorKind;
use crate::ids::RequestIds;
use crate::mask::{self, Secrets};

/// A logical request that ended without a response: the inner service failed (connect refused,
/// connection reset, body cut off), an attempt timed out, or the total deadline passed.
///
/// Failures that came with a response are not errors of the retry layer: the response is
/// returned, with its [`Classification`](crate::Classification) and [`Attempts`].
pub struct RetryError {
    cause: RetryErrorCause,
    attempts: Attempts,
    request_ids: RequestIds,
}

/// Shows the cause's `Debug` with secret-named values masked (`api_key=…`, `Bearer …`): an
/// inner error's own text is not this crate's to trust.
impl fmt::Debug for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = mask::mask_str(&format!("{:?}", self.cause), &Secrets::default());
        f.debug_struct("RetryError")
            .field("cause", &Verbatim(&cause))
            .field("attempts", &self.attempts)
            .field("request_ids", &self.request_ids)
            .finish()
    }
}

/// Text `Debug` shows as it is: an already rendered, masked `Debug`.
struct Verbatim<'a>(&'a str);

impl fmt::Debug for Verbatim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What ended the last attempt of a [`RetryError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum RetryErrorCause {
    /// The inner service (the HTTP client, or a layer between it and the retry layer) failed;
    /// kept as it is, never flattened to a string: downcast it to the client's own error type.
    Service(BoxError),
    /// The last attempt ran past the per-attempt timeout.
    AttemptTimeout(Duration),
    /// The total deadline passed during an attempt.
    Deadline(Duration),
    /// Nothing (more) was sent: the request's turn under the limits its provider announced,
    /// or its scope's cooldown, would come after the deadline or later than the longest server
    /// wait honoured. The wait is also in [`Attempts::wait_hint`]; see
    /// [`pacing`](crate::pacing).
    PacingWait(Duration),
}

impl RetryError {
    pub(crate) fn new(cause: RetryErrorCause, attempts: Attempts, request_ids: RequestIds) -> Self {
        RetryError {
            cause,
            attempts,
            request_ids,
        }
    }

    /// What ended the last attempt.
    pub fn cause(&self) -> &RetryErrorCause {
        &self.cause
    }

    /// Every attempt, the elapsed time and why retrying stopped.
    pub fn attempts(&self) -> &Attempts {
        &self.attempts
    }

    /// The kind of failure: [`ErrorKind::Transport`] for a connection that failed (see
    /// [`transport_failure`]), [`ErrorKind::Timeout`] for a timeout, and
    /// [`ErrorKind::Unknown`] for any other error of the inner service.
    pub fn kind(&self) -> ErrorKind {
        match &self.cause {
            RetryErrorCause::Service(error) => match transport_failure(error.as_ref()) {
                Some(TransportFailure::Timeout) => ErrorKind::Timeout,
                Some(_) => ErrorKind::Transport,
                None => ErrorKind::Unknown,
            },
            RetryErrorCause::AttemptTimeout(_) | RetryErrorCause::Deadline(_) => ErrorKind::Timeout,
            RetryErrorCause::PacingWait(_) => ErrorKind::RateLimited,
        }
    }

    /// The inner service's error, if that is what ended the request; `downcast_ref` it to the
    /// client's own type.
    pub fn service_error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match &self.cause {
            RetryErrorCause::Service(error) => Some(error.as_ref()),
            _ => None,
        }
    }

    /// The client's ids of the request: its client request id and idempotency key.
    pub fn request_ids(&self) -> &RequestIds {
        &self.request_ids
    }

    /// Splits the error into its cause and its attempts.
    pub fn into_parts(self) -> (RetryErrorCause, Attempts) {
        (self.cause, self.attempts)
    }
}

/// Says what happened at this layer only: the inner service's error is the
/// [`source`](Error::source), so that a chain printer such as `anyhow`'s `{:#}` shows it once.
impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            RetryErrorCause::Service(_) => f.write_str("request failed without a response")?,
            RetryErrorCause::AttemptTimeout(timeout) => {
                write!(f, "attempt timed out after {timeout:?}")?
            }
            RetryErrorCause::Deadline(deadline) => write!(f, "deadline of {deadline:?} passed")?,
            RetryErrorCause::PacingWait(wait) => write!(
                f,
                "not sent: the provider's announced limits allow the next attempt in {wait:?}, past the deadline or the longest wait"
            )?,
        }
        write!(f, " ({})", self.attempts)
    }
}

impl Error for RetryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.cause {
            RetryErrorCause::Service(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// The way a connection failed, when an error of the inner service says it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportFailure {
    /// The connection was never made (refused, unreachable): the server cannot have seen the
    /// request, so any method may be sent again.
    Connect,
    /// The connection broke during the exchange (reset, closed early, message incomplete).
    Broken,
    /// The client or a timeout layer gave up waiting.
    Timeout,
}

/// How `error` failed the connection, reading it and its source chain: `std::io::Error` kinds,
/// hyper's closed or incomplete messages, tower's `Elapsed`, and (with the `reqwest` feature)
/// reqwest's connect and timeout errors. `None` for every other error: an inner middleware's own
/// failure (a reqwest-middleware `Error::Middleware`, whatever its sources), a redirect loop, a
/// body that failed to encode. The retry layer retries only
/// transport failures; any other error ends the call at once, kept as its source.
pub fn transport_failure(error: &(dyn Error + 'static)) -> Option<TransportFailure> {
    let mut found = None;
    let mut current = Some(error);
    while let Some(error) = current {
        // Another middleware's own error says nothing certain about the connection (it may
        // have failed after the request left): never a transport failure, as reqwest-retry
        // treats it, whatever its sources say.
        #[cfg(feature = "reqwest")]
        if let Some(reqwest_middleware::Error::Middleware(_)) =
            error.downcast_ref::<reqwest_middleware::Error>()
        {
            return found;
        }
        let here = failure_of(error);
        // The most telling failure wins: a connect error anywhere in the chain means the request
        // never left.
        found = match (found, here) {
            (_, Some(TransportFailure::Connect)) => return Some(TransportFailure::Connect),
            (None, here) => here,
            (found, _) => found,
        };
        current = error.source();
    }
    found
}

/// The failure this one error (not its sources) stands for.
fn failure_of(error: &(dyn Error + 'static)) -> Option<TransportFailure> {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        return match io.kind() {
            ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable => {
                Some(TransportFailure::Connect)
            }
            ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof => {
                Some(TransportFailure::Broken)
            }
            TimedOut => Some(TransportFailure::Timeout),
            _ => None,
        };
    }
    if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
        if hyper.is_timeout() {
            return Some(TransportFailure::Timeout);
        }
        if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
            return Some(TransportFailure::Broken);
        }
        return None;
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Some(TransportFailure::Timeout);
    }
    // reqwest-middleware's error is transparent: its source chain skips the reqwest error.
    #[cfg(feature = "reqwest")]
    if let Some(reqwest_middleware::Error::Reqwest(inner)) =
        error.downcast_ref::<reqwest_middleware::Error>()
    {
        return failure_of(inner);
    }
    #[cfg(feature = "reqwest")]
    if let Some(reqwest) = error.downcast_ref::<reqwest::Error>() {
        if reqwest.is_connect() {
            return Some(TransportFailure::Connect);
        }
        if reqwest.is_timeout() {
            return Some(TransportFailure::Timeout);
        }
    }
    None
}

/// Whether `error` (or any error in its source chain) says the connection was never made, so the
/// request cannot have reached the server.
pub fn is_connect_error(error: &(dyn Error + 'static)) -> bool {
    transport_failure(error) == Some(TransportFailure::Connect)
}
