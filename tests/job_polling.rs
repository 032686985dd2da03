//! Asynchronous jobs end to end: hyper servers on 127.0.0.1:0 that emulate a queue protocol
//! (seed 004, fal), a Replicate-style prediction, a task API that reports failures under 200
//! (seeds 001 and 002) and a status endpoint that rate-limits its polls, polled in paused time
//! through the standard stack.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{drain, full, hyper_client, spawn_server, ServerBody};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use http_resilience::jobs::{
    JobEnding, JobError, JobHandle, JobPoller, QueueStatus, ReplicateStatus, TaskStatus,
};
use http_resilience::{ErrorKind, ResilienceLayer, ServiceBuilderExt};
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::ServiceBuilder;

type Client = http_resilience::Resilient<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
>;

fn client() -> Client {
    ServiceBuilder::new()
        .resilience(ResilienceLayer::new())
        .service(hyper_client::<Full<Bytes>>())
}

fn json(status: u16, body: impl Into<String>) -> Response<ServerBody> {
    traced(status, "srv-trace", body)
}

/// A JSON answer with its own trace id.
fn traced(status: u16, trace: &str, body: impl Into<String>) -> Response<ServerBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", trace)
        .body(full(body.into()))
        .unwrap()
}

/// What a server saw: each request's method, path, time and idempotency key, and whether it
/// carried credentials.
#[derive(Default)]
struct Log {
    requests: Vec<(String, String, Instant, Option<String>)>,
    authorized: Vec<bool>,
}

impl Log {
    fn record(&mut self, request: &Request<Incoming>) {
        self.authorized
            .push(request.headers().contains_key("authorization"));
        self.requests.push((
            request.method().to_string(),
            request.uri().path().to_owned(),
            Instant::now(),
            request
                .headers()
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ));
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests
            .iter()
            .filter(|(m, p, _, _)| m == method && p == path)
            .count()
    }
}

/// Seed 004's queue: the status URL 404s at first (the job not yet visible), then reports
/// `IN_QUEUE`, `IN_PROGRESS` twice and `COMPLETED`; the result URL answers 202 once, then the
/// result. `fail` makes the `COMPLETED` answer carry an error.
async fn queue_server(log: Arc<Mutex<Log>>, fail: bool) -> std::net::SocketAddr {
    let polls = Arc::new(Mutex::new(0u32));
    let results = Arc::new(Mutex::new(0u32));
    spawn_server(move |request: Request<Incoming>| {
        let log = Arc::clone(&log);
        let polls = Arc::clone(&polls);
        let results = Arc::clone(&results);
        async move {
            log.lock().unwrap().record(&request);
            let authorized = request.headers().get("authorization").is_some();
            match (request.method().as_str(), request.uri().path()) {
                _ if !authorized => json(401, r#"{"error":{"code":"UNAUTHORIZED","message":"Authorization Bearer or Key token is required"}}"#),
                ("POST", "/v1/queue/flux") => json(
                    200,
                    r#"{"status":"IN_QUEUE","request_id":"r1","status_url":"/v1/queue/flux/requests/r1/status","response_url":"/v1/queue/flux/requests/r1","cancel_url":"/v1/queue/flux/requests/r1/cancel"}"#,
                ),
                ("GET", "/v1/queue/flux/requests/r1/status") => {
                    let n = {
                        let mut polls = polls.lock().unwrap();
                        *polls += 1;
                        *polls
                    };
                    match n {
                        1 => json(404, r#"{"detail":"Request not found"}"#),
                        2 => json(202, r#"{"status":"IN_QUEUE","queue_position":3}"#),
                        3 | 4 => json(202, r#"{"status":"IN_PROGRESS"}"#),
                        _ if fail => json(200, r#"{"status":"COMPLETED","error":"Runtime execution failed"}"#),
                        _ => json(200, r#"{"status":"COMPLETED","error":null}"#),
                    }
                }
                ("GET", "/v1/queue/flux/requests/r1") => {
                    let n = {
                        let mut results = results.lock().unwrap();
                        *results += 1;
                        *results
                    };
                    if n == 1 {
                        json(202, r#"{"detail":"Request is still in progress"}"#)
                    } else {
                        traced(200, "srv-result", r#"{"images":[{"url":"https://cdn.example.com/cat.png"}]}"#)
                    }
                }
                _ => json(404, r#"{"detail":"Not Found"}"#),
            }
        }
    })
    .await
}

fn create(addr: std::net::SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header("authorization", "Key test-key")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(r#"{"prompt":"a cat astronaut"}"#)))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_queued_job_is_polled_to_its_result_through_404_and_202() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = queue_server(Arc::clone(&log), false).await;
    let poller = JobPoller::new(client()).reader(QueueStatus);

    let outcome = poller
        .create_and_wait(create(addr, "/v1/queue/flux"))
        .await
        .unwrap();
    assert_eq!(outcome.job_id(), Some("r1"));
    assert!(outcome.create_ids().unwrap().idempotency_key().is_some());
    assert_eq!(outcome.create_trace_id().unwrap().as_str(), "srv-trace");
    assert_eq!(outcome.last_trace_id().unwrap().as_str(), "srv-result");
    assert_eq!(outcome.create_attempts().unwrap().count(), 1);
    // Five status polls (404, IN_QUEUE, IN_PROGRESS twice, COMPLETED) and two result fetches.
    assert_eq!(outcome.polls(), 7, "{outcome:?}");
    let JobEnding::Succeeded(result) = outcome.into_ending() else {
        panic!("not a success")
    };
    assert_eq!(result.status(), StatusCode::OK);
    let (bytes, _, _) = drain(result.into_body()).await;
    assert_eq!(
        bytes,
        br#"{"images":[{"url":"https://cdn.example.com/cat.png"}]}"#
    );

    let log = log.lock().unwrap();
    assert_eq!(log.count("POST", "/v1/queue/flux"), 1, "created once");
    assert_eq!(log.count("GET", "/v1/queue/flux/requests/r1/status"), 5);
    assert_eq!(log.count("GET", "/v1/queue/flux/requests/r1"), 2);
    // Every request carried the caller's credentials, copied from the create request.
    assert!(log.authorized.iter().all(|sent| *sent));
    // Polls are spaced by the bounded, jittered backoff: at least half a second apart, at
    // most ten seconds.
    let status_times: Vec<Instant> = log
        .requests
        .iter()
        .filter(|(_, path, _, _)| path.ends_with("/status"))
        .map(|(_, _, at, _)| *at)
        .collect();
    for pair in status_times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(500) && gap <= Duration::from_secs(10),
            "{gap:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_completed_answer_with_an_error_is_a_failure_and_the_result_is_never_fetched() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = queue_server(Arc::clone(&log), true).await;
    let poller = JobPoller::new(client()).reader(QueueStatus);

    let outcome = poller
        .create_and_wait(create(addr, "/v1/queue/flux"))
        .await
        .unwrap();
    let JobEnding::Failed(classification) = outcome.ending() else {
        panic!("{outcome:?}")
    };
    assert_eq!(classification.message(), Some("Runtime execution failed"));
    assert_eq!(
        log.lock()
            .unwrap()
            .count("GET", "/v1/queue/flux/requests/r1"),
        0
    );
}

/// A Replicate-style prediction: `starting`, `processing`, then `succeeded` with its output,
/// or `canceled` once the cancel URL was called.
async fn prediction_server(log: Arc<Mutex<Log>>) -> std::net::SocketAddr {
    let state = Arc::new(Mutex::new((0u32, false)));
    spawn_server(move |request: Request<Incoming>| {
        let log = Arc::clone(&log);
        let state = Arc::clone(&state);
        async move {
            log.lock().unwrap().record(&request);
            let host = request
                .headers()
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let urls = format!(
                r#""urls":{{"get":"http://{host}/v1/predictions/p1","cancel":"http://{host}/v1/predictions/p1/cancel"}}"#
            );
            let mut state = state.lock().unwrap();
            match (request.method().as_str(), request.uri().path()) {
                ("POST", "/v1/predictions") => {
                    json(201, format!(r#"{{"id":"p1","status":"starting",{urls}}}"#))
                }
                ("POST", "/v1/predictions/p1/cancel") => {
                    state.1 = true;
                    json(200, format!(r#"{{"id":"p1","status":"canceled",{urls}}}"#))
                }
                ("GET", "/v1/predictions/p1") => {
                    state.0 += 1;
                    if state.1 {
                        json(200, format!(r#"{{"id":"p1","status":"canceled",{urls}}}"#))
                    } else if state.0 < 3 {
                        json(200, format!(r#"{{"id":"p1","status":"processing",{urls}}}"#))
                    } else {
                        json(
                            200,
                            format!(
                                r#"{{"id":"p1","status":"succeeded","output":["https://replicate.delivery/out.png"],"error":null,{urls}}}"#
                            ),
                        )
                    }
                }
                _ => json(404, r#"{"detail":"Not found."}"#),
            }
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_prediction_is_its_own_result() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = prediction_server(Arc::clone(&log)).await;
    let poller = JobPoller::new(client()).reader(ReplicateStatus);
    let outcome = poller
        .create_and_wait(create(addr, "/v1/predictions"))
        .await
        .unwrap();
    assert_eq!(outcome.job_id(), Some("p1"));
    assert_eq!(outcome.polls(), 3);
    let JobEnding::Succeeded(result) = outcome.into_ending() else {
        panic!("not a success")
    };
    let (bytes, _, _) = drain(result.into_body()).await;
    assert!(std::str::from_utf8(&bytes)
        .unwrap()
        .contains("replicate.delivery/out.png"));
}

#[tokio::test(start_paused = true)]
async fn an_explicit_cancel_calls_the_cancel_url_and_the_job_ends_canceled() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = prediction_server(Arc::clone(&log)).await;
    let poller = JobPoller::new(client()).reader(ReplicateStatus);
    let http_resilience::jobs::Created::Pending(mut handle) = poller
        .create(create(addr, "/v1/predictions"))
        .await
        .unwrap()
    else {
        panic!("the prediction is pending")
    };
    assert!(poller.cancel(&handle).await.unwrap());
    let outcome = poller.wait(&mut handle).await.unwrap();
    assert!(
        matches!(outcome.ending(), JobEnding::Canceled),
        "{outcome:?}"
    );
    assert_eq!(
        log.lock()
            .unwrap()
            .count("POST", "/v1/predictions/p1/cancel"),
        1
    );
}

/// A task API in the style of seeds 001 and 002: the task fails under HTTP 200.
async fn task_server(log: Arc<Mutex<Log>>, answer: &'static str) -> std::net::SocketAddr {
    spawn_server(move |request: Request<Incoming>| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().record(&request);
            match (request.method().as_str(), request.uri().path()) {
                ("POST", "/v1/tasks") => json(200, r#"{"success":true,"task_id":"t1"}"#),
                ("GET", "/v1/tasks/t1") => json(200, answer),
                _ => json(404, r#"{"error":{"code":"not_found_error"}}"#),
            }
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_task_failing_under_200_is_terminal_and_not_retried() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = task_server(
        Arc::clone(&log),
        r#"{"task_id":"t1","status":"failed","error":{"code":"timeout","message":"The task timed out"}}"#,
    )
    .await;
    let poller = JobPoller::new(client())
        .reader(TaskStatus)
        .status_url_template("/v1/tasks/{id}");
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    let JobEnding::Failed(classification) = outcome.ending() else {
        panic!("{outcome:?}")
    };
    assert_eq!(classification.kind(), Some(ErrorKind::Timeout));
    // One poll: the stack did not retry the task's failure, nor did the poller.
    assert_eq!(log.lock().unwrap().count("GET", "/v1/tasks/t1"), 1);
    assert_eq!(outcome.polls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_success_data_error_envelope_fails_the_job_with_its_code() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = task_server(
        Arc::clone(&log),
        r#"{"success":false,"data":null,"error":{"code":"content_policy_violation","message":"The input violates content policies"}}"#,
    )
    .await;
    let poller = JobPoller::new(client()).status_url_template("/v1/tasks/{id}");
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    let JobEnding::Failed(classification) = outcome.ending() else {
        panic!("{outcome:?}")
    };
    assert_eq!(classification.kind(), Some(ErrorKind::ContentPolicy));
    assert_eq!(log.lock().unwrap().count("GET", "/v1/tasks/t1"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_status_endpoint_slows_the_polls_and_the_job_still_completes() {
    let log = Arc::new(Mutex::new(Log::default()));
    let polls = Arc::new(Mutex::new(0u32));
    let server_log = Arc::clone(&log);
    let addr = spawn_server(move |request: Request<Incoming>| {
        let log = Arc::clone(&server_log);
        let polls = Arc::clone(&polls);
        async move {
            log.lock().unwrap().record(&request);
            if request.method() == http::Method::POST {
                return json(202, r#"{"task_id":"t9","status":"queued"}"#);
            }
            let n = {
                let mut polls = polls.lock().unwrap();
                *polls += 1;
                *polls
            };
            // More 429s in a row than the stack's three attempts: the poller itself must wait.
            if n <= 5 {
                return Response::builder()
                    .status(429)
                    .header("retry-after", "7")
                    .header("content-type", "application/json")
                    .body(full(
                        r#"{"error":{"code":"rate_limit_error","message":"Too many requests"}}"#,
                    ))
                    .unwrap();
            }
            json(
                200,
                r#"{"task_id":"t9","status":"succeeded","output":"done"}"#,
            )
        }
    })
    .await;
    let poller = JobPoller::new(client()).status_url_template("/v1/tasks/{id}");
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
    let log = log.lock().unwrap();
    let times: Vec<Instant> = log
        .requests
        .iter()
        .filter(|(method, _, _, _)| method == "GET")
        .map(|(_, _, at, _)| *at)
        .collect();
    assert_eq!(times.len(), 6);
    // Every request after a 429 waited the seven seconds it asked for.
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(7),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_that_never_ends_times_out_with_its_last_state() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = task_server(
        Arc::clone(&log),
        r#"{"task_id":"t1","status":"processing"}"#,
    )
    .await;
    let poller = JobPoller::new(client())
        .status_url_template("/v1/tasks/{id}")
        .deadline(Duration::from_secs(60));
    let start = Instant::now();
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    let JobEnding::TimedOut { last_state } = outcome.ending() else {
        panic!("{outcome:?}")
    };
    assert_eq!(last_state.as_deref(), Some("processing"));
    assert!(start.elapsed() <= Duration::from_secs(60));
    assert!(outcome.polls() >= 5, "{}", outcome.polls());
}

#[tokio::test(start_paused = true)]
async fn a_404_past_the_grace_period_ends_waiting() {
    let addr = spawn_server(|_request: Request<Incoming>| async {
        json(404, r#"{"detail":"Request not found"}"#)
    })
    .await;
    let poller = JobPoller::new(client()).not_found_grace(Duration::from_secs(5));
    let mut handle = JobHandle::new(
        format!("http://{addr}/v1/queue/requests/nope/status")
            .parse()
            .unwrap(),
    );
    let start = Instant::now();
    let error = poller.wait(&mut handle).await.unwrap_err();
    assert!(matches!(error, JobError::NotFound { .. }), "{error}");
    assert!(start.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_refused_poll_ends_waiting_at_once() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = queue_server(Arc::clone(&log), false).await;
    // No credentials: the status URL answers 401.
    let poller = JobPoller::new(client()).reader(QueueStatus);
    let mut handle = JobHandle::new(
        format!("http://{addr}/v1/queue/flux/requests/r1/status")
            .parse()
            .unwrap(),
    );
    let error = poller.wait(&mut handle).await.unwrap_err();
    let JobError::PollRejected { classification, .. } = error else {
        panic!("{error}")
    };
    assert_eq!(classification.kind(), Some(ErrorKind::Unauthenticated));
    assert_eq!(log.lock().unwrap().requests.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_wait_stops_polling() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = task_server(
        Arc::clone(&log),
        r#"{"task_id":"t1","status":"processing"}"#,
    )
    .await;
    let poller = JobPoller::new(client()).status_url_template("/v1/tasks/{id}");
    let waiting =
        tokio::spawn(async move { poller.create_and_wait(create(addr, "/v1/tasks")).await });
    tokio::time::sleep(Duration::from_secs(30)).await;
    waiting.abort();
    let _ = waiting.await;
    let seen = log.lock().unwrap().requests.len();
    assert!(seen >= 3, "{seen}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(log.lock().unwrap().requests.len(), seen);
}

#[tokio::test(start_paused = true)]
async fn a_lost_create_answer_creates_one_job() {
    // The first create request creates the job, then its answer is lost (a 502 from the
    // gateway in front); the stack sends it again with the same key, and the server replays.
    let jobs = Arc::new(Mutex::new(Vec::<String>::new()));
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let server_keys = Arc::clone(&keys);
    let answered = Arc::new(Mutex::new(0u32));
    let server_jobs = Arc::clone(&jobs);
    let addr = spawn_server(move |request: Request<Incoming>| {
        let jobs = Arc::clone(&server_jobs);
        let answered = Arc::clone(&answered);
        let keys = Arc::clone(&server_keys);
        async move {
            if request.method() == http::Method::GET {
                return json(
                    200,
                    r#"{"task_id":"job-1","status":"succeeded","output":"ok"}"#,
                );
            }
            let key = request
                .headers()
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            keys.lock().unwrap().push(key.clone());
            let mut jobs = jobs.lock().unwrap();
            if !jobs.contains(&key) {
                jobs.push(key);
            }
            let mut answered = answered.lock().unwrap();
            *answered += 1;
            if *answered == 1 {
                return Response::builder()
                    .status(502)
                    .body(full("<html>502 Bad Gateway</html>"))
                    .unwrap();
            }
            json(200, r#"{"task_id":"job-1","status":"queued"}"#)
        }
    })
    .await;
    let poller = JobPoller::new(client()).status_url_template("/v1/tasks/{id}");
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(jobs.lock().unwrap().len(), 1, "one job for one key");
    let keys = keys.lock().unwrap();
    assert_eq!(keys.len(), 2, "the create request was sent twice");
    assert!(!keys[0].is_empty());
    assert_eq!(keys[0], keys[1], "with the same key");
}

#[tokio::test(start_paused = true)]
async fn a_task_failure_under_200_is_final_for_the_retry_layer_when_the_request_says_so() {
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = task_server(
        Arc::clone(&log),
        r#"{"task_id":"t1","status":"failed","error":{"code":"timeout","message":"The task timed out"}}"#,
    )
    .await;
    let get = |marked: bool| {
        let mut request = Request::get(format!("http://{addr}/v1/tasks/t1"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if marked {
            request
                .extensions_mut()
                .insert(http_resilience::retry::SuccessStatusFinal);
        }
        request
    };
    // Without the extension, a 200 whose body reports a timeout is retried as a failure.
    let response = tower::ServiceExt::oneshot(client(), get(false))
        .await
        .unwrap();
    assert_eq!(log.lock().unwrap().count("GET", "/v1/tasks/t1"), 3);
    assert!(response
        .extensions()
        .get::<http_resilience::Classification>()
        .unwrap()
        .is_failure());
    // With it, the answer is final; its classification still says what the body reports.
    let response = tower::ServiceExt::oneshot(client(), get(true))
        .await
        .unwrap();
    assert_eq!(log.lock().unwrap().count("GET", "/v1/tasks/t1"), 4);
    let attempts = response
        .extensions()
        .get::<http_resilience::Attempts>()
        .unwrap();
    assert_eq!(attempts.count(), 1);
    assert_eq!(attempts.stopped(), http_resilience::StopReason::Succeeded);
    assert_eq!(
        response
            .extensions()
            .get::<http_resilience::Classification>()
            .unwrap()
            .kind(),
        Some(ErrorKind::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_answer_that_hangs_is_cut_at_the_deadline() {
    let addr = spawn_server(|request: Request<Incoming>| async move {
        if request.method() == http::Method::POST {
            return json(202, r#"{"task_id":"t1","status":"queued"}"#);
        }
        // Never answers.
        std::future::pending::<()>().await;
        json(200, "{}")
    })
    .await;
    let poller = JobPoller::new(client())
        .status_url_template("/v1/tasks/{id}")
        .deadline(Duration::from_secs(30));
    let start = Instant::now();
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    assert!(
        matches!(outcome.ending(), JobEnding::TimedOut { .. }),
        "{outcome:?}"
    );
    assert!(
        start.elapsed() <= Duration::from_secs(31),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_retry_after_does_not_make_the_poller_spin() {
    let log = Arc::new(Mutex::new(Log::default()));
    let server_log = Arc::clone(&log);
    let addr = spawn_server(move |request: Request<Incoming>| {
        let log = Arc::clone(&server_log);
        async move {
            log.lock().unwrap().record(&request);
            if request.method() == http::Method::POST {
                return json(202, r#"{"task_id":"t1","status":"queued"}"#);
            }
            Response::builder()
                .status(200)
                .header("retry-after", "0")
                .header("content-type", "application/json")
                .body(full(r#"{"task_id":"t1","status":"processing"}"#))
                .unwrap()
        }
    })
    .await;
    let poller = JobPoller::new(client())
        .status_url_template("/v1/tasks/{id}")
        .deadline(Duration::from_secs(60));
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    assert!(matches!(outcome.ending(), JobEnding::TimedOut { .. }));
    // The backoff (from 1 s to 10 s) bounds the polls in a minute, whatever the answer asks.
    let polls = log.lock().unwrap().count("GET", "/v1/tasks/t1");
    assert!((5..=20).contains(&polls), "{polls}");
}

#[tokio::test(start_paused = true)]
async fn credentials_are_not_sent_to_a_status_url_on_another_origin() {
    let elsewhere_log = Arc::new(Mutex::new(Log::default()));
    let elsewhere = {
        let log = Arc::clone(&elsewhere_log);
        spawn_server(move |request: Request<Incoming>| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().record(&request);
                json(200, r#"{"task_id":"t1","status":"succeeded","output":"x"}"#)
            }
        })
        .await
    };
    let addr = spawn_server(move |_request: Request<Incoming>| async move {
        json(
            202,
            format!(
                r#"{{"task_id":"t1","status":"queued","status_url":"http://{elsewhere}/steal"}}"#
            ),
        )
    })
    .await;
    let poller = JobPoller::new(client());
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
    let log = elsewhere_log.lock().unwrap();
    assert_eq!(log.count("GET", "/steal"), 1);
    assert_eq!(log.authorized, vec![false], "the key stayed home");
}

#[tokio::test(start_paused = true)]
async fn a_result_larger_than_the_status_limit_comes_back_whole() {
    let big = format!(
        r#"{{"task_id":"t1","status":"succeeded","output":"{}"}}"#,
        "x".repeat(100_000)
    );
    let answer = big.clone();
    let addr = spawn_server(move |request: Request<Incoming>| {
        let answer = answer.clone();
        async move {
            if request.method() == http::Method::POST {
                return json(202, r#"{"task_id":"t1","status":"queued"}"#);
            }
            json(200, answer)
        }
    })
    .await;
    // A limit the answer fits in: the state is read, and the result is the whole answer.
    let poller = JobPoller::new(client())
        .status_url_template("/v1/tasks/{id}")
        .body_limit(200_000);
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    let JobEnding::Succeeded(result) = outcome.into_ending() else {
        panic!("not a success")
    };
    let (bytes, _, _) = drain(result.into_body()).await;
    assert_eq!(bytes, big.as_bytes());

    let poller = JobPoller::new(client())
        .status_url_template("/v1/tasks/{id}")
        .body_limit(1_000)
        .deadline(Duration::from_secs(20));
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    // Cut short, the JSON does not parse: pending, never a success made of a fragment.
    assert!(
        matches!(outcome.ending(), JobEnding::TimedOut { .. }),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_result_status_answer_read_past_the_limit_is_returned_whole() {
    // The state word comes first, so the prefix read says succeeded; the rest of the answer
    // is handed back unread after it.
    let big = format!(
        r#"{{"status":"succeeded","task_id":"t1","output":"{}"}}"#,
        "y".repeat(300_000)
    );
    let answer = big.clone();
    let reader = |answer: &http_resilience::jobs::StatusAnswer<'_>| {
        use http_resilience::jobs::{JobState, JobStatus};
        if answer.body().starts_with(br#"{"status":"succeeded""#) {
            JobStatus::new(JobState::Succeeded)
        } else {
            JobStatus::new(JobState::pending(None)).with_job_id("t1")
        }
    };
    let addr = spawn_server(move |request: Request<Incoming>| {
        let answer = answer.clone();
        async move {
            if request.method() == http::Method::POST {
                return json(202, r#"{"task_id":"t1"}"#);
            }
            json(200, answer)
        }
    })
    .await;
    let poller = JobPoller::new(client())
        .reader(reader)
        .status_url_template("/v1/tasks/{id}")
        .body_limit(4_096);
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    let JobEnding::Succeeded(result) = outcome.into_ending() else {
        panic!("not a success")
    };
    let (bytes, _, _) = drain(result.into_body()).await;
    assert_eq!(bytes.len(), big.len());
    assert_eq!(bytes, big.as_bytes());
}

#[tokio::test(start_paused = true)]
async fn a_202_without_a_state_word_is_not_ready() {
    let polls = Arc::new(Mutex::new(0u32));
    let addr = spawn_server(move |request: Request<Incoming>| {
        let polls = Arc::clone(&polls);
        async move {
            if request.method() == http::Method::POST {
                return json(202, r#"{"task_id":"t1"}"#);
            }
            let mut polls = polls.lock().unwrap();
            *polls += 1;
            if *polls < 3 {
                json(202, r#"{"eta_seconds":5}"#)
            } else {
                json(
                    200,
                    r#"{"task_id":"t1","status":"succeeded","output":"done"}"#,
                )
            }
        }
    })
    .await;
    let poller = JobPoller::new(client()).status_url_template("/v1/tasks/{id}");
    let outcome = poller
        .create_and_wait(create(addr, "/v1/tasks"))
        .await
        .unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.polls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_create_answer_that_is_already_done_fetches_the_result_at_once() {
    let log = Arc::new(Mutex::new(Log::default()));
    let server_log = Arc::clone(&log);
    let addr = spawn_server(move |request: Request<Incoming>| {
        let log = Arc::clone(&server_log);
        async move {
            log.lock().unwrap().record(&request);
            match request.method().as_str() {
                "POST" => json(
                    200,
                    r#"{"status":"COMPLETED","request_id":"r1","response_url":"/v1/queue/requests/r1","error":null}"#,
                ),
                _ => json(200, r#"{"images":["cat.png"]}"#),
            }
        }
    })
    .await;
    let poller = JobPoller::new(client()).reader(QueueStatus);
    let start = Instant::now();
    let outcome = poller
        .create_and_wait(create(addr, "/v1/queue/flux"))
        .await
        .unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.polls(), 1);
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "no wait before the fetch"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.count("GET", "/v1/queue/requests/r1"), 1);
    assert_eq!(log.requests.len(), 2);
}
