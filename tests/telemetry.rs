//! What the stack reports: the spans of a logical request and its attempts, one event per retry
//! and per give-up at the level an operator needs, and (with the `metrics` feature) exact
//! counts for a scripted sequence. Spans and events are captured by a subscriber layer of the
//! test's own; metrics by `metrics-util`'s debugging recorder.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::capture::{get, post, scripted, Answer, Capture, EventRecord, SpanRecord, JSON};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use http_resilience::retry::RetryBudget;
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tracing::{Instrument, Level};

// ---- Spans ---------------------------------------------------------------------------------------

/// A request retried once: one request span under the caller's span, one attempt span per
/// attempt under it with the OpenTelemetry names, and the retry's event inside the request span.
#[tokio::test(start_paused = true)]
async fn a_retried_request_has_a_span_under_the_callers_and_a_span_per_attempt() {
    let capture = Capture::default();
    let _guard = capture.install();
    let upstream = scripted(&[(
        "/v1/images",
        &[
            (
                429,
                &[("retry-after", "1"), ("x-request-id", "trace-429"), JSON],
                r#"{"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#,
            ),
            (
                200,
                &[("x-request-id", "trace-200"), JSON],
                r#"{"id":"img_1"}"#,
            ),
        ],
    )]);
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new())
        .service(upstream);
    let response = client
        .oneshot(post("/v1/images"))
        .instrument(tracing::info_span!("caller"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();

    let spans = capture.spans();
    let caller = capture.index_of("caller")[0];
    let request = capture.index_of("http_resilience.request");
    assert_eq!(request.len(), 1, "{spans:#?}");
    let request = &spans[request[0]];
    assert_eq!(request.parent, Some(caller));
    assert_eq!(request.level, Level::INFO);
    let f = &request.fields;
    assert_eq!(f["http.request.method"], "POST");
    assert!(
        f["url.full"].starts_with("https://api.example.com/v1/images?api_key="),
        "{f:?}"
    );
    assert_eq!(f["server.address"], "api.example.com");
    assert_eq!(f["server.port"], "443");
    assert_eq!(f["http_resilience.idempotency_key_present"], "true");
    assert!(!f["http_resilience.client_request_id"].is_empty());
    assert_eq!(f["http.response.status_code"], "200");
    assert_eq!(f["http_resilience.stop_reason"], "succeeded");
    assert_eq!(f["http_resilience.attempts"], "2");
    assert_eq!(f["http_resilience.waited_ms"], "1000");
    assert_eq!(f["http_resilience.trace_id"], "trace-200");
    assert!(
        !f.contains_key("error.type"),
        "a success has no error type: {f:?}"
    );

    let request_index = capture.index_of("http_resilience.request")[0];
    let attempts: Vec<&SpanRecord> = capture
        .index_of("http_resilience.attempt")
        .into_iter()
        .map(|i| &spans[i])
        .collect();
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt.parent, Some(request_index));
        assert_eq!(attempt.fields["otel.name"], "POST");
        assert_eq!(attempt.fields["otel.kind"], "client");
        assert_eq!(attempt.fields["server.address"], "api.example.com");
    }
    let (first, second) = (&attempts[0].fields, &attempts[1].fields);
    assert_eq!(first["http.response.status_code"], "429");
    assert_eq!(first["error.type"], "rate_limited");
    assert_eq!(first["http_resilience.verdict"], "server_wait");
    assert_eq!(first["http_resilience.trace_id"], "trace-429");
    assert!(!first.contains_key("http.request.resend_count"));
    assert_eq!(second["http.request.resend_count"], "1");
    assert_eq!(second["http.response.status_code"], "200");
    assert!(!second.contains_key("error.type"));

    // INFO shows the retry, inside the request span, and nothing else for a success.
    let events = capture.events();
    let info: Vec<&EventRecord> = events.iter().filter(|e| e.level <= Level::INFO).collect();
    assert_eq!(info.len(), 1, "{info:#?}");
    let retry = info[0];
    assert_eq!(retry.fields["message"], "retrying request");
    assert_eq!(retry.target, "http_resilience::retry");
    assert_eq!(retry.span, Some(request_index));
    assert_eq!(retry.fields["error.type"], "rate_limited");
    assert_eq!(retry.fields["http_resilience.wait_source"], "retry-after");
    assert_eq!(retry.fields["delay_ms"], "1000");

    let text = capture.text();
    assert!(!text.contains("SECRET"), "a secret was captured: {text}");
}

/// tower-http's `TraceLayer` inside the stack opens its span in each attempt's span; around the
/// stack, its span holds the request span.
#[tokio::test(start_paused = true)]
async fn trace_layer_spans_nest_inside_attempts_and_around_the_request() {
    use tower_http::trace::TraceLayer;
    let script: &'static [Answer] = &[
        (503, &[], "busy"),
        (200, &[JSON], "{}"),
        (503, &[], "busy"),
        (200, &[JSON], "{}"),
    ];

    let capture = Capture::default();
    let _guard = capture.install();
    let inside = ServiceBuilder::new()
        .resilience(ResilienceLayer::new())
        .layer(TraceLayer::new_for_http())
        .service(scripted(&[("/v1/models", script)]));
    let response = inside.oneshot(get("/v1/models")).await.unwrap();
    assert_eq!(response.status(), 200);
    let spans = capture.spans();
    let attempts = capture.index_of("http_resilience.attempt");
    let traced = capture.index_of("request");
    assert_eq!((attempts.len(), traced.len()), (2, 2), "{spans:#?}");
    for (attempt, traced) in attempts.iter().zip(&traced) {
        assert_eq!(spans[*traced].parent, Some(*attempt));
    }
    drop(_guard);

    let capture = Capture::default();
    let _guard = capture.install();
    let around = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .resilience(ResilienceLayer::new())
        .service(scripted(&[("/v1/models", script)]));
    let response = around.oneshot(get("/v1/models")).await.unwrap();
    assert_eq!(response.status(), 200);
    let spans = capture.spans();
    let traced = capture.index_of("request");
    let request = capture.index_of("http_resilience.request");
    assert_eq!((traced.len(), request.len()), (1, 1), "{spans:#?}");
    assert_eq!(spans[request[0]].parent, Some(traced[0]));
    assert_eq!(capture.index_of("http_resilience.attempt").len(), 2);
}

// ---- Give-ups ------------------------------------------------------------------------------------

/// Every give-up is one event, with what a support ticket needs; WARN only for what an operator
/// must act on.
#[tokio::test(start_paused = true)]
async fn each_give_up_is_one_event_at_info_or_warn() {
    let cases: &[(&str, &'static [Answer], Level, &str, &str)] = &[
        (
            "/invalid",
            &[(
                400,
                &[JSON],
                r#"{"error":{"code":"invalid_prompt","message":"prompt is empty"}}"#,
            )],
            Level::INFO,
            "verdict_never",
            "invalid_request",
        ),
        (
            "/credentials",
            &[(
                401,
                &[JSON, ("x-request-id", "trace-401")],
                r#"{"error":{"message":"Incorrect API key provided: sk-live-0123456789abcdefSECRET"}}"#,
            )],
            Level::WARN,
            "verdict_never",
            "unauthenticated",
        ),
        (
            "/quota",
            &[(
                429,
                &[JSON],
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            )],
            Level::WARN,
            "verdict_never",
            "quota_exhausted",
        ),
        (
            "/busy",
            &[(503, &[], "upstream busy")],
            Level::INFO,
            "attempts_exhausted",
            "overloaded",
        ),
        (
            "/long-wait",
            &[(429, &[("retry-after", "600")], "")],
            Level::WARN,
            "wait_too_long",
            "rate_limited",
        ),
    ];
    for &(path, script, level, stop, kind) in cases {
        let capture = Capture::default();
        let _guard = capture.install();
        let client = ServiceBuilder::new()
            .resilience(ResilienceLayer::new())
            .service(scripted(&[(path, script)]));
        let response = client.oneshot(post(path)).await.unwrap();
        assert!(response.status().as_u16() >= 400);
        let events = capture.events();
        let give_ups: Vec<&EventRecord> = events
            .iter()
            .filter(|e| e.fields["message"] == "request failed")
            .collect();
        assert_eq!(give_ups.len(), 1, "{path}: {events:#?}");
        let event = give_ups[0];
        assert_eq!(event.level, level, "{path}");
        let f = &event.fields;
        assert_eq!(f["http_resilience.stop_reason"], stop, "{path}");
        assert_eq!(f["error.type"], kind, "{path}");
        assert_eq!(f["http.request.method"], "POST");
        assert!(f["url.full"].starts_with(&format!("https://api.example.com{path}?api_key=")));
        assert_eq!(f["server.address"], "api.example.com");
        assert!(!f["http_resilience.client_request_id"].is_empty());
        assert_eq!(f["http_resilience.idempotency_key_present"], "true");
        assert!(f.contains_key("http_resilience.attempts"));
        assert!(f.contains_key("http_resilience.elapsed_ms"));
        assert!(f.contains_key("http.response.status_code"));
        let text = capture.text();
        assert!(
            !text.contains("SECRET"),
            "{path}: a secret was captured: {text}"
        );
    }
}

/// A retry the budget refuses is a give-up an operator must see: WARN, `budget_spent`.
#[tokio::test(start_paused = true)]
async fn a_spent_budget_is_a_warning() {
    let capture = Capture::default();
    let _guard = capture.install();
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new().budget(RetryBudget::new(
            Duration::from_secs(10),
            0,
            0.0,
        )))
        .service(scripted(&[("/v1/models", &[(500, &[], "oops")])]));
    let response = client.oneshot(get("/v1/models")).await.unwrap();
    assert_eq!(response.status(), 500);
    let events = capture.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, Level::WARN);
    assert_eq!(
        events[0].fields["http_resilience.stop_reason"],
        "budget_spent"
    );
    assert_eq!(
        events[0].fields["http_resilience.idempotency_key_present"],
        "false"
    );
}

/// A transport failure that ends the call is a give-up too, without a status.
#[tokio::test(start_paused = true)]
async fn a_final_transport_error_is_one_event() {
    let capture = Capture::default();
    let _guard = capture.install();
    let upstream = service_fn(|_: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ))
    });
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new().max_attempts(2))
        .service(upstream);
    client.oneshot(get("/v1/models")).await.unwrap_err();
    let events = capture.events();
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e.fields["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["retrying request", "request failed"],
        "{events:#?}"
    );
    let failed = &events[1].fields;
    assert_eq!(failed["http_resilience.stop_reason"], "attempts_exhausted");
    assert_eq!(failed["error.type"], "transport");
    assert!(!failed.contains_key("http.response.status_code"));
    let request = &capture.spans()[capture.index_of("http_resilience.request")[0]];
    assert_eq!(request.fields["error.type"], "transport");
    assert_eq!(request.fields["http_resilience.attempts"], "2");
}

/// A key the server quotes back is masked in the give-up event even when the stack kept no copy
/// of the request (one attempt only): the request's header and URL secrets mask it.
#[tokio::test(start_paused = true)]
async fn an_echoed_key_is_masked_without_a_copy_of_the_request() {
    let capture = Capture::default();
    let _guard = capture.install();
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new().max_attempts(1))
        .service(scripted(&[(
            "/v1/images",
            &[(
                401,
                &[JSON],
                r#"{"error":{"message":"Incorrect API key: Bearer sk-proj-abcdefghijklmnopSECRET (query sk-live-0123456789abcdefSECRET)"}}"#,
            )],
        )]));
    client.oneshot(post("/v1/images")).await.unwrap();
    let events = capture.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(events[0].fields["http_resilience.message"].starts_with("Incorrect API key"));
    let text = capture.text();
    assert!(!text.contains("SECRET"), "a secret was captured: {text}");
}

/// A call the caller drops closes its span as cancelled.
#[tokio::test(start_paused = true)]
async fn a_dropped_call_is_cancelled() {
    let capture = Capture::default();
    let _guard = capture.install();
    let upstream = service_fn(|_: Request<Full<Bytes>>| async {
        std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>().await
    });
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new())
        .service(upstream);
    let outcome =
        tokio::time::timeout(Duration::from_secs(1), client.oneshot(get("/v1/models"))).await;
    assert!(outcome.is_err(), "the caller gave up first");
    let request = &capture.spans()[capture.index_of("http_resilience.request")[0]];
    assert_eq!(request.fields["http_resilience.stop_reason"], "cancelled");
    let events = capture.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, Level::DEBUG);
    assert_eq!(
        events[0].fields["message"],
        "request cancelled by the caller"
    );
}

// ---- reqwest-middleware --------------------------------------------------------------------------

/// The reqwest middleware reports the same spans, the URL included, and the same give-up event.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_reqwest_middleware_reports_the_same_spans_and_events() {
    use common::capture::API_KEY;
    use http_resilience::reqwest::ResilienceMiddleware;

    let addr = common::spawn_server(|request: Request<hyper::body::Incoming>| async move {
        let (status, body) = if request.uri().path() == "/fails" {
            (401, r#"{"error":{"message":"no"}}"#)
        } else {
            (200, r#"{"id":"img_1"}"#)
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(common::full(body))
            .unwrap()
    })
    .await;
    let capture = Capture::default();
    let _guard = capture.install();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(ResilienceLayer::new()))
        .build();
    let url = format!("http://{addr}/ok?api_key={API_KEY}");
    let response = client
        .get(&url)
        .send()
        .instrument(tracing::info_span!("caller"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = capture.spans();
    let request = capture.index_of("http_resilience.request");
    assert_eq!(request.len(), 1, "{spans:#?}");
    let f = &spans[request[0]].fields;
    assert_eq!(
        spans[request[0]].parent,
        Some(capture.index_of("caller")[0])
    );
    assert!(
        f["url.full"].starts_with(&format!("http://{addr}/ok?api_key=")),
        "{f:?}"
    );
    assert_eq!(f["server.address"], "127.0.0.1");
    assert_eq!(f["server.port"], addr.port().to_string());
    assert_eq!(capture.index_of("http_resilience.attempt").len(), 1);

    client
        .post(format!("http://{addr}/fails"))
        .send()
        .await
        .unwrap();
    let events = capture.events();
    let failed: Vec<&EventRecord> = events
        .iter()
        .filter(|e| e.fields["message"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0].level, Level::WARN);
    assert_eq!(failed[0].fields["url.full"], format!("http://{addr}/fails"));
    assert!(!capture.text().contains("SECRET"));
}

/// reqwest-tracing's middleware before this crate's in the chain opens one span per logical
/// call, holding the request span; after it, one span per attempt, each inside an attempt span.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_tracing_spans_nest_around_and_inside() {
    use http_resilience::reqwest::ResilienceMiddleware;
    use reqwest_tracing::TracingMiddleware;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let calls = Arc::new(AtomicUsize::new(0));
    let addr = {
        let calls = Arc::clone(&calls);
        common::spawn_server(move |_request: Request<hyper::body::Incoming>| {
            // Every other call is busy: each logical call takes two attempts.
            let busy = calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
            async move {
                let (status, retry_after) = if busy { (503, "0") } else { (200, "") };
                let mut response = Response::builder().status(status);
                if busy {
                    response = response.header("retry-after", retry_after);
                }
                response.body(common::full("{}")).unwrap()
            }
        })
        .await
    };
    let url = format!("http://{addr}/v1/models");

    let capture = Capture::default();
    let _guard = capture.install();
    let around = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::default())
        .with(ResilienceMiddleware::new(ResilienceLayer::new()))
        .build();
    assert_eq!(around.get(&url).send().await.unwrap().status(), 200);
    let spans = capture.spans();
    let traced = capture.index_of("HTTP request");
    let request = capture.index_of("http_resilience.request");
    assert_eq!((traced.len(), request.len()), (1, 1), "{spans:#?}");
    assert_eq!(spans[request[0]].parent, Some(traced[0]));
    assert_eq!(capture.index_of("http_resilience.attempt").len(), 2);
    drop(_guard);

    let capture = Capture::default();
    let _guard = capture.install();
    let inside = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new(ResilienceLayer::new()))
        .with(TracingMiddleware::default())
        .build();
    assert_eq!(inside.get(&url).send().await.unwrap().status(), 200);
    let spans = capture.spans();
    let attempts = capture.index_of("http_resilience.attempt");
    let traced = capture.index_of("HTTP request");
    assert_eq!((attempts.len(), traced.len()), (2, 2), "{spans:#?}");
    for (attempt, traced) in attempts.iter().zip(&traced) {
        assert_eq!(spans[*traced].parent, Some(*attempt));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

// ---- Metrics -------------------------------------------------------------------------------------

/// A scripted sequence, counted exactly: a retried success, a rejected credential, a server
/// error retried to the end, and a retry the budget refuses.
#[cfg(feature = "metrics")]
#[test]
fn metrics_count_a_scripted_sequence_exactly() {
    use metrics_util::debugging::DebugValue;
    use std::collections::BTreeMap;

    let snapshot = common::record_metrics(|| async {
        let upstream = scripted(&[
            (
                "/a",
                &[(429, &[("retry-after", "2")], ""), (200, &[JSON], "{}")],
            ),
            (
                "/b",
                &[(401, &[JSON], r#"{"error":{"message":"bad key"}}"#)],
            ),
            ("/c", &[(503, &[], "busy")]),
            ("/d", &[(500, &[], "oops")]),
        ]);
        let client = ServiceBuilder::new()
            .resilience(ResilienceLayer::new())
            .service(upstream.clone());
        let statuses = [
            client.clone().oneshot(get("/a")).await.unwrap().status(),
            client.clone().oneshot(post("/b")).await.unwrap().status(),
            client.clone().oneshot(get("/c")).await.unwrap().status(),
        ];
        assert_eq!(statuses.map(|s| s.as_u16()), [200, 401, 503]);
        let refusing = ServiceBuilder::new()
            .resilience(ResilienceLayer::new().budget(RetryBudget::new(
                Duration::from_secs(10),
                0,
                0.0,
            )))
            .service(upstream);
        assert_eq!(refusing.oneshot(get("/d")).await.unwrap().status(), 500);
    })
    .into_vec();
    // name -> [(labels, value)]
    type Labels = Vec<(String, String)>;
    let mut series: BTreeMap<String, Vec<(Labels, &DebugValue)>> = BTreeMap::new();
    for (key, _, _, value) in &snapshot {
        let name = key.key().name();
        if name.starts_with("http_resilience.pacer") {
            continue;
        }
        let labels = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        series
            .entry(name.to_owned())
            .or_default()
            .push((labels, value));
    }
    let counter = |name: &str, want: &[(&str, &str)]| -> u64 {
        series
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(labels, _)| {
                want.iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    };
    let histogram = |name: &str| -> Vec<f64> {
        let mut values: Vec<f64> = series
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|(_, value)| match value {
                DebugValue::Histogram(v) => v.iter().map(|x| x.0).collect::<Vec<_>>(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .collect();
        values.sort_by(f64::total_cmp);
        values
    };

    // Logical requests, by their end.
    assert_eq!(counter("http_resilience.requests", &[]), 4);
    assert_eq!(
        counter(
            "http_resilience.requests",
            &[
                ("http.request.method", "GET"),
                ("http_resilience.status_class", "2xx"),
            ]
        ),
        1
    );
    // A success has no error type (OpenTelemetry sets `error.type` only on errors).
    let success = &series["http_resilience.requests"]
        .iter()
        .find(|(labels, _)| {
            labels
                .iter()
                .any(|(k, v)| k == "http_resilience.status_class" && v == "2xx")
        })
        .unwrap()
        .0;
    assert!(
        !success.iter().any(|(k, _)| k == "error.type"),
        "{success:?}"
    );
    assert_eq!(
        counter(
            "http_resilience.requests",
            &[
                ("http.request.method", "POST"),
                ("error.type", "unauthenticated")
            ]
        ),
        1
    );
    assert_eq!(
        counter(
            "http_resilience.requests",
            &[("http_resilience.status_class", "5xx")]
        ),
        2
    );
    assert_eq!(
        counter("http_resilience.requests", &[("error.type", "overloaded")]),
        1
    );
    // Attempts: 2 for /a, 1 for /b, 3 for /c, 1 for /d.
    assert_eq!(counter("http_resilience.attempts", &[]), 7);
    assert_eq!(
        counter(
            "http_resilience.attempts",
            &[("error.type", "rate_limited")]
        ),
        1
    );
    assert_eq!(
        counter("http_resilience.attempts", &[("error.type", "overloaded")]),
        3
    );
    assert_eq!(
        counter(
            "http_resilience.attempts",
            &[("error.type", "server_error")]
        ),
        1
    );
    // Retries by kind.
    assert_eq!(counter("http_resilience.retries", &[]), 3);
    assert_eq!(
        counter("http_resilience.retries", &[("error.type", "rate_limited")]),
        1
    );
    assert_eq!(
        counter("http_resilience.retries", &[("error.type", "overloaded")]),
        2
    );
    // Give-ups by stop reason.
    assert_eq!(counter("http_resilience.give_ups", &[]), 3);
    for stop in ["verdict_never", "attempts_exhausted", "budget_spent"] {
        assert_eq!(
            counter(
                "http_resilience.give_ups",
                &[("http_resilience.stop_reason", stop)]
            ),
            1,
            "{stop}"
        );
    }
    assert_eq!(counter("http_resilience.retry_budget.refusals", &[]), 1);
    // The server's one wait, in seconds.
    assert_eq!(histogram("http_resilience.server_wait"), [2.0]);
    assert_eq!(
        series["http_resilience.server_wait"][0].0,
        [
            ("server.address".to_owned(), "api.example.com".to_owned()),
            (
                "http_resilience.wait_source".to_owned(),
                "retry-after".to_owned()
            )
        ]
    );
    assert_eq!(
        histogram("http_resilience.request.attempts"),
        [1.0, 1.0, 2.0, 3.0]
    );
    let durations = histogram("http.client.request.duration");
    assert_eq!(durations.len(), 4);
    assert!(
        durations.contains(&2.0),
        "the retried request took the server's 2 s: {durations:?}"
    );

    // Labels are bounded: only these keys, and never a path, an id or a key.
    for (name, all) in &series {
        for (labels, _) in all {
            for (key, value) in labels {
                assert!(
                    [
                        "http.request.method",
                        "server.address",
                        "error.type",
                        "http_resilience.status_class",
                        "http_resilience.stop_reason",
                        "http_resilience.wait_source",
                    ]
                    .contains(&key.as_str()),
                    "{name}: unexpected label {key}"
                );
                assert!(
                    !value.contains('/') || key == "http_resilience.wait_source",
                    "{name}: {key}={value}"
                );
            }
        }
    }
    assert!(!format!("{snapshot:?}").contains("SECRET"));
}
