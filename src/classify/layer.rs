//! [`ClassifyLayer`], its service [`Classify`] and its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{header, Method, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{PrefixEnd, Reading};
use super::{BodyRead, ClassifiedBody, Classifier, ErrorKind};
use crate::content_encoding::{decode, encoding_of, Coding, Encoding};

/// The default number of body bytes read to classify a response: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Classifies every response by its status, headers and (when worth it) its body, and puts its
/// [`Classification`](super::Classification), which holds the server's
/// [`TraceId`](crate::TraceId), into the response's extensions.
///
/// See the [module docs](super) for which bodies are read.
#[derive(Clone)]
pub struct ClassifyLayer {
    classifier: Arc<Classifier>,
    body_limit: usize,
}

impl ClassifyLayer {
    /// A layer with every provider table and a 64 KiB body limit.
    pub fn new() -> Self {
        ClassifyLayer::with_classifier(Classifier::new())
    }

    /// A layer with the given rules.
    pub fn with_classifier(classifier: Classifier) -> Self {
        ClassifyLayer {
            classifier: Arc::new(classifier),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Reads at most `limit` body bytes per response to classify it (default
    /// [`DEFAULT_BODY_LIMIT`]). The caller still receives every byte.
    ///
    /// The inner body hands out whole chunks, so up to one chunk beyond the limit may be held.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    pub(crate) fn body_limit_bytes(&self) -> usize {
        self.body_limit
    }

    /// The rules this layer classifies with.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }
}

impl Default for ClassifyLayer {
    fn default() -> Self {
        ClassifyLayer::new()
    }
}

impl fmt::Debug for ClassifyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifyLayer")
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify {
            inner,
            classifier: Arc::clone(&self.classifier),
            body_limit: self.body_limit,
        }
    }
}

/// The service of [`ClassifyLayer`].
#[derive(Clone)]
pub struct Classify<S> {
    inner: S,
    classifier: Arc<Classifier>,
    body_limit: usize,
}

impl<S> Classify<S> {
    /// Wraps `inner` with the default classifier.
    pub fn new(inner: S) -> Self {
        ClassifyLayer::new().layer(inner)
    }

    /// A [`ClassifyLayer`] with the default classifier.
    pub fn layer() -> ClassifyLayer {
        ClassifyLayer::new()
    }

    inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for Classify<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classify")
            .field("inner", &self.inner)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Classify<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ClassifiedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let is_head = req.method() == Method::HEAD;
        ResponseFuture {
            inner: self.inner.call(req),
            reading: None,
            coding: None,
            classifier: Arc::clone(&self.classifier),
            body_limit: self.body_limit,
            is_head,
        }
    }
}

pin_project! {
    /// The response future of [`Classify`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        // Boxed: only failures and small JSON successes are read, and every outer future would
        // otherwise carry (and move) the space for it.
        reading: Option<Pin<Box<Reading<B>>>>,
        // The coding of the body being read, looked up once.
        coding: Option<Coding>,
        classifier: Arc<Classifier>,
        body_limit: usize,
        is_head: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ClassifiedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(mut reading) = this.reading.take() {
                return match reading.as_mut().poll_prefix(cx, *this.body_limit) {
                    Poll::Ready(end) => {
                        let limit = *this.body_limit;
                        Poll::Ready(Ok(finish(
                            reading,
                            this.classifier,
                            *this.coding,
                            end,
                            limit,
                        )))
                    }
                    Poll::Pending => {
                        *this.reading = Some(reading);
                        Poll::Pending
                    }
                };
            }
            let response = ready!(this.inner.as_mut().poll(cx))?;
            let (mut parts, body) = response.into_parts();
            if let Some(encoding) = should_read(&parts, &body, *this.body_limit, *this.is_head) {
                if let Encoding::Decodable(coding) = encoding {
                    *this.coding = Some(coding);
                }
                let streamed_success =
                    parts.status.is_success() && known_len(&parts, &body).is_none();
                *this.reading = Some(Box::pin(Reading::start(parts, body, streamed_success)));
                continue;
            }
            let classification =
                this.classifier
                    .classify(parts.status, &parts.headers, &[], BodyRead::NotRead);
            parts.extensions.insert(classification);
            return Poll::Ready(Ok(Response::from_parts(
                parts,
                ClassifiedBody::passthrough(body),
            )));
        }
    }
}

/// The response once its prefix is read: classified, with a body that replays the prefix
/// before the rest.
fn finish<B: Body>(
    mut reading: Pin<Box<Reading<B>>>,
    classifier: &Classifier,
    coding: Option<Coding>,
    end: PrefixEnd<B::Error>,
    limit: usize,
) -> Response<ClassifiedBody<B>> {
    let (mut parts, prefix) = reading.as_mut().take_read();
    let (body_read, error, trailers, rest) = match end {
        PrefixEnd::Complete(trailers) => (BodyRead::Complete, None, trailers, None),
        PrefixEnd::Failed(error) => (BodyRead::Prefix, Some(error), None, None),
        PrefixEnd::Limit => (BodyRead::Prefix, None, None, Some(reading)),
    };
    let success = parts.status.is_success();
    // A compressed answer is classified by its decoded text, at most `limit` bytes of it; the
    // caller still receives the bytes as they came.
    let decoded = coding.map(|coding| decode(coding, &prefix, limit));
    let (text, text_read) = match &decoded {
        Some((text, true)) => (&text[..], body_read),
        Some((text, false)) => (&text[..], BodyRead::Prefix),
        None => (&prefix[..], body_read),
    };
    let mut classification = if success && rest.is_some() {
        // A success of unknown length that outgrew the limit: it streams on whole, and a prefix
        // of it says nothing reliable.
        classifier.classify(parts.status, &parts.headers, &[], BodyRead::NotRead)
    } else {
        classifier.classify(parts.status, &parts.headers, text, text_read)
    };
    if success && error.is_some() && classification.kind.is_none() {
        // The answer never arrived whole: a transport failure of this attempt, retried as one
        // when the request is safe to send again.
        classification.kind = Some(ErrorKind::Transport);
    }
    parts.extensions.insert(classification);
    Response::from_parts(parts, ClassifiedBody::replay(prefix, error, trailers, rest))
}

/// Whether the body must be read to classify the response, and if so its encoding (never
/// [`Encoding::Other`]).
///
/// Failures (4xx, 5xx) are read up to the limit. Successes are read only when they are JSON
/// within the limit or of unknown length, where a failure may hide (`{"code":130005}` under
/// 200); a success that is not JSON, a JSON stream (NDJSON, JSON Lines, SSE) or longer than the
/// limit by its length is never touched. Empty bodies and answers to HEAD need no reading.
fn should_read<B: Body>(
    parts: &http::response::Parts,
    body: &B,
    limit: usize,
    is_head: bool,
) -> Option<Encoding> {
    if is_head || limit == 0 || body.is_end_stream() {
        return None;
    }
    let status = parts.status;
    let known_len = || known_len(parts, body);
    let worth_reading = if status.is_client_error() || status.is_server_error() {
        known_len() != Some(0)
    } else if !status.is_success() {
        false
    } else {
        // The media type first: most streamed successes (images, SSE) stop here without a parse.
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| names_json_document(value.as_bytes()));
        // A JSON body of unknown length (sent chunked) is read too, up to the limit: many
        // servers send their JSON that way, failures under 200 included.
        is_json && known_len().is_none_or(|len| len > 0 && len <= limit as u64)
    };
    if !worth_reading {
        return None;
    }
    // A coding this crate cannot decode (`br`, `zstd`) leaves nothing to read.
    Some(encoding_of(&parts.headers)).filter(|encoding| *encoding != Encoding::Other)
}

/// The body's length, from its size hint or `Content-Length`.
fn known_len<B: Body>(parts: &http::response::Parts, body: &B) -> Option<u64> {
    body.size_hint().exact().or_else(|| {
        parts
            .headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// Whether a `Content-Type` names one JSON document (`application/json`,
/// `application/problem+json`, any case), not a stream of them (NDJSON, JSON Lines, JSON text
/// sequences, `…stream+json`), without allocating a lowercase copy per response.
///
/// Finds `json` with a cheap test per byte for a `j`, then looks only at its neighbours: `nd`
/// or `stream+` before it, `l` or `-seq` after it.
fn names_json_document(content_type: &[u8]) -> bool {
    // The common answer, spelled as most servers spell it.
    if content_type == b"application/json" || content_type.starts_with(b"application/json;") {
        return true;
    }
    let Some(at) = (0..content_type.len()).find(|&at| {
        content_type[at] | 0x20 == b'j'
            && content_type
                .get(at..at + 4)
                .is_some_and(|word| word.eq_ignore_ascii_case(b"json"))
    }) else {
        return false;
    };
    let before = &content_type[..at];
    let after = &content_type[at + 4..];
    let ends_with = |text: &[u8], tail: &[u8]| {
        text.len() >= tail.len() && text[text.len() - tail.len()..].eq_ignore_ascii_case(tail)
    };
    let starts_with = |text: &[u8], head: &[u8]| {
        text.len() >= head.len() && text[..head.len()].eq_ignore_ascii_case(head)
    };
    !(ends_with(before, b"nd")
        || ends_with(before, b"stream+")
        || starts_with(after, b"l")
        || starts_with(after, b"-seq"))
}

#[cfg(test)]
mod tests {
    use super::names_json_document;

    #[test]
    fn json_documents_are_recognised_in_any_case_and_streams_are_not() {
        for json in [
            "application/json",
            "application/problem+json",
            "Application/JSON; charset=utf-8",
            "text/x-Json",
        ] {
            assert!(names_json_document(json.as_bytes()), "{json}");
        }
        for other in [
            "image/png",
            "text/event-stream",
            "text/plain",
            "jso",
            "",
            "application/x-ndjson",
            "application/NDJSON",
            "application/jsonl",
            "application/jsonlines",
            "application/json-seq",
            "application/stream+json",
        ] {
            assert!(!names_json_document(other.as_bytes()), "{other}");
        }
    }
}
