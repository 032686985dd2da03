//! Pacing from announced limits, side by side, in paused time so that the counts repeat.
//!
//! A mock provider on 127.0.0.1:0 enforces 600 requests and 100,000 tokens a minute (buckets
//! refilling continuously, as OpenAI and Anthropic describe theirs) and announces them in
//! OpenAI's, Anthropic's or the IETF's headers, with a wait on every 429. 64 callers send chat
//! completions (a POST with a JSON body, about 130 tokens each) back to back for 10 simulated
//! minutes; at minute 5 the provider halves both limits. It answers a completion after 250 ms and
//! a 429 after 50 ms (simulated), counting each request when it arrives. Rows:
//!
//! - this crate's standard stack with pacing off (`without_pacing()`);
//! - reqwest-middleware with reqwest-retry (5 retries, its default backoff);
//! - a fixed limiter set to the true initial limit, 10 a second, in front of this crate's stack
//!   without pacing (what a user who knows the limit would build; it cannot follow the halving);
//! - this crate's standard stack, whose pacer is told nothing.
//!
//! Every crate stack makes up to 6 attempts within a 60 s deadline. Columns: the share of
//! attempts answered 429; goodput, successes within the 10 minutes as a share of what the limit
//! in force allowed (the full bucket at the start plus the refill); the same from minute 7 on,
//! one window after the halving, against the halved limit; p50 and p99 of a logical request's
//! latency; wasted attempts (answered 429); attempts per success; logical requests that
//! failed. First-come first-served waiting allows
//! a p99 of callers ÷ limit: 6.4 s before the halving, 12.8 s after.
//!
//! Every row repeats exactly but reqwest-retry's, whose jitter draws from the operating system's
//! randomness: its figures move by about 1% from run to run.
//!
//! It also writes `pacing.svg` beside the README: the limit in force and each client's
//! successes and 429s per second, for the OpenAI-style run.
//!
//! Run: `cargo bench --bench pacing --features reqwest`

#[path = "../tests/common/provider.rs"]
mod provider;
#[path = "support/server.rs"]
mod server;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use http_resilience::pacing::TokenCost;
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use provider::{Provider, Second, Style};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const CALLERS: usize = 64;

/// The simulated run: 10 minutes, or `PACING_SECONDS` for a quick look (the halving stays at
/// minute 5, and the tables' goodput assumes the full run).
fn run_for() -> Duration {
    std::env::var("PACING_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(RUN, Duration::from_secs)
}
const RUN: Duration = Duration::from_secs(600);
const HALVED_AT: Duration = Duration::from_secs(300);
const REQUESTS_PER_MINUTE: f64 = 600.0;
/// How long the provider takes to answer a completion, and to refuse one.
const SUCCESS_LATENCY: Duration = Duration::from_millis(250);
const LIMITED_LATENCY: Duration = Duration::from_millis(50);
const TOKENS_PER_MINUTE: f64 = 100_000.0;

const BODY: &str = r#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"Summarise the retry policy of this service in two sentences, please."}]}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NoPacer,
    ReqwestRetry,
    FixedLimiter,
    Pacer,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::NoPacer,
        Kind::ReqwestRetry,
        Kind::FixedLimiter,
        Kind::Pacer,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::NoPacer => "http-resilience, pacing off",
            Kind::ReqwestRetry => "reqwest-retry (5 retries)",
            Kind::FixedLimiter => "fixed limiter at 10/s + http-resilience",
            Kind::Pacer => "http-resilience with its pacer",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Kind::NoPacer => "#d62728",
            Kind::ReqwestRetry => "#ff7f0e",
            Kind::FixedLimiter => "#9467bd",
            Kind::Pacer => "#2ca02c",
        }
    }
}

struct Row {
    kind: Kind,
    seconds: Vec<Second>,
    latencies: Vec<Duration>,
    failed: usize,
}

impl Row {
    /// Attempts the provider answered 200, over the whole run and the tail after it.
    fn ok(&self) -> u64 {
        self.seconds.iter().map(|s| u64::from(s.ok)).sum()
    }

    /// Attempts the provider answered 429.
    fn limited(&self) -> u64 {
        self.seconds.iter().map(|s| u64::from(s.limited)).sum()
    }

    /// Successes within `from..to` seconds of the start.
    fn ok_between(&self, from: u64, to: u64) -> u64 {
        let seconds = self.seconds.iter().skip(from as usize);
        seconds
            .take((to - from) as usize)
            .map(|s| u64::from(s.ok))
            .sum()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
        sorted.get(index).copied().unwrap_or_default()
    }
}

/// What the limits in force allowed over the run: the full bucket at the start plus the refill.
fn allowed() -> f64 {
    let before = HALVED_AT.as_secs_f64() / 60.0 * REQUESTS_PER_MINUTE;
    let after = (RUN - HALVED_AT).as_secs_f64() / 60.0 * REQUESTS_PER_MINUTE / 2.0;
    REQUESTS_PER_MINUTE + before + after
}

async fn serve(provider: Provider) -> SocketAddr {
    server::serve_on_loopback(move |request: Request<hyper::body::Incoming>| {
        let provider = provider.clone();
        async move {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let tokens = TokenCost::estimate_json(&body).get() as f64;
            let response = provider.answer(tokens);
            // Decided on arrival, answered after the provider's latency.
            let latency = if response.status() == 200 {
                SUCCESS_LATENCY
            } else {
                LIMITED_LATENCY
            };
            tokio::time::sleep(latency).await;
            response
        }
    })
    .await
}

/// A limiter at a fixed rate, first come first served.
#[derive(Clone)]
struct FixedLimiter {
    next: Arc<Mutex<Instant>>,
    interval: Duration,
}

impl FixedLimiter {
    async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().expect("lock");
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

type Send = std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>;

async fn run(kind: Kind, style: Style) -> Row {
    let provider = Provider::new(style, REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE);
    let url = format!(
        "http://{}/v1/chat/completions",
        serve(provider.clone()).await
    );
    let layer = ResilienceLayer::new()
        .max_attempts(6)
        .deadline(Duration::from_secs(60));
    let layer = if kind == Kind::Pacer {
        layer
    } else {
        layer.without_pacing()
    };
    let tower_client = ServiceBuilder::new()
        .resilience(layer)
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let reqwest_client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(
            ExponentialBackoff::builder().build_with_max_retries(5),
        ))
        .build();
    let limiter = FixedLimiter {
        next: Arc::new(Mutex::new(Instant::now())),
        interval: Duration::from_secs_f64(60.0 / REQUESTS_PER_MINUTE),
    };
    let send = move || -> Send {
        match kind {
            Kind::ReqwestRetry => {
                let request = reqwest_client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(BODY);
                Box::pin(async move {
                    match request.send().await {
                        Ok(response) => {
                            let ok = response.status() == 200;
                            let _ = response.bytes().await;
                            ok
                        }
                        Err(_) => false,
                    }
                })
            }
            _ => {
                let request = Request::post(&url)
                    .header("content-type", "application/json")
                    .extension(TokenCost::estimate_json(BODY.as_bytes()))
                    .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                    .expect("request");
                let client = tower_client.clone();
                let limiter = (kind == Kind::FixedLimiter).then(|| limiter.clone());
                Box::pin(async move {
                    if let Some(limiter) = limiter {
                        limiter.acquire().await;
                    }
                    match client.oneshot(request).await {
                        Ok(response) => {
                            let ok = response.status() == 200;
                            let _ = response.into_body().collect().await;
                            ok
                        }
                        Err(_) => false,
                    }
                })
            }
        }
    };
    let start = Instant::now();
    provider.reset_log();
    let halving = {
        let provider = provider.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HALVED_AT).await;
            provider.set_limits(REQUESTS_PER_MINUTE / 2.0, TOKENS_PER_MINUTE / 2.0);
        })
    };
    let results = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let local = tokio::task::LocalSet::new();
    for _ in 0..CALLERS {
        let send = send.clone();
        let results = Arc::clone(&results);
        local.spawn_local(async move {
            while start.elapsed() < run_for() {
                let began = Instant::now();
                let ok = send().await;
                if std::env::var_os("PACING_TRACE").is_some() {
                    eprintln!("{:?} {ok} {:?}", start.elapsed(), began.elapsed());
                }
                let mut results = results.lock().expect("lock");
                if ok {
                    results.0.push(began.elapsed());
                } else {
                    results.1 += 1;
                }
            }
        });
    }
    local.await;
    let _ = halving.await;
    let (latencies, failed) = std::mem::take(&mut *results.lock().expect("lock"));
    Row {
        kind,
        seconds: provider.seconds(),
        latencies,
        failed,
    }
}

fn print_table(style: Style, rows: &[Row]) {
    println!();
    println!(
        "{} headers: {CALLERS} callers, {} min, {REQUESTS_PER_MINUTE} requests/min halved at minute {}",
        style.name(),
        RUN.as_secs() / 60,
        HALVED_AT.as_secs() / 60
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>7}",
        "client", "429 share", "goodput", "min 7-10", "p50", "p99", "wasted", "att/succ", "failed"
    );
    let run = RUN.as_secs();
    let halved = HALVED_AT.as_secs();
    for row in rows {
        let ok = row.ok();
        let limited = row.limited();
        // From one window after the halving to the end, against the halved limit.
        let after = row.ok_between(halved + 60, run) as f64
            / ((run - halved - 60) as f64 / 60.0 * REQUESTS_PER_MINUTE / 2.0);
        println!(
            "{:<42} {:>8.2}% {:>8.1}% {:>8.1}% {:>7.1}s {:>7.1}s {:>8} {:>10.3} {:>7}",
            row.kind.name(),
            100.0 * limited as f64 / (ok + limited).max(1) as f64,
            100.0 * row.ok_between(0, run) as f64 / allowed(),
            100.0 * after,
            row.percentile(0.5).as_secs_f64(),
            row.percentile(0.99).as_secs_f64(),
            limited,
            (ok + limited) as f64 / ok.max(1) as f64,
            row.failed
        );
    }
}

/// One chart: the limit in force, and each client's successes (solid) and 429s (dotted) per
/// second, averaged over 10 s.
fn svg(rows: &[Row]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 240.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 50.0;
    const BIN: usize = 10;
    let seconds = RUN.as_secs() as usize;
    let series = |row: &Row, pick: fn(&Second) -> f64| -> Vec<f64> {
        (0..seconds / BIN)
            .map(|bin| {
                let slice = row.seconds.iter().skip(bin * BIN).take(BIN);
                slice.map(pick).sum::<f64>() / BIN as f64
            })
            .collect()
    };
    let all: Vec<(Kind, Vec<f64>, Vec<f64>)> = rows
        .iter()
        .map(|row| {
            (
                row.kind,
                series(row, |s| f64::from(s.ok)),
                series(row, |s| f64::from(s.limited)),
            )
        })
        .collect();
    // A logarithmic axis (of 1 + rate), so that a storm of 1,000 429s a second and a pacer's
    // none fit one chart.
    let top = all
        .iter()
        .flat_map(|(_, ok, limited)| ok.iter().chain(limited))
        .fold(REQUESTS_PER_MINUTE / 60.0, |a, b| a.max(*b));
    let scale = (1.0 + top).log10();
    let x = |bin: usize| LEFT + (W - LEFT - RIGHT) * (bin as f64 + 0.5) / (seconds / BIN) as f64;
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (1.0 + v.max(0.0)).log10() / scale);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{LEFT}" y="18" font-size="13">64 callers, 600 requests/min halved at minute 5, OpenAI-style headers (per second, log scale, 10 s means)</text>
"#
    );
    for v in [0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0] {
        if v > top * 1.5 {
            break;
        }
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.0}/s</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for minute in (0..=10).step_by(1) {
        let px = LEFT + (W - LEFT - RIGHT) * f64::from(minute) / 10.0;
        let _ = writeln!(
            out,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{minute} min</text>"#,
            H - BOTTOM + 18.0
        );
    }
    // The limit in force.
    let half =
        x(HALVED_AT.as_secs() as usize / BIN) - (W - LEFT - RIGHT) / (seconds / BIN) as f64 / 2.0;
    let (full, halved) = (REQUESTS_PER_MINUTE / 60.0, REQUESTS_PER_MINUTE / 120.0);
    let _ = writeln!(
        out,
        r##"<polyline fill="none" stroke="#000" stroke-width="2" stroke-dasharray="6 4" points="{LEFT},{:.1} {half:.1},{:.1} {half:.1},{:.1} {},{:.1}"/>"##,
        y(full),
        y(full),
        y(halved),
        W - RIGHT,
        y(halved)
    );
    let mut legend_y = TOP + 10.0;
    let legend_x = W - RIGHT + 16.0;
    let _ = writeln!(
        out,
        r##"<line x1="{legend_x}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="#000" stroke-width="2" stroke-dasharray="6 4"/><text x="{}" y="{}">limit in force</text>"##,
        legend_x + 24.0,
        legend_x + 30.0,
        legend_y + 4.0
    );
    for (kind, ok, limited) in &all {
        for (values, dash, what) in [
            (ok, "", "successes"),
            (limited, r#" stroke-dasharray="2 3""#, "429s"),
        ] {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(bin, v)| format!("{:.1},{:.1}", x(bin), y(*v)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5"{dash} points="{}"/>"#,
                kind.colour(),
                points.join(" ")
            );
            legend_y += 18.0;
            let _ = writeln!(
                out,
                r#"<line x1="{legend_x}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{}" stroke-width="1.5"{dash}/><text x="{}" y="{}">{}, {what}</text>"#,
                legend_x + 24.0,
                kind.colour(),
                legend_x + 30.0,
                legend_y + 4.0,
                short_name(*kind)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn short_name(kind: Kind) -> &'static str {
    match kind {
        Kind::NoPacer => "pacing off",
        Kind::ReqwestRetry => "reqwest-retry",
        Kind::FixedLimiter => "fixed limiter",
        Kind::Pacer => "pacer",
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let only = std::env::var("PACING_STYLE").ok();
    runtime.block_on(async {
        for style in [Style::OpenAi, Style::Anthropic, Style::Ietf] {
            if only
                .as_deref()
                .is_some_and(|o| !style.name().eq_ignore_ascii_case(o))
            {
                continue;
            }
            let mut rows = Vec::new();
            for kind in Kind::ALL {
                let wall = std::time::Instant::now();
                let row = run(kind, style).await;
                eprintln!(
                    "{} / {}: {} attempts in {:.1?}",
                    style.name(),
                    kind.name(),
                    row.ok() + row.limited(),
                    wall.elapsed()
                );
                rows.push(row);
            }
            print_table(style, &rows);
            if style == Style::OpenAi {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pacing.svg");
                std::fs::write(path, svg(&rows)).expect("write pacing.svg");
                println!("wrote {path}");
            }
        }
    });
}
