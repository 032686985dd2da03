//! `RetryLayer` over a scripted upstream, in paused time: exact delays, hints, caps, deadlines,
//! budget, and safety.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use http_resilience::retry::{
    Attempts, Backoff, Jitter, ReplayBody, RetryBudget, RetryErrorCause, RetryLayer,
    RetryNonIdempotent, StopReason, WaitHintSource,
};
use http_resilience::{ClassifyLayer, ErrorKind};
use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// One scripted answer: a response, a connection refused, or a hang.
#[derive(Clone)]
enum Answer {
    Status(u16, Vec<(&'static str, String)>, &'static str),
    Refused,
    Hang,
}

fn status(code: u16) -> Answer {
    Answer::Status(code, Vec::new(), "")
}

fn with_header(code: u16, name: &'static str, value: impl Into<String>) -> Answer {
    Answer::Status(code, vec![(name, value.into())], "")
}

/// What the upstream saw of each request.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Upstream {
    script: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    start: Instant,
}

impl Upstream {
    fn new(script: Vec<Answer>) -> Self {
        Upstream {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
            start: Instant::now(),
        }
    }

    /// Arrival times of the requests, relative to the upstream's creation.
    fn arrivals(&self) -> Vec<Duration> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.at - self.start)
            .collect()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The stack under test: retry over classify over this upstream.
    fn client<B>(
        &self,
        retry: RetryLayer,
    ) -> impl tower::Service<
        Request<B>,
        Response = Response<http_resilience::classify::ClassifiedBody<Full<Bytes>>>,
        Error = http_resilience::RetryError,
        Future = impl Send,
    > + Clone
    where
        B: http_body::Body<Data = Bytes> + http_resilience::retry::RequestBody + Send + 'static,
        B::Error: std::fmt::Debug,
    {
        let upstream = self.clone();
        ServiceBuilder::new()
            .layer(retry)
            .layer(ClassifyLayer::new())
            .service(service_fn(move |req: Request<B>| {
                let upstream = upstream.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    upstream.seen.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        headers: parts.headers,
                        body,
                    });
                    let answer = upstream
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(status(200));
                    match answer {
                        Answer::Status(code, headers, body) => {
                            let mut response = Response::builder().status(code);
                            for (name, value) in headers {
                                response = response.header(name, value);
                            }
                            Ok(response
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap())
                        }
                        Answer::Refused => Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionRefused,
                            "connection refused",
                        )),
                        Answer::Hang => std::future::pending().await,
                    }
                }
            }))
    }
}

/// A layer with deterministic backoff: no jitter, 500 ms base, 8 s max.
fn layer() -> RetryLayer {
    RetryLayer::new().backoff(
        Backoff::new(Duration::from_millis(500), Duration::from_secs(8)).jitter(Jitter::None),
    )
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("http://upstream/v1/models")
        .body(Empty::new())
        .unwrap()
}

fn post(key: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder =
        Request::post("http://upstream/v1/images").header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(Full::new(Bytes::from_static(br#"{"prompt":"a cat"}"#)))
        .unwrap()
}

fn attempts_of<B>(response: &Response<B>) -> Attempts {
    response.extensions().get::<Attempts>().unwrap().clone()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn backoff_without_jitter_doubles_exactly() {
    let upstream = Upstream::new(vec![status(500), status(502), status(200)]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.arrivals(), [ms(0), ms(500), ms(1500)]);
    let attempts = attempts_of(&response);
    let delays: Vec<_> = attempts.records().iter().map(|r| r.delay()).collect();
    assert_eq!(delays, [ms(0), ms(500), ms(1000)]);
    assert_eq!(attempts.stopped(), StopReason::Succeeded);
    assert_eq!(attempts.elapsed(), ms(1500));
    let kinds: Vec<_> = attempts.records().iter().map(|r| r.kind()).collect();
    assert_eq!(
        kinds,
        [
            Some(ErrorKind::ServerError),
            Some(ErrorKind::ServerError),
            None
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn each_jitter_mode_stays_in_its_bounds() {
    // A random source at the top of its range, then at the bottom.
    for (jitter, random, expected) in [
        (Jitter::Full, 0.5, [ms(250), ms(500)]),
        (Jitter::Full, 0.0, [ms(0), ms(0)]),
        (Jitter::Equal, 0.0, [ms(250), ms(500)]),
        (Jitter::Equal, 0.5, [ms(375), ms(750)]),
        (Jitter::Decorrelated, 0.0, [ms(500), ms(500)]),
        (Jitter::Decorrelated, 0.5, [ms(1000), ms(1750)]),
        (Jitter::None, 0.5, [ms(500), ms(1000)]),
    ] {
        let upstream = Upstream::new(vec![status(503), status(503), status(200)]);
        let backoff = Backoff::new(ms(500), secs(8))
            .jitter(jitter)
            .random_source(SequenceRandom::new(vec![random]));
        let response = upstream
            .client(RetryLayer::new().backoff(backoff))
            .oneshot(get())
            .await
            .unwrap();
        let delays: Vec<_> = attempts_of(&response)
            .records()
            .iter()
            .skip(1)
            .map(|r| r.delay())
            .collect();
        assert_eq!(delays, expected, "{jitter:?} at {random}");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_sets_the_delay() {
    let upstream = Upstream::new(vec![with_header(429, "retry-after", "7"), status(200)]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(upstream.arrivals(), [secs(0), secs(7)]);
    let attempts = attempts_of(&response);
    assert_eq!(attempts.records()[1].delay(), secs(7));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_sets_the_delay() {
    // HTTP-dates have one-second resolution, so the wait is within a second of 10 s.
    let date = httpdate::fmt_http_date(SystemTime::now() + secs(10));
    let upstream = Upstream::new(vec![with_header(503, "retry-after", date), status(200)]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    let delay = attempts_of(&response).records()[1].delay();
    assert!(delay > secs(8) && delay <= secs(10), "{delay:?}");
}

#[tokio::test(start_paused = true)]
async fn every_hint_header_sets_the_delay() {
    let in_20s = humantime::format_rfc3339(SystemTime::now() + secs(20)).to_string();
    let epoch_in_30s = (SystemTime::now() + secs(30))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let cases: Vec<(Answer, Duration, Duration, WaitHintSource)> = vec![
        (
            with_header(429, "retry-after-ms", "1500"),
            ms(1500),
            ms(1500),
            WaitHintSource::RetryAfterMs,
        ),
        (
            with_header(429, "ratelimit-reset", "4"),
            secs(4),
            secs(4),
            WaitHintSource::RateLimitReset,
        ),
        (
            with_header(429, "ratelimit", "\"default\";r=0;t=6"),
            secs(6),
            secs(6),
            WaitHintSource::RateLimitReset,
        ),
        (
            Answer::Status(
                429,
                vec![
                    ("x-ratelimit-reset-tokens", "6s".into()),
                    ("x-ratelimit-remaining-tokens", "0".into()),
                ],
                "",
            ),
            secs(6),
            secs(6),
            WaitHintSource::OpenAiReset,
        ),
        (
            with_header(429, "x-ratelimit-reset-requests", "250ms"),
            ms(250),
            ms(250),
            WaitHintSource::OpenAiReset,
        ),
        (
            with_header(429, "anthropic-ratelimit-requests-reset", in_20s),
            secs(19),
            secs(20),
            WaitHintSource::AnthropicReset,
        ),
        (
            with_header(429, "x-ratelimit-reset", epoch_in_30s),
            secs(28),
            secs(30),
            WaitHintSource::XRateLimitReset,
        ),
        (
            Answer::Status(
                429,
                vec![],
                r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3s"}]}}"#,
            ),
            secs(3),
            secs(3),
            WaitHintSource::Body,
        ),
        (
            Answer::Status(
                503,
                vec![],
                r#"{"error":"Model x is currently loading","estimated_time":12.5}"#,
            ),
            ms(12_500),
            ms(12_500),
            WaitHintSource::Body,
        ),
    ];
    for (answer, low, high, source) in cases {
        let upstream = Upstream::new(vec![answer, status(200)]);
        let response = upstream.client(layer()).oneshot(get()).await.unwrap();
        let attempts = attempts_of(&response);
        let delay = attempts.records()[1].delay();
        assert!(delay >= low && delay <= high, "{source:?}: {delay:?}");
        assert_eq!(attempts.count(), 2);
        assert_eq!(attempts.wait_hint(), None, "a success carries no hint");
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_hint_falls_back_to_backoff() {
    let upstream = Upstream::new(vec![with_header(429, "retry-after", "soon"), status(200)]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(attempts_of(&response).records()[1].delay(), ms(500));
}

#[tokio::test(start_paused = true)]
async fn hint_over_the_cap_returns_at_once_with_the_hint() {
    let upstream = Upstream::new(vec![with_header(429, "retry-after", "120"), status(200)]);
    let started = Instant::now();
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO, "no sleeping");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let attempts = attempts_of(&response);
    assert_eq!(attempts.stopped(), StopReason::WaitTooLong);
    assert_eq!(attempts.wait_hint().unwrap().delay(), secs(120));
    assert_eq!(
        attempts.wait_hint().unwrap().source(),
        WaitHintSource::RetryAfter
    );
    assert_eq!(upstream.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn hint_past_the_deadline_returns_at_once() {
    let upstream = Upstream::new(vec![with_header(503, "retry-after", "10"), status(200)]);
    let started = Instant::now();
    let response = upstream
        .client(layer().deadline(secs(5)))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    let attempts = attempts_of(&response);
    assert_eq!(attempts.stopped(), StopReason::WaitTooLong);
    assert_eq!(attempts.wait_hint().unwrap().delay(), secs(10));
}

#[tokio::test(start_paused = true)]
async fn backoff_past_the_deadline_stops_with_deadline() {
    let upstream = Upstream::new(vec![status(500), status(500), status(500)]);
    let response = upstream
        .client(layer().deadline(ms(1200)))
        .oneshot(get())
        .await
        .unwrap();
    let attempts = attempts_of(&response);
    // 0 ms, then 500 ms; the next backoff (1000 ms) would end past 1200 ms.
    assert_eq!(upstream.arrivals(), [ms(0), ms(500)]);
    assert_eq!(attempts.stopped(), StopReason::Deadline);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(start_paused = true)]
async fn deadline_during_an_attempt_is_an_error() {
    let upstream = Upstream::new(vec![status(500), Answer::Hang]);
    let error = upstream
        .client(layer().deadline(secs(3)))
        .oneshot(get())
        .await
        .unwrap_err();
    assert!(
        matches!(error.cause(), RetryErrorCause::Deadline(d) if d == &secs(3)),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.attempts().stopped(), StopReason::Deadline);
    assert_eq!(error.attempts().count(), 2);
    assert_eq!(error.attempts().elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_is_retried_when_safe() {
    let upstream = Upstream::new(vec![Answer::Hang, status(200)]);
    let response = upstream
        .client(layer().attempt_timeout(secs(2)))
        .oneshot(get())
        .await
        .unwrap();
    let attempts = attempts_of(&response);
    assert_eq!(upstream.arrivals(), [ms(0), ms(2500)]);
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Timeout));
    assert_eq!(attempts.records()[0].status(), None);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_exhausted() {
    let upstream = Upstream::new(vec![status(503), status(503), status(503), status(200)]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let attempts = attempts_of(&response);
    assert_eq!(attempts.count(), 3);
    assert_eq!(attempts.stopped(), StopReason::AttemptsExhausted);
}

#[tokio::test(start_paused = true)]
async fn verdict_never_is_not_retried() {
    let upstream = Upstream::new(vec![Answer::Status(
        429,
        vec![("retry-after", "1".into())],
        r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"quota"}}"#,
    )]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    let attempts = attempts_of(&response);
    assert_eq!(attempts.stopped(), StopReason::VerdictNever);
    assert_eq!(
        attempts.records()[0].kind(),
        Some(ErrorKind::QuotaExhausted)
    );
    assert_eq!(upstream.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_should_retry_header_overrides_the_verdict() {
    let upstream = Upstream::new(vec![with_header(500, "x-should-retry", "false")]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(attempts_of(&response).stopped(), StopReason::VerdictNever);

    let upstream = Upstream::new(vec![
        with_header(409, "x-should-retry", "true"),
        with_header(400, "x-should-retry", "true"),
        status(200),
    ]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    assert_eq!(attempts_of(&response).count(), 3);
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn spent_budget_returns_the_failure() {
    let budget = RetryBudget::new(secs(10), 0, 0.0);
    let upstream = Upstream::new(vec![status(503), status(200)]);
    let response = upstream
        .client(layer().budget(budget))
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts_of(&response).stopped(), StopReason::BudgetSpent);
    assert_eq!(upstream.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_is_shared_by_every_clone_and_earned_by_successes() {
    // No floor; a retry for every two successful attempts, whichever clone earned or asks.
    let budget = RetryBudget::new(secs(10), 0, 0.5);
    let upstream = Upstream::new(vec![
        status(200),
        status(200),
        status(503),
        status(200),
        status(503),
    ]);
    let client = upstream.client(layer().budget(budget.clone()));
    let mut stops = Vec::new();
    for _ in 0..4 {
        let response = client.clone().oneshot(get()).await.unwrap();
        stops.push(attempts_of(&response).stopped());
    }
    // Two successes earn one retry; the third success half of the next, which is not enough.
    assert_eq!(
        stops,
        [
            StopReason::Succeeded,
            StopReason::Succeeded,
            StopReason::Succeeded,
            StopReason::BudgetSpent
        ]
    );
    assert_eq!(budget.remaining(), 0);
    assert_eq!(upstream.arrivals().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn post_without_key_is_sent_once() {
    let upstream = Upstream::new(vec![status(503), status(200)]);
    let response = upstream.client(layer()).oneshot(post(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts_of(&response).stopped(), StopReason::NotIdempotent);
    assert_eq!(upstream.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_with_key_is_retried_with_the_same_key_and_body() {
    let upstream = Upstream::new(vec![status(504), status(200)]);
    let response = upstream
        .client(layer())
        .oneshot(post(Some("job-42")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.headers["idempotency-key"], "job-42");
        assert_eq!(&s.body[..], br#"{"prompt":"a cat"}"#);
    }
}

#[tokio::test(start_paused = true)]
async fn post_opted_in_per_request_or_per_layer_is_retried() {
    let upstream = Upstream::new(vec![status(503), status(200)]);
    let mut request = post(None);
    request.extensions_mut().insert(RetryNonIdempotent);
    let response = upstream.client(layer()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let upstream = Upstream::new(vec![status(503), status(200)]);
    let response = upstream
        .client(layer().retry_non_idempotent(true))
        .oneshot(post(None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn non_replayable_body_is_sent_once_and_its_response_returned() {
    let upstream = Upstream::new(vec![status(503), status(200)]);
    let request = Request::builder()
        .method(Method::PUT)
        .uri("http://upstream/v1/files/1")
        .body(ReplayBody::stream(Full::new(Bytes::from_static(b"stream"))))
        .unwrap();
    let response = upstream.client(layer()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        attempts_of(&response).stopped(),
        StopReason::BodyNotReplayable
    );
    assert_eq!(upstream.seen()[0].body, Bytes::from_static(b"stream"));
    assert_eq!(upstream.arrivals().len(), 1);

    let upstream = Upstream::new(vec![status(503), status(200)]);
    let request = Request::put("http://upstream/v1/files/1")
        .body(ReplayBody::from("bytes"))
        .unwrap();
    let response = upstream.client(layer()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn connect_error_is_retried_for_every_method() {
    let upstream = Upstream::new(vec![Answer::Refused, status(200)]);
    let response = upstream.client(layer()).oneshot(post(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let attempts = attempts_of(&response);
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Transport));
    assert_eq!(attempts.records()[0].status(), None);
}

#[tokio::test(start_paused = true)]
async fn transport_error_keeps_its_source_and_attempts() {
    let upstream = Upstream::new(vec![Answer::Refused, Answer::Refused, Answer::Refused]);
    let error = upstream.client(layer()).oneshot(get()).await.unwrap_err();
    let io = error
        .service_error()
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(error.attempts().count(), 3);
    assert_eq!(error.attempts().stopped(), StopReason::AttemptsExhausted);
    assert!(std::error::Error::source(&error).is_some());
    assert!(error.to_string().contains("3 attempts"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn trace_ids_of_every_attempt_are_recorded() {
    let upstream = Upstream::new(vec![
        Answer::Status(503, vec![("x-request-id", "r-1".into())], ""),
        Answer::Status(200, vec![("x-request-id", "r-2".into())], ""),
    ]);
    let response = upstream.client(layer()).oneshot(get()).await.unwrap();
    let ids: Vec<_> = attempts_of(&response)
        .trace_ids()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["r-1", "r-2"]);
}

/// A client that takes one request, then is never ready again.
#[derive(Clone)]
struct ReadyOnce {
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl tower::Service<Request<Empty<Bytes>>> for ReadyOnce {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        if self.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _req: Request<Empty<Bytes>>) -> Self::Future {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let response = Response::builder()
            .status(503)
            .body(Full::default())
            .unwrap();
        std::future::ready(Ok(response))
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_bounds_waiting_for_a_client_to_be_ready() {
    let client = ServiceBuilder::new()
        .layer(layer().deadline(secs(5)))
        .layer(ClassifyLayer::new())
        .service(ReadyOnce {
            calls: Arc::default(),
        });
    let start = Instant::now();
    let outcome = tokio::time::timeout(secs(60), client.oneshot(get())).await;
    let error = outcome
        .expect("waiting for readiness outlived the deadline")
        .unwrap_err();
    assert_eq!(start.elapsed(), secs(5));
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.attempts().stopped(), StopReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn settings_of_any_size_never_panic() {
    let upstream = Upstream::new(vec![
        status(503),
        with_header(429, "retry-after-ms", u64::MAX.to_string()),
        status(200),
    ]);
    let retry = RetryLayer::new()
        .max_attempts(u32::MAX)
        .deadline(Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .max_server_wait(secs(1))
        // The largest bounds, drawn at zero: the arithmetic meets Duration::MAX, the test does
        // not wait thirty years of paused time, which tokio's timer wheel steps through slowly.
        .backoff(
            Backoff::new(Duration::MAX, Duration::MAX)
                .random_source(SequenceRandom::new(vec![0.0])),
        )
        .budget(RetryBudget::unlimited());
    let response = upstream.client(retry).oneshot(get()).await.unwrap();
    // The 429's wait is past the cap: the call ends there, with the hint.
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempts_of(&response).stopped(), StopReason::WaitTooLong);
}

#[tokio::test(start_paused = true)]
async fn a_success_cut_while_classified_is_retried_when_safe() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let client = ServiceBuilder::new()
        .layer(layer())
        .layer(ClassifyLayer::new())
        .service(service_fn(move |_req: Request<Empty<Bytes>>| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                // The first answer's body breaks off; the second arrives whole.
                let mut body = common::ScriptedBody::new(vec![Bytes::from_static(b"{\"id\":")]);
                body.error = n == 0;
                if n > 0 {
                    body.chunks.push_back(Bytes::from_static(b"1}"));
                }
                let response = Response::builder()
                    .header("content-type", "application/json")
                    .body(body)
                    .unwrap();
                Ok::<_, std::io::Error>(response)
            }
        }));
    let response = client.oneshot(get()).await.unwrap();
    let attempts = attempts_of(&response);
    assert_eq!(attempts.count(), 2);
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Transport));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"{\"id\":1}");
}

/// A server that creates a paid job for every POST it processes, whatever the key, then answers
/// with `answers` in turn.
#[tokio::test(start_paused = true)]
async fn for_servers_that_ignore_keys_a_post_is_resent_only_when_it_was_not_processed() {
    use http_resilience::retry::KeySupport;
    let keys_ignored = || layer().key_support(KeySupport::Ignored);

    // 500 after the job was created: sent once, one job.
    let upstream = Upstream::new(vec![status(500), status(200)]);
    let response = upstream
        .client(keys_ignored())
        .oneshot(post(Some("k-1")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(attempts_of(&response).stopped(), StopReason::NotIdempotent);
    assert_eq!(upstream.seen().len(), 1);

    // A 503 without a wait proves nothing: proxies answer it after forwarding.
    let upstream = Upstream::new(vec![status(503), status(200)]);
    let response = upstream
        .client(keys_ignored())
        .oneshot(post(Some("k-1")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.seen().len(), 1);

    // Where keys are honoured (the default), the keyed 500 is sent again.
    let upstream = Upstream::new(vec![status(500), status(200)]);
    let response = upstream
        .client(layer())
        .oneshot(post(Some("k-1")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.seen().len(), 2);

    // Refused before any work, or never connected: sent again, keyed or not, under both.
    for support in [KeySupport::Ignored, KeySupport::Honoured] {
        for key in [Some("k-3"), None] {
            for refusal in [
                status(429),
                status(529),
                with_header(503, "retry-after", "1"),
                Answer::Refused,
            ] {
                let upstream = Upstream::new(vec![refusal, status(200)]);
                let response = upstream
                    .client(layer().key_support(support))
                    .oneshot(post(key))
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{support:?} {key:?}");
                assert_eq!(upstream.seen().len(), 2);
            }
        }
    }

    // An attempt timeout proves nothing: the job may be running.
    let upstream = Upstream::new(vec![Answer::Hang, status(200)]);
    let error = upstream
        .client(keys_ignored().attempt_timeout(secs(5)))
        .oneshot(post(Some("k-2")))
        .await
        .unwrap_err();
    assert_eq!(error.attempts().stopped(), StopReason::NotIdempotent);
    assert_eq!(upstream.seen().len(), 1);
}

/// A random source that replays a fixed sequence, cycling: jitter made predictable.
#[derive(Debug)]
struct SequenceRandom {
    values: Vec<f64>,
    next: std::sync::atomic::AtomicUsize,
}

impl SequenceRandom {
    fn new(values: Vec<f64>) -> Self {
        SequenceRandom {
            values,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl http_resilience::retry::RandomSource for SequenceRandom {
    fn next_unit(&self) -> f64 {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.values[n % self.values.len()]
    }
}

/// A client that fails to become ready.
#[derive(Clone)]
struct NeverReady;

impl tower::Service<Request<Empty<Bytes>>> for NeverReady {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Err(std::io::Error::other("pool closed")))
    }

    fn call(&mut self, _req: Request<Empty<Bytes>>) -> Self::Future {
        unreachable!("never ready, never called")
    }
}

/// A readiness failure is reported as what it is, not as a verdict on an answer that never came.
#[tokio::test(start_paused = true)]
async fn a_readiness_failure_stops_as_service_not_ready() {
    let mut client = ServiceBuilder::new().layer(layer()).service(NeverReady);
    let error = std::future::poll_fn(|cx| tower::Service::poll_ready(&mut client, cx))
        .await
        .unwrap_err();
    assert_eq!(error.attempts().stopped(), StopReason::ServiceNotReady);
    assert_eq!(error.attempts().count(), 0);
}

/// Every source of a wait prints a name of its own.
#[test]
fn wait_hint_sources_print_distinct_names() {
    use http_resilience::retry::WaitHintSource::*;
    let names: std::collections::HashSet<String> = [
        RetryAfterMs,
        RetryAfter,
        Body,
        RateLimitReset,
        OpenAiReset,
        AnthropicReset,
        XRateLimitReset,
        Pacer,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names.len(), 8);
}
