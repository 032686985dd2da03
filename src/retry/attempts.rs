//! [`Attempts`]: what happened to one logical request, attempt by attempt.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::WaitHint;
use crate::classify::ErrorKind;
use crate::ids::TraceId;

/// Every attempt of one logical request, the total time, and why retrying stopped.
///
/// Put into the final response's extensions by [`Retry`](super::Retry), and carried by
/// [`RetryError`](super::RetryError).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempts {
    pub(crate) records: Records,
    pub(crate) elapsed: Duration,
    pub(crate) stopped: StopReason,
    pub(crate) wait_hint: Option<WaitHint>,
}

/// The attempt records, the common single one kept inline so that a request answered at the
/// first attempt allocates nothing for its record.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Records {
    #[default]
    Empty,
    One(AttemptRecord),
    Many(Vec<AttemptRecord>),
}

impl Records {
    pub(crate) fn push(&mut self, record: AttemptRecord) {
        *self = match std::mem::take(self) {
            Records::Empty => Records::One(record),
            Records::One(first) => Records::Many(vec![first, record]),
            Records::Many(mut all) => {
                all.push(record);
                Records::Many(all)
            }
        };
    }

    pub(crate) fn as_slice(&self) -> &[AttemptRecord] {
        match self {
            Records::Empty => &[],
            Records::One(record) => std::slice::from_ref(record),
            Records::Many(all) => all,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }
}

/// One attempt: its status, kind of failure, trace id, and the delay waited before it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub(crate) status: Option<StatusCode>,
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) delay: Duration,
}

/// Why no further attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The last attempt succeeded.
    Succeeded,
    /// The failure's verdict (or the server's `x-should-retry: false`) rules out a retry.
    VerdictNever,
    /// The configured number of attempts was made.
    AttemptsExhausted,
    /// The shared retry budget was spent.
    BudgetSpent,
    /// The server asked for a wait longer than the cap or the time left before the deadline;
    /// the hint is in [`Attempts::wait_hint`] so the caller can reschedule.
    WaitTooLong,
    /// The total deadline was reached, or the next backoff would pass it.
    Deadline,
    /// The method is not idempotent, nothing made a resend safe (no idempotency key the server
    /// honours, no opt-in), and the answer did not prove the server did no work; see
    /// [`KeySupport`](super::KeySupport).
    NotIdempotent,
    /// The request body cannot be replayed, so the request was sent once.
    BodyNotReplayable,
    /// Nothing was sent: the inner service failed to become ready (its `poll_ready` returned an
    /// error).
    ServiceNotReady,
    /// The stack's [`retry_decision`](super::RetryLayer::retry_decision) hook declined the
    /// retry.
    Declined,
}

impl StopReason {
    /// The stable snake_case name, as tools print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            StopReason::Succeeded => "succeeded",
            StopReason::VerdictNever => "verdict_never",
            StopReason::AttemptsExhausted => "attempts_exhausted",
            StopReason::BudgetSpent => "budget_spent",
            StopReason::WaitTooLong => "wait_too_long",
            StopReason::Deadline => "deadline",
            StopReason::NotIdempotent => "not_idempotent",
            StopReason::BodyNotReplayable => "body_not_replayable",
            StopReason::ServiceNotReady => "service_not_ready",
            StopReason::Declined => "declined",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Attempts {
    /// Every attempt, first to last.
    pub fn records(&self) -> &[AttemptRecord] {
        self.records.as_slice()
    }

    /// How many attempts were made.
    pub fn count(&self) -> usize {
        self.records.len()
    }

    /// Time from the first attempt to the final outcome, waits included.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Why retrying stopped.
    pub fn stopped(&self) -> StopReason {
        self.stopped
    }

    /// The server's wait hint of the last failed attempt, if it gave one. When retrying stopped
    /// with [`StopReason::WaitTooLong`], this is the wait it asked for.
    pub fn wait_hint(&self) -> Option<WaitHint> {
        self.wait_hint
    }

    /// The server trace ids of every attempt that had one, in order.
    pub fn trace_ids(&self) -> impl Iterator<Item = &TraceId> {
        self.records().iter().filter_map(|r| r.trace_id.as_ref())
    }
}

impl AttemptRecord {
    /// The response status, or `None` when the attempt failed without a response.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The kind of failure, or `None` on success.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.kind
    }

    /// The server's trace id for this attempt.
    pub fn trace_id(&self) -> Option<&TraceId> {
        self.trace_id.as_ref()
    }

    /// The delay waited before this attempt (zero for the first).
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attempt{} in {:.1?}, stopped: {}",
            self.count(),
            if self.count() == 1 { "" } else { "s" },
            self.elapsed,
            self.stopped
        )
    }
}
