//! [`JobPoller`]: create a job once, poll it to a terminal state through the whole stack.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::outcome::{JobEnding, JobError, JobOutcome, ResultBody};
use super::status::{JobLinks, JobState, ReadStatus, StatusAnswer, TaskStatus};
use crate::classify::{BodyRead, Classification, Classifier, ErrorKind};
use crate::ids::{RequestIds, TraceId};
use crate::retry::{BoxError, SuccessStatusFinal, WaitHint};

/// A job the provider accepted and that is not finished: where to poll it, and what is known
/// of it. Made by [`JobPoller::create`], or by [`JobHandle::new`] for a job created elsewhere.
#[derive(Clone)]
pub struct JobHandle {
    job_id: Option<String>,
    status_url: Uri,
    result_url: Option<Uri>,
    cancel: Option<(Method, Uri)>,
    created: Instant,
    create_ids: Option<RequestIds>,
    create_trace_id: Option<TraceId>,
    /// The create request's headers a poll repeats (its credentials among them).
    headers: HeaderMap,
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The headers are not shown: they carry the caller's credentials.
        f.debug_struct("JobHandle")
            .field("job_id", &self.job_id)
            .field("status_url", &self.status_url)
            .field("result_url", &self.result_url)
            .field("cancel", &self.cancel)
            .field("create_ids", &self.create_ids)
            .field("create_trace_id", &self.create_trace_id)
            .finish_non_exhaustive()
    }
}

impl JobHandle {
    /// A job polled at `status_url`, created now as far as the not-found grace goes.
    pub fn new(status_url: Uri) -> Self {
        JobHandle {
            job_id: None,
            status_url,
            result_url: None,
            cancel: None,
            created: Instant::now(),
            create_ids: None,
            create_trace_id: None,
            headers: HeaderMap::new(),
        }
    }

    /// With the job's id.
    pub fn with_job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
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

    /// Takes the links an answer gives, resolved against the status URL.
    fn learn(&mut self, links: JobLinks) -> Result<(), JobError> {
        if self.job_id.is_none() {
            self.job_id = links.job_id;
        }
        if let Some(url) = links.status_url {
            self.status_url = resolve(&self.status_url, &url)?;
        }
        if let Some(url) = links.result_url {
            self.result_url = Some(resolve(&self.status_url, &url)?);
        }
        if let Some((method, url)) = links.cancel {
            self.cancel = Some((method, resolve(&self.status_url, &url)?));
        }
        Ok(())
    }
}

/// What happened to a create request: a job to wait for, or one that already ended (a
/// provider that answers synchronously, or refuses the task at once).
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
const NOT_REPEATED: [HeaderName; 5] = [
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
    /// request's headers too, except those describing its body and its ids.
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

    /// Gives up waiting `deadline` after the job was created (default 10 minutes).
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

    /// Reads at most `limit` bytes of a status answer (default 1 MiB); the rest of a longer
    /// answer is not read and the answer is read from what arrived.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }
}

/// What one request through the stack brought back.
struct Answer<B> {
    parts: http::response::Parts,
    body: B,
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
        let start = Instant::now();
        let base = request.uri().clone();
        let mut poll_headers = request.headers().clone();
        for name in &NOT_REPEATED {
            poll_headers.remove(name);
        }
        let response = self
            .service
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| JobError::Service(error.into()))?;
        let Answer { parts, body } = split(response);
        let create_ids = parts.extensions.get::<RequestIds>().cloned();
        let classification = parts.extensions.get::<Classification>().cloned();
        if let Some(c) = classification.as_ref().filter(|c| c.is_failure()) {
            return Err(JobError::CreateRejected(Box::new(c.clone())));
        }
        let bytes = self.read_body(body).await;
        let classification = classification.unwrap_or_else(|| {
            self.classifier
                .classify(parts.status, &parts.headers, &bytes, BodyRead::Complete)
        });
        if classification.is_failure() {
            return Err(JobError::CreateRejected(Box::new(classification)));
        }
        let create_trace_id = classification.trace_id().cloned();
        let answer = StatusAnswer::new(parts.status, &parts.headers, &bytes, &self.classifier);
        let (state, links) = self.reader.read(&answer).into_parts();
        let mut handle = JobHandle {
            job_id: None,
            status_url: base.clone(),
            result_url: None,
            cancel: None,
            created: start,
            create_ids,
            create_trace_id,
            headers: poll_headers,
        };
        let named_status = links.status_url.is_some();
        handle.learn(links)?;
        if !named_status {
            let location = parts
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let templated = self
                .status_url_template
                .as_deref()
                .zip(handle.job_id.as_deref())
                .map(|(template, id)| template.replace("{id}", id));
            match location.map(str::to_owned).or(templated) {
                Some(url) => handle.status_url = resolve(&base, &url)?,
                None if state.is_terminal() => {}
                None => return Err(JobError::NoStatusUrl),
            }
        }
        let outcome = |ending| JobOutcome {
            ending,
            job_id: handle.job_id.clone(),
            create_ids: handle.create_ids.clone(),
            create_trace_id: handle.create_trace_id.clone(),
            last_trace_id: handle.create_trace_id.clone(),
            polls: 0,
            elapsed: start.elapsed(),
        };
        Ok(match state {
            JobState::Pending { .. } => Created::Pending(handle),
            JobState::Succeeded if handle.result_url.is_none() => Created::Finished(outcome(
                JobEnding::Succeeded(Response::from_parts(parts, ResultBody::read(bytes))),
            )),
            // The result is elsewhere: fetch it as any poll would.
            JobState::Succeeded => Created::Pending(handle),
            JobState::Failed(c) => Created::Finished(outcome(JobEnding::Failed(c))),
            JobState::Canceled => Created::Finished(outcome(JobEnding::Canceled)),
        })
    }

    /// Creates the job ([`create`](Self::create)) and waits for it ([`wait`](Self::wait)).
    pub async fn create_and_wait(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<JobOutcome<B>, JobError> {
        match self.create(request).await? {
            Created::Finished(outcome) => Ok(outcome),
            Created::Pending(handle) => self.wait(&handle).await,
        }
    }

    /// Polls the job until it ends, the deadline passes, or a poll is refused for good.
    pub async fn wait(&self, handle: &JobHandle) -> Result<JobOutcome<B>, JobError> {
        let mut handle = handle.clone();
        let deadline = handle.created + self.deadline;
        let mut interval = self.first_interval;
        let mut polls = 0u32;
        let mut last_state = None;
        let mut last_trace_id = None;
        let mut fetching_result = false;
        let mut next_wait = Some(jittered(interval));
        loop {
            let wait = next_wait.take().unwrap_or_default();
            if Instant::now() + wait >= deadline {
                return Ok(self.finish(
                    &handle,
                    JobEnding::TimedOut { last_state },
                    last_trace_id,
                    polls,
                ));
            }
            tokio::time::sleep(wait).await;
            interval = (interval + interval / 2).min(self.max_interval);
            next_wait = Some(jittered(interval));
            polls += 1;
            let url = match (&handle.result_url, fetching_result) {
                (Some(result_url), true) => result_url.clone(),
                _ => handle.status_url.clone(),
            };
            let Ok(response) = self.send(Method::GET, &url, &handle.headers).await else {
                // The stack already retried what it could: a poll that failed in the client
                // (a transport failure, a refused connection) is tried again at the next turn.
                continue;
            };
            let Answer { parts, body } = split(response);
            let classification = parts.extensions.get::<Classification>().cloned();
            if let Some(id) = classification.as_ref().and_then(|c| c.trace_id()) {
                last_trace_id = Some(id.clone());
            }
            if fetching_result && parts.status.is_success() && parts.status != StatusCode::ACCEPTED
            {
                let ending =
                    JobEnding::Succeeded(Response::from_parts(parts, ResultBody::unread(body)));
                return Ok(self.finish(&handle, ending, last_trace_id, polls));
            }
            let bytes = self.read_body(body).await;
            let classification = classification.unwrap_or_else(|| {
                self.classifier
                    .classify(parts.status, &parts.headers, &bytes, BodyRead::Complete)
            });
            if let Some(id) = classification.trace_id() {
                last_trace_id = Some(id.clone());
            }
            let server_wait = WaitHint::from_response(
                &parts.headers,
                classification.body_wait(),
                SystemTime::now(),
            )
            .map(|hint| hint.delay());
            if let Some(server_wait) = server_wait {
                next_wait = Some(server_wait);
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
                    PollFailure::NotFound => return Err(JobError::NotFound),
                    PollFailure::Transient => continue,
                    PollFailure::Refused => {
                        return Err(JobError::PollRejected(Box::new(classification)))
                    }
                }
            }
            let answer = StatusAnswer::new(parts.status, &parts.headers, &bytes, &self.classifier);
            let (state, links) = self.reader.read(&answer).into_parts();
            handle.learn(links)?;
            match state {
                JobState::Pending { detail } => last_state = detail.or(last_state),
                JobState::Succeeded => match &handle.result_url {
                    Some(result_url) if !fetching_result && *result_url != url => {
                        // Fetch the result at once.
                        fetching_result = true;
                        next_wait = Some(Duration::ZERO);
                    }
                    _ => {
                        let ending = JobEnding::Succeeded(Response::from_parts(
                            parts,
                            ResultBody::read(bytes),
                        ));
                        return Ok(self.finish(&handle, ending, last_trace_id, polls));
                    }
                },
                JobState::Failed(c) => {
                    return Ok(self.finish(&handle, JobEnding::Failed(c), last_trace_id, polls))
                }
                JobState::Canceled => {
                    return Ok(self.finish(&handle, JobEnding::Canceled, last_trace_id, polls))
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
            .send(method, &url, &handle.headers)
            .await
            .map_err(JobError::Service)?;
        let Answer { parts, body } = split(response);
        let classification = match parts.extensions.get::<Classification>().cloned() {
            Some(c) => c,
            None => {
                let bytes = self.read_body(body).await;
                self.classifier
                    .classify(parts.status, &parts.headers, &bytes, BodyRead::Complete)
            }
        };
        if classification.is_failure() {
            return Err(JobError::PollRejected(Box::new(classification)));
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
            last_trace_id: last_trace_id.or_else(|| handle.create_trace_id.clone()),
            polls,
            elapsed: handle.created.elapsed(),
        }
    }

    /// One request without a body to `url`, with the poller's headers, then those of the create
    /// request the poller's do not set.
    async fn send(
        &self,
        method: Method,
        url: &Uri,
        create_headers: &HeaderMap,
    ) -> Result<Response<B>, BoxError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = method;
        *request.uri_mut() = url.clone();
        // A status answer's 2xx is final for the retry layer: the task's failure it may report
        // is read here, not retried.
        request.extensions_mut().insert(SuccessStatusFinal);
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        for (name, value) in create_headers {
            if !self.headers.contains_key(name) {
                headers.append(name, value.clone());
            }
        }
        self.service
            .clone()
            .oneshot(request)
            .await
            .map_err(Into::into)
    }

    /// A status answer's body, up to the limit; what arrived if reading fails.
    async fn read_body(&self, body: B) -> Bytes {
        let mut limited = std::pin::pin!(Limited::new(body, self.body_limit));
        let mut bytes = bytes::BytesMut::new();
        while let Some(frame) = limited.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                Err(_) => break,
            }
        }
        bytes.freeze()
    }
}

fn split<B>(response: Response<B>) -> Answer<B> {
    let (parts, body) = response.into_parts();
    Answer { parts, body }
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
    half + Duration::from_nanos(fastrand::u64(0..=spread))
}

/// `link` (absolute, or a path on `base`'s host) as a URI.
fn resolve(base: &Uri, link: &str) -> Result<Uri, JobError> {
    let invalid = || JobError::InvalidUrl(link.to_owned());
    let uri: Uri = link.parse().map_err(|_| invalid())?;
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Ok(uri);
    }
    if !link.starts_with('/') {
        return Err(invalid());
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = uri.path_and_query().cloned();
    Uri::from_parts(parts).map_err(|_| invalid())
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
        assert!(resolve(&base, "relative/path").is_err());
        assert!(resolve(&base, "http://[::1").is_err());
    }

    #[test]
    fn waits_stay_within_half_and_all_of_the_interval() {
        for _ in 0..1000 {
            let wait = jittered(Duration::from_secs(2));
            assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}
