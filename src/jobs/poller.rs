//! [`JobPoller`]: create a job once, poll it to a terminal state through the whole stack.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::uri::{Authority, Scheme};
use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::outcome::{JobEnding, JobError, JobOutcome, ResultBody};
use super::status::{JobLinks, JobState, ReadStatus, StatusAnswer, TaskStatus};
use crate::classify::{BodyRead, Classification, Classifier, ErrorKind};
use crate::ids::{RequestIds, TraceId};
use crate::retry::{Attempts, BoxError, SuccessStatusFinal, WaitHint};

/// A scheme and authority: where credentials may be sent.
type Origin = (Option<Scheme>, Option<Authority>);

fn origin_of(uri: &Uri) -> Origin {
    (uri.scheme().cloned(), uri.authority().cloned())
}

/// A job the provider accepted and that is not finished: where to poll it, and what is known
/// of it. Made by [`JobPoller::create`], or by [`JobHandle::new`] for a job created elsewhere;
/// [`JobPoller::wait`] updates it with the links the answers give.
#[derive(Clone)]
pub struct JobHandle {
    job_id: Option<String>,
    status_url: Uri,
    result_url: Option<Uri>,
    cancel: Option<(Method, Uri)>,
    /// The job already succeeded: only its result is left to fetch.
    result_ready: bool,
    created: Instant,
    create_ids: Option<RequestIds>,
    create_trace_id: Option<TraceId>,
    create_attempts: Option<Attempts>,
    /// The create request's headers a poll repeats (its credentials among them).
    headers: HeaderMap,
    /// Where those headers, and the poller's, may go.
    origin: Origin,
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The headers are not shown: they carry the caller's credentials.
        f.debug_struct("JobHandle")
            .field("job_id", &self.job_id)
            .field("status_url", &self.status_url)
            .field("result_url", &self.result_url)
            .field("cancel", &self.cancel)
            .field("result_ready", &self.result_ready)
            .field("create_ids", &self.create_ids)
            .field("create_trace_id", &self.create_trace_id)
            .finish_non_exhaustive()
    }
}

impl JobHandle {
    /// A job polled at `status_url`, created now as far as the not-found grace and the
    /// deadline go. The poller's headers are sent to `status_url`'s origin only.
    pub fn new(status_url: Uri) -> Self {
        JobHandle {
            job_id: None,
            origin: origin_of(&status_url),
            status_url,
            result_url: None,
            cancel: None,
            result_ready: false,
            created: Instant::now(),
            create_ids: None,
            create_trace_id: None,
            create_attempts: None,
            headers: HeaderMap::new(),
        }
    }

    /// With the job's id.
    pub fn with_job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// With the URL its result is fetched from once it succeeded.
    pub fn with_result_url(mut self, url: Uri) -> Self {
        self.result_url = Some(url);
        self
    }

    /// With the request that cancels the job.
    pub fn with_cancel(mut self, method: Method, url: Uri) -> Self {
        self.cancel = Some((method, url));
        self
    }

    /// The job's id, if known.
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// The URL polled for the job's state.
    pub fn status_url(&self) -> &Uri {
        &self.status_url
    }

    /// The URL the result is fetched from, if the provider named one.
    pub fn result_url(&self) -> Option<&Uri> {
        self.result_url.as_ref()
    }

    /// The cancel request's method and URL, if the provider named one.
    pub fn cancel(&self) -> Option<(&Method, &Uri)> {
        self.cancel.as_ref().map(|(method, url)| (method, url))
    }

    /// The client's ids of the create request.
    pub fn create_ids(&self) -> Option<&RequestIds> {
        self.create_ids.as_ref()
    }

    /// The server's trace id of the create answer.
    pub fn create_trace_id(&self) -> Option<&TraceId> {
        self.create_trace_id.as_ref()
    }

    /// Takes the links an answer gives, resolved against the status URL; a link that cannot be
    /// used is left out (and a status link's text returned), keeping what was known.
    fn learn(&mut self, links: JobLinks) -> Option<String> {
        if self.job_id.is_none() {
            self.job_id = links.job_id;
        }
        let mut unusable = None;
        if let Some(url) = links.status_url {
            match resolve(&self.status_url, &url) {
                Some(uri) => self.status_url = uri,
                None => unusable = Some(url),
            }
        }
        if let Some(uri) = links
            .result_url
            .and_then(|url| resolve(&self.status_url, &url))
        {
            self.result_url = Some(uri);
        }
        if let Some((method, uri)) = links
            .cancel
            .and_then(|(method, url)| Some((method, resolve(&self.status_url, &url)?)))
        {
            self.cancel = Some((method, uri));
        }
        unusable
    }

    /// Whether the credentials may be sent to `url`.
    fn trusts(&self, url: &Uri) -> bool {
        origin_of(url) == self.origin
    }
}

/// What happened to a create request: a job to wait for, or one that already ended (a
/// provider that answers synchronously, or names the job and reports it failed at once). A
/// create request refused without a job is [`JobError::CreateRejected`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Created<B> {
    /// Accepted and not finished.
    Pending(JobHandle),
    /// Finished in the create answer itself.
    Finished(JobOutcome<B>),
}

/// The headers of a create request that a poll does not repeat: they describe the create
/// request's body or identify that one request.
const NOT_REPEATED: [HeaderName; 6] = [
    header::HOST,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("x-request-id"),
];

/// Creates a job once and polls it to a terminal state through a client stack.
///
/// Every request goes through the service it wraps (usually the [`ResilienceLayer`] stack), so
/// each one is classified, retried within its own limits, paced and traced; the create request
/// is sent with its idempotency key, so a retried creation never starts a second paid job.
///
/// Between polls it waits with a bounded, jittered backoff (default from 1 s, growing by half
/// each poll, to 10 s), or as long as the answer asks (`Retry-After` and its cousins). A status
/// answer of `202`, or a state the reader calls pending, is not ready; a `429` or `5xx` on a
/// poll slows the polling and does not fail the job; a `404` right after creation is taken for
/// a job not yet visible, for a grace period (default 10 s). Everything stops at the deadline
/// (default 10 minutes) with [`JobEnding::TimedOut`]. Dropping the future stops polling;
/// [`cancel`](Self::cancel) asks the provider to cancel the job.
///
/// [`ResilienceLayer`]: crate::ResilienceLayer
pub struct JobPoller<S, R = TaskStatus> {
    service: S,
    reader: Arc<R>,
    classifier: Arc<Classifier>,
    headers: HeaderMap,
    first_interval: Duration,
    max_interval: Duration,
    deadline: Duration,
    not_found_grace: Duration,
    status_url_template: Option<String>,
    body_limit: usize,
}

impl<S: Clone, R> Clone for JobPoller<S, R> {
    fn clone(&self) -> Self {
        JobPoller {
            service: self.service.clone(),
            reader: Arc::clone(&self.reader),
            classifier: Arc::clone(&self.classifier),
            headers: self.headers.clone(),
            first_interval: self.first_interval,
            max_interval: self.max_interval,
            deadline: self.deadline,
            not_found_grace: self.not_found_grace,
            status_url_template: self.status_url_template.clone(),
            body_limit: self.body_limit,
        }
    }
}

impl<S, R> fmt::Debug for JobPoller<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The headers are not shown: they carry the caller's credentials.
        f.debug_struct("JobPoller")
            .field("reader", &std::any::type_name::<R>())
            .field("first_interval", &self.first_interval)
            .field("max_interval", &self.max_interval)
            .field("deadline", &self.deadline)
            .field("not_found_grace", &self.not_found_grace)
            .field("status_url_template", &self.status_url_template)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// The default limit on a status answer's body: 1 MiB.
pub const DEFAULT_STATUS_BODY_LIMIT: usize = 1024 * 1024;

impl<S> JobPoller<S> {
    /// A poller over `service` reading task objects ([`TaskStatus`]), with every default.
    pub fn new(service: S) -> Self {
        JobPoller {
            service,
            reader: Arc::new(TaskStatus),
            classifier: Arc::new(Classifier::new()),
            headers: HeaderMap::new(),
            first_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
            deadline: Duration::from_secs(600),
            not_found_grace: Duration::from_secs(10),
            status_url_template: None,
            body_limit: DEFAULT_STATUS_BODY_LIMIT,
        }
    }
}

impl<S, R> JobPoller<S, R> {
    /// Reads status answers with `reader`: [`QueueStatus`](super::QueueStatus),
    /// [`ReplicateStatus`](super::ReplicateStatus), or any `Fn(&StatusAnswer) -> JobStatus`.
    pub fn reader<R2: ReadStatus>(self, reader: R2) -> JobPoller<S, R2> {
        JobPoller {
            service: self.service,
            reader: Arc::new(reader),
            classifier: self.classifier,
            headers: self.headers,
            first_interval: self.first_interval,
            max_interval: self.max_interval,
            deadline: self.deadline,
            not_found_grace: self.not_found_grace,
            status_url_template: self.status_url_template,
            body_limit: self.body_limit,
        }
    }

    /// Classifies a task's own error with these rules (default: every provider table).
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// Sends these headers with every poll and cancel (credentials for a job created
    /// elsewhere). A job created by [`create`](Self::create) is polled with its create
    /// request's headers too, except those describing its body and its ids. Either set goes
    /// only to the origin (scheme, host and port) of the create request, or of the status URL
    /// of a [`JobHandle::new`]: a status or result URL on another origin is requested without
    /// them, so an answer cannot send the caller's credentials elsewhere.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Waits `first` before the first poll, growing by half each poll up to `max` (defaults
    /// 1 s and 10 s); each wait is drawn between half and all of that. A `max` below `first`
    /// is taken as `first`.
    pub fn intervals(mut self, first: Duration, max: Duration) -> Self {
        self.first_interval = first;
        self.max_interval = max.max(first);
        self
    }

    /// Gives up waiting `deadline` after the job was created (default 10 minutes): a poll or a
    /// body read still in flight then is dropped.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Takes a 404 on a poll for a job not yet visible during `grace` after creation (default
    /// 10 s); after it, a 404 ends waiting with [`JobError::NotFound`].
    pub fn not_found_grace(mut self, grace: Duration) -> Self {
        self.not_found_grace = grace;
        self
    }

    /// Makes the status URL from the job's id when the create answer names none: `{id}` in
    /// `template` is replaced by the id (a path is taken on the create request's host), as in
    /// `"/v1/tasks/{id}"`.
    pub fn status_url_template(mut self, template: impl Into<String>) -> Self {
        self.status_url_template = Some(template.into());
        self
    }

    /// Reads at most `limit` bytes of a status answer (default 1 MiB) for its state. A longer
    /// answer is read for its state from what arrived (a JSON answer cut short reads as
    /// pending, so raise the limit for an API with larger status answers); when it is the
    /// result itself, the caller still gets all of it.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }
}

/// How reading a body for its state ended.
enum BodyEnd<B> {
    /// The whole body was read.
    Complete,
    /// The limit was reached: the rest of the body, unread.
    Limit(Pin<Box<B>>),
    /// The body failed before its end.
    Failed,
}

/// `future`, or `None` if `deadline` passes first.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// The `Location` header's text.
fn location(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
}

impl<S, R, B> JobPoller<S, R>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    R: ReadStatus,
{
    /// Sends the create request once (through the stack, with its idempotency key) and reads
    /// the answer: a job to wait for, or one that already ended.
    pub async fn create(&self, request: Request<Full<Bytes>>) -> Result<Created<B>, JobError> {
        let base = request.uri().clone();
        let mut create_headers = request.headers().clone();
        for name in &NOT_REPEATED {
            create_headers.remove(name);
        }
        let response = self
            .service
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| JobError::Service(error.into()))?;
        // The job exists from here: the not-found grace and the deadline count from now.
        let created = Instant::now();
        let (parts, body) = response.into_parts();
        let create_ids = parts.extensions.get::<RequestIds>().cloned();
        let create_attempts = parts.extensions.get::<Attempts>().cloned();
        let classification = parts.extensions.get::<Classification>().cloned();
        if !parts.status.is_success() {
            let classification = match classification {
                Some(c) => c,
                None => {
                    let (bytes, _) = self.read_body(body).await;
                    self.classifier.classify(
                        parts.status,
                        &parts.headers,
                        &bytes,
                        BodyRead::Complete,
                    )
                }
            };
            return Err(JobError::CreateRejected(Box::new(classification)));
        }
        let (bytes, end) = self.read_body(body).await;
        let classification = classification.unwrap_or_else(|| {
            self.classifier
                .classify(parts.status, &parts.headers, &bytes, BodyRead::Complete)
        });
        let answer = StatusAnswer::new(parts.status, &parts.headers, &bytes, &self.classifier);
        let (state, links) = self.reader.read(&answer).into_parts();
        let named_job = links.job_id.is_some();
        if classification.is_failure() && !(named_job && matches!(state, JobState::Failed(_))) {
            // Refused under a 2xx without naming a job (`{"success": false, "error": …}`).
            return Err(JobError::CreateRejected(Box::new(classification)));
        }
        let mut handle = JobHandle {
            job_id: None,
            origin: origin_of(&base),
            status_url: base.clone(),
            result_url: None,
            cancel: None,
            result_ready: false,
            created,
            create_ids,
            create_trace_id: classification.trace_id().cloned(),
            create_attempts,
            headers: create_headers,
        };
        let named_status = links.status_url.is_some();
        let unusable = handle.learn(links);
        if !named_status || unusable.is_some() {
            let templated = self
                .status_url_template
                .as_deref()
                .zip(handle.job_id.as_deref())
                .map(|(template, id)| template.replace("{id}", id));
            let fallback = location(&parts.headers).map(str::to_owned).or(templated);
            match fallback.as_deref().and_then(|url| resolve(&base, url)) {
                Some(uri) => handle.status_url = uri,
                None if state.is_terminal() => {}
                None => {
                    return Err(match unusable.or(fallback) {
                        Some(url) => JobError::InvalidUrl(url),
                        None => JobError::NoStatusUrl,
                    })
                }
            }
        }
        let outcome = |handle: &JobHandle, ending| JobOutcome {
            ending,
            job_id: handle.job_id.clone(),
            create_ids: handle.create_ids.clone(),
            create_trace_id: handle.create_trace_id.clone(),
            create_attempts: handle.create_attempts.clone(),
            last_trace_id: handle.create_trace_id.clone(),
            polls: 0,
            elapsed: Duration::ZERO,
        };
        Ok(match state {
            JobState::Pending { .. } => Created::Pending(handle),
            JobState::Succeeded if handle.result_url.is_none() => {
                let result = Response::from_parts(parts, ResultBody::new(bytes, end.rest()));
                Created::Finished(outcome(&handle, JobEnding::Succeeded(result)))
            }
            // The result is elsewhere: fetch it as any poll would.
            JobState::Succeeded => {
                handle.result_ready = true;
                Created::Pending(handle)
            }
            JobState::Failed(c) => Created::Finished(outcome(&handle, JobEnding::Failed(c))),
            JobState::Canceled => Created::Finished(outcome(&handle, JobEnding::Canceled)),
        })
    }

    /// Creates the job ([`create`](Self::create)) and waits for it ([`wait`](Self::wait)).
    pub async fn create_and_wait(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<JobOutcome<B>, JobError> {
        match self.create(request).await? {
            Created::Finished(outcome) => Ok(outcome),
            Created::Pending(mut handle) => self.wait(&mut handle).await,
        }
    }

    /// Polls the job until it ends, the deadline passes, or a poll is refused for good. The
    /// handle learns the links the answers give (a cancel URL, a moved status URL).
    pub async fn wait(&self, handle: &mut JobHandle) -> Result<JobOutcome<B>, JobError> {
        let deadline = handle.created.checked_add(self.deadline);
        let timed_out = |handle: &JobHandle, last_state, last_trace_id, polls| {
            Ok(self.finish(
                handle,
                JobEnding::TimedOut { last_state },
                last_trace_id,
                polls,
            ))
        };
        let mut interval = self.first_interval;
        let mut polls = 0u32;
        let mut last_state = None;
        let mut last_trace_id = None;
        let mut fetching_result = handle.result_ready;
        let mut next_wait = if fetching_result {
            Duration::ZERO
        } else {
            jittered(interval)
        };
        loop {
            let at = Instant::now().checked_add(next_wait);
            if deadline.is_some_and(|d| at.is_none_or(|at| at >= d)) {
                return timed_out(handle, last_state, last_trace_id, polls);
            }
            tokio::time::sleep(next_wait).await;
            interval = interval.saturating_add(interval / 2).min(self.max_interval);
            next_wait = jittered(interval);
            polls += 1;
            let url = match (&handle.result_url, fetching_result) {
                (Some(result_url), true) => result_url.clone(),
                _ => handle.status_url.clone(),
            };
            let response = match within(deadline, self.send(Method::GET, &url, handle)).await {
                None => return timed_out(handle, last_state, last_trace_id, polls),
                Some(Ok(response)) => response,
                // The stack already retried what it could: a poll that failed in the client
                // (a transport failure, a refused connection) is tried again at the next turn.
                Some(Err(_)) => continue,
            };
            let (parts, body) = response.into_parts();
            let classification = parts.extensions.get::<Classification>().cloned();
            if let Some(id) = classification.as_ref().and_then(|c| c.trace_id()) {
                last_trace_id = Some(id.clone());
            }
            if parts.status.is_redirection() {
                // `303 See Other` points at the result; another redirect moves the status.
                if let Some(uri) = location(&parts.headers).and_then(|l| resolve(&url, l)) {
                    if parts.status == StatusCode::SEE_OTHER || fetching_result {
                        handle.result_url = Some(uri);
                        handle.result_ready = true;
                        fetching_result = true;
                        next_wait = Duration::ZERO;
                    } else {
                        handle.status_url = uri;
                    }
                }
                continue;
            }
            if fetching_result && parts.status.is_success() && parts.status != StatusCode::ACCEPTED
            {
                let ending = match classification {
                    // The result answer itself reports a failure (its body was classified).
                    Some(c) if c.is_failure() => JobEnding::Failed(Box::new(c)),
                    _ => {
                        JobEnding::Succeeded(Response::from_parts(parts, ResultBody::unread(body)))
                    }
                };
                return Ok(self.finish(handle, ending, last_trace_id, polls));
            }
            let Some((bytes, end)) = within(deadline, self.read_body(body)).await else {
                return timed_out(handle, last_state, last_trace_id, polls);
            };
            let classification = classification.unwrap_or_else(|| {
                self.classifier
                    .classify(parts.status, &parts.headers, &bytes, BodyRead::Complete)
            });
            if let Some(id) = classification.trace_id() {
                last_trace_id = Some(id.clone());
            }
            // The answer's own wait, never shorter than the backoff: a `Retry-After: 0` on a
            // pending job does not make the poller spin.
            if let Some(hint) = WaitHint::from_response(
                &parts.headers,
                classification.body_wait(),
                SystemTime::now(),
            ) {
                next_wait = next_wait.max(hint.delay());
            }
            if fetching_result && parts.status == StatusCode::ACCEPTED {
                continue;
            }
            // A 2xx is read for the job's state, whatever failure its body reports; other
            // statuses are the poll's own failure.
            if !parts.status.is_success() {
                match poll_failure(&classification) {
                    PollFailure::NotFound if handle.created.elapsed() < self.not_found_grace => {
                        continue
                    }
                    PollFailure::NotFound => {
                        return Err(JobError::NotFound {
                            job_id: handle.job_id.clone(),
                        })
                    }
                    PollFailure::Transient => continue,
                    PollFailure::Refused => {
                        return Err(JobError::PollRejected {
                            classification: Box::new(classification),
                            job_id: handle.job_id.clone(),
                        })
                    }
                }
            }
            if matches!(end, BodyEnd::Failed) {
                // The answer broke off: its state is unknown, ask again.
                continue;
            }
            let answer = StatusAnswer::new(parts.status, &parts.headers, &bytes, &self.classifier);
            let (mut state, links) = self.reader.read(&answer).into_parts();
            let _ = handle.learn(links);
            if parts.status == StatusCode::ACCEPTED && state == JobState::Succeeded {
                // `202 Accepted` means not done, whatever else the body lacks.
                state = JobState::pending(None);
            }
            match state {
                JobState::Pending { detail } => {
                    last_state = detail.or(last_state);
                    if let Some(uri) = location(&parts.headers).and_then(|l| resolve(&url, l)) {
                        handle.status_url = uri;
                    }
                }
                JobState::Succeeded => match &handle.result_url {
                    Some(result_url) if !fetching_result && *result_url != url => {
                        // Fetch the result at once.
                        handle.result_ready = true;
                        fetching_result = true;
                        next_wait = Duration::ZERO;
                    }
                    _ => {
                        let result =
                            Response::from_parts(parts, ResultBody::new(bytes, end.rest()));
                        let ending = JobEnding::Succeeded(result);
                        return Ok(self.finish(handle, ending, last_trace_id, polls));
                    }
                },
                JobState::Failed(c) => {
                    return Ok(self.finish(handle, JobEnding::Failed(c), last_trace_id, polls))
                }
                JobState::Canceled => {
                    return Ok(self.finish(handle, JobEnding::Canceled, last_trace_id, polls))
                }
            }
        }
    }

    /// Asks the provider to cancel the job: `Ok(false)` when it named no cancel URL.
    pub async fn cancel(&self, handle: &JobHandle) -> Result<bool, JobError> {
        let Some((method, url)) = handle.cancel.clone() else {
            return Ok(false);
        };
        let response = self
            .send(method, &url, handle)
            .await
            .map_err(JobError::Service)?;
        let (parts, body) = response.into_parts();
        let classification = match parts.extensions.get::<Classification>().cloned() {
            Some(c) => c,
            None => {
                let (bytes, _) = self.read_body(body).await;
                self.classifier
                    .classify(parts.status, &parts.headers, &bytes, BodyRead::Complete)
            }
        };
        if !parts.status.is_success() {
            return Err(JobError::CancelRejected {
                classification: Box::new(classification),
                job_id: handle.job_id.clone(),
            });
        }
        Ok(true)
    }

    fn finish(
        &self,
        handle: &JobHandle,
        ending: JobEnding<B>,
        last_trace_id: Option<TraceId>,
        polls: u32,
    ) -> JobOutcome<B> {
        JobOutcome {
            ending,
            job_id: handle.job_id.clone(),
            create_ids: handle.create_ids.clone(),
            create_trace_id: handle.create_trace_id.clone(),
            create_attempts: handle.create_attempts.clone(),
            last_trace_id: last_trace_id.or_else(|| handle.create_trace_id.clone()),
            polls,
            elapsed: handle.created.elapsed(),
        }
    }

    /// One request without a body to `url`. The poller's headers, then those of the create
    /// request the poller's do not set, go only to the job's origin.
    async fn send(
        &self,
        method: Method,
        url: &Uri,
        handle: &JobHandle,
    ) -> Result<Response<B>, BoxError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = method;
        *request.uri_mut() = url.clone();
        // A status answer's 2xx is final for the retry layer: the task's failure it may report
        // is read here, not retried.
        request.extensions_mut().insert(SuccessStatusFinal);
        if handle.trusts(url) {
            let headers = request.headers_mut();
            for (name, value) in &self.headers {
                headers.append(name, value.clone());
            }
            for (name, value) in &handle.headers {
                if !self.headers.contains_key(name) {
                    headers.append(name, value.clone());
                }
            }
        }
        self.service
            .clone()
            .oneshot(request)
            .await
            .map_err(Into::into)
    }

    /// A body's first `body_limit` bytes (a chunk may carry it a little past), and how reading
    /// ended.
    async fn read_body(&self, body: B) -> (Bytes, BodyEnd<B>) {
        let mut body = Box::pin(body);
        let mut bytes = BytesMut::new();
        while bytes.len() < self.body_limit {
            match body.frame().await {
                None => return (bytes.freeze(), BodyEnd::Complete),
                Some(Err(_)) => return (bytes.freeze(), BodyEnd::Failed),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
            }
        }
        if body.is_end_stream() {
            (bytes.freeze(), BodyEnd::Complete)
        } else {
            (bytes.freeze(), BodyEnd::Limit(body))
        }
    }
}

impl<B> BodyEnd<B> {
    /// The unread rest of the body, if reading stopped at the limit.
    fn rest(self) -> Option<Pin<Box<B>>> {
        match self {
            BodyEnd::Limit(rest) => Some(rest),
            BodyEnd::Complete | BodyEnd::Failed => None,
        }
    }
}

/// What a failed poll means for the job.
enum PollFailure {
    /// 404: not visible yet, or not there.
    NotFound,
    /// Waiting helps: a rate limit, an overload, a server error, a timeout.
    Transient,
    /// Waiting does not help: credentials, permission, a malformed request.
    Refused,
}

fn poll_failure(classification: &Classification) -> PollFailure {
    match classification.kind() {
        Some(ErrorKind::NotFound) => PollFailure::NotFound,
        Some(
            ErrorKind::RateLimited
            | ErrorKind::ConcurrencyLimited
            | ErrorKind::Overloaded
            | ErrorKind::Timeout
            | ErrorKind::ServerError
            | ErrorKind::Transport
            | ErrorKind::Conflict,
        ) => PollFailure::Transient,
        Some(ErrorKind::Unknown) if classification.status().is_server_error() => {
            PollFailure::Transient
        }
        _ => PollFailure::Refused,
    }
}

/// A wait between half and all of `interval`.
fn jittered(interval: Duration) -> Duration {
    let half = interval / 2;
    let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half.saturating_add(Duration::from_nanos(fastrand::u64(0..=spread)))
}

/// `link` (absolute, or a path on `base`'s origin) as a URI.
fn resolve(base: &Uri, link: &str) -> Option<Uri> {
    let uri: Uri = link.parse().ok()?;
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Some(uri);
    }
    if !link.starts_with('/') || link.starts_with("//") {
        return None;
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = uri.path_and_query().cloned();
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_against_the_base() {
        let base: Uri = "https://api.example.com/v1/queue/m".parse().unwrap();
        assert_eq!(
            resolve(&base, "/v1/queue/m/requests/r1/status").unwrap(),
            "https://api.example.com/v1/queue/m/requests/r1/status"
        );
        assert_eq!(
            resolve(&base, "https://queue.example.com/r1").unwrap(),
            "https://queue.example.com/r1"
        );
        assert!(resolve(&base, "relative/path").is_none());
        assert!(resolve(&base, "//evil.example.com/x").is_none());
        assert!(resolve(&base, "http://[::1").is_none());
    }

    #[test]
    fn credentials_go_to_the_job_origin_only() {
        let handle = JobHandle::new("https://api.example.com/v1/tasks/1".parse().unwrap());
        assert!(handle.trusts(&"https://api.example.com/v1/tasks/1/result".parse().unwrap()));
        assert!(!handle.trusts(&"https://evil.example.com/v1/tasks/1".parse().unwrap()));
        assert!(!handle.trusts(&"http://api.example.com/v1/tasks/1".parse().unwrap()));
        assert!(!handle.trusts(&"https://api.example.com:8443/v1/tasks/1".parse().unwrap()));
    }

    #[test]
    fn waits_stay_within_half_and_all_of_the_interval() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(2));
            assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
        let _ = jittered(Duration::MAX);
    }
}
