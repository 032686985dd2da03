//! One set of end-to-end scenarios, run through three clients against a hyper server on
//! 127.0.0.1:0: the tower stack over hyper-util, the tower stack over `ReqwestService`, and a
//! reqwest-middleware client with `ResilienceMiddleware`.
#![cfg(feature = "reqwest")]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{full, hyper_client, spawn_server, ServerBody};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, StreamBody};
use http_resilience::classify::Classification;
use http_resilience::ids::{IdempotencyKey, RequestIds};
use http_resilience::reqwest::{attempts_of, ReqwestService, ResilienceMiddleware};
use http_resilience::retry::{ReplayBody, StopReason};
use http_resilience::{Attempts, ErrorKind, ResilienceLayer, ServiceBuilderExt};
use hyper::body::Frame;
use tower::{ServiceBuilder, ServiceExt};

type BoxBody =
    Pin<Box<dyn Body<Data = Bytes, Error = Box<dyn std::error::Error + Send + Sync>> + Send>>;
use std::pin::Pin;

#[derive(Clone, Copy, Debug)]
enum Kind {
    TowerOverHyper,
    TowerOverReqwest,
    ReqwestMiddleware,
}

const CLIENTS: [Kind; 3] = [
    Kind::TowerOverHyper,
    Kind::TowerOverReqwest,
    Kind::ReqwestMiddleware,
];

/// What a call ended with, whichever client made it.
struct Outcome {
    status: Option<StatusCode>,
    body: Option<BoxBody>,
    classification: Option<Classification>,
    attempts: Option<Attempts>,
    ids: Option<RequestIds>,
}

impl Outcome {
    fn key(&self) -> Option<IdempotencyKey> {
        self.ids.as_ref()?.idempotency_key().cloned()
    }

    async fn bytes(&mut self) -> Bytes {
        match self.body.take() {
            Some(body) => body.collect().await.unwrap().to_bytes(),
            None => Bytes::new(),
        }
    }
}

fn boxed<B>(body: B) -> BoxBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Box::pin(body.map_err(Into::into))
}

/// Sends one request through the client of `kind`. `streaming` sends the body as a stream,
/// which no client may replay.
async fn send(
    kind: Kind,
    method: Method,
    url: String,
    body: Option<&'static str>,
    streaming: bool,
) -> Outcome {
    let layer = ResilienceLayer::new();
    match kind {
        Kind::TowerOverHyper => {
            let client = ServiceBuilder::new()
                .resilience(layer)
                .service(hyper_client::<ReplayBody>());
            let bytes = Bytes::from_static(body.unwrap_or_default().as_bytes());
            let body = if streaming {
                ReplayBody::stream(Full::new(bytes))
            } else {
                ReplayBody::bytes(bytes)
            };
            let request = Request::builder()
                .method(method)
                .uri(url)
                .body(body)
                .unwrap();
            match client.oneshot(request).await {
                Ok(response) => from_http(response.map(boxed)),
                Err(error) => from_error(error.attempts().clone()),
            }
        }
        Kind::TowerOverReqwest => {
            let client = ServiceBuilder::new()
                .resilience(layer)
                .service(ReqwestService::new(reqwest::Client::new()));
            let body = reqwest_body(body, streaming);
            let request = Request::builder()
                .method(method)
                .uri(url)
                .body(http_resilience::reqwest::ReqwestBody::new(body))
                .unwrap();
            match client.oneshot(request).await {
                Ok(response) => from_http(response.map(boxed)),
                Err(error) => from_error(error.attempts().clone()),
            }
        }
        Kind::ReqwestMiddleware => {
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(ResilienceMiddleware::new(layer))
                .build();
            let result = client
                .request(method, &url)
                .body(reqwest_body(body, streaming))
                .send()
                .await;
            match result {
                Ok(response) => from_http(http::Response::from(response).map(boxed)),
                Err(error) => from_error(
                    attempts_of(&error)
                        .expect("the middleware's record")
                        .clone(),
                ),
            }
        }
    }
}

fn reqwest_body(body: Option<&'static str>, streaming: bool) -> reqwest::Body {
    let text = body.unwrap_or_default();
    if streaming {
        reqwest::Body::wrap_stream(futures_util::stream::once(async move {
            Ok::<_, Infallible>(Bytes::from_static(text.as_bytes()))
        }))
    } else {
        reqwest::Body::from(text)
    }
}

fn from_http(response: Response<BoxBody>) -> Outcome {
    let (parts, body) = response.into_parts();
    Outcome {
        status: Some(parts.status),
        body: Some(body),
        classification: parts.extensions.get::<Classification>().cloned(),
        attempts: parts.extensions.get::<Attempts>().cloned(),
        ids: parts.extensions.get::<RequestIds>().cloned(),
    }
}

fn from_error(attempts: Attempts) -> Outcome {
    Outcome {
        status: None,
        body: None,
        classification: None,
        attempts: Some(attempts),
        ids: None,
    }
}

/// A gateway whose routes answer by how often they were called.
async fn gateway() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let jobs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let counter = Arc::clone(&calls);
    let addr = spawn_server(move |req: Request<hyper::body::Incoming>| {
        let calls = Arc::clone(&counter);
        let jobs = Arc::clone(&jobs);
        async move {
            let path = req.uri().path().to_owned();
            let n = {
                let mut calls = calls.lock().unwrap();
                let n = calls.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            if path == "/slow" {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            route(&path, n, &req, &jobs)
        }
    })
    .await;
    (addr, calls)
}

fn route(
    path: &str,
    n: usize,
    req: &Request<hyper::body::Incoming>,
    jobs: &Mutex<HashMap<String, u32>>,
) -> Response<ServerBody> {
    let json = |status: u16, body: &'static str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-request-id", format!("srv-{n}"))
            .body(full(body))
            .unwrap()
    };
    match (path, n) {
        ("/waits", 1) => Response::builder()
            .status(429)
            .header("retry-after", "1")
            .body(full(
                r#"{"error":{"code":"too_many_requests","message":"slow down"}}"#,
            ))
            .unwrap(),
        ("/waits", 2) => Response::builder()
            .status(503)
            .header("retry-after", "2")
            .body(full("<html>busy</html>"))
            .unwrap(),
        ("/waits", _) => json(200, r#"{"ok":true}"#),
        ("/moved", _) => Response::builder()
            .status(302)
            .header("location", "/landed?y=2")
            .body(full(""))
            .unwrap(),
        ("/landed", _) => json(200, r#"{"landed":true}"#),
        ("/slow", _) => json(200, r#"{"slow":true}"#),
        ("/quota", _) => json(
            429,
            r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        ),
        ("/business", 1) => Response::builder()
            .header("content-type", "application/json")
            .body(full(r#"{"code":130005,"msg":"Request too frequent"}"#))
            .unwrap(),
        ("/business", _) => json(200, r#"{"code":0,"msg":"Success","data":{"id":1}}"#),
        ("/big-error", _) => Response::builder()
            .status(500)
            .body(full(vec![b'x'; 200 * 1024]))
            .unwrap(),
        ("/jobs", _) => {
            let key = req
                .headers()
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            let mut jobs = jobs.lock().unwrap();
            let created = jobs.entry(key).or_default();
            if *created == 0 {
                *created += 1;
                // The job exists; its answer is lost.
                return Response::builder().status(502).body(full("")).unwrap();
            }
            Response::builder()
                .header("idempotent-replayed", "true")
                .body(full(r#"{"task_id":"t"}"#))
                .unwrap()
        }
        ("/stream-upload", 1) => Response::builder().status(503).body(full("")).unwrap(),
        ("/stream-upload", _) => json(200, r#"{"ok":true}"#),
        ("/sse", _) => {
            let chunks = futures_util::stream::iter([
                b"data: one\n\n".as_slice(),
                b"data: two\n\n".as_slice(),
            ])
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c))));
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(chunks)))
                .unwrap()
        }
        _ => json(404, r#"{"detail":"Not Found"}"#),
    }
}

use futures_util::StreamExt;

#[tokio::test(start_paused = true)]
async fn waits_as_told_then_succeeds() {
    for kind in CLIENTS {
        let (addr, _) = gateway().await;
        let mut outcome = send(
            kind,
            Method::GET,
            format!("http://{addr}/waits"),
            None,
            false,
        )
        .await;
        assert_eq!(outcome.status, Some(StatusCode::OK), "{kind:?}");
        let attempts = outcome.attempts.clone().unwrap();
        let delays: Vec<_> = attempts.records().iter().map(|r| r.delay()).collect();
        assert_eq!(
            delays,
            [
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2)
            ],
            "{kind:?}"
        );
        let kinds: Vec<_> = attempts.records().iter().map(|r| r.kind()).collect();
        assert_eq!(
            kinds,
            [
                Some(ErrorKind::RateLimited),
                Some(ErrorKind::Overloaded),
                None
            ],
            "{kind:?}"
        );
        assert_eq!(
            outcome
                .classification
                .clone()
                .unwrap()
                .trace_id()
                .unwrap()
                .as_str(),
            "srv-3",
            "{kind:?}"
        );
        let ids = outcome.ids.as_ref().expect("the response's ids");
        assert!(ids.client_request_id().is_some(), "{kind:?}");
        assert_eq!(
            outcome.bytes().await,
            Bytes::from_static(br#"{"ok":true}"#),
            "{kind:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn quota_is_never_retried_and_its_body_arrives() {
    for kind in CLIENTS {
        let (addr, calls) = gateway().await;
        let mut outcome = send(
            kind,
            Method::POST,
            format!("http://{addr}/quota"),
            Some("{}"),
            false,
        )
        .await;
        assert_eq!(
            outcome.status,
            Some(StatusCode::TOO_MANY_REQUESTS),
            "{kind:?}"
        );
        assert_eq!(
            outcome.classification.clone().unwrap().kind(),
            Some(ErrorKind::QuotaExhausted),
            "{kind:?}"
        );
        assert_eq!(
            outcome.attempts.clone().unwrap().stopped(),
            StopReason::VerdictNever,
            "{kind:?}"
        );
        assert_eq!(calls.lock().unwrap()["/quota"], 1, "{kind:?}");
        assert!(outcome.key().is_some(), "{kind:?}: the POST carried a key");
        assert!(
            outcome.bytes().await.starts_with(br#"{"error""#),
            "{kind:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn failure_hidden_under_200_is_retried() {
    for kind in CLIENTS {
        let (addr, _) = gateway().await;
        let mut outcome = send(
            kind,
            Method::GET,
            format!("http://{addr}/business"),
            None,
            false,
        )
        .await;
        let attempts = outcome.attempts.clone().unwrap();
        assert_eq!(
            attempts.records()[0].kind(),
            Some(ErrorKind::RateLimited),
            "{kind:?}"
        );
        assert_eq!(attempts.count(), 2, "{kind:?}");
        assert_eq!(
            outcome.bytes().await,
            Bytes::from_static(br#"{"code":0,"msg":"Success","data":{"id":1}}"#)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn error_body_longer_than_the_limit_arrives_whole() {
    for kind in CLIENTS {
        let (addr, calls) = gateway().await;
        let mut outcome = send(
            kind,
            Method::GET,
            format!("http://{addr}/big-error"),
            None,
            false,
        )
        .await;
        assert_eq!(
            outcome.status,
            Some(StatusCode::INTERNAL_SERVER_ERROR),
            "{kind:?}"
        );
        assert_eq!(
            outcome.attempts.clone().unwrap().stopped(),
            StopReason::AttemptsExhausted,
            "{kind:?}"
        );
        assert_eq!(calls.lock().unwrap()["/big-error"], 3, "{kind:?}");
        assert_eq!(outcome.bytes().await.len(), 200 * 1024, "{kind:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn lost_answer_creates_one_job() {
    for kind in CLIENTS {
        let (addr, calls) = gateway().await;
        let calls_before = calls.lock().unwrap().get("/jobs").copied().unwrap_or(0);
        let outcome = send(
            kind,
            Method::POST,
            format!("http://{addr}/jobs"),
            Some(r#"{"prompt":"x"}"#),
            false,
        )
        .await;
        assert_eq!(outcome.status, Some(StatusCode::OK), "{kind:?}");
        assert!(outcome.key().unwrap().was_replayed(), "{kind:?}");
        assert_eq!(calls.lock().unwrap()["/jobs"] - calls_before, 2, "{kind:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn streaming_request_body_is_sent_once() {
    for kind in CLIENTS {
        let (addr, calls) = gateway().await;
        let outcome = send(
            kind,
            Method::PUT,
            format!("http://{addr}/stream-upload"),
            Some("chunk"),
            true,
        )
        .await;
        assert_eq!(
            outcome.status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "{kind:?}"
        );
        assert_eq!(
            outcome.attempts.unwrap().stopped(),
            StopReason::BodyNotReplayable,
            "{kind:?}"
        );
        assert_eq!(calls.lock().unwrap()["/stream-upload"], 1, "{kind:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn streamed_success_is_passed_through() {
    for kind in CLIENTS {
        let (addr, _) = gateway().await;
        let mut outcome = send(kind, Method::GET, format!("http://{addr}/sse"), None, false).await;
        assert_eq!(
            outcome.classification.clone().unwrap().body_read(),
            http_resilience::classify::BodyRead::NotRead,
            "{kind:?}"
        );
        assert_eq!(
            outcome.bytes().await,
            Bytes::from_static(b"data: one\n\ndata: two\n\n"),
            "{kind:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn connection_refused_carries_the_attempts() {
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    for kind in CLIENTS {
        let outcome = send(
            kind,
            Method::POST,
            format!("http://127.0.0.1:{port}/x"),
            Some("{}"),
            false,
        )
        .await;
        assert_eq!(outcome.status, None, "{kind:?}");
        let attempts = outcome.attempts.unwrap();
        assert_eq!(
            attempts.count(),
            3,
            "{kind:?}: connect errors are retried for POST too"
        );
        assert!(
            attempts
                .records()
                .iter()
                .all(|r| r.kind() == Some(ErrorKind::Transport)),
            "{kind:?}"
        );
    }
}

/// A reqwest-middleware client with the default `ResilienceMiddleware`.
fn default_middleware_client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::default())
        .build()
}

#[tokio::test(start_paused = true)]
async fn middleware_response_keeps_its_url_and_records() {
    let (addr, _) = gateway().await;
    let client = default_middleware_client();
    let url = format!("http://{addr}/waits?x=1");
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.url().as_str(), url);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.extensions().get::<Attempts>().unwrap().count(), 3);
    assert_eq!(response.text().await.unwrap(), r#"{"ok":true}"#);
}

#[tokio::test]
async fn middleware_response_has_the_url_it_landed_on_after_a_redirect() {
    let (addr, _) = gateway().await;
    let client = default_middleware_client();
    let response = client
        .get(format!("http://{addr}/moved"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.url().as_str(),
        format!("http://{addr}/landed?y=2"),
        "the final URL, as plain reqwest reports it"
    );
    assert!(response.extensions().get::<Classification>().is_some());
    assert_eq!(response.text().await.unwrap(), r#"{"landed":true}"#);
}

#[tokio::test(start_paused = true)]
async fn middleware_keeps_a_per_request_timeout_on_every_attempt() {
    let (addr, calls) = gateway().await;
    let client = default_middleware_client();
    let error = client
        .get(format!("http://{addr}/slow"))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .expect_err("the server answers after 10 s, the request allows 200 ms");
    // reqwest-middleware's error is transparent over reqwest's: match it, not its sources.
    let timed_out = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
        .filter_map(|e| e.downcast_ref::<reqwest_middleware::Error>())
        .any(|e| matches!(e, reqwest_middleware::Error::Reqwest(e) if e.is_timeout()));
    assert!(timed_out, "{error:?}");
    let attempts = attempts_of(&error).unwrap();
    assert_eq!(
        attempts.count(),
        3,
        "each attempt timed out and was retried"
    );
    assert_eq!(calls.lock().unwrap()["/slow"], 3);
}

#[tokio::test(start_paused = true)]
async fn middleware_failures_as_errors_give_an_api_error() {
    let (addr, _) = gateway().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(
            ResilienceLayer::new().failures_as_errors(),
        ))
        .build();
    let error = client
        .post(format!("http://{addr}/quota"))
        .header("authorization", "Bearer sk-never-shown")
        .body("{}")
        .send()
        .await
        .unwrap_err();
    let api_error = http_resilience::reqwest::api_error_of(&error).unwrap();
    assert_eq!(api_error.kind(), ErrorKind::QuotaExhausted);
    assert_eq!(attempts_of(&error).unwrap().count(), 1);
    let report = api_error.report().to_string();
    assert!(
        report.contains("authorization: Bearer [masked]") && !report.contains("sk-never-shown"),
        "{report}"
    );
    // The middleware parses the URL for the stack only where an ApiError will name it.
    assert!(report.contains(&format!("http://{addr}/quota")), "{report}");
    assert!(!format!("{error:?} {error}").contains("sk-never-shown"));
}

#[tokio::test(start_paused = true)]
async fn concurrent_posts_with_lost_answers_create_one_job_each() {
    for kind in CLIENTS {
        let (addr, calls) = gateway().await;
        let sends = (0..16).map(|_| {
            send(
                kind,
                Method::POST,
                format!("http://{addr}/jobs"),
                Some("{}"),
                false,
            )
        });
        let outcomes = futures_util::future::join_all(sends).await;
        let mut keys = std::collections::HashSet::new();
        for outcome in &outcomes {
            assert_eq!(outcome.status, Some(StatusCode::OK), "{kind:?}");
            let key = outcome.key().unwrap();
            assert!(key.was_replayed(), "{kind:?}");
            keys.insert(key.as_str().to_owned());
        }
        assert_eq!(keys.len(), 16, "{kind:?}: one key per logical request");
        // Each key: one answer lost after its job was created, one replay; no third call.
        assert_eq!(calls.lock().unwrap()["/jobs"], 32, "{kind:?}");
    }
}
