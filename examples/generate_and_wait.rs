//! Create a paid generation job once and wait for its result: `cargo run --example
//! generate_and_wait`.
//!
//! A local queue API on 127.0.0.1 (an ephemeral port), shaped like fal's queue, creates the job
//! on the first request but loses its answer (a 502 from the gateway in front). The stack sends
//! the request again with the same idempotency key, and the API replays the job it already
//! created instead of starting a second, paid one. The poller then follows the job through
//! `IN_QUEUE` and `IN_PROGRESS` to `COMPLETED` and fetches the result.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use http_resilience::jobs::{JobEnding, JobPoller, QueueStatus};
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// The mock API's memory: the job created for each idempotency key, and how often each job's
/// status was asked.
#[derive(Default)]
struct Queue {
    jobs_by_key: HashMap<String, String>,
    creations: u32,
    answers: u32,
    polls: HashMap<String, u32>,
}

fn json(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", format!("srv-{status}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn answer(queue: &Mutex<Queue>, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut queue = queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = request.uri().path().to_owned();
    if request.method() == http::Method::POST {
        let key = request
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let next = format!("req-{}", queue.creations + 1);
        let id = match queue.jobs_by_key.get(&key) {
            Some(id) => id.clone(),
            None => {
                queue.creations += 1;
                queue.jobs_by_key.insert(key, next.clone());
                next
            }
        };
        queue.answers += 1;
        if queue.answers == 1 {
            // The job exists, but its answer never reaches the client.
            return json(502, r#"{"detail":"Bad Gateway"}"#.into());
        }
        return json(
            200,
            format!(
                r#"{{"status":"IN_QUEUE","request_id":"{id}","status_url":"/v1/queue/requests/{id}/status","response_url":"/v1/queue/requests/{id}"}}"#
            ),
        );
    }
    if let Some(id) = path
        .strip_prefix("/v1/queue/requests/")
        .and_then(|rest| rest.strip_suffix("/status"))
    {
        let polls = queue.polls.entry(id.to_owned()).or_default();
        *polls += 1;
        let status = match *polls {
            1 => "IN_QUEUE",
            2 | 3 => "IN_PROGRESS",
            _ => "COMPLETED",
        };
        return json(200, format!(r#"{{"status":"{status}","error":null}}"#));
    }
    json(
        200,
        r#"{"images":[{"url":"https://cdn.example.com/cat-astronaut.png"}]}"#.into(),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let queue = Arc::new(Mutex::new(Queue::default()));
    let server_queue = Arc::clone(&queue);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let queue = Arc::clone(&server_queue);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = answer(&queue, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new().deadline(Duration::from_secs(30)))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let poller = JobPoller::new(client)
        .reader(QueueStatus)
        .intervals(Duration::from_millis(100), Duration::from_secs(1))
        .deadline(Duration::from_secs(60));

    let create = Request::post(format!("http://{addr}/v1/queue/flux-dev"))
        .header("authorization", "Key my-key")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(r#"{"prompt":"a cat astronaut"}"#)))?;
    let outcome = poller.create_and_wait(create).await?;

    let key = outcome
        .create_ids()
        .and_then(|ids| ids.idempotency_key())
        .map(|key| key.to_string())
        .unwrap_or_default();
    println!(
        "job {} after {} polls (idempotency key {key})",
        outcome.job_id().unwrap_or("?"),
        outcome.polls()
    );
    let created = queue.lock().unwrap_or_else(|p| p.into_inner()).creations;
    println!("jobs the API created: {created}");
    match outcome.into_ending() {
        JobEnding::Succeeded(result) => {
            let body = result.into_body().collect().await?.to_bytes();
            println!("result: {}", String::from_utf8_lossy(&body));
        }
        other => println!("the job did not succeed: {other:?}"),
    }
    if created != 1 {
        return Err("the lost answer created a second job".into());
    }
    Ok(())
}
