//! Trace ids: the identifiers a provider asks for in a support ticket.
//!
//! Two kinds of id travel with a request:
//!
//! - the **server's** id of each response, a [`TraceId`]: [`ClassifyLayer`](crate::ClassifyLayer)
//!   finds it in a header (`x-request-id`, `request-id`, `x-amzn-requestid`, …) or a body field
//!   (`trace_id`, `request_id`, …), and [`Attempts`](crate::Attempts) keeps the one of every
//!   attempt, so the final response or error carries them all;
//! - the **client's** id of the logical request, a [`ClientRequestId`]: [`TraceIdLayer`] stamps
//!   it on the outbound request (`x-request-id` by default; a caller's own is kept), so that even
//!   a request that timed out before any answer has an id for the ticket.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::trace_id::{ClientRequestId, TraceIdLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = service_fn(|req: Request<Full<Bytes>>| async move {
//!     assert!(req.headers().contains_key("x-request-id"));
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//! });
//! let client = ServiceBuilder::new().layer(TraceIdLayer::new()).service(upstream);
//! let response = client.oneshot(Request::new(Full::default())).await?;
//! let id = response.extensions().get::<ClientRequestId>().unwrap();
//! assert!(id.was_generated());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use tower_http::request_id::{MakeRequestId, MakeRequestUuid, RequestId};

/// The header the client request id is sent in, by default.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An identifier a server gave a response, and where it was found.
///
/// Cheap to clone: the text is shared, so the copies in the [`Classification`](crate::Classification),
/// the response's extensions and every [`Attempts`](crate::Attempts) record cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceId {
    value: Arc<str>,
    source: TraceIdSource,
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
            value: value.into(),
            source,
        }
    }

    /// The id as the server wrote it.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Where the id was found.
    pub fn source(&self) -> &TraceIdSource {
        &self.source
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
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

/// The client's id of a logical request, as sent in its request id header.
///
/// A standalone [`TraceIdLayer`] puts it on the final response. Inner layers read the id from
/// the request header, and the retry layer records it in [`Attempts`](crate::Attempts), so
/// errors carry it too. Under [`ResilienceLayer`](crate::ResilienceLayer) that record is the only
/// one: read [`Attempts::client_request_id`](crate::Attempts::client_request_id), on the
/// response and in every error (one record per fact spares every response an extension entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRequestId {
    value: HeaderValue,
    generated: bool,
}

impl ClientRequestId {
    /// The id as text (an id that is not visible ASCII reads as empty).
    pub fn as_str(&self) -> &str {
        self.value.to_str().unwrap_or_default()
    }

    /// The id as sent.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// Whether [`TraceIdLayer`] made the id (`false`: the caller set the header).
    pub fn was_generated(&self) -> bool {
        self.generated
    }
}

impl fmt::Display for ClientRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Random request ids in UUID v4 form from a fast per-thread generator (the default).
///
/// Request ids need to be unique, not unguessable: drawing them from the operating system (as
/// [`MakeRequestUuid`] does) costs a system call per request, several times the rest of the
/// stack. This generator is seeded per thread and costs no system call. Idempotency keys, whose
/// uniqueness decides whether a job is paid twice, keep drawing from the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastRequestIds;

impl MakeRequestId for FastRequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
        crate::header_id::uuid_header_value(uuid).map(RequestId::new)
    }
}

/// Stamps a client request id on every request that has none; see the [module docs](self).
///
/// Ids come from a tower-http [`MakeRequestId`] ([`FastRequestIds`] by default), so a generator
/// written for tower-http's `SetRequestIdLayer` works here too.
#[derive(Clone)]
pub struct TraceIdLayer<M = FastRequestIds> {
    header: HeaderName,
    make: M,
    // Whether the response gets a `ClientRequestId`; off under `ResilienceLayer`, whose
    // `Attempts` records the id.
    record: bool,
}

impl<M> fmt::Debug for TraceIdLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceIdLayer")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl TraceIdLayer<FastRequestIds> {
    /// Stamps random UUID-form ids in `x-request-id`.
    pub fn new() -> Self {
        TraceIdLayer::with_maker(FastRequestIds)
    }
}

impl Default for TraceIdLayer<FastRequestIds> {
    fn default() -> Self {
        TraceIdLayer::new()
    }
}

impl<M> TraceIdLayer<M> {
    /// Stamps ids made by `make` in `x-request-id`.
    pub fn with_maker(make: M) -> Self {
        TraceIdLayer {
            header: X_REQUEST_ID,
            make,
            record: true,
        }
    }

    /// Uses this header instead of `x-request-id`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// The header the id is sent in.
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }

    /// The same layer with ids made by `make`.
    pub(crate) fn replace_maker<M2>(self, make: M2) -> TraceIdLayer<M2> {
        TraceIdLayer {
            header: self.header,
            make,
            record: self.record,
        }
    }

    /// Stamps ids without putting a [`ClientRequestId`] on the response: for a stack whose
    /// retry layer records the id in [`Attempts`](crate::Attempts).
    pub(crate) fn without_response_record(mut self) -> Self {
        self.record = false;
        self
    }
}

impl<S, M: Clone> Layer<S> for TraceIdLayer<M> {
    type Service = SetTraceId<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        SetTraceId {
            inner,
            header: self.header.clone(),
            make: self.make.clone(),
            record: self.record,
        }
    }
}

/// The service of [`TraceIdLayer`].
#[derive(Clone)]
pub struct SetTraceId<S, M = FastRequestIds> {
    inner: S,
    header: HeaderName,
    make: M,
    record: bool,
}

impl<S: fmt::Debug, M> fmt::Debug for SetTraceId<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetTraceId")
            .field("inner", &self.inner)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<S, M> SetTraceId<S, M> {
    inner_service_accessors!();
}

impl<S, M, B, ResBody> Service<Request<B>> for SetTraceId<S, M>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    M: MakeRequestId,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = match request.headers().get(&self.header) {
            Some(existing) => self.record.then(|| ClientRequestId {
                value: existing.clone(),
                generated: false,
            }),
            None => self.make.make_request_id(&request).and_then(|id| {
                let value = id.into_header_value();
                let recorded = self.record.then(|| ClientRequestId {
                    value: value.clone(),
                    generated: true,
                });
                request.headers_mut().insert(self.header.clone(), value);
                recorded
            }),
        };
        ResponseFuture {
            inner: self.inner.call(request),
            id,
        }
    }
}

pin_project! {
    /// The response future of [`SetTraceId`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<ClientRequestId>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.extensions_mut().insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_ids_are_uuid_v4_and_distinct() {
        let request = Request::new(());
        let mut make = FastRequestIds;
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| {
                let id = make.make_request_id(&request).unwrap();
                let text = id.header_value().to_str().unwrap().to_owned();
                let parsed = uuid::Uuid::parse_str(&text).unwrap();
                assert_eq!(parsed.get_version_num(), 4);
                text
            })
            .collect();
        assert_eq!(ids.len(), 10_000);
    }
}
