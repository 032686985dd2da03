//! The standard stack over hyper-util's client: `cargo run --example hyper_client`.
//!
//! A local upstream on 127.0.0.1 (an ephemeral port) answers 503 with `Retry-After: 1` once,
//! then succeeds; the client waits as asked and prints the outcome.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use http_resilience::{Attempts, RequestIds, ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = Arc::clone(&calls);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                    async move {
                        let response = if first {
                            Response::builder()
                                .status(503)
                                .header("retry-after", "1")
                                .body(Full::new(Bytes::new()))
                        } else {
                            Response::builder().body(Full::new(Bytes::from(
                                r#"{"data":[{"url":"https://cdn.example/1.png"}]}"#,
                            )))
                        };
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    // Any tower HTTP client service works; here, hyper-util's pooled client.
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let request = Request::post(format!("http://{addr}/v1/images/generations"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"prompt":"a paper boat"}"#,
        )))?;
    let response = client.oneshot(request).await?;
    let attempts = response.extensions().get::<Attempts>().cloned();
    let ids = response.extensions().get::<RequestIds>().cloned();
    println!("status: {}", response.status());
    if let Some(attempts) = attempts {
        println!("{attempts}");
    }
    let key = ids.as_ref().and_then(|ids| ids.idempotency_key());
    println!(
        "idempotency key sent on every attempt: {}",
        key.map_or("-", |key| key.as_str())
    );
    let body = response.into_body().collect().await?.to_bytes();
    println!("body: {}", String::from_utf8_lossy(&body));
    Ok(())
}
