//! [`Retry`]: the service of [`RetryLayer`](super::RetryLayer), and its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use tracing::Span;

use super::error::{transport_failure, RetryErrorCause, TransportFailure};
use super::replay::{first_copy, peek_body, try_clone_request, BoxError, RequestBody};
use super::wait_hint::server_says_retry;
use super::WaitHintSource;
use super::{
    attempts::Records, AttemptRecord, Attempts, KeySupport, NonIdempotent, RequestPolicy,
    RetryConfig, RetryContext, RetryDecision, RetryError, RetryNonIdempotent, StopReason,
    SuccessStatusFinal, WaitHint,
};
use crate::classify::{Classification, ErrorKind, RetryVerdict};
use crate::ids::{RequestIds, TraceId};
use crate::mask::Secrets;
use crate::pacing::{Permit, ScopeKey, TokenCost};
use crate::telemetry::{AttemptOutcome, RequestTelemetry};

/// Retries attempts whose classification allows it; see [`RetryLayer`](super::RetryLayer).
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    config: Arc<RetryConfig>,
}

impl<S> Retry<S> {
    pub(crate) fn new(inner: S, config: Arc<RetryConfig>) -> Self {
        Retry { inner, config }
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Retry<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: RequestBody,
{
    type Response = Response<ResBody>;
    type Error = RetryError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|error| {
            let attempts = Attempts {
                records: Records::default(),
                elapsed: Duration::ZERO,
                stopped: StopReason::ServiceNotReady,
                wait_hint: None,
            };
            // No request is at hand yet, so no ids.
            RetryError::new(
                RetryErrorCause::Service(error.into()),
                attempts,
                RequestIds::default(),
            )
        })
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The ids the outer layers recorded, taken out of the request: this layer keeps them
        // for the final response and its errors, and the copies it makes for retries need not
        // clone them.
        let recorded = request.extensions_mut().remove::<RequestIds>();
        self.call_with_ids(request, recorded)
    }
}

impl<S> Retry<S> {
    /// [`call`](Service::call) with the ids of the request beside it rather than in its
    /// extensions, as [`ResilienceService`](crate::ResilienceService) stamps them. A key the
    /// caller set in the standard header counts too.
    pub(crate) fn call_with_ids<B, ResBody>(
        &mut self,
        mut request: Request<B>,
        recorded: Option<RequestIds>,
    ) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Clone,
        S::Error: Into<BoxError>,
        B: RequestBody,
    {
        let config = &self.config;
        let start = Instant::now();
        let request_ids = RequestIds::completed(recorded, request.headers());
        let mut telemetry = RequestTelemetry::start(&request, &request_ids);
        let success_status_final = request.extensions().get::<SuccessStatusFinal>().is_some();
        let keyed = request_ids.has_idempotency_key();
        let policy = request.extensions().get::<RequestPolicy>();
        let limits = CallLimits {
            max_attempts: policy
                .and_then(|p| p.max_attempts)
                .unwrap_or(config.max_attempts),
            attempt_timeout: policy
                .and_then(|p| p.attempt_timeout)
                .or(config.attempt_timeout),
            uses_budget: policy.and_then(|p| p.uses_budget).unwrap_or(true),
        };
        let safety = if is_idempotent(request.method()) {
            Safety::Safe
        } else {
            match policy.and_then(|p| p.non_idempotent) {
                Some(NonIdempotent::Never) => Safety::Never,
                Some(NonIdempotent::RetryIfUnprocessed) => Safety::NeedsProof,
                Some(NonIdempotent::RetryWithKey) if keyed => Safety::Safe,
                Some(_) => Safety::NeedsProof,
                None if config.retry_non_idempotent
                    || request.extensions().get::<RetryNonIdempotent>().is_some()
                    || (keyed && config.key_support == KeySupport::Honoured) =>
                {
                    Safety::Safe
                }
                None => Safety::NeedsProof,
            }
        };
        let deadline = policy
            .and_then(|p| p.deadline)
            .or(config.deadline)
            .and_then(|d| start.checked_add(d));
        // Until the pacer knows any scope, a request's scope is worked out only when an answer
        // asks for it, from the copy kept for a retry.
        let mut scope = config
            .pacer
            .as_ref()
            .filter(|pacer| pacer.is_active())
            .map(|pacer| pacer.scope_of(&request));
        let mut permit = None;
        let mut turn = None;
        if let (Some(pacer), Some(scope)) = (&config.pacer, scope) {
            let cost = token_cost(&request);
            if let Some((place, at)) = pacer.admit(scope, cost, request.uri(), start, start) {
                permit = Some(Box::new(place));
                turn = at;
            }
        }
        let mut timer = None;
        // The ids are shared already (and a caller's key is in the record too): the request's
        // other small values are moved into a shared buffer before the first copy.
        let shared_ids = [
            request_ids.client_request_id().map(|id| id.value()),
            request_ids.idempotency_key().map(|key| key.value()),
        ];
        let (state, service, next_request, next_delay) = match turn {
            None => {
                let next_request = if limits.max_attempts > 1 {
                    first_copy(&mut request, &shared_ids)
                } else {
                    None
                };
                if let (Some(pacer), None, None) = (&config.pacer, scope, &next_request) {
                    // No copy to work the scope out from later: do it now.
                    scope = Some(pacer.scope_of(&request));
                }
                if next_request.is_none() {
                    // No copy to mask an echoed secret with at the end: telemetry keeps them.
                    telemetry.keep_secrets_of(&request);
                }
                telemetry.attempt_started(0);
                let future = match telemetry.attempt_span() {
                    Some(span) => span.in_scope(|| self.inner.call(request)),
                    None => self.inner.call(request),
                };
                arm_attempt_timer(&mut timer, limits.attempt_timeout, deadline);
                // The service that was polled ready serves this call; a clone the retries.
                let service = self.inner.clone();
                (
                    State::Calling { future },
                    service,
                    next_request,
                    Duration::ZERO,
                )
            }
            Some(at) => {
                // Its copy is made when the turn comes; the values are shared now (for nothing
                // if the body turns out not to be replayable).
                if limits.max_attempts > 1 {
                    crate::header_id::share_values(request.headers_mut(), &shared_ids);
                }
                // The first attempt waits its turn. What the caller's readiness reserved below
                // (a concurrency slot, a buffer place) is given back now, by dropping the ready
                // service, rather than held through the wait: a clone is made ready when the
                // turn comes.
                let fresh = self.inner.clone();
                drop(std::mem::replace(&mut self.inner, fresh));
                let service = self.inner.clone();
                let wait = at.saturating_duration_since(start);
                let state = if past_cap_or_deadline(at, wait, config, deadline) {
                    permit = None;
                    State::Refused
                } else {
                    set_timer(&mut timer, Some(at));
                    State::Waiting
                };
                (state, service, Some(request), wait)
            }
        };
        ResponseFuture {
            state,
            timer,
            service,
            next_request,
            config: Arc::clone(&self.config),
            records: Records::default(),
            start,
            deadline,
            safety,
            next_delay,
            retries: 0,
            request_ids: Some(request_ids),
            scope,
            permit,
            waiting_since: start,
            success_status_final,
            telemetry,
            limits,
        }
    }
}

/// The request's [`TokenCost`], or one token.
fn token_cost<B>(request: &Request<B>) -> u64 {
    request
        .extensions()
        .get::<TokenCost>()
        .map_or(1, |cost| cost.get())
}

/// Whether a turn the pacer gives at `at` (a wait of `wait`) comes too late: past the longest
/// server wait honoured, or at or after the deadline.
fn past_cap_or_deadline(
    at: Instant,
    wait: Duration,
    config: &RetryConfig,
    deadline: Option<Instant>,
) -> bool {
    wait > config.max_server_wait || deadline.is_some_and(|d| at >= d)
}

/// When a request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Safety {
    /// Idempotent, opted in, or keyed for a server that honours keys.
    Safe,
    /// Only when the answer proves the server did no work.
    NeedsProof,
    /// Never: its [`RequestPolicy`] says [`NonIdempotent::Never`].
    Never,
}

/// The settings of one call: the stack's, with its [`RequestPolicy`]'s on top.
#[derive(Debug, Clone, Copy)]
struct CallLimits {
    max_attempts: u32,
    attempt_timeout: Option<Duration>,
    /// Whether the call's retries draw on the budget.
    uses_budget: bool,
}

/// Whether an attempt's outcome proves the server did no work: the connection was never made,
/// or the server refused the request up front, by its status alone: 429 (rate or concurrency
/// limit), 529 (overloaded), 503 with a wait, or 425 Too Early (where its classification
/// allows a retry). A 503 without a wait is no proof: proxies answer it after forwarding.
fn proves_unprocessed(connect: bool, status: Option<StatusCode>, hint: Option<WaitHint>) -> bool {
    connect
        || status.is_some_and(|s| match s.as_u16() {
            425 | 429 | 529 => true,
            503 => hint.is_some(),
            _ => false,
        })
}

/// The methods RFC 9110 defines as idempotent.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

pin_project! {
    /// The response future of [`Retry`].
    pub struct ResponseFuture<S: Service<Request<B>>, B> {
        #[pin]
        state: State<S::Future>,
        // Armed for the current attempt's timeout or deadline, or for the wait before a retry.
        timer: Option<Pin<Box<Sleep>>>,
        service: S,
        next_request: Option<Request<B>>,
        config: Arc<RetryConfig>,
        records: Records,
        start: Instant,
        deadline: Option<Instant>,
        safety: Safety,
        next_delay: Duration,
        retries: u32,
        // The request's ids (taken by the final response or error).
        request_ids: Option<RequestIds>,
        // The pacing scope and the current attempt's place in its line.
        scope: Option<ScopeKey>,
        // Boxed: only paced requests have one, and a smaller future is cheaper to move.
        permit: Option<Box<Permit>>,
        // When the current wait before an attempt began.
        waiting_since: Instant,
        // The request carries `SuccessStatusFinal`: a 2xx answer ends the call as a success.
        success_status_final: bool,
        // The request's span, the current attempt's, and what events and metrics need.
        telemetry: RequestTelemetry,
        limits: CallLimits,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting,
        Ready,
        // The pacer's turn came too late; nothing more is sent.
        Refused,
    }
}

/// What to do after a failed attempt.
enum Next {
    Retry(Duration),
    /// Stop, with the wait to report when it is not the attempt's own hint (the pacer's turn
    /// for a retry that comes too late).
    Stop(StopReason, Option<WaitHint>),
}

/// Arms `timer` for an attempt starting now: its timeout, capped by the deadline.
fn arm_attempt_timer(
    timer: &mut Option<Pin<Box<Sleep>>>,
    attempt_timeout: Option<Duration>,
    deadline: Option<Instant>,
) {
    let timeout_at = attempt_timeout.map(instant_after);
    let at = match (timeout_at, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    set_timer(timer, at);
}

/// The instant `delay` from now; a delay too long to represent ends in about thirty years, as
/// tokio's own far future does.
fn instant_after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(now)
}

fn set_timer(timer: &mut Option<Pin<Box<Sleep>>>, at: Option<Instant>) {
    match (timer.as_mut(), at) {
        (Some(sleep), Some(at)) => sleep.as_mut().reset(at),
        (None, Some(at)) => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
        (_, None) => *timer = None,
    }
}

/// What the attempt timer firing means: the deadline passed, or else the attempt timed out.
fn timer_outcome<R>(
    deadline: &Option<Instant>,
    start: &Instant,
    limits: &CallLimits,
) -> Outcome<R> {
    match *deadline {
        Some(deadline) if Instant::now() >= deadline => {
            Outcome::Error(RetryErrorCause::Deadline(deadline - *start))
        }
        _ => Outcome::Error(RetryErrorCause::AttemptTimeout(
            limits.attempt_timeout.unwrap_or_default(),
        )),
    }
}

/// How an attempt ended, before the retry decision.
enum Outcome<R> {
    Response(R),
    Error(RetryErrorCause),
}

/// What one attempt's outcome says: its status, kind, trace id, verdict and wait, and whether
/// it failed to connect.
struct AttemptReading {
    status: Option<StatusCode>,
    kind: Option<ErrorKind>,
    trace_id: Option<TraceId>,
    /// `None` for a success.
    verdict: Option<RetryVerdict>,
    hint: Option<WaitHint>,
    connect: bool,
}

impl AttemptReading {
    /// What telemetry reports of the attempt.
    fn outcome(&self) -> AttemptOutcome<'_> {
        AttemptOutcome {
            status: self.status,
            kind: self.kind,
            verdict: self.verdict,
            trace_id: self.trace_id.as_ref(),
            hint: self.hint,
        }
    }

    fn of<ResBody>(outcome: &Outcome<Response<ResBody>>, success_status_final: bool) -> Self {
        match outcome {
            Outcome::Response(response) => {
                let classification = response.extensions().get::<Classification>();
                let status = response.status();
                let kind = match classification {
                    // What the body says of a 2xx answer is the caller's to read.
                    _ if success_status_final && status.is_success() => None,
                    Some(c) => c.kind(),
                    None => ErrorKind::from_status(status),
                };
                let mut verdict = match classification {
                    _ if kind.is_none() => None,
                    Some(c) => c.verdict(),
                    None => kind.map(|k| verdict_by_status(k, status)),
                };
                if kind.is_some() {
                    match server_says_retry(response.headers()) {
                        Some(true) if verdict == Some(RetryVerdict::Never) => {
                            verdict = Some(RetryVerdict::Backoff)
                        }
                        Some(false) => verdict = Some(RetryVerdict::Never),
                        _ => {}
                    }
                }
                let hint = kind.and_then(|_| {
                    WaitHint::from_response(
                        response.headers(),
                        classification.and_then(Classification::body_wait),
                        SystemTime::now(),
                    )
                });
                AttemptReading {
                    status: Some(status),
                    kind,
                    trace_id: classification.and_then(|c| c.trace_id().cloned()),
                    verdict,
                    hint,
                    connect: false,
                }
            }
            Outcome::Error(cause) => {
                // Connection-level failures follow the retry rules; any other error of the
                // inner service (a middleware's own, a redirect loop) ends the call at once.
                let (kind, verdict, connect) = match cause {
                    RetryErrorCause::Service(error) => match transport_failure(error.as_ref()) {
                        Some(TransportFailure::Connect) => {
                            (ErrorKind::Transport, RetryVerdict::Backoff, true)
                        }
                        Some(TransportFailure::Timeout) => {
                            (ErrorKind::Timeout, RetryVerdict::Backoff, false)
                        }
                        Some(_) => (ErrorKind::Transport, RetryVerdict::Backoff, false),
                        None => (ErrorKind::Unknown, RetryVerdict::Never, false),
                    },
                    RetryErrorCause::Deadline(_) => {
                        (ErrorKind::Timeout, RetryVerdict::Never, false)
                    }
                    _ => (ErrorKind::Timeout, RetryVerdict::Backoff, false),
                };
                AttemptReading {
                    status: None,
                    kind: Some(kind),
                    trace_id: None,
                    verdict: Some(verdict),
                    hint: None,
                    connect,
                }
            }
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: RequestBody,
{
    type Output = Result<Response<ResBody>, RetryError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Inside the request's span when someone listens; no guard to drop otherwise.
        match self.telemetry.request_span() {
            Some(span) => span.in_scope(|| self.poll_attempts(cx)),
            None => self.poll_attempts(cx),
        }
    }
}

impl<S, B, ResBody> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: RequestBody,
{
    fn poll_attempts(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished<ResBody>> {
        loop {
            let this = self.as_mut().project();
            let outcome = match this.state.project() {
                StateProj::Calling { future } => {
                    let polled = match this.telemetry.attempt_span() {
                        Some(span) => span.in_scope(|| future.poll(cx)),
                        None => future.poll(cx),
                    };
                    match polled {
                        Poll::Ready(Ok(response)) => Outcome::Response(response),
                        Poll::Ready(Err(error)) => {
                            Outcome::Error(RetryErrorCause::Service(error.into()))
                        }
                        Poll::Pending => {
                            let Some(timer) = this.timer.as_mut() else {
                                return Poll::Pending;
                            };
                            ready!(timer.as_mut().poll(cx));
                            timer_outcome(this.deadline, this.start, this.limits)
                        }
                    }
                }
                StateProj::Waiting => {
                    if let Some(timer) = this.timer.as_mut() {
                        ready!(timer.as_mut().poll(cx));
                    }
                    // A retry decided before its scope was known to the pacer takes its place
                    // in line now.
                    if let (None, Some(pacer), Some(request)) = (
                        this.permit.as_ref(),
                        &this.config.pacer,
                        this.next_request.as_ref(),
                    ) {
                        if pacer.is_active() {
                            let scope = *this.scope.get_or_insert_with(|| pacer.scope_of(request));
                            let now = Instant::now();
                            let cost = token_cost(request);
                            if let Some((permit, _)) =
                                pacer.admit(scope, cost, request.uri(), now, now)
                            {
                                *this.permit = Some(Box::new(permit));
                            }
                        }
                    }
                    // The pacer may have learned, while this request waited, that its turn
                    // comes later.
                    if let Some(permit) = this.permit.as_mut() {
                        let now = Instant::now();
                        if let Some(at) = permit.ready_at(now) {
                            let wait = at.saturating_duration_since(*this.waiting_since);
                            if past_cap_or_deadline(at, wait, this.config, *this.deadline) {
                                *this.next_delay = at.saturating_duration_since(now);
                                *this.permit = None;
                                self.as_mut()
                                    .project()
                                    .state
                                    .project_replace(State::Refused);
                            } else {
                                set_timer(this.timer, Some(at));
                            }
                            continue;
                        }
                    }
                    // The attempt starts now: waiting for the client to be ready is part of it,
                    // under its timeout and the deadline.
                    arm_attempt_timer(this.timer, this.limits.attempt_timeout, *this.deadline);
                    this.telemetry.attempt_started(this.records.len() as u32);
                    self.as_mut().project().state.project_replace(State::Ready);
                    continue;
                }
                StateProj::Refused => return Poll::Ready(Err(self.as_mut().refused())),
                StateProj::Ready => {
                    let this = self.as_mut().project();
                    let _attempt = this.telemetry.attempt_span().map(Span::enter);
                    match this.service.poll_ready(cx) {
                        // A client that cannot take the request failed this attempt before
                        // sending anything: decide as for any transport error.
                        Poll::Ready(Err(error)) => {
                            Outcome::Error(RetryErrorCause::Service(error.into()))
                        }
                        Poll::Ready(Ok(())) => {
                            let request = this.next_request.take().expect(
                                "a retry is decided only when a copy of the request exists",
                            );
                            *this.next_request = try_clone_request(&request);
                            let future = this.service.call(request);
                            this.state.project_replace(State::Calling { future });
                            continue;
                        }
                        Poll::Pending => {
                            let Some(timer) = this.timer.as_mut() else {
                                return Poll::Pending;
                            };
                            ready!(timer.as_mut().poll(cx));
                            timer_outcome(this.deadline, this.start, this.limits)
                        }
                    }
                }
            };
            match self.as_mut().on_outcome(outcome) {
                Ok(done) => return Poll::Ready(done),
                Err(delay) => {
                    let this = self.as_mut().project();
                    *this.waiting_since = Instant::now();
                    set_timer(this.timer, Some(instant_after(delay)));
                    this.state.project_replace(State::Waiting);
                }
            }
        }
    }
}

type Finished<ResBody> = Result<Response<ResBody>, RetryError>;

impl<S, B, ResBody> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: RequestBody,
{
    /// Records the attempt and decides: `Ok` to finish with this outcome, `Err(delay)` to retry.
    /// Reads what the attempt says, lets the pacer and the budget observe it, decides, then
    /// acts on the decision.
    fn on_outcome(
        mut self: Pin<&mut Self>,
        outcome: Outcome<Response<ResBody>>,
    ) -> Result<Finished<ResBody>, Duration> {
        let read = AttemptReading::of(&outcome, self.success_status_final);
        self.as_mut().observe(&outcome, &read);
        let next = match read.verdict {
            None => Next::Stop(StopReason::Succeeded, None),
            Some(verdict) => {
                let classification = match &outcome {
                    Outcome::Response(response) => response.extensions().get::<Classification>(),
                    Outcome::Error(_) => None,
                };
                self.as_mut().decide(verdict, &read, classification)
            }
        };
        self.act(next, outcome, read)
    }

    /// Lets the pacer learn from the attempt (and gives its place in line back), deposits a
    /// success in the budget, and records the attempt.
    fn observe(self: Pin<&mut Self>, outcome: &Outcome<Response<ResBody>>, read: &AttemptReading) {
        let this = self.project();
        let permit = this.permit.take();
        if let Some(pacer) = &this.config.pacer {
            match outcome {
                Outcome::Response(response) => pacer.observe(
                    || {
                        let scope = this.scope.or_else(|| {
                            let request = this.next_request.as_ref()?;
                            Some(pacer.scope_of(request))
                        });
                        *this.scope = scope;
                        scope
                    },
                    permit.map(|permit| *permit),
                    response.headers(),
                    response.status(),
                    // Only a wait the server stated is shared with the scope: a reset read as a
                    // wait may be the time until the limit is whole again.
                    read.hint
                        .filter(|h| {
                            matches!(
                                h.source(),
                                WaitHintSource::RetryAfterMs
                                    | WaitHintSource::RetryAfter
                                    | WaitHintSource::Body
                            )
                        })
                        .map(|h| h.delay().min(this.config.max_server_wait)),
                    this.next_request.as_ref().map(Request::uri),
                ),
                // No answer: the place in line ends with the attempt.
                Outcome::Error(_) => drop(permit),
            }
        }
        if read.verdict.is_none() {
            // The budget earns on successes only, so that a storm of failures is retried at its
            // floor.
            this.config.budget.deposit();
        }
        this.telemetry.attempt_ended(|| read.outcome());
        this.records.push(AttemptRecord {
            status: read.status,
            kind: read.kind,
            trace_id: read.trace_id.clone(),
            delay: *this.next_delay,
        });
    }

    /// Retries after the delay, or finishes with the outcome and its [`Attempts`].
    fn act(
        self: Pin<&mut Self>,
        next: Next,
        outcome: Outcome<Response<ResBody>>,
        read: AttemptReading,
    ) -> Result<Finished<ResBody>, Duration> {
        let this = self.project();
        match next {
            Next::Retry(delay) => {
                *this.retries += 1;
                *this.next_delay = delay;
                this.telemetry
                    .retrying(*this.retries, delay, &read.outcome());
                Err(delay)
            }
            Next::Stop(stopped, reported_wait) => {
                let attempts = Attempts {
                    records: std::mem::take(this.records),
                    elapsed: this.start.elapsed(),
                    stopped,
                    wait_hint: reported_wait.or(read.hint),
                };
                Ok(match outcome {
                    Outcome::Response(mut response) => {
                        if let Some(request) = this.next_request.as_ref() {
                            mask_echoed_secrets(&mut response, request);
                        }
                        this.telemetry.finished(
                            &attempts,
                            || read.outcome(),
                            response.extensions().get::<Classification>(),
                            this.request_ids.as_ref(),
                        );
                        let extensions = response.extensions_mut();
                        extensions.insert(attempts);
                        if let Some(mut ids) = this.request_ids.take() {
                            ids.note_replay(response.headers());
                            response.extensions_mut().insert(ids);
                        }
                        Ok(response)
                    }
                    Outcome::Error(cause) => {
                        this.telemetry.finished(
                            &attempts,
                            || read.outcome(),
                            None,
                            this.request_ids.as_ref(),
                        );
                        let ids = this.request_ids.take().unwrap_or_default();
                        Err(RetryError::new(cause, attempts, ids))
                    }
                })
            }
        }
    }

    /// The error of a request whose turn in the pacer's line would come too late: nothing
    /// (more) was sent.
    fn refused(self: Pin<&mut Self>) -> RetryError {
        let this = self.project();
        let wait = *this.next_delay;
        let attempts = Attempts {
            records: std::mem::take(this.records),
            elapsed: this.start.elapsed(),
            stopped: StopReason::WaitTooLong,
            wait_hint: Some(WaitHint::new(wait, WaitHintSource::Pacer)),
        };
        // The last answer, if any attempt was made, is what the request ended with.
        let last = attempts.records().last();
        let outcome = || AttemptOutcome {
            status: last.and_then(|r| r.status()),
            kind: last.and_then(|r| r.kind()),
            verdict: None,
            trace_id: last.and_then(|r| r.trace_id()),
            hint: None,
        };
        this.telemetry
            .finished(&attempts, outcome, None, this.request_ids.as_ref());
        let ids = this.request_ids.take().unwrap_or_default();
        RetryError::new(RetryErrorCause::PacingWait(wait), attempts, ids)
    }

    fn decide(
        self: Pin<&mut Self>,
        verdict: RetryVerdict,
        read: &AttemptReading,
        classification: Option<&Classification>,
    ) -> Next {
        let (hint, connect, kind, status) = (read.hint, read.connect, read.kind, read.status);
        let this = self.project();
        let config = &**this.config;
        let attempt = this.records.len() as u32;
        let mut verdict = verdict;
        // The stack's hook sees an attempt that could be retried (a copy to send, attempts and
        // time left), and may change the verdict; the rules below still hold.
        if let (Some(decide), Some(request)) = (&config.decide, this.next_request.as_ref()) {
            let past_deadline = this.deadline.is_some_and(|d| Instant::now() >= d);
            if attempt < this.limits.max_attempts && !past_deadline {
                let context = RetryContext {
                    method: request.method(),
                    uri: request.uri(),
                    headers: request.headers(),
                    extensions: request.extensions(),
                    attempt,
                    status,
                    kind,
                    verdict,
                    classification,
                };
                match decide(&context) {
                    RetryDecision::Default => {}
                    RetryDecision::Retry => {
                        if verdict == RetryVerdict::Never {
                            verdict = RetryVerdict::Backoff;
                        }
                    }
                    RetryDecision::Stop => return Next::Stop(StopReason::Declined, None),
                }
            }
        }
        if verdict == RetryVerdict::Never {
            return Next::Stop(
                if kind == Some(ErrorKind::Timeout)
                    && this.deadline.is_some_and(|d| Instant::now() >= d)
                {
                    StopReason::Deadline
                } else {
                    StopReason::VerdictNever
                },
                None,
            );
        }
        if attempt >= this.limits.max_attempts {
            return Next::Stop(StopReason::AttemptsExhausted, None);
        }
        let may_resend = match *this.safety {
            Safety::Safe => true,
            Safety::NeedsProof => proves_unprocessed(connect, status, hint),
            Safety::Never => false,
        };
        if !may_resend {
            return Next::Stop(StopReason::NotIdempotent, None);
        }
        if this.next_request.is_none() {
            return Next::Stop(StopReason::BodyNotReplayable, None);
        }
        let mut delay = match hint {
            Some(hint) if hint.delay() > config.max_server_wait => {
                return Next::Stop(StopReason::WaitTooLong, None)
            }
            Some(hint) => hint.delay(),
            None => config.backoff.delay(*this.retries + 1, *this.next_delay),
        };
        // The retry takes its place in the pacer's line now, behind those already waiting; it
        // goes no earlier than its backoff or the server's wait.
        let mut paced = false;
        let mut in_line = false;
        if let (Some(pacer), Some(request)) = (&config.pacer, this.next_request.as_ref()) {
            let scope = match *this.scope {
                Some(scope) => scope,
                None => *this.scope.insert(pacer.scope_of(request)),
            };
            let now = Instant::now();
            let earliest = instant_after(delay);
            let cost = token_cost(request);
            if let Some((permit, at)) = pacer.admit(scope, cost, request.uri(), now, earliest) {
                in_line = true;
                if let Some(at) = at.filter(|at| *at > earliest) {
                    let turn = at.saturating_duration_since(now);
                    if turn > config.max_server_wait {
                        return Next::Stop(
                            StopReason::WaitTooLong,
                            Some(WaitHint::new(turn, WaitHintSource::Pacer)),
                        );
                    }
                    paced = true;
                    delay = turn;
                }
                *this.permit = Some(Box::new(permit));
            }
        }
        if let Some(deadline) = *this.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if delay >= left {
                *this.permit = None;
                if paced {
                    return Next::Stop(
                        StopReason::WaitTooLong,
                        Some(WaitHint::new(delay, WaitHintSource::Pacer)),
                    );
                }
                let reason = if hint.is_some() {
                    StopReason::WaitTooLong
                } else {
                    StopReason::Deadline
                };
                return Next::Stop(reason, None);
            }
        }
        // A retry that waits for a limit the server explained is not a storm: its turn in a
        // paced scope's line, or a wait a 429, 503 or 529 asked for (which the pacer shares
        // with the scope). A zero wait explains nothing.
        let explained = in_line
            && (paced
                || (hint.is_some_and(|h| !h.delay().is_zero())
                    && status.is_some_and(|s| matches!(s.as_u16(), 429 | 503 | 529))));
        if !explained && this.limits.uses_budget && !config.budget.withdraw() {
            *this.permit = None;
            return Next::Stop(StopReason::BudgetSpent, None);
        }
        Next::Retry(delay)
    }
}

/// Masks, in the final response's classification message, any secret the request carried (its
/// bearer token, API-key header, secret query parameter): servers that reject a key often quote
/// it back. Costs nothing unless the answer has a message.
fn mask_echoed_secrets<ResBody, B: RequestBody>(
    response: &mut Response<ResBody>,
    request: &Request<B>,
) {
    let Some(classification) = response.extensions_mut().get_mut::<Classification>() else {
        return;
    };
    let Some(message) = classification.message.as_mut() else {
        return;
    };
    let body = peek_body(request.body(), SECRET_SCAN_LIMIT);
    let secrets = Secrets::of_request(
        &request.uri().to_string(),
        request.headers(),
        body.as_deref(),
    );
    message.mask_secrets(&secrets);
}

/// How much of a request body is read for its secrets.
const SECRET_SCAN_LIMIT: usize = 8 * 1024;

/// The verdict of a kind found by status alone (no classification in the extensions).
fn verdict_by_status(kind: ErrorKind, status: StatusCode) -> RetryVerdict {
    match kind {
        ErrorKind::Unknown if status.is_server_error() => RetryVerdict::Backoff,
        kind => kind.default_verdict(),
    }
}
