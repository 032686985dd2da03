//! Retry over hyper-util's client against a real hyper server on 127.0.0.1:0 that answers 429
//! and 503 with `Retry-After`, then succeeds.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{full, hyper_client, spawn_server};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::retry::{Attempts, RetryLayer, StopReason};
use http_resilience::{Classification, ClassifyLayer, ErrorKind};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn rate_limited_then_overloaded_then_success() {
    let hits = Arc::new(AtomicUsize::new(0));
    let server_hits = Arc::clone(&hits);
    let addr = spawn_server(move |_req| {
        let n = server_hits.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Response::builder()
                    .status(429)
                    .header("retry-after", "2")
                    .header("x-request-id", "r-429")
                    .body(full(
                        r#"{"error":{"code":"too_many_requests","message":"slow down"}}"#,
                    ))
                    .unwrap(),
                1 => Response::builder()
                    .status(503)
                    .header("retry-after", "1")
                    .header("x-request-id", "r-503")
                    .body(full("<html>busy</html>"))
                    .unwrap(),
                _ => Response::builder()
                    .header("content-type", "application/json")
                    .header("x-request-id", "r-200")
                    .body(full(r#"{"success":true,"data":{"task_id":"t-1"}}"#))
                    .unwrap(),
            }
        }
    })
    .await;

    let client = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(ClassifyLayer::new())
        .service(hyper_client::<Full<Bytes>>());
    let request = Request::post(format!("http://{addr}/v1/tasks"))
        .header("idempotency-key", "k-1")
        .body(Full::new(Bytes::from_static(br#"{"prompt":"a cat"}"#)))
        .unwrap();
    let response = client.oneshot(request).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    let classification = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(classification.kind(), None);
    assert_eq!(attempts.stopped(), StopReason::Succeeded);
    let summary: Vec<_> = attempts
        .records()
        .iter()
        .map(|r| {
            (
                r.status().map(|s| s.as_u16()),
                r.kind(),
                r.delay(),
                r.trace_id().map(|t| t.to_string()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some(429),
                Some(ErrorKind::RateLimited),
                Duration::ZERO,
                Some("r-429".into())
            ),
            (
                Some(503),
                Some(ErrorKind::Overloaded),
                Duration::from_secs(2),
                Some("r-503".into())
            ),
            (
                Some(200),
                None,
                Duration::from_secs(1),
                Some("r-200".into())
            ),
        ]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"success":true,"data":{"task_id":"t-1"}}"#);
}

#[tokio::test(start_paused = true)]
async fn connection_refused_is_an_error_with_attempts() {
    // Bind and drop a listener to get a port on 127.0.0.1 where nothing listens.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new().max_attempts(2))
        .layer(ClassifyLayer::new())
        .service(hyper_client::<Full<Bytes>>());
    let request = Request::post(format!("http://127.0.0.1:{port}/v1/tasks"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let error = client.oneshot(request).await.unwrap_err();
    assert!(http_resilience::retry::is_connect_error(
        error.service_error().unwrap()
    ));
    // A POST without a key, but the connection was never made: retried.
    assert_eq!(error.attempts().count(), 2);
    assert_eq!(error.attempts().stopped(), StopReason::AttemptsExhausted);
    assert_eq!(error.kind(), ErrorKind::Transport);
}
