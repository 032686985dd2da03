//! One client, different calls: a `RequestPolicy` on one request overrides the stack for that
//! call only, and the stack's `retry_decision` hook may change a verdict but never the safety
//! rules. Every scenario runs through both stacks, the tower stack over hyper-util's client and
//! the reqwest-middleware client, against a real server on 127.0.0.1.

#![cfg(feature = "reqwest")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::reqwest::{
    attempts_of, request_ids_of, RequestPolicyExt, ResilienceMiddleware,
};
use http_resilience::retry::{
    Backoff, Jitter, KeySupport, NonIdempotent, RequestPolicy, RetryBudget, RetryDecision,
};
use http_resilience::{
    Attempts, ErrorKind, RequestIds, ResilienceLayer, ServiceBuilderExt, StopReason,
};
use tower::{ServiceBuilder, ServiceExt};

// ---- The server --------------------------------------------------------------------------------

/// A scripted answer: status (0 = never answer), headers, body.
type Answer = (u16, &'static [(&'static str, &'static str)], &'static str);

#[derive(Default)]
struct Server {
    scripts: HashMap<String, Vec<Answer>>,
    /// Per path: the requests seen, by their idempotency key.
    seen: HashMap<String, Vec<Option<String>>>,
}

type Shared = Arc<Mutex<Server>>;

async fn start(server: Shared) -> SocketAddr {
    common::spawn_server(move |request: Request<hyper::body::Incoming>| {
        let server = Arc::clone(&server);
        async move {
            let path = request.uri().path().to_owned();
            let key = request
                .headers()
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned());
            let answer = {
                let mut server = server.lock().unwrap();
                let seen = server.seen.entry(path.clone()).or_default();
                seen.push(key);
                let n = seen.len() - 1;
                let script = &server.scripts[&path];
                script[n.min(script.len() - 1)]
            };
            let (status, headers, body) = answer;
            if status == 0 {
                std::future::pending::<()>().await;
            }
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            response.body(common::full(body)).unwrap()
        }
    })
    .await
}

// ---- The two stacks ----------------------------------------------------------------------------

/// What a call ended with, whichever stack made it.
#[derive(Debug)]
struct Sent {
    status: Option<u16>,
    attempts: Attempts,
    ids: Option<RequestIds>,
}

enum Client {
    Tower(
        http_resilience::Resilient<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                Full<Bytes>,
            >,
        >,
    ),
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Tower(_) => "tower",
            Client::Reqwest(_) => "reqwest",
        }
    }

    async fn send(&self, method: Method, url: &str, policy: Option<RequestPolicy>) -> Sent {
        let body = if method == Method::POST {
            Bytes::from_static(br#"{"prompt":"a lighthouse"}"#)
        } else {
            Bytes::new()
        };
        match self {
            Client::Tower(client) => {
                let mut request = Request::builder().method(method).uri(url);
                if let Some(policy) = policy {
                    request = request.extension(policy);
                }
                let request = request.body(Full::new(body)).unwrap();
                match client.clone().oneshot(request).await {
                    Ok(response) => {
                        let attempts = response.extensions().get::<Attempts>().unwrap().clone();
                        let ids = response.extensions().get::<RequestIds>().cloned();
                        let status = response.status().as_u16();
                        response.into_body().collect().await.unwrap();
                        Sent {
                            status: Some(status),
                            attempts,
                            ids,
                        }
                    }
                    Err(error) => Sent {
                        status: None,
                        attempts: error.attempts().clone(),
                        ids: Some(error.request_ids().clone()),
                    },
                }
            }
            Client::Reqwest(client) => {
                let mut request = client.request(method, url).body(body);
                if let Some(policy) = policy {
                    request = request.request_policy(policy);
                }
                match request.send().await {
                    Ok(response) => {
                        let attempts = response.extensions().get::<Attempts>().unwrap().clone();
                        let ids = response.extensions().get::<RequestIds>().cloned();
                        let status = response.status().as_u16();
                        response.bytes().await.unwrap();
                        Sent {
                            status: Some(status),
                            attempts,
                            ids,
                        }
                    }
                    Err(error) => Sent {
                        status: None,
                        attempts: attempts_of(&error).unwrap().clone(),
                        ids: request_ids_of(&error).cloned(),
                    },
                }
            }
        }
    }
}

/// A scenario's harness: the server, its address and both clients over `layer`.
struct Harness {
    server: Shared,
    addr: SocketAddr,
    clients: [Client; 2],
}

impl Harness {
    async fn new(layer: ResilienceLayer) -> Self {
        let server = Shared::default();
        let addr = start(Arc::clone(&server)).await;
        let tower = ServiceBuilder::new()
            .resilience(layer.clone())
            .service(common::hyper_client());
        let reqwest = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ResilienceMiddleware::new(layer))
            .build();
        Harness {
            server,
            addr,
            clients: [Client::Tower(tower), Client::Reqwest(reqwest)],
        }
    }

    /// Scripts `path` for `client` (each client has its own copy of the path) and gives its URL.
    fn route(&self, client: &Client, path: &str, script: &[Answer]) -> String {
        let path = format!("/{}{path}", client.name());
        self.server
            .lock()
            .unwrap()
            .scripts
            .insert(path.clone(), script.to_vec());
        format!("http://{}{path}", self.addr)
    }

    /// The idempotency keys of the requests `url` received.
    fn seen(&self, url: &str) -> Vec<Option<String>> {
        let path = url.trim_start_matches(&format!("http://{}", self.addr));
        self.server
            .lock()
            .unwrap()
            .seen
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

const BUSY: Answer = (503, &[], "busy");
const OK: Answer = (
    200,
    &[("content-type", "application/json")],
    r#"{"id":"t-1"}"#,
);
const HANG: Answer = (0, &[], "");
const LIMITED: Answer = (429, &[("retry-after", "1")], "");
const BROKEN: Answer = (500, &[], "oops");

fn stop_and_count(sent: &Sent) -> (StopReason, usize) {
    (sent.attempts.stopped(), sent.attempts.count())
}

// ---- Overrides -----------------------------------------------------------------------------------

/// `max_attempts(1)` turns retries off for one call; the next call on the same client retries
/// as the stack says.
#[tokio::test(start_paused = true)]
async fn one_call_without_retries_and_the_next_with() {
    let h = Harness::new(ResilienceLayer::new()).await;
    for client in &h.clients {
        let url = h.route(client, "/flaky", &[BUSY, BUSY, OK]);
        let once = client
            .send(
                Method::GET,
                &url,
                Some(RequestPolicy::new().max_attempts(1)),
            )
            .await;
        assert_eq!(once.status, Some(503), "{}", client.name());
        assert_eq!(stop_and_count(&once), (StopReason::AttemptsExhausted, 1));
        let retried = client.send(Method::GET, &url, None).await;
        assert_eq!(retried.status, Some(200), "{}", client.name());
        assert_eq!(stop_and_count(&retried), (StopReason::Succeeded, 2));
        assert_eq!(h.seen(&url).len(), 3);
    }
}

/// A policy may also allow more attempts than the stack.
#[tokio::test(start_paused = true)]
async fn one_call_with_more_attempts_than_the_stack() {
    let h = Harness::new(ResilienceLayer::new().max_attempts(1)).await;
    for client in &h.clients {
        let url = h.route(client, "/flaky", &[BUSY, BUSY, OK]);
        let sent = client
            .send(
                Method::GET,
                &url,
                Some(RequestPolicy::new().max_attempts(3)),
            )
            .await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        assert_eq!(stop_and_count(&sent), (StopReason::Succeeded, 3));
    }
}

/// A deadline for one call, on a stack without one: a status poll that must answer in 2 s.
#[tokio::test(start_paused = true)]
async fn a_deadline_for_one_call() {
    let h = Harness::new(ResilienceLayer::new()).await;
    for client in &h.clients {
        let url = h.route(client, "/hang", &[HANG]);
        let started = tokio::time::Instant::now();
        let sent = client
            .send(
                Method::GET,
                &url,
                Some(RequestPolicy::new().deadline(Duration::from_secs(2))),
            )
            .await;
        assert_eq!(sent.status, None, "{}", client.name());
        assert_eq!(
            sent.attempts.stopped(),
            StopReason::Deadline,
            "{}",
            client.name()
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "{}",
            client.name()
        );
    }
}

/// A per-attempt timeout for one call: each attempt is cut, and retried.
#[tokio::test(start_paused = true)]
async fn a_per_attempt_timeout_for_one_call() {
    let h = Harness::new(ResilienceLayer::new()).await;
    for client in &h.clients {
        let url = h.route(client, "/hang", &[HANG]);
        let sent = client
            .send(
                Method::GET,
                &url,
                Some(
                    RequestPolicy::new()
                        .attempt_timeout(Duration::from_secs(1))
                        .max_attempts(2),
                ),
            )
            .await;
        assert_eq!(sent.status, None, "{}", client.name());
        assert_eq!(stop_and_count(&sent), (StopReason::AttemptsExhausted, 2));
        assert!(sent
            .attempts
            .records()
            .iter()
            .all(|r| r.kind() == Some(ErrorKind::Timeout)));
        assert_eq!(h.seen(&url).len(), 2);
    }
}

/// `NonIdempotent::Never`: a paid POST is sent once even when a 429 proves the server did no
/// work; the same POST without the policy is retried.
#[tokio::test(start_paused = true)]
async fn never_sends_a_paid_post_twice() {
    let h = Harness::new(ResilienceLayer::new()).await;
    for client in &h.clients {
        let url = h.route(client, "/videos", &[LIMITED, OK]);
        let policy = RequestPolicy::new().non_idempotent(NonIdempotent::Never);
        let sent = client.send(Method::POST, &url, Some(policy)).await;
        assert_eq!(sent.status, Some(429), "{}", client.name());
        assert_eq!(stop_and_count(&sent), (StopReason::NotIdempotent, 1));

        let url = h.route(client, "/videos-default", &[LIMITED, OK]);
        let sent = client.send(Method::POST, &url, None).await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        assert_eq!(sent.attempts.count(), 2);
    }
}

/// `RetryIfUnprocessed`: a keyed POST is not sent again after a 500 (the job may exist), but is
/// after a 429.
#[tokio::test(start_paused = true)]
async fn retry_if_unprocessed_needs_proof_even_with_a_key() {
    let h = Harness::new(ResilienceLayer::new()).await;
    for client in &h.clients {
        let policy =
            || Some(RequestPolicy::new().non_idempotent(NonIdempotent::RetryIfUnprocessed));
        let url = h.route(client, "/after-500", &[BROKEN, OK]);
        let sent = client.send(Method::POST, &url, policy()).await;
        assert_eq!(sent.status, Some(500), "{}", client.name());
        assert_eq!(stop_and_count(&sent), (StopReason::NotIdempotent, 1));
        assert!(h.seen(&url)[0].is_some(), "the POST was keyed");

        let url = h.route(client, "/after-429", &[LIMITED, OK]);
        let sent = client.send(Method::POST, &url, policy()).await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        assert_eq!(sent.attempts.count(), 2);
    }
}

/// `RetryWithKey` on a stack that distrusts keys: this call's keyed POST is retried after a
/// 500; the stack's default for the next call is not.
#[tokio::test(start_paused = true)]
async fn retry_with_key_on_a_stack_that_distrusts_keys() {
    let h = Harness::new(ResilienceLayer::new().key_support(KeySupport::Ignored)).await;
    for client in &h.clients {
        let url = h.route(client, "/trusted", &[BROKEN, OK]);
        let policy = RequestPolicy::new().non_idempotent(NonIdempotent::RetryWithKey);
        let sent = client.send(Method::POST, &url, Some(policy)).await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        let keys = h.seen(&url);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], keys[1], "one key on both attempts");

        let url = h.route(client, "/distrusted", &[BROKEN, OK]);
        let sent = client.send(Method::POST, &url, None).await;
        assert_eq!(stop_and_count(&sent), (StopReason::NotIdempotent, 1));
    }
}

/// `RetryWithKey` without a key (the stack makes none) falls back to proof: never past the
/// safety rule.
#[tokio::test(start_paused = true)]
async fn retry_with_key_without_a_key_still_needs_proof() {
    let h = Harness::new(ResilienceLayer::new().without_idempotency_keys()).await;
    for client in &h.clients {
        let url = h.route(client, "/unkeyed", &[BROKEN, OK]);
        let policy = RequestPolicy::new().non_idempotent(NonIdempotent::RetryWithKey);
        let sent = client.send(Method::POST, &url, Some(policy)).await;
        assert_eq!(
            stop_and_count(&sent),
            (StopReason::NotIdempotent, 1),
            "{}",
            client.name()
        );
        assert_eq!(h.seen(&url), [None]);
    }
}

/// The caller's own key (its job id) goes out on every attempt, and is recorded as the
/// caller's, not made by the stack.
#[tokio::test(start_paused = true)]
async fn the_callers_job_id_as_the_key() {
    let h = Harness::new(ResilienceLayer::new()).await;
    for client in &h.clients {
        let url = h.route(client, "/jobs", &[BUSY, OK]);
        let policy = RequestPolicy::new().idempotency_key(HeaderValue::from_static("job-42"));
        let sent = client.send(Method::POST, &url, Some(policy)).await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        assert_eq!(
            h.seen(&url),
            [Some("job-42".to_owned()), Some("job-42".to_owned())]
        );
        let ids = sent.ids.unwrap();
        let key = ids.idempotency_key().unwrap();
        assert_eq!(key.as_str(), "job-42");
        assert!(!key.was_generated());
    }
}

/// A call that does not count against the budget is retried when the budget is spent; the
/// same call under the stack's default is not.
#[tokio::test(start_paused = true)]
async fn a_call_outside_the_retry_budget() {
    let spent = RetryBudget::new(Duration::from_secs(10), 0, 0.0);
    let h = Harness::new(ResilienceLayer::new().budget(spent)).await;
    for client in &h.clients {
        let url = h.route(client, "/counted", &[BROKEN, OK]);
        let sent = client.send(Method::GET, &url, None).await;
        assert_eq!(
            stop_and_count(&sent),
            (StopReason::BudgetSpent, 1),
            "{}",
            client.name()
        );

        let url = h.route(client, "/exempt", &[BROKEN, OK]);
        let policy = RequestPolicy::new().uses_budget(false);
        let sent = client.send(Method::GET, &url, Some(policy)).await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        assert_eq!(sent.attempts.count(), 2);
    }
}

// ---- The decision hook ---------------------------------------------------------------------------

/// What the hook saw of one failed attempt.
#[derive(Debug, Clone, PartialEq)]
struct Saw {
    method: Method,
    path: String,
    attempt: u32,
    status: Option<u16>,
    kind: Option<ErrorKind>,
    /// The kind its `Classification` holds.
    classified: Option<ErrorKind>,
    /// Whether the request's extensions held a `RequestPolicy`.
    with_policy: bool,
}

type Seen = Arc<Mutex<Vec<Saw>>>;

fn hooked(seen: &Seen) -> ResilienceLayer {
    let seen = Arc::clone(seen);
    ResilienceLayer::new().retry_decision(move |attempt| {
        seen.lock().unwrap().push(Saw {
            method: attempt.method().clone(),
            path: attempt.uri().path().to_owned(),
            attempt: attempt.attempt(),
            status: attempt.status().map(|s| s.as_u16()),
            kind: attempt.kind(),
            classified: attempt.classification().and_then(|c| c.kind()),
            with_policy: attempt.extensions().get::<RequestPolicy>().is_some(),
        });
        match attempt.status() {
            Some(StatusCode::NOT_IMPLEMENTED) => RetryDecision::Retry,
            Some(StatusCode::CONFLICT) => RetryDecision::Stop,
            // Everything else: retry, as far as the safety rules allow.
            _ => RetryDecision::Retry,
        }
    })
}

/// The hook retries a 501 the taxonomy would not, and refuses a 409 it would; it sees the
/// request (its extensions too), the attempt's number and its classification.
#[tokio::test(start_paused = true)]
async fn the_hook_retries_a_501_and_refuses_a_409() {
    let seen = Seen::default();
    let h = Harness::new(hooked(&seen)).await;
    for client in &h.clients {
        seen.lock().unwrap().clear();
        let url = h.route(client, "/not-implemented", &[(501, &[], ""), OK]);
        let sent = client
            .send(Method::GET, &url, Some(RequestPolicy::new()))
            .await;
        assert_eq!(sent.status, Some(200), "{}", client.name());
        assert_eq!(sent.attempts.count(), 2);

        let url = h.route(client, "/conflict", &[(409, &[], ""), OK]);
        let sent = client.send(Method::GET, &url, None).await;
        assert_eq!(sent.status, Some(409), "{}", client.name());
        assert_eq!(stop_and_count(&sent), (StopReason::Declined, 1));

        let prefix = format!("/{}", client.name());
        let saw = |path: &str, status: u16, kind: ErrorKind, with_policy: bool| Saw {
            method: Method::GET,
            path: format!("{prefix}{path}"),
            attempt: 1,
            status: Some(status),
            kind: Some(kind),
            classified: Some(kind),
            with_policy,
        };
        assert_eq!(
            *seen.lock().unwrap(),
            [
                saw("/not-implemented", 501, ErrorKind::Unsupported, true),
                saw("/conflict", 409, ErrorKind::Conflict, false),
            ],
            "{}",
            client.name()
        );
    }
}

/// The hook's `Retry` never passes the safety rules: a POST without a key after a 501 (no
/// proof the server did no work) is sent once, a per-request `Never` holds, and nothing is
/// sent past the deadline.
#[tokio::test(start_paused = true)]
async fn the_hook_never_passes_the_safety_rules() {
    let seen = Seen::default();
    let slow = Backoff::new(Duration::from_secs(1), Duration::from_secs(2)).jitter(Jitter::None);
    // Without pacing: the 429 below would otherwise hold the host's later calls in line.
    let layer = hooked(&seen)
        .without_idempotency_keys()
        .backoff(slow)
        .without_pacing();
    let h = Harness::new(layer).await;
    for client in &h.clients {
        let url = h.route(client, "/unkeyed", &[(501, &[], ""), OK]);
        let sent = client.send(Method::POST, &url, None).await;
        assert_eq!(
            stop_and_count(&sent),
            (StopReason::NotIdempotent, 1),
            "{}",
            client.name()
        );

        let url = h.route(client, "/never", &[LIMITED, OK]);
        let policy = RequestPolicy::new().non_idempotent(NonIdempotent::Never);
        let sent = client.send(Method::POST, &url, Some(policy)).await;
        assert_eq!(
            stop_and_count(&sent),
            (StopReason::NotIdempotent, 1),
            "{}",
            client.name()
        );
        assert_eq!(h.seen(&url).len(), 1);

        // The backoff (1 s) would pass the call's deadline (100 ms).
        let url = h.route(client, "/deadline", &[(501, &[], ""), OK]);
        let policy = RequestPolicy::new().deadline(Duration::from_millis(100));
        let sent = client.send(Method::GET, &url, Some(policy)).await;
        assert_eq!(
            stop_and_count(&sent),
            (StopReason::Deadline, 1),
            "{}",
            client.name()
        );
        assert_eq!(h.seen(&url).len(), 1);
    }
}

/// A body that cannot be replayed is sent once, whatever the hook says: through reqwest only,
/// whose streamed body the harness can send; the tower stack shares the retry core that skips
/// the hook when no copy exists (tests/retry.rs sends its unreplayable bodies once, without a
/// hook).
#[tokio::test(start_paused = true)]
async fn the_hook_never_resends_a_streamed_body() {
    let seen = Seen::default();
    let h = Harness::new(hooked(&seen)).await;
    let client = &h.clients[1];
    let Client::Reqwest(reqwest) = client else {
        unreachable!()
    };
    let url = h.route(client, "/streamed", &[BROKEN, OK]);
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))]);
    let response = reqwest
        .put(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(
        (attempts.stopped(), attempts.count()),
        (StopReason::BodyNotReplayable, 1)
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "not consulted: no retry was possible"
    );
}
