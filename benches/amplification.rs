//! Amplification under a 429 storm: a server on 127.0.0.1:0 answers 429 (no Retry-After) to
//! every request; 2000 logical requests at concurrency 16 go through each client, and the server
//! counts what it received. Attempts per logical request, side by side:
//!
//! - this crate's stack with its default retry budget (20% + 10/s over 10 s), over hyper-util
//!   and as reqwest-middleware;
//! - the same stack with the budget turned off (`RetryBudget::unlimited()`);
//! - reqwest-middleware with reqwest-retry's `RetryTransientMiddleware` (2 retries).
//!
//! Then a healthy mix, every tenth answer a 503 and the rest 200, through this crate's default
//! stack and reqwest-retry: the budget must not hold back the retries a healthy service needs.
//!
//! The run uses tokio's paused clock, so backoffs cost no real time and the counts repeat.
//! It is a count, not a timing, so it prints a table instead of using criterion.
//!
//! Run: `cargo bench --bench amplification --features reqwest`

#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use http_resilience::reqwest::ResilienceMiddleware;
use http_resilience::retry::RetryBudget;
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use tower::{ServiceBuilder, ServiceExt};

const LOGICAL_REQUESTS: usize = 2000;
const CONCURRENCY: usize = 16;

async fn storm_server(hits: Arc<AtomicUsize>) -> SocketAddr {
    server::serve_on_loopback(move |req: Request<hyper::body::Incoming>| {
        let n = hits.fetch_add(1, Ordering::Relaxed);
        let response = if req.uri().path().starts_with("/mix") {
            // A healthy mix: every tenth answer a 503, the rest 200.
            let status = if n % 10 == 9 { 503 } else { 200 };
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::from_static(b"{}")))
        } else {
            let body = r#"{"error":{"code":"too_many_requests","message":"Rate limit exceeded"}}"#;
            Response::builder()
                .status(429)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
        };
        async move { response.unwrap_or_default() }
    })
    .await
}

/// Sends the logical requests with `send` and returns attempts per logical request.
async fn storm<F, Fut>(hits: &AtomicUsize, send: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = hits.load(Ordering::Relaxed);
    futures_util::stream::iter(0..LOGICAL_REQUESTS)
        .for_each_concurrent(CONCURRENCY, |_| send())
        .await;
    (hits.load(Ordering::Relaxed) - before) as f64 / LOGICAL_REQUESTS as f64
}

/// The storm through this crate's tower stack over hyper-util's client.
async fn tower_storm(hits: &AtomicUsize, url: &str, layer: ResilienceLayer) -> f64 {
    let client = ServiceBuilder::new()
        .resilience(layer)
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    storm(hits, || {
        let client = client.clone();
        let request = Request::get(url).body(Full::default()).expect("request");
        async move {
            if let Ok(response) = client.oneshot(request).await {
                let _ = response.into_body().collect().await;
            }
        }
    })
    .await
}

/// The storm through a reqwest-middleware client.
async fn reqwest_storm(
    hits: &AtomicUsize,
    url: &str,
    client: reqwest_middleware::ClientWithMiddleware,
) -> f64 {
    storm(hits, || {
        let request = client.get(url);
        async move {
            if let Ok(response) = request.send().await {
                let _ = response.bytes().await;
            }
        }
    })
    .await
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = storm_server(Arc::clone(&hits)).await;
        let url = format!("http://{addr}/v1/images/img_1");
        let mut rows: Vec<(&str, f64)> = Vec::new();

        let tower = |layer: ResilienceLayer| tower_storm(&hits, &url, layer);
        let reqwest = |client: reqwest_middleware::ClientWithMiddleware| reqwest_storm(&hits, &url, client);
        let middleware = |m: ResilienceMiddleware| {
            reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(m).build()
        };
        rows.push(("http-resilience, default budget (tower, hyper-util)", tower(ResilienceLayer::new()).await));
        rows.push((
            "http-resilience, default budget (reqwest-middleware)",
            reqwest(middleware(ResilienceMiddleware::new(ResilienceLayer::new()))).await,
        ));
        rows.push((
            "http-resilience, no budget",
            tower(ResilienceLayer::new().budget(RetryBudget::unlimited())).await,
        ));
        let retry = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(RetryTransientMiddleware::new_with_policy(
                ExponentialBackoff::builder().build_with_max_retries(2),
            ))
            .build();
        rows.push(("reqwest-retry, 2 retries", reqwest(retry).await));

        let mix_url = format!("http://{addr}/mix/v1/images/img_1");
        let mix = tower_storm(&hits, &mix_url, ResilienceLayer::new()).await;
        let mix_reqwest_retry = reqwest_storm(
            &hits,
            &mix_url,
            reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(RetryTransientMiddleware::new_with_policy(
                    ExponentialBackoff::builder().build_with_max_retries(2),
                ))
                .build(),
        )
        .await;

        println!("429 storm: {LOGICAL_REQUESTS} logical requests, concurrency {CONCURRENCY}, 3 attempts at most");
        println!("{:<55} {:>22}", "client", "attempts per request");
        for (name, ratio) in rows {
            println!("{name:<55} {ratio:>22.3}");
        }
        println!();
        println!("healthy mix (every tenth answer a 503): {LOGICAL_REQUESTS} logical requests");
        println!("{:<55} {:>22.3}", "http-resilience, default budget (tower, hyper-util)", mix);
        println!("{:<55} {:>22.3}", "reqwest-retry, 2 retries", mix_reqwest_retry);
    });
}
