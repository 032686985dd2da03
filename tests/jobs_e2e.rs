//! A paid-job API on a hyper server at 127.0.0.1:0 that counts the jobs it creates per
//! idempotency key and fails half its answers: many concurrent POSTs through the standard stack
//! create exactly one job each.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{full, hyper_client, spawn_server};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::ids::RequestIds;
use http_resilience::{Attempts, ResilienceLayer, ServiceBuilderExt};
use tower::{ServiceBuilder, ServiceExt};

#[derive(Default)]
struct Ledger {
    /// Jobs created per key.
    created: HashMap<String, u32>,
    /// Answers given per key.
    answers: HashMap<String, u32>,
    /// The task id stored for each key, replayed to later requests.
    tasks: HashMap<String, String>,
    failures: u32,
    total: u32,
}

/// The first request of every key fails: even-numbered keys before the job is created (503), odd
/// ones after (502: the job exists but its answer is lost). Later requests succeed, replaying
/// the stored task when there is one. So exactly half the answers fail.
fn answer(ledger: &Mutex<Ledger>, key: Option<String>) -> Response<common::ServerBody> {
    let Some(key) = key else {
        return Response::builder()
            .status(400)
            .body(full(
                r#"{"error":{"code":"bad_request","message":"Idempotency-Key required"}}"#,
            ))
            .unwrap();
    };
    let mut ledger = ledger.lock().unwrap();
    ledger.total += 1;
    let seen = ledger.answers.entry(key.clone()).or_default();
    *seen += 1;
    let first = *seen == 1;
    let number: u32 = key
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if first && number.is_multiple_of(2) {
        ledger.failures += 1;
        return Response::builder()
            .status(503)
            .header("retry-after", "1")
            .body(full(""))
            .unwrap();
    }
    if let Some(task) = ledger.tasks.get(&key).cloned() {
        return Response::builder()
            .header("content-type", "application/json")
            .header("idempotent-replayed", "true")
            .body(full(format!(r#"{{"task_id":"{task}"}}"#)))
            .unwrap();
    }
    *ledger.created.entry(key.clone()).or_default() += 1;
    let task = format!("task-for-{key}");
    ledger.tasks.insert(key, task.clone());
    if first {
        ledger.failures += 1;
        return Response::builder()
            .status(502)
            .body(full("<html>bad gateway</html>"))
            .unwrap();
    }
    Response::builder()
        .header("content-type", "application/json")
        .body(full(format!(r#"{{"task_id":"{task}"}}"#)))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn concurrent_posts_against_a_failing_server_create_one_job_each() {
    const REQUESTS: u32 = 64;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let server_ledger = Arc::clone(&ledger);
    let addr = spawn_server(move |req: Request<hyper::body::Incoming>| {
        let ledger = Arc::clone(&server_ledger);
        async move {
            let key = req
                .headers()
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            answer(&ledger, key)
        }
    })
    .await;

    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new().idempotency_key_maker(
            http_resilience::idempotency::KeyFromExtension::new(|n: &u32| format!("job-{n}")),
        ))
        .service(hyper_client::<Full<Bytes>>());

    let calls = (0..REQUESTS).map(|n| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut request = Request::post(format!("http://{addr}/v1/tasks"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"prompt":"picture {n}"}}"#
                ))))
                .unwrap();
            request.extensions_mut().insert(n);
            let response = client.oneshot(request).await.unwrap();
            let status = response.status();
            let key = response
                .extensions()
                .get::<RequestIds>()
                .and_then(RequestIds::idempotency_key)
                .unwrap()
                .as_str()
                .to_owned();
            let attempts = response.extensions().get::<Attempts>().unwrap().count();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, key, attempts, body)
        })
    });
    let results = futures_util::future::join_all(calls).await;

    let ledger = ledger.lock().unwrap();
    assert_eq!(
        ledger.failures * 2,
        ledger.total,
        "the server failed half its answers"
    );
    for result in results {
        let (status, key, attempts, body) = result.unwrap();
        assert_eq!(status, StatusCode::OK, "{key}");
        assert_eq!(attempts, 2, "{key}: one failure, one success");
        assert_eq!(
            ledger.created.get(&key),
            Some(&1),
            "{key}: exactly one paid job"
        );
        assert_eq!(
            body,
            Bytes::from(format!(r#"{{"task_id":"task-for-{key}"}}"#))
        );
    }
    assert_eq!(ledger.created.len(), REQUESTS as usize);
    assert!(ledger.created.values().all(|&jobs| jobs == 1));
}
