//! `probe`: send one request through the standard stack and see how its answers are read.
//!
//! ```text
//! cargo run --example probe -- [-X METHOD] [-H 'Name: value']... [-d BODY]
//!                               [--attempts N] [--deadline-ms N] URL
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
//! Exit code: 0 on success, 1 on a classified failure or transport error, 2 on bad usage.
//! The probe speaks plain HTTP (no TLS), for local gateways, mocks and proxies.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use http_resilience::classify::ProviderCode;
use http_resilience::ids::RequestIds;
use http_resilience::{Attempts, Classification, ResilienceLayer, ServiceBuilderExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::io::Write;
use tower::{ServiceBuilder, ServiceExt};

const USAGE: &str =
    "usage: probe [-X METHOD] [-H 'Name: value']... [-d BODY] [--attempts N] [--deadline-ms N] URL";

struct Args {
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
    attempts: Option<u32>,
    deadline: Option<Duration>,
    url: http::Uri,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let mut method = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut attempts = None;
    let mut deadline = None;
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
