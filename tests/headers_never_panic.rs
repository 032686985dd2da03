//! Invariant 8 for headers: no header value a server can send panics the crate (wait hints,
//! `x-should-retry`, code and trace-id headers), and hints stay within their documented bounds.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_resilience::classify::{BodyRead, Classifier};
use http_resilience::retry::WaitHint;
use proptest::prelude::*;

const HINT_HEADERS: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "ratelimit",
    "ratelimit-reset",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-reset",
    "x-should-retry",
    "x-amzn-errortype",
    "x-fal-error-type",
    "x-request-id",
    "request-id",
    "cf-ray",
];

/// Header values a server could send: arbitrary bytes that HTTP allows in a field value, and
/// text shaped like the values these headers carry.
fn value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40).prop_filter_map(
            "a valid field value",
            |bytes| HeaderValue::from_bytes(&bytes).ok()
        ),
        "[0-9a-zA-Z:;=,. \"-]{0,40}"
            .prop_filter_map("a valid field value", |text| HeaderValue::from_str(&text)
                .ok()),
        prop_oneof![
            Just("99999999999999999999999999".to_owned()),
            Just("-0".to_owned()),
            Just("1e309".to_owned()),
            Just("NaN".to_owned()),
            Just("6m0s1h".to_owned()),
            Just("9999999999999h".to_owned()),
            Just("Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
            Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
            Just("9999-12-31T23:59:59Z".to_owned()),
            Just("reset=99999999999999999999".to_owned()),
        ]
        .prop_filter_map("a valid field value", |text| HeaderValue::from_str(&text)
            .ok()),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec((proptest::sample::select(HINT_HEADERS), value()), 0..8).prop_map(
        |pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(HeaderName::from_static(name), value);
            }
            map
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wait_hints_never_panic_and_stay_within_a_year(
        headers in headers(),
        body_hint in proptest::option::of(0u64..10_000_000),
        now_secs in 0u64..5_000_000_000,
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
        let hint = WaitHint::from_response(&headers, body_hint.map(Duration::from_millis), now);
        if let Some(hint) = hint {
            prop_assert!(hint.delay() <= Duration::from_secs(365 * 24 * 60 * 60));
        }
    }

    #[test]
    fn header_rules_never_panic(headers in headers(), status in 100u16..1000) {
        let status = StatusCode::from_u16(status).unwrap();
        let c = Classifier::new().classify(status, &headers, b"", BodyRead::NotRead);
        prop_assert_eq!(c.status(), status);
        if let Some(trace_id) = c.trace_id() {
            prop_assert!(!trace_id.as_str().is_empty());
        }
    }
}
