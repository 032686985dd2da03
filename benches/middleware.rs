//! What a reqwest-middleware chain costs per request, without the network: each chain ends in
//! a middleware that answers at once, so only the middleware in front of it is measured. Side
//! by side: the bare chain, reqwest-retry (`RetryTransientMiddleware`, what reqwest users
//! otherwise pick), and this crate's `ResilienceMiddleware` with every default; on the
//! everyday call to a generation API (a POST with a JSON body answered 200 with a small JSON
//! body) and a GET.
//!
//! `cargo bench --features reqwest --bench middleware` times them with criterion;
//! `bash benches/instructions.sh` counts their instructions and allocations with callgrind
//! (`MIDDLEWARE_ONLY`, below). The loopback bench measures the same clients over a real
//! connection.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use futures_util::FutureExt;
use http_resilience::reqwest::ResilienceMiddleware;
use http_resilience::ResilienceLayer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, RequestBuilder};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;

#[path = "../tests/common/answer.rs"]
mod answer;
#[path = "support/in_process.rs"]
mod in_process;

use answer::Answer;

const CHAINS: &[&str] = &["bare", "reqwest_retry", "http_resilience"];

fn chain(name: &str) -> Option<ClientWithMiddleware> {
    let builder = ClientBuilder::new(reqwest::Client::new());
    let builder =
        match name {
            "bare" => builder,
            "reqwest_retry" => builder.with(RetryTransientMiddleware::new_with_policy(
                ExponentialBackoff::builder().build_with_max_retries(2),
            )),
            "http_resilience" => builder
                .with_arc(Arc::new(ResilienceMiddleware::new(ResilienceLayer::new()))
                    as Arc<dyn Middleware>),
            _ => return None,
        };
    Some(builder.with(Answer).build())
}

/// Sends one request and reads its answer's body.
fn send(request: RequestBuilder) {
    let response = request
        .send()
        .now_or_never()
        .expect("ready at once")
        .expect("a success");
    let body = response.bytes().now_or_never().expect("ready at once");
    black_box(body.expect("the body"));
}

// Kept out of line, as in benches/overhead.rs: one call is one whole request.
#[inline(never)]
fn post_json(client: &ClientWithMiddleware) {
    send(
        client
            .post("https://api.example.com/v1/images/generations")
            .header("authorization", "Bearer sk-test")
            .header("content-type", "application/json")
            .body(
                r#"{"model":"image-1","prompt":"a paper boat on a pond","size":"1024x1024","n":1}"#,
            ),
    );
}

#[inline(never)]
fn get(client: &ClientWithMiddleware) {
    send(
        client
            .get("https://api.example.com/v1/images/img_1")
            .header("authorization", "Bearer sk-test"),
    );
}

fn bench_middleware(c: &mut Criterion) {
    let mut group = c.benchmark_group("reqwest_middleware_overhead");
    for name in CHAINS {
        let client = chain(name).expect("a known chain");
        group.bench_function(format!("post_json_{name}"), |b| {
            b.iter(|| post_json(&client))
        });
        group.bench_function(format!("get_{name}"), |b| b.iter(|| get(&client)));
    }
    group.finish();
}

/// Without criterion, for callgrind: `MIDDLEWARE_LIST=1` prints the chains' names;
/// `MIDDLEWARE_ONLY=<chain> MIDDLEWARE_SCENARIO=get|post_json MIDDLEWARE_ROUNDS=<n>` sends `n`
/// requests through one chain. Counts at two round numbers, subtracted, give the exact cost of
/// one request (see `instructions.sh`).
fn without_criterion() -> bool {
    if std::env::var_os("MIDDLEWARE_LIST").is_some() {
        for name in CHAINS {
            println!("{name}");
        }
        return true;
    }
    let Ok(name) = std::env::var("MIDDLEWARE_ONLY") else {
        return false;
    };
    let client = chain(&name).unwrap_or_else(|| panic!("MIDDLEWARE_ONLY names one of {CHAINS:?}"));
    let send = match std::env::var("MIDDLEWARE_SCENARIO").as_deref() {
        Ok("get") => get,
        Ok("post_json") | Err(_) => post_json,
        Ok(other) => panic!("MIDDLEWARE_SCENARIO is get or post_json, not {other}"),
    };
    let rounds = in_process::rounds("MIDDLEWARE");
    for _ in 0..rounds {
        send(&client);
    }
    true
}

criterion_group!(benches, bench_middleware);

fn main() {
    in_process::main(without_criterion, benches);
}
