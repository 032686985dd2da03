//! The pacer's model: any answers (any limit headers, status and wait) and admissions, at any
//! times, never panic and never give a turn in the past.
#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use http_resilience::fuzzing::pacing::{drive, Step};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const HEADERS: &[&str] = &[
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
];

/// Values that reach the interesting paths more often than random bytes do.
const VALUES: &[&str] = &[
    "0",
    "1",
    "60",
    "600",
    "1e308",
    "-1",
    "NaN",
    "1s",
    "6m0s",
    "20ms",
    "0s",
    "\"default\";r=0;t=60",
    "\"default\";q=100;w=60",
    "\"t\";q=5;w=0;qu=\"tokens\"",
    "2024-01-01T00:00:00Z",
    "1700000000",
    "99999999999999999999",
];

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < 64 {
        let step = match u.int_in_range(0u8..=3)? {
            0 => Step::Advance(Duration::from_millis(u.int_in_range(0..=200_000)?)),
            1 => Step::Admit(u.int_in_range(0..=1_000_000)?),
            2 => Step::Release(u.arbitrary()?),
            _ => {
                let mut headers = HeaderMap::new();
                for _ in 0..u.int_in_range(0u8..=6)? {
                    let name = HeaderName::from_static(HEADERS[u.choose_index(HEADERS.len())?]);
                    let value = if u.arbitrary()? {
                        HeaderValue::from_static(VALUES[u.choose_index(VALUES.len())?])
                    } else {
                        match HeaderValue::from_bytes(u.arbitrary()?) {
                            Ok(value) => value,
                            Err(_) => continue,
                        }
                    };
                    headers.append(name, value);
                }
                let wait: Option<u32> = u.arbitrary()?;
                Step::Answer {
                    nth: u.arbitrary()?,
                    status: u.int_in_range(100..=599)?,
                    headers,
                    wait: wait.map(|ms| Duration::from_millis(u64::from(ms))),
                }
            }
        };
        steps.push(step);
    }
    drive(&steps);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
