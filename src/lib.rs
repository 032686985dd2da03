//! Tower layers that make HTTP clients of paid AI-generation APIs behave like a careful engineer.
//!
//! Image, video, music and LLM gateways fail in ways a status code alone does not explain. This
//! crate reads every answer by its status *and* its JSON error body into one taxonomy with a
//! retry verdict, waits as long as the server asks, retries only what is safe, never pays twice,
//! and keeps the trace ids a support ticket needs.
//!
//! ```text
//! caller
//!   └─ RequestIdLayer          stamps x-request-id (a caller's own is kept)
//!      └─ IdempotencyKeyLayer   one Idempotency-Key per logical POST/PATCH, the same on every attempt
//!         └─ (ApiErrorLayer)     failures_as_errors(): classified failures become Err(ApiError)
//!            └─ RetryLayer        pacing from announced limits, backoff, server waits, budget,
//!               │                  deadline, safety
//!               └─ ClassifyLayer   status + JSON body -> Classification, bounded and lossless
//!                  └─ your HTTP client (hyper-util, or any tower service)
//! ```
//!
//! [`ResilienceLayer`] builds the whole pipeline with documented defaults; each piece is also a
//! layer of its own:
//!
//! - [`classify`] holds [`ClassifyLayer`], [`Classification`], [`ErrorKind`], [`Classifier`];
//! - [`retry`] holds [`RetryLayer`], [`Attempts`], [`RetryError`], wait hints, backoff, budget;
//! - [`pacing`] holds the [`Pacer`](pacing::Pacer), which paces attempts from the limits
//!   providers announce, and [`TokenCost`](pacing::TokenCost);
//! - [`idempotency`] holds [`IdempotencyKeyLayer`];
//! - [`request_id`] holds [`RequestIdLayer`], which stamps the client's id of each request;
//! - [`ids`] holds the ids' value types: the server's [`TraceId`] and the client's
//!   [`RequestIds`];
//! - [`error`] holds [`ApiError`], its masked support report, and [`ApiErrorLayer`];
//! - [`stack`] holds [`ResilienceLayer`] and [`ServiceBuilderExt`];
//! - [`telemetry`] lists the spans, events and metrics the stack reports.
//!
//! # Quick start
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use http_resilience::{Classification, ClassifyLayer, ErrorKind};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A gateway that reports a rate limit as a business code under HTTP 200.
//! let gateway = service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, http::Error>(
//!         Response::builder()
//!             .header("content-type", "application/json")
//!             .header("content-length", "45")
//!             .body(Full::new(Bytes::from_static(br#"{"code":130005,"msg":"Request too frequent"}"#)))?,
//!     )
//! });
//! let client = ServiceBuilder::new().layer(ClassifyLayer::new()).service(gateway);
//!
//! let response = client.oneshot(Request::new(Full::default())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let classification = response.extensions().get::<Classification>().unwrap();
//! assert_eq!(classification.kind(), Some(ErrorKind::RateLimited));
//! assert_eq!(classification.message(), Some("Request too frequent"));
//! # Ok(())
//! # }
//! ```
//!
//! See [`stack`] for the whole pipeline and [`error`] for failures as errors.

#![deny(missing_docs, unsafe_code, unreachable_pub, rust_2018_idioms)]
// docs.rs builds with `--cfg docsrs` on nightly: feature-gated items get their badge.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::todo, clippy::dbg_macro, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[macro_use]
mod macros;

pub mod classify;
mod content_encoding;
mod duration_text;
pub mod error;
mod fold_hash;
mod header_id;
pub mod idempotency;
pub mod ids;
pub mod jobs;
mod mask;
pub mod pacing;
pub mod request_id;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
pub mod retry;
pub mod stack;
pub mod store;
pub mod telemetry;
#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
pub mod webhooks;

/// What the fuzz targets in `fuzz/` need of the crate's inside (built with `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::mask::properties::*;

    /// The pacer's model, driven step by step.
    pub mod pacing {
        pub use crate::pacing::properties::*;
    }

    /// The response headers a trace id is looked for in, best first.
    pub const TRACE_ID_HEADERS: &[&str] = crate::classify::TRACE_ID_HEADERS;
}

/// The README's Rust examples, compiled as doctests (the fragments marked `ignore` excepted).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use classify::Classifier;
pub use classify::{Classification, ClassifyLayer, ErrorKind, RetryVerdict};
pub use error::{ApiError, ApiErrorLayer};
pub use idempotency::IdempotencyKeyLayer;
pub use ids::{RequestIds, TraceId};
pub use request_id::RequestIdLayer;
pub use retry::{Attempts, RequestPolicy, RetryError, RetryLayer, StopReason};
pub use stack::{
    FailuresAsErrors, FailuresAsResponses, ResilienceLayer, ResilienceService, Resilient,
    ResilientErrors, ServiceBuilderExt,
};
