//! Job-completion webhooks end to end: a callback endpoint on 127.0.0.1:0 (a hyper server, as a
//! client application runs one) verifies Standard Webhooks signatures with a rotated key,
//! refuses replays, stale and tampered deliveries, and matches each callback to a job this
//! client created; the "provider" posts real deliveries to it over HTTP.
#![cfg(feature = "webhooks")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use common::{full, hyper_client, spawn_server};
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use http_resilience::webhooks::{
    Callback, CallbackState, PendingJobs, ReplayGuard, WebhookError, WebhookVerifier,
    DEFAULT_TOLERANCE,
};
use hyper::body::Incoming;
use sha2::Sha256;
use tower::ServiceExt;

const OLD_SECRET: &str = "whsec_b2xkIGtleSBiZWZvcmUgdGhlIHJvdGF0aW9u";
const NEW_SECRET: &str = "whsec_bmV3IGtleSBhZnRlciB0aGUgcm90YXRpb24=";

/// What the endpoint did with each delivery, and the jobs it completed.
#[derive(Default)]
struct Endpoint {
    completed: Vec<(String, CallbackState, &'static str)>,
}

/// The client application's callback endpoint.
async fn endpoint(
    verifier: WebhookVerifier,
    replays: ReplayGuard,
    pending: PendingJobs<&'static str>,
    seen: Arc<Mutex<Endpoint>>,
) -> std::net::SocketAddr {
    spawn_server(move |request: Request<Incoming>| {
        let verifier = verifier.clone();
        let replays = replays.clone();
        let pending = pending.clone();
        let seen = Arc::clone(&seen);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let status = match verifier.verify(&parts.headers, &body) {
                Err(WebhookError::StaleTimestamp { .. } | WebhookError::FutureTimestamp { .. }) => {
                    StatusCode::REQUEST_TIMEOUT
                }
                Err(_) => StatusCode::UNAUTHORIZED,
                Ok(delivery) => match replays.check(&delivery, SystemTime::now()) {
                    Err(_) => StatusCode::CONFLICT,
                    Ok(()) => match Callback::parse_bytes(body) {
                        Err(_) => StatusCode::BAD_REQUEST,
                        Ok(callback) => match pending.take_for(&callback) {
                            Some(order) => {
                                seen.lock().unwrap().completed.push((
                                    callback.job_id().to_owned(),
                                    callback.state(),
                                    order,
                                ));
                                StatusCode::NO_CONTENT
                            }
                            // Verified, but not a job of ours (or already finished).
                            None => StatusCode::NOT_FOUND,
                        },
                    },
                },
            };
            Response::builder().status(status).body(full("")).unwrap()
        }
    })
    .await
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A delivery as the provider signs it.
fn delivery(
    addr: std::net::SocketAddr,
    secret: &str,
    id: &str,
    timestamp: u64,
    body: &str,
) -> Request<Full<Bytes>> {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Request::post(format!("http://{addr}/hooks/jobs"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", format!("v1,{signature}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn post(request: Request<Full<Bytes>>) -> StatusCode {
    hyper_client::<Full<Bytes>>()
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn deliveries_are_verified_deduplicated_and_matched_to_our_jobs() {
    let verifier = WebhookVerifier::new(NEW_SECRET)
        .unwrap()
        .with_secret(OLD_SECRET)
        .unwrap();
    let replays = ReplayGuard::new(DEFAULT_TOLERANCE);
    let pending = PendingJobs::new();
    pending.insert("p1", "order-1");
    pending.insert("task-2", "order-2");
    let seen = Arc::new(Mutex::new(Endpoint::default()));
    let addr = endpoint(verifier, replays, pending.clone(), Arc::clone(&seen)).await;
    let now = now_secs();
    let replicate =
        r#"{"id":"p1","status":"succeeded","output":["https://x.test/a.png"],"error":null}"#;
    let gateway = r#"{"success":false,"task_id":"task-2","trace_id":"5a1c","error":{"code":"generation_failed","message":"The generation process failed"}}"#;

    // Valid, signed with the new key.
    assert_eq!(
        post(delivery(addr, NEW_SECRET, "msg_1", now, replicate)).await,
        StatusCode::NO_CONTENT
    );
    // The same delivery again: a replay.
    assert_eq!(
        post(delivery(addr, NEW_SECRET, "msg_1", now, replicate)).await,
        StatusCode::CONFLICT
    );
    // Signed with the key being rotated out: still accepted.
    assert_eq!(
        post(delivery(addr, OLD_SECRET, "msg_2", now, gateway)).await,
        StatusCode::NO_CONTENT
    );
    // Tampered: signed for one body, sent with another.
    let mut tampered = delivery(addr, NEW_SECRET, "msg_3", now, replicate);
    *tampered.body_mut() = Full::new(Bytes::from(replicate.replace("a.png", "evil.png")));
    assert_eq!(post(tampered).await, StatusCode::UNAUTHORIZED);
    // Signed with a key we never had.
    let stranger = "whsec_c29tZWJvZHkgZWxzZSdzIGtleQ==";
    assert_eq!(
        post(delivery(addr, stranger, "msg_4", now, replicate)).await,
        StatusCode::UNAUTHORIZED
    );
    // Stale: ten minutes old, past the five-minute tolerance.
    assert_eq!(
        post(delivery(addr, NEW_SECRET, "msg_5", now - 600, replicate)).await,
        StatusCode::REQUEST_TIMEOUT
    );
    // Verified but for a job this client did not create.
    let foreign = r#"{"id":"p-unknown","status":"succeeded","output":[],"error":null}"#;
    assert_eq!(
        post(delivery(addr, NEW_SECRET, "msg_6", now, foreign)).await,
        StatusCode::NOT_FOUND
    );

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.completed,
        vec![
            ("p1".to_owned(), CallbackState::Succeeded, "order-1"),
            ("task-2".to_owned(), CallbackState::Failed, "order-2"),
        ]
    );
    assert!(pending.is_empty());
}
