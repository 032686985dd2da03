//! Header values that cost a fraction of an allocation and clone without another (UUIDs made
//! for ids, the copy of a request's small values that a retry keeps), and the look-up of a
//! header in the small maps requests and answers usually are.

use std::cell::RefCell;

use bytes::BytesMut;
use http::{header, HeaderMap, HeaderName, HeaderValue};

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
/// request a retry keeps clones them as reference counts; `shared_already` (the ids, which are
/// shared, by identity) are left as they are.
///
/// A value built from a `&str` or `String` (`HeaderValue::from_str`, a request builder's
/// `.header(name, "…")`) owns its bytes, and its first clone allocates a reference count for
/// them: three such values made a request copy three allocations dearer. Values are copied as
/// they are. Credentials (a value marked sensitive, as reqwest's `bearer_auth` marks it, and the
/// `authorization`, `proxy-authorization` and `cookie` headers) keep their own bytes, freed with
/// the request, rather than sharing a buffer with other requests' values for longer.
pub(crate) fn share_values(headers: &mut HeaderMap, shared_already: &[Option<&HeaderValue>]) {
    // Sharing is only a saving: skipped if the thread's buffer is gone (its exit under way).
    let _ = VALUES.try_with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        for (name, value) in headers.iter_mut() {
            let bytes = value.as_bytes();
            let ours = |kept: &Option<&HeaderValue>| {
                kept.is_some_and(|kept| kept.as_bytes().as_ptr() == bytes.as_ptr())
            };
            if bytes.is_empty()
                || bytes.len() > SHARED_VALUE_MAX
                || value.is_sensitive()
                || shared_already.iter().any(ours)
                || is_credential(name)
            {
                continue;
            }
            let shared = append(&mut buffer, bytes, VALUES_PER_BUFFER_BYTES);
            if let Ok(shared) = HeaderValue::from_maybe_shared(shared) {
                *value = shared;
            }
        }
    });
}

/// `text` in this thread's buffer of shared values when it is short (up to 256 bytes), so that
/// it costs no allocation of its own and its clones are reference counts; a copy of its own
/// otherwise. For text that carries no credential: it may outlive its request by as long as its
/// neighbours in the buffer live.
#[cfg(feature = "reqwest")]
pub(crate) fn shared_copy(text: &[u8]) -> bytes::Bytes {
    if text.len() > SHARED_VALUE_MAX {
        return bytes::Bytes::copy_from_slice(text);
    }
    VALUES
        .try_with(|buffer| append(&mut buffer.borrow_mut(), text, VALUES_PER_BUFFER_BYTES))
        .unwrap_or_else(|_| bytes::Bytes::copy_from_slice(text))
}

/// `text` written at the end of `buffer`, as bytes of their own that share the buffer's
/// allocation; a buffer without room for it is replaced by a new one of `capacity` bytes.
fn append(buffer: &mut BytesMut, text: &[u8], capacity: usize) -> bytes::Bytes {
    if buffer.capacity() - buffer.len() < text.len() {
        *buffer = BytesMut::with_capacity(capacity.max(text.len()));
    }
    buffer.extend_from_slice(text);
    buffer.split().freeze()
}

/// The first value of `name` in `headers`. A small map (the usual request or answer) is
/// scanned, which costs less than hashing the name for a lookup; a larger one is looked up.
pub(crate) fn find_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<&'a HeaderValue> {
    /// Up to this many values, a scan beats a hashed lookup of a name of twenty-odd bytes.
    const SCAN_UP_TO: usize = 8;
    if headers.len() > SCAN_UP_TO {
        return headers.get(name);
    }
    headers
        .iter()
        .find_map(|(candidate, value)| (candidate == name).then_some(value))
}

/// Whether a header is one of the standard credential headers. (A full secret-name check costs
/// more than the sharing saves; other credentials are copied as any value is, and marked
/// sensitive they are left too.)
fn is_credential(name: &HeaderName) -> bool {
    *name == header::AUTHORIZATION
        || *name == header::PROXY_AUTHORIZATION
        || *name == header::COOKIE
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
    let shared = BUFFER
        .try_with(|buffer| append(&mut buffer.borrow_mut(), &text, UUID_LEN * IDS_PER_BUFFER));
    // A thread whose locals are being torn down gets a value of its own.
    let bytes = shared.unwrap_or_else(|_| bytes::Bytes::copy_from_slice(&text));
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
    fn small_values_move_into_one_buffer_and_credentials_keep_their_own() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str("Bearer sk-test").unwrap(),
        );
        let mut key = HeaderValue::from_str("sk-ant-1").unwrap();
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        headers.insert(
            "content-type",
            HeaderValue::from_str("application/json").unwrap(),
        );
        headers.append("accept", HeaderValue::from_str("application/json").unwrap());
        headers.append("accept", HeaderValue::from_str("text/plain").unwrap());
        let long = "x".repeat(SHARED_VALUE_MAX + 1);
        headers.insert("x-long", HeaderValue::from_str(&long).unwrap());
        let id = uuid_header_value(uuid::Uuid::from_u128(7)).unwrap();
        headers.insert("x-request-id", id.clone());
        let before = headers.clone();
        let at = |headers: &HeaderMap, name: &str| headers[name].as_bytes().as_ptr();
        let left = ["authorization", "x-api-key", "x-long", "x-request-id"]
            .map(|name| (name, at(&headers, name)));
        let content_type = at(&headers, "content-type");

        share_values(&mut headers, &[Some(&id)]);

        assert_eq!(
            headers, before,
            "the same names and values, in the same order"
        );
        assert!(headers["x-api-key"].is_sensitive());
        for (name, was) in left {
            assert_eq!(at(&headers, name), was, "{name} keeps its own bytes");
        }
        assert_ne!(at(&headers, "content-type"), content_type, "moved");
        let accept: Vec<_> = headers.get_all("accept").iter().collect();
        let content_type = headers["content-type"].as_bytes();
        assert_eq!(
            accept[0].as_bytes().as_ptr(),
            content_type.as_ptr().wrapping_add(content_type.len()),
            "written one after the other into the same buffer"
        );
        assert_eq!(
            accept[1].as_bytes().as_ptr(),
            accept[0].as_bytes().as_ptr().wrapping_add(accept[0].len()),
        );
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

    #[test]
    fn finding_a_header_finds_what_a_lookup_finds_in_maps_of_every_size() {
        let names = [
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
            header::CONTENT_TYPE,
            HeaderName::from_static("x-absent"),
        ];
        for size in 0..14usize {
            let mut headers = HeaderMap::new();
            for i in 0..size {
                // Custom and standard names, a name repeated with several values, and the
                // sought names at every position.
                let name = match i % 5 {
                    0 => names[i / 5 % 3].clone(),
                    1 => header::ACCEPT,
                    2 => HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
                    3 => names[(i / 5 + 1) % 3].clone(),
                    _ => header::VARY,
                };
                headers.append(name, HeaderValue::from_str(&format!("value {i}")).unwrap());
            }
            for name in &names {
                assert_eq!(
                    find_header(&headers, name),
                    headers.get(name),
                    "{size} {name}"
                );
            }
        }
    }
}
