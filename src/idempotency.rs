//! Idempotency keys, so that a retried POST never creates a second paid job.
//!
//! [`IdempotencyKeyLayer`] adds an `Idempotency-Key` header to POST and PATCH requests that do
//! not carry one. Placed outside [`RetryLayer`](crate::RetryLayer), every attempt of a logical
//! request carries the same key, and the retry layer, seeing the key, knows the request is safe
//! to retry. A key the caller set is kept.
//!
//! The key is recorded in the request's [`RequestIds`](crate::RequestIds), which the retry layer
//! reads (a header name is configured here only) and which the final response carries, with whether
//! the server said it replayed a stored result (`Idempotent-Replayed: true`). A `409 Conflict`
//! ("key in use": an earlier attempt is still running) is a
//! [`Conflict`](crate::ErrorKind::Conflict) failure, which the retry layer retries after a backoff.
//!
//! # Differences from setting the header yourself
//!
//! Setting a fresh key per *attempt* defeats the purpose; setting it per *logical request*,
//! outside the retries, is what this layer does. Keys are random UUID v4 by default; derive them
//! from your own job id with [`MakeIdempotencyKey`] so that a restarted process reuses them.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::ids::RequestIds;
//! use http_resilience::IdempotencyKeyLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = service_fn(|req: Request<Full<Bytes>>| async move {
//!     assert!(req.headers().contains_key("idempotency-key"));
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//! });
//! let client = ServiceBuilder::new().layer(IdempotencyKeyLayer::new()).service(upstream);
//!
//! let request = Request::post("https://api.example.com/v1/videos").body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! let ids = response.extensions().get::<RequestIds>().unwrap();
//! let key = ids.idempotency_key().unwrap();
//! assert_eq!(key.as_str().len(), 36); // a UUID
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Method, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::ids::{record_stamp, stamp_header, IdField, RecordIdFuture};
use crate::retry::RequestPolicy;

/// The header carrying the key, by default.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The response header by which a server says it replayed a stored result (Stripe's name).
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Makes the key of a logical request.
pub trait MakeIdempotencyKey: Send + Sync + 'static {
    /// A key for `request`, or `None` to send it without one.
    fn make_key<B>(&self, request: &Request<B>) -> Option<HeaderValue>;
}

/// Random UUID v4 keys (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidKeys;

impl MakeIdempotencyKey for UuidKeys {
    fn make_key<B>(&self, _request: &Request<B>) -> Option<HeaderValue> {
        crate::header_id::uuid_header_value(uuid::Uuid::new_v4())
    }
}

/// Keys derived from a request extension of type `T` (for example your own job id), so that a
/// restarted process sends the same key for the same job. Requests without the extension get a
/// UUID.
///
/// ```
/// use http_resilience::idempotency::{IdempotencyKeyLayer, KeyFromExtension};
///
/// #[derive(Clone)]
/// struct JobId(u64);
///
/// let layer = IdempotencyKeyLayer::with_keys(KeyFromExtension::new(|job: &JobId| format!("job-{}", job.0)));
/// ```
pub struct KeyFromExtension<T, F> {
    derive: F,
    _extension: std::marker::PhantomData<fn(&T)>,
}

impl<T, F> KeyFromExtension<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> String + Send + Sync + 'static,
{
    /// Derives the key from the extension `T` with `derive`.
    pub fn new(derive: F) -> Self {
        KeyFromExtension {
            derive,
            _extension: std::marker::PhantomData,
        }
    }
}

impl<T, F> MakeIdempotencyKey for KeyFromExtension<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> String + Send + Sync + 'static,
{
    fn make_key<B>(&self, request: &Request<B>) -> Option<HeaderValue> {
        match request.extensions().get::<T>() {
            Some(value) => HeaderValue::from_str(&(self.derive)(value)).ok(),
            None => UuidKeys.make_key(request),
        }
    }
}

impl<T, F> fmt::Debug for KeyFromExtension<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFromExtension")
            .field("extension", &std::any::type_name::<T>())
            .finish()
    }
}

/// Adds an idempotency key to requests of the configured methods; see the [module docs](self).
pub struct IdempotencyKeyLayer<K = UuidKeys> {
    config: Config<K>,
}

/// What the layer and its services share; every part is cheap to clone.
pub(crate) struct Config<K> {
    header: HeaderName,
    methods: Arc<[Method]>,
    keys: Arc<K>,
    /// Whether keys are made; without, only a caller's own key is recorded.
    make: bool,
}

impl<K: MakeIdempotencyKey> Config<K> {
    /// Stamps the key of `request`: a caller's own key is taken whatever the method; keys are
    /// made for the configured methods.
    ///
    /// A key the request's [`RequestPolicy`] names is the caller's own too: it goes out
    /// whatever the method, and is not recorded as made here.
    pub(crate) fn stamp<B>(&self, request: &mut Request<B>) -> Option<(HeaderValue, bool)> {
        let chosen = request
            .extensions()
            .get::<RequestPolicy>()
            .and_then(|policy| policy.idempotency_key.clone());
        if let Some(key) = chosen.filter(|_| !request.headers().contains_key(&self.header)) {
            request
                .headers_mut()
                .insert(self.header.clone(), key.clone());
            return Some((key, false));
        }
        stamp_header(request, &self.header, |request| {
            if self.make && self.methods.contains(request.method()) {
                self.keys.make_key(request)
            } else {
                None
            }
        })
    }
}

impl<K> Config<K> {
    pub(crate) fn header(&self) -> &HeaderName {
        &self.header
    }
}

impl<K> Clone for Config<K> {
    fn clone(&self) -> Self {
        Config {
            header: self.header.clone(),
            methods: Arc::clone(&self.methods),
            keys: Arc::clone(&self.keys),
            make: self.make,
        }
    }
}

impl IdempotencyKeyLayer<UuidKeys> {
    /// Adds random UUID v4 keys to POST and PATCH requests, in `Idempotency-Key`.
    pub fn new() -> Self {
        IdempotencyKeyLayer::with_keys(UuidKeys)
    }
}

impl Default for IdempotencyKeyLayer<UuidKeys> {
    fn default() -> Self {
        IdempotencyKeyLayer::new()
    }
}

impl<K: MakeIdempotencyKey> IdempotencyKeyLayer<K> {
    /// Adds keys made by `keys` to POST and PATCH requests.
    pub fn with_keys(keys: K) -> Self {
        IdempotencyKeyLayer {
            config: Config {
                header: IDEMPOTENCY_KEY,
                methods: Arc::from([Method::POST, Method::PATCH]),
                keys: Arc::new(keys),
                make: true,
            },
        }
    }

    /// Uses this header name instead of `Idempotency-Key`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.config.header = name;
        self
    }

    /// Adds keys to requests of these methods (default POST and PATCH).
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.config.methods = methods.into_iter().collect();
        self
    }

    /// Makes no keys: records only a key the caller set in the header, so that the retry layer
    /// and errors know it.
    pub fn without_new_keys(mut self) -> Self {
        self.config.make = false;
        self
    }

    /// The same layer (header, methods) with keys made by `keys`, and made again if
    /// [`without_new_keys`](Self::without_new_keys) had stopped them.
    pub(crate) fn replace_keys<K2: MakeIdempotencyKey>(self, keys: K2) -> IdempotencyKeyLayer<K2> {
        IdempotencyKeyLayer {
            config: Config {
                header: self.config.header,
                methods: self.config.methods,
                keys: Arc::new(keys),
                make: true,
            },
        }
    }
}

impl<K> IdempotencyKeyLayer<K> {
    /// What the layer stamps with, for a service that stamps the key itself.
    pub(crate) fn config(&self) -> Config<K> {
        self.config.clone()
    }
}

impl<K> Clone for IdempotencyKeyLayer<K> {
    fn clone(&self) -> Self {
        IdempotencyKeyLayer {
            config: self.config.clone(),
        }
    }
}

impl<K> fmt::Debug for IdempotencyKeyLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyKeyLayer")
            .field("header", &self.config.header)
            .field("methods", &self.config.methods)
            .field("make", &self.config.make)
            .finish_non_exhaustive()
    }
}

impl<S, K> Layer<S> for IdempotencyKeyLayer<K> {
    type Service = SetIdempotencyKey<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        SetIdempotencyKey {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`IdempotencyKeyLayer`].
pub struct SetIdempotencyKey<S, K = UuidKeys> {
    inner: S,
    config: Config<K>,
}

impl<S: Clone, K> Clone for SetIdempotencyKey<S, K> {
    fn clone(&self) -> Self {
        SetIdempotencyKey {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, K> fmt::Debug for SetIdempotencyKey<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetIdempotencyKey")
            .field("inner", &self.inner)
            .field("header", &self.config.header)
            .finish_non_exhaustive()
    }
}

impl<S, K> SetIdempotencyKey<S, K> {
    inner_service_accessors!();
}

impl<S, K, B, ResBody> Service<Request<B>> for SetIdempotencyKey<S, K>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    K: MakeIdempotencyKey,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let stamped = self.config.stamp(&mut request);
        let inner = &mut self.inner;
        record_stamp(request, stamped, IdField::IdempotencyKey, |request| {
            inner.call(request)
        })
    }
}

/// The response future of [`SetIdempotencyKey`]: adds the key to the response's
/// [`RequestIds`](crate::RequestIds), with whether the server said it replayed a stored result.
pub type ResponseFuture<F> = RecordIdFuture<F>;
