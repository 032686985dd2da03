//! The identifiers of a request and its answers, as value types every layer shares.
//!
//! - [`TraceId`]: the **server's** id of one response, found by the classifier in a header
//!   (`x-request-id`, `request-id`, `x-amzn-requestid`, …) or a body field (`trace_id`,
//!   `request_id`, …). It is part of the [`Classification`](crate::Classification), and
//!   [`Attempts`](crate::Attempts) keeps the one of every attempt.
//! - [`RequestIds`]: the **client's** ids of one logical request: the [`ClientRequestId`]
//!   stamped by [`RequestIdLayer`](crate::RequestIdLayer) and the [`IdempotencyKey`] added by
//!   [`IdempotencyKeyLayer`](crate::IdempotencyKeyLayer). Those layers put one `RequestIds` in
//!   the request's extensions, where [`ApiErrorLayer`](crate::ApiErrorLayer) reads it and the
//!   retry layer takes it (layers inside the retry see the headers), and on the final response;
//!   errors carry it too. [`ResilienceLayer`](crate::ResilienceLayer) stamps both ids in one
//!   service and hands the record to its retry layer directly, with the same result. A header
//!   name is configured in one place, the layer that sends it.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::ids::RequestIds;
//! use http_resilience::{IdempotencyKeyLayer, RequestIdLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = service_fn(|req: Request<Full<Bytes>>| async move {
//!     // Inner layers read the ids from the record, not from headers.
//!     let ids = req.extensions().get::<RequestIds>().unwrap();
//!     assert!(ids.idempotency_key().is_some());
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RequestIdLayer::new())
//!     .layer(IdempotencyKeyLayer::new())
//!     .service(upstream);
//! let response = client
//!     .oneshot(Request::post("https://api.example.com/v1/images").body(Full::default())?)
//!     .await?;
//! let ids = response.extensions().get::<RequestIds>().unwrap();
//! assert!(ids.client_request_id().unwrap().was_generated());
//! assert!(ids.idempotency_key().unwrap().was_generated());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

/// An identifier a server gave a response, and where it was found.
///
/// Cheap to clone: the text is shared, so the copies in the
/// [`Classification`](crate::Classification), every [`Attempts`](crate::Attempts) record and an
/// [`ApiError`](crate::ApiError) cost no allocation. An id read from a header shares the
/// header value's bytes, so finding it costs no allocation either.
#[derive(Clone)]
pub struct TraceId {
    value: IdText,
    source: TraceIdSource,
}

/// The text of a [`TraceId`]: a header value known to be visible ASCII with nothing to trim,
/// shared with the response's header map, or text of its own.
#[derive(Clone)]
enum IdText {
    Header(HeaderValue),
    Owned(Arc<str>),
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceId")
            .field("value", &self.as_str())
            .field("source", &self.source)
            .finish()
    }
}

impl PartialEq for TraceId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() && self.source == other.source
    }
}

impl Eq for TraceId {}

impl std::hash::Hash for TraceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
        self.source.hash(state);
    }
}

/// Where a [`TraceId`] was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceIdSource {
    /// A response header, such as `x-request-id`.
    Header(HeaderName),
    /// A field of the JSON body (top level or inside its `error` object), such as `trace_id`.
    BodyField(Arc<str>),
}

impl TraceId {
    /// A trace id with the place it came from.
    pub fn new(value: impl Into<Arc<str>>, source: TraceIdSource) -> Self {
        TraceId {
            value: IdText::Owned(value.into()),
            source,
        }
    }

    /// Whether a header value makes a trace id: visible ASCII, not blank.
    pub(crate) fn usable(value: &HeaderValue) -> bool {
        value.to_str().is_ok_and(|text| !text.trim().is_empty())
    }

    /// The id a header `name` carries, trimmed; `None` when it is empty or not visible ASCII.
    /// A value with nothing to trim is shared, not copied.
    pub(crate) fn from_header(name: &HeaderName, value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return None;
        }
        let value = if trimmed.len() == text.len() {
            IdText::Header(value.clone())
        } else {
            IdText::Owned(Arc::from(trimmed))
        };
        Some(TraceId {
            value,
            source: TraceIdSource::Header(name.clone()),
        })
    }

    /// The id as the server wrote it.
    pub fn as_str(&self) -> &str {
        match &self.value {
            // Checked to be visible ASCII when made, so this never reads as empty.
            IdText::Header(value) => value.to_str().unwrap_or_default(),
            IdText::Owned(text) => text,
        }
    }

    /// Where the id was found.
    pub fn source(&self) -> &TraceIdSource {
        &self.source
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TraceIdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceIdSource::Header(name) => write!(f, "header {name}"),
            TraceIdSource::BodyField(name) => write!(f, "body field {name}"),
        }
    }
}

/// `as_str`, `value`, `was_generated` and `Display` of a value an id layer stamps on a request.
macro_rules! stamped_value {
    ($type:ident, $layer:literal, $what:literal) => {
        impl $type {
            #[doc = concat!("The ", $what, " as text (one that is not visible ASCII reads as empty).")]
            pub fn as_str(&self) -> &str {
                self.value.to_str().unwrap_or_default()
            }

            #[doc = concat!("The ", $what, " as sent.")]
            pub fn value(&self) -> &HeaderValue {
                &self.value
            }

            #[doc = concat!("Whether [`", $layer, "`](crate::", $layer, ") made the ", $what, " (`false`: the caller set it).")]
            pub fn was_generated(&self) -> bool {
                self.generated
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The client's id of a logical request, as sent in its request id header; part of
/// [`RequestIds`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRequestId {
    value: HeaderValue,
    generated: bool,
}

stamped_value!(ClientRequestId, "RequestIdLayer", "id");

/// The idempotency key a logical request was sent with; part of [`RequestIds`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    value: HeaderValue,
    generated: bool,
    replayed: bool,
}

stamped_value!(IdempotencyKey, "IdempotencyKeyLayer", "key");

impl IdempotencyKey {
    /// Whether the server said it replayed a stored result (`Idempotent-Replayed: true`).
    pub fn was_replayed(&self) -> bool {
        self.replayed
    }
}

/// The client's ids of one logical request: its [`ClientRequestId`] and [`IdempotencyKey`].
///
/// [`RequestIdLayer`](crate::RequestIdLayer) and [`IdempotencyKeyLayer`](crate::IdempotencyKeyLayer)
/// put one in the request's extensions and on the final response, whatever else the stack
/// holds; [`RetryError`](crate::RetryError) and [`ApiError`](crate::ApiError) carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    client_request_id: Option<ClientRequestId>,
    idempotency_key: Option<IdempotencyKey>,
}

impl RequestIds {
    /// The client request id the request was sent with.
    pub fn client_request_id(&self) -> Option<&ClientRequestId> {
        self.client_request_id.as_ref()
    }

    /// The idempotency key the request was sent with.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }

    pub(crate) fn set(&mut self, field: IdField, value: HeaderValue, generated: bool) {
        match field {
            IdField::ClientRequestId => {
                self.client_request_id = Some(ClientRequestId { value, generated })
            }
            IdField::IdempotencyKey => {
                self.idempotency_key = Some(IdempotencyKey {
                    value,
                    generated,
                    replayed: false,
                })
            }
        }
    }

    /// Records that the server said it replayed a stored result.
    pub(crate) fn mark_replayed(&mut self) {
        if let Some(key) = &mut self.idempotency_key {
            key.replayed = true;
        }
    }

    /// Whether the request carries an idempotency key.
    pub(crate) fn has_idempotency_key(&self) -> bool {
        self.idempotency_key.is_some()
    }

    /// The record of a request as the layers that read it need it: the outer id layers' record
    /// (if any), completed by a key the caller put in the standard `Idempotency-Key` header
    /// itself, for a stack without an [`IdempotencyKeyLayer`](crate::IdempotencyKeyLayer).
    pub(crate) fn completed(recorded: Option<Self>, headers: &http::HeaderMap) -> Self {
        let mut ids = recorded.unwrap_or_default();
        if ids.idempotency_key.is_none() {
            if let Some(value) =
                crate::header_id::find_header(headers, &crate::idempotency::IDEMPOTENCY_KEY)
            {
                ids.set(IdField::IdempotencyKey, value.clone(), false);
            }
        }
        ids
    }

    /// Records the server's word on a replay, if the request had a key and the answer's headers
    /// say so.
    pub(crate) fn note_replay(&mut self, headers: &http::HeaderMap) {
        if self.has_idempotency_key() && server_replayed(headers) {
            self.mark_replayed();
        }
    }
}

/// Which of the ids an id layer stamps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdField {
    ClientRequestId,
    IdempotencyKey,
}

/// The value of `header` a request goes out with, and whether it was made here: the caller's
/// own value (not made), or one `make` returns, inserted into the headers.
pub(crate) fn stamp_header<B>(
    request: &mut http::Request<B>,
    header: &HeaderName,
    make: impl FnOnce(&http::Request<B>) -> Option<HeaderValue>,
) -> Option<(HeaderValue, bool)> {
    if let Some(existing) = crate::header_id::find_header(request.headers(), header) {
        return Some((existing.clone(), false));
    }
    let value = make(request)?;
    request.headers_mut().insert(header.clone(), value.clone());
    Some((value, true))
}

/// How the id layers pass on what they stamped (see [`stamp_header`]): recorded in the
/// request's [`RequestIds`] for the layers inside, and added to the response's by the returned
/// future.
pub(crate) fn record_stamp<B, F>(
    mut request: http::Request<B>,
    stamped: Option<(HeaderValue, bool)>,
    field: IdField,
    call: impl FnOnce(http::Request<B>) -> F,
) -> RecordIdFuture<F> {
    if let Some((value, generated)) = &stamped {
        request
            .extensions_mut()
            .get_or_insert_default::<RequestIds>()
            .set(field, value.clone(), *generated);
    }
    RecordIdFuture {
        inner: call(request),
        stamped,
        field,
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestIdLayer`](crate::RequestIdLayer) and
    /// [`IdempotencyKeyLayer`](crate::IdempotencyKeyLayer): adds the id the layer stamped to
    /// the response's [`RequestIds`].
    pub struct RecordIdFuture<F> {
        #[pin]
        inner: F,
        stamped: Option<(HeaderValue, bool)>,
        field: IdField,
    }
}

impl<F, ResBody, E> std::future::Future for RecordIdFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        // The response's record: this layer adds its id to what other id layers put there.
        if let Some((value, generated)) = this.stamped.take() {
            let replayed = matches!(this.field, IdField::IdempotencyKey)
                && server_replayed(response.headers());
            let ids = response
                .extensions_mut()
                .get_or_insert_default::<RequestIds>();
            ids.set(*this.field, value, generated);
            if replayed {
                ids.mark_replayed();
            }
        }
        std::task::Poll::Ready(Ok(response))
    }
}

/// Whether an answer says the server replayed a stored result (`Idempotent-Replayed: true`).
fn server_replayed(headers: &http::HeaderMap) -> bool {
    crate::header_id::find_header(headers, &crate::idempotency::IDEMPOTENT_REPLAYED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}
