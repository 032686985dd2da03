//! `probe`: send one request through the standard stack and see how its answers are read.
//!
//! ```text
//! cargo run --example probe -- [-X METHOD] [-H 'Name: value']... [-d BODY]
//!                               [--attempts N] [--deadline-ms N]
//!                               [--wait-job task|queue|replicate [--status-url TEMPLATE]
//!                                [--poll-ms N] [--job-deadline-ms N]] URL
//! ```
//!
//! The final response body goes to stdout; the outcome goes to stderr as one JSON line:
//!
//! ```text
//! {"status":429,"kind":"quota_exhausted","code":"insufficient_quota","message":"…",
//!  "trace_id":"req_123","client_request_id":"…","idempotency_key":null,
//!  "stopped":"verdict_never","elapsed_ms":12,
//!  "attempts":[{"status":429,"kind":"quota_exhausted","trace_id":"req_123","delay_ms":0}]}
//! ```
//!
//! | key | value |
//! | --- | --- |
//! | `status` | the final HTTP status, or `null` when no response came |
//! | `kind` | the `ErrorKind` in snake_case, `null` on success |
//! | `decided_by` | the signal that decided the kind: a body field (`error.type`), `header x-amzn-errortype`, `message` or `status`; `null` on success |
//! | `code`, `message` | the provider's code (text or number) and message, or `null` |
//! | `trace_id` | the server's trace id of the final answer, or `null` |
//! | `client_request_id` | the `x-request-id` the stack stamped (or yours) |
//! | `idempotency_key` | the key sent with a POST or PATCH, or `null` |
//! | `stopped` | why retrying stopped, snake_case (`succeeded`, `verdict_never`, …) |
//! | `elapsed_ms` | time from the first attempt to the outcome |
//! | `attempts` | one `{status, kind, trace_id, delay_ms}` per attempt |
//! | `error` | present only when no response came: the transport error |
//!
//! With `--wait-job`, the request creates an asynchronous job and the probe polls it to its end
//! ([`JobPoller`](http_resilience::jobs::JobPoller)) with the named status reader: `task` (task
//! objects, `{success, data, error}`), `queue` (`IN_QUEUE` / `COMPLETED` queues, as fal's) or
//! `replicate`. `--status-url` is a template such as `/v1/tasks/{id}` for APIs whose create
//! answer names no status URL; `--poll-ms` is the first wait between polls (default 1000, growing
//! to ten times it); `--job-deadline-ms` ends waiting (default 600000). The result body goes to
//! stdout; stderr gets one JSON line:
//!
//! ```text
//! {"job":{"ending":"succeeded","job_id":"r1","polls":5,"last_state":"IN_PROGRESS",
//!  "kind":null,"code":null,"message":null,"create_trace_id":"…","last_trace_id":"…",
//!  "client_request_id":"…","idempotency_key":"…","elapsed_ms":7012}}
//! ```
//!
//! `ending` is `succeeded`, `failed` (with the task's own `kind`, `code` and `message`),
//! `canceled`, `timed_out` (with `last_state`) or `error` (creating or polling was refused; the
//! reason in `message`).
//!
//! Exit code: 0 on success, 1 on a classified failure or transport error (or a job that did not
//! succeed), 2 on bad usage.
//! The probe speaks plain HTTP (no TLS), for local gateways, mocks and proxies.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use http_resilience::classify::ProviderCode;
use http_resilience::ids::RequestIds;
use http_resilience::jobs::{JobEnding, JobPoller, QueueStatus, ReplicateStatus, TaskStatus};
use http_resilience::{Attempts, Classification, ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::io::Write;
use tower::{ServiceBuilder, ServiceExt};

const USAGE: &str = "usage: probe [-X METHOD] [-H 'Name: value']... [-d BODY] [--attempts N] \
     [--deadline-ms N] [--wait-job task|queue|replicate [--status-url TEMPLATE] [--poll-ms N] \
     [--job-deadline-ms N]] URL";

/// Which status reader `--wait-job` names.
#[derive(Clone, Copy)]
enum Reader {
    Task,
    Queue,
    Replicate,
}

/// How `--wait-job` waits.
struct JobArgs {
    reader: Reader,
    status_url: Option<String>,
    poll: Duration,
    deadline: Duration,
}

struct Args {
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
    attempts: Option<u32>,
    deadline: Option<Duration>,
    job: Option<JobArgs>,
    url: http::Uri,
}

fn millis(flag: &str, text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{flag} takes a whole number, not {text:?}"))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let mut method = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut attempts = None;
    let mut deadline = None;
    let mut reader = None;
    let mut status_url = None;
    let mut poll = None;
    let mut job_deadline = None;
    let mut url = None;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-X" | "--request" => {
                let text = value("-X")?;
                method = Some(
                    Method::from_bytes(text.as_bytes())
                        .map_err(|_| format!("bad method {text:?}"))?,
                );
            }
            "-H" | "--header" => {
                let text = value("-H")?;
                let (name, val) = text
                    .split_once(':')
                    .ok_or_else(|| format!("bad header {text:?}: expected 'Name: value'"))?;
                let name = HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| format!("bad header name in {text:?}"))?;
                let val = HeaderValue::from_str(val.trim())
                    .map_err(|_| format!("bad header value in {text:?}"))?;
                headers.push((name, val));
            }
            "-d" | "--data" => body = Some(Bytes::from(value("-d")?)),
            "--attempts" => {
                let text = value("--attempts")?;
                let n: u32 = text
                    .parse()
                    .map_err(|_| format!("--attempts takes a whole number, not {text:?}"))?;
                if n == 0 {
                    return Err("--attempts must be at least 1".into());
                }
                attempts = Some(n);
            }
            "--deadline-ms" => {
                let text = value("--deadline-ms")?;
                let ms: u64 = text
                    .parse()
                    .map_err(|_| format!("--deadline-ms takes a whole number, not {text:?}"))?;
                deadline = Some(Duration::from_millis(ms));
            }
            "--wait-job" => {
                let text = value("--wait-job")?;
                reader = Some(match text.as_str() {
                    "task" => Reader::Task,
                    "queue" => Reader::Queue,
                    "replicate" => Reader::Replicate,
                    _ => {
                        return Err(format!(
                            "--wait-job takes task, queue or replicate, not {text:?}"
                        ))
                    }
                });
            }
            "--status-url" => status_url = Some(value("--status-url")?),
            "--poll-ms" => poll = Some(millis("--poll-ms", &value("--poll-ms")?)?),
            "--job-deadline-ms" => {
                job_deadline = Some(millis("--job-deadline-ms", &value("--job-deadline-ms")?)?)
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"))
            }
            _ if url.is_some() => return Err(format!("more than one URL: {arg}")),
            _ => {
                let uri: http::Uri = arg.parse().map_err(|_| format!("bad URL {arg:?}"))?;
                if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                    return Err(format!(
                        "URL must be http://host[:port]/path (no TLS): {arg}"
                    ));
                }
                url = Some(uri);
            }
        }
    }
    let url = url.ok_or("missing URL")?;
    let job = match reader {
        Some(reader) => Some(JobArgs {
            reader,
            status_url,
            poll: poll.unwrap_or(Duration::from_secs(1)),
            deadline: job_deadline.unwrap_or(Duration::from_secs(600)),
        }),
        None if status_url.is_some() || poll.is_some() || job_deadline.is_some() => {
            return Err("--status-url, --poll-ms and --job-deadline-ms go with --wait-job".into())
        }
        None => None,
    };
    let method = method.unwrap_or(if body.is_some() {
        Method::POST
    } else {
        Method::GET
    });
    Ok(Args {
        method,
        headers,
        body,
        attempts,
        deadline,
        job,
        url,
    })
}

fn code_json(code: Option<&ProviderCode>) -> Value {
    match code {
        Some(ProviderCode::Text(text)) => json!(text),
        Some(ProviderCode::Number(n)) => json!(n),
        None => Value::Null,
    }
}

fn attempts_json(attempts: Option<&Attempts>) -> Value {
    let Some(attempts) = attempts else {
        return json!([]);
    };
    attempts
        .records()
        .iter()
        .map(|r| {
            json!({
                "status": r.status().map(|s| s.as_u16()),
                "kind": r.kind().map(|k| k.as_str()),
                "trace_id": r.trace_id().map(|t| t.as_str()),
                "delay_ms": r.delay().as_millis() as u64,
            })
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("probe: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    let mut layer = ResilienceLayer::new();
    if let Some(attempts) = args.attempts {
        layer = layer.max_attempts(attempts);
    }
    if let Some(deadline) = args.deadline {
        layer = layer.deadline(deadline);
    }
    let client = ServiceBuilder::new()
        .resilience(layer)
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let mut request = Request::new(Full::new(args.body.unwrap_or_default()));
    *request.method_mut() = args.method;
    *request.uri_mut() = args.url;
    for (name, value) in args.headers {
        request.headers_mut().append(name, value);
    }

    if let Some(job) = args.job {
        return wait_job(client, request, job).await;
    }

    match client.oneshot(request).await {
        Ok(response) => {
            let extensions = response.extensions().clone();
            let status = response.status().as_u16();
            let body = match response.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    eprintln!("probe: the response body failed: {error}");
                    Bytes::new()
                }
            };
            let _ = std::io::stdout().write_all(&body);
            let _ = std::io::stdout().flush();
            let classification = extensions.get::<Classification>();
            let attempts = extensions.get::<Attempts>();
            let ids = extensions.get::<RequestIds>();
            let outcome = json!({
                "status": status,
                "kind": classification.and_then(|c| c.kind()).map(|k| k.as_str()),
                "decided_by": classification.and_then(|c| c.decided_by()).map(|d| d.to_string()),
                "code": code_json(classification.and_then(|c| c.code())),
                "message": classification.and_then(|c| c.message()),
                "trace_id": classification.and_then(|c| c.trace_id()).map(|t| t.as_str()),
                "client_request_id": ids.and_then(|i| i.client_request_id()).map(|id| id.as_str()),
                "idempotency_key": ids.and_then(|i| i.idempotency_key()).map(|key| key.as_str()),
                "stopped": attempts.map(|a| a.stopped().as_str()),
                "elapsed_ms": attempts.map_or(0, |a| a.elapsed().as_millis() as u64),
                "attempts": attempts_json(attempts),
            });
            eprintln!("{outcome}");
            if classification.is_some_and(|c| c.is_failure()) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            let attempts = error.attempts();
            let outcome = json!({
                "status": Value::Null,
                "kind": error.kind().as_str(),
                "decided_by": Value::Null,
                "code": Value::Null,
                "message": error.to_string(),
                "trace_id": attempts.trace_ids().last().map(|t| t.as_str()),
                "client_request_id": error.request_ids().client_request_id().map(|id| id.as_str()),
                "idempotency_key": error.request_ids().idempotency_key().map(|key| key.as_str()),
                "stopped": attempts.stopped().as_str(),
                "elapsed_ms": attempts.elapsed().as_millis() as u64,
                "attempts": attempts_json(Some(attempts)),
                "error": error.service_error().map(|e| e.to_string()),
            });
            eprintln!("{outcome}");
            ExitCode::from(1)
        }
    }
}

/// `--wait-job`: creates the job, polls it to its end, prints the result and the outcome.
async fn wait_job<S, B>(client: S, request: Request<Full<Bytes>>, job: JobArgs) -> ExitCode
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: Into<http_resilience::retry::BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<http_resilience::retry::BoxError> + std::fmt::Display,
{
    let mut poller = JobPoller::new(client)
        .intervals(job.poll, job.poll * 10)
        .deadline(job.deadline);
    if let Some(template) = job.status_url {
        poller = poller.status_url_template(template);
    }
    let outcome = match job.reader {
        Reader::Task => poller.reader(TaskStatus).create_and_wait(request).await,
        Reader::Queue => poller.reader(QueueStatus).create_and_wait(request).await,
        Reader::Replicate => {
            poller
                .reader(ReplicateStatus)
                .create_and_wait(request)
                .await
        }
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            let failure = error.classification();
            let line = json!({"job": {
                "ending": "error",
                "kind": failure.and_then(|c| c.kind()).map(|k| k.as_str()),
                "code": code_json(failure.and_then(|c| c.code())),
                "message": error.to_string(),
                "trace_id": failure.and_then(|c| c.trace_id()).map(|t| t.as_str()),
                "job_id": error.job_id(),
            }});
            eprintln!("{line}");
            return ExitCode::from(1);
        }
    };
    let ids = outcome.create_ids();
    let mut line = json!({"job": {
        "job_id": outcome.job_id(),
        "polls": outcome.polls(),
        "last_state": Value::Null,
        "kind": Value::Null,
        "code": Value::Null,
        "message": Value::Null,
        "create_trace_id": outcome.create_trace_id().map(|t| t.as_str()),
        "last_trace_id": outcome.last_trace_id().map(|t| t.as_str()),
        "client_request_id": ids.and_then(|i| i.client_request_id()).map(|id| id.as_str()),
        "idempotency_key": ids.and_then(|i| i.idempotency_key()).map(|key| key.as_str()),
        "elapsed_ms": outcome.elapsed().as_millis() as u64,
    }});
    let succeeded = outcome.is_success();
    let fields = &mut line["job"];
    match outcome.into_ending() {
        JobEnding::Succeeded(result) => {
            fields["ending"] = json!("succeeded");
            match result.into_body().collect().await {
                Ok(collected) => {
                    let _ = std::io::stdout().write_all(&collected.to_bytes());
                    let _ = std::io::stdout().flush();
                }
                Err(error) => eprintln!("probe: the result body failed: {error}"),
            }
        }
        JobEnding::Failed(classification) => {
            fields["ending"] = json!("failed");
            fields["kind"] = json!(classification.kind().map(|k| k.as_str()));
            fields["code"] = code_json(classification.code());
            fields["message"] = json!(classification.message());
        }
        JobEnding::Canceled => fields["ending"] = json!("canceled"),
        JobEnding::TimedOut { last_state } => {
            fields["ending"] = json!("timed_out");
            fields["last_state"] = json!(last_state);
        }
        _ => fields["ending"] = json!("unknown"),
    }
    eprintln!("{line}");
    if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
