//! [`ResilienceLayer`]: the standard pipeline in one layer, and [`ServiceBuilderExt`].
//!
//! ```text
//! caller
//!   └─ RequestIdLayer       stamps x-request-id (a caller's own is kept)
//!      └─ IdempotencyKeyLayer  one Idempotency-Key per logical POST/PATCH, the same on every attempt
//!         └─ (ApiErrorLayer)    with failures_as_errors(): classified failures become Err(ApiError)
//!            └─ RetryLayer       pacing from announced limits, backoff, server waits, budget,
//!               │                 deadline, safety
//!               └─ ClassifyLayer  status + body -> Classification, losslessly
//!                  └─ your HTTP client service
//! ```
//!
//! Every default is the one documented on the layer it configures: 3 attempts, 0.5 s to 8 s
//! full-jitter backoff, server waits honoured up to 60 s, a 20% + 10/s budget, no per-attempt
//! timeout or deadline, pacing from the limits the provider announces (see
//! [`pacing`](crate::pacing)), a 64 KiB classification limit, UUID keys in `Idempotency-Key` for POST
//! and PATCH, random UUID-form ids ([`FastRequestIds`]) in `x-request-id`.
//!
//! The layer builds one [`ResilienceService`]: it stamps the two ids exactly as
//! [`RequestIdLayer`] and [`IdempotencyKeyLayer`] would and hands them to the retry layer beside
//! the request, which saves a request the record in its extensions and a future per id layer.
//! Composing the layers one by one gives the same behaviour.
//!
//! A final response carries three records, whatever the composition that made it: the
//! [`Classification`](crate::Classification) (with the server's
//! [`TraceId`](crate::TraceId)), [`Attempts`](crate::Attempts) (every attempt, with each one's
//! trace id) and [`RequestIds`] (the client request id and the idempotency
//! key). Errors carry the same facts.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::{Attempts, RequestIds, ResilienceLayer, ServiceBuilderExt};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from(r#"{"task_id":"t-1"}"#))))
//! });
//! let client = ServiceBuilder::new()
//!     .resilience(ResilienceLayer::new().max_attempts(4).deadline(Duration::from_secs(120)))
//!     .service(upstream);
//!
//! let request = Request::post("https://api.example.com/v1/videos").body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.extensions().get::<Attempts>().unwrap().count(), 1);
//! let ids = response.extensions().get::<RequestIds>().unwrap();
//! assert!(ids.idempotency_key().is_some() && ids.client_request_id().is_some());
//! # Ok(())
//! # }
//! ```
//!
//! [`ServiceBuilderExt`] shares its name with tower-http's extension trait; import either or
//! both anonymously when they meet:
//!
//! ```
//! use http_resilience::ServiceBuilderExt as _;
//! use tower_http::ServiceBuilderExt as _;
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use std::task::{Context, Poll};

use http::{HeaderName, Method, Request, Response};
use http_body::Body;
use tower::ServiceBuilder;
use tower_layer::{Layer, Stack};
use tower_service::Service;

use crate::classify::{ClassifiedBody, Classifier, Classify, ClassifyLayer};
use crate::error::{self, ApiError, ApiErrorLayer, ApiErrors};
use crate::idempotency::{self, IdempotencyKeyLayer, MakeIdempotencyKey, UuidKeys};
use crate::ids::{IdField, RequestIds};
use crate::pacing::Pacer;
use crate::request_id::{FastRequestIds, MakeRequestId, RequestIdLayer, RequestIdStamp};
use crate::retry::{
    self, Backoff, BoxError, KeySupport, RequestBody, Retry, RetryBudget, RetryContext,
    RetryDecision, RetryError, RetryLayer,
};

/// Marks a [`ResilienceLayer`] whose failures come back as responses (with their
/// [`Classification`](crate::Classification) and [`Attempts`](crate::Attempts)).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailuresAsResponses;

/// Marks a [`ResilienceLayer`] whose failures come back as `Err(ApiError)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailuresAsErrors;

/// The standard pipeline in one layer; see the [module docs](self).
pub struct ResilienceLayer<Mode = FailuresAsResponses, K = UuidKeys, M = FastRequestIds> {
    request_id: RequestIdLayer<M>,
    idempotency: IdempotencyKeyLayer<K>,
    retry: RetryLayer,
    classify: ClassifyLayer,
    _mode: PhantomData<fn() -> Mode>,
}

impl ResilienceLayer {
    /// The pipeline with every default.
    pub fn new() -> Self {
        ResilienceLayer {
            request_id: RequestIdLayer::new(),
            idempotency: IdempotencyKeyLayer::new(),
            retry: RetryLayer::new(),
            classify: ClassifyLayer::new(),
            _mode: PhantomData,
        }
    }
}

impl Default for ResilienceLayer {
    fn default() -> Self {
        ResilienceLayer::new()
    }
}

impl<Mode, K, M: Clone> Clone for ResilienceLayer<Mode, K, M> {
    fn clone(&self) -> Self {
        ResilienceLayer {
            request_id: self.request_id.clone(),
            idempotency: self.idempotency.clone(),
            retry: self.retry.clone(),
            classify: self.classify.clone(),
            _mode: PhantomData,
        }
    }
}

impl<Mode, K, M> fmt::Debug for ResilienceLayer<Mode, K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceLayer")
            .field("request_id", &self.request_id)
            .field("idempotency", &self.idempotency)
            .field("retry", &self.retry)
            .field("classify", &self.classify)
            .field("mode", &std::any::type_name::<Mode>())
            .finish()
    }
}

impl<Mode, K: MakeIdempotencyKey, M> ResilienceLayer<Mode, K, M> {
    /// Classifies with these rules (default: every provider table).
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        let limit = self.classify.body_limit_bytes();
        self.classify = ClassifyLayer::with_classifier(classifier).body_limit(limit);
        self
    }

    /// Reads at most `limit` body bytes per response to classify it (default 64 KiB).
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.classify = self.classify.body_limit(limit);
        self
    }

    /// Makes at most `attempts` attempts in all (default 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry = self.retry.max_attempts(attempts);
        self
    }

    /// Backs off with this schedule (default 0.5 s to 8 s, full jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.retry = self.retry.backoff(backoff);
        self
    }

    /// Honours server waits up to `max` (default 60 s).
    pub fn max_server_wait(mut self, max: Duration) -> Self {
        self.retry = self.retry.max_server_wait(max);
        self
    }

    /// Gives each attempt at most `timeout` (default none).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.retry = self.retry.attempt_timeout(timeout);
        self
    }

    /// Ends the logical request `deadline` after it started (default none).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.retry = self.retry.deadline(deadline);
        self
    }

    /// Draws retries from this budget (default 20% of successes + 10/s over 10 s).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.retry = self.retry.budget(budget);
        self
    }

    /// Paces attempts with `pacer` (default: a pacer of this layer's own, which every service
    /// the layer builds shares); see [`pacing`](crate::pacing).
    pub fn pacer(mut self, pacer: Pacer) -> Self {
        self.retry = self.retry.pacer(pacer);
        self
    }

    /// Turns pacing off: attempts go as soon as their backoff or server wait allows, whatever
    /// limits the provider announces.
    pub fn without_pacing(mut self) -> Self {
        self.retry = self.retry.without_pacing();
        self
    }

    /// How much of the request's URI a layer reads on every call: the pacer (its scope is the
    /// origin; a `scope_by` function sees the whole URI) and a
    /// [`retry_decision`](Self::retry_decision) hook (the whole URI).
    #[cfg(feature = "reqwest")]
    pub(crate) fn uri_use(&self) -> crate::retry::UriUse {
        self.retry.uri_use()
    }

    /// Retries non-idempotent requests even without an idempotency key (default off).
    pub fn retry_non_idempotent(mut self, allow: bool) -> Self {
        self.retry = self.retry.retry_non_idempotent(allow);
        self
    }

    /// Whether the server honours idempotency keys (default [`KeySupport::Honoured`]): under
    /// [`KeySupport::Ignored`] a keyed POST is sent again only when the answer proves the server
    /// did no work.
    pub fn key_support(mut self, support: KeySupport) -> Self {
        self.retry = self.retry.key_support(support);
        self
    }

    /// Consults `decide` for every failed attempt that could be retried; see
    /// [`RetryLayer::retry_decision`].
    pub fn retry_decision(
        mut self,
        decide: impl Fn(&RetryContext<'_>) -> RetryDecision + Send + Sync + 'static,
    ) -> Self {
        self.retry = self.retry.retry_decision(decide);
        self
    }

    /// Sends idempotency keys in this header (default `Idempotency-Key`); the retry layer and
    /// errors read the key from the request's [`RequestIds`], not from a
    /// header of their own.
    pub fn idempotency_header(mut self, name: HeaderName) -> Self {
        self.idempotency = self.idempotency.header(name);
        self
    }

    /// Adds idempotency keys to requests of these methods (default POST and PATCH).
    pub fn idempotency_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.idempotency = self.idempotency.methods(methods);
        self
    }

    /// Makes idempotency keys with `keys` (default random UUIDs), and makes them again after
    /// [`without_idempotency_keys`](Self::without_idempotency_keys).
    pub fn idempotency_key_maker<K2: MakeIdempotencyKey>(
        self,
        keys: K2,
    ) -> ResilienceLayer<Mode, K2, M> {
        ResilienceLayer {
            request_id: self.request_id,
            idempotency: self.idempotency.replace_keys(keys),
            retry: self.retry,
            classify: self.classify,
            _mode: PhantomData,
        }
    }

    /// Makes no idempotency keys: non-idempotent requests are then sent again only when the
    /// answer proves the server did no work (see [`KeySupport`]), unless opted in, or when the
    /// caller set a key in the idempotency header itself.
    pub fn without_idempotency_keys(mut self) -> Self {
        self.idempotency = self.idempotency.without_new_keys();
        self
    }

    /// Stamps the client request id in this header (default `x-request-id`).
    pub fn request_id_header(mut self, name: HeaderName) -> Self {
        self.request_id = self.request_id.header(name);
        self
    }

    /// Makes client request ids with `make`, any tower-http [`MakeRequestId`] (default
    /// [`FastRequestIds`]: random UUID-form ids).
    pub fn request_id_maker<M2: MakeRequestId + Clone>(
        self,
        make: M2,
    ) -> ResilienceLayer<Mode, K, M2> {
        ResilienceLayer {
            request_id: self.request_id.replace_maker(make),
            idempotency: self.idempotency,
            retry: self.retry,
            classify: self.classify,
            _mode: PhantomData,
        }
    }

    /// Returns classified failures as `Err(ApiError)` instead of responses.
    pub fn failures_as_errors(self) -> ResilienceLayer<FailuresAsErrors, K, M> {
        ResilienceLayer {
            request_id: self.request_id,
            idempotency: self.idempotency,
            retry: self.retry,
            classify: self.classify,
            _mode: PhantomData,
        }
    }
}

/// The service a [`ResilienceLayer`] builds over `S`.
pub type Resilient<S, K = UuidKeys, M = FastRequestIds> =
    ResilienceService<Retry<Classify<S>>, K, M>;

/// The service a [`ResilienceLayer`] with [`failures_as_errors`](ResilienceLayer::failures_as_errors)
/// builds over `S`.
pub type ResilientErrors<S, K = UuidKeys, M = FastRequestIds> =
    ResilienceService<ApiErrors<Retry<Classify<S>>>, K, M>;

/// The outermost service of the standard pipeline (see [`Resilient`] and [`ResilientErrors`]):
/// stamps the client request id and the idempotency key as [`RequestIdLayer`] and
/// [`IdempotencyKeyLayer`] would, and hands the ids to the retry layer beside the request.
///
/// One service instead of the two id layers: a request pays for no record in its extensions
/// and no future per id layer; the final response and errors carry the same
/// [`RequestIds`] either way.
pub struct ResilienceService<S, K = UuidKeys, M = FastRequestIds> {
    inner: S,
    request_id: RequestIdStamp<M>,
    idempotency: idempotency::Config<K>,
}

impl<S: Clone, K, M: Clone> Clone for ResilienceService<S, K, M> {
    fn clone(&self) -> Self {
        ResilienceService {
            inner: self.inner.clone(),
            request_id: self.request_id.clone(),
            idempotency: self.idempotency.clone(),
        }
    }
}

impl<S: fmt::Debug, K, M> fmt::Debug for ResilienceService<S, K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceService")
            .field("inner", &self.inner)
            .field("request_id_header", self.request_id.header())
            .field("idempotency_header", self.idempotency.header())
            .finish_non_exhaustive()
    }
}

impl<S, K, M> ResilienceService<S, K, M> {
    inner_service_accessors!();
}

impl<S, K: MakeIdempotencyKey, M: MakeRequestId> ResilienceService<S, K, M> {
    /// Stamps both ids, on top of any record outer layers left in the extensions.
    fn stamp<B>(&mut self, request: &mut Request<B>) -> RequestIds {
        let mut ids = request
            .extensions_mut()
            .remove::<RequestIds>()
            .unwrap_or_default();
        if let Some((value, generated)) = self.request_id.stamp(request) {
            ids.set(IdField::ClientRequestId, value, generated);
        }
        if let Some((value, generated)) = self.idempotency.stamp(request) {
            ids.set(IdField::IdempotencyKey, value, generated);
        }
        ids
    }
}

impl<S, K, M, B, ResBody> Service<Request<B>> for Resilient<S, K, M>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: RequestBody,
    ResBody: Body,
    K: MakeIdempotencyKey,
    M: MakeRequestId,
{
    type Response = Response<ClassifiedBody<ResBody>>;
    type Error = RetryError;
    type Future = retry::ResponseFuture<Classify<S>, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let ids = self.stamp(&mut request);
        self.inner.call_with_ids(request, Some(ids))
    }
}

impl<S, K, M, B, ResBody> Service<Request<B>> for ResilientErrors<S, K, M>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: RequestBody,
    ResBody: Body,
    K: MakeIdempotencyKey,
    M: MakeRequestId,
{
    type Response = Response<ClassifiedBody<ResBody>>;
    type Error = ApiError;
    type Future =
        error::ResponseFuture<retry::ResponseFuture<Classify<S>, B>, B, ClassifiedBody<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let ids = self.stamp(&mut request);
        self.inner.call_with_ids(request, ids)
    }
}

impl<S, K, M: Clone> Layer<S> for ResilienceLayer<FailuresAsResponses, K, M> {
    type Service = Resilient<S, K, M>;

    fn layer(&self, inner: S) -> Self::Service {
        ResilienceService {
            inner: self.retry.layer(self.classify.layer(inner)),
            request_id: self.request_id.stamp(),
            idempotency: self.idempotency.config(),
        }
    }
}

impl<S, K, M: Clone> Layer<S> for ResilienceLayer<FailuresAsErrors, K, M> {
    type Service = ResilientErrors<S, K, M>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut errors = ApiErrorLayer::new();
        if let Some(deadline) = self.retry.deadline_duration() {
            errors = errors.deadline(deadline);
        }
        ResilienceService {
            inner: errors.layer(self.retry.layer(self.classify.layer(inner))),
            request_id: self.request_id.stamp(),
            idempotency: self.idempotency.config(),
        }
    }
}

mod sealed {
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

impl<L> sealed::Sealed for ServiceBuilder<L> {}

/// One short method per layer of this crate on tower's `ServiceBuilder`.
///
/// Sealed: implemented for `ServiceBuilder` only. tower-http has a trait of the same name;
/// `use http_resilience::ServiceBuilderExt as _;` lets both be in scope.
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Adds the whole standard pipeline.
    fn resilience<Mode, K, M>(
        self,
        layer: ResilienceLayer<Mode, K, M>,
    ) -> ServiceBuilder<Stack<ResilienceLayer<Mode, K, M>, L>>;
    /// Adds a [`RequestIdLayer`] with its defaults.
    fn request_ids(self) -> ServiceBuilder<Stack<RequestIdLayer, L>>;
    /// Adds an [`IdempotencyKeyLayer`] with its defaults.
    fn idempotency_keys(self) -> ServiceBuilder<Stack<IdempotencyKeyLayer, L>>;
    /// Adds an [`ApiErrorLayer`] with no deadline: it reads a failure's body until it ends (at
    /// most 64 KiB). Use [`ResilienceLayer::failures_as_errors`], or
    /// `.layer(ApiErrorLayer::new().deadline(d))`, to bound that read.
    fn api_errors(self) -> ServiceBuilder<Stack<ApiErrorLayer, L>>;
    /// Adds this [`RetryLayer`].
    fn retry_failures(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>>;
    /// Adds a [`ClassifyLayer`] with every provider table.
    fn classify_responses(self) -> ServiceBuilder<Stack<ClassifyLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn resilience<Mode, K, M>(
        self,
        layer: ResilienceLayer<Mode, K, M>,
    ) -> ServiceBuilder<Stack<ResilienceLayer<Mode, K, M>, L>> {
        self.layer(layer)
    }

    fn request_ids(self) -> ServiceBuilder<Stack<RequestIdLayer, L>> {
        self.layer(RequestIdLayer::new())
    }

    fn idempotency_keys(self) -> ServiceBuilder<Stack<IdempotencyKeyLayer, L>> {
        self.layer(IdempotencyKeyLayer::new())
    }

    fn api_errors(self) -> ServiceBuilder<Stack<ApiErrorLayer, L>> {
        self.layer(ApiErrorLayer::new())
    }

    fn retry_failures(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(layer)
    }

    fn classify_responses(self) -> ServiceBuilder<Stack<ClassifyLayer, L>> {
        self.layer(ClassifyLayer::new())
    }
}
