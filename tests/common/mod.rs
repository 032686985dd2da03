//! Helpers shared by the integration tests: a scripted body and a real hyper server on
//! 127.0.0.1:0.
#![allow(dead_code, unreachable_pub)]

pub mod capture;
pub mod provider;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The error a [`ScriptedBody`] can end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyCut;

impl std::fmt::Display for BodyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body cut off")
    }
}

impl std::error::Error for BodyCut {}

/// A body that yields the given chunks, then trailers or an error, optionally never ending.
pub struct ScriptedBody {
    pub chunks: VecDeque<Bytes>,
    pub trailers: Option<HeaderMap>,
    pub error: bool,
    /// Pend forever after the chunks instead of ending: a stream that is still open.
    pub hang: bool,
    /// Report an exact size hint (as `Full` would), else none (as a chunked stream).
    pub exact: bool,
    /// How many frames have been polled out, to prove a body was not read.
    pub polled: Arc<std::sync::atomic::AtomicUsize>,
}

impl ScriptedBody {
    pub fn new(chunks: Vec<Bytes>) -> Self {
        ScriptedBody {
            chunks: chunks.into(),
            trailers: None,
            error: false,
            hang: false,
            exact: false,
            polled: Arc::default(),
        }
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        self.polled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if self.error {
            self.error = false;
            return Poll::Ready(Some(Err(BodyCut)));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if self.hang {
            return Poll::Pending;
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        !self.hang && self.chunks.is_empty() && !self.error && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact && !self.error && !self.hang {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

/// Everything a body yields: its bytes, its trailers, and whether it ended in an error.
pub async fn drain<B>(body: B) -> (Vec<u8>, Option<HeaderMap>, bool)
where
    B: Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => bytes.extend_from_slice(&data),
                Err(frame) => trailers = frame.into_trailers().ok(),
            },
            Err(_) => return (bytes, trailers, true),
        }
    }
    (bytes, trailers, false)
}

/// The body type test servers answer with.
pub type ServerBody = BoxBody<Bytes, Infallible>;

/// Serves `handler` over HTTP/1.1 on 127.0.0.1:0 until the test's runtime ends.
pub async fn spawn_server<H, F>(handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ServerBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Hands every connection accepted on 127.0.0.1:0 to `serve`, raw, until the test's runtime
/// ends: for servers that misbehave in ways hyper will not (a reset before any header, a body
/// cut in the middle).
pub async fn spawn_tcp_server<H, F>(serve: H) -> SocketAddr
where
    H: Fn(tokio::net::TcpStream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// A hyper-util client for the tests.
pub fn hyper_client<B>(
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A full body for a test server's response.
pub fn full(bytes: impl Into<Bytes>) -> ServerBody {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// The example `name`, built now by the cargo that runs this test (into the same target
/// directory and profile, with the features this test was built with, so the library is not
/// rebuilt), so that a test never runs a stale or missing binary, whether it runs alone or with
/// every target.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "--example", name]);
    let features: Vec<&str> = [
        ("reqwest", cfg!(feature = "reqwest")),
        ("brotli", cfg!(feature = "brotli")),
        ("zstd", cfg!(feature = "zstd")),
        ("metrics", cfg!(feature = "metrics")),
        ("webhooks", cfg!(feature = "webhooks")),
        ("redis", cfg!(feature = "redis")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    if !features.is_empty() {
        build.args(["--features", &features.join(",")]);
    }
    if profile_dir.file_name().is_some_and(|dir| dir == "release") {
        build.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target_dir);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build --example {name} failed");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The Redis server tests use: `HTTP_RESILIENCE_REDIS_URL`, or `None` with a loud skip (CI sets
/// `HTTP_RESILIENCE_REQUIRE_REDIS=1`, which makes its absence a failure).
pub fn redis_url() -> Option<String> {
    match std::env::var("HTTP_RESILIENCE_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HTTP_RESILIENCE_REQUIRE_REDIS").is_err(),
                "HTTP_RESILIENCE_REQUIRE_REDIS is set but HTTP_RESILIENCE_REDIS_URL is not"
            );
            eprintln!(
                "SKIPPED: no Redis (set HTTP_RESILIENCE_REDIS_URL=redis://127.0.0.1:PORT to run the Redis tests)"
            );
            None
        }
    }
}

/// A client of the mock provider, as [`paced_client`] makes it.
pub type PacedClient = tower::util::BoxCloneService<
    Request<http_body_util::Full<Bytes>>,
    Response<http_resilience::classify::ClassifiedBody<http_body_util::Full<Bytes>>>,
    tower::BoxError,
>;

/// The standard stack with `layer` over the mock `provider`, answering each request at once
/// as its limits allow (a request's [`TokenCost`](http_resilience::pacing::TokenCost) counts
/// against the token limit).
pub fn paced_client(
    provider: &provider::Provider,
    layer: http_resilience::ResilienceLayer,
) -> PacedClient {
    use http_resilience::ServiceBuilderExt as _;
    use tower::ServiceExt as _;
    let provider = provider.clone();
    let upstream = tower::service_fn(move |request: Request<http_body_util::Full<Bytes>>| {
        let tokens = request
            .extensions()
            .get::<http_resilience::pacing::TokenCost>()
            .map_or(1.0, |c| c.get() as f64);
        let response = provider.answer(tokens);
        async move { Ok::<_, Infallible>(response) }
    });
    let service = tower::ServiceBuilder::new()
        .resilience(layer)
        .service(upstream)
        .map_err(tower::BoxError::from);
    tower::util::BoxCloneService::new(service)
}

/// The request [`paced_client`] tests send: a GET with one API key.
pub fn paced_get() -> Request<http_body_util::Full<Bytes>> {
    Request::get("https://api.example.com/v1/models")
        .header("authorization", "Bearer sk-test-0123456789")
        .body(http_body_util::Full::default())
        .unwrap()
}

/// A Redis server of the test's own on 127.0.0.1 at `port` (Debian's `redis-server`, which CI
/// installs), ready to answer, with no persistence; kill it to take it away.
/// A port free on 127.0.0.1 now, for a server the test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

pub async fn start_redis(port: u16, dir: &std::path::Path) -> std::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (the CI installs Debian's)");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    child
}

/// Runs `run` on a current-thread runtime in paused time, with a debugging recorder of metrics
/// installed on this thread only, and gives what it recorded.
#[cfg(feature = "metrics")]
pub fn record_metrics<F>(run: impl FnOnce() -> F) -> metrics_util::debugging::Snapshot
where
    F: Future<Output = ()>,
{
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run());
    });
    snapshotter.snapshot()
}
