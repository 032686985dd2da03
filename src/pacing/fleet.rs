//! A pacer's share of what a fleet of processes may send: permits leased from a
//! [`StateStore`], the fleet's cooldowns, and the limits recorded for every process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::ScopeKey;
use crate::store::{guarded, Health, SharedLimit, StatCounters, StateStore, StoreStats};

/// How long a lease may last at the scope's rate: a process takes about this much of the
/// fleet's rate at a time.
const LEASE_SPAN: Duration = Duration::from_millis(250);

/// Permits unused this long after they were leased go back to the fleet.
const LEASE_TTL: Duration = Duration::from_millis(500);

/// How often a waiting request looks again while its lease is on the way.
const RECHECK: Duration = Duration::from_millis(1);

/// A scope's limit is recorded again this often, unless it changed: well within the minute
/// the store keeps a scope at least, so it does not expire while in use.
const RECORD_EVERY: Duration = Duration::from_secs(20);

/// The share of the announced rate the fleet's bucket refills at.
const RATE_MARGIN: f64 = 0.97;

/// The default most permits one lease takes.
pub(crate) const DEFAULT_LEASE_SIZE: u32 = 16;

/// The fleet side of a [`Pacer`](super::Pacer).
pub(crate) struct Fleet {
    store: Arc<dyn StateStore>,
    namespace: String,
    timeout: Duration,
    lease_size: u32,
    leases: Mutex<HashMap<ScopeKey, Lease>>,
    health: Arc<Health>,
    stats: Arc<StatCounters>,
}

/// One scope's lease.
#[derive(Debug, Default)]
struct Lease {
    /// Permits held and not yet used, by when each may be used: the fleet reserves permits
    /// ahead when its bucket is empty, one refill interval apart, in the order processes ask.
    due: VecDeque<Instant>,
    /// The fleet said to wait until then (no permit left, or a cooldown).
    blocked_until: Option<Instant>,
    /// A lease asked for since then, not answered yet.
    refilling_since: Option<Instant>,
    /// The rate, size and what was left last recorded, and when.
    recorded: Option<Recorded>,
    /// The requests whose turn came in this process and that wait for a permit, by their place
    /// in line, with when each will ask again: permits go to the first, so no request starves.
    waiting: BTreeMap<u64, Instant>,
}

/// What a process last recorded of a scope's limit.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    per_second: f64,
    burst: f64,
    left: f64,
    at: Instant,
}

/// A waiting request that has not asked for this long is taken for gone.
const FORGET_WAITER_AFTER: Duration = Duration::from_millis(100);

impl Fleet {
    pub(crate) fn new(
        store: Arc<dyn StateStore>,
        namespace: String,
        timeout: Duration,
        lease_size: u32,
    ) -> Self {
        Fleet {
            store,
            namespace,
            timeout,
            lease_size: lease_size.max(1),
            leases: Mutex::new(HashMap::new()),
            health: Arc::new(Health::default()),
            stats: Arc::new(StatCounters::default()),
        }
    }

    pub(crate) fn with_settings(&self, timeout: Duration, lease_size: u32) -> Self {
        Fleet::new(
            Arc::clone(&self.store),
            self.namespace.clone(),
            timeout,
            lease_size,
        )
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn lease_size(&self) -> u32 {
        self.lease_size
    }

    pub(crate) fn stats(&self) -> StoreStats {
        self.stats.snapshot()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ScopeKey, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The scope's name in the store: the namespace and the fingerprint.
    fn name(&self, scope: ScopeKey) -> String {
        format!("{}:{scope}", self.namespace)
    }

    /// Whether the request at `place` in `scope`'s line, which the pacer lets go now, may go
    /// as far as the fleet is concerned: `None` for now (a permit was used), else when to ask
    /// again.
    pub(crate) fn gate(
        self: &Arc<Self>,
        scope: ScopeKey,
        place: u64,
        now: Instant,
    ) -> Option<Instant> {
        let again = self.gate_once(scope, place, now);
        if let Some(at) = again {
            // It will ask again at `at`: not forgotten while it sleeps until then.
            if let Some(lease) = self.lock().get_mut(&scope) {
                if let Some(next_ask) = lease.waiting.get_mut(&place) {
                    *next_ask = at;
                }
            }
        }
        again
    }

    fn gate_once(self: &Arc<Self>, scope: ScopeKey, place: u64, now: Instant) -> Option<Instant> {
        let mut leases = self.lock();
        let lease = leases.entry(scope).or_default();
        lease.waiting.insert(place, now);
        // Forget waiters that did not ask again when they said they would (their request went
        // away).
        while let Some((&first, &asked)) = lease.waiting.first_key_value() {
            if first != place
                && asked
                    .checked_add(FORGET_WAITER_AFTER)
                    .is_some_and(|end| end < now)
            {
                lease.waiting.remove(&first);
            } else {
                break;
            }
        }
        let first = lease.waiting.first_key_value().map(|(&first, _)| first) == Some(place);
        if lease
            .due
            .back()
            .is_some_and(|last| last.checked_add(LEASE_TTL).is_some_and(|end| end <= now))
        {
            // Unused for too long: back to the fleet, and lease anew.
            let unused = u32::try_from(lease.due.len()).unwrap_or(u32::MAX);
            lease.due.clear();
            self.spawn_return(scope, unused);
        }
        if !self.health.usable(now) {
            lease.waiting.remove(&place);
            self.stats.fallback();
            return None;
        }
        if let Some(&next) = lease.due.front() {
            let recheck = now.checked_add(RECHECK).unwrap_or(now);
            if !first {
                // A request ahead in line takes this permit first.
                return Some(next.max(recheck));
            }
            if next > now {
                // Reserved, not yet due.
                return Some(next);
            }
            lease.waiting.remove(&place);
            lease.due.pop_front();
            let held = u32::try_from(lease.due.len()).unwrap_or(u32::MAX);
            // Ask for the next lease before this one runs out, unless what is held already
            // covers the next lease span: no process hoards the fleet's future.
            let covered = lease
                .due
                .back()
                .is_some_and(|last| now.checked_add(LEASE_SPAN).is_some_and(|soon| *last > soon));
            if held <= self.lease_size / 2 && !covered && lease.refilling_since.is_none() {
                let want = self.lease_want(lease);
                lease.refilling_since = Some(now);
                drop(leases);
                if !self.spawn_refill(scope, want) {
                    self.lock().entry(scope).or_default().refilling_since = None;
                }
            }
            return None;
        }
        if let Some(until) = lease.blocked_until {
            if until > now {
                return Some(until);
            }
            lease.blocked_until = None;
        }
        match lease.refilling_since {
            Some(since) if since.checked_add(self.timeout).is_some_and(|end| end > now) => {
                Some(now.checked_add(RECHECK).unwrap_or(now))
            }
            // Overdue: the store is slower than its timeout, which the lease's task reports.
            Some(_) => {
                lease.waiting.remove(&place);
                self.stats.fallback();
                None
            }
            None => {
                let want = self.lease_want(lease);
                lease.refilling_since = Some(now);
                drop(leases);
                if self.spawn_refill(scope, want) {
                    Some(now.checked_add(RECHECK).unwrap_or(now))
                } else {
                    // No runtime to ask the store from: decide alone.
                    let mut leases = self.lock();
                    let lease = leases.entry(scope).or_default();
                    lease.refilling_since = None;
                    lease.waiting.remove(&place);
                    self.stats.fallback();
                    None
                }
            }
        }
    }

    /// Permits to ask for: as many as requests wait here, or about [`LEASE_SPAN`] of the
    /// scope's rate if that is more, at most the lease size.
    fn lease_want(&self, lease: &Lease) -> u32 {
        let waiting = u32::try_from(lease.waiting.len()).unwrap_or(u32::MAX);
        let span = match lease.recorded {
            Some(recorded) if recorded.per_second > 0.0 => {
                (recorded.per_second * LEASE_SPAN.as_secs_f64())
                    .ceil()
                    .min(f64::from(u32::MAX)) as u32
            }
            _ => self.lease_size,
        };
        waiting.max(span).clamp(1, self.lease_size)
    }

    /// Leases up to `want` permits in the background; false without a runtime.
    fn spawn_refill(self: &Arc<Self>, scope: ScopeKey, want: u32) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let fleet = Arc::clone(self);
        runtime.spawn(async move {
            let name = fleet.name(scope);
            let grant = guarded(
                "take permits",
                fleet.store.take_permits(&name, want),
                fleet.timeout,
                &fleet.health,
                &fleet.stats,
            )
            .await;
            let now = Instant::now();
            let mut leases = fleet.lock();
            let lease = leases.entry(scope).or_default();
            lease.refilling_since = None;
            let Some(grant) = grant else { return };
            if !grant.known {
                // The store does not pace this scope (yet, or any more): record it again at
                // the next answer.
                lease.recorded = None;
            }
            if grant.granted > 0 {
                let mut at = now.checked_add(grant.wait).unwrap_or(now);
                for _ in 0..grant.granted {
                    lease.due.push_back(at);
                    at = at.checked_add(grant.interval).unwrap_or(at);
                }
                lease.blocked_until = None;
            } else {
                lease.blocked_until = now.checked_add(grant.wait).max(now.checked_add(RECHECK));
            }
        });
        true
    }

    fn spawn_return(&self, scope: ScopeKey, count: u32) {
        if count == 0 {
            return;
        }
        self.spawn_op("return permits", scope, move |store, name| {
            store.return_permits(name, count)
        });
    }

    /// The request at `place` left the line without its permit.
    pub(crate) fn forget(&self, scope: ScopeKey, place: u64) {
        if let Some(lease) = self.lock().get_mut(&scope) {
            lease.waiting.remove(&place);
        }
    }

    /// Records the scope's request limit for the fleet: when it changed, when the provider
    /// reports much less left than last recorded (requests sent before the fleet knew the
    /// scope, or by clients outside it), or every [`RECORD_EVERY`] to keep it alive.
    pub(crate) fn record(&self, scope: ScopeKey, per_second: f64, burst: f64, remaining: f64) {
        if !(per_second.is_finite() && per_second > 0.0 && burst.is_finite() && burst > 0.0) {
            return;
        }
        let now = Instant::now();
        {
            let mut leases = self.lock();
            let lease = leases.entry(scope).or_default();
            let margin = f64::from(self.lease_size).max(burst * 0.05);
            let fresh = lease.recorded.is_some_and(|last| {
                last.per_second == per_second
                    && last.burst == burst
                    && remaining >= last.left - margin
                    && last
                        .at
                        .checked_add(RECORD_EVERY)
                        .is_some_and(|next| next > now)
            });
            if fresh {
                return;
            }
            lease.recorded = Some(Recorded {
                per_second,
                burst,
                left: remaining,
                at: now,
            });
        }
        if !self.health.usable(now) {
            return;
        }
        // Kept while a full refill could still matter, at least a minute, at most a day.
        let keep_for = Duration::try_from_secs_f64(2.0 * burst / per_second)
            .unwrap_or(Duration::MAX)
            .clamp(Duration::from_secs(60), Duration::from_secs(86_400));
        let limit = SharedLimit {
            // A little under the provider's rate: the fleet's permits are spaced exactly, and
            // one that reaches the provider a little early must not find its bucket empty.
            per_second: per_second * RATE_MARGIN,
            burst,
            remaining: remaining.max(0.0),
            keep_for,
        };
        self.spawn_op("record a limit", scope, move |store, name| {
            store.record_limit(name, limit)
        });
    }

    /// Makes the whole fleet wait `wait` in this scope (a 429 or 503 with a wait). The permits
    /// this process holds go back first (they were reserved for sends the cooldown stops), then
    /// the cooldown empties the bucket.
    pub(crate) fn cool_down(&self, scope: ScopeKey, wait: Duration) {
        let now = Instant::now();
        let held = {
            let mut leases = self.lock();
            let lease = leases.entry(scope).or_default();
            lease.blocked_until = lease.blocked_until.max(now.checked_add(wait));
            let held = u32::try_from(lease.due.len()).unwrap_or(u32::MAX);
            lease.due.clear();
            held
        };
        if !self.health.usable(now) {
            return;
        }
        self.spawn_op("set a cooldown", scope, move |store, name| {
            Box::pin(async move {
                if held > 0 {
                    store.return_permits(name, held).await?;
                }
                store.set_cooldown(name, wait).await
            })
        });
    }

    fn spawn_op<F>(&self, what: &'static str, scope: ScopeKey, operation: F)
    where
        F: for<'a> FnOnce(&'a dyn StateStore, &'a str) -> crate::store::StoreFuture<'a, ()>
            + Send
            + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = Arc::clone(&self.store);
        let (name, timeout) = (self.name(scope), self.timeout);
        let (health, stats) = (Arc::clone(&self.health), Arc::clone(&self.stats));
        runtime.spawn(async move {
            let _ = guarded(what, operation(&*store, &name), timeout, &health, &stats).await;
        });
    }
}
