//! Pace requests from the limits the provider announces, so that a client does not meet a 429.
//!
//! AI providers announce their limits on every answer: OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (Azure OpenAI's `x-rate-limit-…`
//! too), Anthropic's
//! `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`, the IETF `RateLimit` and
//! `RateLimit-Policy` fields, and the common `X-RateLimit-Limit/Remaining/Reset`. A [`Pacer`]
//! reads them from every answer, success or failure, and before each attempt (the first and
//! every retry) the [`RetryLayer`](crate::RetryLayer) takes a place in line from it:
//!
//! - **Per scope**: limits are kept per origin and credential (a fingerprint of the
//!   `Authorization`, `x-api-key`, `api-key` or `x-goog-api-key` header, never the credential
//!   itself). OpenAI and Anthropic count per model too: give such requests a [`ScopeLabel`]
//!   (the model) to pace each model apart; [`Pacer::scope_by`] groups requests any other way.
//! - **Inert until told**: a scope exists only once an answer announced limits, asked for a
//!   wait on a 429, 503 or 529, or said it was overloaded (503, 529), so a server that does
//!   none of these costs no wait and no state.
//! - **Waits instead of 429s**: when the scope has nothing left, the request waits for its
//!   turn. Turns are first come, first served and spread at the rate the limit refills (its
//!   limit over its window, worked out from the announced reset), not released as a burst at the
//!   reset. Requests sent but not yet answered count against what the last answer reported.
//! - **A wait past the deadline fails at once**: when the turn would come after the retry
//!   layer's deadline or later than its longest server wait, nothing is sent and the request
//!   fails with [`StopReason::WaitTooLong`](crate::StopReason::WaitTooLong) and the wait in
//!   [`Attempts::wait_hint`](crate::Attempts::wait_hint), so the caller can reschedule.
//! - **Tokens**: a request may carry its estimated [`TokenCost`] as an extension
//!   ([`TokenCost::estimate_json`] reads `max_tokens` and the prompt's length); the model is
//!   corrected from the provider's remaining tokens on every answer.
//! - **A wait told to one is told to all**: a 429, 503 or 529 with a wait (`Retry-After` and its
//!   cousins) makes every queued and new request of the scope wait once. Retries that wait for
//!   their turn or for the scope's cooldown do not draw on the
//!   [`RetryBudget`](crate::retry::RetryBudget): a limit the server explains is not a storm.
//! - **Overload breaker**: after 3 overload answers (503 or 529) in a row the scope cools down
//!   for 1 s, doubling on each failed probe up to 30 s; then a single probe goes alone, and its
//!   answer closes the breaker or opens it again.
//! - **Readable**: [`Pacer::scopes`] shows each scope's limits, what is left, its refill rate,
//!   the requests in line and in flight, its cooldown and its breaker. With the `metrics` feature
//!   the same is published through the [`metrics`](https://docs.rs/metrics) facade:
//!   `http_resilience.pacer.{limit,remaining,queued,in_flight,cooldown}` gauges and an
//!   `http_resilience.pacer.wait` histogram (seconds), labelled by `server.address` (and `limit`
//!   for the first two), never by a path, an id or a credential.
//!
//! The [`ResilienceLayer`](crate::ResilienceLayer) paces by default; clone a `Pacer` into
//! several layers to share it, or turn pacing off with
//! [`without_pacing`](crate::ResilienceLayer::without_pacing).
//!
//! # Defaults
//!
//! | setting | default | why |
//! | --- | --- | --- |
//! | scope | origin, credential fingerprint and [`ScopeLabel`] | providers count limits per key, some per model within it |
//! | scopes kept | 1,024, the least recently used idle one evicted first | bounded memory whatever the traffic |
//! | overload breaker | opens after 3 overloads in a row, for 1 s doubling to 30 s | long enough for an overloaded model to shed load, short enough not to idle |
//! | token cost without a [`TokenCost`] | 1 | the answer's remaining tokens correct it |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use http_resilience::pacing::Pacer;
//! use http_resilience::{ClassifyLayer, RetryLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A provider that allows 60 requests a minute and has none left.
//! let provider = service_fn(|_req: Request<Full<Bytes>>| async {
//!     Response::builder()
//!         .header("x-ratelimit-limit-requests", "60")
//!         .header("x-ratelimit-remaining-requests", "0")
//!         .header("x-ratelimit-reset-requests", "1m0s")
//!         .body(Full::new(Bytes::from_static(b"{}")))
//! });
//! let pacer = Pacer::new();
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new().pacer(pacer.clone()))
//!     .layer(ClassifyLayer::new())
//!     .service(provider);
//!
//! let start = tokio::time::Instant::now();
//! client.clone().oneshot(Request::new(Full::default())).await?;
//! // The next request waits its turn: one a second, instead of collecting a 429.
//! client.oneshot(Request::new(Full::default())).await?;
//! assert_eq!(start.elapsed(), Duration::from_secs(1));
//! assert_eq!(pacer.scopes()[0].limits()[0].limit(), Some(60.0));
//! # Ok(())
//! # }
//! ```

pub(crate) mod announced;
mod cost;
mod fleet;
#[cfg(feature = "metrics")]
mod metrics;
mod scope;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Request, StatusCode, Uri};
use tokio::time::Instant;

pub use cost::TokenCost;

#[cfg(fuzzing)]
pub(crate) use scope::properties;

use crate::fold_hash::FoldHasher;
use crate::store::{StateStore, StoreStats, DEFAULT_STORE_TIMEOUT};
use announced::{Announced, Unit};
use fleet::{Fleet, DEFAULT_LEASE_SIZE};
use scope::{Answer, Breaker, BreakerConfig, Position, Scope};

/// What identifies a pacing scope: a fingerprint, never the credential it was made from.
///
/// Made per process with a random key, so fingerprints cannot be compared across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScopeKey(u64);

impl ScopeKey {
    /// The fingerprint, as a number.
    pub fn fingerprint(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Whether a request header carries a credential, and so tells scopes apart by default:
/// `Authorization`, `x-api-key`, `api-key`, `x-goog-api-key`.
fn is_credential_header(name: &http::HeaderName) -> bool {
    *name == http::header::AUTHORIZATION
        || matches!(name.as_str(), "x-api-key" | "api-key" | "x-goog-api-key")
}

/// A custom scope function: see [`Pacer::scope_by`].
type ScopeFn = dyn Fn(RequestHead<'_>, &mut ScopeHasher) + Send + Sync;

/// A request's head as a [`Pacer::scope_by`] function sees it, borrowed: its method, URI,
/// headers and extensions (the body is not there).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    method: &'a http::Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a http::Extensions,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn of<B>(request: &'a Request<B>) -> Self {
        RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    /// The method.
    pub fn method(&self) -> &'a http::Method {
        self.method
    }

    /// The URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The extensions (a [`ScopeLabel`], a [`TokenCost`], your own).
    pub fn extensions(&self) -> &'a http::Extensions {
        self.extensions
    }
}

/// A request extension that paces the request in a scope of its own within its origin and
/// credential, for providers that count limits per model (OpenAI, Anthropic, Azure
/// deployments): requests with different labels are paced apart.
///
/// ```
/// use http_resilience::pacing::ScopeLabel;
///
/// let request = http::Request::post("https://api.openai.com/v1/chat/completions")
///     .extension(ScopeLabel::new("gpt-4o-mini"))
///     .body(())
///     .unwrap();
/// # let _ = request;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeLabel(std::borrow::Cow<'static, str>);

impl ScopeLabel {
    /// A label, such as the model's name.
    pub fn new(label: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ScopeLabel(label.into())
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Collects what makes up a scope for [`Pacer::scope_by`]; what is fed in is hashed with a
/// per-process random key and not kept.
pub struct ScopeHasher {
    // Keyed at random per pacer, so fingerprints are not comparable across pacers or processes.
    hasher: FoldHasher,
}

impl ScopeHasher {
    /// Adds `part` to the scope's identity.
    pub fn add<T: Hash + ?Sized>(&mut self, part: &T) -> &mut Self {
        part.hash(&mut self.hasher);
        self
    }

    /// Adds the request's origin (scheme and authority).
    pub fn add_origin(&mut self, uri: &Uri) -> &mut Self {
        uri.scheme_str().hash(&mut self.hasher);
        uri.authority().map(|a| a.as_str()).hash(&mut self.hasher);
        self
    }

    /// Adds the request's [`ScopeLabel`], if it has one.
    pub fn add_label(&mut self, extensions: &http::Extensions) -> &mut Self {
        if let Some(label) = extensions.get::<ScopeLabel>() {
            label.as_str().hash(&mut self.hasher);
        }
        self
    }

    /// Adds the credential headers' values (`Authorization`, `x-api-key`, `api-key`,
    /// `x-goog-api-key`).
    pub fn add_credentials(&mut self, headers: &HeaderMap) -> &mut Self {
        for (name, value) in headers {
            if is_credential_header(name) {
                value.as_bytes().hash(&mut self.hasher);
            }
        }
        self
    }
}

impl fmt::Debug for ScopeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeHasher").finish_non_exhaustive()
    }
}

/// Paces requests from the limits their provider announces; see the [module docs](self).
///
/// Cloning a `Pacer` shares it: every clone sees the same scopes.
#[derive(Clone)]
pub struct Pacer {
    shared: Arc<Shared>,
}

struct Shared {
    scopes: Mutex<HashMap<ScopeKey, Scope>>,
    /// Whether any scope exists: until one does, admitting a request takes no lock.
    active: AtomicBool,
    /// The key of every scope fingerprint this pacer makes.
    key: u64,
    scope_fn: Option<Arc<ScopeFn>>,
    max_scopes: usize,
    breaker: BreakerConfig,
    /// The fleet this pacer shares its scopes' limits with, if any.
    fleet: Option<Arc<Fleet>>,
}

/// The largest token cost a request is counted at (10^12).
const MAX_TOKEN_COST: u64 = 1_000_000_000_000;

/// The default number of scopes a pacer keeps.
pub const DEFAULT_MAX_SCOPES: usize = 1024;

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// A pacer with the documented defaults.
    pub fn new() -> Self {
        Pacer {
            shared: Arc::new(Shared {
                scopes: Mutex::new(HashMap::new()),
                active: AtomicBool::new(false),
                key: RandomState::new().hash_one(0x7061_6365_u32),
                scope_fn: None,
                max_scopes: DEFAULT_MAX_SCOPES,
                breaker: BreakerConfig {
                    open_after: 3,
                    first_open: Duration::from_secs(1),
                    longest_open: Duration::from_secs(30),
                },
                fleet: None,
            }),
        }
    }

    /// Changes settings before the pacer is shared; after `clone`, a fresh copy.
    fn configure(mut self, change: impl FnOnce(&mut Shared)) -> Self {
        let shared = match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared,
            None => {
                let old = &self.shared;
                self.shared = Arc::new(Shared {
                    scopes: Mutex::new(HashMap::new()),
                    active: AtomicBool::new(false),
                    key: old.key,
                    scope_fn: old.scope_fn.clone(),
                    max_scopes: old.max_scopes,
                    breaker: old.breaker,
                    fleet: old
                        .fleet
                        .as_ref()
                        .map(|f| Arc::new(f.with_settings(f.timeout(), f.lease_size()))),
                });
                Arc::get_mut(&mut self.shared).expect("just made")
            }
        };
        change(shared);
        self
    }

    /// Groups requests into scopes with `scope`, which feeds what identifies a request's scope
    /// into a [`ScopeHasher`]; it sees the request's head (its body is not there). The default
    /// adds the origin, the credential headers and the [`ScopeLabel`]. For example, one scope
    /// per host whatever the key, split by a model header:
    ///
    /// ```
    /// use http_resilience::pacing::Pacer;
    ///
    /// let pacer = Pacer::new().scope_by(|request, scope| {
    ///     scope
    ///         .add(&request.uri().host())
    ///         .add(&request.headers().get("x-model").map(|v| v.as_bytes()));
    /// });
    /// # let _ = pacer;
    /// ```
    pub fn scope_by<F>(self, scope: F) -> Self
    where
        F: Fn(RequestHead<'_>, &mut ScopeHasher) + Send + Sync + 'static,
    {
        self.configure(|shared| shared.scope_fn = Some(Arc::new(scope)))
    }

    /// Whether scopes are made from the request's origin alone (no `scope_by` function), so
    /// that the rest of its URI is never read.
    #[cfg(feature = "reqwest")]
    pub(crate) fn scopes_by_origin(&self) -> bool {
        self.shared.scope_fn.is_none()
    }

    /// Keeps at most `max` scopes (at least 1; default [`DEFAULT_MAX_SCOPES`]). When full, the
    /// least recently used scope with nothing in line makes room; when none is idle, a new
    /// scope is not paced until one is.
    pub fn max_scopes(self, max: usize) -> Self {
        self.configure(|shared| shared.max_scopes = max.max(1))
    }

    /// Opens the overload breaker after `overloads` overload answers (503 or 529) in a row, for
    /// `first` at first, doubling on each failed probe up to `longest` (defaults: 3, 1 s, 30 s).
    /// `overloads` of 0 is taken as 1.
    pub fn overload_breaker(self, overloads: u32, first: Duration, longest: Duration) -> Self {
        self.configure(|shared| {
            shared.breaker = BreakerConfig {
                open_after: overloads.max(1),
                first_open: first,
                longest_open: longest.max(first),
            }
        })
    }

    /// Shares the limits this pacer learns with every process that shares `store` and
    /// `namespace`: a scope's permits come from one bucket refilling at the rate the provider
    /// announces, leased a few at a time (so a request rarely costs a round trip), and a 429
    /// with a wait makes the whole fleet wait. See [`store`](crate::store) for what happens
    /// when the store fails: the pacer goes on from its own state.
    ///
    /// Scope fingerprints become comparable across processes (they are keyed by `namespace`):
    /// the processes must run the same version of this crate, and group requests into scopes
    /// the same way. Not a credential is stored, only fingerprints.
    pub fn share_through(self, store: Arc<dyn StateStore>, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.configure(|shared| {
            let mut hasher = FoldHasher::seeded(0x666c_6565_7420_6b65);
            hasher.write(namespace.as_bytes());
            shared.key = crate::fold_hash::mix(hasher.finish());
            shared.fleet = Some(Arc::new(Fleet::new(
                store,
                namespace,
                DEFAULT_STORE_TIMEOUT,
                DEFAULT_LEASE_SIZE,
            )));
        })
    }

    /// Gives each store operation at most `timeout` before deciding alone (default
    /// [`DEFAULT_STORE_TIMEOUT`], 50 ms); leases at most `lease_size` permits at a time
    /// (default 16, fewer at low rates: about a quarter second of the scope's rate). Without
    /// [`share_through`](Self::share_through), nothing.
    pub fn store_settings(self, timeout: Duration, lease_size: u32) -> Self {
        self.configure(|shared| {
            if let Some(fleet) = &shared.fleet {
                shared.fleet = Some(Arc::new(fleet.with_settings(timeout, lease_size)));
            }
        })
    }

    /// How this pacer used its store: round trips, failures, decisions taken alone. `None`
    /// without [`share_through`](Self::share_through).
    pub fn store_stats(&self) -> Option<StoreStats> {
        self.shared.fleet.as_ref().map(|fleet| fleet.stats())
    }

    /// The scope a request belongs to.
    pub fn scope_of<B>(&self, request: &Request<B>) -> ScopeKey {
        let mut scope = ScopeHasher {
            hasher: FoldHasher::seeded(self.shared.key),
        };
        match &self.shared.scope_fn {
            Some(scope_fn) => scope_fn(RequestHead::of(request), &mut scope),
            None => {
                scope
                    .add_origin(request.uri())
                    .add_credentials(request.headers())
                    .add_label(request.extensions());
            }
        }
        ScopeKey(crate::fold_hash::mix(scope.hasher.finish()))
    }

    /// What the pacer knows of each scope, most recently used first.
    pub fn scopes(&self) -> Vec<ScopeState> {
        let now = Instant::now();
        let scopes = self.shared.lock();
        let mut states: Vec<(Instant, ScopeState)> = scopes
            .iter()
            .map(|(key, scope)| (scope.last_used, ScopeState::of(*key, scope, now)))
            .collect();
        states.sort_by_key(|state| std::cmp::Reverse(state.0));
        states.into_iter().map(|(_, state)| state).collect()
    }

    /// Whether any scope exists: until then, nothing is paced and a request's scope need not
    /// be worked out before an answer asks for it.
    pub(crate) fn is_active(&self) -> bool {
        // A shared pacer asks the fleet about every scope: another process may know it.
        self.shared.fleet.is_some() || self.shared.active.load(Ordering::Acquire)
    }

    /// Takes a place in `scope`'s line for a request of `token_cost` tokens that will not go
    /// before `earliest` (a retry's backoff): no permit while the scope is unknown (nothing to
    /// pace), else a permit and, if the request must wait, until when. A permit that waits
    /// asks again with [`Permit::ready_at`] when its time comes: the line may have moved.
    pub(crate) fn admit(
        &self,
        scope: ScopeKey,
        token_cost: u64,
        uri: &Uri,
        now: Instant,
        earliest: Instant,
    ) -> Option<(Permit, Option<Instant>)> {
        if !self.is_active() {
            return None;
        }
        let mut scopes = self.shared.lock();
        if self.shared.fleet.is_some() && !scopes.contains_key(&scope) {
            // Unknown here, perhaps known to the fleet: a scope with no limits of its own, so
            // that the fleet's permits gate it from the first request.
            if !make_room(&mut scopes, self.shared.max_scopes, now) {
                return None;
            }
            scopes.insert(scope, Scope::new(now));
            self.shared.active.store(true, Ordering::Release);
        }
        let state = scopes.get_mut(&scope)?;
        if state.origin.is_none() {
            state.origin = origin_of(uri);
            state.address = uri.host().map(str::to_owned);
        }
        // Costs are clamped far above any provider's limit, so the running totals stay exact.
        let position = state.admit(token_cost.min(MAX_TOKEN_COST) as f64, now);
        let mut permit = Permit {
            shared: Arc::clone(&self.shared),
            scope,
            position,
            probe: false,
            stage: Stage::Queued,
        };
        let at = if earliest > now {
            // It waits anyway: it looks, but takes no probe until its time comes.
            Some(
                state
                    .turn(&permit.position, now)
                    .map_or(earliest, |at| at.max(earliest)),
            )
        } else {
            state.ready_at(&permit.position, &mut permit.probe, now)
        };
        let at = match (at, &self.shared.fleet) {
            (None, Some(fleet)) => fleet.gate(scope, permit.position.place(), now),
            (at, _) => at,
        };
        if at.is_none() {
            state.queued -= 1;
            state.in_flight += 1;
            permit.stage = Stage::Sent;
        }
        #[cfg(feature = "metrics")]
        {
            if let Some(at) = at {
                metrics::record_wait(state, at.saturating_duration_since(now));
            }
            metrics::export(state, now);
        }
        Some((permit, at))
    }

    /// Learns from an answer to a request (`permit` its place in line, if it had one): the
    /// limits its headers announce, its status and the server's wait. `scope` works out the
    /// request's scope, called only when the answer matters to the pacer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &self,
        scope: impl FnOnce() -> Option<ScopeKey>,
        permit: Option<Permit>,
        headers: &HeaderMap,
        status: StatusCode,
        wait: Option<Duration>,
        uri: Option<&Uri>,
    ) {
        let tells_wait = wait.is_some() && matches!(status.as_u16(), 429 | 503 | 529);
        let overloaded = matches!(status.as_u16(), 503 | 529);
        let shared = &*self.shared;
        let announces = Announced::any_in(headers);
        if !announces
            && !tells_wait
            && !overloaded
            && permit.is_none()
            && !shared.active.load(Ordering::Acquire)
        {
            return;
        }
        let scope = match &permit {
            Some(permit) => permit.scope,
            None => match scope() {
                Some(scope) => scope,
                None => return,
            },
        };
        let announced = if announces {
            Announced::parse(headers, SystemTime::now())
        } else {
            Announced::default()
        };
        let now = Instant::now();
        let mut scopes = shared.lock();
        if !scopes.contains_key(&scope) {
            if announced.limits.is_empty() && !tells_wait && !overloaded {
                return;
            }
            if !make_room(&mut scopes, shared.max_scopes, now) {
                return;
            }
            scopes.insert(scope, Scope::new(now));
            shared.active.store(true, Ordering::Release);
        }
        let Some(state) = scopes.get_mut(&scope) else {
            return;
        };
        if state.origin.is_none() {
            state.origin = uri.and_then(origin_of);
            state.address = uri.and_then(Uri::host).map(str::to_owned);
        }
        let (position, probe) = match permit {
            Some(mut permit) => {
                if permit.stage == Stage::Sent {
                    state.in_flight = state.in_flight.saturating_sub(1);
                }
                permit.stage = Stage::Answered;
                (Some(permit.position), permit.probe)
            }
            None => (None, false),
        };
        let answer = Answer {
            family: announced.family,
            limits: &announced.limits,
            status,
            wait,
        };
        state.observe(&answer, position.as_ref(), probe, &shared.breaker, now);
        #[cfg(feature = "metrics")]
        metrics::export(state, now);
        if let Some(fleet) = &shared.fleet {
            // The tightest request limit, as the fleet's bucket, with what this answer says is
            // left of it (not this process's own line, which the fleet does not share).
            let tightest = state
                .buckets
                .iter()
                .filter(|b| b.unit == Unit::Requests && b.rate > 0.0)
                .filter_map(|b| Some((b.rate, b.limit?, &b.name)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((rate, limit, name)) = tightest {
                // Less what this process still has in flight, which the count may not show.
                let left = announced
                    .limits
                    .iter()
                    .find(|l| l.unit == Unit::Requests && l.name == *name)
                    .and_then(|l| l.remaining)
                    .unwrap_or(limit)
                    - state.in_flight as f64;
                fleet.record(scope, rate, limit, left);
            }
            if let (true, Some(wait)) = (tells_wait, wait) {
                fleet.cool_down(scope, wait);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<ScopeKey, Scope>> {
        self.scopes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes room for one more scope; false when every scope is busy.
fn make_room(scopes: &mut HashMap<ScopeKey, Scope>, max: usize, now: Instant) -> bool {
    if scopes.len() < max {
        return true;
    }
    let oldest_idle = scopes
        .iter()
        .filter(|(_, scope)| scope.is_idle(now))
        .min_by_key(|(_, scope)| scope.last_used)
        .map(|(key, _)| *key);
    match oldest_idle {
        Some(key) => {
            scopes.remove(&key);
            true
        }
        None => false,
    }
}

/// The origin a scope reports: scheme, host and port, never the user-info a URL may carry.
fn origin_of(uri: &Uri) -> Option<String> {
    let authority = uri.authority()?.as_str();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    Some(match uri.scheme_str() {
        Some(scheme) => format!("{scheme}://{authority}"),
        None => authority.to_string(),
    })
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes = self.shared.lock().len();
        f.debug_struct("Pacer")
            .field("scopes", &scopes)
            .field("max_scopes", &self.shared.max_scopes)
            .field("custom_scope", &self.shared.scope_fn.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Queued,
    Sent,
    Answered,
}

/// A request's place in its scope's line; giving it up (dropping it) before the request is
/// sent returns its cost to the scope.
pub(crate) struct Permit {
    shared: Arc<Shared>,
    scope: ScopeKey,
    position: Position,
    probe: bool,
    stage: Stage,
}

impl Permit {
    /// When the request may go (`None`: now), after what was learned since it queued. When it
    /// may, it counts as sent.
    pub(crate) fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        if self.stage != Stage::Queued {
            return None;
        }
        let mut scopes = self.shared.lock();
        let Some(state) = scopes.get_mut(&self.scope) else {
            self.stage = Stage::Sent;
            return None;
        };
        let at = state.ready_at(&self.position, &mut self.probe, now);
        let at = match (at, &self.shared.fleet) {
            (None, Some(fleet)) => fleet.gate(self.scope, self.position.place(), now),
            (at, _) => at,
        };
        if at.is_none() {
            state.queued = state.queued.saturating_sub(1);
            state.in_flight += 1;
            self.stage = Stage::Sent;
        }
        at
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.stage == Stage::Answered {
            return;
        }
        let mut scopes = self.shared.lock();
        let Some(state) = scopes.get_mut(&self.scope) else {
            return;
        };
        match self.stage {
            Stage::Queued => {
                state.queued = state.queued.saturating_sub(1);
                state.release(&self.position);
                if let Some(fleet) = &self.shared.fleet {
                    fleet.forget(self.scope, self.position.place());
                }
            }
            Stage::Sent => state.in_flight = state.in_flight.saturating_sub(1),
            Stage::Answered => {}
        }
        if self.probe {
            state.probe_lost();
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("scope", &self.scope)
            .field("stage", &self.stage)
            .finish()
    }
}

/// What a [`Pacer`] knows of one scope, as [`Pacer::scopes`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeState {
    key: ScopeKey,
    origin: Option<String>,
    limits: Vec<LimitState>,
    queued: usize,
    in_flight: usize,
    cooldown: Option<Duration>,
    breaker: BreakerState,
}

/// What a [`Pacer`] knows of one announced limit of a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitState {
    name: String,
    tokens: bool,
    limit: Option<f64>,
    remaining: f64,
    refill_per_second: Option<f64>,
}

/// The overload breaker of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Overloaded: requests wait for this long.
    Open(Duration),
    /// The cooldown is over: one probe goes alone.
    HalfOpen,
}

impl ScopeState {
    fn of(key: ScopeKey, scope: &Scope, now: Instant) -> Self {
        let limits = scope
            .buckets
            .iter()
            .map(|bucket| {
                let position = match bucket.unit {
                    announced::Unit::Requests => scope.requests,
                    announced::Unit::Tokens => scope.tokens,
                };
                let mut remaining = bucket.level(position, now);
                if let Some(limit) = bucket.limit {
                    remaining = remaining.min(limit);
                }
                LimitState {
                    name: bucket.name.to_string(),
                    tokens: bucket.unit == announced::Unit::Tokens,
                    limit: bucket.limit,
                    remaining: if remaining.is_finite() {
                        remaining
                    } else {
                        0.0
                    },
                    refill_per_second: (bucket.rate > 0.0).then_some(bucket.rate),
                }
            })
            .collect();
        ScopeState {
            key,
            origin: scope.origin.clone(),
            limits,
            queued: scope.queued,
            in_flight: scope.in_flight,
            cooldown: scope
                .cooldown_until
                .map(|until| until.saturating_duration_since(now))
                .filter(|left| !left.is_zero()),
            breaker: match scope.breaker {
                Breaker::Closed { .. } => BreakerState::Closed,
                Breaker::Open { until, .. } if until > now => {
                    BreakerState::Open(until.saturating_duration_since(now))
                }
                Breaker::Open { .. } | Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
            },
        }
    }

    /// The scope's key.
    pub fn key(&self) -> ScopeKey {
        self.key
    }

    /// The origin (`https://api.openai.com`) of the scope's requests, once one was seen.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Every limit the provider announced for the scope.
    pub fn limits(&self) -> &[LimitState] {
        &self.limits
    }

    /// Requests waiting for their turn.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// What is left of a wait a 429, 503 or 529 told the scope.
    pub fn cooldown(&self) -> Option<Duration> {
        self.cooldown
    }

    /// The overload breaker.
    pub fn breaker(&self) -> BreakerState {
        self.breaker
    }
}

impl LimitState {
    /// The limit's name: `requests`, `tokens`, `input-tokens`, `output-tokens`, or an IETF
    /// policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether requests take their [`TokenCost`] from it (else one each).
    pub fn counts_tokens(&self) -> bool {
        self.tokens
    }

    /// The announced limit.
    pub fn limit(&self) -> Option<f64> {
        self.limit
    }

    /// What the pacer reckons is left now, after the requests it let go since the last answer
    /// and the refill since; negative while requests wait.
    pub fn remaining(&self) -> f64 {
        self.remaining
    }

    /// The refill rate worked out from the announced limit and reset, per second.
    pub fn refill_per_second(&self) -> Option<f64> {
        self.refill_per_second
    }
}
