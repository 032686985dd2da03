//! The README's main command: `cargo run --example demo`.
//!
//! Starts an in-process mock AI gateway on 127.0.0.1 (an ephemeral port) that answers with the
//! failures documented in the seed error pages, then sends requests through the standard stack
//! (`ResilienceLayer` over hyper-util's client) and prints what it does with each: how it
//! classified the answers, how long it waited and why, which key and trace ids it used, and the
//! masked support report of a failure. It takes about three seconds, most of them spent waiting
//! as the mock gateway asks.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::ids::RequestIds;
use http_resilience::retry::{Backoff, Jitter};
use http_resilience::{ApiError, Attempts, Classification, ResilienceLayer, ServiceBuilderExt};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// One scripted answer of the mock gateway: status, headers, body.
type Answer = (u16, &'static [(&'static str, &'static str)], &'static str);

/// A route answers from its script, one entry per call, repeating the last one.
struct Route {
    method: Method,
    path: &'static str,
    what: &'static str,
    script: &'static [Answer],
}

const ROUTES: &[Route] = &[
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
const TASKS: &str = "/v1/video/tasks";

#[derive(Default)]
struct Gateway {
    calls: HashMap<&'static str, usize>,
    jobs: HashMap<String, String>,
    jobs_created: usize,
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

async fn start_mock_gateway(gateway: Arc<Mutex<Gateway>>) -> std::io::Result<SocketAddr> {
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Arc::new(Mutex::new(Gateway::default()));
    let addr = start_mock_gateway(Arc::clone(&gateway)).await?;
    println!("mock AI gateway on http://{addr}\n");

    // The standard stack, with failures as errors. A short backoff keeps the demo quick.
    let client = ServiceBuilder::new()
        .resilience(
            ResilienceLayer::new()
                .backoff(
                    Backoff::new(Duration::from_millis(200), Duration::from_secs(2))
                        .jitter(Jitter::Equal),
                )
                .deadline(Duration::from_secs(30))
                .failures_as_errors(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let mut reported = None;
    for route in ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.path, r.what))
        .chain([(
            Method::POST,
            TASKS,
            "a POST that creates a paid video task; the first answer is lost (502)",
        )])
    {
        let (method, path, what) = route;
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}{path}"))
            .header("authorization", "Bearer sk-demo-0123456789")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"prompt":"a lighthouse at dawn","api_key":"sk-demo-in-body"}"#,
            )))?;
        println!("{what}\n  {method} {path}");
        match client.clone().oneshot(request).await {
            Ok(response) => {
                let status = response.status();
                let extensions = response.extensions().clone();
                let body = response.into_body().collect().await?.to_bytes();
                println!(
                    "  -> success {status}, {} body bytes delivered intact",
                    body.len()
                );
                print_attempts(extensions.get::<Attempts>());
                let ids = extensions.get::<RequestIds>();
                if let Some(key) = ids.and_then(RequestIds::idempotency_key) {
                    let replayed = if key.was_replayed() {
                        " (the server replayed the stored result)"
                    } else {
                        ""
                    };
                    println!("     idempotency key: {key}{replayed}");
                }
                if let Some(c) = extensions
                    .get::<Classification>()
                    .and_then(|c| c.trace_id())
                {
                    println!("     trace id: {c}");
                }
            }
            Err(error) => {
                println!("  -> {error}");
                print_attempts(error.attempts());
                if reported.is_none() && error.status() == Some(StatusCode::PAYMENT_REQUIRED) {
                    reported = Some(error);
                }
            }
        }
        println!();
    }

    let created = gateway
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .jobs_created;
    println!("paid video tasks created by the gateway: {created} (one logical POST, retried with the same key)\n");

    if let Some(error) = reported {
        print_report(&error);
    }
    Ok(())
}

fn print_attempts(attempts: Option<&Attempts>) {
    let Some(attempts) = attempts else { return };
    for (i, record) in attempts.records().iter().enumerate() {
        let status = record
            .status()
            .map_or("-".into(), |s| s.as_u16().to_string());
        let kind = record.kind().map_or("ok", |k| k.as_str());
        let waited = if i == 0 {
            String::new()
        } else {
            format!(" after waiting {:.1?}", record.delay())
        };
        println!("     attempt {}: {status} {kind}{waited}", i + 1);
    }
    println!("     {attempts}");
}

fn print_report(error: &ApiError) {
    println!("support report of the 402, with the token and api_key masked:");
    for line in error.report().to_string().lines() {
        println!("  | {line}");
    }
}
