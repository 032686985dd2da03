//! One client, different calls: [`RequestPolicy`], a request's own settings, and the stack's
//! [`RetryDecision`] hook.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Uri};

use crate::classify::{Classification, ErrorKind, RetryVerdict};

/// What a request whose method is not idempotent (POST, PATCH) may do after a failed attempt:
/// the choice of a [`RequestPolicy`].
///
/// Whatever the choice, a request whose body cannot be replayed is sent once, and nothing is
/// sent past the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NonIdempotent {
    /// Retry under the usual rules when the request carries an idempotency key, trusting the
    /// server to deduplicate it (as [`KeySupport::Honoured`](super::KeySupport::Honoured)),
    /// whatever the stack's [`KeySupport`](super::KeySupport). Without a key, only as
    /// [`RetryIfUnprocessed`](Self::RetryIfUnprocessed).
    RetryWithKey,
    /// Send again only when the answer proves the server did no work: the connection was never
    /// made, or a 429, a 529, or a 503 with a wait; key or not. For a server that ignores keys.
    RetryIfUnprocessed,
    /// Never send again: one attempt, whatever the answer. For a paid job on a server that
    /// ignores keys, where even a 429 is not trusted.
    Never,
}

/// A request extension overriding the stack's settings for this one call.
///
/// The stack's settings ([`RetryLayer`](super::RetryLayer), [`ResilienceLayer`]) are the
/// defaults; whatever the policy sets wins for the request that carries it, and nothing else.
///
/// | setting | stack's default | effect |
/// | --- | --- | --- |
/// | [`max_attempts`](Self::max_attempts) | 3 | attempts in all; 1 means no retry |
/// | [`deadline`](Self::deadline) | none | the whole call, waits included, from its start |
/// | [`attempt_timeout`](Self::attempt_timeout) | none | each attempt |
/// | [`non_idempotent`](Self::non_idempotent) | by [`KeySupport`](super::KeySupport) and [`retry_non_idempotent`](super::RetryLayer::retry_non_idempotent) | when a POST or PATCH may be sent again; see [`NonIdempotent`] |
/// | [`idempotency_key`](Self::idempotency_key) | a new UUID (POST, PATCH) | the key to send, on every attempt, whatever the method (a key already in the request's header still wins) |
/// | [`uses_budget`](Self::uses_budget) | true | whether this call's retries draw on the retry budget |
///
/// The safety rules hold under any policy: a body that cannot be replayed is sent once, a
/// non-idempotent request without a key is sent again only on proof the server did no work
/// (unless the stack or the request opted in with
/// [`RetryNonIdempotent`](super::RetryNonIdempotent)), and nothing is sent past the deadline.
///
/// With reqwest-middleware, set it with `RequestPolicyExt::request_policy` (the `reqwest`
/// feature's `http_resilience::reqwest` module).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::{HeaderValue, Request};
/// use http_body_util::Full;
/// use http_resilience::retry::{NonIdempotent, RequestPolicy};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A status poll: two seconds in all, one second an attempt.
/// let poll = Request::get("https://api.example.com/v1/tasks/t-1")
///     .extension(
///         RequestPolicy::new()
///             .deadline(Duration::from_secs(2))
///             .attempt_timeout(Duration::from_secs(1)),
///     )
///     .body(Full::<Bytes>::default())?;
///
/// // A paid job on a server that ignores keys: sent once, keyed by the caller's own job id.
/// let job_id = "job-42";
/// let create = Request::post("https://api.example.com/v1/videos")
///     .extension(
///         RequestPolicy::new()
///             .non_idempotent(NonIdempotent::Never)
///             .idempotency_key(HeaderValue::from_str(job_id)?),
///     )
///     .body(Full::new(Bytes::from_static(br#"{"prompt":"a lighthouse"}"#)))?;
/// # let _ = (poll, create);
/// # Ok(())
/// # }
/// ```
///
/// [`ResilienceLayer`]: crate::ResilienceLayer
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPolicy {
    pub(crate) max_attempts: Option<u32>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) non_idempotent: Option<NonIdempotent>,
    pub(crate) idempotency_key: Option<HeaderValue>,
    pub(crate) uses_budget: Option<bool>,
}

impl RequestPolicy {
    /// A policy that overrides nothing.
    pub fn new() -> Self {
        RequestPolicy::default()
    }

    /// Makes at most `attempts` attempts in all for this call (at least 1; 1 means no retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Ends this call `deadline` after it started, waits included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Gives each attempt of this call at most `timeout`.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// What this call may do after a failed attempt when its method is not idempotent.
    pub fn non_idempotent(mut self, choice: NonIdempotent) -> Self {
        self.non_idempotent = Some(choice);
        self
    }

    /// Sends `key` as this call's idempotency key, on every attempt (for example derived from
    /// the caller's own job id), instead of a key the stack makes. The stack's idempotency layer
    /// stamps it ([`ResilienceLayer`](crate::ResilienceLayer) has one, or
    /// [`IdempotencyKeyLayer`](crate::IdempotencyKeyLayer)); a [`RetryLayer`](super::RetryLayer)
    /// alone sends no key, and reads one only from the request's `Idempotency-Key` header.
    pub fn idempotency_key(mut self, key: HeaderValue) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Whether this call's retries draw on the retry budget (default: they do). A call that
    /// does not is still bounded by its attempts and its deadline.
    pub fn uses_budget(mut self, uses: bool) -> Self {
        self.uses_budget = Some(uses);
        self
    }
}

/// What a [`RetryLayer::retry_decision`](super::RetryLayer::retry_decision) hook decides for a
/// failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Follow the classification's verdict.
    Default,
    /// Retry, even where the verdict says never (a 501 a migrating user wants retried), the
    /// server's own `x-should-retry: false` included: with the backoff, or the server's wait.
    /// The safety rules, the attempts, the deadline and the budget still apply.
    Retry,
    /// Do not retry, even where the verdict allows it (a 409 a caller wants to see at once);
    /// the call ends with [`StopReason::Declined`](super::StopReason::Declined).
    Stop,
}

/// What a [`RetryDecision`] hook sees of a failed attempt: the request, the attempt's number and
/// its classification.
///
/// The hook is consulted only for an attempt that could be retried: the request's body can be
/// replayed, attempts are left and the deadline has not passed.
pub struct RetryContext<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) attempt: u32,
    pub(crate) status: Option<StatusCode>,
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) verdict: RetryVerdict,
    pub(crate) classification: Option<&'a Classification>,
}

impl RetryContext<'_> {
    /// The request's method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request's URI.
    pub fn uri(&self) -> &Uri {
        self.uri
    }

    /// The request's headers (credentials included: the hook runs in your process, and must
    /// not log them).
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The request's extensions: a marker of your own tells the hook what kind of call this is.
    pub fn extensions(&self) -> &Extensions {
        self.extensions
    }

    /// The number of the attempt that failed: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The failed attempt's status, or `None` when no answer came (a transport error, a
    /// timeout).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The kind of failure.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.kind
    }

    /// The verdict the classification (and the server's `x-should-retry`) gave.
    pub fn verdict(&self) -> RetryVerdict {
        self.verdict
    }

    /// The answer's classification, when an answer came and was classified.
    pub fn classification(&self) -> Option<&Classification> {
        self.classification
    }
}

impl fmt::Debug for RetryContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No headers: they hold credentials.
        f.debug_struct("RetryContext")
            .field("method", self.method)
            .field("attempt", &self.attempt)
            .field("status", &self.status)
            .field("kind", &self.kind)
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

/// The stack's retry decision hook.
pub(crate) type DecideRetry = Arc<dyn Fn(&RetryContext<'_>) -> RetryDecision + Send + Sync>;
