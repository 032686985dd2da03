//! Tower layers that make HTTP clients of paid AI-generation APIs behave like a careful engineer.
//!
//! Image, video, music and LLM gateways fail in ways a status code alone does not explain. This
//! crate reads every answer by its status *and* its JSON error body, into one taxonomy with a
//! retry verdict, without losing or delaying a byte of the body.
//!
//! ```text
//! caller
//!   └─ ClassifyLayer  reads each response (body too, bounded and lossless) -> Classification
//!      └─ any HTTP client service (hyper-util, a reqwest adapter, a test service)
//! ```
//!
//! - [`classify`]: [`ClassifyLayer`], [`Classification`], [`ErrorKind`], [`Classifier`].
//! - [`TraceId`]: the server's id for a support ticket, from a header or the body.
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
//! // A gateway that reports a rate limit as a business code under HTTP 200 (seed 003).
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

#![deny(missing_docs, unsafe_code, unreachable_pub, rust_2018_idioms)]
#![warn(clippy::todo, clippy::dbg_macro, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod classify;
mod duration_text;
pub mod error;
pub mod idempotency;
pub mod retry;
mod stack;
pub mod trace_id;

pub use classify::Classifier;
pub use classify::{Classification, ClassifyLayer, ErrorKind, RetryVerdict};
pub use error::{ApiError, ApiErrorLayer};
pub use idempotency::IdempotencyKeyLayer;
pub use retry::{Attempts, RetryError, RetryLayer, StopReason};
pub use stack::{
    FailuresAsErrors, FailuresAsResponses, MaybeIdempotent, ResilienceLayer, Resilient,
    ResilientErrors, ServiceBuilderExt,
};
pub use trace_id::{TraceId, TraceIdLayer};
