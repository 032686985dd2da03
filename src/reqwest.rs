//! reqwest and reqwest-middleware: the same behaviour in a reqwest stack (cargo feature
//! `reqwest`).
//!
//! Two ways in, one implementation: both run the tower layers of this crate.
//!
//! - [`ResilienceMiddleware`] is a `reqwest_middleware::Middleware`: it runs a
//!   [`ResilienceLayer`] over an adapter around the rest of the middleware chain (`Next`), so a
//!   `ClientWithMiddleware` gets classification with lossless bodies, retries with backoff,
//!   the server's wait, budget and deadline, idempotency keys and trace ids. The
//!   [`Classification`], [`Attempts`] and [`RequestIds`] are on the `reqwest::Response`'s
//!   extensions; a request that ends without a response fails with
//!   `reqwest_middleware::Error::Middleware` wrapping a [`RetryError`] (or an [`ApiError`] with
//!   [`failures_as_errors`](ResilienceLayer::failures_as_errors)); [`attempts_of`] and
//!   [`request_ids_of`] find the records, and the reqwest error stays in the source chain.
//! - [`ReqwestService`] is a tower `Service` around a `reqwest::Client`, for putting the tower
//!   layers in front of a plain client with `ServiceBuilder`.
//!
//! Request bodies that reqwest holds in memory (`.body(String)`, `.json(..)`, bytes) are replayed
//! on retries; streaming bodies are sent once, never an error just because of it. A per-request
//! timeout (`RequestBuilder::timeout`) bounds each attempt, as it bounds the one request reqwest
//! sends without the middleware; [`ResilienceLayer::deadline`] bounds all attempts and waits
//! together.
//!
//! # Example
//!
//! ```no_run
//! use http_resilience::reqwest::ResilienceMiddleware;
//! use http_resilience::ResilienceLayer;
//!
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(ResilienceMiddleware::new(ResilienceLayer::new()))
//!     .build();
//! let response = client
//!     .post("http://localhost:8080/v1/images")
//!     .body(r#"{"prompt":"a cat"}"#)
//!     .send()
//!     .await?;
//! let attempts = response.extensions().get::<http_resilience::Attempts>();
//! # Ok(())
//! # }
//! ```
//!
//! # Spans beside reqwest-tracing
//!
//! The middleware opens this crate's request and attempt spans (see
//! [`telemetry`](crate::telemetry)). reqwest-tracing's `TracingMiddleware` placed before it
//! in the chain opens one span per logical call, around the request span; placed after it, one
//! per attempt, inside each attempt span:
//!
//! ```no_run
//! use http_resilience::reqwest::ResilienceMiddleware;
//! use http_resilience::ResilienceLayer;
//! use reqwest_tracing::TracingMiddleware;
//!
//! // One reqwest-tracing span per logical call.
//! let per_call = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(TracingMiddleware::default())
//!     .with(ResilienceMiddleware::new(ResilienceLayer::new()))
//!     .build();
//! // One reqwest-tracing span per attempt.
//! let per_attempt = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(ResilienceMiddleware::new(ResilienceLayer::new()))
//!     .with(TracingMiddleware::default())
//!     .build();
//! # let _ = (per_call, per_attempt);
//! ```
//!
//! # Moving from reqwest-retry
//!
//! Replace `.with(RetryTransientMiddleware::new_with_policy(policy))`, built with
//! `retry_bounds(min, max).build_with_max_retries(n)`, by
//! `.with(ResilienceMiddleware::new(ResilienceLayer::new().max_attempts(n + 1).backoff(Backoff::new(min, max))))`.
//! The README's "Moving from reqwest-retry" lists every difference in behaviour.

use std::any::TypeId;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Extensions, Request, Response};
use http_body::{Body, Frame, SizeHint};
use reqwest_middleware::{Middleware, Next};
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{Classification, ClassifiedBody, SimplestBody};
use crate::error::ApiError;
use crate::idempotency::{MakeIdempotencyKey, UuidKeys};
use crate::ids::RequestIds;
use crate::mask::Secrets;
use crate::request_id::{FastRequestIds, MakeRequestId};
use crate::retry::{Attempts, RequestPolicy, RetryError, UriUse};
use crate::stack::{FailuresAsErrors, FailuresAsResponses, ResilienceLayer};

type BoxError = Box<dyn Error + Send + Sync>;

// ---- Request bodies -----------------------------------------------------------------------

/// A reqwest request body on its way through the tower layers: replayable when reqwest holds
/// it in memory, sent once when it streams.
pub struct ReqwestBody {
    body: reqwest::Body,
    bytes: Option<Bytes>,
}

impl ReqwestBody {
    /// Wraps a reqwest body, noting whether it can be replayed: a body reqwest holds in memory
    /// is, and its bytes are shared with the copies for other attempts, never copied.
    pub fn new(mut body: reqwest::Body) -> Self {
        let Some(len) = body.as_bytes().map(<[u8]>::len) else {
            return ReqwestBody { body, bytes: None };
        };
        // A body held in memory hands out all its bytes (reference-counted, not copied) at its
        // first poll, and is then done: a unit test pins reqwest's behaviour.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let first = Pin::new(&mut body).poll_frame(&mut cx);
        ReqwestBody::after_first_poll(len, first, body)
    }

    /// The body, from what its first poll gave: all its `len` bytes at once (or nothing, for an
    /// empty body) and then the end, as reqwest's in-memory bodies do, makes it replayable.
    /// Anything else (the bytes in pieces, a wait, an error) is sent once as it comes, what the
    /// poll took first: never a shortened body.
    fn after_first_poll(
        len: usize,
        first: Poll<Option<Result<Frame<Bytes>, reqwest::Error>>>,
        rest: reqwest::Body,
    ) -> Self {
        let whole = match first {
            Poll::Ready(None) if len == 0 => Ok(Bytes::new()),
            Poll::Ready(Some(Ok(frame)))
                if frame.data_ref().is_some_and(|data| data.len() == len)
                    && rest.is_end_stream() =>
            {
                frame.into_data().map_err(|frame| Some(Ok(frame)))
            }
            Poll::Ready(taken) => Err(taken),
            Poll::Pending => Err(None),
        };
        match whole {
            Ok(bytes) => ReqwestBody::replayable(bytes),
            Err(taken) => ReqwestBody {
                body: reqwest::Body::wrap(Resumed { taken, rest }),
                bytes: None,
            },
        }
    }

    /// The reqwest body, to send.
    pub fn into_inner(self) -> reqwest::Body {
        self.body
    }
}

impl fmt::Debug for ReqwestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestBody")
            .field("replayable", &self.bytes.is_some())
            .finish()
    }
}

impl Default for ReqwestBody {
    /// An empty body.
    fn default() -> Self {
        ReqwestBody::new(reqwest::Body::from(Bytes::new()))
    }
}

impl ReqwestBody {
    /// A copy for another attempt, when reqwest holds the body in memory.
    pub(crate) fn try_clone(&self) -> Option<Self> {
        self.bytes.clone().map(ReqwestBody::replayable)
    }

    /// A body of `bytes`, kept for the copies other attempts send.
    fn replayable(bytes: Bytes) -> Self {
        ReqwestBody {
            body: reqwest::Body::from(bytes.clone()),
            bytes: Some(bytes),
        }
    }
}

impl Body for ReqwestBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A body whose first frame (or error) was already taken: that first, then the rest.
struct Resumed {
    taken: Option<Result<Frame<Bytes>, reqwest::Error>>,
    rest: reqwest::Body,
}

impl Body for Resumed {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        match self.taken.take() {
            Some(taken) => Poll::Ready(Some(taken)),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.taken.is_none() && self.rest.is_end_stream()
    }
}

impl From<ReqwestBody> for reqwest::Body {
    fn from(body: ReqwestBody) -> Self {
        body.body
    }
}

fn into_reqwest_request<B: Into<reqwest::Body>>(
    request: Request<B>,
) -> Result<reqwest::Request, reqwest::Error> {
    reqwest::Request::try_from(request)
}

/// Turns one attempt's `reqwest::Response` into an `http::Response` that keeps its URL (the
/// final one, after any redirect).
///
/// reqwest's own conversion drops the URL, and converting back without one makes reqwest parse
/// a placeholder. The URL travels in reqwest's private extension, which only
/// `ResponseBuilderExt::url` can set on a builder: the builder is lent the response's own
/// extension map (where the connection's details already are), the URL set, and the map taken
/// back.
fn into_http_response(response: reqwest::Response) -> Response<reqwest::Body> {
    use reqwest::ResponseBuilderExt;
    let url = response.url().clone();
    let (mut parts, body) = Response::from(response).into_parts();
    // Setting an extension never fails, so the builder always hands the map back.
    let mut builder = Response::builder();
    if let Some(carried) = builder.extensions_mut() {
        std::mem::swap(carried, &mut parts.extensions);
    }
    if let Ok(carrier) = builder.url(url).body(()) {
        parts.extensions = carrier.into_parts().0.extensions;
    }
    Response::from_parts(parts, body)
}

/// Turns the stack's response back into a `reqwest::Response`, keeping its extensions and URL.
fn into_reqwest_response<B>(response: Response<ClassifiedBody<B>>) -> reqwest::Response
where
    B: Body + Into<reqwest::Body> + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError> + Send + Sync,
{
    reqwest::Response::from(response.map(|body| match body.into_simplest() {
        // Nothing to replay: hand reqwest its own body, or the bytes read, unwrapped.
        SimplestBody::Inner(inner) => inner.into(),
        SimplestBody::Complete(bytes) => reqwest::Body::from(bytes),
        SimplestBody::Classified(body) => reqwest::Body::wrap(body),
    }))
}

// ---- The tower adapter around reqwest::Client ----------------------------------------------

/// A tower `Service` around a `reqwest::Client`: put the layers of this crate in front of a
/// plain reqwest client with `ServiceBuilder`.
///
/// Requests are `http::Request<B>` for any body reqwest accepts (`Full<Bytes>`, `String`,
/// [`ReqwestBody`], …); responses are `http::Response<reqwest::Body>`; errors are
/// `reqwest::Error`, whose connect failures the retry layer recognises. Errors lose the URL
/// reqwest writes into their text, which may carry credentials.
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

impl ReqwestService {
    /// Wraps `client`.
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestService { client }
    }

    /// The client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl<B> Service<Request<B>> for ReqwestService
where
    B: Into<reqwest::Body>,
{
    type Response = Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = self.client.clone();
        let request = into_reqwest_request(request);
        Box::pin(async move {
            let request = request.map_err(reqwest::Error::without_url)?;
            let response = client
                .execute(request)
                .await
                .map_err(reqwest::Error::without_url)?;
            Ok(Response::from(response))
        })
    }
}

/// A chain's error without the URL reqwest puts in its errors' text: the URL may carry
/// credentials (`?api_key=…`, `user:pass@`). The stack keeps its own masked URL.
fn without_url(error: reqwest_middleware::Error) -> reqwest_middleware::Error {
    match error {
        reqwest_middleware::Error::Reqwest(error) => {
            reqwest_middleware::Error::Reqwest(error.without_url())
        }
        other => other,
    }
}

// ---- The middleware ------------------------------------------------------------------------

/// The rest of a reqwest-middleware chain as a tower `Service`, one attempt per call.
///
/// Every attempt runs the chain with the caller's extensions as the previous attempt left them,
/// and leaves them as the chain wrote them, as reqwest-retry passes its `&mut Extensions` on: the
/// caller sees what inner middleware wrote. Attempts run one after another, so the lock is
/// never contended; it is held only to copy the map in and out, never across an await.
#[derive(Clone)]
struct NextService<'a> {
    next: Next<'a>,
    extensions: &'a Mutex<Extensions>,
    attempt: &'a AttemptTemplate,
}

fn lock(extensions: &Mutex<Extensions>) -> std::sync::MutexGuard<'_, Extensions> {
    extensions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What each attempt's `reqwest::Request` takes from the caller's that an `http::Request`
/// cannot carry: the URL as reqwest parsed it (layers never change it, so it is not parsed
/// again), and the per-request timeout (`RequestBuilder::timeout`), reqwest's one setting kept
/// outside method, URL, headers, body and version.
///
/// It is the caller's request itself, its headers and body moved into the http request, so
/// that its URL is copied once per attempt and never for the template.
struct AttemptTemplate {
    original: reqwest::Request,
}

impl AttemptTemplate {
    /// The reqwest request of one attempt, from what the layers passed down.
    fn request(&self, request: Request<ReqwestBody>) -> reqwest::Request {
        let (parts, body) = request.into_parts();
        let mut request = reqwest::Request::new(parts.method, self.original.url().clone());
        *request.headers_mut() = parts.headers;
        *request.version_mut() = parts.version;
        *request.body_mut() = Some(body.into_inner());
        if let Some(timeout) = self.original.timeout() {
            // Setting it stores a config in reqwest's extension map: only when there is one.
            *request.timeout_mut() = Some(*timeout);
        }
        request
    }
}

impl<'a> Service<Request<ReqwestBody>> for NextService<'a> {
    type Response = Response<reqwest::Body>;
    type Error = reqwest_middleware::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'a>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqwestBody>) -> Self::Future {
        let next = self.next.clone();
        let shared = self.extensions;
        let mut extensions = lock(shared).clone();
        let request = self.attempt.request(request);
        Box::pin(async move {
            let outcome = next.run(request, &mut extensions).await;
            *lock(shared) = extensions;
            Ok(into_http_response(outcome.map_err(without_url)?))
        })
    }
}

/// Runs a [`ResilienceLayer`] inside a reqwest-middleware chain; see the [module docs](self).
///
/// It takes the layer as configured, with any idempotency key maker
/// ([`idempotency_key_maker`](ResilienceLayer::idempotency_key_maker)) and request-id maker
/// ([`request_id_maker`](ResilienceLayer::request_id_maker)) the tower stack takes.
#[derive(Debug, Clone)]
pub struct ResilienceMiddleware<Mode = FailuresAsResponses, K = UuidKeys, M = FastRequestIds> {
    layer: ResilienceLayer<Mode, K, M>,
}

impl<Mode, K, M> ResilienceMiddleware<Mode, K, M> {
    /// Runs `layer` for every request of the client.
    pub fn new(layer: ResilienceLayer<Mode, K, M>) -> Self {
        ResilienceMiddleware { layer }
    }
}

impl Default for ResilienceMiddleware<FailuresAsResponses> {
    fn default() -> Self {
        ResilienceMiddleware::new(ResilienceLayer::new())
    }
}

/// The URL's scheme and authority as a `Uri` (its path `/`), or `None` for a URL that has no
/// authority: the part before the path, so the path and query are neither copied nor parsed.
/// Without user-info it is copied into a buffer shared with other small values, so that
/// neither it nor the retry's copy of it allocates; with user-info it keeps bytes of its own,
/// freed with the request.
fn origin_uri(url: &reqwest::Url) -> Option<http::Uri> {
    if !url.has_authority() {
        return None;
    }
    // The URL's text is scheme, `//authority`, path, `?query`, `#fragment`.
    let text = url.as_str();
    let after_path =
        url.query().map_or(0, |q| q.len() + 1) + url.fragment().map_or(0, |f| f.len() + 1);
    let origin = text.get(..text.len().checked_sub(url.path().len() + after_path)?)?;
    let bytes = if url.username().is_empty() && url.password().is_none() {
        crate::header_id::shared_copy(origin.as_bytes())
    } else {
        Bytes::copy_from_slice(origin.as_bytes())
    };
    http::Uri::from_maybe_shared(bytes).ok()
}

/// Splits a middleware request into what the tower stack needs, the http request (carrying the
/// chain's extensions, such as an opt-in), and what each attempt takes back from the original.
///
/// Built field by field rather than with reqwest's conversion, whose builder moves the whole
/// request at every step. The URL goes into the `Uri` only as far as `uri_use` says a layer
/// reads it: all of it, parsed exactly as that conversion does (its bytes its own), for a
/// retry-decision hook, a pacer's `scope_by` function, a caller's own key or request-id maker,
/// [`ApiError`]s and telemetry; its scheme and authority for the pacer's default scope; nothing
/// with pacing off and none of those. The http request never leaves the middleware, and each
/// attempt takes the whole URL from the template.
fn prepare(
    mut request: reqwest::Request,
    extensions: &Extensions,
    uri_use: UriUse,
) -> Result<(Request<ReqwestBody>, AttemptTemplate), reqwest_middleware::Error> {
    let uri = match uri_use {
        UriUse::Nothing => http::Uri::default(),
        // A URL without an origin (no authority) gives the pacer none to scope by, as the
        // empty `Uri` does; reqwest or the rest of the chain deals with the URL itself.
        UriUse::Origin => origin_uri(request.url()).unwrap_or_default(),
        UriUse::Whole => request
            .url()
            .as_str()
            .parse()
            .map_err(reqwest_middleware::Error::middleware)?,
    };
    let body = request
        .body_mut()
        .take()
        .unwrap_or_else(|| reqwest::Body::from(Bytes::new()));
    let mut http_request = Request::new(ReqwestBody::new(body));
    *http_request.method_mut() = request.method().clone();
    *http_request.uri_mut() = uri;
    *http_request.version_mut() = request.version();
    *http_request.headers_mut() = std::mem::take(request.headers_mut());
    *http_request.extensions_mut() = extensions.clone();
    Ok((http_request, AttemptTemplate { original: request }))
}

impl<Mode, K, M> ResilienceMiddleware<Mode, K, M> {
    /// Sends one middleware request through the stack, built over the rest of the chain;
    /// `uri_use` as for [`prepare`].
    async fn run<E>(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        uri_use: UriUse,
    ) -> reqwest_middleware::Result<reqwest::Response>
    where
        for<'a> ResilienceLayer<Mode, K, M>: Layer<NextService<'a>>,
        for<'a> <ResilienceLayer<Mode, K, M> as Layer<NextService<'a>>>::Service: Service<
            Request<ReqwestBody>,
            Response = Response<ClassifiedBody<reqwest::Body>>,
            Error = E,
        >,
        E: Error + Send + Sync + 'static,
    {
        let (request, attempt) = prepare(request, extensions, uri_use)?;
        let shared = Mutex::new(std::mem::take(extensions));
        let chain = NextService {
            next,
            extensions: &shared,
            attempt: &attempt,
        };
        let outcome = self.layer.layer(chain).oneshot(request).await;
        *extensions = std::mem::take(&mut *lock(&shared));
        match outcome {
            Ok(mut response) => {
                mask_url_echo(&mut response, attempt.original.url().as_str());
                Ok(into_reqwest_response(response))
            }
            Err(error) => Err(reqwest_middleware::Error::middleware(error)),
        }
    }
}

#[async_trait::async_trait]
impl<K, M> Middleware for ResilienceMiddleware<FailuresAsResponses, K, M>
where
    K: MakeIdempotencyKey + Send + Sync + 'static,
    M: MakeRequestId + Clone + Send + Sync + 'static,
{
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        // The built-in makers never read the URI; a caller's own may, and spans, events and
        // metrics name the URL and the server. Otherwise the layers say (the pacer, a hook).
        let uri_use = if TypeId::of::<K>() != TypeId::of::<UuidKeys>()
            || TypeId::of::<M>() != TypeId::of::<FastRequestIds>()
            || crate::telemetry::wanted()
        {
            UriUse::Whole
        } else {
            self.layer.uri_use()
        };
        self.run(request, extensions, next, uri_use).await
    }
}

#[async_trait::async_trait]
impl<K, M> Middleware for ResilienceMiddleware<FailuresAsErrors, K, M>
where
    K: MakeIdempotencyKey + Send + Sync + 'static,
    M: MakeRequestId + Clone + Send + Sync + 'static,
{
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.run(request, extensions, next, UriUse::Whole).await
    }
}

/// Masks, in a failure's classification message, the URL's secrets (an `api_key` parameter,
/// user-info) a server quoted back: the stack's own request may not carry the URL (see
/// [`prepare`]), so the retry layer could not know them.
fn mask_url_echo<B>(response: &mut Response<B>, url: &str) {
    let Some(classification) = response.extensions_mut().get_mut::<Classification>() else {
        return;
    };
    let Some(message) = classification.message.as_mut() else {
        return;
    };
    let secrets = Secrets::of_url(url);
    message.mask_secrets(&secrets);
}

/// Sets a [`RequestPolicy`] on one reqwest-middleware call: its own attempts, deadline,
/// per-attempt timeout, choice for a non-idempotent request, idempotency key and use of the
/// retry budget, over the middleware's settings.
///
/// ```no_run
/// use std::time::Duration;
/// use http_resilience::reqwest::{RequestPolicyExt, ResilienceMiddleware};
/// use http_resilience::retry::RequestPolicy;
///
/// # async fn run() -> Result<(), reqwest_middleware::Error> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ResilienceMiddleware::default())
///     .build();
/// // This call is not retried; the next one on the same client is, as the stack says.
/// let once = client
///     .get("http://127.0.0.1:8080/v1/tasks/t-1")
///     .request_policy(RequestPolicy::new().max_attempts(1).deadline(Duration::from_secs(2)))
///     .send()
///     .await?;
/// let retried = client.get("http://127.0.0.1:8080/v1/tasks/t-1").send().await?;
/// # let _ = (once, retried);
/// # Ok(())
/// # }
/// ```
pub trait RequestPolicyExt: sealed::Sealed {
    /// Overrides the stack's settings for this call with `policy`.
    fn request_policy(self, policy: RequestPolicy) -> Self;
}

impl RequestPolicyExt for reqwest_middleware::RequestBuilder {
    fn request_policy(self, policy: RequestPolicy) -> Self {
        self.with_extension(policy)
    }
}

mod sealed {
    #[allow(unreachable_pub)]
    pub trait Sealed {}
    impl Sealed for reqwest_middleware::RequestBuilder {}
}

/// The [`Attempts`] record of a failed reqwest-middleware call, when this crate's middleware
/// ran it.
pub fn attempts_of(error: &reqwest_middleware::Error) -> Option<&Attempts> {
    let reqwest_middleware::Error::Middleware(error) = error else {
        return None;
    };
    if let Some(error) = error.downcast_ref::<RetryError>() {
        return Some(error.attempts());
    }
    error
        .downcast_ref::<ApiError>()
        .and_then(ApiError::attempts)
}

/// The [`RequestIds`] (client request id, idempotency key) of a failed reqwest-middleware call,
/// when this crate's middleware ran it.
pub fn request_ids_of(error: &reqwest_middleware::Error) -> Option<&RequestIds> {
    let reqwest_middleware::Error::Middleware(error) = error else {
        return None;
    };
    if let Some(error) = error.downcast_ref::<RetryError>() {
        return Some(error.request_ids());
    }
    error.downcast_ref::<ApiError>().map(ApiError::request_ids)
}

/// The [`ApiError`] of a failed call through a middleware built with
/// [`failures_as_errors`](ResilienceLayer::failures_as_errors).
pub fn api_error_of(error: &reqwest_middleware::Error) -> Option<&ApiError> {
    match error {
        reqwest_middleware::Error::Middleware(error) => error.downcast_ref::<ApiError>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn read(body: impl Body<Data = Bytes, Error = reqwest::Error> + Unpin) -> Bytes {
        use futures_util::FutureExt;
        body.collect()
            .now_or_never()
            .expect("an in-memory body is ready at once")
            .expect("an in-memory body does not fail")
            .to_bytes()
    }

    #[test]
    fn a_body_held_in_memory_is_shared_with_its_copies_not_copied() {
        let sent = Bytes::from(br#"{"prompt":"a lighthouse at dusk"}"#.to_vec());
        let body = ReqwestBody::new(reqwest::Body::from(sent.clone()));
        let kept = body.bytes.clone().expect("replayable");
        assert_eq!(
            kept.as_ptr(),
            sent.as_ptr(),
            "the caller's bytes, not a copy"
        );
        let copy = body.try_clone().expect("replayable");
        assert_eq!(copy.bytes.as_ref().map(|b| b.as_ptr()), Some(sent.as_ptr()));
        assert_eq!(read(copy), sent);
        assert_eq!(read(body), sent);
    }

    #[test]
    fn an_empty_body_is_replayable_and_a_streaming_one_is_sent_once_intact() {
        let empty = ReqwestBody::new(reqwest::Body::from(Bytes::new()));
        assert_eq!(empty.bytes.as_deref(), Some(&b""[..]));
        assert_eq!(read(empty), Bytes::new());

        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"part one, ")),
            Ok(Bytes::from_static(b"part two")),
        ];
        let streaming = ReqwestBody::new(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )));
        assert!(streaming.try_clone().is_none());
        assert_eq!(read(streaming), Bytes::from_static(b"part one, part two"));
    }

    #[test]
    fn the_origin_is_the_url_before_its_path() {
        let origin = |url: &str| {
            let url: reqwest::Url = url.parse().unwrap();
            let uri = origin_uri(&url).expect("an origin");
            let whole: http::Uri = url.as_str().parse().unwrap();
            assert_eq!(uri.scheme(), whole.scheme(), "{url}");
            assert_eq!(uri.authority(), whole.authority(), "{url}");
            assert_eq!((uri.path(), uri.query()), ("/", None), "{url}");
            uri.to_string()
        };
        assert_eq!(
            origin("https://api.example.com:8443/v1/images?api_key=k#top"),
            "https://api.example.com:8443/"
        );
        assert_eq!(origin("http://127.0.0.1/"), "http://127.0.0.1/");
        assert_eq!(origin("http://[::1]:8080/a/b"), "http://[::1]:8080/");
        assert_eq!(
            origin("https://user:pass@example.com/x"),
            "https://user:pass@example.com/"
        );
        assert_eq!(
            origin("http://example.com/%7Eme?q#f"),
            "http://example.com/"
        );
        assert!(origin_uri(&"data:text/plain,hi".parse().unwrap()).is_none());
    }

    #[test]
    fn a_body_that_does_not_come_whole_at_once_is_sent_once_as_it_comes() {
        let piece = |text: &'static str| {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(text.as_bytes())))))
        };
        let rest = |text: &'static str| reqwest::Body::from(Bytes::from_static(text.as_bytes()));
        // In pieces: the piece taken first, then the rest.
        let body = ReqwestBody::after_first_poll(10, piece("part "), rest("rest!"));
        assert!(body.try_clone().is_none());
        assert_eq!(read(body), Bytes::from_static(b"part rest!"));
        // All the bytes, but more to come.
        let body = ReqwestBody::after_first_poll(4, piece("abcd"), rest("more"));
        assert!(body.try_clone().is_none());
        assert_eq!(read(body), Bytes::from_static(b"abcdmore"));
        // A wait: nothing was taken.
        let body = ReqwestBody::after_first_poll(4, Poll::Pending, rest("abcd"));
        assert!(body.try_clone().is_none());
        assert_eq!(read(body), Bytes::from_static(b"abcd"));
        // The usual: all at once, then the end.
        let body = ReqwestBody::after_first_poll(4, piece("abcd"), rest(""));
        assert_eq!(
            body.try_clone().map(read),
            Some(Bytes::from_static(b"abcd"))
        );
    }

    #[test]
    fn the_stack_gets_as_much_of_the_url_as_its_layers_read() {
        let uri = |url: &str, uri_use: UriUse| {
            let request = reqwest::Request::new(http::Method::GET, url.parse().unwrap());
            let (request, _) = prepare(request, &Extensions::new(), uri_use).expect("prepared");
            request.uri().to_string()
        };
        let url = "https://api.example.com/v1/models?page=2";
        assert_eq!(uri(url, UriUse::Whole), url);
        assert_eq!(uri(url, UriUse::Origin), "https://api.example.com/");
        assert_eq!(uri(url, UriUse::Nothing), "/");
        // A URL with no origin gives the pacer none, and is left to reqwest.
        assert_eq!(uri("data:text/plain,hi", UriUse::Origin), "/");
    }

    #[derive(Clone, Debug, PartialEq)]
    struct FromInnerMiddleware(u32);

    #[test]
    fn a_response_keeps_its_url_and_its_extensions_through_the_stack() {
        use reqwest::ResponseBuilderExt;
        let url: reqwest::Url = "http://127.0.0.1:8080/v1/images?x=1".parse().unwrap();
        let answer = http::Response::builder()
            .url(url.clone())
            .extension(FromInnerMiddleware(7))
            .body("{}")
            .unwrap();
        let http_response = into_http_response(reqwest::Response::from(answer));
        assert_eq!(
            http_response.extensions().get::<FromInnerMiddleware>(),
            Some(&FromInnerMiddleware(7))
        );
        let back = reqwest::Response::from(http_response);
        assert_eq!(back.url(), &url);
        assert_eq!(
            back.extensions().get::<FromInnerMiddleware>(),
            Some(&FromInnerMiddleware(7))
        );
    }
}
