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
use crate::retry::BoxError;

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

    /// The server's trace id of the last poll's answer.
    pub fn last_trace_id(&self) -> Option<&TraceId> {
        self.last_trace_id.as_ref()
    }

    /// How many status (and result) requests were sent, not counting the creation.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// The time from the creation (or the start of waiting) to the end.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// Why creating or waiting for a job failed, as opposed to the job itself failing (a
/// [`JobEnding::Failed`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum JobError {
    /// The create request was refused (after the stack's own retries): the answer, classified.
    CreateRejected(Box<Classification>),
    /// A poll was refused in a way waiting cannot fix (credentials, permission, a malformed
    /// status URL): the answer, classified.
    PollRejected(Box<Classification>),
    /// The status URL answered 404 past the grace period after creation: the job id is wrong,
    /// the endpoint does not match, or access is not permitted.
    NotFound,
    /// The create answer named no status URL, and no template was configured to make one from
    /// the job id.
    NoStatusUrl,
    /// A status URL the provider gave could not be used.
    InvalidUrl(String),
    /// The create request failed in the client stack (transport, deadline, an unreplayable
    /// body…).
    Service(BoxError),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::CreateRejected(c) => write!(f, "the job was not created: {c}"),
            JobError::PollRejected(c) => write!(f, "polling the job was refused: {c}"),
            JobError::NotFound => f.write_str("the job's status URL answers 404 Not Found"),
            JobError::NoStatusUrl => {
                f.write_str("the create answer names no status URL and no template makes one")
            }
            JobError::InvalidUrl(url) => write!(f, "unusable status URL {url:?}"),
            JobError::Service(_) => f.write_str("the create request failed"),
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

pin_project_lite::pin_project! {
    /// The body of a job's result: the bytes already read (the status answer was the result), or
    /// the result answer's own body, unread.
    pub struct ResultBody<B> {
        #[pin]
        state: ResultState<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = ResultStateProj]
    enum ResultState<B> {
        Read { bytes: Option<Bytes> },
        Unread { #[pin] body: B },
    }
}

impl<B> ResultBody<B> {
    pub(crate) fn read(bytes: Bytes) -> Self {
        ResultBody {
            state: ResultState::Read {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }

    pub(crate) fn unread(body: B) -> Self {
        ResultBody {
            state: ResultState::Unread { body },
        }
    }
}

impl<B> fmt::Debug for ResultBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            ResultState::Read { .. } => "ResultBody::Read",
            ResultState::Unread { .. } => "ResultBody::Unread",
        })
    }
}

impl<B> Body for ResultBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().state.project() {
            ResultStateProj::Read { bytes } => {
                Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
            ResultStateProj::Unread { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            ResultState::Read { bytes } => bytes.is_none(),
            ResultState::Unread { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            ResultState::Read { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResultState::Unread { body } => body.size_hint(),
        }
    }
}
