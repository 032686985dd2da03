//! The reqwest-middleware stack as part of a chain: the caller's extensions pass through every
//! attempt and come back with what inner middleware wrote, and the key and request-id makers of
//! the tower stack work here too.

#![cfg(feature = "reqwest")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{full, spawn_server};
use http::{Extensions, HeaderMap, Response};
use http_resilience::idempotency::KeyFromExtension;
use http_resilience::reqwest::ResilienceMiddleware;
use http_resilience::retry::{Backoff, Jitter};
use http_resilience::ResilienceLayer;
use reqwest_middleware::{ClientBuilder, Middleware, Next};

fn layer() -> ResilienceLayer {
    ResilienceLayer::new().backoff(
        Backoff::new(Duration::from_millis(10), Duration::from_millis(10)).jitter(Jitter::None),
    )
}

/// A server answering 503 to the first request and 200 after; records every request's headers.
async fn flaky_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let recorded = Arc::clone(&seen);
    let addr = spawn_server(move |req| {
        recorded.lock().unwrap().push(req.headers().clone());
        let n = hits.fetch_add(1, Ordering::SeqCst);
        async move {
            Response::builder()
                .status(if n == 0 { 503 } else { 200 })
                .body(full("{}"))
                .unwrap()
        }
    })
    .await;
    (addr, seen)
}

/// What the inner middleware saw and wrote: the number of attempts before this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AttemptsSeen(u32);

/// An inner middleware that counts the attempts it sees in the extensions.
struct CountAttempts {
    observed: Arc<Mutex<Vec<u32>>>,
}

#[async_trait::async_trait]
impl Middleware for CountAttempts {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let before = extensions.get::<AttemptsSeen>().map_or(0, |seen| seen.0);
        self.observed.lock().unwrap().push(before);
        extensions.insert(AttemptsSeen(before + 1));
        next.run(request, extensions).await
    }
}

#[tokio::test(start_paused = true)]
async fn extensions_pass_through_every_attempt_and_back_to_the_caller() {
    let (addr, _) = flaky_server().await;
    let observed = Arc::new(Mutex::new(Vec::new()));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(layer()))
        .with(CountAttempts {
            observed: Arc::clone(&observed),
        })
        .build();
    let request = client
        .get(format!("http://{addr}/v1/models"))
        .build()
        .unwrap();
    let mut extensions = Extensions::new();
    let response = client
        .execute_with_extensions(request, &mut extensions)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Each attempt saw what the one before it wrote, and the caller sees the last write.
    assert_eq!(*observed.lock().unwrap(), [0, 1]);
    assert_eq!(extensions.get::<AttemptsSeen>(), Some(&AttemptsSeen(2)));
}

#[tokio::test(start_paused = true)]
async fn the_middleware_takes_the_key_and_request_id_makers_of_the_tower_stack() {
    #[derive(Clone)]
    struct JobId(u32);
    let (addr, seen) = flaky_server().await;
    let layer = layer()
        .idempotency_key_maker(KeyFromExtension::new(|job: &JobId| {
            format!("job-{}", job.0)
        }))
        .request_id_maker(tower_http::request_id::MakeRequestUuid);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(layer))
        .build();
    let response = client
        .post(format!("http://{addr}/v1/videos"))
        .with_extension(JobId(7))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for headers in seen.iter() {
        assert_eq!(headers["idempotency-key"], "job-7");
    }
    let id = seen[0]["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID from tower-http's maker: {id}");
    assert_eq!(seen[1]["x-request-id"], seen[0]["x-request-id"]);
}

/// A key maker of the caller's own that reads the request's path.
struct KeyFromPath;

impl http_resilience::idempotency::MakeIdempotencyKey for KeyFromPath {
    fn make_key<B>(&self, request: &http::Request<B>) -> Option<http::HeaderValue> {
        http::HeaderValue::from_str(&format!("path{}", request.uri().path().replace('/', "-"))).ok()
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_maker_of_the_callers_own_sees_the_request_uri() {
    let (addr, seen) = flaky_server().await;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(
            layer().idempotency_key_maker(KeyFromPath),
        ))
        .build();
    let response = client
        .post(format!("http://{addr}/v1/videos"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.lock().unwrap()[0]["idempotency-key"], "path-v1-videos");
}
