//! The standard stack in a reqwest-middleware client: `cargo run --example reqwest_middleware_client --features reqwest`.
//!
//! A local upstream on 127.0.0.1 (an ephemeral port) creates a paid job per idempotency key and
//! loses the first answer (a 502 after the job exists); the client retries with the same key,
//! the server replays the stored result, and exactly one job is created.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use http_resilience::ids::RequestIds;
use http_resilience::reqwest::ResilienceMiddleware;
use http_resilience::{Attempts, ResilienceLayer};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let jobs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let server_jobs = Arc::clone(&jobs);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let jobs = Arc::clone(&server_jobs);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let key = req
                            .headers()
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let mut jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
                        let created = jobs.entry(key).or_default();
                        let response = if *created == 0 {
                            *created = 1;
                            Response::builder()
                                .status(502)
                                .body(Full::new(Bytes::new()))
                        } else {
                            Response::builder()
                                .header("idempotent-replayed", "true")
                                .body(Full::new(Bytes::from_static(br#"{"task_id":"video-1"}"#)))
                        };
                        async move { Ok::<_, Infallible>(response.unwrap_or_default()) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    // An existing reqwest-middleware client gets the whole pipeline with one `.with(..)`.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(ResilienceLayer::new()))
        .build();

    let response = client
        .post(format!("http://{addr}/v1/video/tasks"))
        .header("content-type", "application/json")
        .body(r#"{"prompt":"a timelapse of a city"}"#)
        .send()
        .await?;
    let attempts = response.extensions().get::<Attempts>().cloned();
    let key = response
        .extensions()
        .get::<RequestIds>()
        .and_then(|ids| ids.idempotency_key().cloned());
    println!("status: {}", response.status());
    if let Some(attempts) = attempts {
        println!("{attempts}");
    }
    if let Some(key) = key {
        println!(
            "idempotency key: {key} (replayed by the server: {})",
            key.was_replayed()
        );
    }
    println!("body: {}", response.text().await?);
    let created: u32 = jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .sum();
    println!("jobs created by the server: {created}");
    Ok(())
}
