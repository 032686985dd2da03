//! One worker of a fleet that shares an API key: `cargo run --example fleet_worker --features
//! redis -- --url URL [--redis redis://127.0.0.1:6379] [--seconds N] [--concurrency N]`.
//!
//! Sends GETs to `URL` with one fixed API key for `--seconds` (default 8) from `--concurrency`
//! loops (default 4), through the standard stack. With `--redis`, its pacer and retry budget
//! share their state with every worker started with the same server and namespace
//! (`--namespace`, default `fleet`): run four of these against one provider and together they
//! stay under its limit. Without it, each worker paces alone. If Redis cannot be reached, or
//! goes away mid-run, the worker goes on alone and says so.
//!
//! Prints one JSON line when done: the logical requests sent, how many ended 2xx, how many
//! ended another status, how many ended in an error of the stack, the attempts the provider
//! answered 429, and the store's counts (round trips, failures, decisions taken alone).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use http_resilience::pacing::Pacer;
use http_resilience::retry::RetryBudget;
use http_resilience::store::{RedisStore, StateStore, StoreStats};
use http_resilience::{Attempts, ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

struct Args {
    url: http::Uri,
    redis: Option<String>,
    namespace: String,
    seconds: u64,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut redis, mut namespace) = (None, None, "fleet".to_owned());
    let (mut seconds, mut concurrency) = (8, 4);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?.parse().map_err(|_| "bad --url".to_owned())?),
            "--redis" => redis = Some(value()?),
            "--namespace" => namespace = value()?,
            "--seconds" => seconds = value()?.parse().map_err(|_| "bad --seconds".to_owned())?,
            "--concurrency" => {
                concurrency = value()?
                    .parse()
                    .map_err(|_| "bad --concurrency".to_owned())?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url is required")?,
        redis,
        namespace,
        seconds,
        concurrency: concurrency.max(1),
    })
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    ok: AtomicU64,
    other_status: AtomicU64,
    errors: AtomicU64,
    limited_attempts: AtomicU64,
}

fn stats_json(stats: Option<StoreStats>) -> String {
    match stats {
        Some(s) => format!(
            r#"{{"round_trips":{},"failures":{},"fallbacks":{}}}"#,
            s.round_trips, s.failures, s.fallbacks
        ),
        None => "null".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|message| {
        eprintln!("fleet_worker: {message}");
        message
    })?;
    let store: Option<Arc<dyn StateStore>> = match &args.redis {
        Some(url) => match RedisStore::connect(url, "http-resilience").await {
            Ok(store) => Some(Arc::new(store)),
            Err(error) => {
                eprintln!("fleet_worker: Redis unreachable ({error}); pacing alone");
                None
            }
        },
        None => None,
    };
    let (pacer, budget) = match &store {
        Some(store) => (
            Pacer::new().share_through(Arc::clone(store), args.namespace.clone()),
            RetryBudget::default().share_through(Arc::clone(store), args.namespace.clone()),
        ),
        None => (Pacer::new(), RetryBudget::default()),
    };
    let client = ServiceBuilder::new()
        .resilience(
            ResilienceLayer::new()
                .pacer(pacer.clone())
                .budget(budget.clone())
                .deadline(Duration::from_secs(30)),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let counts = Arc::new(Counts::default());
    let end = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let loops: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, counts, url) = (client.clone(), Arc::clone(&counts), args.url.clone());
            tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    let request = Request::get(url.clone())
                        .header("authorization", "Bearer sk-fleet-shared-key")
                        .body(Full::new(Bytes::new()))
                        .expect("a valid request");
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    match client.clone().oneshot(request).await {
                        Ok(response) => {
                            let limited = response.extensions().get::<Attempts>().map_or(0, |a| {
                                a.records()
                                    .iter()
                                    .filter(|r| r.status().is_some_and(|s| s.as_u16() == 429))
                                    .count() as u64
                            });
                            counts
                                .limited_attempts
                                .fetch_add(limited, Ordering::Relaxed);
                            let counter = if response.status().is_success() {
                                &counts.ok
                            } else {
                                &counts.other_status
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            let _ = response.into_body().collect().await;
                        }
                        Err(error) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("fleet_worker: {error}");
                        }
                    }
                }
            })
        })
        .collect();
    for task in loops {
        task.await?;
    }
    println!(
        r#"{{"requests":{},"ok":{},"other_status":{},"errors":{},"limited_attempts":{},"pacer_store":{},"budget_store":{}}}"#,
        counts.requests.load(Ordering::Relaxed),
        counts.ok.load(Ordering::Relaxed),
        counts.other_status.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
        counts.limited_attempts.load(Ordering::Relaxed),
        stats_json(pacer.store_stats()),
        stats_json(budget.store_stats()),
    );
    Ok(())
}
