//! Fault soak: a few thousand logical requests at concurrency 32 against servers on 127.0.0.1:0
//! that misbehave on purpose, through both stacks: `ResilienceLayer` over a hyper-util client,
//! and `ResilienceMiddleware` in a `reqwest_middleware::ClientWithMiddleware`.
//!
//! Every request takes its [`Fault`] from its index, so what the caller must see is known in
//! advance: resets before any header, bodies cut short, servers slower than the attempt timeout,
//! garbage and huge waits, HTML labelled JSON, 10,000-deep JSON, 5 MiB bodies, failure bodies,
//! and POSTs that create a job and then fail or hang. Half the requests run through a stack built
//! with `failures_as_errors()`. For each stack the soak proves:
//!
//! - **no panic**: every logical request runs in its own task, and none ends in a panic;
//! - **no hang**: every call ends by its deadline, plus a slack for a loaded 2-core machine;
//! - **one job per POST**: the server creates at most one job per idempotency key (a request
//!   with a known key gets the stored job back), so a key that changed between the attempts of
//!   one logical POST would show as a second job; every POST must end with exactly one job, and
//!   the jobs must number the POSTs that reached the server;
//! - **lossless bodies**: success bodies (chunked, 10,000-deep JSON, 5 MiB) arrive byte for
//!   byte, and failure bodies are replayed byte for byte, as the response's body or as
//!   `ApiError::response_body`;
//! - **no leak**: the secret sent in the `Authorization` header, the URL query and the JSON body
//!   appears in no rendering of any error: `Display`, `Debug`, `{:#?}`, the `ApiError`'s support
//!   report, and those of every error in the source chain, body errors included;
//! - **bounded amplification**: no logical request makes more than its 3 attempts, none reaches
//!   the server more often than its `Attempts` record says (no retries behind the stack's
//!   back), and a wait past the cap or a 400 stops retrying at once.
//!
//! Violations are collected, not asserted one by one, and reported together at the end, grouped
//! by check with a few examples each, so one run shows everything that is wrong. The soak is
//! bounded in count ([`REQUESTS`] per stack) and in time (a guard per request and one on the
//! whole soak); it connects to 127.0.0.1 only.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use common::{full, hyper_client, spawn_server, ServerBody};
use futures_util::StreamExt;
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use http_resilience::retry::{Backoff, ReplayBody, RetryBudget};
use http_resilience::{
    ApiError, Attempts, RequestIds, ResilienceLayer, Resilient, ResilientErrors, ServiceBuilderExt,
    StopReason,
};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{ServiceBuilder, ServiceExt};

// ---- Limits -----------------------------------------------------------------------------------

/// Logical requests per stack: 80 rounds of the schedule, alternate rounds with failures as
/// errors.
const REQUESTS: usize = SCHEDULE.len() * 80;
const CONCURRENCY: usize = 32;

const MAX_ATTEMPTS: u32 = 3;
/// Well above what an immediate answer takes on a loaded 2-core machine (about 0.3 s at worst
/// seen, at start-up through reqwest), so only the slow faults time out.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_SERVER_WAIT: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_millis(1500);
/// What a call may take beyond its deadline on a loaded machine: the check is about hangs.
const DEADLINE_SLACK: Duration = Duration::from_millis(1500);

/// How long a slow server takes to answer: past the attempt timeout, and past the deadline.
const SLOW_ANSWER: Duration = Duration::from_secs(3);
/// The most one logical request, its body read included, may take before it counts as hung.
const REQUEST_GUARD: Duration = Duration::from_secs(10);
/// The most the soak of one stack may take.
const SOAK_GUARD: Duration = Duration::from_secs(50);

/// What every secret sent starts with; no error may contain it.
const SECRET: &str = "sk-soak";
/// The length of the 5 MiB body's padding.
const HUGE_LEN: usize = 5 * 1024 * 1024;
/// Nesting depth of the deep JSON bodies.
const DEPTH: usize = 10_000;
/// What a cut body sends of the 1000 bytes its `Content-Length` announces.
const CUT_SENT: &[u8] = b"{\"cut\":tru";
/// The most body bytes the client reads before calling a body runaway.
const BODY_CAP: usize = HUGE_LEN + 64 * 1024;

// ---- The faults -------------------------------------------------------------------------------

/// What the server does with one request, and (in [`Fault::expect`]) what the caller must see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// 200 JSON with a `Content-Length`, a body unique to the request (read to classify it).
    /// Caller: that body.
    Json,
    /// 200 JSON in three chunks, no `Content-Length` (passed through). Caller: that body.
    Chunked,
    /// Raw server: reads the request head, then resets the connection before any header.
    /// Caller: an error; every attempt fails in transport.
    Reset,
    /// Raw server: 200 JSON announcing 1000 bytes, sends 10, closes. Caller: an error, or a
    /// response whose body ends in an error; never a short body that looks complete.
    CutSuccess,
    /// Raw server: the same cut on a 503 (read to classify it, retried). Caller: as `CutSuccess`.
    CutFailure,
    /// Answers after [`SLOW_ANSWER`], past the attempt timeout and the deadline. Caller: a
    /// timeout error.
    Slow,
    /// 429 with an unusable wait (`Retry-After: garbage`, `retry-after-ms: NaN`, …). Caller: the
    /// final 429 and its body, after the client's own backoff.
    GarbageWait,
    /// 429 with `Retry-After: 99999999999`. Caller: that 429 and its body at once (stopped:
    /// wait too long), with the server's wait as the hint.
    HugeWait429,
    /// 503 with `Retry-After: 99999999999`. Caller: as `HugeWait429`.
    HugeWait503,
    /// 503 with `retry-after-ms: 18446744073709551615`. Caller: as `HugeWait429`.
    HugeWaitMs,
    /// 502 with an nginx HTML page labelled `application/json`. Caller: the 502 and the page.
    HtmlAsJson,
    /// 200 with `[[[…i…]]]` nested 10,000 deep, labelled JSON (read to classify it). Caller: that
    /// body.
    DeepJson,
    /// 500 with 10,000-deep JSON (read, retried). Caller: the 500 and that body.
    DeepJsonFailure,
    /// 200 JSON of 5 MiB with a `Content-Length`, past the classification limit. Caller: every
    /// byte.
    FiveMib,
    /// POST answered 400 with an OpenAI-style error body, indented, keys not in sorted order
    /// (never retried). Caller: the 400 and that body, byte for byte.
    BadRequest,
    /// POST: creates the job, then answers 500; a request with a known key gets the stored job.
    /// Caller: 200 with the job; one job in all.
    JobThenFail,
    /// POST: creates the job, then answers only after [`SLOW_ANSWER`]; a request with a known
    /// key gets the stored job at once. Caller: 200 with the job; one job in all.
    JobThenHang,
}

/// Which fault request `i` meets: `SCHEDULE[i % SCHEDULE.len()]`.
const SCHEDULE: [Fault; 20] = [
    Fault::Json,
    Fault::Chunked,
    Fault::Reset,
    Fault::GarbageWait,
    Fault::JobThenFail,
    Fault::DeepJson,
    Fault::HugeWait429,
    Fault::CutSuccess,
    Fault::Json,
    Fault::HtmlAsJson,
    Fault::Slow,
    Fault::BadRequest,
    Fault::FiveMib,
    Fault::JobThenHang,
    Fault::HugeWait503,
    Fault::CutFailure,
    Fault::Chunked,
    Fault::HugeWaitMs,
    Fault::DeepJsonFailure,
    Fault::JobThenFail,
];

const ALL_FAULTS: [Fault; 17] = [
    Fault::Json,
    Fault::Chunked,
    Fault::Reset,
    Fault::CutSuccess,
    Fault::CutFailure,
    Fault::Slow,
    Fault::GarbageWait,
    Fault::HugeWait429,
    Fault::HugeWait503,
    Fault::HugeWaitMs,
    Fault::HtmlAsJson,
    Fault::DeepJson,
    Fault::DeepJsonFailure,
    Fault::FiveMib,
    Fault::BadRequest,
    Fault::JobThenFail,
    Fault::JobThenHang,
];

/// What the caller of one logical request must see.
enum Expect {
    /// A 200 with exactly this body.
    Success(Bytes),
    /// This failure with exactly this body: as the response, or as the `ApiError`'s status and
    /// `response_body` (every failure body here is under 64 KiB and holds no secret).
    Failure(StatusCode, Bytes),
    /// No response: an error (transport failure or timeout).
    NoResponse,
    /// A body cut short: an error, or a response whose body ends in an error.
    CutShort,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Json => "json",
            Fault::Chunked => "chunked",
            Fault::Reset => "reset",
            Fault::CutSuccess => "cut-success",
            Fault::CutFailure => "cut-failure",
            Fault::Slow => "slow",
            Fault::GarbageWait => "garbage-wait",
            Fault::HugeWait429 => "huge-wait-429",
            Fault::HugeWait503 => "huge-wait-503",
            Fault::HugeWaitMs => "huge-wait-ms",
            Fault::HtmlAsJson => "html-as-json",
            Fault::DeepJson => "deep-json",
            Fault::DeepJsonFailure => "deep-json-failure",
            Fault::FiveMib => "five-mib",
            Fault::BadRequest => "bad-request",
            Fault::JobThenFail => "job-then-fail",
            Fault::JobThenHang => "job-then-hang",
        }
    }

    fn from_name(name: &str) -> Option<Fault> {
        ALL_FAULTS.into_iter().find(|fault| fault.name() == name)
    }

    /// Faults hyper cannot produce, served by the raw TCP server.
    fn on_raw_server(self) -> bool {
        matches!(self, Fault::Reset | Fault::CutSuccess | Fault::CutFailure)
    }

    /// POSTs that create a paid job.
    fn creates_job(self) -> bool {
        matches!(self, Fault::JobThenFail | Fault::JobThenHang)
    }

    fn method(self) -> Method {
        match self {
            // A failed POST's report shows its (masked) request body.
            Fault::BadRequest => Method::POST,
            _ if self.creates_job() => Method::POST,
            _ => Method::GET,
        }
    }

    fn expect(self, i: usize) -> Expect {
        let failure = |status: u16, body: Bytes| {
            Expect::Failure(StatusCode::from_u16(status).expect("a status"), body)
        };
        match self {
            Fault::Json | Fault::Chunked => Expect::Success(json_ok(i)),
            Fault::DeepJson => Expect::Success(deep_json(i)),
            Fault::FiveMib => Expect::Success(five_mib(i).concat().into()),
            Fault::JobThenFail | Fault::JobThenHang => Expect::Success(job_body(i)),
            Fault::Reset | Fault::Slow => Expect::NoResponse,
            Fault::CutSuccess | Fault::CutFailure => Expect::CutShort,
            Fault::GarbageWait | Fault::HugeWait429 => failure(429, rate_limited_body(i)),
            Fault::HugeWait503 | Fault::HugeWaitMs => failure(503, overloaded_body(i)),
            Fault::HtmlAsJson => failure(502, Bytes::from_static(HTML_502.as_bytes())),
            Fault::DeepJsonFailure => failure(500, deep_json(i)),
            Fault::BadRequest => failure(400, bad_request_body(i)),
        }
    }
}

// ---- Bodies -----------------------------------------------------------------------------------

fn json_ok(i: usize) -> Bytes {
    format!(r#"{{"id":"res-{i}","object":"soak.result","output":["take {i}",{i},true]}}"#).into()
}

/// `[[[…i…]]]`, nested [`DEPTH`] deep.
fn deep_json(i: usize) -> Bytes {
    format!("{}{i}{}", "[".repeat(DEPTH), "]".repeat(DEPTH)).into()
}

/// The 5 MiB body in the three frames the server sends: a head unique to the request, the
/// shared padding, a tail.
fn five_mib(i: usize) -> [Bytes; 3] {
    static PADDING: OnceLock<Bytes> = OnceLock::new();
    let padding = PADDING.get_or_init(|| {
        // Letters from a small generator, in a block of a prime length, repeated: cheap to build
        // even unoptimised, and no short period to hide a shifted or repeated chunk.
        let mut state = 0x2545_f491_u32;
        let block: Vec<u8> = (0..4093)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                b'a' + (state >> 24) as u8 % 26
            })
            .collect();
        let mut padding = block.repeat(HUGE_LEN / block.len() + 1);
        padding.truncate(HUGE_LEN);
        padding.into()
    });
    [
        format!(r#"{{"id":"big-{i}","data":""#).into(),
        padding.clone(),
        Bytes::from_static(b"\"}"),
    ]
}

// Failure bodies (and the job) are indented, their keys not in sorted order: a body
// re-serialised on its way to the caller does not compare equal.

fn rate_limited_body(i: usize) -> Bytes {
    format!(
        r#"{{
  "error": {{
    "type": "requests",
    "message": "Rate limit reached for request {i}",
    "code": "rate_limit_exceeded"
  }}
}}
"#
    )
    .into()
}

fn overloaded_body(i: usize) -> Bytes {
    format!(r#"{{ "type": "error", "error": {{ "type": "overloaded_error", "message": "Overloaded ({i})" }} }}"#)
        .into()
}

fn bad_request_body(i: usize) -> Bytes {
    format!(
        r#"{{
  "error": {{
    "type": "invalid_request_error",
    "message": "prompt {i} is too long",
    "param": "prompt",
    "code": null
  }}
}}
"#
    )
    .into()
}

/// The job the server stores for a POST, and answers a request with a known key with.
fn job_body(i: usize) -> Bytes {
    format!(
        r#"{{
  "status": "queued",
  "id": "job-{i}"
}}
"#
    )
    .into()
}

const JOB_LOST: &str =
    r#"{ "error": { "type": "server_error", "message": "job created, answer lost" } }"#;

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
    <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// The unusable waits a [`Fault::GarbageWait`] sends, one per round.
const GARBAGE_WAITS: [(&str, &str); 6] = [
    ("retry-after", "garbage"),
    ("retry-after", "-1"),
    ("retry-after", "Wed, 99 Foo 2025 25:61:61 GMT"),
    ("retry-after-ms", "NaN"),
    ("retry-after-ms", "-inf"),
    ("retry-after-ms", "1e400"),
];

// ---- The servers ------------------------------------------------------------------------------

/// What the servers saw, shared by the hyper server and the raw one, and what the clients
/// recorded.
struct Ledger {
    /// Attempts that reached a server, per request index.
    hits: Vec<AtomicU32>,
    /// Attempts the client's `Attempts` record counted, per request index.
    client_attempts: Vec<AtomicU32>,
    /// The idempotency key the client's `Attempts` record names, per request index.
    client_keys: Mutex<HashMap<usize, String>>,
    /// The jobs created, by idempotency key: the index of the request that created each.
    jobs: Mutex<HashMap<String, usize>>,
    /// Requests the server could not place: unknown paths, POSTs without a key, a key reused by
    /// another logical request.
    strays: Mutex<Vec<String>>,
}

impl Ledger {
    fn new() -> Self {
        Ledger {
            hits: (0..REQUESTS).map(|_| AtomicU32::new(0)).collect(),
            client_attempts: (0..REQUESTS).map(|_| AtomicU32::new(0)).collect(),
            client_keys: Mutex::default(),
            jobs: Mutex::default(),
            strays: Mutex::default(),
        }
    }

    fn hit(&self, i: usize) {
        self.hits[i].fetch_add(1, Ordering::SeqCst);
    }

    fn stray(&self, what: String) {
        lock(&self.strays).push(what);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fault and request index of a path `/v1/{fault}/{index}` (any query ignored).
fn target(path: &str) -> Option<(Fault, usize)> {
    let path = path.split('?').next()?;
    let mut segments = path.strip_prefix("/v1/")?.split('/');
    let fault = Fault::from_name(segments.next()?)?;
    let index: usize = segments.next()?.parse().ok()?;
    (index < REQUESTS && segments.next().is_none()).then_some((fault, index))
}

fn reply(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: ServerBody,
) -> Response<ServerBody> {
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(body).expect("a valid response")
}

fn json(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<ServerBody> {
    reply(status, "application/json", headers, full(body))
}

/// A body sent as these frames, without a length: chunked unless a `Content-Length` is set.
fn frames(chunks: Vec<Bytes>) -> ServerBody {
    let frames = futures_util::stream::iter(chunks).map(|c| Ok::<_, Infallible>(Frame::data(c)));
    BodyExt::boxed(StreamBody::new(frames))
}

/// The hyper server's answer to every fault it serves.
async fn answer(ledger: Arc<Ledger>, request: Request<Incoming>) -> Response<ServerBody> {
    let Some((fault, i)) = target(request.uri().path()) else {
        ledger.stray(format!("unknown path {}", request.uri().path()));
        return json(404, &[], r#"{"error":"unknown path"}"#);
    };
    ledger.hit(i);
    let round = i / SCHEDULE.len();
    match fault {
        Fault::Json => json(200, &[], json_ok(i)),
        Fault::Chunked => {
            let body = json_ok(i);
            let chunks = vec![body.slice(..5), body.slice(5..20), body.slice(20..)];
            reply(200, "application/json", &[], frames(chunks))
        }
        Fault::Slow => {
            tokio::time::sleep(SLOW_ANSWER).await;
            json(200, &[], json_ok(i))
        }
        Fault::GarbageWait => json(
            429,
            &[GARBAGE_WAITS[round % GARBAGE_WAITS.len()]],
            rate_limited_body(i),
        ),
        Fault::HugeWait429 => json(429, &[("retry-after", "99999999999")], rate_limited_body(i)),
        Fault::HugeWait503 => json(503, &[("retry-after", "99999999999")], overloaded_body(i)),
        Fault::HugeWaitMs => json(
            503,
            &[("retry-after-ms", "18446744073709551615")],
            overloaded_body(i),
        ),
        Fault::HtmlAsJson => json(502, &[], HTML_502),
        Fault::DeepJson => json(200, &[], deep_json(i)),
        Fault::DeepJsonFailure => json(500, &[], deep_json(i)),
        Fault::FiveMib => {
            let parts = five_mib(i);
            let length = parts.iter().map(Bytes::len).sum::<usize>().to_string();
            let headers = [("content-length", length.as_str())];
            reply(200, "application/json", &headers, frames(parts.to_vec()))
        }
        Fault::BadRequest => json(400, &[], bad_request_body(i)),
        Fault::JobThenFail | Fault::JobThenHang => {
            let key = request
                .headers()
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            create_job(&ledger, key, fault, i).await
        }
        Fault::Reset | Fault::CutSuccess | Fault::CutFailure => {
            ledger.stray(format!("#{i} {fault:?} reached the hyper server"));
            json(421, &[], r#"{"error":"misdirected"}"#)
        }
    }
}

/// A paid job: created once per idempotency key; a request with a known key gets it back.
async fn create_job(
    ledger: &Ledger,
    key: Option<String>,
    fault: Fault,
    i: usize,
) -> Response<ServerBody> {
    let Some(key) = key else {
        ledger.stray(format!("#{i}: a POST without an Idempotency-Key"));
        return json(400, &[], r#"{"error":"Idempotency-Key required"}"#);
    };
    let created = {
        let mut jobs = lock(&ledger.jobs);
        match jobs.get(&key) {
            Some(&owner) => {
                if owner != i {
                    ledger.stray(format!("#{i} reused the key of #{owner}"));
                }
                false
            }
            None => {
                jobs.insert(key, i);
                true
            }
        }
    };
    if !created {
        return json(200, &[("idempotent-replayed", "true")], job_body(i));
    }
    match fault {
        Fault::JobThenHang => {
            tokio::time::sleep(SLOW_ANSWER).await;
            json(200, &[], job_body(i))
        }
        _ => json(500, &[], JOB_LOST),
    }
}

/// A TCP server for what hyper will not do: reset a connection before any header, or close it
/// in the middle of a body.
async fn spawn_raw_server(ledger: Arc<Ledger>) -> SocketAddr {
    common::spawn_tcp_server(move |stream| {
        let ledger = Arc::clone(&ledger);
        async move {
            let _ = tokio::time::timeout(REQUEST_GUARD, misbehave(stream, &ledger)).await;
        }
    })
    .await
}

async fn misbehave(mut stream: TcpStream, ledger: &Ledger) -> io::Result<()> {
    let head = read_head(&mut stream).await?;
    let path = head.split(' ').nth(1).unwrap_or_default();
    let Some((fault, i)) = target(path) else {
        ledger.stray(format!("raw server: unknown path {path}"));
        return Ok(());
    };
    ledger.hit(i);
    let status = match fault {
        Fault::Reset => {
            // Dropping a socket that lingers zero seconds sends RST, not FIN.
            return stream.set_zero_linger();
        }
        Fault::CutSuccess => "200 OK",
        Fault::CutFailure => "503 Service Unavailable",
        _ => {
            ledger.stray(format!("#{i} {fault:?} reached the raw server"));
            return Ok(());
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\
         connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(CUT_SENT).await?;
    stream.shutdown().await
}

/// Reads up to the end of a request head (the soak's raw requests are GETs: no body).
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 2048];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too long"));
        }
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[derive(Clone, Copy)]
struct Servers {
    hyper: SocketAddr,
    raw: SocketAddr,
}

// ---- The requests -----------------------------------------------------------------------------

/// One logical request.
#[derive(Clone)]
struct Plan {
    index: usize,
    fault: Fault,
    /// Whether it goes through the stack built with `failures_as_errors()`.
    as_errors: bool,
    /// Carries a secret in its query.
    url: String,
    /// `Bearer sk-soak-…`.
    authorization: String,
    /// Empty for GETs; JSON with a secret field for POSTs.
    body: Bytes,
}

impl Plan {
    fn new(index: usize, servers: Servers) -> Plan {
        let fault = SCHEDULE[index % SCHEDULE.len()];
        let addr = if fault.on_raw_server() {
            servers.raw
        } else {
            servers.hyper
        };
        let body = if fault.method() == Method::POST {
            let json = format!(
                r#"{{"prompt": "a lighthouse, take {index}", "api_key": "{SECRET}-body-{index}"}}"#
            );
            Bytes::from(json)
        } else {
            Bytes::new()
        };
        Plan {
            index,
            fault,
            as_errors: (index / SCHEDULE.len()) % 2 == 1,
            url: format!(
                "http://{addr}/v1/{}/{index}?api_key={SECRET}-query-{index}&alt=json",
                fault.name()
            ),
            authorization: format!("Bearer {SECRET}-auth-{index}"),
            body,
        }
    }

    fn describe(&self) -> String {
        let mode = if self.as_errors {
            "failures as errors"
        } else {
            "failures as responses"
        };
        format!("#{} {:?} ({mode})", self.index, self.fault)
    }
}

/// The layer both stacks run: short times, so the soak is quick; an unlimited budget, so every
/// request may make all its attempts and the counts are predictable.
fn soak_layer() -> ResilienceLayer {
    ResilienceLayer::new()
        .max_attempts(MAX_ATTEMPTS)
        .backoff(Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(10),
        ))
        .max_server_wait(MAX_SERVER_WAIT)
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .deadline(DEADLINE)
        .budget(RetryBudget::unlimited())
}

/// One logical request, sent.
struct Sent {
    /// How long the call took, to the response or the error (the body not read).
    call: Duration,
    observed: Observed,
    /// The record of the attempts, from the response's extensions or the error.
    attempts: Option<Attempts>,
    /// The idempotency key the request was sent with, from the response's or the error's ids.
    key: Option<String>,
}

/// What one logical request ended with, whichever stack sent it.
enum Observed {
    /// A response: a success, or a failure returned as a response.
    Response { status: StatusCode, body: ReadBody },
    /// An error: a `RetryError`, an `ApiError`, or a `reqwest_middleware::Error`.
    Error {
        /// The `ApiError`'s status, when there is one.
        status: Option<StatusCode>,
        /// The `ApiError`'s response body, when there is one.
        response_body: Option<Bytes>,
        /// Whether an `ApiError` was found.
        api_error: bool,
        /// Every rendering of the error, labelled.
        renderings: Vec<(String, String)>,
    },
}

/// A response body as the caller reads it.
struct ReadBody {
    bytes: Bytes,
    /// The renderings of the error the body ended with, if it did.
    error: Option<Vec<(String, String)>>,
    /// The body went on past [`BODY_CAP`].
    runaway: bool,
}

impl Observed {
    /// An error without a response and without an `ApiError`.
    fn no_response(renderings: Vec<(String, String)>) -> Self {
        Observed::Error {
            status: None,
            response_body: None,
            api_error: false,
            renderings,
        }
    }

    fn renderings(&self) -> &[(String, String)] {
        match self {
            Observed::Response { body, .. } => body.error.as_deref().unwrap_or_default(),
            Observed::Error { renderings, .. } => renderings,
        }
    }

    /// The kind of outcome, for the tally.
    fn label(&self) -> String {
        match self {
            Observed::Response { status, body } if body.error.is_some() => {
                format!("{} response, body error", status.as_u16())
            }
            Observed::Response { status, .. } => format!("{} response", status.as_u16()),
            Observed::Error {
                status: Some(status),
                api_error: true,
                ..
            } => format!("ApiError {}", status.as_u16()),
            Observed::Error {
                api_error: true, ..
            } => "ApiError, no response".to_owned(),
            Observed::Error { .. } => "error".to_owned(),
        }
    }

    fn summary(&self) -> String {
        match self {
            Observed::Response { status, body } => format!(
                "a {status} response with {} body bytes{}",
                body.bytes.len(),
                if body.error.is_some() {
                    ", then a body error"
                } else {
                    ""
                }
            ),
            Observed::Error {
                status, renderings, ..
            } => {
                let display = renderings.first().map_or("", |(_, text)| text.as_str());
                format!("an error (status {status:?}): {}", shorten(display, 200))
            }
        }
    }
}

/// `Display`, `Debug` and `{:#?}` of `error` and of every error in its source chain.
fn renderings(error: &(dyn StdError + 'static), what: &str, out: &mut Vec<(String, String)>) {
    let mut current = Some(error);
    let mut depth = 0;
    while let Some(error) = current {
        if depth == 16 {
            break;
        }
        let at = if depth == 0 {
            what.to_owned()
        } else {
            format!("{what} source {depth}")
        };
        out.push((format!("{at} Display"), error.to_string()));
        out.push((format!("{at} Debug"), format!("{error:?}")));
        out.push((format!("{at} {{:#?}}"), format!("{error:#?}")));
        current = error.source();
        depth += 1;
    }
}

/// Every rendering of an `ApiError`, its support report included.
fn api_error_renderings(error: &ApiError, out: &mut Vec<(String, String)>) {
    renderings(error, "ApiError", out);
    out.push(("ApiError report".to_owned(), error.report().to_string()));
}

fn observe_api_error(error: &ApiError, mut renderings: Vec<(String, String)>) -> Observed {
    api_error_renderings(error, &mut renderings);
    Observed::Error {
        status: error.status(),
        response_body: error.response_body().cloned(),
        api_error: true,
        renderings,
    }
}

/// A response, its attempts record taken and its body read.
async fn sent_response<B>(call: Duration, response: Response<B>) -> Sent
where
    B: Body,
    B::Error: StdError + 'static,
{
    let status = response.status();
    let attempts = response.extensions().get::<Attempts>().cloned();
    let key = key_of(response.extensions().get::<RequestIds>());
    let body = read_body(response.into_body()).await;
    Sent {
        call,
        observed: Observed::Response { status, body },
        attempts,
        key,
    }
}

fn key_of(ids: Option<&RequestIds>) -> Option<String> {
    Some(ids?.idempotency_key()?.as_str().to_owned())
}

async fn read_body<B>(body: B) -> ReadBody
where
    B: Body,
    B::Error: StdError + 'static,
{
    let mut body = std::pin::pin!(body);
    let mut bytes = BytesMut::new();
    loop {
        match body.frame().await {
            None => {
                return ReadBody {
                    bytes: bytes.freeze(),
                    error: None,
                    runaway: false,
                }
            }
            Some(Err(error)) => {
                let mut texts = Vec::new();
                renderings(&error, "body error", &mut texts);
                return ReadBody {
                    bytes: bytes.freeze(),
                    error: Some(texts),
                    runaway: false,
                };
            }
            Some(Ok(frame)) => {
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.remaining() > BODY_CAP {
                    return ReadBody {
                        bytes: bytes.freeze(),
                        error: None,
                        runaway: true,
                    };
                }
                while data.has_remaining() {
                    let chunk = data.chunk();
                    let len = chunk.len();
                    bytes.extend_from_slice(chunk);
                    data.advance(len);
                }
            }
        }
    }
}

// ---- The stacks -------------------------------------------------------------------------------

type HyperClient = hyper_util::client::legacy::Client<HttpConnector, ReplayBody>;

/// `ResilienceLayer` over one hyper-util client, failures as responses and as errors.
#[derive(Clone)]
struct TowerStacks {
    responses: Resilient<HyperClient>,
    errors: ResilientErrors<HyperClient>,
}

impl TowerStacks {
    fn new() -> Self {
        let client: HyperClient = hyper_client();
        TowerStacks {
            responses: ServiceBuilder::new()
                .resilience(soak_layer())
                .service(client.clone()),
            errors: ServiceBuilder::new()
                .resilience(soak_layer().failures_as_errors())
                .service(client),
        }
    }

    /// Sends one logical request and reads what it ended with.
    async fn send(self, plan: Plan) -> Sent {
        let mut request = Request::builder()
            .method(plan.fault.method())
            .uri(&plan.url)
            .header(header::AUTHORIZATION, &plan.authorization);
        if !plan.body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(ReplayBody::bytes(plan.body.clone()))
            .expect("a valid request");
        let started = Instant::now();
        if plan.as_errors {
            let result = self.errors.oneshot(request).await;
            let call = started.elapsed();
            match result {
                Ok(response) => sent_response(call, response).await,
                Err(error) => Sent {
                    call,
                    observed: observe_api_error(&error, Vec::new()),
                    attempts: error.attempts().cloned(),
                    key: key_of(Some(error.request_ids())),
                },
            }
        } else {
            let result = self.responses.oneshot(request).await;
            let call = started.elapsed();
            match result {
                Ok(response) => sent_response(call, response).await,
                Err(error) => {
                    let mut texts = Vec::new();
                    renderings(&error, "RetryError", &mut texts);
                    Sent {
                        call,
                        observed: Observed::no_response(texts),
                        attempts: Some(error.attempts().clone()),
                        key: key_of(Some(error.request_ids())),
                    }
                }
            }
        }
    }
}

/// `ResilienceMiddleware` in two reqwest-middleware clients over one reqwest client, failures
/// as responses and as errors.
#[cfg(feature = "reqwest")]
#[derive(Clone)]
struct MiddlewareStacks {
    responses: reqwest_middleware::ClientWithMiddleware,
    errors: reqwest_middleware::ClientWithMiddleware,
}

#[cfg(feature = "reqwest")]
impl MiddlewareStacks {
    fn new() -> Self {
        use http_resilience::reqwest::ResilienceMiddleware;
        // No proxy from the environment: the soak talks to 127.0.0.1 only.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a reqwest client");
        MiddlewareStacks {
            responses: reqwest_middleware::ClientBuilder::new(client.clone())
                .with(ResilienceMiddleware::new(soak_layer()))
                .build(),
            errors: reqwest_middleware::ClientBuilder::new(client)
                .with(ResilienceMiddleware::new(soak_layer().failures_as_errors()))
                .build(),
        }
    }

    /// As [`TowerStacks::send`].
    async fn send(self, plan: Plan) -> Sent {
        let client = if plan.as_errors {
            &self.errors
        } else {
            &self.responses
        };
        let mut request = client
            .request(plan.fault.method(), &plan.url)
            .header(header::AUTHORIZATION, &plan.authorization);
        if !plan.body.is_empty() {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(plan.body.clone());
        }
        let started = Instant::now();
        let result = request.send().await;
        let call = started.elapsed();
        match result {
            Ok(response) => sent_response(call, http::Response::from(response)).await,
            Err(error) => {
                let mut texts = Vec::new();
                renderings(&error, "reqwest_middleware::Error", &mut texts);
                let observed = match http_resilience::reqwest::api_error_of(&error) {
                    Some(api_error) => observe_api_error(api_error, texts),
                    None => Observed::no_response(texts),
                };
                Sent {
                    call,
                    observed,
                    attempts: http_resilience::reqwest::attempts_of(&error).cloned(),
                    key: key_of(http_resilience::reqwest::request_ids_of(&error)),
                }
            }
        }
    }
}

/// How often each outcome came of one fault, and the slowest call.
type FaultTally = (BTreeMap<String, usize>, Duration);

/// What each fault led to, and its slowest call: printed, to show what the soak exercised.
#[derive(Default)]
struct Tally {
    by_fault: Mutex<BTreeMap<&'static str, FaultTally>>,
}

impl Tally {
    fn record(&self, fault: Fault, sent: &Sent) {
        let mut by_fault = lock(&self.by_fault);
        let (outcomes, slowest) = by_fault.entry(fault.name()).or_default();
        *outcomes.entry(sent.observed.label()).or_default() += 1;
        *slowest = (*slowest).max(sent.call);
    }

    fn report(&self) -> String {
        let mut report = String::new();
        for (fault, (outcomes, slowest)) in lock(&self.by_fault).iter() {
            let outcomes: Vec<String> = outcomes
                .iter()
                .map(|(outcome, count)| format!("{count} × {outcome}"))
                .collect();
            report.push_str(&format!(
                "\n  {fault:<18} slowest call {slowest:>9.1?}: {}",
                outcomes.join(", ")
            ));
        }
        report
    }
}

// ---- The checks -------------------------------------------------------------------------------

/// Everything found wrong, by check: how often, and the first few examples.
#[derive(Default)]
struct Violations {
    found: Mutex<BTreeMap<String, (usize, Vec<String>)>>,
}

impl Violations {
    fn add(&self, check: impl Into<String>, example: String) {
        let mut found = lock(&self.found);
        let (count, examples) = found.entry(check.into()).or_default();
        *count += 1;
        if examples.len() < 3 {
            examples.push(example);
        }
    }

    fn is_empty(&self) -> bool {
        lock(&self.found).is_empty()
    }

    fn report(&self) -> String {
        let mut report = String::new();
        for (check, (count, examples)) in lock(&self.found).iter() {
            report.push_str(&format!("\n  {check}: {count} time(s)"));
            for example in examples {
                report.push_str(&format!("\n    - {example}"));
            }
        }
        report
    }
}

/// Checks what one logical request ended with against its plan.
fn check(plan: &Plan, sent: &Sent, violations: &Violations) {
    let who = plan.describe();
    let Sent {
        call,
        observed,
        attempts,
        ..
    } = sent;
    if *call > DEADLINE + DEADLINE_SLACK {
        violations.add(
            "deadline",
            format!("{who}: the call took {call:?}, deadline {DEADLINE:?}"),
        );
    }
    for (what, text) in observed.renderings() {
        if let Some(at) = text.find(SECRET) {
            violations.add(
                format!("secret in {what}"),
                format!("{who}: …{}…", excerpt(text, at)),
            );
        }
    }
    check_attempts(plan, attempts.as_ref(), violations);
    if let Observed::Response { body, .. } = observed {
        if body.runaway {
            violations.add("runaway body", format!("{who}: more than {BODY_CAP} bytes"));
            return;
        }
    }
    match plan.fault.expect(plan.index) {
        Expect::Success(expected) => match observed {
            Observed::Response { status, body } if *status == StatusCode::OK => {
                if let Some(error) = &body.error {
                    let display = error.first().map_or("", |(_, text)| text.as_str());
                    violations.add(
                        "success bytes",
                        format!(
                            "{who}: the body failed after {} bytes: {}",
                            body.bytes.len(),
                            shorten(display, 200)
                        ),
                    );
                } else if body.bytes != expected {
                    violations.add(
                        "success bytes",
                        format!("{who}: {}", difference(&expected, &body.bytes)),
                    );
                }
            }
            other => violations.add(
                "outcome",
                format!("{who}: expected a 200, got {}", other.summary()),
            ),
        },
        Expect::Failure(expected_status, expected) => match observed {
            Observed::Response { status, body }
                if !plan.as_errors && *status == expected_status =>
            {
                if body.error.is_some() || body.bytes != expected {
                    violations.add(
                        "error bytes (response body)",
                        format!("{who}: {}", difference(&expected, &body.bytes)),
                    );
                }
            }
            Observed::Error {
                status: Some(status),
                response_body,
                api_error: true,
                ..
            } if plan.as_errors && *status == expected_status => {
                let got = response_body.clone().unwrap_or_default();
                if got != expected {
                    violations.add(
                        "error bytes (ApiError::response_body)",
                        format!("{who}: {}", difference(&expected, &got)),
                    );
                }
            }
            other => violations.add(
                "outcome",
                format!(
                    "{who}: expected the {expected_status} failure {}, got {}",
                    if plan.as_errors {
                        "as an ApiError"
                    } else {
                        "as a response"
                    },
                    other.summary()
                ),
            ),
        },
        Expect::NoResponse => match observed {
            Observed::Error { status: None, .. } => {}
            other => violations.add(
                "outcome",
                format!("{who}: expected an error, got {}", other.summary()),
            ),
        },
        Expect::CutShort => match observed {
            Observed::Error { .. } => {}
            Observed::Response { body, .. } if body.error.is_some() => {}
            other => violations.add(
                "outcome",
                format!(
                    "{who}: a body cut at {} of 1000 bytes looked complete: {}",
                    CUT_SENT.len(),
                    other.summary()
                ),
            ),
        },
    }
}

/// The client's record of the attempts: there, within the limit, and for the waits past the
/// cap and the 400, stopped at once for the right reason.
fn check_attempts(plan: &Plan, attempts: Option<&Attempts>, violations: &Violations) {
    let who = plan.describe();
    let Some(attempts) = attempts else {
        violations.add("attempts record", format!("{who}: no Attempts record"));
        return;
    };
    if attempts.count() > MAX_ATTEMPTS as usize {
        violations.add(
            "amplification",
            format!(
                "{who}: {} attempts, at most {MAX_ATTEMPTS}",
                attempts.count()
            ),
        );
    }
    let stopped = attempts.stopped();
    match plan.fault {
        Fault::HugeWait429 | Fault::HugeWait503 | Fault::HugeWaitMs => {
            // Returned at once, with the server's wait for the caller to reschedule.
            let hint = attempts.wait_hint().map(|hint| hint.delay());
            if stopped != StopReason::WaitTooLong || hint.is_none_or(|d| d <= MAX_SERVER_WAIT) {
                violations.add(
                    "wait past the cap",
                    format!("{who}: stopped {stopped:?} with the hint {hint:?}"),
                );
            }
        }
        Fault::BadRequest if stopped != StopReason::VerdictNever => violations.add(
            "stop reason",
            format!("{who}: a 400 stopped {stopped:?}, not VerdictNever"),
        ),
        _ => {}
    }
}

/// What the servers saw, checked once every request is done.
fn check_server(ledger: &Ledger, violations: &Violations) {
    let mut posts_reached = 0;
    let mut jobs_per_request: HashMap<usize, usize> = HashMap::new();
    for &owner in lock(&ledger.jobs).values() {
        *jobs_per_request.entry(owner).or_default() += 1;
    }
    for (index, hits) in ledger.hits.iter().enumerate() {
        let fault = SCHEDULE[index % SCHEDULE.len()];
        let hits = hits.load(Ordering::SeqCst);
        if hits == 0 {
            violations.add(
                "reach",
                format!("#{index} {fault:?}: never reached the server"),
            );
        }
        let recorded = ledger.client_attempts[index].load(Ordering::SeqCst);
        if hits > MAX_ATTEMPTS || (recorded > 0 && hits > recorded) {
            violations.add(
                "amplification",
                format!(
                    "#{index} {fault:?}: {hits} attempts reached the server, the client \
                     recorded {recorded}, at most {MAX_ATTEMPTS} may"
                ),
            );
        }
        if fault.creates_job() {
            if hits > 0 {
                posts_reached += 1;
            }
            let jobs = jobs_per_request.get(&index).copied().unwrap_or(0);
            if hits > 0 && jobs != 1 {
                violations.add(
                    "one job per POST",
                    format!("#{index} {fault:?}: {jobs} jobs created"),
                );
            }
            // The key the caller's record names is the one that created this request's job.
            let key = lock(&ledger.client_keys).get(&index).cloned();
            let owner = key
                .as_ref()
                .and_then(|key| lock(&ledger.jobs).get(key).copied());
            if owner != Some(index) {
                violations.add(
                    "one job per POST",
                    format!("#{index} {fault:?}: the client's key {key:?} created job {owner:?}"),
                );
            }
        }
    }
    let jobs = lock(&ledger.jobs).len();
    if jobs != posts_reached {
        violations.add(
            "one job per POST",
            format!("{jobs} jobs for {posts_reached} POSTs that reached the server"),
        );
    }
    for stray in lock(&ledger.strays).iter() {
        violations.add("server", stray.clone());
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
    .replace('\n', "\\n")
}

/// The text around byte `at`.
fn excerpt(text: &str, at: usize) -> String {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(60)
        .map_or(0, |(i, _)| i);
    let end = text[at..]
        .char_indices()
        .nth(80)
        .map_or(text.len(), |(i, _)| at + i);
    text[start..end].replace('\n', "\\n")
}

/// Where two bodies part.
fn difference(expected: &[u8], got: &[u8]) -> String {
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let around = |bytes: &[u8]| {
        let start = at.saturating_sub(16);
        let end = (at + 48).min(bytes.len());
        bytes
            .get(start..end)
            .unwrap_or_default()
            .escape_ascii()
            .to_string()
    };
    format!(
        "expected {} bytes, got {}; they part at byte {at}: expected «{}», got «{}»",
        expected.len(),
        got.len(),
        around(expected),
        around(got)
    )
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

// ---- The soak ---------------------------------------------------------------------------------

/// Runs [`REQUESTS`] logical requests through `send` at [`CONCURRENCY`], each in its own task,
/// against fresh servers; then checks everything and fails with every violation found.
async fn soak<S, F>(stack: &str, send: S)
where
    S: Fn(Plan) -> F + Clone + Send + 'static,
    F: Future<Output = Sent> + Send + 'static,
{
    let ledger = Arc::new(Ledger::new());
    let hyper = spawn_server({
        let ledger = Arc::clone(&ledger);
        move |request| answer(Arc::clone(&ledger), request)
    })
    .await;
    let raw = spawn_raw_server(Arc::clone(&ledger)).await;
    let servers = Servers { hyper, raw };
    let violations = Arc::new(Violations::default());
    let tally = Arc::new(Tally::default());
    // Build the shared 5 MiB padding now, not inside the first request that needs it.
    five_mib(0);

    let started = Instant::now();
    let run = futures_util::stream::iter(0..REQUESTS)
        .map(|index| {
            let plan = Plan::new(index, servers);
            let send = send.clone();
            let violations = Arc::clone(&violations);
            let tally = Arc::clone(&tally);
            let ledger = Arc::clone(&ledger);
            let task = tokio::spawn(async move {
                match tokio::time::timeout(REQUEST_GUARD, send(plan.clone())).await {
                    Ok(sent) => {
                        check(&plan, &sent, &violations);
                        tally.record(plan.fault, &sent);
                        if let Some(attempts) = &sent.attempts {
                            let count = u32::try_from(attempts.count()).unwrap_or(u32::MAX);
                            ledger.client_attempts[plan.index].store(count, Ordering::SeqCst);
                            if let Some(key) = &sent.key {
                                lock(&ledger.client_keys).insert(plan.index, key.clone());
                            }
                        }
                    }
                    Err(_) => violations.add(
                        "hang",
                        format!("{}: not done after {REQUEST_GUARD:?}", plan.describe()),
                    ),
                }
            });
            async move { (index, task.await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    match tokio::time::timeout(SOAK_GUARD, run).await {
        Ok(joined) => {
            for (index, result) in joined {
                if let Err(error) = result {
                    let plan = Plan::new(index, servers);
                    let what = if error.is_panic() {
                        panic_message(error.into_panic())
                    } else {
                        "cancelled".to_owned()
                    };
                    violations.add("panic", format!("{}: {what}", plan.describe()));
                }
            }
        }
        Err(_) => violations.add(
            "hang",
            format!("the soak was not done after {SOAK_GUARD:?}"),
        ),
    }
    let elapsed = started.elapsed();
    check_server(&ledger, &violations);

    let posts = (0..REQUESTS)
        .filter(|&i| SCHEDULE[i % SCHEDULE.len()].creates_job())
        .count();
    let attempts: u32 = ledger.hits.iter().map(|h| h.load(Ordering::SeqCst)).sum();
    let jobs = lock(&ledger.jobs).len();
    println!(
        "{stack}: {REQUESTS} logical requests ({posts} job POSTs, {jobs} jobs), {attempts} attempts \
         reached the servers in {elapsed:.1?} at concurrency {CONCURRENCY}:{}",
        tally.report()
    );
    assert!(
        violations.is_empty(),
        "{stack}: the fault soak found violations:{}",
        violations.report()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_stack_over_hyper_util_survives_the_fault_soak() {
    let stacks = TowerStacks::new();
    soak("tower stack over hyper-util", move |plan| {
        stacks.clone().send(plan)
    })
    .await;
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_stack_survives_the_fault_soak() {
    let stacks = MiddlewareStacks::new();
    soak("reqwest-middleware stack", move |plan| {
        stacks.clone().send(plan)
    })
    .await;
}
