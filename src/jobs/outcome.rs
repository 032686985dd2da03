//! [`JobOutcome`]: how a job ended, with what a support ticket needs; [`JobError`]; the
//! result's [`ResultBody`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};

use crate::classify::Classification;
use crate::ids::{RequestIds, TraceId};
use crate::retry::{Attempts, BoxError};

/// How a job ended.
#[non_exhaustive]
pub enum JobEnding<B> {
    /// The job succeeded: the result answer, its body as the server sent it (unread when it came
    /// from a result URL, replayed whole when it was the status answer itself).
    Succeeded(Response<ResultBody<B>>),
    /// The task failed; its own error, classified.
    Failed(Box<Classification>),
    /// The job was canceled.
    Canceled,
    /// The deadline passed first; the last state the provider reported, if any.
    TimedOut {
        /// The provider's word for the last state seen (`IN_PROGRESS`, `processing`).
        last_state: Option<String>,
    },
}

impl<B> fmt::Debug for JobEnding<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobEnding::Succeeded(response) => f
                .debug_tuple("Succeeded")
                .field(&response.status())
                .finish(),
            JobEnding::Failed(classification) => {
                f.debug_tuple("Failed").field(classification).finish()
            }
            JobEnding::Canceled => f.write_str("Canceled"),
            JobEnding::TimedOut { last_state } => f
                .debug_struct("TimedOut")
                .field("last_state", last_state)
                .finish(),
        }
    }
}

/// How a job ended, with the job's id, the trace ids of its creation and of the last poll, the
/// client's ids of the creation, and how many polls it took.
pub struct JobOutcome<B> {
    pub(crate) ending: JobEnding<B>,
    pub(crate) job_id: Option<String>,
    pub(crate) create_ids: Option<RequestIds>,
    pub(crate) create_trace_id: Option<TraceId>,
    pub(crate) create_attempts: Option<Attempts>,
    pub(crate) last_trace_id: Option<TraceId>,
    pub(crate) polls: u32,
    pub(crate) elapsed: Duration,
}

impl<B> fmt::Debug for JobOutcome<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobOutcome")
            .field("ending", &self.ending)
            .field("job_id", &self.job_id)
            .field("create_ids", &self.create_ids)
            .field("create_trace_id", &self.create_trace_id)
            .field(
                "create_attempts",
                &self.create_attempts.as_ref().map(Attempts::count),
            )
            .field("last_trace_id", &self.last_trace_id)
            .field("polls", &self.polls)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl<B> JobOutcome<B> {
    /// How the job ended.
    pub fn ending(&self) -> &JobEnding<B> {
        &self.ending
    }

    /// How the job ended, by value (to take the result's body).
    pub fn into_ending(self) -> JobEnding<B> {
        self.ending
    }

    /// Whether the job succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self.ending, JobEnding::Succeeded(_))
    }

    /// The job's id, as the provider named it.
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// The client request id and idempotency key the job was created with (none for a job
    /// this poller did not create).
    pub fn create_ids(&self) -> Option<&RequestIds> {
        self.create_ids.as_ref()
    }

    /// The server's trace id of the creation answer.
    pub fn create_trace_id(&self) -> Option<&TraceId> {
        self.create_trace_id.as_ref()
    }

    /// The attempts of the create request (through the retry layer), if this poller created
    /// the job.
    pub fn create_attempts(&self) -> Option<&Attempts> {
        self.create_attempts.as_ref()
    }

    /// The server's trace id of the last poll's answer.
    pub fn last_trace_id(&self) -> Option<&TraceId> {
        self.last_trace_id.as_ref()
    }

    /// How many status (and result) requests were sent, not counting the creation.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// The time from the create answer (or, for a [`JobHandle::new`](super::JobHandle::new),
    /// from making the handle) to the end; zero for a job that ended in its create answer.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// Why creating, waiting for or cancelling a job failed, as opposed to the job itself failing
/// (a [`JobEnding::Failed`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum JobError {
    /// The create request was refused (after the stack's own retries) and no job was named:
    /// the answer, classified.
    CreateRejected(Box<Classification>),
    /// A poll was refused in a way waiting cannot fix (credentials, permission, a malformed
    /// status URL): the answer, classified.
    PollRejected {
        /// The refusal, classified (its trace id is the server's for that poll).
        classification: Box<Classification>,
        /// The job's id, if known.
        job_id: Option<String>,
    },
    /// The cancel request was refused: the answer, classified.
    CancelRejected {
        /// The refusal, classified.
        classification: Box<Classification>,
        /// The job's id, if known.
        job_id: Option<String>,
    },
    /// The status URL answered 404 past the grace period after creation: the job id is wrong,
    /// the endpoint does not match, or access is not permitted.
    NotFound {
        /// The job's id, if known.
        job_id: Option<String>,
    },
    /// The create answer named no status URL, and no template was configured to make one from
    /// the job id.
    NoStatusUrl,
    /// The status URL the create answer gave cannot be requested (neither absolute nor a path).
    InvalidUrl(String),
    /// A request failed in the client stack (transport, deadline, an unreplayable body…)
    /// before any answer.
    Service(BoxError),
}

impl JobError {
    /// The job's id, when the error concerns a job the provider named.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            JobError::PollRejected { job_id, .. }
            | JobError::CancelRejected { job_id, .. }
            | JobError::NotFound { job_id } => job_id.as_deref(),
            _ => None,
        }
    }

    /// The classified answer behind the error, if an answer came.
    pub fn classification(&self) -> Option<&Classification> {
        match self {
            JobError::CreateRejected(c)
            | JobError::PollRejected {
                classification: c, ..
            }
            | JobError::CancelRejected {
                classification: c, ..
            } => Some(c),
            _ => None,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = |f: &mut fmt::Formatter<'_>, id: &Option<String>| match id {
            Some(id) => write!(f, "job {id}: "),
            None => Ok(()),
        };
        match self {
            JobError::CreateRejected(c) => write!(f, "the job was not created: {c}"),
            JobError::PollRejected {
                classification,
                job_id,
            } => {
                job(f, job_id)?;
                write!(f, "polling was refused: {classification}")
            }
            JobError::CancelRejected {
                classification,
                job_id,
            } => {
                job(f, job_id)?;
                write!(f, "cancelling was refused: {classification}")
            }
            JobError::NotFound { job_id } => {
                job(f, job_id)?;
                f.write_str("the status URL answers 404 Not Found")
            }
            JobError::NoStatusUrl => {
                f.write_str("the create answer names no status URL and no template makes one")
            }
            JobError::InvalidUrl(url) => write!(f, "unusable status URL {url:?}"),
            JobError::Service(_) => f.write_str("a job request failed in the client stack"),
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JobError::Service(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

/// The body of a job's result, every byte as the server sent it: the bytes already read (when
/// the status answer was the result), then the rest of that answer's body, unread.
pub struct ResultBody<B> {
    prefix: Option<Bytes>,
    rest: Option<Pin<Box<B>>>,
}

impl<B> ResultBody<B> {
    /// `prefix`, then `rest`.
    pub(crate) fn new(prefix: Bytes, rest: Option<Pin<Box<B>>>) -> Self {
        ResultBody {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }

    /// A body not read at all.
    pub(crate) fn unread(body: B) -> Self {
        ResultBody {
            prefix: None,
            rest: Some(Box::pin(body)),
        }
    }
}

impl<B> fmt::Debug for ResultBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultBody")
            .field("read", &self.prefix.as_ref().map_or(0, Bytes::len))
            .field("unread_rest", &self.rest.is_some())
            .finish()
    }
}

impl<B> Body for ResultBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let Some(rest) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(rest.as_mut().poll_frame(cx));
        if frame.is_none() {
            self.rest = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(prefix),
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(prefix));
                }
                hint.set_lower(inner.lower().saturating_add(prefix));
                hint
            }
        }
    }
}
