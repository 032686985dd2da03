//! Success-path overhead per request, over an inner service that answers at once: the bare
//! service, `tower::retry::Retry` with a cloning policy, and the layers of this crate; beside
//! them, a floor: the least work any implementation of the whole stack must do.
//!
//! Run: `cargo bench --bench overhead`

use std::future::{ready, Ready};
use std::hint::black_box;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
#[path = "support/in_process.rs"]
mod in_process;
use futures_util::FutureExt;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use http_resilience::request_id::FastRequestIds;
use http_resilience::{
    ClassifyLayer, IdempotencyKeyLayer, RequestIdLayer, ResilienceLayer, RetryLayer,
};
use tower::retry::Policy;
use tower::{Layer, Service};
use tower_http::request_id::MakeRequestId;

/// An upstream that answers 200 at once with a fixed body and media type, and a trace id.
#[derive(Clone, Copy)]
struct Instant {
    body: &'static [u8],
    content_type: &'static str,
}

/// The GET scenario's upstream: an image's metadata served as `image/png`, so the classifier
/// has no body to read.
const IMAGE_UPSTREAM: Instant = Instant {
    body: br#"{"id":"img_1","url":"https://cdn/x.png"}"#,
    content_type: "image/png",
};

/// The POST + JSON scenario's upstream: the everyday answer of a generation API, 200 with a
/// small JSON body (a created task), which the classifier reads for a failure hidden under
/// the 200.
const JSON_UPSTREAM: Instant = Instant {
    body: br#"{"id":"task_8f2a","status":"queued","created":1764547200}"#,
    content_type: "application/json",
};

impl Service<Request<Full<Bytes>>> for Instant {
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
        let mut response = Response::new(Full::new(Bytes::from_static(self.body)));
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static(self.content_type),
        );
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
        Some(copy_request(req))
    }
}

/// The copy of a request a retry needs, made the way a tower user's cloning policy makes it.
fn copy_request(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}

/// The least work any implementation of the whole stack must do for a GET answered 200 at
/// once, written as one service with no layers, no futures of its own and no policy logic: a
/// lower bound to read the stack's overhead against, not something to use.
///
/// What it keeps is what the issues require on the success path: a client request id made and
/// stamped, one copy of the request kept for a retry (as tower's cloning policy makes), the
/// request counted in a budget, the server's trace-id header read and copied, the media type
/// looked at, the time taken, and the three records (classification, trace id, attempts) put on
/// the response. The records are stand-ins of the same shape as the crate's, since what they
/// cost is the extension map and one box each; the trace id is copied once and shared by two.
#[derive(Clone)]
struct RequiredWorkFloor<S> {
    inner: S,
    ids: FastRequestIds,
    request_id: HeaderName,
    requests: Arc<AtomicU64>,
}

#[derive(Clone)]
#[allow(dead_code)] // Stand-ins: only what they cost to store is measured.
struct FloorClassification {
    kind: Option<u8>,
    trace_id: Option<Arc<str>>,
    code: Option<String>,
    wait: Option<Duration>,
}

#[derive(Clone)]
#[allow(dead_code)]
struct FloorTraceId(Arc<str>);

#[derive(Clone)]
#[allow(dead_code)]
struct FloorAttempts {
    records: [(StatusCode, Duration); 1],
    elapsed: Duration,
    client_request_id: Option<HeaderValue>,
}

impl<S> Service<Request<Full<Bytes>>> for RequiredWorkFloor<S>
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = std::io::Error,
        Future = Ready<Result<Response<Full<Bytes>>, std::io::Error>>,
    >,
{
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Full<Bytes>>) -> Self::Future {
        let start = tokio::time::Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let id = match req.headers().get(&self.request_id) {
            Some(id) => Some(id.clone()),
            None => self.ids.make_request_id(&req).map(|id| {
                let id = id.into_header_value();
                req.headers_mut()
                    .insert(self.request_id.clone(), id.clone());
                id
            }),
        };
        let copy = copy_request(&req);
        let result = self.inner.call(req).into_inner();
        let Ok(mut response) = result else {
            return ready(result);
        };
        let trace_id = response
            .headers()
            .get(&self.request_id)
            .and_then(|value| value.to_str().ok())
            .map(Arc::<str>::from);
        let json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().ends_with(b"json"));
        let status = response.status();
        let extensions = response.extensions_mut();
        extensions.insert(FloorClassification {
            kind: json.then_some(0),
            trace_id: trace_id.clone(),
            code: None,
            wait: None,
        });
        if let Some(trace_id) = trace_id {
            extensions.insert(FloorTraceId(trace_id));
        }
        extensions.insert(FloorAttempts {
            records: [(status, Duration::ZERO)],
            elapsed: start.elapsed(),
            client_request_id: id,
        });
        drop(black_box(copy));
        ready(Ok(response))
    }
}

// Kept out of line: benches/instructions.sh counts a request by these two symbols.
#[inline(never)]
fn request() -> Request<Full<Bytes>> {
    Request::get("https://api.example.com/v1/images/img_1")
        .header("authorization", "Bearer sk-test")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .body(Full::new(Bytes::from_static(b"")))
        .expect("valid request")
}

// Kept out of line, as `request`.
#[inline(never)]
fn post_request() -> Request<Full<Bytes>> {
    Request::post("https://api.example.com/v1/images/generations")
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .header("user-agent", "bench/1.0")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"image-1","prompt":"a paper boat on a pond","size":"1024x1024","n":1}"#,
        )))
        .expect("valid request")
}

fn run<S>(service: &mut S)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    run_with(service, request())
}

// Kept out of line: benches/instructions.sh counts a request by these two symbols.
#[inline(never)]
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
    let mut bare = IMAGE_UPSTREAM;
    group.bench_function("bare", |b| b.iter(|| run(&mut bare)));
    let mut tower_retry =
        tower::retry::RetryLayer::new(CloningPolicy { retries_left: 2 }).layer(IMAGE_UPSTREAM);
    group.bench_function("tower_retry_cloning_policy", |b| {
        b.iter(|| run(&mut tower_retry))
    });
    let mut retry = RetryLayer::new().layer(IMAGE_UPSTREAM);
    group.bench_function("http_resilience_retry", |b| b.iter(|| run(&mut retry)));
    let mut classify = ClassifyLayer::new().layer(IMAGE_UPSTREAM);
    group.bench_function("http_resilience_classify", |b| {
        b.iter(|| run(&mut classify))
    });
    let mut retry_classify = RetryLayer::new().layer(ClassifyLayer::new().layer(IMAGE_UPSTREAM));
    group.bench_function("http_resilience_retry_classify", |b| {
        b.iter(|| run(&mut retry_classify))
    });
    let mut trace_ids = RequestIdLayer::new().layer(IMAGE_UPSTREAM);
    group.bench_function("http_resilience_trace_id", |b| {
        b.iter(|| run(&mut trace_ids))
    });
    // A GET gets no key; this measures what the layer costs a request it leaves alone, and the
    // POST variant what it costs to make and send a key.
    let mut idempotency = IdempotencyKeyLayer::new().layer(IMAGE_UPSTREAM);
    group.bench_function("http_resilience_idempotency_get", |b| {
        b.iter(|| run(&mut idempotency))
    });
    group.bench_function("http_resilience_idempotency_post", |b| {
        b.iter(|| run_with(&mut idempotency, post_request()))
    });
    let mut full = ResilienceLayer::new().layer(IMAGE_UPSTREAM);
    group.bench_function("http_resilience_full_stack", |b| b.iter(|| run(&mut full)));
    let mut floor = RequiredWorkFloor {
        inner: IMAGE_UPSTREAM,
        ids: FastRequestIds,
        request_id: HeaderName::from_static("x-request-id"),
        requests: Default::default(),
    };
    group.bench_function("required_work_floor", |b| b.iter(|| run(&mut floor)));
    // The everyday call to a generation API: a POST with a JSON body, answered 200 with JSON.
    let mut bare_json = JSON_UPSTREAM;
    group.bench_function("post_json_bare", |b| {
        b.iter(|| run_with(&mut bare_json, post_request()))
    });
    let mut tower_json =
        tower::retry::RetryLayer::new(CloningPolicy { retries_left: 2 }).layer(JSON_UPSTREAM);
    group.bench_function("post_json_tower_retry_cloning_policy", |b| {
        b.iter(|| run_with(&mut tower_json, post_request()))
    });
    let mut full_json = ResilienceLayer::new().layer(JSON_UPSTREAM);
    group.bench_function("post_json_full_stack", |b| {
        b.iter(|| run_with(&mut full_json, post_request()))
    });
    group.finish();
}

/// One request through a named stack, for the callgrind mode: each stack over the upstream of
/// its scenario.
type Runner = Box<dyn FnMut()>;

fn stack<U>(name: &str, upstream: U, make: fn() -> Request<Full<Bytes>>) -> Option<Runner>
where
    U: Service<
            Request<Full<Bytes>>,
            Response = Response<Full<Bytes>>,
            Error = std::io::Error,
            Future = Ready<Result<Response<Full<Bytes>>, std::io::Error>>,
        > + Clone
        + Send
        + 'static,
{
    fn boxed<S>(mut service: S, make: fn() -> Request<Full<Bytes>>) -> Option<Runner>
    where
        S: Service<Request<Full<Bytes>>> + 'static,
        S::Error: std::fmt::Debug,
    {
        Some(Box::new(move || run_with(&mut service, make())))
    }
    match name {
        "bare" => boxed(upstream, make),
        "tower_retry_cloning_policy" => boxed(
            tower::retry::RetryLayer::new(CloningPolicy { retries_left: 2 }).layer(upstream),
            make,
        ),
        // What a user assembles by hand: tower-http's request id, tower's retry with a cloning
        // policy, tower's timeout.
        "hand_made_request_id_retry_timeout" => boxed(
            tower_http::request_id::SetRequestIdLayer::x_request_id(FastRequestIds).layer(
                tower::retry::RetryLayer::new(CloningPolicy { retries_left: 2 }).layer(
                    tower::timeout::TimeoutLayer::new(Duration::from_secs(30)).layer(upstream),
                ),
            ),
            make,
        ),
        "http_resilience_retry" => boxed(RetryLayer::new().layer(upstream), make),
        "http_resilience_classify" => boxed(ClassifyLayer::new().layer(upstream), make),
        "http_resilience_retry_classify" => boxed(
            RetryLayer::new().layer(ClassifyLayer::new().layer(upstream)),
            make,
        ),
        "http_resilience_request_id" => boxed(RequestIdLayer::new().layer(upstream), make),
        "http_resilience_idempotency" => boxed(IdempotencyKeyLayer::new().layer(upstream), make),
        "http_resilience_full_stack" => boxed(ResilienceLayer::new().layer(upstream), make),
        "required_work_floor" => boxed(
            RequiredWorkFloor {
                inner: upstream,
                ids: FastRequestIds,
                request_id: HeaderName::from_static("x-request-id"),
                requests: Default::default(),
            },
            make,
        ),
        _ => None,
    }
}

/// The stacks the callgrind mode knows, in the order `instructions.sh` prints them.
const STACKS: &[&str] = &[
    "bare",
    "tower_retry_cloning_policy",
    "hand_made_request_id_retry_timeout",
    "http_resilience_retry",
    "http_resilience_classify",
    "http_resilience_retry_classify",
    "http_resilience_request_id",
    "http_resilience_idempotency",
    "http_resilience_full_stack",
    "required_work_floor",
];

/// Without criterion, for callgrind: `OVERHEAD_LIST=1` prints the stacks' names;
/// `OVERHEAD_ONLY=<stack> OVERHEAD_SCENARIO=get|post_json OVERHEAD_ROUNDS=<n>` sends `n`
/// requests through one stack (`OVERHEAD_SUBSCRIBER=info|warn` with a tracing subscriber at
/// that level). Counts at two round numbers, subtracted, give the exact cost of one request
/// (see `instructions.sh`).
fn without_criterion() -> bool {
    if std::env::var_os("OVERHEAD_LIST").is_some() {
        for name in STACKS {
            println!("{name}");
        }
        return true;
    }
    let Ok(name) = std::env::var("OVERHEAD_ONLY") else {
        return false;
    };
    let scenario = std::env::var("OVERHEAD_SCENARIO").unwrap_or_else(|_| "get".to_owned());
    let rounds = in_process::rounds("OVERHEAD");
    // `OVERHEAD_SUBSCRIBER=info|warn`: a tracing subscriber formatting events to nowhere at
    // that level, as a service that logs would run, to count what the spans and events cost.
    let _subscriber = std::env::var("OVERHEAD_SUBSCRIBER").ok().map(|level| {
        let level: tracing::Level = level.parse().expect("OVERHEAD_SUBSCRIBER is a level");
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(std::io::sink)
                .finish(),
        )
    });
    let mut runner = match scenario.as_str() {
        "get" => stack(&name, IMAGE_UPSTREAM, request),
        "post_json" => stack(&name, JSON_UPSTREAM, post_request),
        other => panic!("OVERHEAD_SCENARIO is get or post_json, not {other}"),
    }
    .unwrap_or_else(|| panic!("OVERHEAD_ONLY names one of {STACKS:?}"));
    for _ in 0..rounds {
        runner();
    }
    true
}

criterion_group!(benches, bench_overhead);

fn main() {
    in_process::main(without_criterion, benches);
}
