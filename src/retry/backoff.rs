//! Exponential backoff with jitter, and the random source it draws from.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How randomness spreads the delays of clients that failed together, as in the AWS
/// Architecture Blog's "Exponential Backoff And Jitter".
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jitter {
    /// `random(0, min(max, base * 2^n))`: the least contention; the default.
    #[default]
    Full,
    /// `d / 2 + random(0, d / 2)` with `d = min(max, base * 2^n)`: never less than half.
    Equal,
    /// `min(max, random(base, previous * 3))`: grows from the previous delay.
    Decorrelated,
    /// `min(max, base * 2^n)`: no randomness.
    None,
}

/// A source of uniform random numbers in `[0, 1)`. Inject one to make delays reproducible.
pub trait RandomSource: Send + Sync + 'static {
    /// The next number, uniform in `[0, 1)`.
    fn next_unit(&self) -> f64;
}

/// The default source: a fast, thread-local, non-cryptographic generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadRandom;

impl RandomSource for ThreadRandom {
    fn next_unit(&self) -> f64 {
        fastrand::f64()
    }
}

/// Exponential backoff between a minimum and a maximum delay.
///
/// Retry `n` (1 for the first retry) waits according to [`Jitter`] around `base * 2^(n-1)`,
/// capped at `max`. Defaults: 500 ms base, 8 s max, full jitter.
#[derive(Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
    random: Arc<dyn RandomSource>,
}

impl Backoff {
    /// Backoff from `base` up to `max` with full jitter.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            jitter: Jitter::Full,
            random: Arc::new(ThreadRandom),
        }
    }

    /// Uses this jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Draws randomness from this source.
    pub fn random_source(mut self, random: impl RandomSource) -> Self {
        self.random = Arc::new(random);
        self
    }

    /// The smallest exponential step.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The largest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay before retry number `retry` (1 for the first retry), given the previous delay
    /// (used by decorrelated jitter; zero before the first retry).
    pub fn delay(&self, retry: u32, previous: Duration) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let ceiling = self
            .base
            .checked_mul(1u32 << exponent)
            .map_or(self.max, |d| d.min(self.max));
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => scale(ceiling, self.unit()),
            Jitter::Equal => {
                let half = ceiling / 2;
                half.saturating_add(scale(half, self.unit()))
            }
            Jitter::Decorrelated => {
                let previous = previous.max(self.base);
                let upper = previous.saturating_mul(3).min(self.max).max(self.base);
                let span = upper - self.base;
                self.base
                    .saturating_add(scale(span, self.unit()))
                    .min(self.max)
            }
        }
    }

    /// The random source's next number, forced into `[0, 1]`: a source that returns NaN, a
    /// negative number or more than one cannot push a delay outside its bounds.
    fn unit(&self) -> f64 {
        let unit = self.random.next_unit();
        if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// `duration × unit` for `unit` in `[0, 1]`, never above `duration`: `Duration::mul_f64` would
/// panic where rounding carries a product near `Duration::MAX` past it.
fn scale(duration: Duration, unit: f64) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * unit)
        .map_or(duration, |scaled| scaled.min(duration))
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(8))
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("base", &self.base)
            .field("max", &self.max)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
/// A source that replays a fixed sequence, cycling.
#[derive(Debug)]
pub(crate) struct SequenceRandom {
    values: Vec<f64>,
    next: std::sync::Mutex<usize>,
}

#[cfg(test)]
impl SequenceRandom {
    /// Replays `values` (clamped into `[0, 1)`) in order, from the start again when exhausted.
    /// An empty sequence always yields 0.
    pub(crate) fn new(values: impl Into<Vec<f64>>) -> Self {
        SequenceRandom {
            values: values.into(),
            next: std::sync::Mutex::new(0),
        }
    }
}

#[cfg(test)]
impl RandomSource for SequenceRandom {
    fn next_unit(&self) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let value = self.values[*next % self.values.len()];
        *next = next.wrapping_add(1);
        if value.is_finite() {
            value.clamp(0.0, 1.0 - f64::EPSILON)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn backoff(jitter: Jitter, random: &[f64]) -> Backoff {
        Backoff::new(MS(500), MS(8000))
            .jitter(jitter)
            .random_source(SequenceRandom::new(random.to_vec()))
    }

    #[test]
    fn no_jitter_doubles_up_to_the_max() {
        let b = backoff(Jitter::None, &[]);
        let delays: Vec<_> = (1..=7).map(|n| b.delay(n, Duration::ZERO)).collect();
        assert_eq!(
            delays,
            [
                MS(500),
                MS(1000),
                MS(2000),
                MS(4000),
                MS(8000),
                MS(8000),
                MS(8000)
            ]
        );
        assert_eq!(b.delay(u32::MAX, Duration::ZERO), MS(8000));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let low = backoff(Jitter::Full, &[0.0]);
        let high = backoff(Jitter::Full, &[0.999_999]);
        for n in 1..=6 {
            let ceiling = backoff(Jitter::None, &[]).delay(n, Duration::ZERO);
            assert_eq!(low.delay(n, Duration::ZERO), Duration::ZERO);
            let top = high.delay(n, Duration::ZERO);
            assert!(
                top < ceiling && top > ceiling.mul_f64(0.999),
                "{n}: {top:?}"
            );
        }
        assert_eq!(
            backoff(Jitter::Full, &[0.5]).delay(3, Duration::ZERO),
            MS(1000)
        );
    }

    #[test]
    fn equal_jitter_never_goes_below_half() {
        for n in 1..=6 {
            let ceiling = backoff(Jitter::None, &[]).delay(n, Duration::ZERO);
            assert_eq!(
                backoff(Jitter::Equal, &[0.0]).delay(n, Duration::ZERO),
                ceiling / 2
            );
            let top = backoff(Jitter::Equal, &[0.999_999]).delay(n, Duration::ZERO);
            assert!(top >= ceiling / 2 && top < ceiling);
        }
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay() {
        let b = backoff(Jitter::Decorrelated, &[0.0]);
        assert_eq!(b.delay(1, Duration::ZERO), MS(500));
        let b = backoff(Jitter::Decorrelated, &[0.999_999]);
        let first = b.delay(1, Duration::ZERO);
        assert!(first > MS(1499) && first <= MS(1500), "{first:?}");
        let second = b.delay(2, first);
        assert!(second > MS(4490) && second <= MS(4500), "{second:?}");
        assert_eq!(b.delay(3, second), MS(8000).min(b.delay(3, second)));
        assert!(b.delay(9, MS(8000)) <= MS(8000));
    }

    #[test]
    fn random_source_is_clamped_and_cycles() {
        let r = SequenceRandom::new(vec![2.0, -1.0, f64::NAN]);
        assert!(r.next_unit() < 1.0);
        assert_eq!(r.next_unit(), 0.0);
        assert_eq!(r.next_unit(), 0.0);
        assert!(r.next_unit() < 1.0);
    }

    /// A source that breaks its contract, returning `value` every time.
    struct Broken(f64);

    impl RandomSource for Broken {
        fn next_unit(&self) -> f64 {
            self.0
        }
    }

    #[test]
    fn a_broken_random_source_or_huge_bounds_never_panic_or_pass_the_ceiling() {
        let bounds = [
            (MS(500), MS(8000)),
            (Duration::MAX, Duration::MAX),
            (MS(1), Duration::MAX),
        ];
        let values = [
            f64::NAN,
            -1.0,
            2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.999_999_999,
        ];
        for (base, max) in bounds {
            for value in values {
                for jitter in [
                    Jitter::Full,
                    Jitter::Equal,
                    Jitter::Decorrelated,
                    Jitter::None,
                ] {
                    let b = Backoff::new(base, max)
                        .jitter(jitter)
                        .random_source(Broken(value));
                    let mut previous = Duration::ZERO;
                    for retry in [1, 2, 3, 40, u32::MAX] {
                        let delay = b.delay(retry, previous);
                        assert!(
                            delay <= max,
                            "{base:?}..{max:?} {value} {jitter:?}: {delay:?}"
                        );
                        previous = delay;
                    }
                }
            }
        }
    }
}
