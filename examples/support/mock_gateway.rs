//! The mock AI gateway of the `demo` and `metrics_prometheus` examples: on 127.0.0.1 (an
//! ephemeral port), it answers with the failures documented in the seed error pages.

// Each example uses its own part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use http_resilience::retry::{Backoff, Jitter};
use http_resilience::ResilienceLayer;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One scripted answer of the mock gateway: status, headers, body.
pub type Answer = (u16, &'static [(&'static str, &'static str)], &'static str);

/// A route answers from its script, one entry per call, repeating the last one.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub what: &'static str,
    pub script: &'static [Answer],
}

pub const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/v1/images/img_1",
        what: "429 with Retry-After: 1, then success (seed 000)",
        script: &[
            (
                429,
                &[("retry-after", "1")],
                r#"{"error":{"code":"too_many_requests","message":"Rate limit exceeded"},"trace_id":"9f1c6e0a-7d44"}"#,
            ),
            (
                200,
                &[("content-type", "image/png"), ("x-request-id", "req-img-2")],
                "\u{89}PNG...",
            ),
        ],
    },
    Route {
        method: Method::GET,
        path: "/v1/models/flux",
        what: "503 while the model loads (estimated_time 0.5 s), then success (Hugging Face)",
        script: &[
            (
                503,
                &[("x-request-id", "hf-1")],
                r#"{"error":"Model flux-dev is currently loading","estimated_time":0.5}"#,
            ),
            (
                200,
                &[
                    ("content-type", "application/json"),
                    ("x-request-id", "hf-2"),
                ],
                r#"{"id":"flux-dev","ready":true}"#,
            ),
        ],
    },
    Route {
        method: Method::POST,
        path: "/v1/music/generate",
        what: "200 carrying business code 130005, then success (seed 003)",
        script: &[
            (
                200,
                &[("content-type", "application/json")],
                r#"{"code":130005,"msg":"Request too frequent","data":null}"#,
            ),
            (
                200,
                &[("content-type", "application/json")],
                r#"{"code":0,"msg":"Success","data":{"task_id":"m-77"}}"#,
            ),
        ],
    },
    Route {
        method: Method::POST,
        path: "/v1/images/generate",
        what: "402 used_up: the balance is gone, never retried (seed 000 / seed 001)",
        script: &[(
            402,
            &[],
            r#"{"error":{"code":"used_up","message":"Instance balance and general balance exhausted"},"trace_id":"a0b1c2d3-used-up"}"#,
        )],
    },
    Route {
        method: Method::POST,
        path: "/v1/images/moderated",
        what: "403 moderation verdict, never retried (seed 000 `forbidden`)",
        script: &[(
            403,
            &[],
            r#"{"error":{"code":"forbidden","message":"Content moderation rejected the prompt"},"trace_id":"mod-42"}"#,
        )],
    },
    Route {
        method: Method::POST,
        path: "/v1/chat/quota",
        what: "429 insufficient_quota: a 429 never to retry (OpenAI)",
        script: &[(
            429,
            &[("x-request-id", "req_7Hc2")],
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        )],
    },
];

/// The paid-task route: creates a job per idempotency key and loses the first answer.
pub const TASKS: &str = "/v1/video/tasks";

#[derive(Default)]
pub struct Gateway {
    calls: HashMap<&'static str, usize>,
    jobs: HashMap<String, String>,
    /// Paid tasks created so far.
    pub jobs_created: usize,
}

fn answer(gateway: &Mutex<Gateway>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut gateway = gateway.lock().unwrap_or_else(|p| p.into_inner());
    if req.uri().path() == TASKS {
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(task) = gateway.jobs.get(&key) {
            return build(
                200,
                &[
                    ("idempotent-replayed", "true"),
                    ("content-type", "application/json"),
                ],
                format!(r#"{{"task_id":"{task}"}}"#),
            );
        }
        gateway.jobs_created += 1;
        let task = format!("task-{}", gateway.jobs_created);
        gateway.jobs.insert(key, task);
        // The job exists, but the answer is lost on the way: a 502 from the proxy.
        return build(
            502,
            &[("content-type", "text/html")],
            "<html>502 Bad Gateway</html>".into(),
        );
    }
    let Some(route) = ROUTES.iter().find(|r| r.path == req.uri().path()) else {
        return build(
            404,
            &[],
            r#"{"error":{"code":"no_api","message":"Path not registered"}}"#.into(),
        );
    };
    let n = gateway.calls.entry(route.path).or_default();
    let (status, headers, body) = route.script[(*n).min(route.script.len() - 1)];
    *n += 1;
    build(status, headers, body.into())
}

fn build(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(*name, http::HeaderValue::from_static(value));
    }
    response
}

/// Serves the gateway until the runtime ends.
pub async fn start_mock_gateway(gateway: Arc<Mutex<Gateway>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let gateway = Arc::clone(&gateway);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = answer(&gateway, &req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The examples' stack settings: a short backoff keeps them quick, and a deadline bounds each
/// call.
pub fn demo_layer() -> ResilienceLayer {
    ResilienceLayer::new()
        .backoff(
            Backoff::new(Duration::from_millis(200), Duration::from_secs(2)).jitter(Jitter::Equal),
        )
        .deadline(Duration::from_secs(30))
}
