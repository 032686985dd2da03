//! `ClassifyLayer` over scripted bodies: lossless whatever the chunking and limit, bounded reads,
//! streamed successes untouched, never a panic.

mod common;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{drain, ScriptedBody};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_resilience::classify::{BodyRead, Classification, Classifier, ClassifyLayer, ErrorKind};
use http_resilience::TraceId;
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};

/// Runs one response through the layer and returns it.
async fn through_layer(
    layer: ClassifyLayer,
    method: Method,
    response: Response<ScriptedBody>,
) -> Response<http_resilience::classify::ClassifiedBody<ScriptedBody>> {
    let response = Arc::new(Mutex::new(Some(response)));
    let service = service_fn(move |_req: Request<()>| {
        let response = response.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let request = Request::builder().method(method).body(()).unwrap();
    layer.layer(service).oneshot(request).await.unwrap()
}

fn response(status: u16, content_type: Option<&str>, body: ScriptedBody) -> Response<ScriptedBody> {
    let mut builder = Response::builder().status(status);
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(body).unwrap()
}

fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        chunks.push(Bytes::copy_from_slice(&bytes[start..cut]));
        start = cut;
    }
    chunks
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Invariant 1: every byte, trailer and error reaches the caller unchanged, whatever the
    /// status, chunking, size and limit.
    #[test]
    fn every_byte_arrives_whatever_the_chunking_and_limit(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        limit in prop_oneof![Just(0usize), 1usize..64, 64usize..4096],
        status in prop_oneof![Just(200u16), Just(201), Just(429), Just(500), Just(503), Just(404)],
        json in any::<bool>(),
        exact in any::<bool>(),
        trailers in any::<bool>(),
        error in any::<bool>(),
    ) {
        let mut scripted = ScriptedBody::new(split(&body, &cuts));
        scripted.exact = exact;
        scripted.error = error;
        if trailers {
            let mut map = HeaderMap::new();
            map.insert("x-checksum", HeaderValue::from_static("abc"));
            scripted.trailers = Some(map);
        }
        let content_type = json.then_some("application/json");
        let layer = ClassifyLayer::new().body_limit(limit);
        let (bytes, got_trailers, got_error) = runtime().block_on(async {
            let response = through_layer(layer, Method::POST, response(status, content_type, scripted)).await;
            let classification = response.extensions().get::<Classification>().cloned().unwrap();
            prop_assert_eq!(classification.status().as_u16(), status);
            Ok(drain(response.into_body()).await)
        })?;
        prop_assert_eq!(bytes, body);
        prop_assert_eq!(got_error, error);
        if !error {
            prop_assert_eq!(got_trailers.is_some(), trailers);
        }
    }

    /// Invariant 8: no input of arbitrary bytes panics the classifier.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), status in 100u16..1000) {
        let status = StatusCode::from_u16(status).unwrap();
        let c = Classifier::new().classify(status, &HeaderMap::new(), &body, BodyRead::Complete);
        prop_assert_eq!(c.status(), status);
    }

    /// JSON-shaped noise reaches every branch of the envelope parser; none may panic.
    #[test]
    fn arbitrary_json_shapes_never_panic(
        parts in proptest::collection::vec(prop_oneof![
            Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"), Just("null"), Just("true"),
            Just("\"error\""), Just("\"code\""), Just("\"detail\""), Just("\"details\""), Just("\"errors\""),
            Just("\"message\""), Just("\"type\""), Just("\"status\""), Just("\"success\""), Just("\"msg\""),
            Just("\"retryDelay\""), Just("\"34s\""), Just("\"innererror\""), Just("\"metadata\""),
            Just("\"estimated_time\""), Just("\"trace_id\""), Just("1e400"), Just("-0"), Just("130005"),
            Just("18446744073709551616"), Just("\"\\u00e9\""), Just("\"\\ud800\""), Just("0.5"),
        ], 0..40),
        status in prop_oneof![Just(200u16), Just(400), Just(429), Just(503)],
    ) {
        let body = parts.concat();
        let status = StatusCode::from_u16(status).unwrap();
        let c = Classifier::new().classify(status, &HeaderMap::new(), body.as_bytes(), BodyRead::Complete);
        if status != StatusCode::OK {
            prop_assert!(c.is_failure());
        }
    }
}

#[tokio::test]
async fn streamed_success_is_returned_without_reading_a_byte() {
    // An SSE stream whose next event has not been produced yet: the response must come back at
    // once, untouched.
    let mut body = ScriptedBody::new(vec![Bytes::from_static(b"data: {\"code\":130005}\n\n")]);
    body.hang = true;
    let polled = Arc::clone(&body.polled);
    let response = through_layer(
        ClassifyLayer::new(),
        Method::GET,
        response(200, Some("text/event-stream"), body),
    )
    .await;
    assert_eq!(polled.load(Ordering::SeqCst), 0, "the body was not polled");
    let c = response.extensions().get::<Classification>().unwrap();
    assert_eq!(c.kind(), None);
    assert_eq!(c.body_read(), BodyRead::NotRead);
    assert!(!response.body().was_read());
}

#[tokio::test]
async fn chunked_json_success_is_read_for_hidden_failures() {
    // Many servers send JSON chunked, without a Content-Length: a failure under 200 hides there.
    let chunks = vec![
        Bytes::from_static(br#"{"code":130005,"#),
        Bytes::from_static(br#""msg":"Request too frequent"}"#),
    ];
    let response = through_layer(
        ClassifyLayer::new(),
        Method::GET,
        response(200, Some("application/json"), ScriptedBody::new(chunks)),
    )
    .await;
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), Some(ErrorKind::RateLimited));
    assert_eq!(c.body_read(), BodyRead::Complete);
    let (bytes, _, error) = drain(response.into_body()).await;
    assert_eq!(bytes, br#"{"code":130005,"msg":"Request too frequent"}"#);
    assert!(!error);
}

#[tokio::test]
async fn chunked_json_success_past_the_limit_streams_on_whole_unclassified() {
    let chunks: Vec<Bytes> = (0..5)
        .map(|i| Bytes::from(format!("{{\"code\":1300{i}}}")))
        .collect();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let response = through_layer(
        ClassifyLayer::new().body_limit(20),
        Method::GET,
        response(200, Some("application/json"), ScriptedBody::new(chunks)),
    )
    .await;
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), None, "a prefix of a long success says nothing");
    assert_eq!(c.body_read(), BodyRead::NotRead);
    let (bytes, _, _) = drain(response.into_body()).await;
    assert_eq!(bytes, expected);
}

#[tokio::test]
async fn json_streams_are_never_held_back() {
    for media_type in [
        "application/x-ndjson",
        "application/jsonl",
        "application/json-seq",
        "application/stream+json",
    ] {
        let body = ScriptedBody::new(vec![Bytes::from_static(b"{\"code\":130005}\n")]);
        let polled = Arc::clone(&body.polled);
        let response = through_layer(
            ClassifyLayer::new(),
            Method::GET,
            response(200, Some(media_type), body),
        )
        .await;
        assert_eq!(polled.load(Ordering::SeqCst), 0, "{media_type}");
        assert!(!response.body().was_read());
    }
}

#[tokio::test]
async fn a_success_body_cut_while_read_is_a_transport_failure() {
    let mut body = ScriptedBody::new(vec![Bytes::from_static(br#"{"data":"#)]);
    body.error = true;
    let response = through_layer(
        ClassifyLayer::new(),
        Method::GET,
        response(200, Some("application/json"), body),
    )
    .await;
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), Some(ErrorKind::Transport));
    let (bytes, _, error) = drain(response.into_body()).await;
    assert_eq!(bytes, br#"{"data":"#);
    assert!(error, "the cut still reaches the caller");
}

#[tokio::test]
async fn small_json_success_with_known_length_is_read_for_hidden_failures() {
    let mut body = ScriptedBody::new(vec![Bytes::from_static(
        br#"{"code":130005,"msg":"Request too frequent"}"#,
    )]);
    body.exact = true;
    let response = through_layer(
        ClassifyLayer::new(),
        Method::POST,
        response(200, Some("application/json; charset=utf-8"), body),
    )
    .await;
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), Some(ErrorKind::RateLimited));
    assert_eq!(c.body_read(), BodyRead::Complete);
    let (bytes, _, _) = drain(response.into_body()).await;
    assert_eq!(bytes, br#"{"code":130005,"msg":"Request too frequent"}"#);
}

#[tokio::test]
async fn json_success_longer_than_the_limit_is_not_read() {
    let mut body = ScriptedBody::new(vec![Bytes::from(vec![b' '; 2048])]);
    body.exact = true;
    let polled = Arc::clone(&body.polled);
    let layer = ClassifyLayer::new().body_limit(1024);
    let _ = through_layer(
        layer,
        Method::GET,
        response(200, Some("application/json"), body),
    )
    .await;
    assert_eq!(polled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failure_read_stops_at_the_limit_and_streams_the_rest() {
    let chunks: Vec<Bytes> = (0..10).map(|i| Bytes::from(vec![b'a' + i; 100])).collect();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let body = ScriptedBody::new(chunks);
    let polled = Arc::clone(&body.polled);
    let layer = ClassifyLayer::new().body_limit(250);
    let response = through_layer(layer, Method::GET, response(500, Some("text/html"), body)).await;
    // 3 chunks reach 300 >= 250 bytes: no more were read before the response was returned.
    assert_eq!(polled.load(Ordering::SeqCst), 3);
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), Some(ErrorKind::ServerError));
    assert_eq!(c.body_read(), BodyRead::Prefix);
    let (bytes, _, error) = drain(response.into_body()).await;
    assert!(!error);
    assert_eq!(bytes, expected);
}

#[tokio::test]
async fn failure_body_cut_off_replays_the_prefix_then_the_error() {
    let mut body = ScriptedBody::new(vec![Bytes::from_static(b"{\"error\":{\"code\":\"api_")]);
    body.error = true;
    let response =
        through_layer(ClassifyLayer::new(), Method::GET, response(500, None, body)).await;
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), Some(ErrorKind::ServerError));
    assert_eq!(c.body_read(), BodyRead::Prefix);
    let (bytes, _, error) = drain(response.into_body()).await;
    assert_eq!(bytes, b"{\"error\":{\"code\":\"api_");
    assert!(error);
}

#[tokio::test]
async fn head_responses_are_never_read() {
    let body = ScriptedBody::new(vec![Bytes::from_static(b"x")]);
    let polled = Arc::clone(&body.polled);
    let response = through_layer(
        ClassifyLayer::new(),
        Method::HEAD,
        response(503, None, body),
    )
    .await;
    assert_eq!(polled.load(Ordering::SeqCst), 0);
    assert_eq!(
        response
            .extensions()
            .get::<Classification>()
            .unwrap()
            .kind(),
        Some(ErrorKind::Overloaded)
    );
}

#[tokio::test]
async fn the_trace_id_is_recorded_once_in_the_classification() {
    let body = ScriptedBody::new(vec![Bytes::from_static(
        br#"{"error":{"code":"used_up","message":"balance exhausted"},"trace_id":"7c1a"}"#,
    )]);
    let mut response = response(403, Some("application/json"), body);
    response
        .headers_mut()
        .insert("x-request-id", HeaderValue::from_static("hdr"));
    let response = through_layer(ClassifyLayer::new(), Method::POST, response).await;
    let classification = response.extensions().get::<Classification>().unwrap();
    assert_eq!(classification.trace_id().unwrap().as_str(), "7c1a");
    assert_eq!(classification.kind(), Some(ErrorKind::QuotaExhausted));
    assert!(
        response.extensions().get::<TraceId>().is_none(),
        "one fact, one record"
    );
}

#[tokio::test]
async fn success_trace_id_comes_from_the_header() {
    let mut response = response(
        200,
        Some("image/png"),
        ScriptedBody::new(vec![Bytes::from_static(b"\x89PNG")]),
    );
    response
        .headers_mut()
        .insert("x-request-id", HeaderValue::from_static("req-ok"));
    let response = through_layer(ClassifyLayer::new(), Method::GET, response).await;
    let classification = response.extensions().get::<Classification>().unwrap();
    assert_eq!(classification.trace_id().unwrap().as_str(), "req-ok");
}

#[tokio::test]
async fn a_chunked_json_array_streams_on_after_its_first_chunk() {
    // Gemini's streamGenerateContent without `alt=sse`: a JSON array, chunk by chunk, the rest
    // not produced yet. The caller gets the first chunk at once, unclassified by the body.
    let mut body = ScriptedBody::new(vec![Bytes::from_static(b"[{\"candidates\":[]}\r\n")]);
    body.hang = true;
    let response = through_layer(
        ClassifyLayer::new(),
        Method::POST,
        response(200, Some("application/json; charset=UTF-8"), body),
    )
    .await;
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), None);
    assert_eq!(c.body_read(), BodyRead::NotRead);
    let mut body = std::pin::pin!(response.into_body());
    let first = http_body_util::BodyExt::frame(&mut body)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), &b"[{\"candidates\":[]}\r\n"[..]);
}
