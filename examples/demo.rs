//! The README's main command: `cargo run --example demo`.
//!
//! Starts an in-process mock AI gateway on 127.0.0.1 (an ephemeral port) that answers with the
//! failures documented in the seed error pages, then sends requests through the standard stack
//! (`ResilienceLayer` over hyper-util's client) and prints what it does with each: how it
//! classified the answers, how long it waited and why, which key and trace ids it used, and the
//! masked support report of a failure. It takes about three seconds, most of them spent waiting
//! as the mock gateway asks.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::ids::RequestIds;
use http_resilience::{ApiError, Attempts, Classification, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/mock_gateway.rs"]
mod mock_gateway;

use mock_gateway::{demo_layer, start_mock_gateway, Gateway, ROUTES, TASKS};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Arc::new(Mutex::new(Gateway::default()));
    let addr = start_mock_gateway(Arc::clone(&gateway)).await?;
    println!("mock AI gateway on http://{addr}\n");

    // The standard stack, with failures as errors. A short backoff keeps the demo quick.
    let client = ServiceBuilder::new()
        .resilience(demo_layer().failures_as_errors())
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
