//! The README's main command: `cargo run --example demo`.
//!
//! Starts an in-process mock AI gateway on 127.0.0.1 (an ephemeral port) that answers with the
//! failures documented in the seed error pages, sends one request to each route through
//! hyper-util's client under `ClassifyLayer`, and prints what the crate makes of each answer.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use http_resilience::{Classification, ClassifyLayer};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// One scripted answer of the mock gateway.
struct Route {
    path: &'static str,
    what: &'static str,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

const ROUTES: &[Route] = &[
    Route {
        path: "/v1/images/rate-limited",
        what: "429 with Retry-After (seed 000)",
        status: 429,
        headers: &[("retry-after", "2")],
        body: r#"{"error":{"code":"too_many_requests","message":"Rate limit exceeded"},"trace_id":"9f1c6e0a-7d44-4a8e-b0f3-2c1d5e6f7a80"}"#,
    },
    Route {
        path: "/v1/images/overloaded",
        what: "503 while a model loads (Hugging Face)",
        status: 503,
        headers: &[("x-request-id", "hf-1b2c")],
        body: r#"{"error":"Model flux-dev is currently loading","estimated_time":20.0}"#,
    },
    Route {
        path: "/v1/images/used-up",
        what: "403 used_up: balance exhausted (seed 000)",
        status: 403,
        headers: &[],
        body: r#"{"error":{"code":"used_up","message":"Instance balance exhausted"},"trace_id":"a0b1c2d3"}"#,
    },
    Route {
        path: "/v1/video/quota",
        what: "429 insufficient_quota (OpenAI): a 429 never to retry",
        status: 429,
        headers: &[("x-request-id", "req_7Hc2")],
        body: r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    },
    Route {
        path: "/v1/music/business",
        what: "200 carrying business code 130005 (seed 003)",
        status: 200,
        headers: &[("content-type", "application/json")],
        body: r#"{"code":130005,"msg":"Request too frequent","data":null}"#,
    },
    Route {
        path: "/v1/images/moderated",
        what: "403 moderation verdict (seed 000 `forbidden`)",
        status: 403,
        headers: &[],
        body: r#"{"error":{"code":"forbidden","message":"Content moderation rejected the prompt"},"trace_id":"mod-42"}"#,
    },
    Route {
        path: "/v1/jobs/concurrency",
        what: "429 CONCURRENT_GENERATION_LIMIT (seed 002)",
        status: 429,
        headers: &[],
        body: r#"{"success":false,"data":null,"error":{"code":"CONCURRENT_GENERATION_LIMIT","message":"Too many active generation jobs for this user.","active_requests":1,"concurrency_limit":1}}"#,
    },
    Route {
        path: "/v1/chat/overloaded",
        what: "529 overloaded_error (Anthropic)",
        status: 529,
        headers: &[("request-id", "req_011CS")],
        body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CS"}"#,
    },
    Route {
        path: "/v1/chat/gemini",
        what: "429 RESOURCE_EXHAUSTED with RetryInfo (Gemini)",
        status: 429,
        headers: &[],
        body: r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}"#,
    },
    Route {
        path: "/v1/proxy/html",
        what: "502 HTML page from a proxy",
        status: 502,
        headers: &[("content-type", "text/html")],
        body: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    },
    Route {
        path: "/v1/tasks",
        what: "200 task created",
        status: 200,
        headers: &[
            ("content-type", "application/json"),
            ("x-request-id", "req-ok-1"),
        ],
        body: r#"{"success":true,"data":{"task_id":"t-1001"}}"#,
    },
];

async fn mock_gateway(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = ROUTES.iter().find(|route| route.path == req.uri().path());
    let mut response = Response::new(Full::new(Bytes::from_static(
        route
            .map_or(
                r#"{"error":{"code":"no_api","message":"Path not registered"}}"#,
                |r| r.body,
            )
            .as_bytes(),
    )));
    *response.status_mut() = route
        .and_then(|r| StatusCode::from_u16(r.status).ok())
        .unwrap_or(StatusCode::NOT_FOUND);
    for (name, value) in route.map_or(&[][..], |r| r.headers) {
        response.headers_mut().insert(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
    Ok(response)
}

async fn start_mock_gateway() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(mock_gateway);
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
    let addr = start_mock_gateway().await?;
    println!("mock AI gateway on http://{addr}\n");

    let client = ServiceBuilder::new()
        .layer(ClassifyLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    for route in ROUTES {
        let request = Request::get(format!("http://{addr}{}", route.path)).body(Empty::new())?;
        let response = client.clone().oneshot(request).await?;
        let classification = response
            .extensions()
            .get::<Classification>()
            .cloned()
            .ok_or("ClassifyLayer always attaches a Classification")?;
        let body = response.into_body().collect().await?.to_bytes();
        print_outcome(route, &classification, body.len());
    }
    Ok(())
}

fn print_outcome(route: &Route, c: &Classification, body_len: usize) {
    println!("{}", route.what);
    println!("  GET {}", route.path);
    match c.kind() {
        None => println!("  -> success ({})", c.status()),
        Some(kind) => {
            let verdict = c.verdict().map_or("-", |v| v.as_str());
            println!("  -> {kind}, retry: {verdict}");
        }
    }
    if let Some(code) = c.code() {
        println!("     code: {code}");
    }
    if let Some(message) = c.message() {
        println!("     message: {message}");
    }
    if let Some(trace_id) = c.trace_id() {
        println!("     trace id: {trace_id} (from {})", trace_id.source());
    }
    if let Some(wait) = c.wait_hint() {
        println!("     body asks to wait: {wait:?}");
    }
    println!("     body: {body_len} bytes delivered intact\n");
}
