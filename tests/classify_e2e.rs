//! `ClassifyLayer` over hyper-util's client against a real hyper server on 127.0.0.1:0.

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::{full, hyper_client, spawn_server, ServerBody};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use http_resilience::classify::{BodyRead, Classification, ClassifyLayer, ErrorKind};
use hyper::body::Frame;
use tokio::sync::{mpsc, Mutex};
use tower::{ServiceBuilder, ServiceExt};

fn json(status: u16, body: &'static str) -> Response<ServerBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", "srv-req-1")
        .body(full(body))
        .unwrap()
}

/// A server whose `/sse` route streams one event, then waits for the test to release the rest.
async fn gateway() -> (std::net::SocketAddr, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let addr = spawn_server(move |req: Request<hyper::body::Incoming>| {
        let rx = Arc::clone(&rx);
        async move {
            match req.uri().path() {
                "/quota" => json(
                    429,
                    r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                ),
                "/business" => json(200, r#"{"code":130005,"msg":"Request too frequent","data":null}"#),
                "/ok" => json(200, r#"{"success":true,"data":{"task_id":"t-1"}}"#),
                "/html" => Response::builder()
                    .status(502)
                    .header("content-type", "text/html")
                    .body(full("<html><body><h1>502 Bad Gateway</h1></body></html>"))
                    .unwrap(),
                "/big-error" => {
                    let mut body = br#"{"error":{"code":"api_error","message":""#.to_vec();
                    body.extend(std::iter::repeat_n(b'x', 200 * 1024));
                    body.extend_from_slice(br#""}}"#);
                    Response::builder().status(500).body(full(body)).unwrap()
                }
                "/sse" => {
                    let mut rx = rx.lock().await.take().expect("one SSE client");
                    let first = futures_util::stream::once(async {
                        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"data: first\n\n")))
                    });
                    let rest = futures_util::stream::poll_fn(move |cx| {
                        rx.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
                    });
                    let body = StreamBody::new(futures_util::StreamExt::chain(first, rest));
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(BodyExt::boxed(body))
                        .unwrap()
                }
                _ => json(404, r#"{"detail":"Not Found"}"#),
            }
        }
    })
    .await;
    (addr, tx)
}

fn get(addr: std::net::SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn hyper_client_responses_are_classified_with_bodies_intact() {
    let (addr, _tx) = gateway().await;
    let client = ServiceBuilder::new()
        .layer(ClassifyLayer::new())
        .service(hyper_client::<Empty<Bytes>>());

    let cases = [
        (
            "/quota",
            StatusCode::TOO_MANY_REQUESTS,
            Some(ErrorKind::QuotaExhausted),
        ),
        ("/business", StatusCode::OK, Some(ErrorKind::RateLimited)),
        ("/ok", StatusCode::OK, None),
        (
            "/html",
            StatusCode::BAD_GATEWAY,
            Some(ErrorKind::ServerError),
        ),
        ("/missing", StatusCode::NOT_FOUND, Some(ErrorKind::NotFound)),
    ];
    for (path, status, kind) in cases {
        let response = client.clone().oneshot(get(addr, path)).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let c = response
            .extensions()
            .get::<Classification>()
            .unwrap()
            .clone();
        assert_eq!(c.kind(), kind, "{path}");
        assert_eq!(
            c.trace_id().map(|t| t.as_str()),
            if path == "/html" {
                None
            } else {
                Some("srv-req-1")
            }
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!bytes.is_empty(), "{path}: body arrived");
    }
}

#[tokio::test]
async fn error_body_longer_than_the_limit_arrives_whole() {
    let (addr, _tx) = gateway().await;
    let client = ServiceBuilder::new()
        .layer(ClassifyLayer::new())
        .service(hyper_client::<Empty<Bytes>>());
    let response = client.oneshot(get(addr, "/big-error")).await.unwrap();
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.kind(), Some(ErrorKind::ServerError));
    assert_eq!(c.body_read(), BodyRead::Prefix);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        bytes.len(),
        br#"{"error":{"code":"api_error","message":""#.len() + 200 * 1024 + 3
    );
    assert!(bytes.ends_with(br#"x"}}"#));
}

#[tokio::test]
async fn sse_stream_reaches_the_caller_before_the_server_finishes() {
    let (addr, tx) = gateway().await;
    let client = ServiceBuilder::new()
        .layer(ClassifyLayer::new())
        .service(hyper_client::<Empty<Bytes>>());
    // The server has sent only the first event: the response and that event must arrive now.
    let response = client.oneshot(get(addr, "/sse")).await.unwrap();
    let c = response
        .extensions()
        .get::<Classification>()
        .unwrap()
        .clone();
    assert_eq!(c.body_read(), BodyRead::NotRead);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: first\n\n");
    tx.send(Bytes::from_static(b"data: second\n\n"))
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data: second\n\n");
}
