//! Trace-id extraction: any headers and body never panic; a trace id taken from a header is that
//! header's value, and one taken from the body is no longer than the body.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_resilience::classify::{BodyRead, Classifier};
use http_resilience::fuzzing::TRACE_ID_HEADERS;
use http_resilience::ids::TraceIdSource;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut headers = HeaderMap::new();
    for _ in 0..u.int_in_range(0u8..=4)? {
        // Every header a trace id is looked for in, and one it is not.
        let index = u.choose_index(TRACE_ID_HEADERS.len() + 1)?;
        let name = TRACE_ID_HEADERS
            .get(index)
            .copied()
            .unwrap_or("content-type");
        let name = HeaderName::from_static(name);
        let value: &[u8] = u.arbitrary()?;
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let status = StatusCode::from_u16(u.int_in_range(100..=999)?).unwrap_or(StatusCode::OK);
    let body_read = if u.arbitrary()? {
        BodyRead::Complete
    } else {
        BodyRead::Prefix
    };
    let mut classifier = Classifier::new();
    if u.arbitrary()? {
        classifier = classifier.trace_id_field("id");
    }
    let body = u.take_rest();
    let classification = classifier.classify(status, &headers, body, body_read);
    if let Some(trace_id) = classification.trace_id() {
        match trace_id.source() {
            TraceIdSource::Header(name) => {
                assert!(headers
                    .get_all(name)
                    .iter()
                    .any(
                        |v| String::from_utf8_lossy(v.as_bytes()).trim() == trace_id.as_str()
                            || v.as_bytes() == trace_id.as_str().as_bytes()
                    ))
            }
            _ => assert!(trace_id.as_str().len() <= body.len()),
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
