//! What a status answer says about a job: [`JobStatus`], read by a [`ReadStatus`].

use std::fmt;

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use crate::classify::{BodyRead, Classification, Classifier, ErrorKind};

/// Where a job stands, as one answer says.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JobState {
    /// Accepted, queued or running; `detail` is the provider's word for it (`IN_QUEUE`,
    /// `processing`), when it gave one.
    Pending {
        /// The provider's own state text.
        detail: Option<String>,
    },
    /// Done: the result is this answer, or the one at the result URL.
    Succeeded,
    /// The task itself failed; its error, classified. A task's failure is terminal: polling
    /// never retries it (the caller may create a new job).
    Failed(Box<Classification>),
    /// Canceled, by the caller or the provider.
    Canceled,
}

impl JobState {
    /// A pending state with the provider's word for it.
    pub fn pending(detail: Option<&str>) -> Self {
        JobState::Pending {
            detail: detail.map(str::to_owned),
        }
    }

    /// Whether no later answer can change this state.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, JobState::Pending { .. })
    }
}

/// What a status reader found in one answer: the state, and the job's id and links when the
/// answer gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    state: JobState,
    job_id: Option<String>,
    status_url: Option<String>,
    result_url: Option<String>,
    cancel: Option<(Method, String)>,
}

impl JobStatus {
    /// A status in `state`, with no id or links.
    pub fn new(state: JobState) -> Self {
        JobStatus {
            state,
            job_id: None,
            status_url: None,
            result_url: None,
            cancel: None,
        }
    }

    /// With the job's id.
    pub fn with_job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// With the URL to poll (absolute, or a path on the create request's host).
    pub fn with_status_url(mut self, url: impl Into<String>) -> Self {
        self.status_url = Some(url.into());
        self
    }

    /// With the URL the result is fetched from once the job succeeded (seed 004's and fal's
    /// `response_url`); without one, the succeeded answer itself is the result.
    pub fn with_result_url(mut self, url: impl Into<String>) -> Self {
        self.result_url = Some(url.into());
        self
    }

    /// With the request that cancels the job.
    pub fn with_cancel(mut self, method: Method, url: impl Into<String>) -> Self {
        self.cancel = Some((method, url.into()));
        self
    }

    /// The state.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    /// The job's id, if the answer gave it.
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// The URL to poll, if the answer gave it.
    pub fn status_url(&self) -> Option<&str> {
        self.status_url.as_deref()
    }

    /// The result's URL, if the answer gave it.
    pub fn result_url(&self) -> Option<&str> {
        self.result_url.as_deref()
    }

    /// The cancel request's method and URL, if the answer gave them.
    pub fn cancel(&self) -> Option<(&Method, &str)> {
        self.cancel
            .as_ref()
            .map(|(method, url)| (method, url.as_str()))
    }

    pub(crate) fn into_parts(self) -> (JobState, JobLinks) {
        (
            self.state,
            JobLinks {
                job_id: self.job_id,
                status_url: self.status_url,
                result_url: self.result_url,
                cancel: self.cancel,
            },
        )
    }
}

/// The id and links of a [`JobStatus`], apart from its state.
#[derive(Debug, Default)]
pub(crate) struct JobLinks {
    pub(crate) job_id: Option<String>,
    pub(crate) status_url: Option<String>,
    pub(crate) result_url: Option<String>,
    pub(crate) cancel: Option<(Method, String)>,
}

/// One answer about a job (the create answer or a poll's), as a [`ReadStatus`] sees it.
pub struct StatusAnswer<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    body: &'a [u8],
    classifier: &'a Classifier,
}

impl fmt::Debug for StatusAnswer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusAnswer")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl<'a> StatusAnswer<'a> {
    /// An answer to read; `classifier` classifies a task's own error.
    pub fn new(
        status: StatusCode,
        headers: &'a HeaderMap,
        body: &'a [u8],
        classifier: &'a Classifier,
    ) -> Self {
        StatusAnswer {
            status,
            headers,
            body,
            classifier,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The body, as received (at most the poller's body limit).
    pub fn body(&self) -> &[u8] {
        self.body
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.body).ok()
    }

    /// The task's own error in this answer, classified as the stack classifies failures: by its
    /// code (`generation_failed`, `timeout`, `content_policy_violation`, …), then its message.
    /// An error the tables do not know is [`ErrorKind::Unknown`].
    pub fn task_failure(&self) -> Classification {
        let mut classification =
            self.classifier
                .classify(StatusCode::OK, self.headers, self.body, BodyRead::Complete);
        if classification.kind.is_none() {
            // The body says failed without an envelope the classifier reads as a failure (a
            // bare `"status": "failed"`, an error string it holds no phrase for).
            classification.kind = Some(ErrorKind::Unknown);
        }
        classification
    }
}

/// Reads a job's state, id and links from an answer.
///
/// Ready-made readers: [`TaskStatus`] (task objects, `{success, data, error}` envelopes, the
/// default), [`QueueStatus`] (a queue protocol: `IN_QUEUE` / `IN_PROGRESS` / `COMPLETED` with
/// `status_url`, `response_url` and `cancel_url`, as fal's queue) and [`ReplicateStatus`]
/// (Replicate's predictions). Any `Fn(&StatusAnswer<'_>) -> JobStatus` is a reader too.
pub trait ReadStatus: Send + Sync + 'static {
    /// What `answer` says about the job.
    fn read(&self, answer: &StatusAnswer<'_>) -> JobStatus;
}

impl<F> ReadStatus for F
where
    F: Fn(&StatusAnswer<'_>) -> JobStatus + Send + Sync + 'static,
{
    fn read(&self, answer: &StatusAnswer<'_>) -> JobStatus {
        self(answer)
    }
}

/// The text of a JSON string field.
fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether `value` holds an error: a non-empty string or a non-empty object or array.
fn has_error(value: &Value) -> bool {
    ["error", "errors"].iter().any(|key| match value.get(key) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        _ => false,
    })
}

/// A terminal success that still carries an error is a failure ("after COMPLETED, check
/// error"); anything else stays as read.
fn succeeded_unless_error(answer: &StatusAnswer<'_>, value: &Value) -> JobState {
    if has_error(value) {
        JobState::Failed(Box::new(answer.task_failure()))
    } else {
        JobState::Succeeded
    }
}

/// The state a provider's status word names, whatever its case: `None` for a word this reader
/// does not know.
fn state_of_word(answer: &StatusAnswer<'_>, value: &Value, word: &str) -> Option<JobState> {
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "pending" | "queued" | "in_queue" | "submitted" | "created" | "waiting" | "starting"
        | "processing" | "running" | "in_progress" | "started" | "accepted" => {
            JobState::pending(Some(word))
        }
        "succeeded" | "success" | "successful" | "completed" | "complete" | "done" | "finished"
        | "ready" => succeeded_unless_error(answer, value),
        "failed" | "failure" | "error" | "errored" => {
            JobState::Failed(Box::new(answer.task_failure()))
        }
        "canceled" | "cancelled" | "aborted" => JobState::Canceled,
        _ => return None,
    })
}

/// Task objects and the `{success, data, error}` envelope: the default reader.
///
/// Reads the object at the top level or under `data`: its state from `status`, `state` or
/// `task_status` (`pending`, `queued`, `processing`, `running`, `succeeded`, `completed`,
/// `failed`, `canceled`, … in any case), its id from `task_id`, `id` or `request_id`, its
/// links from `status_url` / `urls.get`, `response_url` / `result_url` and `cancel_url` /
/// `urls.cancel` (a POST). Without a state word: `success: false` or an `error` is a failure,
/// an id alone is a task still pending (an accepted creation), anything else a finished result.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskStatus;

impl ReadStatus for TaskStatus {
    fn read(&self, answer: &StatusAnswer<'_>) -> JobStatus {
        let Some(root) = answer.json() else {
            return not_json(answer);
        };
        let task = match root.get("data") {
            Some(data @ Value::Object(_)) => data,
            _ => &root,
        };
        let word = ["status", "state", "task_status"]
            .iter()
            .find_map(|key| text(task, key).or_else(|| text(&root, key)));
        let id = ["task_id", "id", "request_id", "job_id"]
            .iter()
            .find_map(|key| text(task, key).or_else(|| text(&root, key)));
        let failed_envelope = root.get("success") == Some(&Value::Bool(false)) || has_error(&root);
        let state = match word.and_then(|w| state_of_word(answer, task, w)) {
            Some(JobState::Succeeded) if failed_envelope => {
                JobState::Failed(Box::new(answer.task_failure()))
            }
            Some(state) => state,
            None if failed_envelope || has_error(task) => {
                JobState::Failed(Box::new(answer.task_failure()))
            }
            None if id.is_some() => JobState::pending(word),
            None => JobState::Succeeded,
        };
        let mut status = JobStatus::new(state);
        if let Some(id) = id {
            status = status.with_job_id(id);
        }
        let urls = task.get("urls");
        if let Some(url) = text(task, "status_url").or_else(|| urls.and_then(|u| text(u, "get"))) {
            status = status.with_status_url(url);
        }
        if let Some(url) = text(task, "response_url").or_else(|| text(task, "result_url")) {
            status = status.with_result_url(url);
        }
        if let Some(url) = text(task, "cancel_url").or_else(|| urls.and_then(|u| text(u, "cancel")))
        {
            status = status.with_cancel(Method::POST, url);
        }
        status
    }
}

/// An answer that is not JSON: `202 Accepted`, a 2xx without a body, and JSON that does not
/// parse (an answer cut short) say nothing of a finished job, so it is still pending; any
/// other body (an image, text) is a finished result.
fn not_json(answer: &StatusAnswer<'_>) -> JobStatus {
    let looks_like_json = answer
        .body()
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    if answer.status() == StatusCode::ACCEPTED || answer.body().is_empty() || looks_like_json {
        JobStatus::new(JobState::pending(None))
    } else {
        JobStatus::new(JobState::Succeeded)
    }
}

/// A queue protocol: `IN_QUEUE` / `IN_PROGRESS` / `COMPLETED`, with `request_id`,
/// `status_url`, `response_url` and `cancel_url`, as fal's queue and gateways modelled on it.
///
/// Only `status` decides whether the job is done; a `COMPLETED` answer that carries an `error`
/// is a failure. The result is fetched from `response_url`, where a `202` means not ready yet.
/// Cancelling is a `PUT` to `cancel_url`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStatus;

impl ReadStatus for QueueStatus {
    fn read(&self, answer: &StatusAnswer<'_>) -> JobStatus {
        let Some(root) = answer.json() else {
            return not_json(answer);
        };
        let word = text(&root, "status");
        let state = match word.map(str::to_ascii_uppercase).as_deref() {
            Some("IN_QUEUE" | "IN_PROGRESS") => JobState::pending(word),
            Some("COMPLETED") => succeeded_unless_error(answer, &root),
            Some("CANCELED" | "CANCELLED") => JobState::Canceled,
            Some("FAILED" | "ERROR") => JobState::Failed(Box::new(answer.task_failure())),
            // No state: an answer from `response_url` (the result itself) or an accepted
            // creation, told apart by whether it names the request.
            _ if has_error(&root) => JobState::Failed(Box::new(answer.task_failure())),
            _ if text(&root, "request_id").is_some() && root.get("status_url").is_some() => {
                JobState::pending(word)
            }
            None => JobState::Succeeded,
            Some(_) => JobState::pending(word),
        };
        let mut status = JobStatus::new(state);
        if let Some(id) = text(&root, "request_id") {
            status = status.with_job_id(id);
        }
        if let Some(url) = text(&root, "status_url") {
            status = status.with_status_url(url);
        }
        if let Some(url) = text(&root, "response_url") {
            status = status.with_result_url(url);
        }
        if let Some(url) = text(&root, "cancel_url") {
            status = status.with_cancel(Method::PUT, url);
        }
        status
    }
}

/// Replicate's predictions: `starting` / `processing` / `succeeded` / `failed` / `canceled`
/// (or `aborted`),
/// the id in `id`, links in `urls.get` and `urls.cancel` (a POST). A succeeded prediction is
/// its own result (`output`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplicateStatus;

impl ReadStatus for ReplicateStatus {
    fn read(&self, answer: &StatusAnswer<'_>) -> JobStatus {
        let Some(root) = answer.json() else {
            return not_json(answer);
        };
        let word = text(&root, "status");
        let state = match word {
            Some("starting" | "processing") => JobState::pending(word),
            Some("succeeded") => succeeded_unless_error(answer, &root),
            Some("failed") => JobState::Failed(Box::new(answer.task_failure())),
            // `aborted`: stopped before it started (newer clients know it).
            Some("canceled" | "aborted") => JobState::Canceled,
            _ if has_error(&root) => JobState::Failed(Box::new(answer.task_failure())),
            _ => JobState::pending(word),
        };
        let mut status = JobStatus::new(state);
        if let Some(id) = text(&root, "id") {
            status = status.with_job_id(id);
        }
        if let Some(urls) = root.get("urls") {
            if let Some(url) = text(urls, "get") {
                status = status.with_status_url(url);
            }
            if let Some(url) = text(urls, "cancel") {
                status = status.with_cancel(Method::POST, url);
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(reader: &dyn ReadStatus, status: u16, body: &str) -> JobStatus {
        let classifier = Classifier::new();
        let headers = HeaderMap::new();
        let answer = StatusAnswer::new(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
            &classifier,
        );
        reader.read(&answer)
    }

    fn failed_kind(status: &JobStatus) -> Option<ErrorKind> {
        match status.state() {
            JobState::Failed(c) => c.kind(),
            _ => None,
        }
    }

    #[test]
    fn task_objects_in_their_states() {
        let pending = read(
            &TaskStatus,
            200,
            r#"{"task_id":"t1","status":"processing"}"#,
        );
        assert_eq!(pending.state(), &JobState::pending(Some("processing")));
        assert_eq!(pending.job_id(), Some("t1"));
        let failed = read(
            &TaskStatus,
            200,
            r#"{"task_id":"t1","status":"failed","error":{"code":"timeout","message":"The task timed out"}}"#,
        );
        assert_eq!(failed_kind(&failed), Some(ErrorKind::Timeout));
        let policy = read(
            &TaskStatus,
            200,
            r#"{"id":"t2","status":"FAILED","error":{"code":"content_policy_violation","message":"no"}}"#,
        );
        assert_eq!(failed_kind(&policy), Some(ErrorKind::ContentPolicy));
        let done = read(
            &TaskStatus,
            200,
            r#"{"id":"t2","status":"succeeded","output":["u"]}"#,
        );
        assert_eq!(done.state(), &JobState::Succeeded);
        let accepted = read(&TaskStatus, 200, r#"{"success":true,"task_id":"t3"}"#);
        assert!(!accepted.state().is_terminal());
    }

    #[test]
    fn the_success_data_error_envelope() {
        let failed = read(
            &TaskStatus,
            200,
            r#"{"success":false,"data":null,"error":{"code":"generation_failed","message":"failed"}}"#,
        );
        assert_eq!(failed_kind(&failed), Some(ErrorKind::ServerError));
        let running = read(
            &TaskStatus,
            200,
            r#"{"success":true,"data":{"task_id":"t4","status":"running"}}"#,
        );
        assert_eq!(running.job_id(), Some("t4"));
        assert!(!running.state().is_terminal());
    }

    #[test]
    fn the_queue_protocol() {
        let queued = read(
            &QueueStatus,
            202,
            r#"{"status":"IN_QUEUE","request_id":"r1","status_url":"/v1/queue/m/requests/r1/status","response_url":"/v1/queue/m/requests/r1","cancel_url":"/v1/queue/m/requests/r1/cancel"}"#,
        );
        assert!(!queued.state().is_terminal());
        assert_eq!(queued.job_id(), Some("r1"));
        assert_eq!(queued.result_url(), Some("/v1/queue/m/requests/r1"));
        assert_eq!(queued.cancel().map(|(m, _)| m.clone()), Some(Method::PUT));
        let done = read(&QueueStatus, 200, r#"{"status":"COMPLETED","error":null}"#);
        assert_eq!(done.state(), &JobState::Succeeded);
        let failed = read(
            &QueueStatus,
            200,
            r#"{"status":"COMPLETED","error":"Runtime execution failed"}"#,
        );
        assert!(matches!(failed.state(), JobState::Failed(_)));
    }

    #[test]
    fn replicate_predictions() {
        let starting = read(
            &ReplicateStatus,
            201,
            r#"{"id":"p1","status":"starting","urls":{"get":"https://api.replicate.com/v1/predictions/p1","cancel":"https://api.replicate.com/v1/predictions/p1/cancel"}}"#,
        );
        assert_eq!(starting.job_id(), Some("p1"));
        assert!(starting.status_url().is_some());
        let failed = read(
            &ReplicateStatus,
            200,
            r#"{"id":"p1","status":"failed","error":"CUDA out of memory"}"#,
        );
        assert!(matches!(failed.state(), JobState::Failed(_)));
        let canceled = read(&ReplicateStatus, 200, r#"{"id":"p1","status":"canceled"}"#);
        assert_eq!(canceled.state(), &JobState::Canceled);
    }

    #[test]
    fn a_closure_is_a_reader() {
        let reader = |answer: &StatusAnswer<'_>| {
            if answer.body() == b"done" {
                JobStatus::new(JobState::Succeeded)
            } else {
                JobStatus::new(JobState::pending(None))
            }
        };
        assert_eq!(read(&reader, 200, "done").state(), &JobState::Succeeded);
    }

    #[test]
    fn hostile_answers_read_as_something() {
        for body in [
            "",
            "null",
            "[]",
            "{",
            "\"x\"",
            r#"{"status":7}"#,
            r#"{"data":[1]}"#,
        ] {
            for reader in [
                &TaskStatus as &dyn ReadStatus,
                &QueueStatus,
                &ReplicateStatus,
            ] {
                let _ = read(reader, 200, body);
            }
        }
    }
}
