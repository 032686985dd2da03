//! A mock AI provider that enforces a request and a token limit, each a bucket refilling
//! continuously (as OpenAI and Anthropic describe theirs), and announces them in one of the
//! header families. Time is tokio's, so it runs under a paused clock. Shared by
//! `tests/pacing.rs` and `benches/pacing.rs`.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::time::Instant;

/// How the provider announces its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, Go durations, `retry-after-ms`.
    OpenAi,
    /// `anthropic-ratelimit-{requests,tokens}-*`, RFC 3339 resets to the second, `retry-after`.
    Anthropic,
    /// `RateLimit-Policy` and `RateLimit` (structured), whole seconds, `retry-after`.
    Ietf,
    /// `X-RateLimit-Limit/Remaining/Reset` for requests, the reset in epoch seconds.
    XRateLimit,
    /// No limit headers at all; `retry-after` on a 429.
    Silent,
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::OpenAi => "OpenAI",
            Style::Anthropic => "Anthropic",
            Style::Ietf => "IETF",
            Style::XRateLimit => "X-RateLimit",
            Style::Silent => "none",
        }
    }
}

struct Bucket {
    capacity: f64,
    level: f64,
    per_second: f64,
}

impl Bucket {
    fn new(per_minute: f64) -> Self {
        Bucket {
            capacity: per_minute,
            level: per_minute,
            per_second: per_minute / 60.0,
        }
    }

    fn refill(&mut self, seconds: f64) {
        self.level = (self.level + self.per_second * seconds).min(self.capacity);
    }

    fn set_limit(&mut self, per_minute: f64) {
        self.capacity = per_minute;
        self.per_second = per_minute / 60.0;
        self.level = self.level.min(per_minute);
    }

    /// Seconds until `amount` is available.
    fn wait_for(&self, amount: f64) -> f64 {
        ((amount - self.level) / self.per_second).max(0.0)
    }

    fn until_full(&self) -> f64 {
        ((self.capacity - self.level) / self.per_second).max(0.0)
    }
}

/// One second of the provider's log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Second {
    pub ok: u32,
    pub limited: u32,
    /// The request limit in force, per minute.
    pub limit: f64,
}

struct State {
    style: Style,
    requests: Bucket,
    tokens: Bucket,
    updated: Instant,
    start: Instant,
    seconds: Vec<Second>,
}

/// The provider; clones share it.
#[derive(Clone)]
pub struct Provider {
    state: Arc<Mutex<State>>,
}

impl Provider {
    pub fn new(style: Style, requests_per_minute: f64, tokens_per_minute: f64) -> Self {
        let now = Instant::now();
        Provider {
            state: Arc::new(Mutex::new(State {
                style,
                requests: Bucket::new(requests_per_minute),
                tokens: Bucket::new(tokens_per_minute),
                updated: now,
                start: now,
                seconds: Vec::new(),
            })),
        }
    }

    /// Changes both limits from now on.
    pub fn set_limits(&self, requests_per_minute: f64, tokens_per_minute: f64) {
        let mut state = self.state.lock().unwrap();
        state.catch_up();
        state.requests.set_limit(requests_per_minute);
        state.tokens.set_limit(tokens_per_minute);
    }

    /// Restarts the log and the clock the log counts from.
    pub fn reset_log(&self) {
        let mut state = self.state.lock().unwrap();
        state.start = Instant::now();
        state.seconds.clear();
    }

    /// The log, one entry per second since the start.
    pub fn seconds(&self) -> Vec<Second> {
        self.state.lock().unwrap().seconds.clone()
    }

    /// Answers a request costing `tokens`: 200 if both limits allow it, else 429.
    pub fn answer(&self, tokens: f64) -> Response<Full<Bytes>> {
        let mut state = self.state.lock().unwrap();
        state.catch_up();
        let second = state.start.elapsed().as_secs() as usize;
        let limit = state.requests.capacity;
        if state.seconds.len() <= second {
            state.seconds.resize(second + 1, Second::default());
        }
        state.seconds[second].limit = limit;
        let allowed = state.requests.level >= 1.0 && state.tokens.level >= tokens;
        let mut response = Response::builder();
        if allowed {
            state.requests.level -= 1.0;
            state.tokens.level -= tokens;
            state.seconds[second].ok += 1;
            response = response
                .status(200)
                .header("content-type", "application/json");
        } else {
            state.seconds[second].limited += 1;
            let wait = state
                .requests
                .wait_for(1.0)
                .max(state.tokens.wait_for(tokens));
            response = response
                .status(429)
                .header("content-type", "application/json");
            response = match state.style {
                Style::OpenAi => {
                    response.header("retry-after-ms", format!("{:.0}", (wait * 1000.0).ceil()))
                }
                _ => response.header("retry-after", format!("{:.0}", wait.ceil())),
            };
        }
        response = state.announce(response);
        let body: &'static [u8] = if allowed {
            br#"{"id":"chatcmpl-1","choices":[{"message":{"content":"ok"}}]}"#
        } else {
            br#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#
        };
        response.body(Full::new(Bytes::from_static(body))).unwrap()
    }
}

impl State {
    fn catch_up(&mut self) {
        let now = Instant::now();
        let seconds = now.duration_since(self.updated).as_secs_f64();
        self.requests.refill(seconds);
        self.tokens.refill(seconds);
        self.updated = now;
    }

    fn announce(&self, mut response: http::response::Builder) -> http::response::Builder {
        let (r, t) = (&self.requests, &self.tokens);
        match self.style {
            Style::OpenAi => {
                for (name, bucket) in [("requests", r), ("tokens", t)] {
                    response = response
                        .header(
                            format!("x-ratelimit-limit-{name}"),
                            format!("{}", bucket.capacity),
                        )
                        .header(
                            format!("x-ratelimit-remaining-{name}"),
                            format!("{}", bucket.level.floor()),
                        )
                        .header(
                            format!("x-ratelimit-reset-{name}"),
                            go_duration(bucket.until_full()),
                        );
                }
            }
            Style::Anthropic => {
                for (name, bucket) in [("requests", r), ("tokens", t)] {
                    // Whole seconds, rounded up, as an RFC 3339 time.
                    let at =
                        SystemTime::now() + Duration::from_secs_f64(bucket.until_full() + 0.999);
                    response = response
                        .header(
                            format!("anthropic-ratelimit-{name}-limit"),
                            format!("{}", bucket.capacity),
                        )
                        .header(
                            format!("anthropic-ratelimit-{name}-remaining"),
                            format!("{}", bucket.level.floor()),
                        )
                        .header(
                            format!("anthropic-ratelimit-{name}-reset"),
                            humantime::format_rfc3339_seconds(at).to_string(),
                        );
                }
            }
            Style::Ietf => {
                response = response
                    .header(
                        "ratelimit-policy",
                        format!(
                            "\"requests\";q={};w=60, \"tokens\";q={};w=60;qu=\"tokens\"",
                            r.capacity, t.capacity
                        ),
                    )
                    .header(
                        "ratelimit",
                        format!(
                            "\"requests\";r={};t={}, \"tokens\";r={};t={}",
                            r.level.floor(),
                            r.until_full().ceil(),
                            t.level.floor(),
                            t.until_full().ceil()
                        ),
                    );
            }
            Style::XRateLimit => {
                let at = SystemTime::now() + Duration::from_secs_f64(r.until_full());
                let epoch = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
                    .ceil();
                response = response
                    .header("x-ratelimit-limit", format!("{}", r.capacity))
                    .header("x-ratelimit-remaining", format!("{}", r.level.floor()))
                    .header("x-ratelimit-reset", format!("{epoch}"));
            }
            Style::Silent => {}
        }
        response
    }
}

/// Seconds as a Go duration with millisecond precision: `120ms`, `1.5s`, `6m0s`.
fn go_duration(seconds: f64) -> String {
    let ms = (seconds * 1000.0).ceil() as u64;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
    }
}
