//! The most specific signal of an answer decides its kind: specific codes, then message
//! phrases, then the status, then generic codes (issue 15's classes of misread answers).

use http::{HeaderMap, HeaderValue, StatusCode};
use http_resilience::classify::{BodyRead, Classifier, DecidedBy};
use http_resilience::{ErrorKind, RetryVerdict};

fn read(status: u16, headers: &[(&'static str, &str)], body: &str) -> (ErrorKind, RetryVerdict) {
    let c = classify(status, headers, body);
    (c.kind().unwrap(), c.verdict().unwrap())
}

fn classify(
    status: u16,
    headers: &[(&'static str, &str)],
    body: &str,
) -> http_resilience::Classification {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    Classifier::new().classify(
        StatusCode::from_u16(status).unwrap(),
        &map,
        body.as_bytes(),
        BodyRead::Complete,
    )
}

use ErrorKind::*;

#[test]
fn generic_codes_yield_to_specific_types_and_statuses() {
    let auth = r#"{"error":{"type":"authentication_error","code":"invalid_request_error","message":"invalid x-api-key"}}"#;
    assert_eq!(read(401, &[], auth).0, Unauthenticated);
    let conflict = r#"{"error":{"type":"invalid_request","code":"idempotency_key_in_use","message":"A request with this key is in progress"}}"#;
    assert_eq!(read(409, &[], conflict), (Conflict, RetryVerdict::Backoff));
    // A generic code under a specific status: the status says more.
    let limited = r#"{"error":{"type":"api_error","message":"slow down"}}"#;
    assert_eq!(read(429, &[], limited).0, RateLimited);
    let busy =
        r#"{"error":{"code":"server_error","message":"The engine is currently overloaded"}}"#;
    assert_eq!(read(503, &[], busy), (Overloaded, RetryVerdict::ServerWait));
    // Under a success status the generic code is all there is.
    let business = r#"{"error":{"type":"invalid_request_error","message":"bad"}}"#;
    assert_eq!(read(200, &[], business).0, InvalidRequest);
}

#[test]
fn messages_carry_the_meaning_when_codes_do_not() {
    let cases: &[(u16, &str, ErrorKind)] = &[
        (
            400,
            r#"{"error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#,
            QuotaExhausted,
        ),
        (
            429,
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details."}}"#,
            QuotaExhausted,
        ),
        (
            402,
            r#"{"error":{"message":"Insufficient Balance","type":"unknown_error"}}"#,
            QuotaExhausted,
        ),
        (
            403,
            r#"{"message":"trial key is limited to 1000 API calls / month"}"#,
            QuotaExhausted,
        ),
        (
            200,
            r#"{"code":1113,"msg":"余额不足或无可用资源包,请充值。"}"#,
            QuotaExhausted,
        ),
        (
            503,
            r#"{"error":{"message":"Server is busy, please try again later","type":"server_error"}}"#,
            Overloaded,
        ),
        (
            429,
            r#"{"error":{"message":"Too many concurrent requests for this model"}}"#,
            ConcurrencyLimited,
        ),
        (
            402,
            r#"{"error":{"message":"Too many in-flight requests for your spend limit"}}"#,
            ConcurrencyLimited,
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
            PermissionDenied,
        ),
        (
            400,
            r#"{"message":"The request was blocked by a guardrail"}"#,
            ContentPolicy,
        ),
        (
            400,
            r#"{"error":{"type":"invalid_request_error","message":"Rate limit reached for requests"}}"#,
            RateLimited,
        ),
        (
            200,
            r#"{"code":1302,"msg":"您当前使用该API的并发数过高"}"#,
            ConcurrencyLimited,
        ),
    ];
    for (status, body, kind) in cases {
        assert_eq!(read(*status, &[], body).0, *kind, "{status} {body}");
    }
}

#[test]
fn a_phrase_never_outranks_a_specific_code() {
    let body = r#"{"error":{"code":"rate_limit_exceeded","message":"quota exceeded for requests per minute"}}"#;
    assert_eq!(read(429, &[], body).0, RateLimited);
}

#[test]
fn aws_types_in_the_body_and_header() {
    let throttled = r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}"#;
    assert_eq!(
        read(400, &[], throttled),
        (RateLimited, RetryVerdict::ServerWait)
    );
    let quota = r#"{"message":"The request would exceed the service quota"}"#;
    let header = [(
        "x-amzn-errortype",
        "ServiceQuotaExceededException:http://internal.amazon.com/coral/com.amazon.bedrock/",
    )];
    assert_eq!(
        read(400, &header, quota),
        (QuotaExhausted, RetryVerdict::Never)
    );
    let denied = r#"{"__type":"AccessDeniedException","Message":"not authorized"}"#;
    assert_eq!(read(403, &[], denied).0, PermissionDenied);
}

#[test]
fn grpc_cancelled_from_the_server_is_retried() {
    let body =
        r#"{"error":{"code":499,"message":"The operation was cancelled.","status":"CANCELLED"}}"#;
    assert_eq!(read(499, &[], body), (ServerError, RetryVerdict::Backoff));
}

#[test]
fn the_classification_says_which_signal_decided() {
    let by = |status, headers: &[(&'static str, &str)], body| {
        classify(status, headers, body).decided_by().cloned()
    };
    let auth = r#"{"error":{"type":"authentication_error","code":"invalid_request_error"}}"#;
    assert_eq!(by(401, &[], auth), Some(DecidedBy::BodyField("error.type")));
    let quota = r#"{"error":{"message":"Your credit balance is too low"}}"#;
    assert_eq!(by(400, &[], quota), Some(DecidedBy::Message));
    assert_eq!(
        by(502, &[], "<html>Bad Gateway</html>"),
        Some(DecidedBy::Status)
    );
    let header = [("x-amzn-errortype", "ThrottlingException")];
    assert_eq!(
        by(400, &header, "{}"),
        Some(DecidedBy::Header(http::HeaderName::from_static(
            "x-amzn-errortype"
        )))
    );
    assert_eq!(classify(200, &[], "{}").decided_by(), None);
}

#[test]
fn a_wait_stated_only_in_the_message_is_the_last_resort_hint() {
    use std::time::Duration;
    let wait = |body: &str| classify(429, &[], body).body_wait();
    assert_eq!(
        wait(r#"{"error":{"message":"Rate limit reached. Please try again in 20s."}}"#),
        Some(Duration::from_secs(20))
    );
    assert_eq!(
        wait(
            r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded call rate limit. Please retry after 55 seconds."}}"#
        ),
        Some(Duration::from_secs(55))
    );
    assert_eq!(
        wait(r#"{"error":{"message":"Please try again in 6m0s"}}"#),
        Some(Duration::from_secs(360))
    );
    assert_eq!(
        wait(r#"{"error":{"message":"try again in 1.5 seconds"}}"#),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        wait(r#"{"error":{"message":"try again in a while"}}"#),
        None
    );
    assert_eq!(wait(r#"{"error":{"message":"try again in "}}"#), None);
    // The body's own field wins over the message.
    let body = r#"{"error":{"message":"retry after 5 seconds","retry_after":2}}"#;
    assert_eq!(wait(body), Some(Duration::from_secs(2)));
}

#[test]
fn business_envelopes_under_http_200() {
    // MiniMax's native API: base_resp.status_code, 0 on success.
    let ok = r#"{"id":"c-1","choices":[],"base_resp":{"status_code":0,"status_msg":"success"}}"#;
    assert_eq!(classify(200, &[], ok).kind(), None);
    let key = r#"{"id":"","choices":null,"base_resp":{"status_code":2049,"status_msg":"invalid api key"}}"#;
    assert_eq!(read(200, &[], key).0, Unauthenticated);
    let balance = r#"{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}"#;
    assert_eq!(
        read(200, &[], balance),
        (QuotaExhausted, RetryVerdict::Never)
    );
    // Baidu Qianfan's classic API: top-level error_code and error_msg.
    let daily = r#"{"error_code":17,"error_msg":"Open api daily request limit reached"}"#;
    assert_eq!(read(200, &[], daily), (QuotaExhausted, RetryVerdict::Never));
    let qps = r#"{"error_code":18,"error_msg":"Open api qps request limit reached"}"#;
    assert_eq!(read(200, &[], qps).0, RateLimited);
}

// ---- Classes found by growing the corpus to 234 answers ----------------------------------------

#[test]
fn tencent_cloud_api_3_errors_under_http_200() {
    let body = r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated."},"RequestId":"ed93f3cb-f35e"}}"#;
    let c = classify(200, &[], body);
    assert_eq!(c.kind(), Some(Unauthenticated));
    assert_eq!(
        c.message(),
        Some("The provided credentials could not be validated.")
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "ed93f3cb-f35e");
    // A dotted code falls back to its family; an exact entry wins over the family.
    let limited = r#"{"Response":{"Error":{"Code":"RequestLimitExceeded.UinLimitExceeded","Message":"m"},"RequestId":"r"}}"#;
    assert_eq!(
        read(200, &[], limited),
        (RateLimited, RetryVerdict::ServerWait)
    );
    let scope = r#"{"Response":{"Error":{"Code":"AuthFailure.UnauthorizedOperation","Message":"m"},"RequestId":"r"}}"#;
    assert_eq!(read(200, &[], scope).0, PermissionDenied);
    // A success answer is a success, with its request id.
    let ok = classify(200, &[], r#"{"Response":{"RequestId":"r-1","Data":{}}}"#);
    assert_eq!(ok.kind(), None);
    assert_eq!(ok.trace_id().unwrap().as_str(), "r-1");
}

#[test]
fn an_errors_object_is_read_as_an_error() {
    let body = r#"{"errors":{"message":"Request limit exceeded.","request_id":"599c88e7"}}"#;
    let c = classify(429, &[], body);
    assert_eq!(c.kind(), Some(RateLimited));
    assert_eq!(c.message(), Some("Request limit exceeded."));
    assert_eq!(c.trace_id().unwrap().as_str(), "599c88e7");
}

#[test]
fn a_quota_phrase_naming_a_per_minute_window_is_a_rate() {
    let trial =
        r#"{"message":"You are using a Trial key, which is limited to 5 API calls / minute."}"#;
    assert_eq!(
        read(429, &[], trial),
        (RateLimited, RetryVerdict::ServerWait)
    );
    let monthly =
        r#"{"message":"You are using a Trial key, which is limited to 1000 API calls / month."}"#;
    assert_eq!(
        read(429, &[], monthly),
        (QuotaExhausted, RetryVerdict::Never)
    );
    // A day's quota is spent until tomorrow.
    let daily = r#"{"message":"Too many tokens per day, please wait before trying again."}"#;
    assert_eq!(read(429, &[], daily), (QuotaExhausted, RetryVerdict::Never));
}

#[test]
fn model_studio_quota_words_under_429_are_its_per_minute_limit() {
    let body = r#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota, please check your plan and billing details. For details, see: https://help.aliyun.com/zh/model-studio/error-code#token-limit","type":"insufficient_quota"},"request_id":""}"#;
    assert_eq!(
        read(429, &[], body),
        (RateLimited, RetryVerdict::ServerWait)
    );
    // The same words from OpenAI are a used-up quota.
    let openai = r#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota"}}"#;
    assert_eq!(
        read(429, &[], openai),
        (QuotaExhausted, RetryVerdict::Never)
    );
}

#[test]
fn elevenlabs_detail_status_is_a_code() {
    let busy = r#"{"detail":{"status":"system_busy","message":"We are sorry, the system is experiencing heavy traffic, please try again."}}"#;
    assert_eq!(read(429, &[], busy), (Overloaded, RetryVerdict::ServerWait));
    let concurrent = r#"{"detail":{"status":"too_many_concurrent_requests","message":"m"}}"#;
    assert_eq!(read(429, &[], concurrent).0, ConcurrencyLimited);
}

#[test]
fn gateway_trace_headers_and_wait_headers() {
    let c = classify(
        400,
        &[("apigw-requestid", "I6K4Nj-ioAMEY6w=")],
        r#"{"error":"Invalid parameter 'promptText'"}"#,
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "I6K4Nj-ioAMEY6w=");
    let headers = [
        ("x-kong-request-id", "16d3d8047c19"),
        ("x-ai-ratelimit-retry-after", "29"),
    ];
    let c = classify(
        429,
        &headers,
        r#"{"message":"AI token rate limit exceeded for provider(s): openai"}"#,
    );
    assert_eq!(c.trace_id().unwrap().as_str(), "16d3d8047c19");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name, HeaderValue::from_static(value));
    }
    let hint =
        http_resilience::retry::WaitHint::from_response(&map, None, std::time::SystemTime::now())
            .unwrap();
    assert_eq!(hint.delay(), std::time::Duration::from_secs(29));
}

#[test]
fn more_phrases_and_codes_from_real_answers() {
    let cases: &[(u16, &str, ErrorKind)] = &[
        (
            400,
            r#"{"error":{"message":"Model Not Exist","type":"invalid_request_error","code":"invalid_request_error"}}"#,
            NotFound,
        ),
        (
            400,
            r#"{"error":{"message":"Content Exists Risk","type":"invalid_request_error","code":"invalid_request_error"}}"#,
            ContentPolicy,
        ),
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"This organization has been disabled."}}"#,
            PermissionDenied,
        ),
        (
            400,
            r#"{"error":"Model requires a Pro subscription; check out hf.co/pricing to learn more."}"#,
            PermissionDenied,
        ),
        (
            403,
            r#"{"detail": "User is locked. Reason: TOP_UP."}"#,
            QuotaExhausted,
        ),
        (
            429,
            r#"{"error":{"message":"Your account is not active, please check your billing details on our website.","type":"billing_not_active","code":"billing_not_active"}}"#,
            QuotaExhausted,
        ),
        (
            400,
            r#"{"error":{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing.","type":"Arrearage"}}"#,
            QuotaExhausted,
        ),
        (
            429,
            r#"{"error":{"code":"1308","message":"已达到 5 小时的使用上限。"}}"#,
            QuotaExhausted,
        ),
        (
            429,
            r#"{"error":{"code":"1305","message":"该模型当前访问量过大，请您稍后再试"}}"#,
            Overloaded,
        ),
    ];
    for (status, body, kind) in cases {
        assert_eq!(read(*status, &[], body).0, *kind, "{body}");
    }
}

#[test]
fn an_approximate_wait_in_the_message_is_read() {
    let c = classify(
        429,
        &[],
        r#"{"detail":"Request was throttled. Your rate limit resets in ~30s."}"#,
    );
    assert_eq!(c.body_wait(), Some(std::time::Duration::from_secs(30)));
}
