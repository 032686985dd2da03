//! Peak memory while a 64 MiB success body streams through a client stack:
//! `cargo run --release --features reqwest --example stream_memory -- STACK`.
//!
//! STACK is one of `hyper-bare`, `hyper-resilience`, `reqwest-bare`, `reqwest-retry`,
//! `reqwest-resilience`. A server in the same process (127.0.0.1, an ephemeral port) streams
//! 64 MiB in 64 KiB chunks made on the fly; the client reads and drops each chunk. The program
//! prints the body length and the process's peak resident memory (VmHWM, Linux) in KiB.
//! `bash benches/memory.sh` runs every stack and compares it with the bare clients.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, StreamBody};
use http_resilience::reqwest::ResilienceMiddleware;
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{ServiceBuilder, ServiceExt};

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 64 * 1024 * 1024;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn serve() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let chunk = Bytes::from(vec![b'x'; CHUNK]);
                    let frames = futures_util::stream::iter(
                        (0..TOTAL / CHUNK)
                            .map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
                    );
                    Response::builder()
                        .header("content-type", "application/octet-stream")
                        .header("content-length", TOTAL.to_string())
                        .body(StreamBody::new(frames))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(format!("http://{addr}/v1/files/video.mp4"))
}

async fn drain<B>(body: B) -> usize
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map(|f| f.into_data()) {
            len += data.map_or(0, |d| d.len());
        } else {
            break;
        }
    }
    len
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stack = std::env::args().nth(1).unwrap_or_default();
    let url = serve().await?;
    let hyper = || Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let len = match stack.as_str() {
        "hyper-bare" => {
            drain(
                hyper()
                    .request(Request::get(&url).body(Empty::new())?)
                    .await?
                    .into_body(),
            )
            .await
        }
        "hyper-resilience" => {
            let client = ServiceBuilder::new()
                .resilience(ResilienceLayer::new())
                .service(hyper());
            drain(
                client
                    .oneshot(Request::get(&url).body(Empty::new())?)
                    .await?
                    .into_body(),
            )
            .await
        }
        "reqwest-bare" => {
            let response = reqwest::Client::new().get(&url).send().await?;
            drain(http::Response::from(response).into_body()).await
        }
        "reqwest-retry" => {
            let policy =
                reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(2);
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
                    policy,
                ))
                .build();
            drain(http::Response::from(client.get(&url).send().await?).into_body()).await
        }
        "reqwest-resilience" => {
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(ResilienceMiddleware::new(ResilienceLayer::new()))
                .build();
            drain(http::Response::from(client.get(&url).send().await?).into_body()).await
        }
        other => {
            eprintln!("unknown stack {other:?}: hyper-bare, hyper-resilience, reqwest-bare, reqwest-retry, reqwest-resilience");
            std::process::exit(2);
        }
    };
    println!("{stack} {len} {}", peak_rss_kib().unwrap_or(0));
    Ok(())
}
