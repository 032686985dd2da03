//! An operator listening at WARN only: alone in its test binary, so that no other test's
//! subscriber raises the process's maximum level.

mod common;

use common::capture::{post, scripted, Capture, JSON};
use http_resilience::{ResilienceLayer, ServiceBuilderExt};
use tower::{ServiceBuilder, ServiceExt};
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// An operator who listens at WARN only still gets the give-ups that need them, and nothing
/// else: no span, no INFO give-up.
#[tokio::test(start_paused = true)]
async fn a_subscriber_at_warn_gets_the_warnings() {
    use tracing_subscriber::filter::LevelFilter;

    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(capture.clone().with_filter(LevelFilter::WARN)),
    );
    let client = ServiceBuilder::new()
        .resilience(ResilienceLayer::new())
        .service(scripted(&[
            (
                "/invalid",
                &[(400, &[JSON], r#"{"error":{"message":"empty prompt"}}"#)],
            ),
            (
                "/credentials",
                &[(401, &[JSON], r#"{"error":{"message":"bad key"}}"#)],
            ),
        ]));
    client.clone().oneshot(post("/invalid")).await.unwrap();
    client.oneshot(post("/credentials")).await.unwrap();
    let events = capture.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, Level::WARN);
    assert_eq!(events[0].fields["error.type"], "unauthenticated");
    assert!(events[0].fields["url.full"].contains("/credentials"));
    assert!(capture.spans().is_empty());
}
