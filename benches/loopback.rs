//! Loopback throughput and p50/p99 latency at concurrency 16 against a hyper server on
//! 127.0.0.1:0 that answers a small JSON body at once: hyper-util bare and under
//! `ResilienceLayer`; reqwest bare, reqwest-middleware with reqwest-retry, and with this crate's
//! middleware.
//!
//! Each client sends 20 000 requests per round after a warm-up; rounds of the clients are
//! interleaved and each client's best round is kept, which damps a noisy machine. Percentiles
//! are not what criterion reports, so this prints a table.
//!
//! Two scenarios (`LOOPBACK_SCENARIO`, default `get`): `get`, a GET of a small JSON resource,
//! and `post_json`, the everyday call to a generation API: a POST with a JSON body, answered 200
//! with a small JSON body. Besides each client's best round, every round's throughput is divided
//! by its bare client's in the same round; the median and range of those paired ratios are what
//! the README reports (`LOOPBACK_ROUNDS` rounds, default 3).
//!
//! Run: `cargo bench --bench loopback --features reqwest`

#[path = "support/paired.rs"]
mod paired;
#[path = "support/server.rs"]
mod server;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use http_resilience::reqwest::ResilienceMiddleware;
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

/// Requests per round; `LOOPBACK_REQUESTS` overrides it (a small number for profiling).
fn requests() -> usize {
    std::env::var("LOOPBACK_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

const WARM_UP: usize = 2_000;
const CONCURRENCY: usize = 16;
/// Rounds per client; `LOOPBACK_ROUNDS` overrides it.
fn rounds() -> usize {
    std::env::var("LOOPBACK_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

/// The request body of the `post_json` scenario: a generation request.
const JSON_BODY: &[u8] =
    br#"{"model":"image-1","prompt":"a paper boat on a pond","size":"1024x1024","n":1}"#;

type Call = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

async fn serve() -> String {
    let addr = server::serve_on_loopback(|_request| async {
        let body = Full::new(Bytes::from_static(
            br#"{"id":"img_1","url":"https://cdn.example/1.png"}"#,
        ));
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(body);
        response.unwrap_or_default()
    })
    .await;
    format!("http://{addr}/v1/images/img_1")
}

/// One round: returns (requests per second, p50, p99).
async fn round(call: &Call, requests: usize) -> (f64, Duration, Duration) {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let start = Instant::now();
    futures_util::stream::iter(0..requests)
        .for_each_concurrent(CONCURRENCY, |_| {
            let call = Arc::clone(call);
            let latencies = Arc::clone(&latencies);
            async move {
                let sent = Instant::now();
                call().await;
                latencies.lock().expect("not poisoned").push(sent.elapsed());
            }
        })
        .await;
    let elapsed = start.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (requests as f64 / elapsed.as_secs_f64(), at(0.50), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let post = match std::env::var("LOOPBACK_SCENARIO").as_deref() {
        Ok("post_json") => true,
        Ok("get") | Err(_) => false,
        Ok(other) => panic!("LOOPBACK_SCENARIO is get or post_json, not {other}"),
    };
    runtime.block_on(async {
        let url = serve().await;
        let hyper = || Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        // The request of the scenario, as http's and as reqwest's.
        let http_request = move |url: &str| {
            let builder = if post {
                Request::post(url).header("content-type", "application/json")
            } else {
                Request::get(url)
            };
            let body = if post { Full::new(Bytes::from_static(JSON_BODY)) } else { Full::default() };
            builder.body(body).expect("request")
        };
        let reqwest_request = move |client: &reqwest::Client, url: &str| {
            if post {
                client.post(url).header("content-type", "application/json").body(JSON_BODY)
            } else {
                client.get(url)
            }
        };
        let middleware_request = move |client: &reqwest_middleware::ClientWithMiddleware, url: &str| {
            if post {
                client.post(url).header("content-type", "application/json").body(JSON_BODY)
            } else {
                client.get(url)
            }
        };

        let mut clients: Vec<(&str, Call)> = Vec::new();
        {
            let (client, url) = (hyper(), url.clone());
            clients.push(("hyper-util, bare", Arc::new(move || {
                let future = client.request(http_request(&url));
                Box::pin(async move {
                    if let Ok(response) = future.await {
                        let _ = response.into_body().collect().await;
                    }
                })
            })));
        }
        {
            let client = ServiceBuilder::new().resilience(ResilienceLayer::new()).service(hyper());
            let url = url.clone();
            clients.push(("hyper-util + ResilienceLayer", Arc::new(move || {
                let future = client.clone().oneshot(http_request(&url));
                Box::pin(async move {
                    if let Ok(response) = future.await {
                        let _ = response.into_body().collect().await;
                    }
                })
            })));
        }
        {
            let (client, url) = (reqwest::Client::new(), url.clone());
            clients.push(("reqwest, bare", Arc::new(move || {
                let request = reqwest_request(&client, &url);
                Box::pin(async move {
                    if let Ok(response) = request.send().await {
                        let _ = response.bytes().await;
                    }
                })
            })));
        }
        {
            let policy = reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(2);
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(policy))
                .build();
            let url = url.clone();
            clients.push(("reqwest-middleware + reqwest-retry", Arc::new(move || {
                let request = middleware_request(&client, &url);
                Box::pin(async move {
                    if let Ok(response) = request.send().await {
                        let _ = response.bytes().await;
                    }
                })
            })));
        }
        {
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(ResilienceMiddleware::new(ResilienceLayer::new()))
                .build();
            let url = url.clone();
            clients.push(("reqwest-middleware + http-resilience", Arc::new(move || {
                let request = middleware_request(&client, &url);
                Box::pin(async move {
                    if let Ok(response) = request.send().await {
                        let _ = response.bytes().await;
                    }
                })
            })));
        }

        // `LOOPBACK_ONLY=text` keeps the clients whose name contains the text.
        if let Ok(only) = std::env::var("LOOPBACK_ONLY") {
            clients.retain(|(name, _)| name.contains(only.as_str()));
        }
        let requests = requests();
        for (_, call) in &clients {
            round(call, WARM_UP).await;
        }
        let rounds = rounds();
        let mut best: Vec<(f64, Duration, Duration)> = vec![(0.0, Duration::MAX, Duration::MAX); clients.len()];
        let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
        for _ in 0..rounds {
            for (i, (_, call)) in clients.iter().enumerate() {
                let result = round(call, requests).await;
                per_round[i].push(result.0);
                if result.0 > best[i].0 {
                    best[i] = result;
                }
            }
        }
        let scenario = if post { "POST + JSON" } else { "GET" };
        println!("loopback, {scenario}, {requests} requests per round, concurrency {CONCURRENCY}, best of {rounds} rounds");
        // Each client's throughput as a share of its own bare client's and of reqwest-retry's:
        // the ratios the targets are stated in. Run several times; the README gives the median.
        let rps_of = |wanted: &str| {
            clients
                .iter()
                .zip(&best)
                .find(|((name, _), _)| *name == wanted)
                .map(|(_, (rps, _, _))| *rps)
        };
        let (hyper_bare, reqwest_bare) = (rps_of("hyper-util, bare"), rps_of("reqwest, bare"));
        let reqwest_retry = rps_of("reqwest-middleware + reqwest-retry");
        let share = |rps: f64, of: Option<f64>| of.map_or("-".to_owned(), |of| format!("{:.0}%", 100.0 * rps / of));
        println!(
            "{:<40} {:>12} {:>10} {:>10} {:>8} {:>16}",
            "client", "requests/s", "p50", "p99", "of bare", "of reqwest-retry"
        );
        for ((name, _), (rps, p50, p99)) in clients.iter().zip(&best) {
            let bare = if name.starts_with("hyper-util") { hyper_bare } else { reqwest_bare };
            let of_retry = if name.starts_with("reqwest-middleware") { reqwest_retry } else { None };
            println!(
                "{name:<40} {rps:>12.0} {p50:>10.1?} {p99:>10.1?} {:>8} {:>16}",
                share(*rps, bare),
                share(*rps, of_retry)
            );
        }
        // Paired: each round's throughput over its reference's in the same round.
        let index_of = |wanted: &str| clients.iter().position(|(name, _)| *name == wanted);
        println!("paired per-round ratios: median (range) over {rounds} rounds");
        for (i, (name, _)) in clients.iter().enumerate() {
            let references = [
                (if name.starts_with("hyper-util") { "hyper-util, bare" } else { "reqwest, bare" }, "bare"),
                ("reqwest-middleware + reqwest-retry", "reqwest-retry"),
            ];
            for (reference, label) in references {
                let Some(r) = index_of(reference) else { continue };
                if r == i || (label == "reqwest-retry" && !name.starts_with("reqwest-middleware")) {
                    continue;
                }
                let ratios = per_round[i].iter().zip(&per_round[r]).map(|(a, b)| a / b).collect();
                let (median, low, high) = paired::median_and_range(ratios);
                println!("  {name:<40} of {label:<14} {median:.3} ({low:.3} to {high:.3})");
            }
        }
    });
}
