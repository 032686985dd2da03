//! `ApiError` as a support ticket needs it: the server's exact bytes, each cause once, bodies that
//! are not text summarised, and a failure body read that ends with the deadline.

mod common;

use std::error::Error;
use std::time::Duration;

use bytes::Bytes;
use common::ScriptedBody;
use http::{Request, Response};
use http_body_util::Full;
use http_resilience::retry::{Backoff, Jitter};
use http_resilience::{ApiError, ResilienceLayer, ServiceBuilderExt};
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn quick() -> ResilienceLayer {
    ResilienceLayer::new().backoff(
        Backoff::new(Duration::from_millis(10), Duration::from_millis(10)).jitter(Jitter::None),
    )
}

fn get() -> Request<Full<Bytes>> {
    Request::get("https://api.example.com/v1/models")
        .body(Full::default())
        .unwrap()
}

/// An upstream answering every request with `status`, `headers` and `body`.
async fn failure_of(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
) -> ApiError {
    let upstream = service_fn(move |_req: Request<Full<Bytes>>| async move {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        Ok::<_, std::io::Error>(response.body(Full::new(Bytes::from_static(body))).unwrap())
    });
    ServiceBuilder::new()
        .resilience(quick().max_attempts(1).failures_as_errors())
        .service(upstream)
        .oneshot(get())
        .await
        .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn the_response_body_is_the_servers_bytes() {
    let body: &[u8] = b"{ \"error\" : {\"message\": \"bad prompt\",\n  \"code\":\"invalid_prompt\"},  \"b\": 1, \"a\": 2 }";
    let error = failure_of(400, &[("content-type", "application/json")], body).await;
    assert_eq!(error.response_body().map(|b| &b[..]), Some(body));
    let report = error.report().to_string();
    assert!(
        report.contains(std::str::from_utf8(body).unwrap()),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_secret_field_is_masked_in_place_and_nothing_else_changes() {
    let body: &[u8] =
        b"{\"error\": {\"message\": \"bad key\"}, \"api_key\" : \"sk-echoed\", \"z\": [1, 2]}";
    let error = failure_of(401, &[("content-type", "application/json")], body).await;
    assert_eq!(
        error.response_body().map(|b| &b[..]),
        Some(
            &b"{\"error\": {\"message\": \"bad key\"}, \"api_key\" : \"[masked]\", \"z\": [1, 2]}"
                [..]
        )
    );
}

#[tokio::test(start_paused = true)]
async fn compressed_and_binary_bodies_are_summarised_never_dumped() {
    let gzip: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05, 0x00,
    ];
    let error = failure_of(500, &[("content-encoding", "gzip")], gzip).await;
    let report = error.report().to_string();
    assert!(report.contains("response body: 14 bytes, gzip"), "{report}");
    assert!(!report.contains('\u{fffd}'), "{report}");

    let binary: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
    let report = failure_of(500, &[], binary).await.report().to_string();
    assert!(
        report.contains("response body: 6 bytes, binary"),
        "{report}"
    );
}

/// Every error of the chain, one per line, as `anyhow`'s `{:#}` and error reporters print them.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut lines = vec![error.to_string()];
    let mut source = error.source();
    while let Some(error) = source {
        lines.push(error.to_string());
        source = error.source();
    }
    lines.join("\n")
}

#[tokio::test(start_paused = true)]
async fn a_cause_is_printed_once() {
    let refused = || {
        service_fn(|_req: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "upstream refused the connection",
            ))
        })
    };
    let error = ServiceBuilder::new()
        .resilience(quick().failures_as_errors())
        .service(refused())
        .oneshot(get())
        .await
        .unwrap_err();
    let text = chain(&error);
    assert_eq!(text.matches("upstream refused").count(), 1, "{text}");
    assert!(!error.to_string().contains("upstream refused"), "{error}");
    assert!(error
        .report()
        .to_string()
        .contains("cause: upstream refused the connection"));

    let error = ServiceBuilder::new()
        .resilience(quick())
        .service(refused())
        .oneshot(get())
        .await
        .unwrap_err();
    let text = chain(&error);
    assert_eq!(text.matches("upstream refused").count(), 1, "{text}");
    assert!(
        text.starts_with("request failed without a response (3 attempts"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_failure_body_read_ends_at_the_deadline() {
    // A failure body longer than the classification limit whose rest never comes.
    let upstream = service_fn(|_req: Request<Full<Bytes>>| async {
        let mut body = ScriptedBody::new(vec![Bytes::from_static(
            b"{\"error\":{\"message\":\"overloaded, please retry\"}}",
        )]);
        body.hang = true;
        Ok::<_, std::io::Error>(Response::builder().status(500).body(body).unwrap())
    });
    let client = ServiceBuilder::new()
        .resilience(
            quick()
                .max_attempts(1)
                .body_limit(16)
                .deadline(Duration::from_secs(2))
                .failures_as_errors(),
        )
        .service(upstream);
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), client.oneshot(get())).await;
    let error = outcome
        .expect("the error body read outlived the deadline")
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
    assert!(error.response_body().unwrap().starts_with(b"{\"error\""));
}

#[tokio::test(start_paused = true)]
async fn a_secret_in_a_compressed_or_mislabelled_body_is_not_kept() {
    let plain: &[u8] = br#"{"error":{"message":"bad key"},"api_key":"sk-echoed-123"}"#;
    // Labelled gzip, but plain text: read as text, masked in place.
    let error = failure_of(401, &[("content-encoding", "gzip")], plain).await;
    let kept = error.response_body().unwrap();
    assert!(!kept.windows(13).any(|w| w == b"sk-echoed-123"));
    assert!(kept.ends_with(br#""api_key":"[masked]"}"#));

    // Really gzip: the secret cannot be masked inside the compressed bytes, so the error keeps
    // the decoded text, masked.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, plain).unwrap();
    let gzipped: &'static [u8] = Box::leak(encoder.finish().unwrap().into_boxed_slice());
    let error = failure_of(401, &[("content-encoding", "gzip")], gzipped).await;
    assert_eq!(
        &error.response_body().unwrap()[..],
        br#"{"error":{"message":"bad key"},"api_key":"[masked]"}"#
    );
    let report = error.report().to_string();
    assert!(report.contains("gzip, decoded: {\"error\""), "{report}");
}
