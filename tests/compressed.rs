//! Compressed answers: a gzipped failure is read by its body whether tower-http's
//! `DecompressionLayer` sits outside the stack or inside it, and the caller's bytes are the
//! server's.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{full, hyper_client, spawn_server};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use http_resilience::retry::{Backoff, Jitter, StopReason};
use http_resilience::{Attempts, Classification, ErrorKind, ResilienceLayer, ServiceBuilderExt};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::decompression::DecompressionLayer;

const QUOTA: &[u8] = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A server answering every request with a gzipped 429 `insufficient_quota`; counts requests.
async fn quota_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    quota_server_in("gzip", gzip(QUOTA)).await
}

/// A server answering every request with a 429 `insufficient_quota` in `encoding`; counts
/// requests.
async fn quota_server_in(
    encoding: &'static str,
    body: Vec<u8>,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let addr = spawn_server(move |_req| {
        counted.fetch_add(1, Ordering::SeqCst);
        let body = body.clone();
        async move {
            Response::builder()
                .status(429)
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(full(body))
                .unwrap()
        }
    })
    .await;
    (addr, hits)
}

fn layer() -> ResilienceLayer {
    ResilienceLayer::new().backoff(
        Backoff::new(Duration::from_millis(10), Duration::from_millis(10)).jitter(Jitter::None),
    )
}

fn get(addr: std::net::SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/v1/images"))
        .header("accept-encoding", "gzip")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_gzipped_quota_failure_is_never_retried_and_its_bytes_arrive_as_sent() {
    let (addr, hits) = quota_server().await;
    let client = ServiceBuilder::new()
        .resilience(layer())
        .service(hyper_client::<Full<Bytes>>());
    let response = client.oneshot(get(addr)).await.unwrap();
    let classification = response.extensions().get::<Classification>().unwrap();
    assert_eq!(classification.kind(), Some(ErrorKind::QuotaExhausted));
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.stopped(), StopReason::VerdictNever);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        &gzip(QUOTA)[..],
        "the caller gets the compressed bytes"
    );
}

/// The answer through `client`: classified by its body, sent once, read as plain text.
async fn assert_quota_read_in_plain_text<S, B>(
    client: S,
    addr: std::net::SocketAddr,
    hits: &AtomicUsize,
) where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = client.oneshot(get(addr)).await.unwrap();
    let classification = response.extensions().get::<Classification>().unwrap();
    assert_eq!(classification.kind(), Some(ErrorKind::QuotaExhausted));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], QUOTA);
}

#[tokio::test(start_paused = true)]
async fn decompression_outside_the_stack_sees_the_classification_and_plain_text() {
    let (addr, hits) = quota_server().await;
    let client = ServiceBuilder::new()
        .layer(DecompressionLayer::new())
        .resilience(layer())
        .service(hyper_client::<Full<Bytes>>());
    assert_quota_read_in_plain_text(client, addr, &hits).await;
}

#[tokio::test(start_paused = true)]
async fn decompression_inside_the_stack_works_as_well() {
    let (addr, hits) = quota_server().await;
    let client = ServiceBuilder::new()
        .resilience(layer())
        .layer(DecompressionLayer::new())
        .service(hyper_client::<Full<Bytes>>());
    assert_quota_read_in_plain_text(client, addr, &hits).await;
}

#[tokio::test(start_paused = true)]
async fn the_report_shows_a_gzipped_failure_decoded_and_masked() {
    let (addr, _) = quota_server().await;
    let client = ServiceBuilder::new()
        .resilience(layer().failures_as_errors())
        .service(hyper_client::<Full<Bytes>>());
    let error = client.oneshot(get(addr)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::QuotaExhausted);
    let report = error.report().to_string();
    assert!(
        report.contains("gzip, decoded: {\"error\":{\"message\":\"You exceeded"),
        "{report}"
    );
}

/// A brotli 429 `insufficient_quota`, from brotli's reference encoder.
#[cfg(feature = "brotli")]
const QUOTA_BR: &[u8] = &[
    0x1b, 0x6e, 0x00, 0x60, 0x8d, 0xd3, 0x15, 0xf3, 0x23, 0x84, 0x75, 0x0f, 0xca, 0x6d, 0xa9, 0x8e,
    0xab, 0xcd, 0x24, 0xb2, 0xff, 0x3c, 0x04, 0x07, 0xc2, 0x52, 0x87, 0xa5, 0xcf, 0x0d, 0x0e, 0x48,
    0x32, 0x0e, 0x83, 0x02, 0x4e, 0x24, 0xb2, 0xd1, 0x87, 0x1d, 0xb0, 0xf5, 0xe2, 0x51, 0x86, 0xb2,
    0x18, 0xe0, 0x03, 0xab, 0x3a, 0xfc, 0xd3, 0x96, 0xe5, 0x10, 0x7f, 0x99, 0xdb, 0xf5, 0x0e, 0xb1,
    0xd2, 0x01, 0x72, 0x68, 0x87, 0x48, 0x96, 0xfc,
];

#[cfg(feature = "brotli")]
#[tokio::test(start_paused = true)]
async fn with_the_brotli_feature_a_brotli_quota_failure_is_never_retried() {
    let (addr, hits) = quota_server_in("br", QUOTA_BR.to_vec()).await;
    let client = ServiceBuilder::new()
        .resilience(layer())
        .service(hyper_client::<Full<Bytes>>());
    let response = client.oneshot(get(addr)).await.unwrap();
    let classification = response.extensions().get::<Classification>().unwrap();
    assert_eq!(classification.kind(), Some(ErrorKind::QuotaExhausted));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], QUOTA_BR);
}
