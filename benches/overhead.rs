//! Success-path overhead per request, over an inner service that answers at once: the bare
//! service, `tower::retry::Retry` with a cloning policy, and the layers of this crate.
//!
//! Run: `cargo bench --bench overhead`

use std::future::{ready, Ready};
use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use http_resilience::{
    ClassifyLayer, IdempotencyKeyLayer, ResilienceLayer, RetryLayer, TraceIdLayer,
};
use tower::retry::Policy;
use tower::{Layer, Service};

/// An upstream that answers 200 with a small JSON body at once.
#[derive(Clone, Copy)]
struct Instant200;

impl Service<Request<Full<Bytes>>> for Instant200 {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        let mut response = Response::new(Full::new(Bytes::from_static(
            br#"{"id":"img_1","url":"https://cdn/x.png"}"#,
        )));
        response
            .headers_mut()
            .insert("content-type", http::HeaderValue::from_static("image/png"));
        response
            .headers_mut()
            .insert("x-request-id", http::HeaderValue::from_static("req_123"));
        ready(Ok(response))
    }
}

/// The policy a tower user writes: clone every request, retry errors up to twice.
#[derive(Clone)]
struct CloningPolicy {
    retries_left: usize,
}

impl<Res, E> Policy<Request<Full<Bytes>>, Res, E> for CloningPolicy {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.retries_left > 0 => {
                self.retries_left -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

fn request() -> Request<Full<Bytes>> {
    Request::get("https://api.example.com/v1/images/img_1")
        .header("authorization", "Bearer sk-test")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .body(Full::new(Bytes::from_static(b"")))
        .expect("valid request")
}

fn post_request() -> Request<Full<Bytes>> {
    Request::post("https://api.example.com/v1/images")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .header("user-agent", "bench/1.0")
        .body(Full::new(Bytes::from_static(br#"{"prompt":"a cat"}"#)))
        .expect("valid request")
}

fn run<S>(service: &mut S)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    run_with(service, request())
}

fn run_with<S>(service: &mut S, request: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let future = service.call(request);
    let response = future
        .now_or_never()
        .expect("ready at once")
        .expect("success");
    black_box(response);
}

fn bench_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("success_path_overhead");
    let mut bare = Instant200;
    group.bench_function("bare", |b| b.iter(|| run(&mut bare)));
    let mut tower_retry =
        tower::retry::RetryLayer::new(CloningPolicy { retries_left: 2 }).layer(Instant200);
    group.bench_function("tower_retry_cloning_policy", |b| {
        b.iter(|| run(&mut tower_retry))
    });
    let mut retry = RetryLayer::new().layer(Instant200);
    group.bench_function("http_resilience_retry", |b| b.iter(|| run(&mut retry)));
    let mut classify = ClassifyLayer::new().layer(Instant200);
    group.bench_function("http_resilience_classify", |b| {
        b.iter(|| run(&mut classify))
    });
    let mut retry_classify = RetryLayer::new().layer(ClassifyLayer::new().layer(Instant200));
    group.bench_function("http_resilience_retry_classify", |b| {
        b.iter(|| run(&mut retry_classify))
    });
    let mut trace_ids = TraceIdLayer::new().layer(Instant200);
    group.bench_function("http_resilience_trace_id", |b| {
        b.iter(|| run(&mut trace_ids))
    });
    // A GET gets no key; this measures what the layer costs a request it leaves alone, and the
    // POST variant what it costs to make and send a key.
    let mut idempotency = IdempotencyKeyLayer::new().layer(Instant200);
    group.bench_function("http_resilience_idempotency_get", |b| {
        b.iter(|| run(&mut idempotency))
    });
    group.bench_function("http_resilience_idempotency_post", |b| {
        b.iter(|| run_with(&mut idempotency, post_request()))
    });
    let mut full = ResilienceLayer::new().layer(Instant200);
    group.bench_function("http_resilience_full_stack", |b| b.iter(|| run(&mut full)));
    group.finish();
}

criterion_group!(benches, bench_overhead);
criterion_main!(benches);
