//! Retry what is safe to retry, as long as the server asks, within a budget and a deadline.
//!
//! [`RetryLayer`] retries attempts whose [`Classification`](crate::Classification) (from a
//! [`ClassifyLayer`](crate::ClassifyLayer) inside it; else the status alone) allows a retry:
//!
//! - **Backoff**: exponential, with full (default), equal, decorrelated or no [`Jitter`], and an
//!   injectable [`RandomSource`].
//! - **The server's wait**: a [`WaitHint`] from `retry-after-ms`, `Retry-After` (seconds or
//!   HTTP-date), the body (Google's `RetryInfo`, Hugging Face's `estimated_time`), the IETF
//!   `RateLimit` fields, OpenAI's `x-ratelimit-reset-*`, Anthropic's
//!   `anthropic-ratelimit-*-reset` and `X-RateLimit-Reset` sets the next delay. A hint longer
//!   than the cap or than what is left of the deadline ends retrying at once: the failure is
//!   returned immediately with the hint in [`Attempts::wait_hint`], so the caller can
//!   reschedule instead of sleeping. `x-should-retry: true|false` (and fal's `x-fal-retryable`)
//!   overrides the verdict.
//! - **Safety first**: GET, HEAD, OPTIONS, PUT, DELETE and TRACE may be retried; POST and PATCH
//!   only with an idempotency key the server honours ([`KeySupport`]): the one the request's
//!   [`RequestIds`](crate::RequestIds) record holds, or one the caller set in the standard
//!   `Idempotency-Key` header; or when the
//!   caller opted in (per request with the [`RetryNonIdempotent`] extension, or for the layer).
//!   Any of them is sent again when the answer proves the server did no work: the connection
//!   was never made, or a 429, a 529, or a 503 with a wait. A body that cannot be replayed (see
//!   [`RequestBody`]) is sent once and its response returned as is.
//! - **Only connection failures**: an error of the inner service is retried when it says the
//!   connection failed ([`transport_failure`]: refused, reset, closed early, timed out); any
//!   other error (an inner middleware's own, a redirect loop) ends the call at once, kept as the
//!   [`RetryError`]'s source.
//! - **Pacing**: before every attempt, the first included, a [`Pacer`] takes the request's
//!   place in line under the limits its provider announced, so that it waits instead of
//!   collecting a 429; a turn past the deadline or the cap fails at once with
//!   [`RetryErrorCause::PacingWait`]. See [`pacing`](crate::pacing); [`RetryLayer::without_pacing`]
//!   turns it off.
//! - **Bounded amplification**: a [`RetryBudget`] shared by every clone of the service, earned by
//!   successes.
//! - **Time**: an optional per-attempt timeout and total deadline.
//! - **Per request**: a [`RequestPolicy`] in a request's extensions overrides the attempts,
//!   deadline, per-attempt timeout, non-idempotent choice ([`NonIdempotent`]), idempotency key
//!   and use of the budget for that call; a [`retry_decision`](RetryLayer::retry_decision)
//!   hook may change a verdict. Neither passes the safety rules.
//!
//! The final response carries [`Attempts`] in its extensions: every attempt's status, kind,
//! trace id and the delay before it, the elapsed time, and why retrying stopped
//! ([`StopReason`]). A request that ends without a response fails with a [`RetryError`] that
//! carries the same record. Each logical request and each attempt has a `tracing` span, each
//! retry and each give-up an event; see [`telemetry`](crate::telemetry).
//!
//! # Defaults
//!
//! | setting | default | why |
//! | --- | --- | --- |
//! | attempts in all | 3 | what the OpenAI and Anthropic SDKs do (2 retries) |
//! | backoff | 0.5 s base, 8 s max, full jitter | the OpenAI and Anthropic SDKs' range; full jitter spreads a herd best |
//! | longest server wait honoured | 60 s | past a minute a caller should reschedule, not hold a connection |
//! | per-attempt timeout | none | generation can take minutes; set one per route |
//! | total deadline | none | set one when the caller has one |
//! | pacing | a [`Pacer`] of the layer's own | inert until the provider announces limits |
//! | budget | 20% of successes + 10/s over 10 s | Finagle's ratio, earned on successes as gRPC does, so a storm is retried only at the floor |
//! | idempotency key without a record | read from `Idempotency-Key` | the IETF draft's name, used by Stripe, OpenAI and generation gateways; a custom header is configured on [`IdempotencyKeyLayer`](crate::IdempotencyKeyLayer) |
//!
//! # Differences from `tower::retry`
//!
//! `tower::retry::Retry` runs a `Policy` you write. This layer is that policy, written for paid
//! HTTP APIs: it reads classifications and wait hints, refuses unsafe retries, and reports
//! every attempt.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::retry::{Attempts, RetryLayer, StopReason};
//! use http_resilience::ClassifyLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let upstream = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         // Busy once, with the wait the server wants; then fine.
//!         let response = if n == 0 {
//!             Response::builder().status(503).header("retry-after", "2").body(Full::default())
//!         } else {
//!             Response::builder().status(200).body(Full::new(Bytes::from("done")))
//!         };
//!         Ok::<_, std::io::Error>(response.map_err(std::io::Error::other)?)
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new().deadline(Duration::from_secs(30)))
//!     .layer(ClassifyLayer::new())
//!     .service(upstream);
//!
//! let response = client.oneshot(Request::new(Full::default())).await?;
//! let attempts = response.extensions().get::<Attempts>().unwrap();
//! assert_eq!(attempts.count(), 2);
//! assert_eq!(attempts.records()[1].delay(), Duration::from_secs(2));
//! assert_eq!(attempts.stopped(), StopReason::Succeeded);
//! # Ok(())
//! # }
//! ```

mod attempts;
mod backoff;
mod budget;
mod error;
mod policy;
mod replay;
mod service;
mod wait_hint;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::pacing::Pacer;

pub use attempts::{AttemptRecord, Attempts, StopReason};
pub use backoff::{Backoff, Jitter, RandomSource, ThreadRandom};
pub use budget::RetryBudget;
pub use error::{
    is_connect_error, transport_failure, RetryError, RetryErrorCause, TransportFailure,
};
pub use policy::{NonIdempotent, RequestPolicy, RetryContext, RetryDecision};
pub(crate) use replay::{peek_body, try_clone_body};
pub use replay::{BoxError, ReplayBody, RequestBody};
pub use service::{ResponseFuture, Retry};
pub use wait_hint::{WaitHint, WaitHintSource};

/// Whether the server honours idempotency keys, which decides when a POST, PATCH or other
/// non-idempotent request may be sent again.
///
/// A key protects only when the server honours it. OpenAI, Stripe-style APIs and gateways that
/// document `Idempotency-Key` deduplicate a retried request; many generation APIs ignore the
/// header, and there a POST answered 500 after the job was created would create a second paid
/// job if sent again.
///
/// Under both settings a request with no key (nor an opt-in) is sent again only when the answer
/// proves the server did no work: the connection was never made, or a 429 (rate or
/// concurrency limit), a 529 (overloaded), or a 503 that says how long to wait. A 503 without a
/// wait is no proof: proxies such as Envoy answer it after forwarding the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeySupport {
    /// The server deduplicates by key: a keyed request is retried under the usual rules, as
    /// providers that accept `Idempotency-Key` advise. The default.
    #[default]
    Honoured,
    /// The server ignores keys (or you do not know): a keyed request is sent again only on the
    /// same proof as a request without a key.
    Ignored,
}

/// The default number of attempts in all (the first and two retries).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The default longest server wait honoured.
pub const DEFAULT_MAX_SERVER_WAIT: Duration = Duration::from_secs(60);

/// A request extension that allows retrying this request even if its method is not idempotent
/// and it carries no idempotency key. Use it when the endpoint is known to be safe to repeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryNonIdempotent;

/// A request extension that makes any answer with a 2xx status final for the retry layer,
/// whatever its body says.
///
/// A status answer of an asynchronous job (`200 {"status": "failed", "error": {"code":
/// "timeout"}}`) reports the *task's* failure: asking again returns the same answer, so it is
/// not retried. The answer keeps its [`Classification`](crate::Classification) (the failure the
/// body describes) for the caller to read. [`JobPoller`](crate::jobs::JobPoller) puts it on
/// every poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SuccessStatusFinal;

/// Retries failed attempts: see the [module docs](self).
#[derive(Clone)]
pub struct RetryLayer {
    config: Arc<RetryConfig>,
}

/// How much of a request's URI a stack reads: what an adapter that builds the request (the
/// reqwest middleware) must put in it.
#[cfg(feature = "reqwest")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriUse {
    /// None of it.
    Nothing,
    /// The scheme and authority.
    Origin,
    /// All of it.
    Whole,
}

#[derive(Clone)]
pub(crate) struct RetryConfig {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_server_wait: Duration,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) budget: RetryBudget,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) key_support: KeySupport,
    pub(crate) pacer: Option<Pacer>,
    pub(crate) decide: Option<policy::DecideRetry>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            max_server_wait: DEFAULT_MAX_SERVER_WAIT,
            attempt_timeout: None,
            deadline: None,
            budget: RetryBudget::default(),
            retry_non_idempotent: false,
            key_support: KeySupport::Honoured,
            pacer: Some(Pacer::new()),
            decide: None,
        }
    }
}

impl fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryConfig")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("max_server_wait", &self.max_server_wait)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("deadline", &self.deadline)
            .field("budget", &self.budget)
            .field("retry_non_idempotent", &self.retry_non_idempotent)
            .field("key_support", &self.key_support)
            .field("pacer", &self.pacer)
            .field("retry_decision", &self.decide.as_ref().map(|_| "hook"))
            .finish()
    }
}

impl RetryLayer {
    /// How much of the request's URI the layer reads on every call: a retry-decision hook, and
    /// a pacer's `scope_by` function, see all of it; the pacer's default scope is the origin.
    #[cfg(feature = "reqwest")]
    pub(crate) fn uri_use(&self) -> UriUse {
        match &self.config.pacer {
            _ if self.config.decide.is_some() => UriUse::Whole,
            Some(pacer) if pacer.scopes_by_origin() => UriUse::Origin,
            Some(_) => UriUse::Whole,
            None => UriUse::Nothing,
        }
    }

    /// A layer with the documented defaults.
    pub fn new() -> Self {
        RetryLayer {
            config: Arc::new(RetryConfig::default()),
        }
    }

    fn config_mut(&mut self) -> &mut RetryConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Makes at most `attempts` attempts in all (at least 1; 1 disables retrying).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config_mut().max_attempts = attempts.max(1);
        self
    }

    /// Backs off with this schedule when the server gives no wait hint.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config_mut().backoff = backoff;
        self
    }

    /// Honours server waits up to `max`; a longer one ends retrying at once. A turn in the
    /// [`Pacer`]'s line later than `max` fails the same way, before anything is sent.
    pub fn max_server_wait(mut self, max: Duration) -> Self {
        self.config_mut().max_server_wait = max;
        self
    }

    /// Gives each attempt at most `timeout`; an attempt that runs longer counts as a
    /// [`Timeout`](crate::ErrorKind::Timeout) failure (retried if safe).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().attempt_timeout = Some(timeout);
        self
    }

    /// Ends the logical request `deadline` after it started (at `call`): attempts, waits between
    /// them and waits for the inner service's readiness before a retry included. Readiness
    /// before the first attempt is the caller's `poll_ready`, before the deadline starts. A
    /// deadline too far away to represent (such as `Duration::MAX`) is no deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config_mut().deadline = Some(deadline);
        self
    }

    /// Draws retries from this budget: clone one budget into several layers to share it, and
    /// keep a clone to watch its [`remaining`](RetryBudget::remaining).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.config_mut().budget = budget;
        self
    }

    /// Retries POST, PATCH and other non-idempotent requests without an idempotency key too.
    /// Only for endpoints known to be safe to repeat.
    pub fn retry_non_idempotent(mut self, allow: bool) -> Self {
        self.config_mut().retry_non_idempotent = allow;
        self
    }

    /// Whether the server honours idempotency keys (default [`KeySupport::Honoured`]); see
    /// [`KeySupport`] for which servers need which.
    pub fn key_support(mut self, support: KeySupport) -> Self {
        self.config_mut().key_support = support;
        self
    }

    /// Paces attempts with `pacer` (default: a pacer of this layer's own): clone one pacer into
    /// several layers to share what it learns, and keep a clone to watch its
    /// [`scopes`](Pacer::scopes). See [`pacing`](crate::pacing).
    pub fn pacer(mut self, pacer: Pacer) -> Self {
        self.config_mut().pacer = Some(pacer);
        self
    }

    /// Sends every attempt as soon as its backoff or server wait allows, ignoring the limits
    /// the provider announces; retries then all draw on the budget.
    pub fn without_pacing(mut self) -> Self {
        self.config_mut().pacer = None;
        self
    }

    /// Consults `decide` for every failed attempt that could be retried: it sees the request,
    /// the attempt's number and its [`Classification`](crate::Classification), and may refuse
    /// a retry the verdict allows ([`RetryDecision::Stop`]) or allow one it does not
    /// ([`RetryDecision::Retry`]). It never goes past the safety rules: a body that cannot be
    /// replayed, a non-idempotent request without a key (and no proof the server did no work),
    /// the attempts, the deadline and the budget.
    ///
    /// ```
    /// use http::StatusCode;
    /// use http_resilience::retry::{RetryDecision, RetryLayer};
    ///
    /// // As a migrating user's old client did: 501 retried, 409 not.
    /// let layer = RetryLayer::new().retry_decision(|attempt| match attempt.status() {
    ///     Some(StatusCode::NOT_IMPLEMENTED) => RetryDecision::Retry,
    ///     Some(StatusCode::CONFLICT) => RetryDecision::Stop,
    ///     _ => RetryDecision::Default,
    /// });
    /// ```
    pub fn retry_decision(
        mut self,
        decide: impl Fn(&RetryContext<'_>) -> RetryDecision + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().decide = Some(std::sync::Arc::new(decide));
        self
    }

    /// The deadline, if one is set.
    pub(crate) fn deadline_duration(&self) -> Option<Duration> {
        self.config.deadline
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, Arc::clone(&self.config))
    }
}

#[cfg(all(test, feature = "reqwest"))]
mod tests {
    use super::*;

    #[test]
    fn each_setup_says_how_much_of_the_uri_it_reads() {
        assert_eq!(RetryLayer::new().uri_use(), UriUse::Origin);
        assert_eq!(
            RetryLayer::new().without_pacing().uri_use(),
            UriUse::Nothing
        );
        let scoped = Pacer::new().scope_by(|_, _| {});
        assert_eq!(RetryLayer::new().pacer(scoped).uri_use(), UriUse::Whole);
        let hooked = RetryLayer::new().retry_decision(|_| RetryDecision::Retry);
        assert_eq!(hooked.uri_use(), UriUse::Whole);
        assert_eq!(hooked.without_pacing().uri_use(), UriUse::Whole);
    }
}
