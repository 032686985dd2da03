//! Know what a response means: classify it by its status *and* its JSON error body.
//!
//! Paid AI APIs fail in ways a status alone does not explain: a 429 may mean "slow down for two
//! seconds" or "your balance is gone" (OpenAI's `insufficient_quota`), a 200 may carry a business
//! failure (`{"code":130005}`), a 403 may be a moderation verdict. [`ClassifyLayer`] reads each
//! response like a careful engineer would and attaches a [`Classification`]: an [`ErrorKind`]
//! from one taxonomy for every provider, with a [`RetryVerdict`], the provider's own code and
//! message, the trace id for a support ticket, and any wait the body asked for.
//!
//! # Differences from `tower_http::classify`
//!
//! tower-http's classifiers look at the status (or gRPC headers) only and answer "success or
//! failure". This module also reads the body — bounded and losslessly — understands the error
//! envelopes of the major AI providers, and answers *what kind* of failure with a retry verdict.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use http_resilience::classify::{Classification, ClassifyLayer, ErrorKind, RetryVerdict};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An upstream that is out of quota, OpenAI-style: a 429 that must not be retried.
//! let upstream = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
//!     Ok::<_, http::Error>(
//!         Response::builder()
//!             .status(StatusCode::TOO_MANY_REQUESTS)
//!             .header("x-request-id", "req_123")
//!             .body(Full::new(Bytes::from(body)))?,
//!     )
//! });
//! let client = ServiceBuilder::new().layer(ClassifyLayer::new()).service(upstream);
//!
//! let response = client.oneshot(Request::new(Full::default())).await?;
//! let classification = response.extensions().get::<Classification>().unwrap().clone();
//! assert_eq!(classification.kind(), Some(ErrorKind::QuotaExhausted));
//! assert_eq!(classification.verdict(), Some(RetryVerdict::Never));
//! assert_eq!(classification.trace_id().unwrap().as_str(), "req_123");
//!
//! // The caller still gets every byte of the body.
//! let body = response.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(br#"{"error""#));
//! # Ok(())
//! # }
//! ```
//!
//! # Which bodies are read
//!
//! - **Failures (4xx, 5xx)** are read up to the body limit (default 64 KiB,
//!   [`ClassifyLayer::body_limit`]) before the response is returned. The bytes read are replayed
//!   to the caller, then the rest streams on: a body longer than the limit arrives whole.
//! - **Successes** are read only when they are JSON (`content-type` contains `json`) within the
//!   limit, since that is where a failure can hide under a 200: a known length within the limit,
//!   or an unknown length (sent chunked) that ends within it. Such a body reaches the caller once
//!   it has ended, or once the limit is reached; a longer one then streams on whole, classified
//!   by its status alone. JSON streams (NDJSON, JSON Lines, JSON text sequences,
//!   `…stream+json`), SSE, images, downloads and JSON longer than the limit by its length are
//!   passed through without reading a byte and without added latency.
//! - Empty bodies, answers to `HEAD`, 1xx and 3xx are classified by status alone.
//!
//! A body that is not JSON (a proxy's HTML 502, plain text) or is cut short by the limit falls
//! back to the status. If the body fails while being read, the bytes read are replayed and then
//! the same error is returned to the caller; a success whose body failed is a
//! [`Transport`](ErrorKind::Transport) failure, which the retry layer retries when the request is
//! safe to send again.
//!
//! # What decides the kind
//!
//! The most specific signal wins, in this order: a provider's specific code in the body, then in
//! a code header (`x-amzn-errortype`); a phrase of the message, read under the statuses it
//! applies to (`credit balance is too low`, `余额不足`, `server is busy`); the HTTP status; a
//! generic code (`invalid_request_error`, `server_error`, `api_error`, Google's
//! `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …); a number read as a status. An unknown code falls
//! back to the status. [`Classification::decided_by`] names the signal that decided. Add or
//! override rules with [`ClassifyLayer::with_classifier`]:
//!
//! ```
//! use http_resilience::classify::{Classifier, ClassifyLayer, ErrorKind};
//!
//! let layer = ClassifyLayer::with_classifier(
//!     Classifier::new()
//!         .code("QUEUE_FULL", ErrorKind::Overloaded) // a text code
//!         .code(20_001, ErrorKind::QuotaExhausted)   // a numeric business code
//!         .trace_id_header(http::HeaderName::from_static("x-my-gateway-id"))
//!         .trace_id_field("job_ref"),
//! )
//! .body_limit(16 * 1024);
//! ```
//!
//! Provider tables (with their sources) cover generation gateways' envelopes (`{"error":{…},
//! "trace_id"}`, `{success, data, error}`, business codes under HTTP 200, queue APIs), RFC 9457
//! problem+json, OpenAI, Azure OpenAI, Anthropic, Google Gemini / Vertex, Mistral, Cohere, Groq,
//! OpenRouter, DeepSeek, Together, Replicate, fal, Stability AI, AWS Bedrock and other AWS JSON
//! services, Hugging Face Inference, ElevenLabs, Alibaba DashScope, Zhipu, Baidu Qianfan,
//! MiniMax, Moonshot and Tencent Cloud.

mod body;
mod classification;
mod classifier;
mod envelope;
mod kind;
mod layer;
mod providers;

pub use body::ClassifiedBody;
#[cfg_attr(not(feature = "reqwest"), allow(unused_imports))]
pub(crate) use body::SimplestBody;
pub use classification::{BodyRead, Classification, DecidedBy, ProviderCode};
pub use classifier::Classifier;
pub use kind::{ErrorKind, RetryVerdict};
pub use layer::{Classify, ClassifyLayer, ResponseFuture, DEFAULT_BODY_LIMIT};
#[cfg(fuzzing)]
pub(crate) use providers::TRACE_ID_HEADERS;
