//! The layers and bodies users already have, inside the retry layer: tower's `Timeout`,
//! `Buffer` and `ConcurrencyLimit` (whose errors are `BoxError`), axum's and boxed request bodies,
//! and inner errors that are not connection failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::Full;
use http_resilience::retry::{Backoff, BoxError, Jitter, StopReason};
use http_resilience::{Attempts, ClassifyLayer, ErrorKind, RetryLayer};
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn retry() -> RetryLayer {
    RetryLayer::new().backoff(
        Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(Jitter::None),
    )
}

/// An upstream answering 503 until its `n`th call, then 200; counts calls.
fn flaky<B: Send + 'static>(
    calls: Arc<AtomicUsize>,
    succeed_at: usize,
) -> impl tower::Service<
    Request<B>,
    Response = Response<Full<Bytes>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    service_fn(move |_req: Request<B>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let status = if n >= succeed_at { 200 } else { 503 };
            Ok(Response::builder()
                .status(status)
                .body(Full::default())
                .unwrap())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn tower_timeout_buffer_and_concurrency_limit_inside_the_retry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let slow_then_fast = {
        let calls = Arc::clone(&calls);
        service_fn(move |_req: Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<_, std::io::Error>(Response::new(Full::<Bytes>::default()))
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(retry())
        .layer(ClassifyLayer::new())
        .buffer(8)
        .concurrency_limit(4)
        .timeout(Duration::from_secs(2))
        .service(slow_then_fast);
    let response = client.oneshot(Request::new(Full::default())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.count(), 2);
    // tower's `Elapsed` is a timeout of the attempt, retried as one.
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Timeout));
}

#[tokio::test(start_paused = true)]
async fn axum_request_bodies_are_accepted_empty_ones_replayed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let client = ServiceBuilder::new()
        .layer(retry())
        .layer(ClassifyLayer::new())
        .service(flaky::<axum::body::Body>(Arc::clone(&calls), 2));
    // A GET's empty body is recreated for the second attempt.
    let response = client
        .clone()
        .oneshot(Request::new(axum::body::Body::empty()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A body with data cannot be copied: sent once, its answer returned as it is.
    calls.store(0, Ordering::SeqCst);
    let request = Request::builder()
        .method(Method::PUT)
        .body(axum::body::Body::from("{\"prompt\":\"a cat\"}"))
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.stopped(), StopReason::BodyNotReplayable);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn boxed_request_bodies_are_accepted() {
    type Boxed = UnsyncBoxBody<Bytes, BoxError>;
    let calls = Arc::new(AtomicUsize::new(0));
    let client = ServiceBuilder::new()
        .layer(retry())
        .layer(ClassifyLayer::new())
        .service(flaky::<Boxed>(Arc::clone(&calls), 3));
    let response = client
        .oneshot(Request::new(Boxed::default()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// An error of an inner middleware: not a connection failure.
#[derive(Debug)]
struct SigningFailed;

impl std::fmt::Display for SigningFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not sign the request")
    }
}

impl std::error::Error for SigningFailed {}

#[tokio::test(start_paused = true)]
async fn an_inner_error_that_is_not_a_connection_failure_ends_the_call_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let signer = service_fn(move |_req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<Response<Full<Bytes>>, _>(SigningFailed) }
    });
    let client = ServiceBuilder::new().layer(retry()).service(signer);
    let error = client
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(error.attempts().stopped(), StopReason::VerdictNever);
    assert_eq!(error.kind(), ErrorKind::Unknown);
    let source = error.service_error().unwrap();
    assert!(source.downcast_ref::<SigningFailed>().is_some());

    // A connection failure, by contrast, follows the retry rules.
    calls.store(0, Ordering::SeqCst);
    let counted = Arc::clone(&calls);
    let refused = service_fn(move |_req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))
        }
    });
    let error = ServiceBuilder::new()
        .layer(retry())
        .service(refused)
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(error.kind(), ErrorKind::Transport);
}
