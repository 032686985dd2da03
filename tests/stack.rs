//! The standard stack in paused time: idempotency keys, trace ids, `ApiError` and its report.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::idempotency::KeyFromExtension;
use http_resilience::ids::{ClientRequestId, IdempotencyKey};
use http_resilience::retry::{Backoff, Jitter, StopReason};
use http_resilience::{
    ApiError, Attempts, ErrorKind, RequestIds, ResilienceLayer, RetryLayer, ServiceBuilderExt,
};
use tower::{service_fn, ServiceBuilder, ServiceExt};

type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

fn key_of<B>(response: &Response<B>) -> Option<IdempotencyKey> {
    let ids = response.extensions().get::<RequestIds>()?;
    ids.idempotency_key().cloned()
}

fn client_id_of<B>(response: &Response<B>) -> Option<ClientRequestId> {
    let ids = response.extensions().get::<RequestIds>()?;
    ids.client_request_id().cloned()
}

/// An upstream answering from a script, recording the headers of each request.
#[derive(Clone, Default)]
struct Upstream {
    script: Arc<Mutex<VecDeque<Result<Answer, std::io::ErrorKind>>>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Upstream {
    fn new(script: Vec<Result<Answer, std::io::ErrorKind>>) -> Self {
        Upstream {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        }
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = std::io::Error,
        Future = impl Send,
    > + Clone {
        let upstream = self.clone();
        service_fn(move |req: Request<Full<Bytes>>| {
            let upstream = upstream.clone();
            async move {
                upstream.seen.lock().unwrap().push(req.headers().clone());
                let next = upstream.script.lock().unwrap().pop_front();
                match next.unwrap_or(Ok((200, vec![], ""))) {
                    Ok((status, headers, body)) => {
                        let mut response = Response::builder().status(status);
                        for (name, value) in headers {
                            response = response.header(name, value);
                        }
                        Ok(response
                            .body(Full::new(Bytes::from_static(body.as_bytes())))
                            .unwrap())
                    }
                    Err(kind) => Err(std::io::Error::new(kind, "connection refused")),
                }
            }
        })
    }

    fn seen(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

fn quick() -> ResilienceLayer {
    ResilienceLayer::new().backoff(
        Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(Jitter::None),
    )
}

fn post() -> Request<Full<Bytes>> {
    Request::post("https://api.example.com/v1/videos")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"prompt":"a cat","duration":5}"#,
        )))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn post_gets_one_key_reused_by_every_attempt() {
    let upstream = Upstream::new(vec![
        Ok((503, vec![], "")),
        Ok((502, vec![], "")),
        Ok((200, vec![], "")),
    ]);
    let client = ServiceBuilder::new()
        .resilience(quick())
        .service(upstream.service());
    let response = client.oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3, "retried because the stack added a key");
    let key = seen[0]["idempotency-key"].clone();
    assert!(seen.iter().all(|h| h["idempotency-key"] == key));
    let id = seen[0]["x-request-id"].clone();
    assert!(
        seen.iter().all(|h| h["x-request-id"] == id),
        "one client id per logical request"
    );
    let visible = key_of(&response).unwrap();
    assert_eq!(visible.value(), &key);
    assert!(visible.was_generated());
    let client_id = client_id_of(&response).unwrap();
    assert_eq!(client_id.value(), &id);
    assert!(client_id.was_generated());
}

#[tokio::test(start_paused = true)]
async fn callers_key_and_request_id_are_kept() {
    let upstream = Upstream::new(vec![]);
    let client = ServiceBuilder::new()
        .resilience(quick())
        .service(upstream.service());
    let mut request = post();
    request
        .headers_mut()
        .insert("idempotency-key", "mine-1".parse().unwrap());
    request
        .headers_mut()
        .insert("x-request-id", "req-mine".parse().unwrap());
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(upstream.seen()[0]["idempotency-key"], "mine-1");
    assert_eq!(upstream.seen()[0]["x-request-id"], "req-mine");
    let key = key_of(&response).unwrap();
    assert!(!key.was_generated());
    let client_id = client_id_of(&response).unwrap();
    assert_eq!(client_id.as_str(), "req-mine");
    assert!(!client_id.was_generated());
}

#[tokio::test]
async fn standalone_request_id_layer_records_the_client_id_on_the_response() {
    let upstream = Upstream::new(vec![]);
    let client = || {
        ServiceBuilder::new()
            .request_ids()
            .service(upstream.service())
    };
    let response = client().oneshot(post()).await.unwrap();
    let made = client_id_of(&response).unwrap();
    assert!(made.was_generated());
    assert_eq!(upstream.seen()[0]["x-request-id"], made.value());

    let mut request = post();
    request
        .headers_mut()
        .insert("x-request-id", "req-mine".parse().unwrap());
    let response = client().oneshot(request).await.unwrap();
    let kept = client_id_of(&response).unwrap();
    assert!(!kept.was_generated());
    assert_eq!(kept.as_str(), "req-mine");
}

#[tokio::test(start_paused = true)]
async fn get_gets_no_key_and_patch_does() {
    let upstream = Upstream::new(vec![]);
    let client = ServiceBuilder::new()
        .resilience(quick())
        .service(upstream.service());
    let get = Request::get("https://api.example.com/v1/models")
        .body(Full::default())
        .unwrap();
    let response = client.clone().oneshot(get).await.unwrap();
    assert!(key_of(&response).is_none());
    let patch = Request::patch("https://api.example.com/v1/jobs/1")
        .body(Full::default())
        .unwrap();
    client.oneshot(patch).await.unwrap();
    let seen = upstream.seen();
    assert!(!seen[0].contains_key("idempotency-key"));
    assert!(seen[1].contains_key("idempotency-key"));
}

#[tokio::test(start_paused = true)]
async fn key_in_use_409_is_retried_and_replay_is_recorded() {
    let upstream = Upstream::new(vec![
        Ok((
            409,
            vec![],
            r#"{"error":{"code":"idempotency_key_in_use","message":"A request with this key is in progress"}}"#,
        )),
        Ok((
            200,
            vec![("idempotent-replayed", "true")],
            r#"{"task_id":"t-1"}"#,
        )),
    ]);
    let client = ServiceBuilder::new()
        .resilience(quick())
        .service(upstream.service());
    let response = client.oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.records()[0].kind(), Some(ErrorKind::Conflict));
    assert_eq!(attempts.records()[1].delay(), Duration::from_millis(100));
    assert!(key_of(&response).unwrap().was_replayed());
}

#[tokio::test(start_paused = true)]
async fn keys_can_come_from_the_callers_job_id() {
    #[derive(Clone)]
    struct JobId(u32);
    let upstream = Upstream::new(vec![]);
    let client = ServiceBuilder::new()
        .resilience(
            quick().idempotency_key_maker(KeyFromExtension::new(|job: &JobId| {
                format!("job-{}", job.0)
            })),
        )
        .service(upstream.service());
    let mut request = post();
    request.extensions_mut().insert(JobId(77));
    client.oneshot(request).await.unwrap();
    assert_eq!(upstream.seen()[0]["idempotency-key"], "job-77");
}

#[tokio::test(start_paused = true)]
async fn header_names_and_methods_are_configurable() {
    let upstream = Upstream::new(vec![Ok((503, vec![], "")), Ok((200, vec![], ""))]);
    let client = ServiceBuilder::new()
        .resilience(
            quick()
                .idempotency_header("x-idem".parse().unwrap())
                .idempotency_methods([Method::POST, Method::PUT])
                .request_id_header("x-client-trace".parse().unwrap()),
        )
        .service(upstream.service());
    client.oneshot(post()).await.unwrap();
    let seen = upstream.seen();
    assert_eq!(
        seen.len(),
        2,
        "the renamed key header still makes the POST retryable"
    );
    assert!(seen[0].contains_key("x-idem") && !seen[0].contains_key("idempotency-key"));
    assert!(seen[0].contains_key("x-client-trace") && !seen[0].contains_key("x-request-id"));
}

#[tokio::test(start_paused = true)]
async fn without_keys_a_post_is_sent_once() {
    let upstream = Upstream::new(vec![Ok((503, vec![], "")), Ok((200, vec![], ""))]);
    let client = ServiceBuilder::new()
        .resilience(quick().without_idempotency_keys())
        .service(upstream.service());
    let response = client.oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.extensions().get::<Attempts>().unwrap().stopped(),
        StopReason::NotIdempotent
    );
    assert_eq!(upstream.seen().len(), 1);
}

fn secret_request() -> Request<Full<Bytes>> {
    Request::post("https://api.example.com/v1/images?api_key=sk-query-secret&size=1024")
        .header("authorization", "Bearer sk-header-secret")
        .header("x-api-key", "sk-xapikey-secret")
        .header("cookie", "session=cookie-secret")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"prompt":"a red fox","api_key":"sk-body-secret","max_tokens":100}"#,
        )))
        .unwrap()
}

const SECRETS: [&str; 5] = [
    "sk-query-secret",
    "sk-header-secret",
    "sk-xapikey-secret",
    "cookie-secret",
    "sk-body-secret",
];

#[tokio::test(start_paused = true)]
async fn api_error_explains_itself_and_leaks_no_secret() {
    let upstream = Upstream::new(vec![
        Ok((
            429,
            vec![("retry-after", "1"), ("x-request-id", "srv-1")],
            r#"{"error":{"code":"too_many_requests","message":"Rate limit exceeded"},"trace_id":"tr-1"}"#,
        )),
        Ok((
            403,
            vec![("x-request-id", "srv-2")],
            r#"{"error":{"code":"used_up","message":"Instance balance exhausted"},"trace_id":"tr-2"}"#,
        )),
    ]);
    let client = ServiceBuilder::new()
        .resilience(quick().failures_as_errors())
        .service(upstream.service());
    let error: ApiError = client.oneshot(secret_request()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::QuotaExhausted);
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(error.code().unwrap().to_string(), "used_up");
    assert_eq!(error.message(), Some("Instance balance exhausted"));
    assert_eq!(error.trace_id().unwrap().as_str(), "tr-2");
    let ids: Vec<_> = error
        .trace_ids()
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["tr-1", "tr-2"]);
    assert!(error.client_request_id().is_some());
    assert!(error.idempotency_key().is_some());
    assert_eq!(error.attempts().unwrap().count(), 2);
    assert_eq!(error.elapsed(), Duration::from_secs(1));
    assert_eq!(
        error.to_string(),
        "403 quota_exhausted (used_up): Instance balance exhausted [trace id tr-2; 2 attempts in 1.0s, stopped: verdict_never]"
    );

    let report = error.report().to_string();
    for expected in [
        "trace id: tr-2",
        "trace ids of every attempt: tr-1, tr-2",
        "request: POST https://api.example.com/v1/images?api_key=[masked]&size=1024",
        "authorization: Bearer [masked]",
        "x-api-key: [masked]",
        "cookie: [masked]",
        "content-type: application/json",
        "\"prompt\":\"a red fox\"",
        "\"max_tokens\":100",
        "response status: 403",
        "Instance balance exhausted",
        "#1: status 429, rate_limited",
        "#2: status 403, quota_exhausted, waited 1s",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in\n{report}"
        );
    }
    let debug = format!("{error:?}");
    let display = error.to_string();
    // The report's Debug shows its (masked) text.
    let report_debug = format!("{:?}", error.report());
    assert!(report_debug.contains("authorization: Bearer [masked]"));
    for secret in SECRETS {
        for (what, text) in [
            ("report", &report),
            ("Debug", &debug),
            ("Display", &display),
            ("the report's Debug", &report_debug),
        ] {
            assert!(!text.contains(secret), "{what} leaks {secret}:\n{text}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn transport_error_is_kept_as_the_source() {
    let upstream = Upstream::new(vec![
        Err(std::io::ErrorKind::ConnectionRefused),
        Err(std::io::ErrorKind::ConnectionRefused),
        Err(std::io::ErrorKind::ConnectionRefused),
    ]);
    let client = ServiceBuilder::new()
        .resilience(quick().failures_as_errors())
        .service(upstream.service());
    let error = client.oneshot(secret_request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.status(), None);
    let source = std::error::Error::source(&error).unwrap();
    let io = source
        .downcast_ref::<std::io::Error>()
        .expect("the client's own error type");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(error.attempts().unwrap().count(), 3);
    let report = error.report().to_string();
    assert!(report.contains("response status: (no response)"));
    assert!(report.contains("client request id: "));
    for secret in SECRETS {
        assert!(!report.contains(secret) && !format!("{error:?}").contains(secret));
    }
}

#[tokio::test(start_paused = true)]
async fn success_passes_through_the_error_layer_untouched() {
    let upstream = Upstream::new(vec![Ok((200, vec![], r#"{"task_id":"t-9"}"#))]);
    let client = ServiceBuilder::new()
        .resilience(quick().failures_as_errors())
        .service(upstream.service());
    let response = client.oneshot(post()).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"task_id":"t-9"}"#);
}

#[tokio::test(start_paused = true)]
async fn wait_too_long_error_exposes_the_hint() {
    let upstream = Upstream::new(vec![Ok((429, vec![("retry-after", "3600")], ""))]);
    let client = ServiceBuilder::new()
        .resilience(quick().failures_as_errors())
        .service(upstream.service());
    let error = client.oneshot(post()).await.unwrap_err();
    assert_eq!(
        error.wait_hint().unwrap().delay(),
        Duration::from_secs(3600)
    );
    assert!(
        error
            .to_string()
            .contains("stopped: wait_too_long, server asks to wait 3600s"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn service_builder_methods_compose_the_same_pipeline() {
    let json = || vec![("content-type", "application/json")];
    // Each check fails if its layer is out of place: a business failure under HTTP 200 is
    // retried only when classification runs inside the retry; one key and one client id on
    // every attempt only when those layers run outside it; an ApiError that counts the attempts
    // and carries the ids only between them.
    let upstream = Upstream::new(vec![
        Ok((
            200,
            json(),
            r#"{"code":130005,"msg":"Request too frequent"}"#,
        )),
        Ok((200, json(), r#"{"task_id":"t-1"}"#)),
        Ok((
            400,
            json(),
            r#"{"error":{"code":"bad_request","message":"no prompt"}}"#,
        )),
    ]);
    let client = ServiceBuilder::new()
        .request_ids()
        .idempotency_keys()
        .api_errors()
        .retry_failures(RetryLayer::new().backoff(Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(1),
        )))
        .classify_responses()
        .service(upstream.service());
    let response = client.clone().oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "the business failure under 200 was retried");
    assert_eq!(seen[0]["idempotency-key"], seen[1]["idempotency-key"]);
    assert_eq!(seen[0]["x-request-id"], seen[1]["x-request-id"]);
    assert_eq!(response.extensions().get::<Attempts>().unwrap().count(), 2);
    assert_eq!(
        key_of(&response).unwrap().value(),
        &seen[0]["idempotency-key"]
    );

    let error = client.oneshot(post()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(error.attempts().unwrap().count(), 1);
    let seen = upstream.seen();
    assert_eq!(
        error.idempotency_key(),
        seen[2]["idempotency-key"].to_str().ok()
    );
    assert_eq!(
        error.client_request_id(),
        seen[2]["x-request-id"].to_str().ok()
    );
}

/// A custom key header configured in any order is the one sent and the one the retry and the
/// error read: a header name lives in one place.
#[tokio::test(start_paused = true)]
async fn a_custom_key_header_set_in_any_order_is_sent_and_read() {
    #[derive(Clone)]
    struct JobId(u32);
    let upstream = Upstream::new(vec![Ok((503, vec![], "")), Ok((200, vec![], ""))]);
    let client = ServiceBuilder::new()
        .resilience(
            quick()
                .without_idempotency_keys()
                .idempotency_header("x-idem".parse().unwrap())
                .idempotency_key_maker(KeyFromExtension::new(|job: &JobId| {
                    format!("job-{}", job.0)
                })),
        )
        .service(upstream.service());
    let mut request = post();
    request.extensions_mut().insert(JobId(7));
    let response = client.oneshot(request).await.unwrap();
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "the keyed POST was retried");
    assert!(seen.iter().all(|h| h["x-idem"] == "job-7"));
    assert!(!seen[0].contains_key("idempotency-key"));
    assert_eq!(key_of(&response).unwrap().as_str(), "job-7");
}

#[tokio::test(start_paused = true)]
async fn an_api_error_knows_the_key_sent_in_a_custom_header() {
    let upstream = Upstream::new(vec![Ok((
        400,
        vec![("content-type", "application/json")],
        r#"{"error":{"code":"bad_request","message":"no prompt"}}"#,
    ))]);
    let client = ServiceBuilder::new()
        .resilience(
            quick()
                .idempotency_header("x-idem".parse().unwrap())
                .failures_as_errors(),
        )
        .service(upstream.service());
    let error = client.oneshot(post()).await.unwrap_err();
    let sent = upstream.seen()[0]["x-idem"].to_str().unwrap().to_owned();
    assert_eq!(error.idempotency_key(), Some(sent.as_str()));
    assert!(error.report().to_string().contains(&sent));
}

/// A request id layer alone makes a record without a key: a key the caller set in the standard
/// header still makes the POST safe to retry, and is reported.
#[tokio::test(start_paused = true)]
async fn a_callers_key_counts_beside_a_record_without_one() {
    let upstream = Upstream::new(vec![Ok((503, vec![], "")), Ok((200, vec![], ""))]);
    let client = ServiceBuilder::new()
        .request_ids()
        .retry_failures(RetryLayer::new().backoff(Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(1),
        )))
        .classify_responses()
        .service(upstream.service());
    let mut request = post();
    request
        .headers_mut()
        .insert("idempotency-key", "mine-9".parse().unwrap());
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(upstream.seen().len(), 2, "the keyed POST was retried");
    let key = key_of(&response).unwrap();
    assert_eq!(key.as_str(), "mine-9");
    assert!(!key.was_generated());
    assert!(client_id_of(&response).is_some());
}

/// An error layer outside the id layers reads the ids from the response, with the server's
/// word on a replay.
#[tokio::test(start_paused = true)]
async fn an_error_layer_outside_the_id_layers_knows_the_ids() {
    let upstream = Upstream::new(vec![Ok((
        400,
        vec![
            ("content-type", "application/json"),
            ("idempotent-replayed", "true"),
        ],
        r#"{"error":{"code":"bad_request","message":"no prompt"}}"#,
    ))]);
    let client = ServiceBuilder::new()
        .api_errors()
        .request_ids()
        .idempotency_keys()
        .retry_failures(RetryLayer::new())
        .classify_responses()
        .service(upstream.service());
    let error = client.oneshot(post()).await.unwrap_err();
    let seen = upstream.seen();
    assert_eq!(
        error.idempotency_key(),
        seen[0]["idempotency-key"].to_str().ok()
    );
    assert_eq!(
        error.client_request_id(),
        seen[0]["x-request-id"].to_str().ok()
    );
    assert!(error
        .request_ids()
        .idempotency_key()
        .unwrap()
        .was_replayed());
}

/// Without any id layer the response still carries the ids record, empty for a request
/// without a key, whether or not its body can be replayed.
#[tokio::test(start_paused = true)]
async fn the_retry_layer_alone_puts_an_ids_record_on_the_response() {
    let upstream = Upstream::new(vec![]);
    let client = ServiceBuilder::new()
        .retry_failures(RetryLayer::new())
        .classify_responses()
        .service(upstream.service());
    let response = client.oneshot(post()).await.unwrap();
    let ids = response.extensions().get::<RequestIds>().expect("a record");
    assert!(ids.client_request_id().is_none() && ids.idempotency_key().is_none());
}
