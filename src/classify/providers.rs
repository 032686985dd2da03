//! Provider knowledge as data: which code means which [`ErrorKind`], with the source of each table.
//!
//! Codes are matched exactly (case matters: seed 000's lowercase `forbidden` is a moderation
//! verdict, seed 002's `FORBIDDEN` a missing scope). A code that appears in several tables means
//! the same kind in each. Codes a provider shares with the HTTP status (OpenRouter's and Google's
//! numeric `error.code`) need no entry: they fall back to the status table in
//! [`ErrorKind::from_status`].

use super::ErrorKind::{self, *};

/// Text codes, from `error.code`, `error.type`, `error.status`, Google's `ErrorInfo.reason`,
/// Anthropic's `error.details.error_code`, Azure's `innererror.code`, a top-level `code`,
/// `error_type` or `name`, FastAPI's `detail[].type`, and the `x-amzn-errortype` /
/// `x-fal-error-type` headers.
pub(crate) const TEXT_CODES: &[(&str, ErrorKind)] = &[
    // Seed 000 (an AI gateway's error page; PlatformGateway exception classes).
    ("bad_request", InvalidRequest),
    ("no_token", Unauthenticated),
    ("invalid_token", Unauthenticated),
    ("token_expired", Unauthenticated),
    ("token_mismatched", Unauthenticated),
    ("disabled", PermissionDenied),
    ("used_up", QuotaExhausted),
    ("forbidden", ContentPolicy),
    ("no_api", NotFound),
    ("too_many_requests", RateLimited),
    ("api_error", ServerError),
    ("timeout", Timeout),
    // Seed 001 (OpenAI-style envelope; error types and task error codes).
    ("invalid_request_error", InvalidRequest),
    ("authentication_error", Unauthenticated),
    ("permission_error", PermissionDenied),
    ("not_found_error", NotFound),
    ("rate_limit_error", RateLimited),
    ("server_error", ServerError),
    ("model_unavailable", Overloaded),
    ("content_policy_violation", ContentPolicy),
    ("generation_failed", ServerError),
    ("invalid_image_url", InvalidRequest),
    ("file_too_large", PayloadTooLarge),
    ("unsupported_format", Unsupported),
    // Seed 002 (`{success, data, error}` envelope).
    ("invalid_request", InvalidRequest),
    ("INSUFFICIENT_CREDITS", QuotaExhausted),
    ("SPENDING_LIMIT_EXCEEDED", QuotaExhausted),
    ("CONCURRENT_GENERATION_LIMIT", ConcurrencyLimited),
    ("FORBIDDEN", PermissionDenied),
    ("INVALID_URL", InvalidRequest),
    ("INVALID_EVENTS", InvalidRequest),
    // Seed 004 (queue API gateway errors).
    ("UNAUTHORIZED", Unauthenticated),
    ("RATE_LIMIT_EXCEEDED", RateLimited),
    // OpenAI, platform.openai.com/docs/guides/error-codes; Groq, Together and DeepSeek answer in
    // the same envelope (console.groq.com/docs/errors, api-docs.deepseek.com/quick_start/error_codes).
    ("invalid_api_key", Unauthenticated),
    ("insufficient_quota", QuotaExhausted),
    ("billing_hard_limit_reached", QuotaExhausted),
    ("rate_limit_exceeded", RateLimited),
    ("model_not_found", NotFound),
    ("model_decommissioned", NotFound),
    ("context_length_exceeded", InvalidRequest),
    ("moderation_blocked", ContentPolicy),
    ("unsupported_country_region_territory", PermissionDenied),
    ("engine_overloaded", Overloaded),
    // Azure OpenAI, learn.microsoft.com/azure/ai-services/openai/concepts/content-filter
    // (`error.code` content_filter, `innererror.code` ResponsibleAIPolicyViolation).
    ("content_filter", ContentPolicy),
    ("ResponsibleAIPolicyViolation", ContentPolicy),
    ("DeploymentNotFound", NotFound),
    // Anthropic, docs.anthropic.com/en/api/errors (`error.type`; spend limits carry
    // `error.details.error_code`).
    ("billing_error", QuotaExhausted),
    ("request_too_large", PayloadTooLarge),
    ("overloaded_error", Overloaded),
    ("timeout_error", Timeout),
    ("enforced_spend_limit_reached", QuotaExhausted),
    // Google Gemini / Vertex AI, ai.google.dev/gemini-api/docs/troubleshooting and
    // cloud.google.com/apis/design/errors (google.rpc.Code names and ErrorInfo reasons).
    ("INVALID_ARGUMENT", InvalidRequest),
    ("FAILED_PRECONDITION", InvalidRequest),
    ("OUT_OF_RANGE", InvalidRequest),
    ("UNAUTHENTICATED", Unauthenticated),
    ("PERMISSION_DENIED", PermissionDenied),
    ("NOT_FOUND", NotFound),
    ("ALREADY_EXISTS", Conflict),
    ("ABORTED", Conflict),
    ("RESOURCE_EXHAUSTED", RateLimited),
    ("UNIMPLEMENTED", Unsupported),
    ("INTERNAL", ServerError),
    ("DATA_LOSS", ServerError),
    ("UNAVAILABLE", Overloaded),
    ("DEADLINE_EXCEEDED", Timeout),
    // gRPC CANCELLED from the server (HTTP 499): the call was dropped, not refused.
    ("CANCELLED", ServerError),
    ("UNKNOWN", ServerError),
    // A request with the same idempotency key still in flight (Stripe-style APIs, OpenAI).
    ("idempotency_key_in_use", Conflict),
    // Moonshot (Kimi): 403 exceeded_current_quota_error.
    ("exceeded_current_quota_error", QuotaExhausted),
    // new-api and one-api relays.
    ("insufficient_user_quota", QuotaExhausted),
    // Perplexity 400 invalid_model; Together 400 model_not_available (not served serverless)
    // and dedicated_endpoint_not_running.
    ("invalid_model", NotFound),
    ("model_not_available", NotFound),
    ("dedicated_endpoint_not_running", NotFound),
    // Alibaba DashScope's moderation block.
    ("DataInspectionFailed", ContentPolicy),
    ("InternalError.Algo.DataInspectionFailed", ContentPolicy),
    ("data_inspection_failed", ContentPolicy),
    ("API_KEY_INVALID", Unauthenticated),
    ("API_KEY_SERVICE_BLOCKED", PermissionDenied),
    ("SERVICE_DISABLED", PermissionDenied),
    ("BILLING_DISABLED", QuotaExhausted),
    // fal, fal.ai/docs/documentation/model-apis/errors (`detail[].type`) and
    // fal.ai/docs/documentation/model-apis/request-errors (`error_type`, `X-Fal-Error-Type`).
    ("image_too_large", PayloadTooLarge),
    ("image_too_small", InvalidRequest),
    ("unsupported_image_format", Unsupported),
    ("file_download_error", InvalidRequest),
    ("generation_timeout", Timeout),
    ("downstream_service_error", ServerError),
    ("downstream_service_unavailable", Overloaded),
    ("internal_server_error", ServerError),
    ("request_timeout", Timeout),
    ("startup_timeout", Timeout),
    ("runner_scheduling_failure", Overloaded),
    ("runner_connection_timeout", Overloaded),
    ("runner_disconnected", ServerError),
    ("runner_connection_refused", ServerError),
    // Stability AI, platform.stability.ai/docs/api-reference (`name` of `{id, name, errors}`).
    ("unauthorized", Unauthenticated),
    ("content_moderation", ContentPolicy),
    ("payment_required", QuotaExhausted),
    ("not_found", NotFound),
    ("payload_too_large", PayloadTooLarge),
    ("internal_error", ServerError),
    // AWS Bedrock runtime, docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html
    // and docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html
    // (the exception name, in the `x-amzn-errortype` header).
    ("ThrottlingException", RateLimited),
    // A service quota, not a rate: raising it takes a request to AWS.
    ("ServiceQuotaExceededException", QuotaExhausted),
    ("ServiceUnavailableException", Overloaded),
    ("ModelNotReadyException", Overloaded),
    ("ModelTimeoutException", Timeout),
    ("ValidationException", InvalidRequest),
    ("AccessDeniedException", PermissionDenied),
    ("ResourceNotFoundException", NotFound),
    ("ConflictException", Conflict),
    ("InternalServerException", ServerError),
    ("InternalFailure", ServerError),
    ("ModelErrorException", ServerError),
    ("ModelStreamErrorException", ServerError),
    ("UnrecognizedClientException", Unauthenticated),
    ("ExpiredTokenException", Unauthenticated),
    ("IncompleteSignature", Unauthenticated),
    // OpenAI 429 billing_not_active, "Your account is not active, please check your billing
    // details": no wait brings the account back.
    ("billing_not_active", QuotaExhausted),
    // Alibaba Model Studio (DashScope), help.aliyun.com/en/model-studio/error-code: Arrearage is
    // an overdue account; the Throttling family (RateQuota, AllocationQuota, BurstRate) are
    // per-minute limits; InvalidApiKey a bad key.
    ("Arrearage", QuotaExhausted),
    ("Throttling", RateLimited),
    ("InvalidApiKey", Unauthenticated),
    // ElevenLabs (`detail.status`): system_busy is load on their side, not the caller's rate;
    // detected_unusual_activity disables a free tier flagged by abuse detection.
    ("system_busy", Overloaded),
    ("too_many_concurrent_requests", ConcurrencyLimited),
    ("detected_unusual_activity", PermissionDenied),
    // Tencent Cloud API 3.0 common error codes, tencentcloud.com/document/product/1209/56023
    // (`Response.Error.Code`, under HTTP 200; a dotted code falls back to its family).
    ("AuthFailure", Unauthenticated),
    ("AuthFailure.UnauthorizedOperation", PermissionDenied),
    ("UnauthorizedOperation", PermissionDenied),
    ("IpInBlacklist", PermissionDenied),
    ("IpNotInWhitelist", PermissionDenied),
    ("RequestLimitExceeded", RateLimited),
    ("LimitExceeded", QuotaExhausted),
    ("InternalError", ServerError),
    ("ServiceUnavailable", Overloaded),
    ("InvalidParameter", InvalidRequest),
    ("InvalidParameterValue", InvalidRequest),
    ("MissingParameter", InvalidRequest),
    ("UnknownParameter", InvalidRequest),
    ("InvalidAction", NotFound),
    ("ActionOffline", NotFound),
    ("ResourceNotFound", NotFound),
    ("RequestSizeLimitExceeded", PayloadTooLarge),
    ("UnsupportedOperation", Unsupported),
    ("UnsupportedProtocol", Unsupported),
    ("UnsupportedRegion", Unsupported),
];

/// Numeric business codes. Seed 003 (`{"code": 130005, "msg": …}`, `0` meaning success).
///
/// A six-digit code missing here whose first three digits form an HTTP status (`402xxx`,
/// `429xxx`, `5xxxxx`) is read as that status, as seed 003 documents.
pub(crate) const NUMERIC_CODES: &[(i64, ErrorKind)] = &[
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
    // Baidu Qianfan's classic API, `error_code` under HTTP 200: 17 daily request limit, 18 QPS
    // limit, 19 total request limit, 110/111 access token invalid/expired.
    (17, QuotaExhausted),
    (18, RateLimited),
    (19, QuotaExhausted),
    (110, Unauthenticated),
    (111, Unauthenticated),
    // MiniMax's native API, `base_resp.status_code` under HTTP 200: 1002 rate limit, 1004
    // authentication failed, 1008 insufficient balance, 1026/1027 sensitive input/output, 2013
    // invalid parameters, 2049 invalid API key.
    (1002, RateLimited),
    (1004, Unauthenticated),
    (1008, QuotaExhausted),
    (1026, ContentPolicy),
    (1027, ContentPolicy),
    // Zhipu (GLM), docs.bigmodel.cn/cn/api/api-code, `error.code` as text: account inactive,
    // locked or in violation; 1113 in arrears; 1211 unknown model; 1220 no access to the API;
    // 1261 prompt too long; 1301 unsafe content; 1303 rate; 1305 a model with too much traffic (该模型当前访问量过大); 1304 the day's call
    // quota; 1308 and 1310 a usage cap that resets at a stated time hours
    // or days away; 1309 a plan expired; 1311 a model outside the plan; 1312 a model under
    // heavy load; 1313 throttled under the fair-use policy. Left to the message and status:
    // 1302, which the docs call concurrency and answers word as either ("High concurrency
    // usage", 您的账户已达到速率限制 "your account reached its rate limit"), and 1000–1004,
    // authentication, which come with a 401 (MiniMax's 1002 is a rate limit).
    (1110, PermissionDenied),
    (1112, PermissionDenied),
    (1113, QuotaExhausted),
    (1121, PermissionDenied),
    (1211, NotFound),
    (1220, PermissionDenied),
    (1261, InvalidRequest),
    (1301, ContentPolicy),
    (1303, RateLimited),
    (1304, QuotaExhausted),
    (1305, Overloaded),
    (1308, QuotaExhausted),
    (1309, QuotaExhausted),
    (1310, QuotaExhausted),
    (1311, PermissionDenied),
    (1312, Overloaded),
    (1313, RateLimited),
    (2013, InvalidRequest),
    (2049, Unauthenticated),
];

/// Phrases in a message, for bodies that carry no code at all (`{"detail": "…"}`). Matched
/// case-insensitively, only when no code matched.
/// The statuses a phrase is read under (200: a business failure in a success envelope).
const CONCURRENCY: &[u16] = &[200, 400, 402, 403, 429, 503];
const BILLING: &[u16] = &[200, 400, 402, 403, 429];
/// A balance can run out under a 412 (Fireworks) or a 500 (MiniMax) too.
const BALANCE: &[u16] = &[200, 400, 402, 403, 412, 429, 500];
const SPEND: &[u16] = &[200, 400, 402, 403, 412, 429];
const PROXY: &[u16] = &[502, 503];
const KEY: &[u16] = &[400, 401, 403];
const BLOCKED: &[u16] = &[200, 400, 403, 422];
const BUSY: &[u16] = &[200, 429, 500, 502, 503, 529];
const REGION: &[u16] = &[400, 403];
const UNKNOWN_MODEL: &[u16] = &[200, 400, 404];

pub(crate) const MESSAGE_PHRASES: &[(&str, ErrorKind, &[u16])] = &[
    // Lower case (matched ignoring ASCII case), in the order tried; each under the statuses it
    // is read under (200: a business failure in a success envelope). A phrase never outranks
    // a specific code; it outranks the status and a generic code.
    //
    // Concurrency before quota: a 402 "too many in-flight requests" is a wait, not a bill.
    // OpenRouter, fal and Replicate: "too many concurrent requests", "in-flight".
    ("concurrency", ConcurrencyLimited, CONCURRENCY),
    ("concurrent request", ConcurrencyLimited, CONCURRENCY),
    ("too many concurrent", ConcurrencyLimited, CONCURRENCY),
    ("in-flight", ConcurrencyLimited, CONCURRENCY),
    ("in flight", ConcurrencyLimited, CONCURRENCY),
    // Zhipu 1302, Baidu, DashScope: 并发 ("concurrency").
    ("并发", ConcurrencyLimited, &[200, 400, 403, 429, 500, 503]),
    // Anthropic 400 "Your credit balance is too low"; MiniMax 500 "insufficient balance
    // (1008)"; Fireworks 412 "monthly spending limit"; DeepSeek 402 "Insufficient Balance";
    // OpenAI "You exceeded your current quota"; Cohere trial keys "limited to 1000 API calls
    // a month"; Zhipu 1113 余额不足 ("balance too low"), 请充值 ("please top up"),
    // 欠费 ("in arrears").
    ("credit balance", QuotaExhausted, BALANCE),
    ("insufficient balance", QuotaExhausted, BALANCE),
    ("insufficient_balance", QuotaExhausted, BALANCE),
    ("balance is insufficient", QuotaExhausted, BILLING),
    ("balance exhausted", QuotaExhausted, BILLING),
    ("insufficient credits", QuotaExhausted, BILLING),
    ("exceeded your current quota", QuotaExhausted, BILLING),
    ("quota exceeded", QuotaExhausted, &[200, 400, 402, 403]),
    ("trial key", QuotaExhausted, BILLING),
    ("spend limit", QuotaExhausted, SPEND),
    ("spending limit", QuotaExhausted, SPEND),
    ("usage limit", QuotaExhausted, BILLING),
    ("余额不足", QuotaExhausted, BALANCE),
    ("请充值", QuotaExhausted, BILLING),
    ("欠费", QuotaExhausted, BILLING),
    // fal 403 "User is locked. Reason: Exhausted balance. Top up your balance"; LiteLLM 400
    // "Budget has been exceeded!"; new-api relays 403 "user quota is not enough".
    // Runway 429 "Your daily task limit has been reached": it lifts tomorrow, not in seconds.
    ("daily task limit", QuotaExhausted, BILLING),
    ("daily limit", QuotaExhausted, BILLING),
    // Bedrock 429 "Too many tokens per day, please wait before trying again": the day's quota
    // is spent; it comes back tomorrow, not after a backoff.
    ("tokens per day", QuotaExhausted, BILLING),
    ("requests per day", QuotaExhausted, BILLING),
    // AWS 403 "The security token included in the request is invalid": a bad credential.
    (
        "security token included in the request is invalid",
        Unauthenticated,
        KEY,
    ),
    // ElevenLabs answers a used-up character or credit quota with a 401 "This request
    // exceeds your quota".
    (
        "exceeds your quota",
        QuotaExhausted,
        &[200, 400, 401, 402, 403, 429],
    ),
    ("exhausted balance", QuotaExhausted, BILLING),
    ("top up your balance", QuotaExhausted, BILLING),
    // fal 403 "User is locked. Reason: TOP_UP."
    ("reason: top_up", QuotaExhausted, BILLING),
    ("budget has been exceeded", QuotaExhausted, BILLING),
    ("quota is not enough", QuotaExhausted, BILLING),
    // Bedrock 503 "Too many connections, please wait before trying again."
    ("too many connections", ConcurrencyLimited, &[429, 503]),
    // Proxies in front of a model with nothing behind them (Envoy, Google Cloud Load
    // Balancing, new-api relays' 无可用渠道 "no available channel"): a server error.
    // Envoy's circuit breaker: "reset reason: overflow" is load shed, not a fault.
    ("reset reason: overflow", Overloaded, &[503]),
    ("no healthy upstream", ServerError, PROXY),
    ("upstream connect error", ServerError, PROXY),
    ("no available channel", ServerError, PROXY),
    ("无可用渠道", ServerError, PROXY),
    // Gemini 403 PERMISSION_DENIED "Method doesn't allow unregistered callers": no key.
    ("unregistered callers", Unauthenticated, &[401, 403]),
    // Anthropic 400 "This organization has been disabled."; accounts and keys switched off.
    ("organization has been disabled", PermissionDenied, KEY),
    ("account has been disabled", PermissionDenied, KEY),
    // Hugging Face 400 "Model requires a Pro subscription": the key works, the plan does not
    // reach the model.
    ("requires a pro subscription", PermissionDenied, KEY),
    // Hugging Face 400 "the token seems invalid"; keys rejected under 400 or 403.
    ("token seems invalid", Unauthenticated, KEY),
    ("invalid api key", Unauthenticated, KEY),
    ("incorrect api key", Unauthenticated, KEY),
    ("api key not valid", Unauthenticated, KEY),
    // An unknown model under a 400 (SiliconFlow 20012 "Model does not exist", Zhipu 1211
    // 模型不存在 "model does not exist").
    ("model does not exist", NotFound, UNKNOWN_MODEL),
    // DeepSeek 400 "Model Not Exist".
    ("model not exist", NotFound, UNKNOWN_MODEL),
    // Replicate 422 "The specified version does not exist".
    ("does not exist", NotFound, &[400, 404, 422]),
    ("模型不存在", NotFound, UNKNOWN_MODEL),
    // Gemini and OpenAI: "User location is not supported", "Country, region, or territory
    // not supported".
    ("location is not supported", PermissionDenied, REGION),
    ("region is not supported", PermissionDenied, REGION),
    ("territory not supported", PermissionDenied, REGION),
    // Guardrails and prompt-injection blocks (Bedrock guardrails, Azure content management
    // policy); 敏感 ("sensitive"), 违规 ("violation") from Chinese gateways.
    ("guardrail", ContentPolicy, BLOCKED),
    // DeepSeek 400 "Content Exists Risk": its content-safety refusal.
    ("content exists risk", ContentPolicy, BLOCKED),
    ("prompt injection", ContentPolicy, BLOCKED),
    ("content management policy", ContentPolicy, BLOCKED),
    ("敏感", ContentPolicy, BLOCKED),
    ("违规", ContentPolicy, BLOCKED),
    // Overloads under a 429 or a 5xx (DeepSeek 503 "Server is busy", Anthropic "Overloaded",
    // OpenAI "engine is currently overloaded"); 繁忙 ("busy"). Hugging Face Inference: "Model
    // … is currently loading", "Model too busy".
    ("overloaded", Overloaded, BUSY),
    ("server is busy", Overloaded, BUSY),
    ("server busy", Overloaded, BUSY),
    ("at capacity", Overloaded, BUSY),
    ("over capacity", Overloaded, BUSY),
    ("繁忙", Overloaded, BUSY),
    ("currently loading", Overloaded, BUSY),
    ("too busy", Overloaded, BUSY),
    // A throttle under a status that does not say so (400, 403): "rate limit", 限流
    // ("throttled"), 请求过于频繁 / 频率 ("too frequent" / "rate").
    ("rate limit", RateLimited, &[200, 400, 403]),
    ("too many requests", RateLimited, &[200, 400, 403]),
    ("限流", RateLimited, &[200, 400, 403, 429]),
    ("频繁", RateLimited, &[200, 400, 403, 429]),
    // Seed 004: "webhook not supported", "SSE streaming not supported".
    ("not supported", Unsupported, &[]),
];

/// Documentation paths that, linked from a 429's quota message, mean a per-minute limit.
///
/// Alibaba Model Studio (DashScope) answers its tokens-per-minute limit with OpenAI's
/// `insufficient_quota` and "You exceeded your current quota", linking its error-code page;
/// help.aliyun.com/en/model-studio/rate-limit: "Allocated quota exceeded or You exceeded your
/// current quota: TPM limit exceeded", recovered within a minute.
pub(crate) const QUOTA_MEANS_RATE_DOCS: &[&str] = &["/model-studio/"];

/// Codes that say only "a failure of this broad class": a status, a more specific code, or a
/// phrase outranks them.
pub(crate) const GENERIC_CODES: &[&str] = &[
    "invalid_request_error",
    "invalid_request",
    "bad_request",
    "server_error",
    "api_error",
    "internal_error",
    "internal_server_error",
    "error",
    "unknown_error",
    // Google's canonical statuses for "the request is wrong" say no more than a 400 does.
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    // Google's RESOURCE_EXHAUSTED covers a per-minute rate and a used-up daily or billing
    // quota alike: the status and the message ("You exceeded your current quota, please check
    // your plan and billing details") tell them apart.
    "RESOURCE_EXHAUSTED",
    // A 403 says as much; Gemini's "Method doesn't allow unregistered callers" is a missing key.
    "PERMISSION_DENIED",
];

/// Response headers that carry the provider's error code.
pub(crate) const CODE_HEADERS: &[&str] = &["x-amzn-errortype", "x-fal-error-type"];

/// Response headers that carry a trace id, best first.
///
/// OpenAI, Groq, Mistral: `x-request-id`; Anthropic: `request-id`; AWS: `x-amzn-requestid`,
/// `x-amz-request-id`; Azure: `apim-request-id`, `x-ms-request-id`; fal: `x-fal-request-id`;
/// Google Cloud: `x-cloud-trace-context`; AWS API Gateway: `apigw-requestid`; Kong:
/// `x-kong-request-id`; Cloudflare-fronted gateways: `cf-ray`.
pub(crate) const TRACE_ID_HEADERS: &[&str] = &[
    "x-request-id",
    "request-id",
    "x-trace-id",
    // DeepSeek.
    "x-ds-trace-id",
    "trace-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "apim-request-id",
    "x-ms-request-id",
    "x-fal-request-id",
    "x-correlation-id",
    // AWS API Gateway HTTP APIs (Runway's API).
    "apigw-requestid",
    // Kong Gateway and Kong AI Gateway.
    "x-kong-request-id",
    "x-cloud-trace-context",
    "cf-ray",
];
