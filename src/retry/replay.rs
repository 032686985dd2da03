//! Request bodies on retries: which ones can be sent again, and [`ReplayBody`] for the rest.
//!
//! The retry layer takes any request body that is `Default` and `'static`, as tower-http's
//! `FollowRedirect` does. Before each attempt it tries to keep a copy for the next one:
//!
//! - a body that has ended (`is_end_stream`, as a GET's empty body) is recreated with
//!   `Default::default()`;
//! - a body held in memory is cloned: `Full<Bytes>`, `String`, byte-backed [`ReplayBody`] and
//!   (with the `reqwest` feature) reqwest's in-memory bodies;
//! - any other body (a stream, axum's `Body`, a boxed body with data) is sent once: the request
//!   is never retried and its response (or error) is returned as it is, with
//!   [`StopReason::BodyNotReplayable`](super::StopReason::BodyNotReplayable).
//!
//! To make a body of your own replayable, hand the retry layer its bytes: `Full::new(bytes)`, or
//! `ReplayBody::bytes(bytes)` where the client's body type must also carry streams.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;

/// The error type of streamed [`ReplayBody`]s: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the retry layer accepts: any [`Body`] that is `Default` (to recreate an empty
/// body) and `'static`.
///
/// Before each attempt the layer keeps a copy for the next one: a body that has ended (as a
/// GET's empty body) is recreated with `Default::default()`; `Full<Bytes>`, `String`,
/// byte-backed [`ReplayBody`] and (with the `reqwest` feature) reqwest's in-memory bodies are
/// cloned; any other body (a stream, axum's `Body` with data, a boxed body with data) is sent
/// once, its request never retried
/// ([`StopReason::BodyNotReplayable`](super::StopReason::BodyNotReplayable)).
///
/// A body type that is not `Default` does not compile. Through `oneshot` and other method calls
/// rustc reports only that `Retry`'s `Service` bounds are not met, not this trait's note: wrap
/// such a body in [`ReplayBody::stream`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a request body of the retry layer",
    label = "this request body type",
    note = "the retry layer needs a body that is `Default` (an empty body) and `'static`",
    note = "wrap other bodies in `http_resilience::retry::ReplayBody::stream(body)`, or send the bytes as `Full<Bytes>` to have them replayed"
)]
pub trait RequestBody: Body + Default + Sized + 'static {}

impl<B: Body + Default + 'static> RequestBody for B {}

/// An identical, unread copy of `body` for another attempt, or `None` when it can only be sent
/// once.
pub(crate) fn try_clone_body<B: RequestBody>(body: &B) -> Option<B> {
    if body.is_end_stream() {
        return Some(B::default());
    }
    let any: &dyn Any = body;
    if let Some(full) = any.downcast_ref::<Full<Bytes>>() {
        return same_type(full.clone());
    }
    if let Some(text) = any.downcast_ref::<String>() {
        return same_type(text.clone());
    }
    if let Some(replay) = any.downcast_ref::<ReplayBody>() {
        return same_type(replay.try_clone()?);
    }
    #[cfg(feature = "reqwest")]
    if let Some(body) = any.downcast_ref::<crate::reqwest::ReqwestBody>() {
        return same_type(body.try_clone()?);
    }
    None
}

/// Reads an in-memory body's bytes without consuming it: polls a copy, which for `Full`,
/// `String` and byte-backed [`ReplayBody`](crate::retry::ReplayBody) is ready at once.
pub(crate) fn peek_body<B: RequestBody>(body: &B, limit: usize) -> Option<Bytes> {
    let copy = try_clone_body(body)?;
    let mut copy = std::pin::pin!(copy);
    let mut cx = Context::from_waker(Waker::noop());
    let mut bytes = BytesMut::new();
    while bytes.len() < limit {
        match copy.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(mut data) = frame.into_data() {
                    use bytes::Buf;
                    bytes.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                }
            }
            _ => break,
        }
    }
    // A body held in one large frame is cut to the limit: only its start is ever shown.
    bytes.truncate(limit);
    Some(bytes.freeze())
}

/// `value` as a `B`, which the caller has just found it to be.
fn same_type<T: 'static, B: 'static>(value: T) -> Option<B> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<B>().ok().map(|body| *body)
}

/// A copy of `request` for another attempt: method, URI, version, headers, extensions and a
/// replayed body; `None` when the body cannot be replayed.
pub(crate) fn try_clone_request<B: RequestBody>(request: &Request<B>) -> Option<Request<B>> {
    let body = try_clone_body(request.body())?;
    Some(copy_with_body(request, body))
}

/// The first copy of `request` for another attempt, as [`try_clone_request`]; when the body can
/// be replayed, the request's small header values first move into a shared buffer (see
/// [`share_values`](crate::header_id::share_values)), so neither request allocates for them.
pub(crate) fn first_copy<B: RequestBody>(
    request: &mut Request<B>,
    shared_already: &[Option<&HeaderValue>],
) -> Option<Request<B>> {
    let body = try_clone_body(request.body())?;
    crate::header_id::share_values(request.headers_mut(), shared_already);
    Some(copy_with_body(request, body))
}

fn copy_with_body<B>(request: &Request<B>, body: B) -> Request<B> {
    let mut clone = Request::new(body);
    *clone.method_mut() = request.method().clone();
    *clone.uri_mut() = request.uri().clone();
    *clone.version_mut() = request.version();
    *clone.headers_mut() = request.headers().clone();
    // An empty map (the retry layer took the ids' record out) costs nothing to leave empty.
    if !request.extensions().is_empty() {
        *clone.extensions_mut() = request.extensions().clone();
    }
    clone
}

pin_project! {
    /// A request body for clients that send both kinds: bytes that are replayed on every
    /// attempt, or a stream that is sent once.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Empty;
    /// use http_resilience::retry::ReplayBody;
    ///
    /// let body = ReplayBody::from(r#"{"prompt":"a cat"}"#);
    /// assert!(body.is_replayable());
    /// let streamed = ReplayBody::stream(Empty::<Bytes>::new());
    /// assert!(!streamed.is_replayable());
    /// ```
    pub struct ReplayBody {
        #[pin]
        inner: Inner,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner {
        Bytes { #[pin] body: Full<Bytes> },
        Stream { #[pin] body: UnsyncBoxBody<Bytes, BoxError> },
    }
}

impl ReplayBody {
    /// A body of `bytes`, replayed on every attempt.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        ReplayBody {
            inner: Inner::Bytes {
                body: Full::new(bytes.into()),
            },
        }
    }

    /// A body streamed once: its request is never retried.
    pub fn stream<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        ReplayBody {
            inner: Inner::Stream {
                body: body.map_err(Into::into).boxed_unsync(),
            },
        }
    }

    /// Whether the body can be sent again.
    pub fn is_replayable(&self) -> bool {
        matches!(self.inner, Inner::Bytes { .. })
    }

    fn try_clone(&self) -> Option<Self> {
        match &self.inner {
            Inner::Bytes { body } => Some(ReplayBody {
                inner: Inner::Bytes { body: body.clone() },
            }),
            Inner::Stream { .. } => None,
        }
    }
}

impl Default for ReplayBody {
    /// An empty body.
    fn default() -> Self {
        ReplayBody::bytes(Bytes::new())
    }
}

impl fmt::Debug for ReplayBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("replayable", &self.is_replayable())
            .finish()
    }
}

impl From<Bytes> for ReplayBody {
    fn from(bytes: Bytes) -> Self {
        ReplayBody::bytes(bytes)
    }
}

impl From<Vec<u8>> for ReplayBody {
    fn from(bytes: Vec<u8>) -> Self {
        ReplayBody::bytes(bytes)
    }
}

impl From<String> for ReplayBody {
    fn from(text: String) -> Self {
        ReplayBody::bytes(text)
    }
}

impl From<&'static str> for ReplayBody {
    fn from(text: &'static str) -> Self {
        ReplayBody::bytes(Bytes::from_static(text.as_bytes()))
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().inner.project() {
            InnerProj::Bytes { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never| match never {}))),
            InnerProj::Stream { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Bytes { body } => body.is_end_stream(),
            Inner::Stream { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Bytes { body } => body.size_hint(),
            Inner::Stream { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;

    #[test]
    fn in_memory_bodies_are_cloned_and_empty_ones_recreated() {
        let full = Full::new(Bytes::from_static(b"{}"));
        assert!(try_clone_body(&full).is_some());
        assert!(try_clone_body(&String::from("x")).is_some());
        assert!(try_clone_body(&ReplayBody::from("x")).is_some());
        assert!(try_clone_body(&Empty::<Bytes>::new()).is_some());
        let boxed = Full::new(Bytes::from_static(b"{}")).map_err(|never| match never {});
        let boxed: UnsyncBoxBody<Bytes, BoxError> = boxed.boxed_unsync();
        assert!(try_clone_body(&boxed).is_none());
        let empty_boxed: UnsyncBoxBody<Bytes, BoxError> = UnsyncBoxBody::default();
        assert!(try_clone_body(&empty_boxed).is_some());
        assert!(try_clone_body(&ReplayBody::stream(Empty::<Bytes>::new())).is_some());
        let stream = ReplayBody::stream(Full::new(Bytes::from_static(b"s")));
        assert!(try_clone_body(&stream).is_none());
    }
}
