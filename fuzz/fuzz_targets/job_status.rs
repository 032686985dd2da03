//! Job status readers: any status and body never panic, and a state read as failed carries a
//! classification of a failure.
#![no_main]

use http::{HeaderMap, StatusCode};
use http_resilience::classify::Classifier;
use http_resilience::jobs::{
    JobState, QueueStatus, ReadStatus, ReplicateStatus, StatusAnswer, TaskStatus,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    thread_local! {
        static CLASSIFIER: Classifier = Classifier::new();
    }
    let (status, body) = input;
    let status = StatusCode::from_u16(100 + status % 500).unwrap_or(StatusCode::OK);
    let headers = HeaderMap::new();
    CLASSIFIER.with(|classifier| {
        let answer = StatusAnswer::new(status, &headers, body, classifier);
        for reader in [
            &TaskStatus as &dyn ReadStatus,
            &QueueStatus,
            &ReplicateStatus,
        ] {
            let read = reader.read(&answer);
            if let JobState::Failed(classification) = read.state() {
                assert!(classification.kind().is_some());
            }
        }
    });
});
