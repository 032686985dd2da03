//! One scope's model of its provider's limits: a bucket per announced limit, the shared
//! cooldown and the overload breaker. Pure state; time comes in as arguments.
//!
//! Requests take positions in a first-come first-served line: a request's position in a
//! bucket is the running total of the costs admitted so far, its own included. An answer to
//! the request at position `p` that says `remaining = R` anchors the bucket: positions up to
//! `p + R` may go at once, and later ones as the bucket refills at its rate. Requests admitted
//! after `p` (in flight or queued) are counted against `R` by construction, since their
//! positions lie beyond `p`: the answer could not have seen them.

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use super::announced::{AnnouncedLimit, Family, Unit};

/// Where a request stands in its scope's line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Position {
    /// The running count of requests, this one included.
    pub(crate) requests: f64,
    /// The running total of token costs, this one included.
    pub(crate) tokens: f64,
    /// This request's token cost.
    pub(crate) token_cost: f64,
}

impl Position {
    /// The place in line, as a whole number.
    pub(crate) fn place(&self) -> u64 {
        self.requests.max(0.0) as u64
    }

    fn of(&self, unit: Unit) -> (f64, f64) {
        match unit {
            Unit::Requests => (self.requests, 1.0),
            Unit::Tokens => (self.tokens, self.token_cost),
        }
    }
}

/// Windows providers count limits over. An implied window within 10% of one of these is taken
/// to be it, which undoes the rounding of resets sent to the second.
const COMMON_WINDOWS: [f64; 5] = [1.0, 10.0, 60.0, 3600.0, 86_400.0];

/// One announced limit's model.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub(crate) name: Cow<'static, str>,
    pub(crate) unit: Unit,
    /// The limit, when announced.
    pub(crate) limit: Option<f64>,
    /// Refill per second; 0 while unknown.
    pub(crate) rate: f64,
    anchor_time: Instant,
    anchor_position: f64,
    anchor_level: f64,
    reset_at: Option<Instant>,
}

impl Bucket {
    fn new(name: Cow<'static, str>, unit: Unit, now: Instant, position: f64) -> Self {
        Bucket {
            name,
            unit,
            limit: None,
            rate: 0.0,
            anchor_time: now,
            anchor_position: position,
            anchor_level: f64::INFINITY,
            reset_at: None,
        }
    }

    /// What is left for positions after `position` at `now`: may be negative (a line waits).
    pub(crate) fn level(&self, position: f64, now: Instant) -> f64 {
        let refill = self.rate
            * now
                .saturating_duration_since(self.anchor_time)
                .as_secs_f64();
        self.anchor_level + refill - (position - self.anchor_position)
    }

    /// Caps an idle bucket's refill at its limit, so that a long quiet spell does not allow a
    /// burst larger than the limit.
    fn settle(&mut self, position: f64, now: Instant) {
        let Some(limit) = self.limit else { return };
        if self.rate == 0.0 {
            if self.reset_at.is_some_and(|at| at <= now) {
                // Unknown refill: whole again at the reset.
                self.reset_at = None;
                self.anchor(now, position, limit);
            }
            return;
        }
        if self.level(position, now) > limit {
            self.anchor(now, position, limit);
        }
    }

    fn anchor(&mut self, now: Instant, position: f64, level: f64) {
        self.anchor_time = now;
        self.anchor_position = position;
        self.anchor_level = level;
    }

    /// When position `end` is covered: `None` for now.
    fn time_for(&self, end: f64, now: Instant) -> Option<Instant> {
        let short = end - self.anchor_position - self.anchor_level;
        if short <= 0.0 {
            return None;
        }
        let at = if self.rate > 0.0 {
            // A wait too long to represent is thirty years, as tokio's far future is.
            let far = Duration::from_secs(86_400 * 365 * 30);
            let wait = Duration::try_from_secs_f64(short / self.rate).map_or(far, |w| w.min(far));
            self.anchor_time
                .checked_add(wait)
                .or_else(|| now.checked_add(far))
                .unwrap_or(now)
        } else {
            self.reset_at?
        };
        (at > now).then_some(at)
    }

    /// Learns from an answer to the request at `position` (or, for `None`, to a request the
    /// pacer did not track, which may only lower the level).
    fn observe(
        &mut self,
        announced: &AnnouncedLimit,
        position: Option<f64>,
        current: f64,
        precision: Duration,
        now: Instant,
    ) {
        if let Some(limit) = announced.limit {
            if let Some(old) = self.limit.filter(|old| *old > 0.0 && *old != limit) {
                self.rate *= limit / old;
            }
            self.limit = Some(limit);
        } else if let Some(remaining) = announced.remaining {
            self.limit = Some(self.limit.unwrap_or(0.0).max(remaining));
        }
        let limit = self.limit.unwrap_or(0.0);
        let window = announced.window.filter(|w| !w.is_zero());
        if let Some(window) = window {
            // The server says its window: nothing to work out.
            self.rate = limit / window.as_secs_f64();
        } else if let (Some(remaining), Some(reset)) = (announced.remaining, announced.reset) {
            let reset_secs = reset.as_secs_f64();
            // Trust the reset only when its rounding, and that of `remaining` (a floor), are
            // small beside what they measure.
            let used = limit - remaining;
            if used >= (limit * 0.05).max(1.0)
                && reset_secs >= precision.as_secs_f64() * 10.0
                && reset_secs > 0.0
            {
                let window = reset_secs * limit / (limit - remaining);
                let window = COMMON_WINDOWS
                    .into_iter()
                    .find(|common| (window / common - 1.0).abs() <= 0.1)
                    .unwrap_or(window);
                self.rate = limit / window;
            }
        }
        if !self.rate.is_finite() {
            self.rate = 0.0;
        }
        if let (Some(reset), true) = (announced.reset, self.rate == 0.0) {
            // No better estimate yet: spread the limit over the time to the reset, rather than
            // release a burst at it.
            if limit > 0.0 && !reset.is_zero() {
                self.rate = limit / reset.as_secs_f64().max(1.0);
            }
        }
        if !self.rate.is_finite() {
            self.rate = 0.0;
        }
        if let Some(reset) = announced.reset {
            self.reset_at = now.checked_add(reset);
        }
        if let Some(remaining) = announced.remaining {
            match position {
                Some(position) => self.anchor(now, position, remaining),
                None => {
                    let level = self.level(current, now).min(remaining);
                    self.anchor(now, current, level);
                }
            }
        }
    }
}

/// The overload breaker: repeated 503/529 answers open it for a cooldown; then one probe goes
/// alone, and its answer closes or reopens it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Breaker {
    Closed {
        overloads: u32,
    },
    Open {
        until: Instant,
        open_for: Duration,
    },
    /// The probe out, until its lease ends (`None`: none out).
    HalfOpen {
        probing: Option<Instant>,
        open_for: Duration,
    },
}

/// How the overload breaker behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerConfig {
    pub(crate) open_after: u32,
    pub(crate) first_open: Duration,
    pub(crate) longest_open: Duration,
}

/// The most limits a scope tracks.
const MAX_BUCKETS: usize = 8;

/// While a probe is out, the rest of the line looks again this often.
const PROBE_RECHECK: Duration = Duration::from_millis(250);

/// How long a probe may be out before another request may probe: an answer that slow is no
/// better news than none.
pub(crate) const PROBE_LEASE: Duration = Duration::from_secs(30);

/// What the pacer reads from one answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    /// The header family the limits came in.
    pub(crate) family: Option<Family>,
    /// The limits it announced.
    pub(crate) limits: &'a [AnnouncedLimit],
    pub(crate) status: StatusCode,
    /// The server's wait, as the retry layer read it.
    pub(crate) wait: Option<Duration>,
}

/// The state of one scope.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) origin: Option<String>,
    /// The host, as the metrics' `server.address` label.
    pub(crate) address: Option<String>,
    pub(crate) buckets: Vec<Bucket>,
    /// Running totals of what was admitted.
    pub(crate) requests: f64,
    pub(crate) tokens: f64,
    /// The newest answered position, so that a late answer does not undo a newer one.
    answered: f64,
    pub(crate) cooldown_until: Option<Instant>,
    pub(crate) breaker: Breaker,
    pub(crate) queued: usize,
    pub(crate) in_flight: usize,
    pub(crate) last_used: Instant,
}

impl Scope {
    pub(crate) fn new(now: Instant) -> Self {
        Scope {
            origin: None,
            address: None,
            buckets: Vec::new(),
            requests: 0.0,
            tokens: 0.0,
            answered: 0.0,
            cooldown_until: None,
            breaker: Breaker::Closed { overloads: 0 },
            queued: 0,
            in_flight: 0,
            last_used: now,
        }
    }

    /// Takes the next position in line for a request costing `token_cost`.
    pub(crate) fn admit(&mut self, token_cost: f64, now: Instant) -> Position {
        // A request dearer than a token limit waits at most for the whole limit, not forever.
        let token_cost = self
            .buckets
            .iter()
            .filter(|b| b.unit == Unit::Tokens)
            .filter_map(|b| b.limit)
            .fold(token_cost, f64::min);
        for bucket in &mut self.buckets {
            let current = match bucket.unit {
                Unit::Requests => self.requests,
                Unit::Tokens => self.tokens,
            };
            bucket.settle(current, now);
        }
        self.requests += 1.0;
        self.tokens += token_cost;
        self.queued += 1;
        self.last_used = now;
        Position {
            requests: self.requests,
            tokens: self.tokens,
            token_cost,
        }
    }

    /// When the cooldown and every limit allow the request at `position`: `None` for now.
    fn limits_allow_at(&self, position: &Position, now: Instant) -> Option<Instant> {
        let mut at = self.cooldown_until.filter(|until| *until > now);
        for bucket in &self.buckets {
            let (end, _) = position.of(bucket.unit);
            at = at.max(bucket.time_for(end, now));
        }
        at
    }

    /// When the request at `position` may go, without taking the breaker's probe: `None` for
    /// now (or, half-open with no probe out, for as soon as it asks with [`Scope::ready_at`]).
    pub(crate) fn turn(&self, position: &Position, now: Instant) -> Option<Instant> {
        let at = self.limits_allow_at(position, now);
        match self.breaker {
            Breaker::Open { until, .. } if until > now => Some(at.map_or(until, |a| a.max(until))),
            Breaker::HalfOpen {
                probing: Some(lease),
                ..
            } if lease > now => {
                let recheck = now.checked_add(PROBE_RECHECK).unwrap_or(now).min(lease);
                Some(at.unwrap_or(now).max(recheck))
            }
            _ => at,
        }
    }

    /// When the request at `position` may go: `None` for now. `probe` says whether it holds
    /// the breaker's probe, and becomes true when it is given it: the first request whose turn
    /// has come after the breaker's cooldown, or after the last probe's lease ran out.
    pub(crate) fn ready_at(
        &mut self,
        position: &Position,
        probe: &mut bool,
        now: Instant,
    ) -> Option<Instant> {
        if *probe {
            // Its probe stands: only the limits and the cooldown apply.
            return self.limits_allow_at(position, now);
        }
        let at = self.turn(position, now);
        if at.is_some() {
            return at;
        }
        let open_for = match self.breaker {
            Breaker::Closed { .. } => return None,
            Breaker::Open { open_for, .. } | Breaker::HalfOpen { open_for, .. } => open_for,
        };
        *probe = true;
        self.breaker = Breaker::HalfOpen {
            probing: Some(now.checked_add(PROBE_LEASE).unwrap_or(now)),
            open_for,
        };
        None
    }

    /// Gives back a queued request's place. The last in line leaves no trace; a place in the
    /// middle stays as a gap, one turn lost, since moving it would move those before it too.
    pub(crate) fn release(&mut self, position: &Position) {
        if position.requests == self.requests {
            self.requests -= 1.0;
            self.tokens -= position.token_cost;
        }
    }

    /// The probe ended without an answer: let another request probe.
    pub(crate) fn probe_lost(&mut self) {
        if let Breaker::HalfOpen { open_for, .. } = self.breaker {
            self.breaker = Breaker::HalfOpen {
                probing: None,
                open_for,
            };
        }
    }

    /// Learns from an answer to the request at `position` (`None`: one the pacer did not
    /// track), which held the breaker's probe if `probe`.
    pub(crate) fn observe(
        &mut self,
        answer: &Answer<'_>,
        position: Option<&Position>,
        probe: bool,
        breaker: &BreakerConfig,
        now: Instant,
    ) {
        let Answer {
            family,
            limits,
            status,
            wait,
        } = *answer;
        self.last_used = now;
        let fresh = match position {
            Some(p) if p.requests >= self.answered => {
                self.answered = p.requests;
                true
            }
            Some(_) => false,
            None => true,
        };
        if fresh {
            let precision = match family {
                Some(Family::OpenAi) => Duration::from_millis(1),
                _ => Duration::from_secs(1),
            };
            for announced in limits {
                let index = match self.buckets.iter().position(|b| b.name == announced.name) {
                    Some(index) => index,
                    // A server that names a new limit on every answer is not believed past
                    // a few: state and metric labels stay bounded.
                    None if self.buckets.len() >= MAX_BUCKETS => continue,
                    None => {
                        let current = match announced.unit {
                            Unit::Requests => self.requests,
                            Unit::Tokens => self.tokens,
                        };
                        self.buckets.push(Bucket::new(
                            announced.name.clone(),
                            announced.unit,
                            now,
                            current,
                        ));
                        self.buckets.len() - 1
                    }
                };
                let bucket = &mut self.buckets[index];
                let (current, end) = match bucket.unit {
                    Unit::Requests => (self.requests, position.map(|p| p.requests)),
                    Unit::Tokens => (self.tokens, position.map(|p| p.tokens)),
                };
                bucket.observe(announced, end, current, precision, now);
            }
        }
        let code = status.as_u16();
        let overloaded = matches!(code, 503 | 529);
        if let Some(wait) = wait.filter(|_| matches!(code, 429 | 503 | 529)) {
            let until = now.checked_add(wait);
            self.cooldown_until = self.cooldown_until.max(until);
        }
        self.breaker = match (self.breaker, overloaded) {
            (Breaker::Closed { overloads }, true) => {
                let overloads = overloads.saturating_add(1);
                if overloads >= breaker.open_after {
                    let open_for = breaker.first_open.max(wait.unwrap_or_default());
                    open(open_for, now)
                } else {
                    Breaker::Closed { overloads }
                }
            }
            (Breaker::Closed { .. }, false) => Breaker::Closed { overloads: 0 },
            (Breaker::HalfOpen { open_for, .. }, true) if probe => {
                let open_for = open_for
                    .saturating_mul(2)
                    .min(breaker.longest_open)
                    .max(wait.unwrap_or_default());
                open(open_for, now)
            }
            (Breaker::HalfOpen { .. }, false) if probe => Breaker::Closed { overloads: 0 },
            (state, _) => state,
        };
    }

    /// Whether the scope holds nothing worth keeping: no request in line and no wait pending.
    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        self.queued == 0
            && self.in_flight == 0
            && self.cooldown_until.is_none_or(|until| until <= now)
            && !matches!(self.breaker, Breaker::Open { until, .. } if until > now)
    }
}

fn open(open_for: Duration, now: Instant) -> Breaker {
    Breaker::Open {
        until: now.checked_add(open_for).unwrap_or(now),
        open_for,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(remaining: f64, reset_ms: u64) -> AnnouncedLimit {
        AnnouncedLimit {
            name: "requests".into(),
            unit: Unit::Requests,
            limit: Some(600.0),
            remaining: Some(remaining),
            reset: Some(Duration::from_millis(reset_ms)),
            window: None,
        }
    }

    fn ok(limits: &[AnnouncedLimit]) -> Answer<'_> {
        Answer {
            family: Some(Family::OpenAi),
            limits,
            status: StatusCode::OK,
            wait: None,
        }
    }

    fn status(code: u16) -> Answer<'static> {
        Answer {
            family: None,
            limits: &[],
            status: StatusCode::from_u16(code).unwrap(),
            wait: None,
        }
    }

    fn breaker() -> BreakerConfig {
        BreakerConfig {
            open_after: 3,
            first_open: Duration::from_secs(1),
            longest_open: Duration::from_secs(30),
        }
    }

    #[test]
    fn an_exhausted_bucket_spreads_its_line_at_the_refill_rate() {
        let now = Instant::now();
        let mut scope = Scope::new(now);
        let first = scope.admit(1.0, now);
        let mut probe = false;
        assert_eq!(scope.ready_at(&first, &mut probe, now), None);
        // 600 a minute, none left, whole again in 60 s: 10 a second.
        scope.observe(
            &ok(&[limit(0.0, 60_000)]),
            Some(&first),
            false,
            &breaker(),
            now,
        );
        let times: Vec<_> = (0..3)
            .map(|_| {
                let p = scope.admit(1.0, now);
                scope.ready_at(&p, &mut probe, now).unwrap() - now
            })
            .collect();
        assert_eq!(
            times,
            [100, 200, 300].map(Duration::from_millis),
            "first come, first served, one every 100 ms"
        );
    }

    #[test]
    fn requests_in_flight_count_against_what_an_answer_reports() {
        let now = Instant::now();
        let mut scope = Scope::new(now);
        let first = scope.admit(1.0, now);
        let _second = scope.admit(1.0, now);
        let _third = scope.admit(1.0, now);
        // The answer to the first says 2 left; the two after it are already out.
        scope.observe(
            &ok(&[limit(2.0, 59_800)]),
            Some(&first),
            false,
            &breaker(),
            now,
        );
        let fourth = scope.admit(1.0, now);
        assert!(scope.ready_at(&fourth, &mut false, now).is_some());
    }

    #[test]
    fn repeated_overloads_open_then_one_probe_closes() {
        let now = Instant::now();
        let mut scope = Scope::new(now);
        for _ in 0..3 {
            scope.observe(&status(503), None, false, &breaker(), now);
        }
        let p = scope.admit(1.0, now);
        let mut probe = false;
        assert_eq!(
            scope.ready_at(&p, &mut probe, now),
            Some(now + Duration::from_secs(1))
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(scope.ready_at(&p, &mut probe, later), None);
        assert!(probe, "the first in line after the cooldown probes");
        let other = scope.admit(1.0, later);
        assert!(scope.ready_at(&other, &mut false, later).is_some());
        scope.observe(&status(200), None, true, &breaker(), later);
        assert_eq!(scope.breaker, Breaker::Closed { overloads: 0 });
        assert_eq!(scope.ready_at(&other, &mut false, later), None);
    }
}

/// What the `pacing` fuzz target checks: any sequence of answers (any headers, any status,
/// any wait) and admissions, at any times, never panics, and every turn the model gives is a
/// real instant no earlier than the moment it was asked for.
#[cfg(fuzzing)]
pub(crate) mod properties {
    use std::time::{Duration, SystemTime};

    use http::{HeaderMap, StatusCode};
    use tokio::time::Instant;

    use super::{Answer, BreakerConfig, Position, Scope};
    use crate::pacing::announced::Announced;

    /// One step of a fuzzed run.
    #[derive(Debug)]
    pub enum Step {
        /// Time passes.
        Advance(Duration),
        /// A request of this token cost takes a place in line.
        Admit(u64),
        /// The `nth` place in line (modulo those taken) gives up.
        Release(usize),
        /// An answer to the `nth` place (modulo those taken), or to an untracked request.
        Answer {
            /// Which place in line it answers; `None` for an untracked request.
            nth: Option<usize>,
            /// The status.
            status: u16,
            /// The headers.
            headers: HeaderMap,
            /// The server's wait, as the retry layer read it.
            wait: Option<Duration>,
        },
    }

    /// Runs `steps` against one scope.
    pub fn drive(steps: &[Step]) {
        let start = Instant::now();
        let mut now = start;
        let mut scope = Scope::new(now);
        let mut places: Vec<(Position, bool)> = Vec::new();
        let breaker = BreakerConfig {
            open_after: 3,
            first_open: Duration::from_secs(1),
            longest_open: Duration::from_secs(30),
        };
        for step in steps {
            match step {
                Step::Advance(by) => now = now.checked_add(*by).unwrap_or(now),
                Step::Admit(cost) => {
                    let position = scope.admit(*cost as f64, now);
                    let mut probe = false;
                    if let Some(at) = scope.ready_at(&position, &mut probe, now) {
                        assert!(at > now, "a turn in the past: {at:?} at {now:?}");
                    }
                    places.push((position, probe));
                }
                Step::Release(nth) if !places.is_empty() => {
                    let (position, _) = places.remove(nth % places.len());
                    scope.release(&position);
                }
                Step::Release(_) => {}
                Step::Answer {
                    nth,
                    status,
                    headers,
                    wait,
                } => {
                    let announced = Announced::parse(headers, SystemTime::now());
                    let place = nth
                        .filter(|_| !places.is_empty())
                        .map(|n| places[n % places.len()]);
                    let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
                    let answer = Answer {
                        family: announced.family,
                        limits: &announced.limits,
                        status,
                        wait: *wait,
                    };
                    scope.observe(
                        &answer,
                        place.as_ref().map(|(p, _)| p),
                        place.is_some_and(|(_, probe)| probe),
                        &breaker,
                        now,
                    );
                }
            }
            for (position, probe) in &mut places {
                if let Some(at) = scope.ready_at(position, probe, now) {
                    assert!(at > now, "a turn in the past: {at:?} at {now:?}");
                }
            }
        }
    }
}
