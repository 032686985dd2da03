//! Every wait-hint parser: any values in any of the headers servers announce waits with never
//! panic, and a hint never exceeds the documented cap.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use http_resilience::retry::WaitHint;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const HEADERS: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "ratelimit",
    "ratelimit-reset",
    "ratelimit-policy",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
    "x-should-retry",
];

/// The longest hint the crate reports: every delay is capped at a year.
const CAP: Duration = Duration::from_secs(365 * 24 * 60 * 60);

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut headers = HeaderMap::new();
    let count = u.int_in_range(0u8..=6)?;
    for _ in 0..count {
        let name = HeaderName::from_static(HEADERS[u.choose_index(HEADERS.len())?]);
        let value: &[u8] = u.arbitrary()?;
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let body_hint: Option<u64> = u.arbitrary()?;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u.int_in_range(0..=8_000_000_000)?);
    let body_hint = body_hint.map(Duration::from_millis);
    if let Some(hint) = WaitHint::from_response(&headers, body_hint, now) {
        assert!(hint.delay() <= CAP, "{hint:?}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
