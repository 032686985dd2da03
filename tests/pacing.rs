//! The pacer, in paused time: each header family, the shared cooldown, the deadline rule, the
//! overload breaker, token costs, and a server that announces nothing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::provider::{Provider, Style};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use http_resilience::pacing::{BreakerState, Pacer, TokenCost};
use http_resilience::retry::{RetryBudget, RetryErrorCause, WaitHintSource};
use http_resilience::{Attempts, ResilienceLayer, RetryError, ServiceBuilderExt, StopReason};
use tokio::time::Instant;
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};

use common::{paced_client as client, paced_get as get, PacedClient as Client};

/// `callers` callers each send `each` requests back to back; returns the logical requests that
/// did not end in a 200.
async fn run(client: &Client, callers: usize, each: usize) -> usize {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut failed = 0;
                for _ in 0..each {
                    match client.clone().oneshot(get()).await {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        _ => failed += 1,
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap();
    }
    failed
}

/// 8 callers, 40 requests each, against 60 a minute: the first 60 go at once (the bucket is
/// full), the other 260 one a second. Paced, none meets a 429 after the first answer.
async fn paces_family(style: Style) {
    let provider = Provider::new(style, 60.0, 1e9);
    let client = client(&provider, ResilienceLayer::new());
    let start = Instant::now();
    let failed = run(&client, 8, 40).await;
    let elapsed = start.elapsed().as_secs_f64();
    let seconds = provider.seconds();
    let ok: u32 = seconds.iter().map(|s| s.ok).sum();
    let limited: u32 = seconds.iter().map(|s| s.limited).sum();
    assert_eq!(failed, 0, "{style:?}");
    assert_eq!(ok, 320, "{style:?}");
    // At most 1% of attempts answered 429.
    assert!(
        limited * 100 <= ok + limited,
        "{style:?}: {limited} of {} attempts answered 429",
        ok + limited
    );
    // Goodput: 260 requests beyond the first 60 at one a second, within 5%.
    assert!(
        (260.0..=260.0 / 0.95).contains(&elapsed),
        "{style:?}: {elapsed} s"
    );
}

#[tokio::test(start_paused = true)]
async fn paces_openai_headers() {
    paces_family(Style::OpenAi).await;
}

#[tokio::test(start_paused = true)]
async fn paces_anthropic_headers() {
    paces_family(Style::Anthropic).await;
}

#[tokio::test(start_paused = true)]
async fn paces_ietf_headers() {
    paces_family(Style::Ietf).await;
}

#[tokio::test(start_paused = true)]
async fn paces_x_ratelimit_headers() {
    paces_family(Style::XRateLimit).await;
}

/// Without the pacer the same run collects 429s: what the pacer is for.
#[tokio::test(start_paused = true)]
async fn without_pacing_the_same_run_meets_429s() {
    let provider = Provider::new(Style::OpenAi, 60.0, 1e9);
    let layer = ResilienceLayer::new()
        .without_pacing()
        .max_attempts(6)
        .deadline(Duration::from_secs(600));
    let client = client(&provider, layer);
    run(&client, 8, 40).await;
    let limited: u32 = provider.seconds().iter().map(|s| s.limited).sum();
    assert!(limited > 50, "{limited}");
}

/// A halved limit is followed from the next answer on.
#[tokio::test(start_paused = true)]
async fn follows_a_halved_limit() {
    let provider = Provider::new(Style::OpenAi, 120.0, 1e9);
    let pacer = Pacer::new();
    let client = client(
        &provider,
        ResilienceLayer::new()
            .pacer(pacer.clone())
            .deadline(Duration::from_secs(600)),
    );
    assert_eq!(run(&client, 8, 30).await, 0);
    provider.set_limits(60.0, 1e9);
    provider.reset_log();
    assert_eq!(run(&client, 8, 30).await, 0);
    let seconds = provider.seconds();
    let limited: u32 = seconds.iter().map(|s| s.limited).sum();
    assert!(limited <= 3, "{limited} answered 429 after the halving");
    let state = &pacer.scopes()[0];
    assert_eq!(state.limits()[0].limit(), Some(60.0));
    let rate = state.limits()[0].refill_per_second().unwrap();
    assert!((rate - 1.0).abs() < 1e-6, "{rate}");
    assert_eq!(state.origin(), Some("https://api.example.com"));
}

/// A server that announces nothing: nothing waits and the pacer keeps no state.
#[tokio::test(start_paused = true)]
async fn a_silent_server_costs_no_wait_and_no_state() {
    let provider = Provider::new(Style::Silent, 1e9, 1e9);
    let pacer = Pacer::new();
    let client = client(&provider, ResilienceLayer::new().pacer(pacer.clone()));
    let start = Instant::now();
    assert_eq!(run(&client, 4, 50).await, 0);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(pacer.scopes().is_empty());
}

/// State is bounded: scopes beyond the cap evict the least recently used idle one.
#[tokio::test(start_paused = true)]
async fn scopes_are_bounded() {
    let provider = Provider::new(Style::OpenAi, 1e6, 1e9);
    let pacer = Pacer::new().max_scopes(4);
    let client = client(&provider, ResilienceLayer::new().pacer(pacer.clone()));
    for key in 0..50 {
        let request = Request::get("https://api.example.com/v1/models")
            .header("authorization", format!("Bearer sk-key-{key:04}"))
            .body(Full::default())
            .unwrap();
        client.clone().oneshot(request).await.unwrap();
    }
    let scopes = pacer.scopes();
    assert_eq!(scopes.len(), 4);
    // Fingerprints only: no credential in what the pacer shows.
    assert!(!format!("{scopes:?}").contains("sk-key"));
}

/// A scripted upstream: answers in order, and the instants requests arrived.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<Vec<Response<Full<Bytes>>>>>,
    arrivals: Arc<Mutex<Vec<Duration>>>,
}

impl Script {
    fn new(answers: Vec<Response<Full<Bytes>>>) -> Self {
        Script {
            answers: Arc::new(Mutex::new(answers.into_iter().rev().collect())),
            arrivals: Arc::default(),
        }
    }

    fn client(&self, layer: ResilienceLayer, start: Instant) -> Client {
        self.client_inside(layer, start, 1 << 20)
    }

    /// The client with a concurrency limit between the stack and the upstream. An answer of
    /// status 599 never comes: the upstream hangs.
    fn client_inside(&self, layer: ResilienceLayer, start: Instant, concurrency: usize) -> Client {
        let script = self.clone();
        let upstream = service_fn(move |_request: Request<Full<Bytes>>| {
            script.arrivals.lock().unwrap().push(start.elapsed());
            let response = script
                .answers
                .lock()
                .unwrap()
                .pop()
                .unwrap_or_else(|| answer(200, &[]));
            async move {
                if response.status().as_u16() == 599 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let service = ServiceBuilder::new()
            .resilience(layer)
            .concurrency_limit(concurrency)
            .service(upstream)
            .map_err(BoxError::from);
        tower::util::BoxCloneService::new(service)
    }

    fn arrivals(&self) -> Vec<Duration> {
        self.arrivals.lock().unwrap().clone()
    }
}

fn answer(status: u16, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A 429 with a wait, told to one request, holds every new request of the scope for that wait
/// (one cooldown, not one 429 each), and the retry after it does not draw on the budget.
#[tokio::test(start_paused = true)]
async fn a_wait_told_to_one_is_told_to_the_scope() {
    let start = Instant::now();
    let script = Script::new(vec![answer(429, &[("retry-after", "5")])]);
    let no_budget = RetryBudget::new(secs(10), 0, 0.0);
    let client = script.client(ResilienceLayer::new().budget(no_budget), start);
    let first = tokio::spawn(client.clone().oneshot(get()));
    tokio::time::sleep(secs(1)).await;
    let second = client.clone().oneshot(get()).await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let stopped = first.extensions().get::<Attempts>().unwrap().stopped();
    assert_eq!(
        stopped,
        StopReason::Succeeded,
        "retried though the budget is empty"
    );
    // The first at 0 s, then both at 5 s: the second request was not sent into the cooldown.
    assert_eq!(script.arrivals(), [secs(0), secs(5), secs(5)]);
}

/// A turn past the deadline fails at once, sends nothing, and says how long the wait would be.
#[tokio::test(start_paused = true)]
async fn a_turn_past_the_deadline_fails_at_once() {
    let start = Instant::now();
    let exhausted = [
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1m0s"),
    ];
    let script = Script::new(vec![answer(200, &exhausted), answer(200, &exhausted)]);
    let client = script.client(ResilienceLayer::new().deadline(secs(10)), start);
    client.clone().oneshot(get()).await.unwrap();
    // One a second: the next goes after 1 s, within the deadline.
    client.clone().oneshot(get()).await.unwrap();
    assert_eq!(start.elapsed(), secs(1));
    // Twenty callers queue at once: turns 1 s apart. The nine within 1..=9 s wait; the eleven
    // whose turn comes at or after their 10 s deadline fail at once.
    let calls: Vec<_> = (0..20).map(|_| client.clone().oneshot(get())).collect();
    let results = futures_util::future::join_all(calls).await;
    let refused: Vec<&RetryError> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.downcast_ref::<RetryError>().unwrap())
        .collect();
    assert_eq!(refused.len(), 11);
    for error in &refused {
        assert!(matches!(error.cause(), RetryErrorCause::PacingWait(_)));
        assert_eq!(error.attempts().count(), 0, "nothing was sent");
        assert_eq!(error.attempts().stopped(), StopReason::WaitTooLong);
        let hint = error.attempts().wait_hint().unwrap();
        assert_eq!(hint.source(), WaitHintSource::Pacer);
        assert!(hint.delay() >= secs(10), "{hint:?}");
    }
    assert_eq!(script.arrivals().len(), 2 + 9);
    assert_eq!(start.elapsed(), secs(1 + 9));
}

/// Three overloads in a row open the breaker: the scope waits 1 s, then one probe goes alone;
/// its overload reopens the breaker for twice as long, and the next probe's success closes it.
#[tokio::test(start_paused = true)]
async fn repeated_overloads_open_the_breaker_for_one_probe() {
    let start = Instant::now();
    let script = Script::new(vec![answer(529, &[]); 4]);
    let pacer = Pacer::new();
    let layer = ResilienceLayer::new().pacer(pacer.clone()).max_attempts(1);
    let client = script.client(layer, start);
    for _ in 0..3 {
        assert_eq!(client.clone().oneshot(get()).await.unwrap().status(), 529);
    }
    assert_eq!(pacer.scopes()[0].breaker(), BreakerState::Open(secs(1)));
    let calls: Vec<_> = (0..3).map(|_| client.clone().oneshot(get())).collect();
    let mut statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 529]);
    assert_eq!(pacer.scopes()[0].breaker(), BreakerState::Closed);
    // The failed probe alone at 1 s; the next probe and the last request at 3 s.
    let arrivals = script.arrivals();
    assert_eq!(arrivals, [0, 0, 0, 1, 3, 3].map(secs));
}

/// Token costs are taken from the token limit: 100-token requests against 600 tokens a
/// minute go one every 10 s, and none meets a 429.
#[tokio::test(start_paused = true)]
async fn token_costs_pace_against_the_token_limit() {
    let provider = Provider::new(Style::OpenAi, 1e4, 600.0);
    let layer = ResilienceLayer::new().max_server_wait(secs(3600));
    let client = client(&provider, layer);
    let start = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..16 {
        let mut request = get();
        request.extensions_mut().insert(TokenCost::new(100));
        calls.push(client.clone().oneshot(request));
    }
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.unwrap().status(), 200);
    }
    let limited: u32 = provider.seconds().iter().map(|s| s.limited).sum();
    assert!(limited <= 1, "{limited}");
    // Six at once from the full bucket, then ten at one per 10 s.
    let elapsed = start.elapsed().as_secs_f64();
    assert!((100.0..=106.0).contains(&elapsed), "{elapsed}");
}

/// A clone of the service, polled ready and then called, works with a waiting first attempt.
#[tokio::test(start_paused = true)]
async fn a_waiting_first_attempt_keeps_the_ready_service() {
    let start = Instant::now();
    let exhausted = [
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1m0s"),
    ];
    let script = Script::new(vec![answer(200, &exhausted)]);
    let mut client = script.client(ResilienceLayer::new(), start);
    client.clone().oneshot(get()).await.unwrap();
    let future = client.ready().await.unwrap().call(get());
    assert_eq!(future.await.unwrap().status(), 200);
    assert_eq!(script.arrivals(), [Duration::ZERO, secs(1)]);
}

/// The same pacing end to end, through both stacks, against a provider on 127.0.0.1: hyper-util
/// under the tower stack and reqwest under the middleware. Each request carries its token cost
/// as the extension (set with reqwest-middleware's `with_extension`), and the token limit is the
/// one that binds: 56-token requests against 6,000 tokens a minute is 1.79 a second, under the
/// 2 a second the request limit allows.
#[cfg(feature = "reqwest")]
#[tokio::test(start_paused = true)]
async fn paces_tokens_end_to_end_through_both_stacks() {
    use http_body_util::BodyExt;
    use http_resilience::reqwest::ResilienceMiddleware;

    const BODY: &str = r#"{"max_tokens":40,"messages":[{"role":"user","content":"hi"}]}"#;
    let cost = TokenCost::estimate_json(BODY.as_bytes());
    assert_eq!(cost.get(), 40 + (BODY.len() as u64).div_ceil(4));
    for middleware in [false, true] {
        let provider = Provider::new(Style::OpenAi, 120.0, 6_000.0);
        let served = provider.clone();
        let addr = common::spawn_server(move |request: Request<hyper::body::Incoming>| {
            let provider = served.clone();
            async move {
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let response = provider.answer(TokenCost::estimate_json(&body).get() as f64);
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                Response::from_parts(parts, common::full(bytes))
            }
        })
        .await;
        let url = format!("http://{addr}/v1/chat/completions");
        let reqwest_client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ResilienceMiddleware::new(ResilienceLayer::new()))
            .build();
        let hyper_client = ServiceBuilder::new()
            .resilience(ResilienceLayer::new())
            .service(common::hyper_client::<Full<Bytes>>());
        let start = Instant::now();
        let callers = (0..8).map(|_| {
            let (url, reqwest_client, hyper_client) =
                (url.clone(), reqwest_client.clone(), hyper_client.clone());
            async move {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let status = if middleware {
                        let response = reqwest_client
                            .post(&url)
                            .with_extension(cost)
                            .body(BODY)
                            .send()
                            .await
                            .unwrap();
                        response.status().as_u16()
                    } else {
                        let request = Request::post(&url)
                            .extension(cost)
                            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                            .unwrap();
                        let response = hyper_client.clone().oneshot(request).await.unwrap();
                        response.status().as_u16()
                    };
                    statuses.push(status);
                }
                statuses
            }
        });
        let statuses: Vec<u16> = futures_util::future::join_all(callers)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "middleware: {middleware}"
        );
        let limited: u32 = provider.seconds().iter().map(|s| s.limited).sum();
        assert!(
            limited <= 2,
            "middleware: {middleware}: {limited} answered 429"
        );
        // 107 at once from the full token bucket, the other 93 at 100 tokens a second.
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            (51.0..=55.0).contains(&elapsed),
            "middleware: {middleware}: {elapsed} s"
        );
    }
}

/// With the `metrics` feature, the pacer publishes its state: the announced limit, what is
/// left, the line, and each wait, labelled by host and limit only.
#[cfg(feature = "metrics")]
#[test]
fn publishes_its_state_as_metrics() {
    use metrics_util::debugging::DebugValue;

    let snapshot = common::record_metrics(|| async {
        let provider = Provider::new(Style::OpenAi, 60.0, 1e9);
        let client = client(&provider, ResilienceLayer::new());
        assert_eq!(run(&client, 4, 20).await, 0);
    })
    .into_vec();
    let find = |name: &str| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| key.key().name() == name)
            .unwrap_or_else(|| panic!("{name} not published"))
    };
    let (key, _, _, value) = find("http_resilience.pacer.limit");
    let labels: Vec<(&str, &str)> = key.key().labels().map(|l| (l.key(), l.value())).collect();
    assert_eq!(
        labels,
        [("server.address", "api.example.com"), ("limit", "requests")]
    );
    assert!(matches!(value, DebugValue::Gauge(v) if v.0 == 60.0));
    let (_, _, _, waits) = find("http_resilience.pacer.wait");
    let DebugValue::Histogram(waits) = waits else {
        panic!("{waits:?}")
    };
    // 80 requests against 60 a minute: the 20 beyond the first 60 waited.
    assert_eq!(waits.len(), 20);
    for name in [
        "http_resilience.pacer.remaining",
        "http_resilience.pacer.queued",
        "http_resilience.pacer.in_flight",
        "http_resilience.pacer.cooldown",
    ] {
        find(name);
    }
    assert!(!format!("{snapshot:?}").contains("sk-test"));
}

/// Requests waiting for the breaker's probe hold no slot of a concurrency limit inside the
/// stack: callers that polled the client ready, then waited their turn, all complete.
#[tokio::test(start_paused = true)]
async fn waiting_turns_hold_no_concurrency_slot() {
    let start = Instant::now();
    let script = Script::new(vec![answer(529, &[]); 3]);
    let layer = ResilienceLayer::new().max_attempts(1);
    let client = script.client_inside(layer, start, 2);
    for _ in 0..3 {
        client.clone().oneshot(get()).await.unwrap();
    }
    // The breaker is open: each caller polls ready (taking a slot) and calls; all wait.
    let calls = (0..4).map(|_| {
        let mut client = client.clone();
        async move {
            let ready = client.ready().await.unwrap();
            ready.call(get()).await.unwrap().status()
        }
    });
    let all = futures_util::future::join_all(calls);
    let statuses = tokio::time::timeout(secs(60), all)
        .await
        .expect("no deadlock");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// A probe that never answers does not hold its scope forever: after the probe's lease (30 s)
/// another request probes, and the line moves on.
#[tokio::test(start_paused = true)]
async fn a_probe_that_never_answers_is_replaced_after_its_lease() {
    let start = Instant::now();
    // Three overloads, then the probe hangs.
    let script = Script::new(vec![
        answer(529, &[]),
        answer(529, &[]),
        answer(529, &[]),
        answer(599, &[]),
    ]);
    let client = script.client(ResilienceLayer::new().max_attempts(1), start);
    for _ in 0..3 {
        client.clone().oneshot(get()).await.unwrap();
    }
    let _hanging = tokio::spawn(client.clone().oneshot(get()));
    tokio::time::sleep(secs(2)).await;
    let response = tokio::time::timeout(secs(120), client.clone().oneshot(get()))
        .await
        .expect("the line moved")
        .unwrap();
    assert_eq!(response.status(), 200);
    let arrivals = script.arrivals();
    // The hanging probe at 1 s; the next probe once its lease ran out, 30 s later.
    assert_eq!(arrivals[3], secs(1));
    assert_eq!(arrivals[4], secs(31));
}

/// No breaker setting panics: durations too long to represent open it "forever" and a failed
/// probe does not overflow doubling them.
#[tokio::test(start_paused = true)]
async fn extreme_breaker_settings_do_not_panic() {
    let start = Instant::now();
    let script = Script::new(vec![answer(503, &[]); 6]);
    let pacer = Pacer::new().overload_breaker(1, Duration::MAX, Duration::MAX);
    let layer = ResilienceLayer::new()
        .pacer(pacer)
        .max_attempts(1)
        .deadline(secs(5));
    let client = script.client(layer, start);
    for _ in 0..4 {
        let _ = client.clone().oneshot(get()).await;
    }
}

/// A retry waiting out its backoff when another request of its scope is told to wait is held
/// by that wait too: it is not sent into the cooldown.
#[tokio::test(start_paused = true)]
async fn a_retry_in_backoff_waits_for_a_cooldown_told_meanwhile() {
    use http_resilience::retry::{Backoff, Jitter};

    let start = Instant::now();
    let script = Script::new(vec![
        answer(500, &[]),
        answer(429, &[("retry-after", "20")]),
    ]);
    let layer = ResilienceLayer::new().backoff(Backoff::new(secs(2), secs(2)).jitter(Jitter::None));
    let client = script.client(layer, start);
    // The scope is known to the pacer once it has been told something.
    let first = tokio::spawn(client.clone().oneshot(get()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = client.clone().oneshot(get()).await.unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    assert_eq!(second.status(), 200);
    let arrivals = script.arrivals();
    assert_eq!(arrivals[..2], [secs(0), Duration::from_millis(500)]);
    // Neither retry went before the cooldown ended at 20.5 s.
    assert!(
        arrivals[2..]
            .iter()
            .all(|at| *at >= Duration::from_millis(20_500)),
        "{arrivals:?}"
    );
}

/// Each origin keeps its own pace under the reqwest middleware, as under the tower stack: a
/// server that says its limit is spent holds its own next request, never one to another server.
/// (Before, the middleware did not hand the URL to the stack unless something else asked for
/// it, and every origin shared one scope.)
#[cfg(feature = "reqwest")]
#[tokio::test(start_paused = true)]
async fn a_limit_one_origin_announces_does_not_hold_another_under_the_middleware() {
    let spent = announcing_server(1, 0).await;
    let other = common::spawn_server(|_| async { Response::new(common::full("{}")) }).await;
    let client = middleware_client(ResilienceLayer::new());
    let send = |addr: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            let start = Instant::now();
            let response = client
                .get(format!("http://{addr}/v1/models"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            start.elapsed()
        }
    };
    assert!(send(spent).await < secs(1));
    let waited = send(other).await;
    assert!(waited < secs(1), "the other origin waited {waited:?}");
    // The origin that announced it is held until its reset.
    let waited = send(spent).await;
    assert!(
        waited >= secs(50),
        "the spent origin waited only {waited:?}"
    );
}

/// A `scope_by` function sees the request's whole URI under the reqwest middleware, as under
/// the tower stack (the middleware hands the default pacer only the origin, which is all it
/// reads).
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn a_scope_function_sees_the_whole_uri_under_the_middleware() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let pacer = Pacer::new().scope_by(move |head, scope| {
        recorded.lock().unwrap().push((
            head.uri().host().map(str::to_owned),
            head.uri().path().to_owned(),
            head.uri().query().map(str::to_owned),
        ));
        scope.add_origin(head.uri());
    });
    // The pacer reads scopes once a server has announced a limit.
    let addr = announcing_server(100, 99).await;
    let client = middleware_client(ResilienceLayer::new().pacer(pacer));
    for _ in 0..2 {
        let response = client
            .get(format!("http://{addr}/v1/models/flux?page=2"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|(host, path, query)| host.as_deref() == Some("127.0.0.1")
                && path == "/v1/models/flux"
                && query.as_deref() == Some("page=2")),
        "{seen:?}"
    );
}

/// A server on 127.0.0.1 that answers every request 200, announcing `limit` requests a minute
/// with `remaining` left until a reset 60 s away.
#[cfg(feature = "reqwest")]
async fn announcing_server(limit: u32, remaining: u32) -> std::net::SocketAddr {
    common::spawn_server(move |_| async move {
        Response::builder()
            .header("x-ratelimit-limit-requests", limit.to_string())
            .header("x-ratelimit-remaining-requests", remaining.to_string())
            .header("x-ratelimit-reset-requests", "60s")
            .body(common::full("{}"))
            .unwrap()
    })
    .await
}

/// A reqwest-middleware client running `layer`.
#[cfg(feature = "reqwest")]
fn middleware_client(layer: ResilienceLayer) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(http_resilience::reqwest::ResilienceMiddleware::new(layer))
        .build()
}

/// The origin a scope reports is scheme, host and port: never the user-info a URL carries,
/// through the tower stack or the middleware.
#[tokio::test]
async fn a_scope_reports_its_origin_without_the_user_info() {
    let start = Instant::now();
    let announcing = [
        ("x-ratelimit-limit-requests", "100"),
        ("x-ratelimit-remaining-requests", "99"),
        ("x-ratelimit-reset-requests", "60s"),
    ];
    let script = Script::new(vec![answer(200, &announcing)]);
    let pacer = Pacer::new();
    let mut client = script.client(ResilienceLayer::new().pacer(pacer.clone()), start);
    let request = Request::get("https://user:hunter2-pass@api.example.com:8443/v1/models")
        .body(Full::default())
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let scopes = pacer.scopes();
    assert_eq!(scopes[0].origin(), Some("https://api.example.com:8443"));
    assert!(!format!("{scopes:?}").contains("hunter2"), "{scopes:?}");

    #[cfg(feature = "reqwest")]
    {
        let addr = announcing_server(100, 99).await;
        let pacer = Pacer::new();
        let client = middleware_client(ResilienceLayer::new().pacer(pacer.clone()));
        let response = client
            .get(format!("http://user:hunter2-pass@{addr}/v1/models"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let scopes = pacer.scopes();
        assert_eq!(scopes[0].origin(), Some(format!("http://{addr}").as_str()));
        assert!(!format!("{scopes:?}").contains("hunter2"), "{scopes:?}");
    }
}
