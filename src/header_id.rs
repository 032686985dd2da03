//! UUIDs as header values that cost one allocation and clone without another.

use bytes::Bytes;
use http::HeaderValue;

/// `uuid` in its lowercase hyphenated form, as a header value.
///
/// The text lives in one shared buffer, so the copies the stack keeps of it (the request copy
/// for a retry, the [`Attempts`](crate::Attempts) record, the response's key) are reference
/// counts. A value made with `HeaderValue::from_str` is a copy that allocates a second time when
/// it is first cloned.
pub(crate) fn uuid_header_value(uuid: uuid::Uuid) -> Option<HeaderValue> {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).ok()
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
}
