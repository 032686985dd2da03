//! Failures as errors that explain themselves: [`ApiError`] and its masked support report.
//!
//! [`ApiErrorLayer`] (or [`ResilienceLayer::failures_as_errors`](crate::ResilienceLayer::failures_as_errors))
//! turns a classified failure into an `Err(ApiError)` carrying the kind, status, provider code
//! and message, the trace ids, the wait hint, every attempt and the elapsed time. Transport
//! errors of the inner client are kept as the error's [`source`](std::error::Error::source),
//! never flattened into strings.
//!
//! [`ApiError::report`] renders what support desks ask a ticket to hold (the trace id, the
//! request URL, headers and body, the response status and body) with every secret
//! masked. The values of secret-named headers, parameters and fields (`Authorization`, API-key
//! and cookie headers, `?api_key=`, `"password": …`, in JSON at any depth, form, query and plain
//! text), URL user-info, and every secret value the request carried, wherever it appears (a
//! server that echoes the key back), never reach `Display`, `Debug`, logs or the report. They are
//! masked when the error is built, so the error does not hold them at all.
//!
//! Masking replaces only the secret values: every other byte of a body stays as the server sent
//! it, keys, order and whitespace included. Bodies that are compressed or not UTF-8 are shown as a
//! summary (`412 bytes, gzip`). `Display` describes the failure itself; the inner client's error
//! is the [`source`](std::error::Error::source), given once, and the report lists the chain.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::{ApiError, ErrorKind, ResilienceLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let upstream = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let body = r#"{"error":{"code":"used_up","message":"balance exhausted"},"trace_id":"7c1a"}"#;
//!     Ok::<_, std::io::Error>(Response::builder().status(403).body(Full::new(Bytes::from(body))).unwrap())
//! });
//! let client = ServiceBuilder::new()
//!     .layer(ResilienceLayer::new().failures_as_errors())
//!     .service(upstream);
//!
//! let request = Request::post("https://api.example.com/v1/images?api_key=sk-secret")
//!     .header("authorization", "Bearer sk-secret")
//!     .body(Full::new(Bytes::from(r#"{"prompt":"a cat"}"#)))
//!     .unwrap();
//! let error: ApiError = client.oneshot(request).await.unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::QuotaExhausted);
//! assert_eq!(error.to_string(), "403 quota_exhausted (used_up): balance exhausted [trace id 7c1a; 1 attempt, stopped: verdict_never]");
//! let report = error.report().to_string();
//! assert!(report.contains("trace id: 7c1a"));
//! assert!(!report.contains("sk-secret"));
//! # }
//! ```

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{Classification, ErrorKind, ProviderCode};
use crate::content_encoding::{self, encoding_of, Coding, Encoding};
use crate::ids::{RequestIds, TraceId};
use crate::mask::{self, Secrets};
use crate::retry::{Attempts, RequestBody, RetryError, RetryErrorCause, WaitHint};

/// How many bytes of the request and response bodies a report shows.
pub const REPORT_BODY_LIMIT: usize = 2048;

/// How many bytes of a failure's response body an [`ApiError`] keeps.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A failed call to an API, with everything needed to act on it or file a ticket.
pub struct ApiError {
    kind: ErrorKind,
    status: Option<StatusCode>,
    code: Option<ProviderCode>,
    message: Option<String>,
    trace_id: Option<TraceId>,
    attempts: Option<Attempts>,
    request: RequestSummary,
    response_body: Option<Bytes>,
    /// What the report shows of the response body: masked text, or a summary.
    response_shown: Option<String>,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
    /// The masked `Display` of every error of the source chain, and the masked `Debug` of the
    /// source: what `Debug` and the report show of errors this crate did not write.
    causes: Vec<String>,
    source_debug: Option<String>,
}

/// What a report shows of the request, secrets already masked.
#[derive(Clone, Default)]
struct RequestSummary {
    method: Option<Method>,
    url: Option<String>,
    headers: Vec<(HeaderName, String)>,
    /// The client request id and idempotency key the request was sent with.
    ids: RequestIds,
    /// The body as the report shows it: masked text, or a summary of bytes that are not text.
    body: Option<String>,
}

impl ApiError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The response status, or `None` when no response came (transport error, timeout).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The provider's own code.
    pub fn code(&self) -> Option<&ProviderCode> {
        self.code.as_ref()
    }

    /// The provider's message, secrets masked; for a timeout, what timed out. `None` when no
    /// response came: the client's error is then the [`source`](Error::source).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The server's trace id of the final response.
    pub fn trace_id(&self) -> Option<&TraceId> {
        self.trace_id.as_ref()
    }

    /// The server trace ids of every attempt, in order.
    pub fn trace_ids(&self) -> Vec<&TraceId> {
        match &self.attempts {
            Some(attempts) => attempts.trace_ids().collect(),
            None => self.trace_id.iter().collect(),
        }
    }

    /// The client's id of the request, if one was stamped.
    pub fn client_request_id(&self) -> Option<&str> {
        self.request.ids.client_request_id().map(|id| id.as_str())
    }

    /// The idempotency key the request was sent with.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.request.ids.idempotency_key().map(|key| key.as_str())
    }

    /// The client's ids of the request: its client request id and idempotency key, with
    /// whether this crate made them.
    pub fn request_ids(&self) -> &RequestIds {
        &self.request.ids
    }

    /// The server's wait hint of the last attempt (when retrying stopped because the wait was
    /// too long, this is when to try again).
    pub fn wait_hint(&self) -> Option<WaitHint> {
        self.attempts.as_ref().and_then(Attempts::wait_hint)
    }

    /// Every attempt, when the request went through a retry layer.
    pub fn attempts(&self) -> Option<&Attempts> {
        self.attempts.as_ref()
    }

    /// Time from the first attempt to the failure.
    pub fn elapsed(&self) -> Duration {
        self.attempts
            .as_ref()
            .map_or(Duration::ZERO, Attempts::elapsed)
    }

    /// The first bytes (up to [`ERROR_BODY_LIMIT`]) of the failure's response body, as the server
    /// sent them except for secret values, replaced in place by `[masked]`.
    ///
    /// A gzip or deflate body is kept compressed as received, unless its text held a secret: then
    /// this is the decoded text, masked. A body in a coding this crate cannot read (`br`, `zstd`)
    /// is kept as received, unchecked; the report shows it only as a summary.
    pub fn response_body(&self) -> Option<&Bytes> {
        self.response_body.as_ref()
    }

    /// The support report: see the [module docs](self).
    pub fn report(&self) -> SupportReport<'_> {
        SupportReport { error: self }
    }

    fn from_response_parts(
        parts: &http::response::Parts,
        body: Bytes,
        mut request: RequestSummary,
        secrets: &Secrets,
    ) -> Self {
        // The response's record, when an inner layer put one there, is the most complete (an
        // error layer outside the id layers saw a request without one); the answer says
        // whether the server replayed a stored result.
        if let Some(ids) = parts.extensions.get::<RequestIds>() {
            request.ids = ids.clone();
        }
        request.ids.note_replay(&parts.headers);
        let classification = parts.extensions.get::<Classification>();
        let attempts = parts.extensions.get::<Attempts>().cloned();
        let (response_body, response_shown) = response_body_of(&parts.headers, body, secrets);
        ApiError {
            kind: classification
                .and_then(Classification::kind)
                .or_else(|| ErrorKind::from_status(parts.status))
                .unwrap_or(ErrorKind::Unknown),
            status: Some(parts.status),
            code: classification
                .and_then(|c| c.code())
                .map(|code| match code {
                    ProviderCode::Text(text) => ProviderCode::Text(mask::mask_str(text, secrets)),
                    ProviderCode::Number(_) => code.clone(),
                }),
            message: classification
                .and_then(Classification::message)
                .map(|message| mask::mask_str(message, secrets)),
            trace_id: classification.and_then(|c| c.trace_id().cloned()),
            attempts,
            request,
            response_body: Some(response_body),
            response_shown: Some(response_shown),
            source: None,
            causes: Vec::new(),
            source_debug: None,
        }
    }

    fn from_retry_error(error: RetryError, mut request: RequestSummary, secrets: &Secrets) -> Self {
        let kind = error.kind();
        if request.ids == RequestIds::default() {
            request.ids = error.request_ids().clone();
        }
        let (cause, attempts) = error.into_parts();
        let (message, source): (Option<String>, Option<Box<dyn Error + Send + Sync>>) = match cause
        {
            // This error's text says what happened here; the client's error is the source.
            RetryErrorCause::Service(error) => (None, Some(error)),
            RetryErrorCause::AttemptTimeout(timeout) => {
                (Some(format!("attempt timed out after {timeout:?}")), None)
            }
            RetryErrorCause::Deadline(deadline) => {
                (Some(format!("deadline of {deadline:?} passed")), None)
            }
            RetryErrorCause::PacingWait(wait) => (
                Some(format!(
                    "not sent: the provider's announced limits allow it in {wait:?}, past the deadline or the longest wait"
                )),
                None,
            ), // `RetryErrorCause` is non-exhaustive for users; this crate knows every variant.
        };
        let mut causes = Vec::new();
        let mut next = source.as_deref().map(|e| e as &(dyn Error + 'static));
        while let Some(error) = next {
            causes.push(mask::mask_str(&error.to_string(), secrets));
            next = error.source();
        }
        let source_debug = source
            .as_ref()
            .map(|e| mask::mask_str(&format!("{e:?}"), secrets));
        ApiError {
            kind,
            status: None,
            code: None,
            message,
            trace_id: attempts.trace_ids().last().cloned(),
            attempts: Some(attempts),
            request,
            response_body: None,
            response_shown: None,
            source,
            causes,
            source_debug,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} {}", status.as_u16(), self.kind)?,
            None => write!(f, "{}", self.kind)?,
        }
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        let mut notes: Vec<String> = Vec::new();
        if let Some(trace_id) = &self.trace_id {
            notes.push(format!("trace id {trace_id}"));
        } else if let Some(id) = self.client_request_id() {
            notes.push(format!("client request id {id}"));
        }
        if let Some(attempts) = &self.attempts {
            let count = attempts.count();
            let plural = if count == 1 { "" } else { "s" };
            let mut note = format!("{count} attempt{plural}");
            if !attempts.elapsed().is_zero() {
                note.push_str(&format!(" in {:.1?}", attempts.elapsed()));
            }
            note.push_str(&format!(", stopped: {}", attempts.stopped()));
            if let Some(hint) = attempts.wait_hint() {
                note.push_str(&format!(", server asks to wait {:?}", hint.delay()));
            }
            notes.push(note);
        }
        if !notes.is_empty() {
            write!(f, " [{}]", notes.join("; "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("trace_id", &self.trace_id.as_ref().map(TraceId::as_str))
            .field("client_request_id", &self.client_request_id())
            .field("method", &self.request.method)
            .field("url", &self.request.url)
            .field("attempts", &self.attempts.as_ref().map(Attempts::count))
            .field("source", &self.source_debug.as_deref().map(Verbatim))
            .finish_non_exhaustive()
    }
}

/// Text that `Debug` shows as it is, without quotes or escapes: an already masked `Debug`.
struct Verbatim<'a>(&'a str);

impl fmt::Debug for Verbatim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for ApiError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Shows the report's text, as `Display` renders it (masked).
impl fmt::Debug for SupportReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SupportReport")
            .field(&self.to_string())
            .finish()
    }
}

/// The support report of an [`ApiError`]; `Display` renders it as text.
pub struct SupportReport<'a> {
    error: &'a ApiError,
}

impl fmt::Display for SupportReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.error;
        writeln!(f, "error: {e}")?;
        let none = "(none)";
        writeln!(
            f,
            "trace id: {}",
            e.trace_id.as_ref().map_or(none, TraceId::as_str)
        )?;
        let ids: Vec<&str> = e.trace_ids().into_iter().map(TraceId::as_str).collect();
        if ids.len() > 1 {
            writeln!(f, "trace ids of every attempt: {}", ids.join(", "))?;
        }
        writeln!(
            f,
            "client request id: {}",
            e.client_request_id().unwrap_or(none)
        )?;
        if let Some(key) = e.idempotency_key() {
            writeln!(f, "idempotency key: {key}")?;
        }
        writeln!(
            f,
            "request: {} {}",
            e.request.method.as_ref().map_or("?", Method::as_str),
            e.request.url.as_deref().unwrap_or("?")
        )?;
        if !e.request.headers.is_empty() {
            writeln!(f, "request headers:")?;
            for (name, value) in &e.request.headers {
                writeln!(f, "  {name}: {value}")?;
            }
        }
        if let Some(body) = &e.request.body {
            writeln!(f, "request body: {body}")?;
        }
        match e.status {
            Some(status) => writeln!(f, "response status: {}", status.as_u16())?,
            None => writeln!(f, "response status: (no response)")?,
        }
        if let Some(shown) = &e.response_shown {
            writeln!(f, "response body: {shown}")?;
        }
        if let Some(attempts) = &e.attempts {
            writeln!(f, "attempts: {attempts}")?;
            for (i, record) in attempts.records().iter().enumerate() {
                writeln!(
                    f,
                    "  #{}: status {}, {}, waited {:?}{}",
                    i + 1,
                    record
                        .status()
                        .map_or("-".to_owned(), |s| s.as_u16().to_string()),
                    record.kind().map_or("ok", ErrorKind::as_str),
                    record.delay(),
                    record
                        .trace_id()
                        .map_or(String::new(), |t| format!(", trace id {t}")),
                )?;
            }
        }
        for cause in &e.causes {
            writeln!(f, "cause: {cause}")?;
        }
        Ok(())
    }
}

/// A failure's body as the error keeps it and as the report shows it.
///
/// Text is masked in place. A gzip or deflate body is shown decoded and masked, and kept as
/// received unless its text held a secret, in which case the decoded, masked text is kept
/// instead (a secret cannot be masked inside compressed bytes). A body that only claims an
/// encoding is read as text. Another coding (`br`, `zstd`), or bytes that are not text, are
/// kept as received and shown as a summary.
fn response_body_of(headers: &HeaderMap, body: Bytes, secrets: &Secrets) -> (Bytes, String) {
    let coding = match encoding_of(headers) {
        Encoding::Decodable(coding) => Some(coding),
        Encoding::Identity if mask::sniff_compression(&body) == Some("gzip") => Some(Coding::Gzip),
        Encoding::Identity if mask::sniff_compression(&body).is_none() => None,
        // br, zstd, stacked codings, zstd by its magic number: nothing here can read them.
        _ => {
            let name = headers
                .get(http::header::CONTENT_ENCODING)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
                .or_else(|| mask::sniff_compression(&body).map(str::to_owned))
                .unwrap_or_default();
            let shown = format!("{} bytes, {name}", body.len());
            return (body, shown);
        }
    };
    if let Some(coding) = coding {
        let (text, _) = content_encoding::decode(coding, &body, ERROR_BODY_LIMIT);
        if !text.is_empty() || body.is_empty() {
            let name = coding.name();
            let masked = mask::mask(&text, secrets);
            let shown = format!(
                "{} bytes, {name}, decoded: {}",
                body.len(),
                mask::show_body(&masked, None, REPORT_BODY_LIMIT)
            );
            let kept = match masked {
                Cow::Borrowed(_) => body,
                Cow::Owned(masked) => Bytes::from(masked),
            };
            return (kept, shown);
        }
        // Nothing decoded: the body only claims the encoding. Read it as it is.
    }
    let masked = match mask::mask(&body, secrets) {
        Cow::Borrowed(_) => body,
        Cow::Owned(masked) => Bytes::from(masked),
    };
    let shown = mask::show_body(&masked, None, REPORT_BODY_LIMIT);
    (masked, shown)
}

/// What the error layer keeps of a request until it knows whether a report is needed: the raw
/// parts, masked only when an error is built.
struct RequestCapture<B> {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<B>,
    ids: RequestIds,
}

impl<B: RequestBody> RequestCapture<B> {
    fn of(request: &Request<B>, recorded: Option<RequestIds>) -> Self {
        RequestCapture {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
            body: crate::retry::try_clone_body(request.body()),
            // The ids the outer layers recorded; without them, a key the caller set in the
            // standard header, as the retry layer reads it.
            ids: RequestIds::completed(recorded, request.headers()),
        }
    }

    /// What a report shows of the request, masked, and the secrets it carried.
    fn summary(&self) -> (RequestSummary, Secrets) {
        let url = self.uri.to_string();
        let body = self
            .body
            .as_ref()
            .and_then(|b| crate::retry::peek_body(b, REPORT_BODY_LIMIT * 4))
            .filter(|b| !b.is_empty());
        let secrets = Secrets::of_request(&url, &self.headers, body.as_deref());
        let encoding = self
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let summary = RequestSummary {
            method: Some(self.method.clone()),
            url: Some(mask::mask_str(&url, &secrets)),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), mask::mask_header(name, value, &secrets)))
                .collect(),
            ids: self.ids.clone(),
            body: body.map(|body| {
                mask::show_body(&mask::mask(&body, &secrets), encoding, REPORT_BODY_LIMIT)
            }),
        };
        (summary, secrets)
    }
}

// ---- The layer --------------------------------------------------------------------------------

/// Turns classified failures into `Err(ApiError)`; place it outside a
/// [`RetryLayer`](crate::RetryLayer) (whose errors it converts too).
///
/// Cost: to write the report of a failure, the layer keeps a copy of every request's method,
/// URL, headers and (for in-memory bodies) body until the outcome is known — one header-map clone
/// per request, also on success. Secrets in the copy are masked only if an error is built; the
/// copy is dropped with the response future.
///
/// A failure's body is read into the error up to [`ERROR_BODY_LIMIT`] bytes. With a
/// [`deadline`](Self::deadline) (which [`ResilienceLayer`](crate::ResilienceLayer) sets to its
/// own), that read stops when the deadline passes, and the error keeps what arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiErrorLayer {
    deadline: Option<Duration>,
}

impl ApiErrorLayer {
    /// A layer that returns failures as errors, reading a failure's body with no deadline.
    pub fn new() -> Self {
        ApiErrorLayer { deadline: None }
    }

    /// Stops reading a failure's body `deadline` after the request started (default none).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl<S> Layer<S> for ApiErrorLayer {
    type Service = ApiErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiErrors {
            inner,
            deadline: self.deadline,
        }
    }
}

/// The service of [`ApiErrorLayer`].
#[derive(Debug, Clone)]
pub struct ApiErrors<S> {
    inner: S,
    deadline: Option<Duration>,
}

impl<S> ApiErrors<S> {
    inner_service_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for ApiErrors<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = RetryError>,
    B: RequestBody,
    ResBody: Body,
{
    type Response = Response<ResBody>;
    type Error = ApiError;
    type Future = ResponseFuture<S::Future, B, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|error| {
            ApiError::from_retry_error(error, RequestSummary::default(), &Secrets::default())
        })
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let ids = request.extensions().get::<RequestIds>().cloned();
        let capture = RequestCapture::of(&request, ids);
        let deadline = request_deadline(&request);
        let inner = self.inner.call(request);
        self.future(inner, capture, deadline)
    }
}

impl<S> ApiErrors<S> {
    /// The future of a call; `request_deadline` is the request's own, which wins over the
    /// layer's.
    fn future<F, B, ResBody>(
        &self,
        inner: F,
        capture: RequestCapture<B>,
        request_deadline: Option<Duration>,
    ) -> ResponseFuture<F, B, ResBody> {
        let deadline = request_deadline
            .or(self.deadline)
            .and_then(|d| tokio::time::Instant::now().checked_add(d));
        ResponseFuture {
            inner,
            capture,
            deadline,
            reading: None,
        }
    }
}

/// The deadline a request's [`RequestPolicy`](crate::retry::RequestPolicy) sets, if any.
fn request_deadline<B>(request: &Request<B>) -> Option<Duration> {
    request
        .extensions()
        .get::<crate::retry::RequestPolicy>()
        .and_then(|policy| policy.deadline)
}

impl<S> ApiErrors<crate::retry::Retry<S>> {
    /// [`call`](Service::call) with the ids of the request beside it rather than in its
    /// extensions, as [`ResilienceService`](crate::ResilienceService) stamps them.
    pub(crate) fn call_with_ids<B, ResBody>(
        &mut self,
        request: Request<B>,
        ids: RequestIds,
    ) -> ResponseFuture<crate::retry::ResponseFuture<S, B>, B, ResBody>
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Clone,
        S::Error: Into<crate::retry::BoxError>,
        B: RequestBody,
    {
        let capture = RequestCapture::of(&request, Some(ids.clone()));
        let deadline = request_deadline(&request);
        let inner = self.inner.call_with_ids(request, Some(ids));
        self.future(inner, capture, deadline)
    }
}

pin_project! {
    /// The response future of [`ApiErrors`].
    pub struct ResponseFuture<F, B, ResBody> {
        #[pin]
        inner: F,
        capture: RequestCapture<B>,
        deadline: Option<tokio::time::Instant>,
        reading: Option<FailureBody<ResBody>>,
    }
}

/// A failure response whose body is being collected into the error.
struct FailureBody<ResBody> {
    parts: http::response::Parts,
    body: Pin<Box<ResBody>>,
    bytes: BytesMut,
    /// Fires at the deadline, if there is one.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<ResBody: Body> FailureBody<ResBody> {
    /// Reads until the limit, the end, an error or the deadline; pending only while more may
    /// come in time.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.bytes.len() < ERROR_BODY_LIMIT {
            match self.body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(mut data) = frame.into_data() {
                        use bytes::Buf;
                        let chunk = data.copy_to_bytes(data.remaining());
                        let room = ERROR_BODY_LIMIT - self.bytes.len();
                        self.bytes
                            .extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                // The body failed or ended: report what arrived.
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => {
                    return match self.timer.as_mut() {
                        Some(timer) => timer.as_mut().poll(cx),
                        None => Poll::Pending,
                    }
                }
            }
        }
        Poll::Ready(())
    }
}

impl<F, B, ResBody> Future for ResponseFuture<F, B, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, RetryError>>,
    B: RequestBody,
    ResBody: Body,
{
    type Output = Result<Response<ResBody>, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.reading.is_none() {
            let response = match ready!(this.inner.as_mut().poll(cx)) {
                Ok(response) => response,
                Err(error) => {
                    let (summary, secrets) = this.capture.summary();
                    return Poll::Ready(Err(ApiError::from_retry_error(error, summary, &secrets)));
                }
            };
            let failed = match response.extensions().get::<Classification>() {
                Some(classification) => classification.is_failure(),
                None => ErrorKind::from_status(response.status()).is_some(),
            };
            if !failed {
                return Poll::Ready(Ok(response));
            }
            let (parts, body) = response.into_parts();
            *this.reading = Some(FailureBody {
                parts,
                body: Box::pin(body),
                bytes: BytesMut::new(),
                timer: this
                    .deadline
                    .map(|at| Box::pin(tokio::time::sleep_until(at))),
            });
        }
        let Some(reading) = this.reading.as_mut() else {
            return Poll::Pending;
        };
        ready!(reading.poll_read(cx));
        let Some(reading) = this.reading.take() else {
            return Poll::Pending;
        };
        let (summary, secrets) = this.capture.summary();
        Poll::Ready(Err(ApiError::from_response_parts(
            &reading.parts,
            reading.bytes.freeze(),
            summary,
            &secrets,
        )))
    }
}
