//! The stack's metrics in Prometheus' text format: `cargo run --example metrics_prometheus
//! --features metrics`.
//!
//! Installs metrics-exporter-prometheus as the `metrics` recorder, runs every scenario of the
//! demo's mock AI gateway (on 127.0.0.1, an ephemeral port) through the standard stack over
//! hyper-util's client, then prints the scrape text: requests, attempts and retries by kind,
//! give-ups by stop reason, the waits the server asked for, attempts per request, and the
//! duration of each logical request. A real service would serve the same text on `/metrics`
//! (the exporter's `http-listener` feature, or its `render` from the service's own route).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use http_resilience::ServiceBuilderExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::{ServiceBuilder, ServiceExt};

#[path = "support/mock_gateway.rs"]
mod mock_gateway;

use mock_gateway::{demo_layer, start_mock_gateway, Gateway, ROUTES, TASKS};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Durations and waits as histograms, with the buckets OpenTelemetry advises for
    // `http.client.request.duration`; other histograms stay summaries.
    let buckets = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http.client.request.duration".into()),
            &buckets,
        )?
        .set_buckets_for_metric(
            Matcher::Full("http_resilience.server_wait".into()),
            &buckets,
        )?
        .install_recorder()?;
    let gateway = Arc::new(Mutex::new(Gateway::default()));
    let addr = start_mock_gateway(Arc::clone(&gateway)).await?;

    let client = ServiceBuilder::new()
        .resilience(demo_layer())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let paths = ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.path))
        .chain([(http::Method::POST, TASKS)]);
    for (method, path) in paths {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("authorization", "Bearer sk-demo-0123456789")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"prompt":"a lighthouse at dawn"}"#,
            )))?;
        let response = client.clone().oneshot(request).await?;
        response.into_body().collect().await?;
    }

    let scrape = prometheus.render();
    print!("{scrape}");
    // The scrape names what happened, and never a path, an id or a credential.
    assert!(scrape.contains("http_resilience_retries"));
    assert!(scrape.contains("http_resilience_give_ups"));
    assert!(!scrape.contains("/v1/") && !scrape.contains("sk-demo"));
    Ok(())
}
