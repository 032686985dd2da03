//! The classifier behind `ClassifyLayer`, with the body split into arbitrary chunks: every byte
//! reaches the caller in order, whatever the status, media type, encoding (gzip that is and is
//! not gzip), length and limit.
#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_resilience::classify::{Classification, ClassifyLayer};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tower::{service_fn, Layer, Service};

/// A body that yields its chunks one per poll, with or without an exact length.
struct Chunks {
    chunks: Vec<Bytes>,
    exact: bool,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(self.chunks.remove(0)))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

const MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/problem+json; charset=utf-8",
    "text/html",
    "text/event-stream",
    "",
];

const ENCODINGS: &[&str] = &["", "gzip", "deflate", "br", "zstd", "gzip, br"];

/// Polls a future that never waits (every body here is in memory) to its end.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let status: u16 = u.int_in_range(100..=599)?;
    let media_type = MEDIA_TYPES[u.choose_index(MEDIA_TYPES.len())?];
    let exact: bool = u.arbitrary()?;
    let limit = usize::from(u.int_in_range(0u16..=4096)?);
    let cuts: Vec<u16> = u.arbitrary()?;
    // The encoding the answer announces; a gzip one is sometimes really gzip, sometimes not.
    let encoding = ENCODINGS[u.choose_index(ENCODINGS.len())?];
    let compress: bool = u.arbitrary()?;
    let mut body = u.take_rest().to_vec();
    if encoding == "gzip" && compress {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).expect("in memory");
        body = encoder.finish().expect("in memory");
    }

    let mut cuts: Vec<usize> = cuts
        .into_iter()
        .map(|c| usize::from(c) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([body.len()]) {
        chunks.push(Bytes::copy_from_slice(&body[start..cut]));
        start = cut;
    }
    let mut response = Response::builder().status(status);
    if !media_type.is_empty() {
        response = response.header("content-type", media_type);
    }
    if !encoding.is_empty() {
        response = response.header("content-encoding", encoding);
    }
    let response = response
        .body(Chunks { chunks, exact })
        .expect("a valid response");
    let mut response = Some(response);
    let upstream = service_fn(move |_req: Request<()>| {
        let response = response.take().expect("one call");
        async move { Ok::<_, Infallible>(response) }
    });
    let mut service = ClassifyLayer::new().body_limit(limit).layer(upstream);
    let response = ready(service.call(Request::new(()))).expect("infallible");
    let classification = response
        .extensions()
        .get::<Classification>()
        .expect("classified");
    assert_eq!(classification.status().as_u16(), status);

    let mut out = Vec::new();
    let mut body_out = std::pin::pin!(response.into_body());
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(frame)) = body_out.as_mut().poll_frame(&mut cx) {
        if let Ok(data) = frame.expect("no error").into_data() {
            out.extend_from_slice(&data);
        }
    }
    assert_eq!(out, body, "bytes changed");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
