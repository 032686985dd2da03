//! Classifying realistic error bodies: this crate's classifier versus the naive way (parse into a
//! `serde_json::Value`, then look the same fields up and map them with the same table).
//!
//! Run: `cargo bench --bench classify`

#[path = "support/paired.rs"]
mod paired;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_resilience::classify::{BodyRead, Classifier, ErrorKind};
use serde_json::Value;

/// The content type of the JSON bodies.
const JSON: Option<&str> = Some("application/json");

/// Realistic error bodies, each with the status and the content type it comes with (`None`: an
/// answer with no headers at all).
const BODIES: &[(&str, u16, Option<&str>, &str)] = &[
    (
        "openai_quota",
        429,
        JSON,
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    ),
    (
        "anthropic_overloaded",
        529,
        JSON,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#,
    ),
    (
        "gemini_retry_info",
        429,
        JSON,
        r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"},"quotaValue":"15"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}"#,
    ),
    (
        "azure_content_filter",
        400,
        JSON,
        r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}}}}"#,
    ),
    (
        "seed000_used_up",
        403,
        JSON,
        r#"{"error":{"code":"used_up","message":"Instance balance and general balance exhausted, please recharge"},"trace_id":"5f0c2a0e-9a3b-4f55-8d7e-4f0b5c1f2e3d"}"#,
    ),
    (
        "seed002_concurrency",
        429,
        JSON,
        r#"{"success":false,"data":null,"error":{"code":"CONCURRENT_GENERATION_LIMIT","message":"Too many active generation jobs for this user.","active_requests":1,"concurrency_limit":1}}"#,
    ),
    (
        "seed003_business",
        200,
        JSON,
        r#"{"code":130005,"msg":"Request too frequent","data":null}"#,
    ),
    (
        "fal_validation",
        422,
        JSON,
        r#"{"detail":[{"loc":["body","prompt"],"msg":"The content could not be processed because it contained material flagged by a content checker.","type":"content_policy_violation","url":"https://docs.fal.ai/errors#content_policy_violation","ctx":{"extra":"data"},"input":"a prompt"}]}"#,
    ),
    (
        "hf_loading",
        503,
        JSON,
        r#"{"error":"Model black-forest-labs/FLUX.1-dev is currently loading","estimated_time":2315.18603515625}"#,
    ),
    (
        "nginx_502_html",
        502,
        Some("text/html"),
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    ),
    (
        "nginx_504_html",
        504,
        Some("text/html"),
        "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.18.0 (Ubuntu)</center>\r\n</body>\r\n</html>\r\n",
    ),
    (
        "fastapi_404_detail",
        404,
        JSON,
        r#"{"detail":"Not Found"}"#,
    ),
    (
        "replicate_422_detail",
        422,
        JSON,
        r#"{"detail":"Invalid version or not permitted","status":422,"title":"Unprocessable Entity"}"#,
    ),
    (
        "openai_quota_no_headers",
        429,
        None,
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    ),
];

/// The same table the classifier uses, as a user writing it by hand would.
fn naive_table() -> HashMap<&'static str, ErrorKind> {
    [
        ("insufficient_quota", ErrorKind::QuotaExhausted),
        ("overloaded_error", ErrorKind::Overloaded),
        ("RESOURCE_EXHAUSTED", ErrorKind::RateLimited),
        ("content_filter", ErrorKind::ContentPolicy),
        ("ResponsibleAIPolicyViolation", ErrorKind::ContentPolicy),
        ("used_up", ErrorKind::QuotaExhausted),
        ("CONCURRENT_GENERATION_LIMIT", ErrorKind::ConcurrencyLimited),
        ("130005", ErrorKind::RateLimited),
        ("content_policy_violation", ErrorKind::ContentPolicy),
    ]
    .into_iter()
    .collect()
}

/// What the classifier extracts, the naive way: parse to a `Value`, look fields up.
#[derive(Debug)]
struct NaiveResult {
    kind: Option<ErrorKind>,
    code: Option<String>,
    message: Option<String>,
    trace_id: Option<String>,
    retry_delay: Option<String>,
}

fn naive_classify(
    table: &HashMap<&'static str, ErrorKind>,
    status: StatusCode,
    body: &[u8],
) -> NaiveResult {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            return NaiveResult {
                kind: ErrorKind::from_status(status),
                code: None,
                message: None,
                trace_id: None,
                retry_delay: None,
            }
        }
    };
    static NULL: Value = Value::Null;
    let value: &Value = match &value {
        Value::Array(items) => items.first().unwrap_or(&NULL),
        other => other,
    };
    let error = value.get("error");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let mut candidates: Vec<String> = Vec::new();
    if let Some(error) = error {
        if let Some(c) = error.pointer("/innererror/code").and_then(Value::as_str) {
            candidates.push(c.to_owned());
        }
        match error.get("code") {
            Some(Value::String(s)) => candidates.push(s.clone()),
            Some(Value::Number(n)) => candidates.push(n.to_string()),
            _ => {}
        }
        for key in ["type", "status"] {
            if let Some(s) = error.get(key).and_then(Value::as_str) {
                candidates.push(s.to_owned());
            }
        }
    }
    match value.get("code") {
        Some(Value::String(s)) => candidates.push(s.clone()),
        Some(Value::Number(n)) => candidates.push(n.to_string()),
        _ => {}
    }
    if let Some(t) = value.pointer("/detail/0/type").and_then(Value::as_str) {
        candidates.push(t.to_owned());
    }
    let kind = candidates
        .iter()
        .find_map(|c| table.get(c.as_str()).copied())
        .or_else(|| ErrorKind::from_status(status));
    let retry_delay = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .and_then(|details| details.iter().find_map(|d| d.get("retryDelay")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    NaiveResult {
        kind,
        code: candidates.first().cloned(),
        message: text(error.and_then(|e| e.get("message")))
            .or_else(|| text(value.get("msg")))
            .or_else(|| text(value.get("detail")))
            .or_else(|| text(error)),
        trace_id: text(value.get("trace_id")).or_else(|| text(value.get("request_id"))),
        retry_delay,
    }
}

/// The headers an answer of this content type comes with: only that, or none at all.
fn headers_of(content_type: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(content_type) = content_type {
        headers.insert(
            "content-type",
            HeaderValue::from_str(content_type).expect("a valid content type"),
        );
    }
    headers
}

/// Every body with its status and headers, made once. Each body is copied into a buffer of its
/// own, as a body read from the network is: the position of a constant in the binary moves
/// with every relink, and with it the instruction counts of the byte scans that start by
/// aligning (`memchr`, UTF-8 validation).
fn cases() -> Vec<(&'static str, StatusCode, HeaderMap, Vec<u8>)> {
    BODIES
        .iter()
        .map(|(name, status, content_type, body)| {
            (
                *name,
                StatusCode::from_u16(*status).expect("a valid status"),
                headers_of(*content_type),
                body.as_bytes().to_vec(),
            )
        })
        .collect()
}

fn bench_classify(c: &mut Criterion) {
    let classifier = Classifier::new();
    let table = naive_table();
    let total: usize = BODIES.iter().map(|(_, _, _, b)| b.len()).sum();

    // Both ways agree on every body before anything is timed.
    for (name, status, content_type, body) in BODIES {
        let status = StatusCode::from_u16(*status).unwrap();
        let headers = headers_of(*content_type);
        let ours = classifier.classify(status, &headers, body.as_bytes(), BodyRead::Complete);
        let naive = naive_classify(&table, status, body.as_bytes());
        assert_eq!(ours.kind(), naive.kind, "{name}");
        black_box((
            &naive.code,
            &naive.message,
            &naive.trace_id,
            &naive.retry_delay,
        ));
    }

    let cases = cases();
    let mut group = c.benchmark_group("classify_error_bodies");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("http_resilience_classifier", |b| {
        b.iter(|| {
            for (_, status, headers, body) in &cases {
                black_box(classifier.classify(
                    *status,
                    headers,
                    black_box(body),
                    BodyRead::Complete,
                ));
            }
        })
    });
    group.bench_function("serde_json_value_lookup", |b| {
        b.iter(|| {
            for (_, status, _, body) in &cases {
                black_box(naive_classify(&table, *status, black_box(body)));
            }
        })
    });
    group.finish();
}

/// `CLASSIFY_PAIRED=<rounds>` times both ways round by round, each round classifying every body
/// 2,000 times one way then the other (the order alternating), and prints the median and range
/// of the per-round ratios: on a noisy machine, a ratio of neighbours in time is steadier than
/// two separate runs.
fn paired_rounds(rounds: usize) {
    use std::time::Instant;
    let classifier = Classifier::new();
    let table = naive_table();
    let cases = cases();
    let ours = || {
        let start = Instant::now();
        for _ in 0..2_000 {
            for (_, status, headers, body) in &cases {
                black_box(classifier.classify(
                    *status,
                    headers,
                    black_box(body),
                    BodyRead::Complete,
                ));
            }
        }
        start.elapsed().as_secs_f64()
    };
    let naive = || {
        let start = Instant::now();
        for _ in 0..2_000 {
            for (_, status, _, body) in &cases {
                black_box(naive_classify(&table, *status, black_box(body)));
            }
        }
        start.elapsed().as_secs_f64()
    };
    let ratios: Vec<f64> = (0..rounds)
        .map(|round| {
            if round % 2 == 0 {
                let o = ours();
                naive() / o
            } else {
                let n = naive();
                n / ours()
            }
        })
        .collect();
    let (median, low, high) = paired::median_and_range(ratios);
    println!(
        "classifier faster than the Value way: median {median:.2}x (range {low:.2}x to {high:.2}x) over {rounds} paired rounds"
    );
}

/// Runs without criterion when asked, and says so: `CLASSIFY_PAIRED` (see [`paired_rounds`]);
/// `CLASSIFY_LIST=1` prints the bodies' names, one a line; for callgrind,
/// `CLASSIFY_ONLY=classifier|value CLASSIFY_BODY=<name> CLASSIFY_ROUNDS=<n>` classifies one
/// body `n` times one way. Instruction counts of two round numbers, subtracted, give the exact
/// cost of one call (see `classify_instructions.sh`).
fn without_criterion() -> bool {
    if let Some(rounds) = std::env::var("CLASSIFY_PAIRED")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        paired_rounds(rounds.max(1));
        return true;
    }
    if std::env::var_os("CLASSIFY_LIST").is_some() {
        for (name, _, _, _) in BODIES {
            println!("{name}");
        }
        return true;
    }
    let Ok(way) = std::env::var("CLASSIFY_ONLY") else {
        return false;
    };
    let name = std::env::var("CLASSIFY_BODY").expect("CLASSIFY_BODY names a body");
    let rounds: usize = std::env::var("CLASSIFY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .expect("CLASSIFY_ROUNDS is a number");
    let (_, status, headers, body) = cases()
        .into_iter()
        .find(|(n, _, _, _)| *n == name)
        .expect("CLASSIFY_BODY is one of BODIES");
    let body = body.as_slice();
    let classifier = Classifier::new();
    let table = naive_table();
    for _ in 0..rounds {
        match way.as_str() {
            "classifier" => {
                black_box(classifier.classify(
                    status,
                    &headers,
                    black_box(body),
                    BodyRead::Complete,
                ));
            }
            "value" => {
                black_box(naive_classify(&table, status, black_box(body)));
            }
            other => panic!("CLASSIFY_ONLY is classifier or value, not {other}"),
        }
    }
    true
}

criterion_group!(benches, bench_classify);

fn main() {
    if without_criterion() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
