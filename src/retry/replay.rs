//! Request bodies that can be sent again, and [`ReplayBody`] for everything else.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Empty, Full};
use pin_project_lite::pin_project;

/// A request body that may be able to produce an identical copy of itself for another attempt.
///
/// Implemented for `Full<Bytes>`, `Empty<Bytes>`, `String` and [`ReplayBody`]. A body that
/// returns `None` is sent once: its request is never retried, and its response is returned as
/// is (never an error just because of it).
pub trait TryCloneBody: Sized {
    /// An identical, unread copy of the body, or `None` if it cannot be replayed.
    fn try_clone_body(&self) -> Option<Self>;
}

impl TryCloneBody for Full<Bytes> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl TryCloneBody for Empty<Bytes> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl TryCloneBody for String {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// A copy of `request` for another attempt: method, URI, version, headers, extensions and a
/// replayed body; `None` when the body cannot be replayed.
pub(crate) fn try_clone_request<B: TryCloneBody>(request: &Request<B>) -> Option<Request<B>> {
    let body = request.body().try_clone_body()?;
    let mut clone = Request::new(body);
    *clone.method_mut() = request.method().clone();
    *clone.uri_mut() = request.uri().clone();
    *clone.version_mut() = request.version();
    *clone.headers_mut() = request.headers().clone();
    *clone.extensions_mut() = request.extensions().clone();
    Some(clone)
}

pin_project! {
    /// A request body for clients whose own body type cannot be cloned: bytes that are
    /// replayed on every attempt, or a stream of `B` that is sent once.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Empty;
    /// use http_resilience::retry::{ReplayBody, TryCloneBody};
    ///
    /// let body: ReplayBody<Empty<Bytes>> = ReplayBody::from(r#"{"prompt":"a cat"}"#);
    /// assert!(body.try_clone_body().is_some());
    /// let streamed = ReplayBody::stream(Empty::<Bytes>::new());
    /// assert!(streamed.try_clone_body().is_none());
    /// ```
    #[derive(Debug)]
    pub struct ReplayBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<B> {
        Bytes { #[pin] body: Full<Bytes> },
        Stream { #[pin] body: B },
    }
}

impl<B> ReplayBody<B> {
    /// A body of `bytes`, replayed on every attempt.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        ReplayBody {
            inner: Inner::Bytes {
                body: Full::new(bytes.into()),
            },
        }
    }

    /// A body streamed once: its request is never retried.
    pub fn stream(body: B) -> Self {
        ReplayBody {
            inner: Inner::Stream { body },
        }
    }

    /// Whether the body can be sent again.
    pub fn is_replayable(&self) -> bool {
        matches!(self.inner, Inner::Bytes { .. })
    }
}

impl<B> TryCloneBody for ReplayBody<B> {
    fn try_clone_body(&self) -> Option<Self> {
        match &self.inner {
            Inner::Bytes { body } => Some(ReplayBody {
                inner: Inner::Bytes { body: body.clone() },
            }),
            Inner::Stream { .. } => None,
        }
    }
}

impl<B> From<Bytes> for ReplayBody<B> {
    fn from(bytes: Bytes) -> Self {
        ReplayBody::bytes(bytes)
    }
}

impl<B> From<Vec<u8>> for ReplayBody<B> {
    fn from(bytes: Vec<u8>) -> Self {
        ReplayBody::bytes(bytes)
    }
}

impl<B> From<String> for ReplayBody<B> {
    fn from(text: String) -> Self {
        ReplayBody::bytes(text)
    }
}

impl<B> From<&'static str> for ReplayBody<B> {
    fn from(text: &'static str) -> Self {
        ReplayBody::bytes(Bytes::from_static(text.as_bytes()))
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

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
