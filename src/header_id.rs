//! Header values that cost a fraction of an allocation and clone without another: UUIDs made
//! for ids, and the copy of a request's small values that a retry keeps.

use std::cell::RefCell;

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue};

/// The length of a UUID's hyphenated text.
const UUID_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

/// How many ids share one buffer. A value kept long after its neighbours were dropped keeps the
/// whole buffer alive: at most this many times 36 bytes (576), the bound on what one kept id
/// can hold.
const IDS_PER_BUFFER: usize = 16;

/// The longest header value [`share_values`] copies into a shared buffer; a longer one keeps
/// its own bytes.
const SHARED_VALUE_MAX: usize = 256;

/// The size of a buffer of shared header values: a value kept long after its neighbours were
/// dropped keeps at most this much alive.
const VALUES_PER_BUFFER_BYTES: usize = 2048;

thread_local! {
    /// The buffer this thread's next ids are written into.
    static BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    /// The buffer this thread's next shared header values are written into.
    static VALUES: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Moves the request's small header values into a shared buffer, so that the copy of the
/// request a retry keeps clones them as reference counts; `shared_already` (the ids this crate
/// made, by identity) are left as they are.
///
/// A value built from a `&str` or `String` (`HeaderValue::from_str`, a request builder's
/// `.header(name, "…")`) owns its bytes, and its first clone allocates a reference count for
/// them: three such values made a request copy three allocations dearer. Values are copied as
/// they are, sensitive flag included.
pub(crate) fn share_values(headers: &mut HeaderMap, shared_already: &[Option<&HeaderValue>]) {
    VALUES.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        for value in headers.values_mut() {
            let bytes = value.as_bytes();
            let ours = |kept: &Option<&HeaderValue>| {
                kept.is_some_and(|kept| kept.as_bytes().as_ptr() == bytes.as_ptr())
            };
            if bytes.is_empty() || bytes.len() > SHARED_VALUE_MAX || shared_already.iter().any(ours)
            {
                continue;
            }
            if buffer.capacity() - buffer.len() < bytes.len() {
                *buffer = BytesMut::with_capacity(VALUES_PER_BUFFER_BYTES);
            }
            buffer.extend_from_slice(bytes);
            if let Ok(mut shared) = HeaderValue::from_maybe_shared(buffer.split().freeze()) {
                shared.set_sensitive(value.is_sensitive());
                *value = shared;
            }
        }
    });
}

/// `uuid` in its lowercase hyphenated form, as a header value.
///
/// The texts of sixteen ids share one buffer (one allocation, and one more for its reference
/// count), so a request's id and key cost an eighth of an allocation each on average rather
/// than one each, and the copies the stack keeps of them (the request copy for a retry, the
/// response's [`RequestIds`](crate::RequestIds)) are reference counts. A value made with
/// `HeaderValue::from_str` is a copy that allocates a second time when it is first cloned.
pub(crate) fn uuid_header_value(uuid: uuid::Uuid) -> Option<HeaderValue> {
    let mut text = [0u8; UUID_LEN];
    uuid.hyphenated().encode_lower(&mut text);
    let bytes = BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        if buffer.capacity() - buffer.len() < UUID_LEN {
            *buffer = BytesMut::with_capacity(UUID_LEN * IDS_PER_BUFFER);
        }
        buffer.extend_from_slice(&text);
        buffer.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_the_uuid_text_and_clones_share_it() {
        let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        let value = uuid_header_value(uuid).unwrap();
        assert_eq!(value.to_str().unwrap(), uuid.hyphenated().to_string());
        let copy = value.clone();
        assert_eq!(copy.as_bytes().as_ptr(), value.as_bytes().as_ptr());
    }

    #[test]
    fn shared_values_are_equal_copies_and_clone_without_copying() {
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_str("Bearer sk-test").unwrap();
        token.set_sensitive(true);
        headers.insert("authorization", token);
        headers.append("accept", HeaderValue::from_str("application/json").unwrap());
        headers.append("accept", HeaderValue::from_str("text/plain").unwrap());
        let long = "x".repeat(SHARED_VALUE_MAX + 1);
        headers.insert("x-long", HeaderValue::from_str(&long).unwrap());
        let id = uuid_header_value(uuid::Uuid::from_u128(7)).unwrap();
        headers.insert("x-request-id", id.clone());
        let before = headers.clone();
        let long_at = headers["x-long"].as_bytes().as_ptr();

        share_values(&mut headers, &[Some(&id)]);

        assert_eq!(headers, before, "the same names and values, in the same order");
        assert!(headers["authorization"].is_sensitive());
        assert!(!headers["accept"].is_sensitive());
        assert_eq!(headers["x-long"].as_bytes().as_ptr(), long_at, "a long value is left");
        assert_eq!(
            headers["x-request-id"].as_bytes().as_ptr(),
            id.as_bytes().as_ptr(),
            "an id this crate made is left"
        );
        let copy = headers["authorization"].clone();
        assert_eq!(copy.as_bytes().as_ptr(), headers["authorization"].as_bytes().as_ptr());
    }

    #[test]
    fn ids_made_in_a_row_are_distinct_and_whole() {
        let values: Vec<_> = (0..IDS_PER_BUFFER as u128 * 3 + 1)
            .map(|n| (n, uuid_header_value(uuid::Uuid::from_u128(n)).unwrap()))
            .collect();
        for (n, value) in &values {
            assert_eq!(
                value.to_str().unwrap(),
                uuid::Uuid::from_u128(*n).hyphenated().to_string()
            );
        }
    }
}
