//! The stack among the tower and tower-http layers people use every day, against a hyper server
//! on 127.0.0.1:0: tracing, an auth header and decompression outside the stack; follow-redirect,
//! buffer, concurrency limit and a timeout inside it. The README's "Where the other layers go"
//! shows these placements.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{full, hyper_client, spawn_server};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::retry::{Backoff, Jitter, StopReason};
use http_resilience::{Attempts, Classification, ErrorKind, ResilienceLayer, ServiceBuilderExt};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::decompression::DecompressionLayer;
use tower_http::follow_redirect::policy::{self, PolicyExt};
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_http::set_header::SetRequestHeaderLayer;
use tower_http::trace::TraceLayer;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const JOB: &[u8] = br#"{"task_id":"t-42","status":"queued"}"#;
const QUOTA: &[u8] =
    br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"quota"}}"#;

/// What the server saw: path, headers and body of every request.
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

async fn server() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let target_calls = Arc::new(AtomicUsize::new(0));
    let slow_calls = Arc::new(AtomicUsize::new(0));
    let recorded = Arc::clone(&seen);
    let addr = spawn_server(move |req: Request<hyper::body::Incoming>| {
        let recorded = Arc::clone(&recorded);
        let target_calls = Arc::clone(&target_calls);
        let slow_calls = Arc::clone(&slow_calls);
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let path = parts.uri.path().to_owned();
            recorded
                .lock()
                .unwrap()
                .push((path.clone(), parts.headers, body));
            match path.as_str() {
                "/v1/jobs" => Response::builder()
                    .status(307)
                    .header("location", "/v2/jobs")
                    .body(full(""))
                    .unwrap(),
                "/v2/jobs" if target_calls.fetch_add(1, Ordering::SeqCst) == 0 => {
                    Response::builder().status(503).body(full("busy")).unwrap()
                }
                "/v2/jobs" => Response::builder()
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(full(gzip(JOB)))
                    .unwrap(),
                "/v1/slow" => {
                    if slow_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Response::new(full("{}"))
                }
                _ => Response::builder()
                    .status(429)
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(full(gzip(QUOTA)))
                    .unwrap(),
            }
        }
    })
    .await;
    (addr, seen)
}

#[tokio::test(start_paused = true)]
async fn the_stack_among_everyday_layers() {
    let (addr, seen) = server().await;
    let client = ServiceBuilder::new()
        // Outside: one span per logical request, the credential (so the stack's reports can
        // mask it wherever a server echoes it), and plain bytes for the caller.
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestHeaderLayer::overriding(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-composition"),
        ))
        .layer(DecompressionLayer::new())
        .resilience(
            ResilienceLayer::new().backoff(
                Backoff::new(Duration::from_millis(100), Duration::from_millis(100))
                    .jitter(Jitter::None),
            ),
        )
        // Inside: each attempt follows redirects from the start, waits its turn, and times out.
        // tower-http follows a 307 only with a copy of the body: say how to make one.
        .layer(FollowRedirectLayer::with_policy(
            policy::Standard::default().and::<_, Full<Bytes>, hyper_util::client::legacy::Error>(
                policy::clone_body_fn(|body: &Full<Bytes>| Some(body.clone())),
            ),
        ))
        .buffer(16)
        .concurrency_limit(4)
        .timeout(Duration::from_secs(2))
        .service(hyper_client::<Full<Bytes>>());

    // A POST redirected with 307, answered 503, then a gzipped job.
    let request = Request::post(format!("http://{addr}/v1/jobs"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"prompt":"a cat"}"#)))
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    assert_eq!(attempts.count(), 2);
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Overloaded));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], JOB, "decoded by the outer DecompressionLayer");
    {
        let seen = seen.lock().unwrap();
        let paths: Vec<&str> = seen.iter().map(|(path, _, _)| path.as_str()).collect();
        assert_eq!(paths, ["/v1/jobs", "/v2/jobs", "/v1/jobs", "/v2/jobs"]);
        let key = &seen[0].1["idempotency-key"];
        for (_, headers, body) in seen.iter() {
            assert_eq!(
                &headers["idempotency-key"], key,
                "one key for every attempt"
            );
            assert_eq!(headers["authorization"], "Bearer sk-composition");
            assert_eq!(&body[..], br#"{"prompt":"a cat"}"#, "307 keeps the body");
        }
    }

    // An attempt that outlives tower's Timeout inside the stack is a timeout, retried.
    let request = Request::get(format!("http://{addr}/v1/slow"))
        .body(Full::default())
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.count(), 2);
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Timeout));

    // A gzipped quota failure is read by its body and never retried.
    let request = Request::get(format!("http://{addr}/v1/quota"))
        .body(Full::default())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    let classification = response.extensions().get::<Classification>().unwrap();
    assert_eq!(classification.kind(), Some(ErrorKind::QuotaExhausted));
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.stopped(), StopReason::VerdictNever);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], QUOTA);
}
