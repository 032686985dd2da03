//! Where the state a fleet shares lives: the pacer's shared permits and cooldowns, and the
//! retry budget.
//!
//! A [`Pacer`](crate::pacing::Pacer) and a [`RetryBudget`](crate::retry::RetryBudget) keep
//! their state in the process by default: eight worker processes on one API key each know only
//! their own requests, so together they send eight times what the provider allows, one worker's
//! 429 slows nobody else, and the retry budget bounds a storm per process, not per key.
//! [`Pacer::share_through`](crate::pacing::Pacer::share_through) and
//! [`RetryBudget::share_through`](crate::retry::RetryBudget::share_through) put that state in a
//! [`StateStore`] the processes share:
//!
//! - `RedisStore` (feature `redis`): a Redis server, every update one Lua script run
//!   atomically on the server, keys namespaced and expiring by themselves;
//! - [`InProcessStore`]: a store in this process, for several independent stacks in one process
//!   (and for tests).
//!
//! What is shared, per pacing scope (origin, credential fingerprint, label): a token bucket
//! refilling at the rate the provider announces, from which each process takes permits in small
//! leases (so a request costs no round trip to the store, and the process one per lease), and
//! the scope's cooldown after a 429 with a wait. For a retry budget: the successes and the
//! retries of the last window, counted across the fleet. No key holds a credential: scopes are
//! named by fingerprints.
//!
//! **When the store fails** (down, slower than its timeout, restarted), nothing waits past the
//! timeout and nothing fails: the process paces and budgets from its own state alone, logs once
//! at WARN, counts the failure, tries the store again after a second and rejoins when it
//! answers. A scope the store has forgotten (expired, or the server restarted empty) is paced
//! by the process alone until its next answer records the limits again.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use http_resilience::pacing::Pacer;
//! use http_resilience::retry::RetryBudget;
//! use http_resilience::store::InProcessStore;
//!
//! let store = Arc::new(InProcessStore::new());
//! // Two stacks in one process that share what a provider allows one key.
//! let first = Pacer::new().share_through(store.clone(), "my-app");
//! let second = Pacer::new().share_through(store.clone(), "my-app");
//! let budget = RetryBudget::default().share_through(store, "my-app");
//! # let _ = (first, second, budget);
//! ```

mod in_process;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisStore;
pub use in_process::InProcessStore;

/// The future a [`StateStore`] operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The state a fleet of processes shares; see the [module docs](self).
///
/// Every operation is atomic in the store. Scope and budget names are fingerprints and
/// configured names, prefixed by the caller's namespace; they never hold a credential.
pub trait StateStore: Send + Sync + 'static {
    /// Takes up to `want` permits from `scope`'s shared bucket, reserving them ahead when it is
    /// empty (at most one bucket's worth ahead).
    fn take_permits(&self, scope: &str, want: u32) -> StoreFuture<'_, Grant>;

    /// Gives back permits taken and not used.
    fn return_permits(&self, scope: &str, count: u32) -> StoreFuture<'_, ()>;

    /// Records the limit a provider announced for `scope`: creates its bucket with what the
    /// provider reports left, or updates its rate and size and lowers what is left to the
    /// provider's count when that is lower. (The pacer records seldom: when the limit changes,
    /// when the provider reports much less left than last recorded, and every 20 s; the
    /// provider's count lags the permits handed out, and recording it on every answer would
    /// empty the bucket the fleet is using.)
    fn record_limit(&self, scope: &str, limit: SharedLimit) -> StoreFuture<'_, ()>;

    /// Makes every process wait `wait` before sending in `scope` (a 429 or 503 with a wait),
    /// and empties its bucket (permits reserved ahead stay reserved): the provider said it has
    /// nothing left.
    fn set_cooldown(&self, scope: &str, wait: Duration) -> StoreFuture<'_, ()>;

    /// Counts `successes` toward `budget`'s window.
    fn deposit(&self, budget: &str, successes: u32, policy: BudgetPolicy) -> StoreFuture<'_, ()>;

    /// Takes up to `want` retries from `budget`: what the window's successes and floor allow
    /// beyond the retries already taken in it.
    fn withdraw(&self, budget: &str, want: u32, policy: BudgetPolicy) -> StoreFuture<'_, u32>;
}

/// What [`StateStore::take_permits`] granted.
///
/// Permits are reserved in the order the store receives the requests for them, ahead of time
/// when the bucket is empty: a process waits `wait` before using what it was granted, and asks
/// once per lease whatever the contention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Permits granted, at most the number asked for.
    pub granted: u32,
    /// With permits granted: how long until the first may be used (`ZERO`: now). With none (a
    /// cooldown, or a line already longer than the bucket): how long until asking again.
    pub wait: Duration,
    /// With permits granted: the time between one and the next becoming usable (the bucket's
    /// refill interval; `ZERO` when they all may go at once).
    pub interval: Duration,
    /// Whether the store knows the scope's limit; `false`: one permit is granted, for the
    /// answer that will tell the limit.
    pub known: bool,
}

/// A limit as a shared bucket: what [`StateStore::record_limit`] records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedLimit {
    /// Refill, in permits per second.
    pub per_second: f64,
    /// The bucket's size: the most that may go at once.
    pub burst: f64,
    /// What the provider reported left.
    pub remaining: f64,
    /// How long the store keeps the scope after its last use.
    pub keep_for: Duration,
}

/// A retry budget's rule, as the store applies it: in any `window`, retries up to `ratio` of
/// the successes plus `floor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPolicy {
    /// Retries earned per success.
    pub ratio: f64,
    /// Retries allowed per window whatever the successes.
    pub floor: f64,
    /// The window.
    pub window: Duration,
}

/// Why a store operation failed.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error with this description.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Counts of a sharing side's use of its store, to see its cost and its health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Operations sent to the store.
    pub round_trips: u64,
    /// Operations that failed or timed out.
    pub failures: u64,
    /// Decisions made from the process's own state because the store was unavailable.
    pub fallbacks: u64,
}

/// The counters behind [`StoreStats`].
#[derive(Debug, Default)]
pub(crate) struct StatCounters {
    round_trips: AtomicU64,
    failures: AtomicU64,
    fallbacks: AtomicU64,
}

impl StatCounters {
    pub(crate) fn round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            round_trips: self.round_trips.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// The default time a store operation may take before the process decides alone: 50 ms.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);

/// How long a failed store is left alone before it is tried again.
pub(crate) const RETRY_STORE_AFTER: Duration = Duration::from_secs(1);

/// Whether a store is usable, and the one WARN per outage.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// While set and in the future, the store is not asked.
    resting_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    warned: std::sync::atomic::AtomicBool,
}

impl Health {
    /// Whether the store may be asked now.
    pub(crate) fn usable(&self, now: tokio::time::Instant) -> bool {
        let resting = self
            .resting_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        resting.is_none_or(|until| until <= now)
    }

    /// A failed operation: rest, and warn once for the outage.
    pub(crate) fn failed(&self, what: &str, error: &StoreError, stats: &StatCounters) {
        stats.failure();
        let now = tokio::time::Instant::now();
        *self
            .resting_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now.checked_add(RETRY_STORE_AFTER);
        if !self.warned.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                target: "http_resilience::store",
                operation = what,
                error = %error,
                "the shared state store failed: deciding from this process's state until it answers again"
            );
        }
    }

    /// A successful operation: the outage, if any, is over.
    pub(crate) fn succeeded(&self) {
        if self.warned.swap(false, Ordering::AcqRel) {
            tracing::info!(
                target: "http_resilience::store",
                "the shared state store answers again: rejoining the fleet"
            );
        }
    }
}

/// Runs a store operation within `timeout`, counting it and keeping `health`.
pub(crate) async fn guarded<T>(
    what: &str,
    operation: StoreFuture<'_, T>,
    timeout: Duration,
    health: &Health,
    stats: &StatCounters,
) -> Option<T> {
    stats.round_trip();
    let result = match tokio::time::timeout(timeout, operation).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    };
    match result {
        Ok(value) => {
            health.succeeded();
            Some(value)
        }
        Err(error) => {
            health.failed(what, &error, stats);
            None
        }
    }
}
