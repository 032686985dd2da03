//! [`RequestIdLayer`]: stamps the client's id of each logical request.
//!
//! A provider asks for an id in every support ticket. The server's own id of an answer is a
//! [`TraceId`](crate::ids::TraceId), read by the classifier; the client's id is stamped here, on
//! the outbound request (`x-request-id` by default; a caller's own is kept), so that even a request
//! that timed out before any answer has an id for the ticket. The id is recorded in the request's
//! [`RequestIds`](crate::RequestIds), which the retry layer and the error layer read and which ends
//! up on the final response and in every error.
//!
//! Ids come from a tower-http [`MakeRequestId`], re-exported here on purpose: a generator written
//! for tower-http's `SetRequestIdLayer` works unchanged. This makes tower-http 0.7's
//! `MakeRequestId` and `RequestId` part of this crate's API.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::ids::RequestIds;
//! use http_resilience::RequestIdLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = service_fn(|req: Request<Full<Bytes>>| async move {
//!     assert!(req.headers().contains_key("x-request-id"));
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//! });
//! let client = ServiceBuilder::new().layer(RequestIdLayer::new()).service(upstream);
//! let response = client.oneshot(Request::new(Full::default())).await?;
//! let ids = response.extensions().get::<RequestIds>().unwrap();
//! assert!(ids.client_request_id().unwrap().was_generated());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use tower_http::request_id::{MakeRequestId, MakeRequestUuid, RequestId};

use crate::ids::{record_stamp, stamp_header, IdField, RecordIdFuture};

/// The header the client request id is sent in, by default.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
#[derive(Clone)]
pub struct RequestIdLayer<M = FastRequestIds> {
    header: HeaderName,
    make: M,
}

impl<M> fmt::Debug for RequestIdLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdLayer")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl RequestIdLayer<FastRequestIds> {
    /// Stamps random UUID-form ids in `x-request-id`.
    pub fn new() -> Self {
        RequestIdLayer::with_maker(FastRequestIds)
    }
}

impl Default for RequestIdLayer<FastRequestIds> {
    fn default() -> Self {
        RequestIdLayer::new()
    }
}

impl<M> RequestIdLayer<M> {
    /// Stamps ids made by `make` in `x-request-id`.
    pub fn with_maker(make: M) -> Self {
        RequestIdLayer {
            header: X_REQUEST_ID,
            make,
        }
    }

    /// Uses this header instead of `x-request-id`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// The header and the maker, for a service that stamps the id itself.
    pub(crate) fn stamp(&self) -> RequestIdStamp<M>
    where
        M: Clone,
    {
        RequestIdStamp {
            header: self.header.clone(),
            make: self.make.clone(),
        }
    }

    /// The same layer with ids made by `make`.
    pub(crate) fn replace_maker<M2>(self, make: M2) -> RequestIdLayer<M2> {
        RequestIdLayer {
            header: self.header,
            make,
        }
    }
}

impl<S, M: Clone> Layer<S> for RequestIdLayer<M> {
    type Service = SetRequestId<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId {
            inner,
            header: self.header.clone(),
            make: self.make.clone(),
        }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone)]
pub struct SetRequestId<S, M = FastRequestIds> {
    inner: S,
    header: HeaderName,
    make: M,
}

impl<S: fmt::Debug, M> fmt::Debug for SetRequestId<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetRequestId")
            .field("inner", &self.inner)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<S, M> SetRequestId<S, M> {
    inner_service_accessors!();
}

impl<S, M, B, ResBody> Service<Request<B>> for SetRequestId<S, M>
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
        let stamped = stamp_id(&self.header, &mut self.make, &mut request);
        let inner = &mut self.inner;
        record_stamp(request, stamped, IdField::ClientRequestId, |request| {
            inner.call(request)
        })
    }
}

/// Stamps the client request id of `request` in `header`: the caller's own, or one `make`
/// makes.
fn stamp_id<B, M: MakeRequestId>(
    header: &HeaderName,
    make: &mut M,
    request: &mut Request<B>,
) -> Option<(http::HeaderValue, bool)> {
    stamp_header(request, header, |request| {
        make.make_request_id(request)
            .map(RequestId::into_header_value)
    })
}

/// How a [`RequestIdLayer`] stamps, for a service that stamps the id itself.
#[derive(Clone)]
pub(crate) struct RequestIdStamp<M> {
    header: HeaderName,
    make: M,
}

impl<M: MakeRequestId> RequestIdStamp<M> {
    pub(crate) fn stamp<B>(
        &mut self,
        request: &mut Request<B>,
    ) -> Option<(http::HeaderValue, bool)> {
        stamp_id(&self.header, &mut self.make, request)
    }
}

impl<M> RequestIdStamp<M> {
    pub(crate) fn header(&self) -> &HeaderName {
        &self.header
    }
}

/// The response future of [`SetRequestId`]: adds the client request id to the response's
/// [`RequestIds`](crate::RequestIds).
pub type ResponseFuture<F> = RecordIdFuture<F>;

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
