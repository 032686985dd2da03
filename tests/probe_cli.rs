//! The `probe` example's contract: body on stdout, one JSON line on stderr, exit codes 0/1/2.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{full, spawn_server};
use http::Response;
use serde_json::Value;

/// The probe example, built now (see [`common::example`]).
fn probe() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| common::example("probe")).clone()
}

async fn run(args: Vec<String>) -> (i32, String, Value) {
    let output =
        tokio::task::spawn_blocking(move || Command::new(probe()).args(args).output().unwrap())
            .await
            .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let json = stderr
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        json,
    )
}

#[tokio::test]
async fn probe_reports_success_failure_and_retries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let addr = spawn_server(move |req| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match req.uri().path() {
                "/ok" => Response::builder().header("x-request-id", "srv-ok").body(full("hello")).unwrap(),
                "/quota" => Response::builder()
                    .status(429)
                    .header("x-request-id", "srv-q")
                    .body(full(r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#))
                    .unwrap(),
                "/flaky" if n.is_multiple_of(2) => Response::builder().status(503).header("retry-after", "0").body(full("")).unwrap(),
                "/flaky" => Response::builder().body(full(r#"{"task_id":"t"}"#)).unwrap(),
                _ => Response::builder().status(404).body(full(r#"{"detail":"Not Found"}"#)).unwrap(),
            }
        }
    })
    .await;
    let url = |path: &str| format!("http://{addr}{path}");

    let (code, stdout, json) = run(vec![url("/ok")]).await;
    assert_eq!(code, 0);
    assert_eq!(stdout, "hello");
    for key in [
        "status",
        "kind",
        "code",
        "message",
        "trace_id",
        "idempotency_key",
        "stopped",
        "elapsed_ms",
        "attempts",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["status"], 200);
    assert_eq!(json["kind"], Value::Null);
    assert_eq!(json["trace_id"], "srv-ok");
    assert_eq!(json["stopped"], "succeeded");
    assert_eq!(json["attempts"].as_array().unwrap().len(), 1);

    let (code, _, json) = run(vec![
        "-X".into(),
        "POST".into(),
        "-d".into(),
        "{}".into(),
        url("/quota"),
    ])
    .await;
    assert_eq!(code, 1);
    assert_eq!(json["status"], 429);
    assert_eq!(json["kind"], "quota_exhausted");
    assert_eq!(json["code"], "insufficient_quota");
    assert_eq!(json["stopped"], "verdict_never");
    assert_eq!(json["idempotency_key"].as_str().map(str::len), Some(36));

    hits.store(0, Ordering::SeqCst);
    let (code, stdout, json) = run(vec![
        "-H".into(),
        "Accept: application/json".into(),
        url("/flaky"),
    ])
    .await;
    assert_eq!(code, 0, "{json}");
    assert_eq!(stdout, r#"{"task_id":"t"}"#);
    let attempts = json["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["kind"], "overloaded");
    assert_eq!(attempts[1]["delay_ms"], 0);
}

#[tokio::test]
async fn probe_reports_transport_errors_and_bad_usage() {
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let (code, stdout, json) = run(vec![
        "--attempts".into(),
        "1".into(),
        format!("http://127.0.0.1:{port}/x"),
    ])
    .await;
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert_eq!(json["status"], Value::Null);
    assert_eq!(json["kind"], "transport");
    assert_eq!(json["stopped"], "attempts_exhausted");

    for args in [
        vec![],
        vec![
            "--attempts".into(),
            "x".into(),
            "http://127.0.0.1:1/".into(),
        ],
        vec!["ftp://x".into()],
        vec!["--nope".into()],
    ] {
        let (code, _, _) = run(args.clone()).await;
        assert_eq!(code, 2, "{args:?}");
    }
}

#[tokio::test]
async fn probe_waits_for_a_job_and_prints_its_result_or_its_failure() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&polls);
    let addr = spawn_server(move |req| {
        let counter = Arc::clone(&counter);
        async move {
            let json = |body: &'static str| {
                Response::builder()
                    .header("content-type", "application/json")
                    .header("x-request-id", "srv-job")
                    .body(full(body))
                    .unwrap()
            };
            match (req.method().as_str(), req.uri().path()) {
                ("POST", "/v1/queue/flux") => json(
                    r#"{"status":"IN_QUEUE","request_id":"r1","status_url":"/q/r1/status","response_url":"/q/r1"}"#,
                ),
                ("GET", "/q/r1/status") if counter.fetch_add(1, Ordering::SeqCst) < 2 => {
                    json(r#"{"status":"IN_PROGRESS"}"#)
                }
                ("GET", "/q/r1/status") => json(r#"{"status":"COMPLETED","error":null}"#),
                ("GET", "/q/r1") => json(r#"{"images":["cat.png"]}"#),
                ("POST", "/v1/tasks") => json(r#"{"task_id":"t1","status":"queued"}"#),
                ("GET", "/v1/tasks/t1") => json(
                    r#"{"task_id":"t1","status":"failed","error":{"code":"generation_failed","message":"The generation process failed"}}"#,
                ),
                _ => Response::builder().status(404).body(full("")).unwrap(),
            }
        }
    })
    .await;
    let url = |path: &str| format!("http://{addr}{path}");
    let job_args = |reader: &str, path: &str| {
        vec![
            "-d".into(),
            r#"{"prompt":"a cat"}"#.into(),
            "--wait-job".into(),
            reader.into(),
            "--status-url".into(),
            "/v1/tasks/{id}".into(),
            "--poll-ms".into(),
            "10".into(),
            url(path),
        ]
    };

    let (code, stdout, json) = run(job_args("queue", "/v1/queue/flux")).await;
    assert_eq!(code, 0, "{json}");
    assert_eq!(stdout, r#"{"images":["cat.png"]}"#);
    assert_eq!(json["job"]["ending"], "succeeded");
    assert_eq!(json["job"]["job_id"], "r1");
    assert_eq!(json["job"]["polls"], 4);
    assert_eq!(json["job"]["create_trace_id"], "srv-job");
    assert!(json["job"]["idempotency_key"].is_string());

    let (code, stdout, json) = run(job_args("task", "/v1/tasks")).await;
    assert_eq!(code, 1, "{json}");
    assert_eq!(stdout, "");
    assert_eq!(json["job"]["ending"], "failed");
    assert_eq!(json["job"]["kind"], "server_error");
    assert_eq!(json["job"]["code"], "generation_failed");

    let (code, _, _) = run(vec!["--poll-ms".into(), "10".into(), url("/v1/tasks")]).await;
    assert_eq!(code, 2, "--poll-ms without --wait-job is bad usage");
}
