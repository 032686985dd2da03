//! Asynchronous generation jobs: create once, poll politely, know for certain when it is done.
//!
//! Most generation APIs answer a create request with a job (a task id, a `202`, a queue
//! entry) and the result comes later, from a status URL or a callback. [`JobPoller`] runs that
//! protocol over any client stack: the create request is sent once with its idempotency key
//! (a retried creation never starts a second paid job), then the status URL is polled with a
//! bounded, jittered backoff until the job ends, every poll going through the same
//! classification, server waits, budget and trace ids as any request.
//!
//! A [`ReadStatus`] reads each answer: [`TaskStatus`] (task objects and `{success, data,
//! error}` envelopes, the default), [`QueueStatus`] (`IN_QUEUE` / `IN_PROGRESS` /
//! `COMPLETED` queues with `status_url`, `response_url` and `cancel_url`, as fal's),
//! [`ReplicateStatus`], or a closure. A task's own failure (`"status": "failed"` with
//! `generation_failed`, a `COMPLETED` answer with an `error`) ends the job as
//! [`JobEnding::Failed`] with its [`Classification`](crate::Classification): polling never
//! retries it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use http_resilience::jobs::{JobEnding, JobPoller, QueueStatus};
//! use http_resilience::{ResilienceLayer, ServiceBuilderExt};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower::{service_fn, ServiceBuilder};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A queue API: the job is queued, then completed; the result is at `response_url`.
//! let polls = Arc::new(AtomicU32::new(0));
//! let api = service_fn(move |request: Request<Full<Bytes>>| {
//!     let polls = Arc::clone(&polls);
//!     async move {
//!         let body = match (request.method().as_str(), request.uri().path()) {
//!             ("POST", _) => r#"{"status":"IN_QUEUE","request_id":"r1",
//!                 "status_url":"/v1/queue/requests/r1/status",
//!                 "response_url":"/v1/queue/requests/r1"}"#,
//!             (_, "/v1/queue/requests/r1/status") if polls.fetch_add(1, Ordering::SeqCst) < 2 => {
//!                 r#"{"status":"IN_PROGRESS"}"#
//!             }
//!             (_, "/v1/queue/requests/r1/status") => r#"{"status":"COMPLETED","error":null}"#,
//!             _ => r#"{"images":[{"url":"https://cdn.example.com/cat.png"}]}"#,
//!         };
//!         let mut response = Response::new(Full::new(Bytes::from(body)));
//!         response.headers_mut().insert("content-type", "application/json".parse().unwrap());
//!         Ok::<_, std::io::Error>(response)
//!     }
//! });
//! let client = ServiceBuilder::new().resilience(ResilienceLayer::new()).service(api);
//! let poller = JobPoller::new(client).reader(QueueStatus).deadline(Duration::from_secs(120));
//!
//! let create = Request::post("https://api.example.com/v1/queue/flux")
//!     .header("authorization", "Key my-key")
//!     .body(Full::new(Bytes::from(r#"{"prompt":"a cat astronaut"}"#)))?;
//! let outcome = poller.create_and_wait(create).await?;
//! assert_eq!(outcome.job_id(), Some("r1"));
//! assert!(outcome.create_ids().unwrap().idempotency_key().is_some());
//! match outcome.into_ending() {
//!     JobEnding::Succeeded(result) => {
//!         let body = result.into_body().collect().await?.to_bytes();
//!         assert!(body.starts_with(br#"{"images""#));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod outcome;
mod poller;
mod status;

pub use outcome::{JobEnding, JobError, JobOutcome, ResultBody};
pub use poller::{Created, JobHandle, JobPoller, DEFAULT_STATUS_BODY_LIMIT};
pub use status::{
    JobState, JobStatus, QueueStatus, ReadStatus, ReplicateStatus, StatusAnswer, TaskStatus,
};
