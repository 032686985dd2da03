//! A retry budget shared by every clone of a service, so that an outage is not multiplied.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{
    guarded, BudgetPolicy, Health, StatCounters, StateStore, StoreStats, DEFAULT_STORE_TIMEOUT,
};

/// Caps retries to a fraction of recent traffic plus a small floor, like Finagle's and Envoy's
/// retry budgets.
///
/// Every successful attempt deposits one token; every retry withdraws one. Over a sliding
/// window (`ttl`), retries may reach `retry_ratio` × successes + `min_per_second` × `ttl`
/// seconds. When the budget is spent, failures are returned without retrying. Cloning a budget
/// shares it: all clones of a [`Retry`](super::Retry) service draw on the same budget.
///
/// Earning on successes, as gRPC's retry throttling does, means that a server failing every
/// request is retried only at the floor: a storm is not amplified, while a healthy mix with
/// occasional failures keeps its retries. Retries that wait for a limit the server explained
/// (its wait on a 429, 503 or 529, or the [`Pacer`](crate::pacing::Pacer)'s turn) do not draw on
/// the budget while pacing is on.
///
/// Defaults: 20% of successes, 10 retries per second of floor, a 10 s window.
#[derive(Clone)]
pub struct RetryBudget {
    shared: Arc<Shared>,
}

/// Counts in equal time slices ("slots") of the window. Deposits, on every success, take no
/// lock: a relaxed add to the current slot. Moving the window on and withdrawing, which only
/// retries do, take the lock, so concurrent retries never overdraw the budget.
struct Shared {
    ratio: f64,
    floor: f64,
    origin: Instant,
    slot_nanos: u64,
    /// Slot index (since `origin`) the counters describe.
    epoch: AtomicU64,
    deposits: [AtomicU64; SLOTS],
    withdrawals: [AtomicU64; SLOTS],
    lock: Mutex<()>,
    /// The fleet this budget is shared with, if any.
    fleet: Option<Arc<FleetBudget>>,
}

/// A budget's fleet side: successes reported in batches, retries leased one at a time.
struct FleetBudget {
    store: Arc<dyn StateStore>,
    name: String,
    policy: BudgetPolicy,
    timeout: Duration,
    /// Successes not yet reported.
    unreported: AtomicU64,
    /// When successes were last reported.
    reported_at: Mutex<Instant>,
    reporting: AtomicBool,
    /// Retries leased from the fleet and not used.
    leased: AtomicU64,
    leasing: AtomicBool,
    /// The fleet refused a retry: refuse until then (a tenth of the window) without asking.
    spent_until: Mutex<Option<Instant>>,
    health: Arc<Health>,
    stats: Arc<StatCounters>,
}

/// Successes are reported at most this often.
const REPORT_EVERY: Duration = Duration::from_millis(250);

const SLOTS: usize = 10;

impl RetryBudget {
    /// A budget allowing retries up to `retry_ratio` of the successes seen within `ttl`, plus
    /// `min_per_second` retries per second.
    ///
    /// `retry_ratio` is clamped into `[0, 1000]`; `ttl` into `[1 s, 60 s]`.
    pub fn new(ttl: Duration, min_per_second: u32, retry_ratio: f64) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if retry_ratio.is_finite() {
            retry_ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        RetryBudget {
            shared: Arc::new(Shared {
                ratio,
                floor: f64::from(min_per_second) * ttl.as_secs_f64(),
                origin: Instant::now(),
                slot_nanos: (ttl.as_nanos() / SLOTS as u128).max(1) as u64,
                epoch: AtomicU64::new(0),
                deposits: Default::default(),
                withdrawals: Default::default(),
                lock: Mutex::new(()),
                fleet: None,
            }),
        }
    }

    /// Shares this budget with every process that shares `store` and `name`: retries are
    /// counted against the successes and the retries of the whole fleet in the window, so a
    /// storm is bounded per key, not per process. Successes are reported in batches (at most
    /// every 250 ms) and retries leased one ahead as they are needed: a request costs no round
    /// trip, a retry at most one. Once the fleet refuses a retry, every retry is refused for a
    /// tenth of the window without asking. While a lease is on its way, and whenever the store
    /// fails, this process's own budget decides (see [`store`](crate::store)). Clones made
    /// before this call keep a budget of their own.
    pub fn share_through(self, store: Arc<dyn StateStore>, name: impl Into<String>) -> Self {
        let shared = &self.shared;
        let window = Duration::from_nanos(shared.slot_nanos.saturating_mul(SLOTS as u64));
        RetryBudget {
            shared: Arc::new(Shared {
                ratio: shared.ratio,
                floor: shared.floor,
                origin: shared.origin,
                slot_nanos: shared.slot_nanos,
                epoch: AtomicU64::new(0),
                deposits: Default::default(),
                withdrawals: Default::default(),
                lock: Mutex::new(()),
                fleet: Some(Arc::new(FleetBudget {
                    store,
                    name: name.into(),
                    policy: BudgetPolicy {
                        ratio: shared.ratio,
                        floor: shared.floor,
                        window,
                    },
                    timeout: DEFAULT_STORE_TIMEOUT,
                    unreported: AtomicU64::new(0),
                    reported_at: Mutex::new(Instant::now()),
                    reporting: AtomicBool::new(false),
                    leased: AtomicU64::new(0),
                    leasing: AtomicBool::new(false),
                    spent_until: Mutex::new(None),
                    health: Arc::default(),
                    stats: Arc::default(),
                })),
            }),
        }
    }

    /// How this budget used its store: round trips, failures, decisions taken alone. `None`
    /// without [`share_through`](Self::share_through).
    pub fn store_stats(&self) -> Option<StoreStats> {
        self.shared
            .fleet
            .as_ref()
            .map(|fleet| fleet.stats.snapshot())
    }

    /// A budget that never refuses a retry (the attempt limit and deadline still apply).
    pub fn unlimited() -> Self {
        RetryBudget::new(Duration::from_secs(1), u32::MAX, 1000.0)
    }

    /// Records one success, which earns `retry_ratio` of a retry.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// Records one success at `now`.
    pub(crate) fn deposit_at(&self, now: Instant) {
        let slot = self.shared.catch_up(now);
        self.shared.deposits[slot].fetch_add(1, Ordering::Relaxed);
        if let Some(fleet) = &self.shared.fleet {
            fleet.unreported.fetch_add(1, Ordering::Relaxed);
            fleet.report(now);
        }
    }

    /// Takes one retry from the budget, if it allows one.
    pub fn withdraw(&self) -> bool {
        if let Some(fleet) = &self.shared.fleet {
            if let Some(allowed) = fleet.withdraw(Instant::now()) {
                return allowed;
            }
        }
        self.withdraw_here()
    }

    /// Takes one retry from this process's own budget, if it allows one.
    fn withdraw_here(&self) -> bool {
        let shared = &*self.shared;
        let _guard = shared
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = shared.catch_up_locked(Instant::now());
        if (shared.withdrawn() as f64) + 1.0 <= shared.allowed() {
            shared.withdrawals[slot].fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Retries the budget would allow right now.
    pub fn remaining(&self) -> u64 {
        let shared = &*self.shared;
        let _guard = shared
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.catch_up_locked(Instant::now());
        let allowed = shared.allowed().min(u64::MAX as f64) as u64;
        allowed.saturating_sub(shared.withdrawn())
    }
}

impl FleetBudget {
    /// Reports the successes counted since the last report, if that was a while ago.
    fn report(self: &Arc<Self>, now: Instant) {
        {
            let last = self
                .reported_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last
                .checked_add(REPORT_EVERY)
                .is_some_and(|next| next > now)
            {
                return;
            }
        }
        if !self.health.usable(now) || self.reporting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reporting.store(false, Ordering::Release);
            return;
        };
        *self
            .reported_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
        let count = self.unreported.swap(0, Ordering::AcqRel);
        let fleet = Arc::clone(self);
        runtime.spawn(async move {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            let sent = guarded(
                "report successes",
                fleet.store.deposit(&fleet.name, count, fleet.policy),
                fleet.timeout,
                &fleet.health,
                &fleet.stats,
            )
            .await;
            if sent.is_none() {
                // Not lost: reported with the next batch once the store answers.
                fleet
                    .unreported
                    .fetch_add(u64::from(count), Ordering::Relaxed);
            }
            fleet.reporting.store(false, Ordering::Release);
        });
    }

    /// The fleet's word on one retry: `None` when it has none yet (the store is unavailable,
    /// or the lease is on its way), and this process decides alone.
    fn withdraw(self: &Arc<Self>, now: Instant) -> Option<bool> {
        if !self.health.usable(now) {
            self.stats.fallback();
            return None;
        }
        let spent = self
            .spent_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|until| until > now);
        if spent {
            return Some(false);
        }
        let taken = self
            .leased
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        // Lease the next retry now, for the next one to need it.
        self.lease(now);
        if taken {
            return Some(true);
        }
        self.stats.fallback();
        None
    }

    fn lease(self: &Arc<Self>, now: Instant) {
        if !self.health.usable(now) || self.leasing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.leasing.store(false, Ordering::Release);
            return;
        };
        let fleet = Arc::clone(self);
        runtime.spawn(async move {
            let granted = guarded(
                "lease a retry",
                fleet.store.withdraw(&fleet.name, 1, fleet.policy),
                fleet.timeout,
                &fleet.health,
                &fleet.stats,
            )
            .await;
            if let Some(granted) = granted {
                fleet.leased.fetch_add(u64::from(granted), Ordering::AcqRel);
                if granted == 0 {
                    // The fleet's budget is spent: refuse for a tenth of the window.
                    let until = Instant::now().checked_add(fleet.policy.window / 10);
                    *fleet
                        .spent_until
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = until;
                }
            }
            fleet.leasing.store(false, Ordering::Release);
        });
    }
}

impl Shared {
    fn epoch_of(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_nanos();
        (since / u128::from(self.slot_nanos)).min(u128::from(u64::MAX)) as u64
    }

    /// The slot of `now`, after clearing the slots that fell out of the window.
    fn catch_up(&self, now: Instant) -> usize {
        let epoch = self.epoch_of(now);
        if epoch <= self.epoch.load(Ordering::Acquire) {
            return (epoch % SLOTS as u64) as usize;
        }
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.catch_up_locked(now)
    }

    fn catch_up_locked(&self, now: Instant) -> usize {
        let epoch = self.epoch_of(now);
        let current = self.epoch.load(Ordering::Acquire);
        if epoch > current {
            let stale = (epoch - current).min(SLOTS as u64);
            for step in 0..stale {
                let slot = ((epoch - step) % SLOTS as u64) as usize;
                self.deposits[slot].store(0, Ordering::Relaxed);
                self.withdrawals[slot].store(0, Ordering::Relaxed);
            }
            self.epoch.store(epoch, Ordering::Release);
        }
        (epoch % SLOTS as u64) as usize
    }

    fn allowed(&self) -> f64 {
        let deposits: u64 = self
            .deposits
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum();
        self.floor + self.ratio * deposits as f64
    }

    fn withdrawn(&self) -> u64 {
        self.withdrawals
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .sum()
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("retry_ratio", &self.shared.ratio)
            .field("floor", &self.shared.floor)
            .field("remaining", &self.remaining())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn floor_then_ratio_then_refusal() {
        let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.5);
        // The floor: 1 per second over 10 s.
        for _ in 0..10 {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw(), "floor spent");
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw(), "50% of 4 requests spent");
    }

    #[tokio::test(start_paused = true)]
    async fn old_traffic_leaves_the_window() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
        budget.deposit();
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        tokio::time::advance(Duration::from_secs(11)).await;
        budget.deposit();
        assert!(
            budget.withdraw(),
            "the old withdrawal expired with its slot"
        );
        assert_eq!(budget.remaining(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
        let b = a.clone();
        a.deposit();
        assert!(b.withdraw());
        assert!(!a.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_refuses() {
        let budget = RetryBudget::unlimited();
        for _ in 0..10_000 {
            assert!(budget.withdraw());
        }
    }
}
