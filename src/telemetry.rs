//! What the stack tells operators: a span per logical request and per attempt, an event per
//! retry and per give-up, and (with the `metrics` feature) counters and histograms.
//!
//! The retry layer ([`RetryLayer`](crate::RetryLayer), and so
//! [`ResilienceLayer`](crate::ResilienceLayer) and the reqwest middleware) reports through
//! [`tracing`] and, with the `metrics` feature, the [`metrics`](https://docs.rs/metrics) facade.
//! Names follow the OpenTelemetry HTTP client conventions where one exists; the crate's own
//! facts carry the `http_resilience.` prefix. Nothing a caller sends as a secret appears: the
//! URL is masked (secret query parameters and user-info), headers are never recorded, and the
//! idempotency key shows only as present or not.
//!
//! # Spans
//!
//! | span (target) | level | fields |
//! | --- | --- | --- |
//! | `http_resilience.request` (`http_resilience::request`) | INFO | `http.request.method`, `url.full` (masked), `server.address`, `server.port`, `http_resilience.client_request_id`, `http_resilience.idempotency_key_present`; when it ends: `http.response.status_code`, `error.type`, `http_resilience.kind`, `http_resilience.verdict`, `http_resilience.trace_id`, `http_resilience.stop_reason`, `http_resilience.attempts`, `http_resilience.waited_ms` |
//! | `http_resilience.attempt` (`http_resilience::attempt`) | INFO | `otel.name` (the method), `otel.kind` (`client`), `http.request.method`, `url.full`, `server.address`, `server.port`, `http.request.resend_count` (from the first retry on); when it ends: `http.response.status_code`, `error.type`, `http_resilience.kind`, `http_resilience.verdict`, `http_resilience.trace_id` |
//!
//! The request span opens as a child of the caller's current span; each attempt span is a child
//! of the request span, and is the current span while the inner service is called and polled, so
//! spans of layers below the stack nest under the attempt that made them. `error.type` is the
//! failure's [`ErrorKind`] name (`rate_limited`, `transport`), or absent on a success.
//!
//! # Events
//!
//! | event (target) | level | when |
//! | --- | --- | --- |
//! | `retrying request` (`http_resilience::retry`) | INFO | each retry, with the resend count, the status, `error.type`, the trace id, the delay and where a server-told wait came from |
//! | `request failed` (`http_resilience::retry`) | WARN when an operator must act (the retry budget is spent, the quota is exhausted, the credentials were rejected, the server's or the pacer's wait is past the cap or the deadline); INFO otherwise | once per logical request that ends in a failure, with the method, masked URL, server address, status, `error.type`, stop reason, attempt count, time waited and in total, the server's wait, trace ids of the first and the last attempt, the provider's code and (masked) message, the client request id and whether an idempotency key was sent |
//!
//! A success logs no event of its own (each of its retries logs one). A call the caller drops
//! before it ends (an outer timeout, a `select!`) closes its span with the stop reason
//! `cancelled` and logs a DEBUG event. A client whose `poll_ready` fails returns its error
//! before any request exists: no span, no event. Messages are masked with the secrets the
//! request carried in its headers and URL, as well as by name.
//!
//! # Metrics (the `metrics` feature)
//!
//! | name | kind | unit | labels |
//! | --- | --- | --- | --- |
//! | `http.client.request.duration` | histogram | seconds | method, address, status class, `error.type` |
//! | `http_resilience.requests` | counter | requests | method, address, status class, `error.type` |
//! | `http_resilience.attempts` | counter | attempts | method, address, status class, `error.type` |
//! | `http_resilience.retries` | counter | retries | method, address, `error.type` |
//! | `http_resilience.give_ups` | counter | requests | method, address, `error.type`, `http_resilience.stop_reason` |
//! | `http_resilience.retry_budget.refusals` | counter | retries | method, address |
//! | `http_resilience.server_wait` | histogram | seconds | address, `http_resilience.wait_source` |
//! | `http_resilience.request.attempts` | histogram | attempts | method, address |
//!
//! `http.client.request.duration` and the request counters count logical requests, from the
//! call to the final answer or error, waits included. The labels are `http.request.method`
//! (the nine standard methods, any other as `_OTHER`), `server.address` (the host),
//! `http_resilience.status_class` (`2xx` to `5xx`, or `none` when no answer came),
//! `error.type` (an [`ErrorKind`] name, `none` on a success), `http_resilience.stop_reason` (a
//! [`StopReason`] name) and `http_resilience.wait_source` (a
//! [`WaitHintSource`] name): every one bounded, never a path, an
//! id or a key. A budget refusal is also a give-up with the stop reason `budget_spent`; its own
//! counter is there to alert on. The pacer's gauges are listed in [`pacing`](crate::pacing).
//!
//! Without the feature no metric code is compiled. With it, a request builds its labels (six
//! allocations) whether or not a recorder is installed; see the README's performance section.
//!
//! # Cost
//!
//! With no subscriber listening at WARN or finer and without the `metrics` feature, a request
//! pays one level check: nothing of the request is copied and no span is made. A subscriber at
//! WARN makes the request keep its method and URI for a give-up's event (about 650 instructions
//! and one allocation; the URL is masked only when an event or span shows it); one at INFO also
//! makes the request's span and one per attempt, whose fields the subscriber formats.
//!
//! # Example: spans beside tower-http's `TraceLayer`
//!
//! `TraceLayer` placed around the stack sees one request and its span holds the request span;
//! placed inside, it sees every attempt, and each of its spans sits in an attempt span.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use http_resilience::{ResilienceLayer, ServiceBuilderExt};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_http::trace::TraceLayer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from_static(b"{}"))))
//! });
//! // Around: one TraceLayer span per logical request.
//! let around = ServiceBuilder::new()
//!     .layer(TraceLayer::new_for_http())
//!     .resilience(ResilienceLayer::new())
//!     .service(upstream.clone());
//! // Inside: one TraceLayer span per attempt, under this crate's attempt span.
//! let inside = ServiceBuilder::new()
//!     .resilience(ResilienceLayer::new())
//!     .layer(TraceLayer::new_for_http())
//!     .service(upstream);
//!
//! let request = || Request::get("https://api.example.com/v1/models").body(Full::default());
//! assert_eq!(around.oneshot(request()?).await?.status(), StatusCode::OK);
//! assert_eq!(inside.oneshot(request()?).await?.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! With reqwest-middleware, `reqwest_tracing::TracingMiddleware` placed before this crate's
//! middleware in the chain opens one span per logical call; placed after it, one per attempt.

use std::time::Duration;

use http::{Method, Request, StatusCode, Uri};
use tracing::field::Empty;
use tracing::{Level, Span};

use crate::classify::{Classification, ErrorKind, RetryVerdict};
use crate::ids::{RequestIds, TraceId};
use crate::mask::Secrets;
use crate::retry::{Attempts, StopReason, WaitHint, WaitHintSource};

/// Whether telemetry reads anything of a request: a subscriber listens at WARN (for the
/// give-ups an operator must see) or finer, or metrics are compiled in. Otherwise the stack pays
/// one level check per request and nothing more.
pub(crate) fn wanted() -> bool {
    cfg!(feature = "metrics") || tracing::level_enabled!(Level::WARN)
}

/// One logical request's spans and what its events and metrics need of the request: nothing
/// (one pointer's room in the request's future) unless [`wanted`].
pub(crate) struct RequestTelemetry(Option<Box<Live>>);

/// The telemetry of a request someone listens to.
struct Live {
    span: Span,
    attempt: Span,
    facts: Facts,
    /// The request ended (not cancelled).
    ended: bool,
}

/// What telemetry keeps of the request.
struct Facts {
    method: Method,
    uri: Uri,
    /// The masked URL, made at the first need.
    url: Option<String>,
    /// The secrets of the request's headers and URL, to mask a message that quotes one back;
    /// gathered only when the retry layer keeps no copy of the request (which masks the
    /// message itself) and events are listened to.
    secrets: Option<Secrets>,
    keyed: bool,
    #[cfg(feature = "metrics")]
    labels: metrics_out::RequestLabels,
    /// When the call started, for the duration of a cancelled one.
    #[cfg(feature = "metrics")]
    started: tokio::time::Instant,
}

impl Facts {
    fn url(&mut self) -> &str {
        let uri = &self.uri;
        self.url
            .get_or_insert_with(|| crate::mask::mask_url(&uri.to_string()))
    }

    /// The method as sent, when it is not one of the standard nine (OpenTelemetry's
    /// `http.request.method_original`).
    fn method_original(&self) -> Option<&str> {
        (method_label(&self.method) == OTHER_METHOD).then(|| self.method.as_str())
    }

    fn host(&self) -> Option<&str> {
        self.uri.host()
    }

    fn port(&self) -> Option<u16> {
        self.uri.port_u16().or_else(|| match self.uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    }
}

impl RequestTelemetry {
    /// Opens the request's span (a child of the caller's current span) and keeps what later
    /// events and metrics need.
    #[inline]
    pub(crate) fn start<B>(request: &Request<B>, ids: &RequestIds) -> Self {
        if !wanted() {
            return RequestTelemetry(None);
        }
        RequestTelemetry(Some(Live::start(request, ids)))
    }

    /// A handle on the request's span, to enter while the request's future is polled (a
    /// clone, so that the future stays free to change meanwhile); `None` when nobody listens.
    #[inline]
    pub(crate) fn request_span(&self) -> Option<Span> {
        self.0
            .as_deref()
            .filter(|live| !live.span.is_disabled())
            .map(|live| live.span.clone())
    }

    /// The current attempt's span, to enter while the inner service is called and polled.
    #[inline]
    pub(crate) fn attempt_span(&self) -> Option<&Span> {
        self.0.as_deref().map(|live| &live.attempt)
    }

    /// Keeps the secrets `request` carries in its headers and URL, for a give-up event to mask
    /// a message that quotes one back: for a request the retry layer keeps no copy of, which
    /// masks the message itself otherwise.
    pub(crate) fn keep_secrets_of<B>(&mut self, request: &Request<B>) {
        if let Some(live) = self.0.as_deref_mut() {
            if tracing::level_enabled!(Level::WARN) {
                let url = request.uri().to_string();
                live.facts.secrets = Some(Secrets::of_request(&url, request.headers(), None));
            }
        }
    }

    /// Opens the span of an attempt after `resent` earlier ones.
    #[inline]
    pub(crate) fn attempt_started(&mut self, resent: u32) {
        if let Some(live) = self.0.as_deref_mut() {
            live.attempt_started(resent);
        }
    }

    /// Closes the attempt's span with what its outcome said, and counts the attempt.
    #[inline]
    pub(crate) fn attempt_ended<'a>(&mut self, outcome: impl FnOnce() -> AttemptOutcome<'a>) {
        if let Some(live) = self.0.as_deref_mut() {
            live.attempt_ended(&outcome());
        }
    }

    /// Reports a retry: the event, and the retry metric.
    pub(crate) fn retrying(
        &self,
        resend_count: u32,
        delay: Duration,
        outcome: &AttemptOutcome<'_>,
    ) {
        tracing::info!(
            target: "http_resilience::retry",
            delay_ms = delay.as_millis() as u64,
            trace_id = outcome.trace_id.map(TraceId::as_str),
            "http.request.resend_count" = resend_count,
            "http.response.status_code" = outcome.status.map(|s| s.as_u16()),
            "error.type" = outcome.kind.map(ErrorKind::as_str),
            "http_resilience.wait_source" = outcome.hint.map(|h| h.source().as_str()),
            "retrying request"
        );
        #[cfg(feature = "metrics")]
        if let Some(live) = self.0.as_deref() {
            live.facts.labels.retry(outcome);
        }
    }

    /// Closes the request: its span's final fields, the give-up event of a failure, and the
    /// request's metrics. `classification` is the final answer's, its message already masked.
    #[inline]
    pub(crate) fn finished<'a>(
        &mut self,
        attempts: &Attempts,
        outcome: impl FnOnce() -> AttemptOutcome<'a>,
        classification: Option<&Classification>,
        ids: Option<&RequestIds>,
    ) {
        if let Some(live) = self.0.as_deref_mut() {
            live.finished(attempts, &outcome(), classification, ids);
        }
    }
}

impl Live {
    fn start<B>(request: &Request<B>, ids: &RequestIds) -> Box<Self> {
        let mut facts = Facts {
            method: request.method().clone(),
            uri: request.uri().clone(),
            url: None,
            secrets: None,
            keyed: ids.has_idempotency_key(),
            #[cfg(feature = "metrics")]
            labels: metrics_out::RequestLabels::of(request.method(), request.uri()),
            #[cfg(feature = "metrics")]
            started: tokio::time::Instant::now(),
        };
        let span = tracing::info_span!(
            target: "http_resilience::request",
            "http_resilience.request",
            "http.request.method" = method_label(&facts.method),
            "http.request.method_original" = facts.method_original(),
            "url.full" = Empty,
            "server.address" = facts.host(),
            "server.port" = facts.port(),
            "http_resilience.client_request_id" = ids.client_request_id().map(|id| id.as_str()),
            "http_resilience.idempotency_key_present" = facts.keyed,
            "http.response.status_code" = Empty,
            "error.type" = Empty,
            "http_resilience.kind" = Empty,
            "http_resilience.verdict" = Empty,
            "http_resilience.trace_id" = Empty,
            "http_resilience.stop_reason" = Empty,
            "http_resilience.attempts" = Empty,
            "http_resilience.waited_ms" = Empty,
        );
        if !span.is_disabled() {
            span.record("url.full", facts.url());
        }
        Box::new(Live {
            span,
            attempt: Span::none(),
            facts,
            ended: false,
        })
    }

    fn attempt_started(&mut self, resent: u32) {
        let live = self;
        let facts = &mut live.facts;
        let span = tracing::info_span!(
            target: "http_resilience::attempt",
            parent: &live.span,
            "http_resilience.attempt",
            "otel.name" = method_label(&facts.method),
            "otel.kind" = "client",
            "http.request.method" = method_label(&facts.method),
            "http.request.method_original" = facts.method_original(),
            "url.full" = Empty,
            "server.address" = facts.host(),
            "server.port" = facts.port(),
            "http.request.resend_count" = Empty,
            "http.response.status_code" = Empty,
            "error.type" = Empty,
            "http_resilience.kind" = Empty,
            "http_resilience.verdict" = Empty,
            "http_resilience.trace_id" = Empty,
        );
        if !span.is_disabled() {
            span.record("url.full", facts.url());
            if resent > 0 {
                span.record("http.request.resend_count", resent);
            }
        }
        live.attempt = span;
    }

    fn attempt_ended(&mut self, outcome: &AttemptOutcome<'_>) {
        let span = std::mem::replace(&mut self.attempt, Span::none());
        outcome.record_on(&span);
        #[cfg(feature = "metrics")]
        self.facts.labels.attempt(outcome);
    }

    fn finished(
        &mut self,
        attempts: &Attempts,
        outcome: &AttemptOutcome<'_>,
        classification: Option<&Classification>,
        ids: Option<&RequestIds>,
    ) {
        let live = self;
        let waited = attempts
            .records()
            .iter()
            .fold(Duration::ZERO, |sum, r| sum.saturating_add(r.delay()));
        let stopped = attempts.stopped();
        let span = &live.span;
        if !span.is_disabled() {
            outcome.record_on(span);
            span.record("http_resilience.stop_reason", stopped.as_str());
            span.record("http_resilience.attempts", attempts.count() as u64);
            span.record("http_resilience.waited_ms", waited.as_millis() as u64);
        }
        if stopped != StopReason::Succeeded {
            give_up_event(
                &mut live.facts,
                attempts,
                outcome,
                classification,
                ids,
                waited,
            );
        }
        #[cfg(feature = "metrics")]
        live.facts.labels.finished(attempts, outcome);
        live.ended = true;
    }
}

impl Drop for Live {
    /// A request dropped before it ended: its span says so, and it counts as cancelled.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if !self.span.is_disabled() {
            self.span.record("http_resilience.stop_reason", "cancelled");
        }
        tracing::event!(
            target: "http_resilience::retry",
            parent: &self.span,
            Level::DEBUG,
            "http.request.method" = method_label(&self.facts.method),
            "server.address" = self.facts.host(),
            "request cancelled by the caller"
        );
        #[cfg(feature = "metrics")]
        self.facts.labels.cancelled(self.facts.started.elapsed());
    }
}

/// What one attempt's outcome said, as telemetry reports it.
pub(crate) struct AttemptOutcome<'a> {
    pub(crate) status: Option<StatusCode>,
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) verdict: Option<RetryVerdict>,
    pub(crate) trace_id: Option<&'a TraceId>,
    /// The wait the server asked for (not the pacer's).
    pub(crate) hint: Option<WaitHint>,
}

impl AttemptOutcome<'_> {
    fn record_on(&self, span: &Span) {
        if span.is_disabled() {
            return;
        }
        if let Some(status) = self.status {
            span.record("http.response.status_code", status.as_u16());
        }
        if let Some(kind) = self.kind {
            span.record("error.type", kind.as_str());
            span.record("http_resilience.kind", kind.as_str());
        }
        if let Some(verdict) = self.verdict {
            span.record("http_resilience.verdict", verdict.as_str());
        }
        if let Some(trace_id) = self.trace_id {
            span.record("http_resilience.trace_id", trace_id.as_str());
        }
    }

    /// The server-told wait, if the server told one.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn server_wait(&self) -> Option<WaitHint> {
        self.hint.filter(|h| h.source() != WaitHintSource::Pacer)
    }
}

/// How a method other than the nine standard ones is named, as OpenTelemetry asks.
const OTHER_METHOD: &str = "_OTHER";

/// The method as spans and labels name it: the standard ones by name, any other as `_OTHER`
/// (bounded, as OpenTelemetry asks).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => OTHER_METHOD,
    }
}

/// Whether a give-up needs an operator: the retry budget is spent, the quota is exhausted, the
/// credentials were rejected, or a wait was past the cap or the deadline.
fn needs_operator(stopped: StopReason, kind: Option<ErrorKind>) -> bool {
    matches!(stopped, StopReason::BudgetSpent | StopReason::WaitTooLong)
        || matches!(
            kind,
            Some(
                ErrorKind::QuotaExhausted
                    | ErrorKind::Unauthenticated
                    | ErrorKind::PermissionDenied
            )
        )
}

/// The one event of a logical request that ends in a failure: at WARN when an operator must
/// act, else at INFO.
fn give_up_event(
    facts: &mut Facts,
    attempts: &Attempts,
    outcome: &AttemptOutcome<'_>,
    classification: Option<&Classification>,
    ids: Option<&RequestIds>,
    waited: Duration,
) {
    // Made once, before the event borrows the rest (a give-up is rare).
    facts.url();
    let facts = &*facts;
    // The message, masked again with the request's own secrets: the retry layer masks it only
    // when it kept a copy of the request (for a retry).
    let message = classification
        .and_then(Classification::message)
        .map(|message| match &facts.secrets {
            Some(secrets) => crate::mask::mask_str(message, secrets),
            None => message.to_owned(),
        });
    macro_rules! give_up {
        ($level:expr) => {
            tracing::event!(
                target: "http_resilience::retry",
                $level,
                "http.request.method" = method_label(&facts.method),
                "http.request.method_original" = facts.method_original(),
                "url.full" = facts.url.as_deref(),
                "server.address" = facts.uri.host(),
                "http.response.status_code" = outcome.status.map(|s| s.as_u16()),
                "error.type" = outcome.kind.map(ErrorKind::as_str),
                "http_resilience.stop_reason" = attempts.stopped().as_str(),
                "http_resilience.attempts" = attempts.count() as u64,
                "http_resilience.waited_ms" = waited.as_millis() as u64,
                "http_resilience.elapsed_ms" = attempts.elapsed().as_millis() as u64,
                "http_resilience.wait_hint_ms" = attempts.wait_hint().map(|h| h.delay().as_millis() as u64),
                "http_resilience.wait_source" = attempts.wait_hint().map(|h| h.source().as_str()),
                "http_resilience.trace_id" = outcome.trace_id.map(TraceId::as_str),
                "http_resilience.first_trace_id" = attempts.trace_ids().next().map(TraceId::as_str),
                "http_resilience.code" = classification.and_then(|c| c.code()).map(|c| c.to_string()),
                "http_resilience.message" = message.as_deref(),
                "http_resilience.client_request_id" = ids.and_then(RequestIds::client_request_id).map(|id| id.as_str()),
                "http_resilience.idempotency_key_present" = facts.keyed,
                "request failed"
            )
        };
    }
    if needs_operator(attempts.stopped(), outcome.kind) {
        give_up!(Level::WARN);
    } else {
        give_up!(Level::INFO);
    }
}

#[cfg(feature = "metrics")]
mod metrics_out {
    //! The metrics of a logical request, through the `metrics` facade.

    use std::sync::{Arc, Once};

    use http::{Method, Uri};
    use metrics::{Label, SharedString, Unit};

    use super::{method_label, AttemptOutcome};
    use crate::retry::{Attempts, StopReason};

    /// The labels every series of a request shares: its method and server address.
    pub(super) struct RequestLabels {
        method: &'static str,
        address: SharedString,
    }

    impl RequestLabels {
        pub(super) fn of(method: &Method, uri: &Uri) -> Self {
            describe();
            RequestLabels {
                method: method_label(method),
                address: uri.host().map_or(SharedString::const_str(""), |host| {
                    SharedString::from(Arc::<str>::from(host))
                }),
            }
        }

        /// The shared labels and `more`, leaving out those without a value (`error.type` on a
        /// success, as OpenTelemetry asks).
        fn with(&self, more: &[(&'static str, Option<&'static str>)]) -> Vec<Label> {
            let mut labels = Vec::with_capacity(2 + more.len());
            labels.push(Label::from_static_parts("http.request.method", self.method));
            labels.push(Label::new("server.address", self.address.clone()));
            labels.extend(
                more.iter()
                    .filter_map(|&(key, value)| Some(Label::from_static_parts(key, value?))),
            );
            labels
        }

        /// A request the caller dropped before it ended.
        pub(super) fn cancelled(&self, elapsed: std::time::Duration) {
            let labels = self.with(&[
                ("http_resilience.status_class", Some("none")),
                ("error.type", Some("cancelled")),
            ]);
            metrics::histogram!("http.client.request.duration", labels.clone())
                .record(elapsed.as_secs_f64());
            metrics::counter!("http_resilience.requests", labels).increment(1);
        }

        pub(super) fn attempt(&self, outcome: &AttemptOutcome<'_>) {
            metrics::counter!(
                "http_resilience.attempts",
                self.with(&[
                    ("http_resilience.status_class", Some(status_class(outcome))),
                    ("error.type", error_type(outcome)),
                ])
            )
            .increment(1);
            if let Some(hint) = outcome.server_wait() {
                let labels = vec![
                    Label::new("server.address", self.address.clone()),
                    Label::from_static_parts("http_resilience.wait_source", hint.source().as_str()),
                ];
                metrics::histogram!("http_resilience.server_wait", labels)
                    .record(hint.delay().as_secs_f64());
            }
        }

        pub(super) fn retry(&self, outcome: &AttemptOutcome<'_>) {
            metrics::counter!(
                "http_resilience.retries",
                self.with(&[("error.type", error_type(outcome))])
            )
            .increment(1);
        }

        pub(super) fn finished(&self, attempts: &Attempts, outcome: &AttemptOutcome<'_>) {
            let final_labels = self.with(&[
                ("http_resilience.status_class", Some(status_class(outcome))),
                ("error.type", error_type(outcome)),
            ]);
            metrics::histogram!("http.client.request.duration", final_labels.clone())
                .record(attempts.elapsed().as_secs_f64());
            metrics::counter!("http_resilience.requests", final_labels).increment(1);
            metrics::histogram!("http_resilience.request.attempts", self.with(&[]))
                .record(attempts.count() as f64);
            let stopped = attempts.stopped();
            if stopped != StopReason::Succeeded {
                metrics::counter!(
                    "http_resilience.give_ups",
                    self.with(&[
                        ("error.type", error_type(outcome)),
                        ("http_resilience.stop_reason", Some(stopped.as_str())),
                    ])
                )
                .increment(1);
            }
            if stopped == StopReason::BudgetSpent {
                metrics::counter!("http_resilience.retry_budget.refusals", self.with(&[]))
                    .increment(1);
            }
        }
    }

    fn status_class(outcome: &AttemptOutcome<'_>) -> &'static str {
        match outcome.status.map(|s| s.as_u16() / 100) {
            Some(1) => "1xx",
            Some(2) => "2xx",
            Some(3) => "3xx",
            Some(4) => "4xx",
            Some(5) => "5xx",
            _ => "none",
        }
    }

    fn error_type(outcome: &AttemptOutcome<'_>) -> Option<&'static str> {
        outcome.kind.map(|kind| kind.as_str())
    }

    /// Describes every series once per process, for exporters that print units and help.
    fn describe() {
        static DESCRIBED: Once = Once::new();
        DESCRIBED.call_once(|| {
            metrics::describe_histogram!(
                "http.client.request.duration",
                Unit::Seconds,
                "Duration of logical HTTP client requests, retries and waits included."
            );
            metrics::describe_counter!(
                "http_resilience.requests",
                Unit::Count,
                "Logical requests ended, by status class and error type."
            );
            metrics::describe_counter!(
                "http_resilience.attempts",
                Unit::Count,
                "Attempts sent (first sends and retries), by status class and error type."
            );
            metrics::describe_counter!(
                "http_resilience.retries",
                Unit::Count,
                "Retries decided, by the error type of the attempt retried."
            );
            metrics::describe_counter!(
                "http_resilience.give_ups",
                Unit::Count,
                "Logical requests that ended in a failure, by stop reason and error type."
            );
            metrics::describe_counter!(
                "http_resilience.retry_budget.refusals",
                Unit::Count,
                "Retries refused because the retry budget was spent."
            );
            metrics::describe_histogram!(
                "http_resilience.server_wait",
                Unit::Seconds,
                "Waits the server asked for (Retry-After and its cousins), by source."
            );
            metrics::describe_histogram!(
                "http_resilience.request.attempts",
                Unit::Count,
                "Attempts per logical request."
            );
        });
    }
}
