//! [`ClassifiedBody`]: the response body after classification, every byte intact.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a classified response.
    ///
    /// A body that was not read is passed through untouched. A body that was read (a failure, or
    /// a small JSON success) first replays the bytes read, then whatever the inner body held
    /// back: the rest of its data, its trailers, or the error it ended with. The caller receives
    /// the same bytes in the same order as without the layer; only the chunk boundaries of the
    /// read prefix may differ.
    ///
    /// Data frames are [`Bytes`]; an inner body whose data is already `Bytes` (hyper's
    /// `Incoming`, `Full<Bytes>`, reqwest's body) is passed through without a copy.
    pub struct ClassifiedBody<B: Body> {
        #[pin]
        state: State<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B: Body> {
        Passthrough {
            #[pin]
            inner: B,
        },
        Replay {
            replay: Replay<B>,
        },
    }
}

struct Replay<B: Body> {
    prefix: Option<Bytes>,
    error: Option<B::Error>,
    trailers: Option<HeaderMap>,
    rest: Option<Pin<Box<B>>>,
}

impl<B: Body> ClassifiedBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        ClassifiedBody {
            state: State::Passthrough { inner },
        }
    }

    /// A body that replays `prefix`, then `error` or `trailers` if reading ended on one, then
    /// `rest` if reading stopped before the end.
    pub(crate) fn replay(
        prefix: Bytes,
        error: Option<B::Error>,
        trailers: Option<HeaderMap>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        ClassifiedBody {
            state: State::Replay {
                replay: Replay {
                    prefix: (!prefix.is_empty()).then_some(prefix),
                    error,
                    trailers,
                    rest,
                },
            },
        }
    }

    /// Whether the body was read for classification and is being replayed.
    pub fn was_read(&self) -> bool {
        matches!(self.state, State::Replay { .. })
    }

    /// The simplest body that yields the same frames: the inner body when it was not read, the
    /// bytes read when they are the whole body, else this body.
    ///
    /// For adapters that hand the body to another HTTP stack (reqwest), so that a body nobody
    /// needs to replay is not wrapped in one more layer. Compiled with or without a client
    /// feature, so that the core is the same code either way.
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn into_simplest(self) -> SimplestBody<B> {
        match self.state {
            State::Passthrough { inner } => SimplestBody::Inner(inner),
            State::Replay {
                replay:
                    Replay {
                        prefix,
                        error: None,
                        trailers: None,
                        rest: None,
                    },
            } => SimplestBody::Complete(prefix.unwrap_or_default()),
            state => SimplestBody::Classified(ClassifiedBody { state }),
        }
    }
}

/// What [`ClassifiedBody::into_simplest`] found.
#[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
pub(crate) enum SimplestBody<B: Body> {
    /// The inner body, never read.
    Inner(B),
    /// The whole body, read to its end without trailers.
    Complete(Bytes),
    /// A body that still replays a prefix before the rest, an error or trailers.
    Classified(ClassifiedBody<B>),
}

fn into_bytes<D: Buf>(mut data: D) -> Bytes {
    // `Bytes::copy_to_bytes` hands out the same allocation; other buffers are copied once.
    data.copy_to_bytes(data.remaining())
}

fn map_frame<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(into_bytes)
}

impl<B: Body> Body for ClassifiedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().state.project() {
            StateProj::Passthrough { inner } => inner
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map(map_frame))),
            StateProj::Replay { replay } => {
                if let Some(prefix) = replay.prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(prefix))));
                }
                if let Some(error) = replay.error.take() {
                    replay.rest = None;
                    return Poll::Ready(Some(Err(error)));
                }
                if let Some(trailers) = replay.trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                let Some(rest) = replay.rest.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = std::task::ready!(rest.as_mut().poll_frame(cx));
                if frame.is_none() {
                    replay.rest = None;
                }
                Poll::Ready(frame.map(|frame| frame.map(map_frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Passthrough { inner } => inner.is_end_stream(),
            State::Replay { replay } => {
                replay.prefix.is_none()
                    && replay.error.is_none()
                    && replay.trailers.is_none()
                    && replay.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Passthrough { inner } => inner.size_hint(),
            State::Replay { replay } => {
                let prefix = replay.prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut hint = replay
                    .rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |rest| rest.size_hint());
                let lower = hint.lower().saturating_add(prefix);
                let upper = hint.upper().map(|upper| upper.saturating_add(prefix));
                // Set the upper bound first: `set_lower` rejects a lower above the old upper.
                match upper {
                    Some(upper) => {
                        hint.set_upper(upper);
                        hint.set_lower(lower);
                    }
                    None => hint = lower_only(lower),
                }
                hint
            }
        }
    }
}

fn lower_only(lower: u64) -> SizeHint {
    let mut hint = SizeHint::new();
    hint.set_lower(lower);
    hint
}

impl<B: Body> fmt::Debug for ClassifiedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Passthrough { .. } => "passthrough",
            State::Replay { .. } => "replay",
        };
        f.debug_struct("ClassifiedBody")
            .field("state", &state)
            .finish()
    }
}
