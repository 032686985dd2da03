//! What sharing state through a store costs a request: the latency of one store operation
//! (a lease of permits) against a local Redis server and in process, and the round trips per
//! request of a paced stack sharing through Redis.
//!
//! `HTTP_RESILIENCE_REDIS_URL=redis://127.0.0.1:PORT cargo bench --bench store --features redis`
//! (without the variable, only the in-process store is measured).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_resilience::store::{InProcessStore, RedisStore, SharedLimit, StateStore};

const OPERATIONS: usize = 5_000;

async fn latencies(store: &dyn StateStore, scope: &str) -> Vec<Duration> {
    store
        .record_limit(
            scope,
            SharedLimit {
                per_second: 1e9,
                burst: 1e12,
                remaining: 1e12,
                keep_for: Duration::from_secs(60),
            },
        )
        .await
        .expect("the store answers");
    let mut times = Vec::with_capacity(OPERATIONS);
    for _ in 0..OPERATIONS {
        let start = Instant::now();
        store
            .take_permits(scope, 4)
            .await
            .expect("the store answers");
        times.push(start.elapsed());
    }
    times.sort();
    times
}

fn report(name: &str, times: &[Duration]) {
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{name:28} p50 {:>9.1?}  p90 {:>9.1?}  p99 {:>9.1?}  ({} operations)",
        at(0.5),
        at(0.9),
        at(0.99),
        times.len()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("one lease of permits (take_permits), one caller at a time:");
    let in_process = InProcessStore::new();
    report("in process", &latencies(&in_process, "bench").await);
    match std::env::var("HTTP_RESILIENCE_REDIS_URL") {
        Ok(url) => {
            let store = Arc::new(
                RedisStore::connect(&url, format!("hr-bench-{}", std::process::id()))
                    .await
                    .expect("Redis at HTTP_RESILIENCE_REDIS_URL"),
            );
            report("Redis on 127.0.0.1", &latencies(&*store, "bench").await);
        }
        Err(_) => println!("(set HTTP_RESILIENCE_REDIS_URL to measure a Redis server)"),
    }
}
