//! A retry budget shared by every clone of a service, so that an outage is not multiplied.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Caps retries to a fraction of recent traffic plus a small floor, like Finagle's and Envoy's
/// retry budgets.
///
/// Every logical request deposits one token; every retry withdraws one. Over a sliding window
/// (`ttl`), retries may reach `retry_ratio` × requests + `min_per_second` × `ttl` seconds. When
/// the budget is spent, failures are returned without retrying. Cloning a budget shares it: all
/// clones of a [`Retry`](super::Retry) service draw on the same budget.
///
/// Defaults: 20% of requests, 10 retries per second of floor, a 10 s window. Under a storm of
/// 429s that means at most about 1.2 attempts per request once traffic exceeds the floor.
#[derive(Clone)]
pub struct RetryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    ratio: f64,
    floor: f64,
    bucket_width: Duration,
    state: Mutex<Window>,
}

/// Deposits and withdrawals in equal time slices of the window, oldest first.
struct Window {
    start: Instant,
    slot: usize,
    deposits: [u64; SLOTS],
    withdrawals: [u64; SLOTS],
}

const SLOTS: usize = 10;

impl RetryBudget {
    /// A budget allowing retries up to `retry_ratio` of the requests seen within `ttl`, plus
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
                bucket_width: ttl / SLOTS as u32,
                state: Mutex::new(Window {
                    start: Instant::now(),
                    slot: 0,
                    deposits: [0; SLOTS],
                    withdrawals: [0; SLOTS],
                }),
            }),
        }
    }

    /// A budget that never refuses a retry (the attempt limit and deadline still apply).
    pub fn unlimited() -> Self {
        RetryBudget::new(Duration::from_secs(1), u32::MAX, 1000.0)
    }

    /// Records one logical request.
    pub fn deposit(&self) {
        self.with_window(|window| window.deposits[window.slot] += 1);
    }

    /// Takes one retry from the budget, if it allows one.
    pub fn withdraw(&self) -> bool {
        let (ratio, floor) = (self.shared.ratio, self.shared.floor);
        self.with_window(|window| {
            let deposits: u64 = window.deposits.iter().sum();
            let withdrawals: u64 = window.withdrawals.iter().sum();
            let allowed = floor + ratio * deposits as f64;
            if (withdrawals as f64) + 1.0 <= allowed {
                window.withdrawals[window.slot] += 1;
                true
            } else {
                false
            }
        })
    }

    /// Retries the budget would allow right now.
    pub fn remaining(&self) -> u64 {
        let (ratio, floor) = (self.shared.ratio, self.shared.floor);
        self.with_window(|window| {
            let deposits: u64 = window.deposits.iter().sum();
            let withdrawals: u64 = window.withdrawals.iter().sum();
            let allowed = (floor + ratio * deposits as f64).min(u64::MAX as f64) as u64;
            allowed.saturating_sub(withdrawals)
        })
    }

    fn with_window<T>(&self, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut window = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        window.advance(Instant::now(), self.shared.bucket_width);
        f(&mut window)
    }
}

impl Window {
    /// Moves to the slot of `now`, clearing the slots that fell out of the window.
    fn advance(&mut self, now: Instant, width: Duration) {
        let elapsed = now.saturating_duration_since(self.start);
        let steps = (elapsed.as_nanos() / width.as_nanos().max(1)) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(SLOTS) {
            self.slot = (self.slot + 1) % SLOTS;
            self.deposits[self.slot] = 0;
            self.withdrawals[self.slot] = 0;
        }
        self.start += width * steps.min(u32::MAX as usize) as u32;
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
