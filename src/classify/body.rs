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
    /// The box the body was read in, when reading stopped before the end: only its body is
    /// still used.
    rest: Option<Pin<Box<Reading<B>>>>,
}

pin_project! {
    /// A response whose body is being read to classify it: one allocation for the parts, the
    /// chunks read and the body, kept as the rest of the replayed body if reading stops at the
    /// limit (the body may not be moved once polled).
    pub(crate) struct Reading<B> {
        parts: http::response::Parts,
        // Most bodies worth reading arrive in one chunk: it is kept here, the rest in `more`.
        first: Bytes,
        more: Vec<Bytes>,
        len: usize,
        // A success of unknown length: held back only while it may be a failure envelope (an
        // object); a JSON array, as Gemini streams its chunks, is let go after its first chunk.
        streamed_success: bool,
        #[pin]
        body: B,
    }
}

/// How reading the prefix ended.
pub(crate) enum PrefixEnd<E> {
    /// The body ended (with trailers, if any).
    Complete(Option<HeaderMap>),
    /// The body failed.
    Failed(E),
    /// The limit was reached before the end.
    Limit,
}

impl<B: Body> Reading<B> {
    /// Starts reading `body`, the body of the response of `parts`.
    pub(crate) fn start(parts: http::response::Parts, body: B, streamed_success: bool) -> Self {
        Reading {
            parts,
            first: Bytes::new(),
            more: Vec::new(),
            len: 0,
            streamed_success,
            body,
        }
    }

    /// Reads chunks until the body ends, fails, or `limit` bytes were read.
    pub(crate) fn poll_prefix(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        limit: usize,
    ) -> Poll<PrefixEnd<B::Error>> {
        let mut this = self.project();
        while *this.len < limit {
            match std::task::ready!(this.body.as_mut().poll_frame(cx)) {
                None => return Poll::Ready(PrefixEnd::Complete(None)),
                Some(Err(error)) => return Poll::Ready(PrefixEnd::Failed(error)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let chunk = into_bytes(data);
                        *this.len += chunk.len();
                        if this.first.is_empty() {
                            *this.first = chunk;
                        } else if !chunk.is_empty() {
                            this.more.push(chunk);
                        }
                        if *this.streamed_success && starts_an_array(this.first) {
                            return Poll::Ready(PrefixEnd::Limit);
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            return Poll::Ready(PrefixEnd::Complete(Some(trailers)));
                        }
                    }
                },
            }
        }
        if this.body.is_end_stream() {
            Poll::Ready(PrefixEnd::Complete(None))
        } else {
            Poll::Ready(PrefixEnd::Limit)
        }
    }

    /// The response's parts and the prefix read as one buffer (the first chunk as it came when
    /// it is the only one), taken out: the body stays, to be read on as the rest.
    pub(crate) fn take_read(self: Pin<&mut Self>) -> (http::response::Parts, Bytes) {
        let this = self.project();
        // Empty parts cost no allocation.
        let parts = std::mem::replace(this.parts, http::Response::new(()).into_parts().0);
        (parts, joined(this.first, this.more, *this.len))
    }
}

/// The chunks read as one buffer, taken out of `first` and `more`.
fn joined(first: &mut Bytes, more: &mut Vec<Bytes>, len: usize) -> Bytes {
    let first = std::mem::take(first);
    if more.is_empty() {
        return first;
    }
    let mut joined = bytes::BytesMut::with_capacity(len);
    joined.extend_from_slice(&first);
    for chunk in more.drain(..) {
        joined.extend_from_slice(&chunk);
    }
    joined.freeze()
}

/// Whether JSON text opens an array (after any whitespace): a stream of chunks such as Gemini's
/// `streamGenerateContent`, never a failure envelope.
fn starts_an_array(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
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
        rest: Option<Pin<Box<Reading<B>>>>,
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
                let frame = std::task::ready!(rest.as_mut().project().body.poll_frame(cx));
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
                    && replay
                        .rest
                        .as_ref()
                        .is_none_or(|rest| rest.body.is_end_stream())
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
                    .map_or_else(|| SizeHint::with_exact(0), |rest| rest.body.size_hint());
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
