//! Every code and status named in the seeds (`../shared/seeds/`), and the envelope of every
//! provider the crate claims to read, classified as documented.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_resilience::classify::{
    BodyRead, Classification, Classifier, ErrorKind, ErrorKind::*, ProviderCode, RetryVerdict,
};
use http_resilience::ids::TraceIdSource;

fn classify_with(status: u16, headers: &[(&str, &str)], body: &str) -> Classification {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Classifier::new().classify(
        StatusCode::from_u16(status).unwrap(),
        &map,
        body.as_bytes(),
        BodyRead::Complete,
    )
}

fn classify(status: u16, body: &str) -> Classification {
    classify_with(status, &[], body)
}

fn text(code: &str) -> Option<ProviderCode> {
    Some(ProviderCode::Text(code.to_owned()))
}

#[track_caller]
fn assert_kind(status: u16, body: &str, kind: Option<ErrorKind>) -> Classification {
    let c = classify(status, body);
    assert_eq!(c.kind(), kind, "status {status}, body {body}");
    c
}

// ---- Seed 000: {"error":{"code","message"},"trace_id"} ---------------------------------------

#[test]
fn seed_000_every_code_maps_to_its_kind() {
    let table = [
        ("bad_request", 400, InvalidRequest),
        ("no_token", 400, Unauthenticated),
        ("invalid_token", 401, Unauthenticated),
        ("token_expired", 401, Unauthenticated),
        ("token_mismatched", 401, Unauthenticated),
        ("disabled", 403, PermissionDenied),
        ("used_up", 403, QuotaExhausted),
        ("forbidden", 403, ContentPolicy),
        ("no_api", 404, NotFound),
        ("too_many_requests", 429, RateLimited),
        ("api_error", 500, ServerError),
        ("timeout", 504, Timeout),
    ];
    for (code, status, kind) in table {
        let body = format!(
            r#"{{"error":{{"code":"{code}","message":"text for {code}"}},"trace_id":"7c1a-{code}"}}"#
        );
        let c = assert_kind(status, &body, Some(kind));
        assert_eq!(c.code(), text(code).as_ref());
        assert_eq!(c.message(), Some(format!("text for {code}").as_str()));
        let trace = c.trace_id().expect("trace id");
        assert_eq!(trace.as_str(), format!("7c1a-{code}"));
        assert_eq!(trace.source(), &TraceIdSource::BodyField("trace_id".into()));
    }
}

#[test]
fn seed_000_statuses_and_retry_guidance() {
    // 4xx are not retried (429 excepted); 429 and 5xx may be.
    for status in [400, 401, 403, 404] {
        let c = classify(status, "");
        assert_eq!(c.verdict(), Some(RetryVerdict::Never), "{status}");
    }
    assert_eq!(classify(429, "").verdict(), Some(RetryVerdict::ServerWait));
    assert_eq!(classify(500, "").verdict(), Some(RetryVerdict::Backoff));
    assert_eq!(classify(504, "").verdict(), Some(RetryVerdict::Backoff));
    assert_kind(
        200,
        r#"{"success":true,"image_url":"https://x/y.png"}"#,
        None,
    );
}

#[test]
fn seed_000_webhook_callback_envelope() {
    assert_kind(200, r#"{"success":true,"task_id":"t1","data":[]}"#, None);
    let c = assert_kind(
        200,
        r#"{"success":false,"task_id":"t1","error":{"code":"api_error","message":"upstream failed"},"trace_id":"tr-9"}"#,
        Some(ServerError),
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "tr-9");
}

// ---- Seed 001: OpenAI-style {"error":{"message","type","code"}} -------------------------------

#[test]
fn seed_001_error_types_map_to_kinds() {
    let table = [
        ("invalid_request_error", 400, InvalidRequest),
        ("authentication_error", 401, Unauthenticated),
        ("permission_error", 403, PermissionDenied),
        ("not_found_error", 404, NotFound),
        ("rate_limit_error", 429, RateLimited),
        ("server_error", 500, ServerError),
    ];
    for (error_type, status, kind) in table {
        let body = format!(r#"{{"error":{{"message":"m","type":"{error_type}","code":null}}}}"#);
        let c = assert_kind(status, &body, Some(kind));
        assert_eq!(c.code(), text(error_type).as_ref());
    }
}

#[test]
fn seed_001_task_codes_win_over_the_type() {
    let table = [
        ("model_unavailable", Overloaded),
        ("content_policy_violation", ContentPolicy),
        ("generation_failed", ServerError),
        ("timeout", Timeout),
        ("invalid_image_url", InvalidRequest),
        ("file_too_large", PayloadTooLarge),
        ("unsupported_format", Unsupported),
    ];
    for (code, kind) in table {
        let body = format!(
            r#"{{"error":{{"message":"m","type":"invalid_request_error","code":"{code}"}}}}"#
        );
        let c = assert_kind(400, &body, Some(kind));
        assert_eq!(c.code(), text(code).as_ref());
    }
}

#[test]
fn seed_001_statuses_fall_back_without_a_body() {
    let table = [
        (400, InvalidRequest),
        (401, Unauthenticated),
        (402, QuotaExhausted),
        (403, PermissionDenied),
        (404, NotFound),
        (429, RateLimited),
        (500, ServerError),
    ];
    for (status, kind) in table {
        assert_kind(status, "", Some(kind));
    }
    assert_kind(200, r#"{"id":"task_1","status":"pending"}"#, None);
}

// ---- Seed 002: {"success":false,"data":null,"error":{"code","message","details"}} -------------

#[test]
fn seed_002_codes_map_to_kinds() {
    let table = [
        ("invalid_request", 400, InvalidRequest),
        ("INSUFFICIENT_CREDITS", 402, QuotaExhausted),
        ("SPENDING_LIMIT_EXCEEDED", 402, QuotaExhausted),
        ("CONCURRENT_GENERATION_LIMIT", 429, ConcurrencyLimited),
        ("FORBIDDEN", 403, PermissionDenied),
        ("INVALID_URL", 400, InvalidRequest),
        ("INVALID_EVENTS", 400, InvalidRequest),
    ];
    for (code, status, kind) in table {
        let body = format!(
            r#"{{"success":false,"data":null,"error":{{"code":"{code}","message":"m","details":{{"param":"prompt","type":"missing_required_field"}}}}}}"#
        );
        let c = assert_kind(status, &body, Some(kind));
        assert_eq!(c.code(), text(code).as_ref());
    }
    let c = assert_kind(
        429,
        r#"{"success":false,"data":null,"error":{"code":"CONCURRENT_GENERATION_LIMIT","message":"Too many active generation jobs for this user.","active_requests":1,"concurrency_limit":1}}"#,
        Some(ConcurrencyLimited),
    );
    assert_eq!(c.verdict(), Some(RetryVerdict::Backoff));
}

#[test]
fn seed_002_success_false_under_200_is_a_failure() {
    let c = assert_kind(
        200,
        r#"{"success":false,"data":null,"error":{"code":"INSUFFICIENT_CREDITS","message":"API call limit reached"}}"#,
        Some(QuotaExhausted),
    );
    assert_eq!(c.message(), Some("API call limit reached"));
    assert_kind(200, r#"{"success":false,"data":null}"#, Some(Unknown));
    assert_kind(
        200,
        r#"{"success":true,"data":{"id":1},"error":null}"#,
        None,
    );
}

#[test]
fn seed_002_statuses() {
    for (status, kind) in [
        (400, InvalidRequest),
        (401, Unauthenticated),
        (402, QuotaExhausted),
        (403, PermissionDenied),
        (404, NotFound),
        (429, RateLimited),
        (500, ServerError),
    ] {
        assert_kind(
            status,
            r#"{"success":false,"data":null,"error":{"code":"SOMETHING_NEW","message":"m"}}"#,
            Some(kind),
        );
    }
}

// ---- Seed 003: business code in the body decides, even under 200 -----------------------------

#[test]
fn seed_003_business_codes_under_200() {
    let table = [
        (100001, InvalidRequest),
        (100002, InvalidRequest),
        (130005, RateLimited),
        (400001, InvalidRequest),
        (400002, InvalidRequest),
        (400003, InvalidRequest),
        (400005, InvalidRequest),
        (401001, Unauthenticated),
        (401002, Unauthenticated),
        (402000, QuotaExhausted),
        (500001, ServerError),
        (500002, ServerError),
        (500003, ServerError),
        (500004, ServerError),
        (530002, Overloaded),
        (530003, ServerError),
    ];
    for (code, kind) in table {
        let body = format!(r#"{{"code":{code},"msg":"message {code}","data":null}}"#);
        let c = assert_kind(200, &body, Some(kind));
        assert_eq!(c.code(), Some(&ProviderCode::Number(code)));
        assert_eq!(c.message(), Some(format!("message {code}").as_str()));
    }
    assert_kind(
        200,
        r#"{"code":0,"msg":"Success","data":{"task_id":"t"}}"#,
        None,
    );
}

#[test]
fn seed_003_statuses_and_code_families() {
    for (status, kind) in [
        (400, InvalidRequest),
        (401, Unauthenticated),
        (402, QuotaExhausted),
        (403, PermissionDenied),
        (404, NotFound),
        (413, PayloadTooLarge),
        (429, RateLimited),
        (500, ServerError),
    ] {
        assert_kind(status, r#"{"code":999999,"msg":"?"}"#, Some(kind));
    }
    // Codes missing from the table read by their family, as the seed documents (404xxx, 429xxx).
    assert_kind(
        200,
        r#"{"code":404123,"msg":"no such task"}"#,
        Some(NotFound),
    );
    assert_kind(200, r#"{"code":429001,"msg":"qps"}"#, Some(RateLimited));
    assert_kind(
        200,
        r#"{"code":402999,"msg":"plan expired"}"#,
        Some(QuotaExhausted),
    );
}

// ---- Seed 004: gateway {"error":{...},"request_id"} and {"detail": "..."} --------------------

#[test]
fn seed_004_gateway_errors_and_details() {
    let c = assert_kind(
        401,
        r#"{"error":{"code":"UNAUTHORIZED","message":"Authorization Bearer or Key token is required"},"request_id":"rq-1"}"#,
        Some(Unauthenticated),
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "rq-1");
    assert_kind(
        429,
        r#"{"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded, please try again later"},"request_id":"rq-2"}"#,
        Some(RateLimited),
    );
    let c = assert_kind(
        404,
        r#"{"detail": "App not found: not_exists"}"#,
        Some(NotFound),
    );
    assert_eq!(c.message(), Some("App not found: not_exists"));
    assert_kind(
        403,
        r#"{"detail": "Model not allowed for this user"}"#,
        Some(PermissionDenied),
    );
    assert_kind(
        400,
        r#"{"detail": "webhook not supported"}"#,
        Some(Unsupported),
    );
    assert_kind(
        400,
        r#"{"detail": "SSE streaming not supported"}"#,
        Some(Unsupported),
    );
    let c = assert_kind(
        500,
        r#"{"detail": "Runtime execution failed"}"#,
        Some(ServerError),
    );
    assert_eq!(c.verdict(), Some(RetryVerdict::Backoff));
    assert_kind(404, r#"{"detail": "Not Found"}"#, Some(NotFound));
    assert_kind(404, r#"{"detail": "Request not found"}"#, Some(NotFound));
    assert_kind(
        502,
        "<html><body>Bad Gateway</body></html>",
        Some(ServerError),
    );
    // 202 while a task is incomplete is not a failure.
    assert_kind(202, r#"{"status":"IN_PROGRESS","request_id":"rq-3"}"#, None);
    // After COMPLETED, an `error` says the task failed.
    assert_kind(
        200,
        r#"{"status":"COMPLETED","error":"Runtime execution failed"}"#,
        Some(Unknown),
    );
}

// ---- The major AI APIs ------------------------------------------------------------------------

#[test]
fn openai_quota_429_is_never_retried_but_rate_limit_429_is() {
    let c = assert_kind(
        429,
        r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        Some(QuotaExhausted),
    );
    assert_eq!(c.verdict(), Some(RetryVerdict::Never));
    let c = assert_kind(
        429,
        r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        Some(RateLimited),
    );
    assert_eq!(c.verdict(), Some(RetryVerdict::ServerWait));
    assert_kind(
        401,
        r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        Some(Unauthenticated),
    );
    assert_kind(
        404,
        r#"{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
        Some(NotFound),
    );
    assert_kind(
        400,
        r#"{"error":{"message":"blocked","type":"image_generation_user_error","code":"moderation_blocked"}}"#,
        Some(ContentPolicy),
    );
}

#[test]
fn azure_openai_content_filter_and_string_status_code() {
    assert_kind(
        400,
        r#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#,
        Some(ContentPolicy),
    );
    let c = classify_with(
        429,
        &[("apim-request-id", "apim-1")],
        r#"{"error":{"code":"429","message":"Requests have exceeded call rate limit"}}"#,
    );
    assert_eq!(c.kind(), Some(RateLimited));
    assert_eq!(c.trace_id().unwrap().as_str(), "apim-1");
}

#[test]
fn anthropic_overloaded_529_and_spend_limit() {
    let c = classify_with(
        529,
        &[("request-id", "req_hdr")],
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}"#,
    );
    assert_eq!(c.kind(), Some(Overloaded));
    assert_eq!(c.trace_id().unwrap().as_str(), "req_011");
    assert_kind(
        402,
        r#"{"type":"error","error":{"type":"billing_error","message":"m"}}"#,
        Some(QuotaExhausted),
    );
    assert_kind(
        413,
        r#"{"type":"error","error":{"type":"request_too_large","message":"m"}}"#,
        Some(PayloadTooLarge),
    );
    let c = assert_kind(
        429,
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#,
        Some(QuotaExhausted),
    );
    assert_eq!(c.verdict(), Some(RetryVerdict::Never));
}

#[test]
fn google_status_reason_and_retry_info() {
    let body = r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}"#;
    let c = assert_kind(429, body, Some(RateLimited));
    assert_eq!(c.body_wait(), Some(Duration::from_secs(34)));
    assert_eq!(c.code(), text("RESOURCE_EXHAUSTED").as_ref());
    // An invalid key comes as 400 INVALID_ARGUMENT; the ErrorInfo reason says what it is.
    assert_kind(
        400,
        r#"[{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}]"#,
        Some(Unauthenticated),
    );
    assert_kind(
        503,
        r#"{"error":{"code":503,"message":"The model is overloaded","status":"UNAVAILABLE"}}"#,
        Some(Overloaded),
    );
    assert_kind(
        504,
        r#"{"error":{"code":504,"message":"m","status":"DEADLINE_EXCEEDED"}}"#,
        Some(Timeout),
    );
}

#[test]
fn openrouter_numeric_codes_and_moderation() {
    assert_kind(
        402,
        r#"{"error":{"code":402,"message":"Insufficient credits"}}"#,
        Some(QuotaExhausted),
    );
    assert_kind(
        403,
        r#"{"error":{"code":403,"message":"Input flagged","metadata":{"reasons":["violence"],"flagged_input":"…","provider_name":"x","model_slug":"y"}}}"#,
        Some(ContentPolicy),
    );
    assert_kind(
        408,
        r#"{"error":{"code":408,"message":"timed out"}}"#,
        Some(Timeout),
    );
    assert_kind(
        502,
        r#"{"error":{"code":502,"message":"model down","metadata":{"raw":"…","provider_name":"p"}}}"#,
        Some(ServerError),
    );
    assert_kind(
        503,
        r#"{"error":{"code":503,"message":"no provider"}}"#,
        Some(Overloaded),
    );
    // OpenRouter reports errors met mid-generation under 200.
    assert_kind(
        200,
        r#"{"error":{"code":502,"message":"provider error"}}"#,
        Some(ServerError),
    );
}

#[test]
fn deepseek_groq_together_mistral_cohere() {
    assert_kind(
        402,
        r#"{"error":{"message":"Insufficient Balance","type":"unknown_error"}}"#,
        Some(QuotaExhausted),
    );
    assert_kind(
        503,
        r#"{"error":{"message":"Server overloaded","type":"unknown_error"}}"#,
        Some(Overloaded),
    );
    assert_kind(
        422,
        r#"{"error":{"message":"Invalid parameters","type":"invalid_request_error"}}"#,
        Some(InvalidRequest),
    );
    assert_kind(
        400,
        r#"{"error":{"message":"decommissioned","type":"invalid_request_error","code":"model_decommissioned"}}"#,
        Some(NotFound),
    );
    assert_kind(
        429,
        r#"{"id":"x","error":{"message":"rate","type":"rate_limit_exceeded","param":null,"code":null}}"#,
        Some(RateLimited),
    );
    assert_kind(
        400,
        r#"{"object":"error","message":"bad","type":"invalid_request_error","param":null,"code":null}"#,
        Some(InvalidRequest),
    );
    let c = classify_with(
        429,
        &[("x-request-id", "mistral-1")],
        r#"{"message":"Requests rate limit exceeded"}"#,
    );
    assert_eq!(c.kind(), Some(RateLimited));
    assert_eq!(c.message(), Some("Requests rate limit exceeded"));
    assert_eq!(c.trace_id().unwrap().as_str(), "mistral-1");
    assert_kind(
        400,
        r#"{"id":"c-1","message":"invalid request: prompt must be at least 1 token long."}"#,
        Some(InvalidRequest),
    );
}

#[test]
fn replicate_and_problem_json() {
    let c = assert_kind(
        422,
        r#"{"type":"https://replicate.com/docs/errors#invalid-input","title":"Input validation failed","status":422,"detail":"- input.prompt: Invalid type"}"#,
        Some(InvalidRequest),
    );
    assert_eq!(c.message(), Some("- input.prompt: Invalid type"));
    assert_kind(
        429,
        r#"{"detail":"Request was throttled. Expected available in 1 second.","status":429}"#,
        Some(RateLimited),
    );
    let c = assert_kind(
        403,
        r#"{"type":"https://example.com/probs/out-of-credit","title":"You do not have enough credit.","status":403,"instance":"/account/12345"}"#,
        Some(PermissionDenied),
    );
    assert_eq!(c.message(), Some("You do not have enough credit."));
    assert_kind(
        200,
        r#"{"id":"p1","status":"failed","error":"CUDA out of memory"}"#,
        Some(Unknown),
    );
    assert_kind(
        200,
        r#"{"id":"p1","status":"succeeded","error":null,"output":["x"]}"#,
        None,
    );
}

#[test]
fn fal_typed_details_request_errors_and_header() {
    let c = assert_kind(
        422,
        r#"{"detail":[{"loc":["body","prompt"],"msg":"The content could not be processed","type":"content_policy_violation","url":"https://docs.fal.ai/errors#content_policy_violation","input":"x"}]}"#,
        Some(ContentPolicy),
    );
    assert_eq!(c.message(), Some("The content could not be processed"));
    assert_kind(
        422,
        r#"{"detail":[{"loc":["body","image_url"],"msg":"too large","type":"image_too_large"}]}"#,
        Some(PayloadTooLarge),
    );
    assert_kind(
        504,
        r#"{"detail":"Request timed out","error_type":"request_timeout"}"#,
        Some(Timeout),
    );
    assert_kind(
        503,
        r#"{"detail":"No runner","error_type":"runner_scheduling_failure"}"#,
        Some(Overloaded),
    );
    let c = classify_with(
        503,
        &[
            ("x-fal-error-type", "runner_disconnected"),
            ("x-fal-request-id", "fal-7"),
        ],
        "",
    );
    assert_eq!(c.kind(), Some(ServerError));
    assert_eq!(c.trace_id().unwrap().as_str(), "fal-7");
}

#[test]
fn stability_bedrock_and_hugging_face() {
    let c = assert_kind(
        403,
        r#"{"id":"ed14a8e1b1e5c7b0","name":"content_moderation","errors":["Your request was flagged by our content moderation system"]}"#,
        Some(ContentPolicy),
    );
    assert_eq!(
        c.message(),
        Some("Your request was flagged by our content moderation system")
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "ed14a8e1b1e5c7b0");
    assert_kind(
        402,
        r#"{"id":"a","name":"payment_required","errors":["lack of credits"]}"#,
        Some(QuotaExhausted),
    );

    let c = classify_with(
        400,
        &[
            (
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            ),
            ("x-amzn-requestid", "aws-1"),
        ],
        r#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    assert_eq!(c.kind(), Some(RateLimited));
    assert_eq!(c.code(), text("ThrottlingException").as_ref());
    assert_eq!(c.trace_id().unwrap().as_str(), "aws-1");
    let c = classify_with(
        429,
        &[("x-amzn-errortype", "ModelNotReadyException")],
        r#"{"message":"not ready"}"#,
    );
    assert_eq!(c.kind(), Some(Overloaded));
    let c = classify_with(
        408,
        &[("x-amzn-errortype", "ModelTimeoutException")],
        r#"{"message":"timeout"}"#,
    );
    assert_eq!(c.kind(), Some(Timeout));

    let c = assert_kind(
        503,
        r#"{"error":"Model org/model is currently loading","estimated_time":20.5}"#,
        Some(Overloaded),
    );
    assert_eq!(c.body_wait(), Some(Duration::from_millis(20_500)));
    assert_eq!(c.message(), Some("Model org/model is currently loading"));
    assert_kind(
        400,
        r#"{"error":["Input validation error: `inputs` must be non-empty"]}"#,
        Some(InvalidRequest),
    );
}

// ---- Fallbacks ---------------------------------------------------------------------------------

#[test]
fn non_json_bodies_fall_back_to_the_status() {
    assert_kind(
        502,
        "<html><head><title>502 Bad Gateway</title></head></html>",
        Some(ServerError),
    );
    // A short plain-text body is read for its phrases: Envoy's "upstream connect error" is a
    // proxy with nothing reachable behind it, a server error (retried after a backoff), as the
    // corpus's real Envoy answers are read; its circuit breaker's "overflow" is load shed.
    assert_kind(
        503,
        "upstream connect error or disconnect/reset before headers",
        Some(ServerError),
    );
    assert_kind(
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        Some(Overloaded),
    );
    assert_kind(503, "Service Unavailable", Some(Overloaded));
    assert_kind(429, "", Some(RateLimited));
    assert_kind(500, "{\"error\": {\"code\": \"api_e", Some(ServerError));
    assert_kind(200, "<html>ok</html>", None);
}

#[test]
fn unknown_codes_fall_back_to_the_status_and_keep_the_code() {
    let c = assert_kind(
        503,
        r#"{"error":{"code":"brand_new_code","message":"m"}}"#,
        Some(Overloaded),
    );
    assert_eq!(c.code(), text("brand_new_code").as_ref());
    let c = assert_kind(418, r#"{"error":{"code":"teapot"}}"#, Some(Unknown));
    assert_eq!(c.verdict(), Some(RetryVerdict::Never));
    let c = assert_kind(507, r#"{"error":{"code":"disk"}}"#, Some(ServerError));
    assert_eq!(c.verdict(), Some(RetryVerdict::Backoff));
}

#[test]
fn caller_rules_override_and_extend_the_tables() {
    let classifier = Classifier::new()
        .code("forbidden", PermissionDenied)
        .code(777, QuotaExhausted)
        .message_phrase("please top up", QuotaExhausted)
        .code_header(HeaderName::from_static("x-my-error"))
        .trace_id_header(HeaderName::from_static("x-gw-id"))
        .trace_id_field("job_ref");
    let mut headers = HeaderMap::new();
    headers.insert("x-gw-id", HeaderValue::from_static("gw-1"));
    headers.insert("x-request-id", HeaderValue::from_static("req-1"));
    let ok = StatusCode::OK;
    let c = classifier.classify(
        StatusCode::FORBIDDEN,
        &headers,
        br#"{"error":{"code":"forbidden"}}"#,
        BodyRead::Complete,
    );
    assert_eq!(c.kind(), Some(PermissionDenied));
    assert_eq!(c.trace_id().unwrap().as_str(), "gw-1");
    let c = classifier.classify(
        ok,
        &headers,
        br#"{"code":777,"msg":"m","job_ref":"j-1"}"#,
        BodyRead::Complete,
    );
    assert_eq!(c.kind(), Some(QuotaExhausted));
    assert_eq!(c.trace_id().unwrap().as_str(), "j-1");
    let c = classifier.classify(
        StatusCode::BAD_REQUEST,
        &headers,
        br#"{"detail":"Please top up your account"}"#,
        BodyRead::Complete,
    );
    assert_eq!(c.kind(), Some(QuotaExhausted));
    headers.insert("x-my-error", HeaderValue::from_static("SLOW_DOWN"));
    let classifier = classifier.code("SLOW_DOWN", RateLimited);
    let c = classifier.classify(StatusCode::BAD_REQUEST, &headers, b"", BodyRead::NotRead);
    assert_eq!(c.kind(), Some(RateLimited));

    let empty = Classifier::empty();
    let c = empty.classify(
        StatusCode::FORBIDDEN,
        &HeaderMap::new(),
        br#"{"error":{"code":"used_up"}}"#,
        BodyRead::Complete,
    );
    assert_eq!(
        c.kind(),
        Some(PermissionDenied),
        "no tables: the status decides"
    );
}

#[test]
fn body_not_read_classifies_by_status_and_headers_only() {
    let c = Classifier::new().classify(
        StatusCode::OK,
        &HeaderMap::new(),
        br#"{"code":130005,"msg":"x"}"#,
        BodyRead::NotRead,
    );
    assert_eq!(c.kind(), None);
    assert_eq!(c.body_read(), BodyRead::NotRead);
}

#[test]
fn display_is_one_useful_line() {
    let c = classify_with(
        429,
        &[("x-request-id", "req_1")],
        r#"{"error":{"code":"too_many_requests","message":"slow down"}}"#,
    );
    assert_eq!(
        c.to_string(),
        "429 rate_limited (too_many_requests): slow down [trace id req_1]"
    );
}

#[test]
fn a_success_bodys_resource_id_is_not_a_trace_id() {
    // `{"id": …}` names the image, task or completion in a success body.
    let c = classify(200, r#"{"id":"img_1","url":"https://cdn.example/1.png"}"#);
    assert_eq!(c.kind(), None);
    assert!(c.trace_id().is_none(), "{:?}", c.trace_id());
    // A real trace field still counts on success, and `id` still counts in a failure body.
    let c = classify(200, r#"{"id":"img_1","request_id":"rq-7"}"#);
    assert_eq!(c.trace_id().unwrap().as_str(), "rq-7");
    let c = classify(400, r#"{"id":"e-1","name":"bad_request","errors":["bad"]}"#);
    assert_eq!(c.trace_id().unwrap().as_str(), "e-1");
    // A caller who says `id` is the trace field gets it everywhere.
    let c = Classifier::new().trace_id_field("id").classify(
        StatusCode::OK,
        &HeaderMap::new(),
        br#"{"id":"tr-1"}"#,
        BodyRead::Complete,
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "tr-1");
}

#[test]
fn the_best_ranked_trace_header_wins_however_many_headers_there_are() {
    let trace_headers = [
        ("cf-ray", "ray-1"),
        ("content-type", "application/json"),
        ("x-amzn-requestid", "amzn-1"),
        ("request-id", "rq-1"),
    ];
    // Few headers: one pass over them.
    let c = classify_with(500, &trace_headers, "");
    assert_eq!(c.trace_id().unwrap().as_str(), "rq-1");
    assert_eq!(
        c.trace_id().unwrap().source(),
        &TraceIdSource::Header(HeaderName::from_static("request-id"))
    );
    // More headers than known names: a lookup per known name, in rank order.
    let filler: Vec<(String, String)> = (0..20)
        .map(|i| (format!("x-filler-{i}"), format!("v{i}")))
        .collect();
    let mut many: Vec<(&str, &str)> = filler
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    many.extend(trace_headers);
    assert_eq!(
        classify_with(500, &many, "").trace_id().unwrap().as_str(),
        "rq-1"
    );
    // A name the caller adds ranks first; unknown names of a known length are no trace id.
    let mut headers = HeaderMap::new();
    headers.insert("x-my-trace", HeaderValue::from_static("mine-1"));
    headers.insert("request-id", HeaderValue::from_static("rq-1"));
    headers.insert("x-request-ix", HeaderValue::from_static("not-a-trace"));
    let c = Classifier::new()
        .trace_id_header(HeaderName::from_static("x-my-trace"))
        .classify(StatusCode::BAD_GATEWAY, &headers, b"", BodyRead::Complete);
    assert_eq!(c.trace_id().unwrap().as_str(), "mine-1");
    headers.remove("x-my-trace");
    headers.remove("request-id");
    let c = Classifier::new().classify(StatusCode::BAD_GATEWAY, &headers, b"", BodyRead::Complete);
    assert!(c.trace_id().is_none());
}
