//! The leak matrix: no secret a request carries appears in anything an error renders.
//!
//! Three placements of secrets (credential headers; the URL's query and user-info; JSON and
//! form body fields) × every way a call can end (connect refused, reset before and after the
//! headers, body cut, attempt timeout, deadline, classified failure, a gzipped failure, wait too
//! long, budget spent)
//! × both stacks (the tower stack over hyper-util, the reqwest-middleware stack) × both modes
//! (failures as responses, failures as errors) × every rendering (`Display`, `Debug`, `{:#?}`,
//! the support report, the `Display` and `Debug` of every error in the `source()` chain, and of
//! a failure response's `Classification`).
//!
//! The server is raw TCP on 127.0.0.1:0, so it can misbehave as real networks do, and every
//! failure it answers echoes the whole request it received (request line, headers and body),
//! as servers that quote a rejected key back do.

#![cfg(feature = "reqwest")]

mod common;

use std::error::Error;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use http_resilience::reqwest::{api_error_of, ResilienceMiddleware};
use http_resilience::retry::{Backoff, Jitter, RetryBudget};
use http_resilience::{ApiError, Classification, ResilienceLayer};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

const SECRET_MARK: &str = "SECRET";

/// Where the request carries its secrets.
#[derive(Debug, Clone, Copy)]
enum Placement {
    Headers,
    Url,
    JsonBody,
    FormBody,
}

const PLACEMENTS: [Placement; 4] = [
    Placement::Headers,
    Placement::Url,
    Placement::JsonBody,
    Placement::FormBody,
];

/// How the call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ConnectRefused,
    ResetBeforeHeaders,
    ResetAfterHeaders,
    BodyCut,
    AttemptTimeout,
    Deadline,
    ClassifiedFailure,
    CompressedFailure,
    WaitTooLong,
    BudgetSpent,
}

const ENDINGS: [Ending; 10] = [
    Ending::ConnectRefused,
    Ending::ResetBeforeHeaders,
    Ending::ResetAfterHeaders,
    Ending::BodyCut,
    Ending::AttemptTimeout,
    Ending::Deadline,
    Ending::ClassifiedFailure,
    Ending::CompressedFailure,
    Ending::WaitTooLong,
    Ending::BudgetSpent,
];

impl Ending {
    fn path(self) -> &'static str {
        match self {
            Ending::ConnectRefused => "/refused",
            Ending::ResetBeforeHeaders => "/reset-before",
            Ending::ResetAfterHeaders => "/reset-after",
            Ending::BodyCut => "/cut",
            Ending::AttemptTimeout | Ending::Deadline => "/hang",
            Ending::ClassifiedFailure => "/fail",
            Ending::CompressedFailure => "/gzip",
            Ending::WaitTooLong => "/wait",
            Ending::BudgetSpent => "/busy",
        }
    }

    fn layer(self) -> ResilienceLayer {
        let layer = ResilienceLayer::new().backoff(
            Backoff::new(Duration::from_millis(10), Duration::from_millis(20)).jitter(Jitter::None),
        );
        match self {
            Ending::AttemptTimeout => layer.attempt_timeout(Duration::from_millis(200)),
            Ending::Deadline => layer.deadline(Duration::from_millis(500)),
            Ending::BudgetSpent => layer.budget(RetryBudget::new(Duration::from_secs(1), 0, 0.0)),
            _ => layer,
        }
    }
}

/// A request's parts, each holding its secrets.
struct Call {
    url: String,
    headers: Vec<(&'static str, String)>,
    body: String,
    secrets: Vec<String>,
}

fn call(placement: Placement, addr: SocketAddr, ending: Ending) -> Call {
    let tag = format!("{placement:?}-{ending:?}").to_lowercase();
    let secret = |name: &str| format!("sk-{name}-{tag}-{SECRET_MARK}");
    let path = ending.path();
    let mut url = format!("http://{addr}{path}?model=m1");
    let mut headers = vec![("content-type", "application/json".to_owned())];
    let mut body = r#"{"prompt":"a cat"}"#.to_owned();
    let mut secrets = Vec::new();
    match placement {
        Placement::Headers => {
            let (bearer, key) = (secret("bearer"), secret("xkey"));
            headers.push(("authorization", format!("Bearer {bearer}")));
            headers.push(("x-api-key", key.clone()));
            secrets.extend([bearer, key]);
        }
        Placement::Url => {
            let (query, password) = (secret("query"), secret("password"));
            url = format!("http://user:{password}@{addr}{path}?model=m1&api_key={query}");
            secrets.extend([query, password]);
        }
        Placement::JsonBody => {
            let key = secret("json");
            body = format!(r#"{{"prompt": "a cat", "api_key": "{key}", "n": 1}}"#);
            secrets.push(key);
        }
        Placement::FormBody => {
            let key = secret("form");
            headers[0].1 = "application/x-www-form-urlencoded".to_owned();
            body = format!("prompt=a+cat&api_key={key}&n=1");
            secrets.push(key);
        }
    }
    Call {
        url,
        headers,
        body,
        secrets,
    }
}

// ---- The server ---------------------------------------------------------------------------------

/// Reads one request (head and `Content-Length` body); `None` if the peer went away.
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return Some(request);
            }
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
    }
}

async fn serve(mut stream: TcpStream) {
    while let Some(request) = read_request(&mut stream).await {
        let text = String::from_utf8_lossy(&request).into_owned();
        let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
        // Every failure quotes the whole request back, and the keys it found bare, with no
        // name beside them, as "Incorrect API key provided: sk-…" messages do.
        let echo = serde_json::to_string(&text).unwrap();
        let failure = format!(
            r#"{{"error": {{"message": "Incorrect API key provided: {}. You sent: {}", "type": "invalid_request_error", "code": "invalid_api_key"}}}}"#,
            bare_keys(&text).join(" and "),
            &echo[1..echo.len() - 1]
        );
        let answer = |status: &str, extra: &str, body: &str, declared: usize| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n{extra}\r\n{body}"
            )
        };
        let reply = if path.starts_with("/reset-before") {
            return;
        } else if path.starts_with("/reset-after") {
            // A failure whose body stops half-way.
            let cut = &failure[..failure.len() / 2];
            let _ = stream
                .write_all(answer("500 Internal Server Error", "", cut, failure.len()).as_bytes())
                .await;
            return;
        } else if path.starts_with("/cut") {
            let _ = stream
                .write_all(answer("200 OK", "", r#"{"data": "#, 500).as_bytes())
                .await;
            return;
        } else if path.starts_with("/hang") {
            // Never answers; the connection closes when the test's runtime ends.
            std::future::pending::<()>().await;
            return;
        } else if path.starts_with("/gzip") {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, failure.as_bytes()).unwrap();
            let gzipped = encoder.finish().unwrap();
            let head = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
                gzipped.len()
            );
            let mut reply = head.into_bytes();
            reply.extend_from_slice(&gzipped);
            if stream.write_all(&reply).await.is_err() {
                return;
            }
            continue;
        } else if path.starts_with("/fail") {
            answer("401 Unauthorized", "", &failure, failure.len())
        } else if path.starts_with("/wait") {
            answer(
                "429 Too Many Requests",
                "retry-after: 3600\r\n",
                &failure,
                failure.len(),
            )
        } else {
            answer("503 Service Unavailable", "", &failure, failure.len())
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The credentials a request carries, as a server that quotes them back would find them.
fn bare_keys(request: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for line in request.lines() {
        let lower = line.to_ascii_lowercase();
        for prefix in ["authorization: bearer ", "x-api-key: "] {
            if lower.starts_with(prefix) {
                keys.push(line[prefix.len()..].trim().to_owned());
            }
        }
        if let Some(at) = line.find("api_key=") {
            let value = &line[at + "api_key=".len()..];
            let end = value.find(['&', ' ']).unwrap_or(value.len());
            keys.push(value[..end].to_owned());
        }
    }
    keys
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---- Rendering ----------------------------------------------------------------------------------

/// Everything an error renders: itself three ways, and every error of its source chain.
fn renderings(error: &(dyn Error + 'static)) -> String {
    let mut out = format!("{error}\n{error:?}\n{error:#?}\n");
    let mut source = error.source();
    while let Some(error) = source {
        let _ = write!(out, "source: {error}\n{error:?}\n");
        source = error.source();
    }
    out
}

/// The `Display` and `Debug` of a response's classification, if it is a failure.
fn classification_renderings(extensions: &http::Extensions) -> String {
    match extensions.get::<Classification>() {
        Some(c) if c.is_failure() => format!("classification: {c}\n{c:?}\n"),
        _ => String::new(),
    }
}

fn api_error_renderings(error: &ApiError) -> String {
    format!("{}\nreport: {}", renderings(error), error.report())
}

/// Records which secrets leaked into `text`.
fn check(leaks: &mut Vec<String>, case: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            let at = text.find(secret.as_str()).unwrap_or(0);
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(60)
                .map_or(0, |(i, _)| i);
            let context: String = text[from..].chars().take(120).collect();
            leaks.push(format!("{case}: {secret} in …{context}…"));
        }
    }
}

// ---- The two stacks -----------------------------------------------------------------------------

/// Sends `call` through the tower stack over hyper-util; the renderings of whatever error came
/// back (a response body error included), or none.
async fn tower_stack(call: &Call, layer: ResilienceLayer, errors: bool) -> Option<String> {
    let mut builder = Request::post(call.url.as_str());
    for (name, value) in &call.headers {
        builder = builder.header(*name, value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(call.body.clone())))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    if errors {
        let mut service = tower::ServiceBuilder::new()
            .layer(layer.failures_as_errors())
            .service(client);
        let outcome = service.ready().await.unwrap().call(request).await;
        match outcome {
            Err(error) => Some(api_error_renderings(&error)),
            Ok(response) => response
                .into_body()
                .collect()
                .await
                .err()
                .map(|e| renderings(&*Box::<dyn Error + Send + Sync>::from(e))),
        }
    } else {
        let outcome = layer.layer_client(client).oneshot(request).await;
        match outcome {
            Err(error) => Some(renderings(&error)),
            Ok(response) => {
                // A failure as a response: what callers log is its classification.
                let mut text = classification_renderings(response.extensions());
                if let Err(e) = response.into_body().collect().await {
                    text.push_str(&renderings(&*Box::<dyn Error + Send + Sync>::from(e)));
                }
                (!text.is_empty()).then_some(text)
            }
        }
    }
}

/// Sends `call` through a reqwest-middleware client; the renderings of whatever error came back.
async fn middleware_stack(call: &Call, layer: ResilienceLayer, errors: bool) -> Option<String> {
    let builder = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
    let client = if errors {
        builder
            .with(ResilienceMiddleware::new(layer.failures_as_errors()))
            .build()
    } else {
        builder.with(ResilienceMiddleware::new(layer)).build()
    };
    let mut request = client.post(call.url.as_str()).body(call.body.clone());
    for (name, value) in &call.headers {
        request = request.header(*name, value.as_str());
    }
    match request.send().await {
        Err(error) => {
            let mut text = renderings(&error);
            if let Some(api_error) = api_error_of(&error) {
                text.push_str(&api_error_renderings(api_error));
            }
            Some(text)
        }
        // A body that fails while the caller reads it fails in reqwest's own `Response::bytes`,
        // which writes the response's URL into the error as it does without any middleware;
        // the caller strips it as for any reqwest error. What the stack adds must not leak.
        Ok(response) => {
            let mut text = classification_renderings(response.extensions());
            if let Err(e) = response.bytes().await {
                text.push_str(&renderings(&e.without_url()));
            }
            (!text.is_empty()).then_some(text)
        }
    }
}

/// `ResilienceLayer` as a tower layer over a client, without naming the service type.
trait LayerClient {
    fn layer_client<S>(self, inner: S) -> http_resilience::Resilient<S>;
}

impl LayerClient for ResilienceLayer {
    fn layer_client<S>(self, inner: S) -> http_resilience::Resilient<S> {
        tower::Layer::layer(&self, inner)
    }
}

#[tokio::test(start_paused = true)]
async fn no_secret_reaches_any_rendering_of_any_error() {
    let server = common::spawn_tcp_server(serve).await;
    let refused = closed_port().await;
    let mut leaks = Vec::new();
    let mut errors_seen = 0;
    for placement in PLACEMENTS {
        for ending in ENDINGS {
            let addr = if ending == Ending::ConnectRefused {
                refused
            } else {
                server
            };
            let call = call(placement, addr, ending);
            for errors in [false, true] {
                let mode = if errors { "errors" } else { "responses" };
                let case = format!("tower/{mode}/{placement:?}/{ending:?}");
                if let Some(text) = tower_stack(&call, ending.layer(), errors).await {
                    errors_seen += 1;
                    check(&mut leaks, &case, &text, &call.secrets);
                }
                let case = format!("middleware/{mode}/{placement:?}/{ending:?}");
                if let Some(text) = middleware_stack(&call, ending.layer(), errors).await {
                    errors_seen += 1;
                    check(&mut leaks, &case, &text, &call.secrets);
                }
            }
        }
    }
    // Every ending produced an error somewhere: the matrix is not vacuous.
    assert!(
        errors_seen >= PLACEMENTS.len() * (ENDINGS.len() * 2),
        "{errors_seen} errors"
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
