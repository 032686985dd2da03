//! UUIDs as header values that cost a fraction of an allocation and clone without another.

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderValue;

/// The length of a UUID's hyphenated text.
const UUID_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

/// How many ids share one buffer. A value kept long after its neighbours were dropped keeps the
/// whole buffer alive: at most this many times 36 bytes (576), the bound on what one kept id
/// can hold.
const IDS_PER_BUFFER: usize = 16;

thread_local! {
    /// The buffer this thread's next ids are written into.
    static BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
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
