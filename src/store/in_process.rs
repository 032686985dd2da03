//! [`InProcessStore`]: the shared state kept in this process.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{BudgetPolicy, Grant, SharedLimit, StateStore, StoreFuture};

/// The shared state in this process, behind a mutex: for several independent stacks in one
/// process that call one provider with one key, and for tests. Time is tokio's, so it follows a
/// paused clock. Entries unused for their `keep_for` are forgotten, as Redis expires them.
pub struct InProcessStore {
    state: Mutex<State>,
    /// The instant budget slots count from.
    epoch: Instant,
}

impl Default for InProcessStore {
    fn default() -> Self {
        InProcessStore {
            state: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    budgets: HashMap<String, Budget>,
    /// Per scope whose limit is unknown: the permits handed out to learn it, and when the
    /// last was.
    probes: HashMap<String, (u32, Instant)>,
}

/// How long the count of permits handed out for an unknown scope is kept: far longer than an
/// answer takes.
const PROBE_MEMORY: Duration = Duration::from_secs(10);

struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    cool_until: Option<Instant>,
    keep_for: Duration,
}

impl Bucket {
    /// Refills to `now`.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + self.per_second * elapsed).min(self.burst);
        self.at = now;
    }

    fn expired(&self, now: Instant) -> bool {
        self.at
            .checked_add(self.keep_for)
            .is_some_and(|end| end < now)
    }
}

/// A budget's window, in ten slots.
struct Budget {
    /// Per slot: its index since the store's epoch, deposits, withdrawals.
    slots: Vec<(u64, f64, f64)>,
}

const SLOTS: u32 = 10;

impl InProcessStore {
    /// An empty store.
    pub fn new() -> Self {
        InProcessStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for InProcessStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InProcessStore")
            .field("scopes", &state.buckets.len())
            .field("budgets", &state.budgets.len())
            .finish()
    }
}

/// `secs` as a wait: zero for none or a negative, capped at a day.
fn seconds(secs: f64) -> Duration {
    if secs.is_finite() && secs > 0.0 {
        Duration::try_from_secs_f64(secs.min(86_400.0)).unwrap_or(Duration::ZERO)
    } else {
        Duration::ZERO
    }
}

/// The slot `now` falls in, for a window of `window`, and the oldest slot still in it.
fn slot_of(now: Instant, epoch: Instant, window: Duration) -> (u64, u64) {
    let slot_nanos = (window.as_nanos() / u128::from(SLOTS)).max(1);
    let slot = (now.saturating_duration_since(epoch).as_nanos() / slot_nanos) as u64;
    (slot, slot.saturating_sub(u64::from(SLOTS) - 1))
}

impl Budget {
    /// Deposits and withdrawals within the window, after dropping older slots.
    fn totals(&mut self, oldest: u64) -> (f64, f64) {
        self.slots.retain(|(slot, _, _)| *slot >= oldest);
        self.slots
            .iter()
            .fold((0.0, 0.0), |(d, w), (_, sd, sw)| (d + sd, w + sw))
    }

    fn slot_mut(&mut self, slot: u64) -> &mut (u64, f64, f64) {
        if let Some(index) = self.slots.iter().position(|(s, _, _)| *s == slot) {
            return &mut self.slots[index];
        }
        self.slots.push((slot, 0.0, 0.0));
        let last = self.slots.len() - 1;
        &mut self.slots[last]
    }
}

impl StateStore for InProcessStore {
    fn take_permits(&self, scope: &str, want: u32) -> StoreFuture<'_, Grant> {
        let now = Instant::now();
        let mut state = self.lock();
        let grant = match state.buckets.get_mut(scope) {
            Some(bucket) if !bucket.expired(now) => {
                bucket.refill(now);
                let wanted = f64::from(want);
                match bucket.cool_until.filter(|until| *until > now) {
                    Some(until) => Grant {
                        granted: 0,
                        wait: until - now,
                        interval: Duration::ZERO,
                        known: true,
                    },
                    None => {
                        // Reserved at most a bucket ahead.
                        let room = (bucket.tokens + bucket.burst).floor();
                        if room < 1.0 {
                            Grant {
                                granted: 0,
                                wait: seconds((1.0 - room) / bucket.per_second),
                                interval: Duration::ZERO,
                                known: true,
                            }
                        } else {
                            let granted = wanted.min(room);
                            // The first is covered once the bucket holds one.
                            // (All at once when the bucket holds them all.)
                            let first = seconds((1.0 - bucket.tokens) / bucket.per_second);
                            let interval = if bucket.tokens >= granted {
                                Duration::ZERO
                            } else {
                                seconds(1.0 / bucket.per_second)
                            };
                            bucket.tokens -= granted;
                            Grant {
                                granted: granted as u32,
                                wait: first,
                                interval,
                                known: true,
                            }
                        }
                    }
                }
            }
            // Unknown: one permit, to learn the limit from its answer; counted, so that the
            // first record knows how many such answers may still be on their way.
            _ => {
                if want >= 1 {
                    let probes = state.probes.entry(scope.to_owned()).or_insert((0, now));
                    *probes = (probes.0.saturating_add(1), now);
                }
                Grant {
                    granted: want.min(1),
                    wait: Duration::ZERO,
                    interval: Duration::ZERO,
                    known: false,
                }
            }
        };
        Box::pin(async move { Ok(grant) })
    }

    fn return_permits(&self, scope: &str, count: u32) -> StoreFuture<'_, ()> {
        let now = Instant::now();
        if let Some(bucket) = self.lock().buckets.get_mut(scope) {
            bucket.refill(now);
            bucket.tokens = (bucket.tokens + f64::from(count)).min(bucket.burst);
        }
        Box::pin(async { Ok(()) })
    }

    fn record_limit(&self, scope: &str, limit: SharedLimit) -> StoreFuture<'_, ()> {
        let now = Instant::now();
        let mut state = self.lock();
        state.buckets.retain(|_, bucket| !bucket.expired(now));
        state
            .probes
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < PROBE_MEMORY);
        // The other permits handed out while the limit was unknown may reach the provider
        // after this answer was counted: a new bucket owes them.
        let probes = state.probes.remove(scope).map_or(0, |(count, _)| count);
        let owed = f64::from(probes.saturating_sub(1));
        let bucket = state
            .buckets
            .entry(scope.to_owned())
            .or_insert_with(|| Bucket {
                per_second: limit.per_second,
                burst: limit.burst,
                // A new bucket starts from what the provider says is left.
                tokens: (limit.remaining - owed).clamp(0.0, limit.burst),
                at: now,
                cool_until: None,
                keep_for: limit.keep_for,
            });
        // Refilled at the lower of the two rates: a first estimate too high must not have
        // refilled the bucket faster than the provider's.
        bucket.per_second = bucket.per_second.min(limit.per_second);
        bucket.refill(now);
        bucket.per_second = limit.per_second;
        bucket.burst = limit.burst;
        bucket.keep_for = limit.keep_for;
        bucket.tokens = bucket.tokens.min(limit.remaining).min(limit.burst);
        Box::pin(async { Ok(()) })
    }

    fn set_cooldown(&self, scope: &str, wait: Duration) -> StoreFuture<'_, ()> {
        let now = Instant::now();
        if let Some(bucket) = self.lock().buckets.get_mut(scope) {
            let until = now.checked_add(wait);
            bucket.cool_until = bucket.cool_until.max(until);
            // The provider has nothing left: neither has the bucket (it had drifted above);
            // permits reserved ahead stay reserved.
            bucket.refill(now);
            bucket.tokens = bucket.tokens.min(0.0);
        }
        Box::pin(async { Ok(()) })
    }

    fn deposit(&self, budget: &str, successes: u32, policy: BudgetPolicy) -> StoreFuture<'_, ()> {
        let (slot, _) = slot_of(Instant::now(), self.epoch, policy.window);
        let mut state = self.lock();
        let entry = state
            .budgets
            .entry(budget.to_owned())
            .or_insert_with(|| Budget { slots: Vec::new() });
        entry.slot_mut(slot).1 += f64::from(successes);
        Box::pin(async { Ok(()) })
    }

    fn withdraw(&self, budget: &str, want: u32, policy: BudgetPolicy) -> StoreFuture<'_, u32> {
        let (slot, oldest) = slot_of(Instant::now(), self.epoch, policy.window);
        let mut state = self.lock();
        let entry = state
            .budgets
            .entry(budget.to_owned())
            .or_insert_with(|| Budget { slots: Vec::new() });
        let (deposits, withdrawals) = entry.totals(oldest);
        let allowed = policy.floor + policy.ratio * deposits - withdrawals;
        let granted = (allowed.floor().max(0.0) as u32).min(want);
        entry.slot_mut(slot).2 += f64::from(granted);
        Box::pin(async move { Ok(granted) })
    }
}
