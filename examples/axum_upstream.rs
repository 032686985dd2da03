//! An axum service that calls an upstream AI API through the standard stack and maps the
//! `ApiError` kinds to its own responses: `cargo run --example axum_upstream`.
//!
//! Starts a mock upstream and the axum app, both on 127.0.0.1 (ephemeral ports), calls the app
//! for a few prompts, prints what the app answered, and exits.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use http_resilience::{ApiError, ErrorKind, ResilienceLayer, ResilientErrors, ServiceBuilderExt};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};

type Upstream = ResilientErrors<Client<HttpConnector, Full<Bytes>>>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    base: String,
}

/// The app's own answer to each kind of upstream failure.
fn to_response(error: ApiError) -> Response {
    let (status, message) = match error.kind() {
        ErrorKind::InvalidRequest | ErrorKind::PayloadTooLarge | ErrorKind::Unsupported => {
            (StatusCode::BAD_REQUEST, "the request was not accepted")
        }
        ErrorKind::ContentPolicy => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the prompt was rejected by moderation",
        ),
        ErrorKind::RateLimited | ErrorKind::ConcurrencyLimited | ErrorKind::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the image service is busy, try again shortly",
        ),
        // Our account's problem, not the user's: page someone, tell the user it is down.
        ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::QuotaExhausted => {
            eprintln!(
                "upstream account problem, report follows:\n{}",
                error.report()
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the image service is unavailable",
            )
        }
        _ => (StatusCode::BAD_GATEWAY, "the image service failed"),
    };
    let body = Json(json!({
        "error": message,
        "kind": error.kind().as_str(),
        "upstream_trace_id": error.trace_id().map(|t| t.as_str()),
    }));
    let mut response = (status, body).into_response();
    if let Some(seconds) = error.wait_hint().map(|h| h.delay().as_secs().max(1)) {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

async fn generate(State(state): State<AppState>, Json(input): Json<Value>) -> Response {
    let request = http::Request::post(format!("{}/v1/images", state.base))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(input.to_string())));
    let Ok(request) = request else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match state.upstream.clone().oneshot(request).await {
        Ok(response) => match response.into_body().collect().await {
            Ok(body) => (StatusCode::OK, body.to_bytes()).into_response(),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        },
        Err(error) => to_response(error),
    }
}

/// The mock upstream: answers by the prompt.
async fn upstream_images(Json(input): Json<Value>) -> Response {
    let prompt = input["prompt"].as_str().unwrap_or_default();
    let (status, body) = match prompt {
        "forbidden" => (
            403,
            json!({"error": {"code": "forbidden", "message": "Content moderation rejected the prompt"}, "trace_id": "up-mod-1"}),
        ),
        "broke" => (
            402,
            json!({"error": {"code": "used_up", "message": "balance exhausted"}, "trace_id": "up-402"}),
        ),
        "busy" => (
            429,
            json!({"error": {"code": "too_many_requests", "message": "slow down"}, "trace_id": "up-429"}),
        ),
        _ => (
            200,
            json!({"data": [{"url": "https://cdn.example/cat.png"}]}),
        ),
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(body),
    )
        .into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("120"));
    }
    response
}

async fn serve(router: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream_base = serve(Router::new().route("/v1/images", post(upstream_images))).await?;
    let upstream = ServiceBuilder::new()
        .resilience(
            ResilienceLayer::new()
                .deadline(Duration::from_secs(20))
                .failures_as_errors(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .route("/generate", post(generate))
        .with_state(AppState {
            upstream,
            base: upstream_base,
        });
    let app_base = serve(app).await?;

    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for prompt in ["a cat", "forbidden", "busy", "broke"] {
        let request = http::Request::post(format!("{app_base}/generate"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({ "prompt": prompt }).to_string(),
            )))?;
        let response = caller.request(request).await?;
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "prompt {prompt:?} -> app answered {status}{}",
            retry_after.map_or(String::new(), |v| format!(" (retry-after {v:?})"))
        );
        println!("  {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
