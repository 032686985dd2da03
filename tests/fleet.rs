//! A fleet of four worker processes (the `fleet_worker` example) on one API key against the
//! mock provider that enforces its limit, served on 127.0.0.1:0 by this test: with Redis they
//! stay under the limit and use it; alone they overrun it; with Redis killed mid-run no request
//! fails. Real processes share nothing but Redis, so this test runs in real time (eight seconds
//! a run); its assertions are on counts.
#![cfg(feature = "redis")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::provider::{Provider, Style};
use common::{redis_url, spawn_server};
use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

/// The provider's limit: 600 a minute (10 a second after a full bucket of 600).
const PER_MINUTE: f64 = 600.0;
const SECONDS: u64 = 8;
const WORKERS: usize = 4;

/// One run at a time: four processes each, on two cores.
static ONE_RUN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn provider() -> (Provider, std::net::SocketAddr) {
    // The worker is built (if it must be) before the provider's clock and the run's start, so
    // that a build does not count as time the limit allowed and nobody used.
    common::example("fleet_worker");
    let provider = Provider::new(Style::OpenAi, PER_MINUTE, 1e9);
    let answering = provider.clone();
    let addr = spawn_server(move |_request: Request<Incoming>| {
        let response = answering.answer(1.0).map(|body| body.boxed());
        async move { response }
    })
    .await;
    (provider, addr)
}

fn start_worker(addr: std::net::SocketAddr, redis: Option<&str>, namespace: &str) -> Child {
    let mut command = Command::new(common::example("fleet_worker"));
    command
        .args(["--url", &format!("http://{addr}/v1/chat/completions")])
        .args(["--seconds", &SECONDS.to_string()])
        .args(["--concurrency", "4"])
        .args(["--namespace", namespace])
        .stdout(Stdio::piped())
        .stderr(if std::env::var("HR_DEBUG_FLEET").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    command.spawn().expect("the worker starts")
}

/// Every worker's report.
async fn finish(workers: Vec<Child>) -> Vec<Value> {
    tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|worker| {
                let output = worker.wait_with_output().expect("the worker ends");
                let line = String::from_utf8_lossy(&output.stdout);
                serde_json::from_str(line.trim()).expect("one JSON line")
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Runs the fleet to its end: every worker's report, and how long the run took.
async fn run(
    addr: std::net::SocketAddr,
    redis: Option<&str>,
    namespace: &str,
) -> (Vec<Value>, Duration) {
    let start = tokio::time::Instant::now();
    let workers = (0..WORKERS)
        .map(|_| start_worker(addr, redis, namespace))
        .collect();
    let reports = finish(workers).await;
    (reports, start.elapsed())
}

fn sum(reports: &[Value], key: &str) -> u64 {
    reports.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum()
}

/// What the provider saw: attempts answered 200 and 429.
fn provider_counts(provider: &Provider) -> (u32, u32) {
    let seconds = provider.seconds();
    (
        seconds.iter().map(|s| s.ok).sum(),
        seconds.iter().map(|s| s.limited).sum(),
    )
}

/// What the limit allowed over the run: the full bucket and its refill.
fn allowed(elapsed: Duration) -> f64 {
    PER_MINUTE + PER_MINUTE / 60.0 * elapsed.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_sharing_redis_stay_under_the_limit_and_use_it() {
    let Some(url) = redis_url() else { return };
    let _one = ONE_RUN.lock().await;
    let (provider, addr) = provider().await;
    let namespace = format!("fleet-{}", std::process::id());
    let (reports, elapsed) = run(addr, Some(&url), &namespace).await;
    let (ok, limited) = provider_counts(&provider);
    let attempts = ok + limited;
    eprintln!(
        "per second (ok, 429): {:?}",
        provider
            .seconds()
            .iter()
            .map(|s| (s.ok, s.limited))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "with Redis: {ok} answered 200 and {limited} answered 429 of {attempts} attempts; \
         {:.1}% of the {:.0} allowed used; reports {reports:?}",
        f64::from(ok) * 100.0 / allowed(elapsed),
        allowed(elapsed)
    );
    assert_eq!(sum(&reports, "errors"), 0);
    // Issue 19 asks for at most 1%: fourteen runs on the project's machine measured 0.14% to
    // 0.86% (see the README). The bound leaves room for a loaded CI machine, against the 26%
    // of the same fleet pacing alone.
    assert!(
        limited * 100 <= attempts * 2,
        "{limited} of {attempts} attempts answered 429"
    );
    assert!(
        f64::from(ok) >= 0.9 * allowed(elapsed - Duration::from_secs(1)),
        "used {ok} of {:.0}",
        allowed(elapsed)
    );
    for report in &reports {
        assert_eq!(report["pacer_store"]["failures"], 0, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_pacing_alone_overrun_the_limit() {
    let _one = ONE_RUN.lock().await;
    let (provider, addr) = provider().await;
    let (reports, elapsed) = run(addr, None, "alone").await;
    let (ok, limited) = provider_counts(&provider);
    let attempts = ok + limited;
    eprintln!(
        "alone: {ok} answered 200 and {limited} answered 429 of {attempts} attempts \
         ({:.1}% answered 429; {:.2}x the {:.0} allowed asked for)",
        f64::from(limited) * 100.0 / f64::from(attempts.max(1)),
        f64::from(attempts) / allowed(elapsed),
        allowed(elapsed)
    );
    assert_eq!(sum(&reports, "errors"), 0);
    // Each worker refills at the whole limit's rate: the fleet asks for more than it may.
    assert!(
        limited * 100 > attempts,
        "only {limited} of {attempts} attempts answered 429"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_fails_no_request() {
    if redis_url().is_none() {
        return;
    }
    let _one = ONE_RUN.lock().await;
    // A server of this test's own, to kill.
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("hr-fleet-redis-{}", std::process::id()));
    let mut redis = common::start_redis(port, &dir).await;
    let url = format!("redis://127.0.0.1:{port}");
    let (provider, addr) = provider().await;
    let workers = (0..WORKERS)
        .map(|_| start_worker(addr, Some(&url), "killed"))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.kill().unwrap();
    redis.wait().unwrap();
    let reports = finish(workers).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, limited) = provider_counts(&provider);
    eprintln!(
        "Redis killed at 3 s: {ok} answered 200, {limited} answered 429; reports {reports:?}"
    );
    // Every request ended with an answer: none failed in the stack because the store went.
    assert_eq!(sum(&reports, "errors"), 0);
    assert!(sum(&reports, "ok") > 0);
    for report in &reports {
        assert!(
            report["pacer_store"]["failures"].as_u64().unwrap() >= 1,
            "{report}"
        );
        assert!(
            report["pacer_store"]["fallbacks"].as_u64().unwrap() >= 1,
            "{report}"
        );
    }
}
