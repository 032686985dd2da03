//! Reads the fields that matter out of a provider's JSON error body, whatever its envelope.
//!
//! One pass over the bytes with a hand-written serde visitor: field names and values that need no
//! unescaping are borrowed from the body, every field that is not listed here is skipped without
//! being built, and a field of an unexpected type is ignored instead of failing the parse. This is
//! what makes it several times cheaper than building a `serde_json::Value` and looking fields up.
//!
//! Shapes understood (sources are cited beside the code tables in `providers.rs`):
//!
//! | shape | providers |
//! | --- | --- |
//! | `{"error":{"code","message","type","param"}}` | OpenAI, Azure OpenAI (`innererror.code`), Groq, DeepSeek, Together, Mistral (v1), seeds 000/001/004 |
//! | `{"type":"error","error":{"type","message"},"request_id"}` | Anthropic (`error.details.error_code` too) |
//! | `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[…RetryInfo…]}}`, also wrapped in `[…]` | Google Gemini / Vertex (google.rpc.Status) |
//! | `{"error":{"code":402,"message","metadata"}}` | OpenRouter |
//! | `{"success":false,"data":null,"error":{"code","message","details"}}` | seed 002 |
//! | `{"code":130005,"msg":"…"}` | seed 003 |
//! | `{"detail":"…"}`, `{"detail":[{"loc","msg","type"}]}`, `{"detail","error_type"}` | FastAPI-style: fal, seed 004, Replicate |
//! | `{"type","title","status","detail","instance"}` | RFC 9457 problem+json, Replicate |
//! | `{"object":"error","message","type","code"}`, `{"message":"…"}` | Mistral, Cohere, AWS Bedrock |
//! | `{"id","name","errors":[…]}` | Stability AI |
//! | `{"error":"…","estimated_time":20.0}` | Hugging Face Inference |

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON scalar as a provider wrote it; objects and arrays are skipped and become `Other`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Null,
    Other,
}

impl<'a> Scalar<'a> {
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Integer(n) => Some(*n as f64),
            Scalar::Float(n) => Some(*n),
            Scalar::Text(text) => trimmed(text).parse().ok(),
            _ => None,
        }
    }

    /// Whether the value is present and says something (not null, false, empty or zero-length).
    fn is_meaningful(&self) -> bool {
        match self {
            Scalar::Text(text) => !text.is_empty(),
            Scalar::Null | Scalar::Bool(false) => false,
            _ => true,
        }
    }
}

/// The fields of an error body that classification reads. Every field is optional.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    /// `error.code`: a string (`insufficient_quota`) or a number (Google's and OpenRouter's HTTP-like code).
    pub(crate) error_code: Option<Scalar<'a>>,
    /// `error.type` (OpenAI's and Anthropic's type).
    pub(crate) error_type: Option<Cow<'a, str>>,
    /// `error.status` (Google's canonical status, `RESOURCE_EXHAUSTED`).
    pub(crate) error_status: Option<Cow<'a, str>>,
    /// `error.message` (or `error.msg`).
    pub(crate) error_message: Option<Cow<'a, str>>,
    /// `error.innererror.code` (Azure OpenAI's `ResponsibleAIPolicyViolation`).
    pub(crate) inner_code: Option<Cow<'a, str>>,
    /// `error.details.error_code` (Anthropic's `enforced_spend_limit_reached`).
    pub(crate) details_code: Option<Cow<'a, str>>,
    /// The first `reason` in `error.details` (Google's ErrorInfo, `API_KEY_INVALID`).
    pub(crate) reason: Option<Cow<'a, str>>,
    /// The first `retryDelay` in `error.details` (Google's RetryInfo, `"34s"`).
    pub(crate) retry_delay: Option<Cow<'a, str>>,
    /// `error.metadata` carries OpenRouter's moderation verdict (`flagged_input`, `reasons`).
    pub(crate) moderation_flagged: bool,
    /// `error` is present and is neither null, false nor empty.
    pub(crate) error_present: bool,
    /// `error` as text (Hugging Face, Replicate), or the first text of an `error` array.
    pub(crate) error_text: Option<Cow<'a, str>>,
    /// Top-level `code`: seed 003's business code, or a string code.
    pub(crate) code: Option<Scalar<'a>>,
    /// Top-level `error_type` (fal's request errors).
    pub(crate) error_type_field: Option<Cow<'a, str>>,
    /// Top-level `name` (Stability AI's error name).
    pub(crate) name: Option<Cow<'a, str>>,
    /// Top-level `error_code` (Baidu Qianfan's classic API: `17`, under HTTP 200), or MiniMax's
    /// `base_resp.status_code`.
    pub(crate) top_error_code: Option<Scalar<'a>>,
    /// Top-level `__type` (AWS JSON services: `ThrottlingException`, possibly namespaced).
    pub(crate) aws_type: Option<Cow<'a, str>>,
    /// Top-level `message`.
    pub(crate) message: Option<Cow<'a, str>>,
    /// Top-level `msg` (seed 003).
    pub(crate) msg: Option<Cow<'a, str>>,
    /// Top-level `title` (problem+json).
    pub(crate) title: Option<Cow<'a, str>>,
    /// `detail` as text (problem+json, FastAPI, fal, seed 004).
    pub(crate) detail_text: Option<Cow<'a, str>>,
    /// The first `detail[].type` (fal's and FastAPI's typed errors), or `detail.status`
    /// (ElevenLabs).
    pub(crate) detail_type: Option<Cow<'a, str>>,
    /// The first `detail[].msg`.
    pub(crate) detail_msg: Option<Cow<'a, str>>,
    /// The first text of `errors` (Stability AI), or the first `errors[].message`.
    pub(crate) errors_first: Option<Cow<'a, str>>,
    /// Top-level `success` (seed 002, seed 000's callbacks).
    pub(crate) success: Option<bool>,
    /// Top-level `estimated_time` in seconds (Hugging Face's model loading).
    pub(crate) estimated_time: Option<f64>,
    /// `retry_after` in seconds, at the top level or inside `error`.
    pub(crate) retry_after: Option<f64>,
    /// The best trace id field found: its rank (lower is better), name and value.
    pub(crate) trace: Option<TraceField<'a>>,
}

/// A trace id found in the body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TraceField<'a> {
    pub(crate) rank: usize,
    pub(crate) field: Cow<'a, str>,
    pub(crate) value: Cow<'a, str>,
}

/// Body fields that carry a trace id, best first, after the caller's own.
pub(crate) const DEFAULT_TRACE_FIELDS: &[&str] = &[
    "trace_id",
    "request_id",
    "requestId",
    "traceId",
    "x_request_id",
    // Tencent Cloud API 3.0 and Alibaba Cloud's POP APIs.
    "RequestId",
    "id",
];

/// Whether `body` has an object key for which `wanted` holds, or a key written with escapes
/// (which could spell any name).
///
/// Reads only the strings of the body, jumping between quotes: a key is a string followed by
/// `:`. Several times cheaper than [`parse_into`], and exact on valid JSON; on anything else it
/// finds nothing, so the answer cannot change a classification.
pub(crate) fn has_key(body: &[u8], mut wanted: impl FnMut(&[u8]) -> bool) -> bool {
    let mut at = 0;
    // Between strings: the next quote opens one.
    while let Some(open) = find_quote(body, at, false) {
        let start = open + 1;
        let mut end = start;
        let mut escaped = false;
        // The closing quote is the first one no backslash escapes.
        loop {
            let Some(i) = find_quote(body, end, true) else {
                return false;
            };
            if body[i] == b'"' {
                end = i;
                break;
            }
            escaped = true;
            end = i + 2;
        }
        // A string followed by blanks and a colon is a key.
        at = end + 1;
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        if body.get(at) == Some(&b':') && (escaped || wanted(&body[start..end])) {
            return true;
        }
    }
    false
}

/// The index of the first quote from `from` on, or of the first quote or backslash when
/// `or_backslash` (inside a string).
///
/// Most strings and gaps of a JSON body are a few bytes long, where a plain loop beats
/// `memchr`'s set-up; a long one (a base64 image, an embedding) is handed to `memchr` after
/// the first [`SHORT_RUN`] bytes.
#[inline(always)]
fn find_quote(body: &[u8], from: usize, or_backslash: bool) -> Option<usize> {
    let short_end = body.len().min(from.saturating_add(SHORT_RUN));
    let mut i = from;
    while i < short_end {
        let b = body[i];
        if b == b'"' || (or_backslash && b == b'\\') {
            return Some(i);
        }
        i += 1;
    }
    let long = body.get(short_end..)?;
    let found = if or_backslash {
        memchr::memchr2(b'"', b'\\', long)
    } else {
        memchr::memchr(b'"', long)
    };
    found.map(|i| short_end + i)
}

/// How many bytes [`find_quote`] reads one by one before it hands the rest to `memchr`.
const SHORT_RUN: usize = 24;

/// `text` without leading and trailing whitespace, as [`str::trim`]; a text that starts and
/// ends with a visible ASCII character (almost every code and message) is returned without
/// decoding a character.
pub(crate) fn trimmed(text: &str) -> &str {
    let visible = |b: &u8| *b > b' ' && *b < 0x80;
    match text.as_bytes() {
        [first, .., last] if visible(first) && visible(last) => text,
        [only] if visible(only) => text,
        _ => text.trim(),
    }
}

/// Whether `body` starts (after blanks) as a JSON object or array does: [`parse_into`] finds
/// nothing in any other body.
pub(crate) fn may_be_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|first| matches!(first, b'{' | b'['))
}

/// Parses `body` as one of the known envelopes, into `envelope` (which should be empty).
///
/// `extra_trace_fields` are looked for before [`DEFAULT_TRACE_FIELDS`]. Returns false, leaving
/// `envelope` to be ignored, when the body is not a JSON object (or an array whose first element
/// is one): an HTML page, plain text, an empty or truncated body. Filled in place: the envelope
/// is large, and moving it costs more than the parse of a short body.
pub(crate) fn parse_into<'a>(
    body: &'a [u8],
    extra_trace_fields: &[Arc<str>],
    envelope: &mut Envelope<'a>,
) -> bool {
    if !may_be_json(body) {
        return false;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let is_object = TopSeed {
        env: envelope,
        extra: extra_trace_fields,
    }
    .deserialize(&mut deserializer);
    matches!(is_object, Ok(true)) && deserializer.end().is_ok()
}

/// [`parse_into`] a new envelope.
#[cfg(test)]
pub(crate) fn parse<'a>(body: &'a [u8], extra_trace_fields: &[Arc<str>]) -> Option<Envelope<'a>> {
    let mut envelope = Envelope::default();
    parse_into(body, extra_trace_fields, &mut envelope).then_some(envelope)
}

impl<'a> Envelope<'a> {
    fn offer_trace(&mut self, extra: &[Arc<str>], field: Key<'a>, value: Scalar<'a>) {
        let Some(rank) = trace_rank(extra, &field) else {
            return;
        };
        // A known name, so valid UTF-8.
        let Some(field) = key_text(field) else {
            return;
        };
        let value = match value {
            Scalar::Text(text) if !trimmed(&text).is_empty() => text,
            Scalar::Integer(n) => Cow::Owned(n.to_string()),
            _ => return,
        };
        if self.trace.as_ref().is_none_or(|best| rank < best.rank) {
            self.trace = Some(TraceField { rank, field, value });
        }
    }
}

fn trace_rank(extra: &[Arc<str>], field: &[u8]) -> Option<usize> {
    if let Some(i) = extra.iter().position(|f| f.as_bytes() == field) {
        return Some(i);
    }
    DEFAULT_TRACE_FIELDS
        .iter()
        .position(|f| f.as_bytes() == field)
        .map(|i| extra.len() + i)
}

/// Visitor methods that accept a JSON scalar and do nothing with it, so that a field of an
/// unexpected type is skipped rather than failing the whole parse.
macro_rules! ignore_scalars {
    (numbers) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    };
    () => {
        ignore_scalars!(numbers);
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
    };
    (str) => {
        ignore_scalars!();
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
    };
    // An object's visitor: a list or any scalar in its place is skipped.
    (all_but_objects) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(())
        }
        ignore_scalars!(str);
    };
}

/// `DeserializeSeed` for a visitor that fills the envelope: hand the whole value to the visitor.
macro_rules! seed_by_visitor {
    ($seed:ident, extra) => {
        impl<'de> DeserializeSeed<'de> for $seed<'_, 'de, '_> {
            type Value = ();

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
                deserializer.deserialize_any(self)
            }
        }
    };
    ($seed:ident) => {
        impl<'de> DeserializeSeed<'de> for $seed<'_, 'de> {
            type Value = ();

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
                deserializer.deserialize_any(self)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Visitors. Each one accepts any JSON type: what it does not expect is skipped, never an error.
// ---------------------------------------------------------------------------------------------

fn first_set<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Integer))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// An object key's bytes, borrowed when it needs no unescaping. Keys are compared as bytes:
/// reading them as text would check each one is UTF-8, and almost every key is skipped. So a
/// key with a raw control character or bytes that are not UTF-8 (which JSON does not allow)
/// no longer makes the whole body unreadable: it matches no known key and its value is skipped.
/// Values are still read strictly.
type Key<'de> = Cow<'de, [u8]>;

/// A key read as a field name (a trace-id field), if it is UTF-8.
fn key_text(key: Key<'_>) -> Option<Cow<'_, str>> {
    match key {
        Cow::Borrowed(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        Cow::Owned(bytes) => String::from_utf8(bytes).ok().map(Cow::Owned),
    }
}

fn next_key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Key<'de>>, A::Error> {
    map.next_key_seed(KeySeed)
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_vec()))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v.as_bytes()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.as_bytes().to_vec()))
    }
}

/// A value read as text: a string, or `None` for any other value (skipped).
fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Cow<'de, str>>, A::Error> {
    map.next_value_seed(TextSeed)
}

struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

/// The whole body: an object, or an array whose first object is the envelope (Gemini's batch
/// form). Answers whether it was one.
struct TopSeed<'e, 'de, 'r> {
    env: &'e mut Envelope<'de>,
    extra: &'r [Arc<str>],
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let env = self.env;
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"error" => map.next_value_seed(ErrorSeed {
                    env: &mut *env,
                    extra: self.extra,
                })?,
                b"code" => first_set(&mut env.code, Some(map.next_value_seed(ScalarSeed)?)),
                b"error_type" => first_set(&mut env.error_type_field, text(&mut map)?),
                b"name" => first_set(&mut env.name, text(&mut map)?),
                b"__type" => first_set(&mut env.aws_type, text(&mut map)?),
                b"error_code" => first_set(
                    &mut env.top_error_code,
                    Some(map.next_value_seed(ScalarSeed)?),
                ),
                b"error_msg" => first_set(&mut env.msg, text(&mut map)?),
                b"base_resp" => map.next_value_seed(BaseRespSeed { env: &mut *env })?,
                b"message" => first_set(&mut env.message, text(&mut map)?),
                b"msg" => first_set(&mut env.msg, text(&mut map)?),
                b"title" => first_set(&mut env.title, text(&mut map)?),
                b"detail" => map.next_value_seed(TextsSeed {
                    text: &mut env.detail_text,
                    message: Some(&mut env.detail_msg),
                    kind: Some(&mut env.detail_type),
                })?,
                b"errors" => map.next_value_seed(ErrorsSeed {
                    env: &mut *env,
                    extra: self.extra,
                })?,
                b"Response" => map.next_value_seed(TencentResponseSeed {
                    env: &mut *env,
                    extra: self.extra,
                })?,
                b"success" => {
                    if let Scalar::Bool(b) = map.next_value_seed(ScalarSeed)? {
                        env.success = Some(b);
                    }
                }
                b"estimated_time" => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    first_set(&mut env.estimated_time, value.as_f64());
                }
                b"retry_after" => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    first_set(&mut env.retry_after, value.as_f64());
                }
                _ if trace_rank(self.extra, &key).is_some() => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    env.offer_trace(self.extra, key, value);
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let first = seq.next_element_seed(TopSeed {
            env: self.env,
            extra: self.extra,
        })?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first.unwrap_or(false))
    }

    // Any other top-level value is not an envelope.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(false)
    }
}

/// The value of `error`: an object (most providers), a text (Hugging Face), or an array of either.
struct ErrorSeed<'e, 'de, 'r> {
    env: &'e mut Envelope<'de>,
    extra: &'r [Arc<str>],
}

seed_by_visitor!(ErrorSeed, extra);

impl<'de> Visitor<'de> for ErrorSeed<'_, 'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error object or text")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let env = self.env;
        let mut any = false;
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"code" => {
                    let code = map.next_value_seed(ScalarSeed)?;
                    any |= code.is_meaningful();
                    first_set(&mut env.error_code, Some(code));
                }
                b"type" => first_set(&mut env.error_type, text(&mut map)?),
                b"status" => first_set(&mut env.error_status, text(&mut map)?),
                b"message" | b"msg" => first_set(&mut env.error_message, text(&mut map)?),
                b"details" => map.next_value_seed(DetailsSeed { env: &mut *env })?,
                b"innererror" => map.next_value_seed(InnerErrorSeed { env: &mut *env })?,
                b"metadata" => map.next_value_seed(MetadataSeed { env: &mut *env })?,
                b"retry_after" => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    first_set(&mut env.retry_after, value.as_f64());
                }
                _ if trace_rank(self.extra, &key).is_some() => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    env.offer_trace(self.extra, key, value);
                }
                _ => skip(&mut map)?,
            }
        }
        any |= env.error_type.is_some() || env.error_message.is_some();
        env.error_present |= any;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element_seed(ScalarSeed)? {
            if self.env.error_text.is_none() {
                if let Some(text) = item.into_text().filter(|t| !t.is_empty()) {
                    self.env.error_text = Some(text);
                    self.env.error_present = true;
                }
            }
        }
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.take_text(Cow::Borrowed(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.take_text(Cow::Owned(v.to_owned()));
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.env.error_present |= v;
        Ok(())
    }
    ignore_scalars!(numbers);
}

impl<'de> ErrorSeed<'_, 'de, '_> {
    fn take_text(self, text: Cow<'de, str>) {
        if !text.is_empty() {
            self.env.error_present = true;
            first_set(&mut self.env.error_text, Some(text));
        }
    }
}

/// The top-level `errors`: Stability AI's list of texts, a list of `{message}` objects, or one
/// error object (ModelScope: `{"errors":{"message":…,"request_id":…}}`), read as `error` is.
struct ErrorsSeed<'e, 'de, 'r> {
    env: &'e mut Envelope<'de>,
    extra: &'r [Arc<str>],
}

seed_by_visitor!(ErrorsSeed, extra);

impl<'de> Visitor<'de> for ErrorsSeed<'_, 'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("errors: a text, an error object or a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        ErrorSeed {
            env: self.env,
            extra: self.extra,
        }
        .visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.texts().visit_seq(seq)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.texts().visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.texts().visit_str(v)
    }
    ignore_scalars!();
}

impl<'e, 'de> ErrorsSeed<'e, 'de, '_> {
    fn texts(self) -> TextsSeed<'e, 'de> {
        TextsSeed {
            text: &mut self.env.errors_first,
            message: None,
            kind: None,
        }
    }
}

/// Tencent Cloud API 3.0's `Response`, under HTTP 200: a failure carries
/// `Error: {Code, Message}`; every answer carries `RequestId`.
struct TencentResponseSeed<'e, 'de, 'r> {
    env: &'e mut Envelope<'de>,
    extra: &'r [Arc<str>],
}

seed_by_visitor!(TencentResponseSeed, extra);

impl<'de> Visitor<'de> for TencentResponseSeed<'_, 'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Tencent Cloud Response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let env = self.env;
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"Error" => map.next_value_seed(TencentErrorSeed { env: &mut *env })?,
                _ if trace_rank(self.extra, &key).is_some() => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    env.offer_trace(self.extra, key, value);
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }
    ignore_scalars!(all_but_objects);
}

/// Tencent Cloud's `Response.Error`: `Code` (`AuthFailure.SignatureFailure`) and `Message`.
struct TencentErrorSeed<'e, 'de> {
    env: &'e mut Envelope<'de>,
}

seed_by_visitor!(TencentErrorSeed);

impl<'de> Visitor<'de> for TencentErrorSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Tencent Cloud Error object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"Code" => {
                    let code = map.next_value_seed(ScalarSeed)?;
                    self.env.error_present |= code.is_meaningful();
                    first_set(&mut self.env.error_code, Some(code));
                }
                b"Message" => first_set(&mut self.env.error_message, text(&mut map)?),
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }
    ignore_scalars!(all_but_objects);
}

/// `error.details`: Anthropic's object with `error_code`, or Google's array of typed details.
struct DetailsSeed<'e, 'de> {
    env: &'e mut Envelope<'de>,
}

seed_by_visitor!(DetailsSeed);

impl<'de> Visitor<'de> for DetailsSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("error details")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"error_code" => first_set(&mut self.env.details_code, text(&mut map)?),
                b"reason" => first_set(&mut self.env.reason, text(&mut map)?),
                b"retryDelay" => first_set(&mut self.env.retry_delay, text(&mut map)?),
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(DetailsSeed {
                env: &mut *self.env,
            })?
            .is_some()
        {}
        Ok(())
    }

    ignore_scalars!(str);
}

/// `error.innererror` (Azure OpenAI).
struct InnerErrorSeed<'e, 'de> {
    env: &'e mut Envelope<'de>,
}

seed_by_visitor!(InnerErrorSeed);

impl<'de> Visitor<'de> for InnerErrorSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inner error")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"code" => first_set(&mut self.env.inner_code, text(&mut map)?),
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }
    ignore_scalars!(all_but_objects);
}

/// `base_resp` (MiniMax's native API, under HTTP 200): `status_code` is a business code (0 on
/// success) and `status_msg` its message.
struct BaseRespSeed<'e, 'de> {
    env: &'e mut Envelope<'de>,
}

seed_by_visitor!(BaseRespSeed);

impl<'de> Visitor<'de> for BaseRespSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base_resp object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = next_key(&mut map)? {
            match &*key {
                b"status_code" => first_set(
                    &mut self.env.top_error_code,
                    Some(map.next_value_seed(ScalarSeed)?),
                ),
                b"status_msg" => first_set(&mut self.env.msg, text(&mut map)?),
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }
    ignore_scalars!(all_but_objects);
}

/// `error.metadata` (OpenRouter): flagged when it names a moderation verdict.
struct MetadataSeed<'e, 'de> {
    env: &'e mut Envelope<'de>,
}

seed_by_visitor!(MetadataSeed);

impl<'de> Visitor<'de> for MetadataSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("error metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = next_key(&mut map)? {
            if matches!(&*key, b"flagged_input" | b"reasons") {
                self.env.moderation_flagged = true;
            }
            skip(&mut map)?;
        }
        Ok(())
    }
    ignore_scalars!(all_but_objects);
}

/// A text, an object with text fields, or an array of either, keeping the first of each: the
/// top-level `detail` (text, or FastAPI's `[{loc, msg, type}]`) and `errors` (Stability AI's
/// texts, or `[{message}]`).
struct TextsSeed<'f, 'de> {
    /// Where a bare text goes, and an object's message when `message` is `None`.
    text: &'f mut Option<Cow<'de, str>>,
    /// Where an object's `msg` or `message` goes.
    message: Option<&'f mut Option<Cow<'de, str>>>,
    /// Where an object's `type` goes.
    kind: Option<&'f mut Option<Cow<'de, str>>>,
}

seed_by_visitor!(TextsSeed);

impl<'de> Visitor<'de> for TextsSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text, an object or a list")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        first_set(self.text, Some(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        first_set(self.text, Some(Cow::Owned(v.to_owned())));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = next_key(&mut map)? {
            let slot = match &*key {
                b"msg" | b"message" => Some(self.message.as_deref_mut().unwrap_or(&mut *self.text)),
                // FastAPI's `type`; ElevenLabs' `{"detail":{"status":…,"message":…}}`.
                b"type" | b"status" => self.kind.as_deref_mut(),
                _ => None,
            };
            match slot {
                Some(slot) => first_set(slot, text(&mut map)?),
                None => skip(&mut map)?,
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(TextsSeed {
                text: &mut *self.text,
                message: self.message.as_deref_mut(),
                kind: self.kind.as_deref_mut(),
            })?
            .is_some()
        {}
        Ok(())
    }
    ignore_scalars!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_and_values_are_not() {
        let wants_code = |body: &str| has_key(body.as_bytes(), |key| key == b"code");
        assert!(wants_code(r#"{"code":130005,"msg":"m"}"#));
        assert!(
            wants_code(r#"{"data": {"code" : 0}}"#),
            "nested, spaces before the colon"
        );
        assert!(wants_code("[{\"code\"\n:1}]"));
        assert!(
            !wants_code(r#"{"type":"code","text":"\"code\": 1"}"#),
            "values only"
        );
        assert!(!wants_code(r#"{"id":"img_1","url":"https://cdn/1.png"}"#));
        assert!(!wants_code(""));
        assert!(
            !wants_code(r#"{"code"#),
            "unterminated: not JSON, nothing to parse"
        );
        assert!(!wants_code("{\"a\\"), "a trailing backslash ends the scan");
        // An escaped key could spell any name, so it counts.
        assert!(wants_code(r#"{"c\u006fde":1}"#));
        assert!(wants_code(r#"{"x\"y":1}"#));

        // Strings and gaps longer than the byte-by-byte run, where `memchr` takes over, and a
        // long run of blanks before a colon.
        let long = "x".repeat(100);
        assert!(wants_code(&format!(r#"{{"image":"{long}","code":1}}"#)));
        assert!(wants_code(&format!(
            r#"{{"image":"{long}\"{long}","code":1}}"#
        )));
        assert!(!wants_code(&format!(r#"{{"image":"{long}\"code\":1"}}"#)));
        assert!(wants_code(&format!(
            r#"{{"v":[{}],"code":1}}"#,
            "1,".repeat(60) + "1"
        )));
        assert!(wants_code(&format!(
            r#"{{"v":1,"code"{}:1}}"#,
            " ".repeat(60)
        )));
        assert!(!wants_code(&format!(r#"{{"{long}":1}}"#)));
    }

    fn env(body: &str) -> Envelope<'_> {
        parse(body.as_bytes(), &[]).expect("an envelope")
    }

    #[test]
    fn a_key_no_json_string_can_hold_is_skipped_and_escaped_keys_are_read() {
        for body in [
            &b"{\"a\x01\":1,\"error\":\"x\"}"[..],
            &b"{\"a\xff\":1,\"error\":\"x\"}"[..],
            &br#"{"a\ud800":1,"error":"x"}"#[..],
        ] {
            let e = parse(body, &[]).expect("read as an envelope");
            assert!(e.error_present, "{:?}", String::from_utf8_lossy(body));
        }
        // A value no JSON string can hold still makes the body unreadable.
        assert!(parse(b"{\"error\":\"a\x01\"}", &[]).is_none());
        let e = env(r#"{"\u0065rror":{"code":"x"},"caf\u00e9":1}"#);
        assert!(e.error_present);
        assert!(matches!(e.error_code, Some(Scalar::Text(ref c)) if c == "x"));
    }

    #[test]
    fn non_json_bodies_are_not_envelopes() {
        for body in [
            "",
            "   ",
            "<html>502 Bad Gateway</html>",
            "upstream connect error",
            "42",
            "\"x\"",
            "null",
            "{\"error\":",
        ] {
            assert!(parse(body.as_bytes(), &[]).is_none(), "{body:?}");
        }
    }

    #[test]
    fn nested_error_object_is_read() {
        let e =
            env(r#"{"error":{"message":"m","type":"t","param":null,"code":"c"},"trace_id":"abc"}"#);
        assert_eq!(e.error_code, Some(Scalar::Text("c".into())));
        assert_eq!(e.error_type.as_deref(), Some("t"));
        assert_eq!(e.error_message.as_deref(), Some("m"));
        assert!(e.error_present);
        let trace = e.trace.unwrap();
        assert_eq!((&*trace.field, &*trace.value), ("trace_id", "abc"));
    }

    #[test]
    fn google_status_details_and_array_wrapper_are_read() {
        let body = r#"[{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED","details":[
            {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","metadata":{"a":"b"}},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}]"#;
        let e = env(body);
        assert_eq!(e.error_code, Some(Scalar::Integer(429)));
        assert_eq!(e.error_status.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert_eq!(e.reason.as_deref(), Some("RATE_LIMIT_EXCEEDED"));
        assert_eq!(e.retry_delay.as_deref(), Some("34s"));
    }

    #[test]
    fn unexpected_types_are_ignored_not_fatal() {
        let e = env(
            r#"{"error":{"type":42,"message":{"nested":true},"code":[1,2]},"msg":7,"success":"no","trace_id":{"x":1}}"#,
        );
        assert_eq!(e.error_type, None);
        assert_eq!(e.error_message, None);
        assert_eq!(e.error_code, Some(Scalar::Other));
        assert_eq!(e.success, None);
        assert_eq!(e.trace, None);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let e = env(r#"{"detail":"quote \" and \u00e9"}"#);
        assert_eq!(e.detail_text.as_deref(), Some("quote \" and é"));
    }

    proptest::proptest! {
        #[test]
        fn trimmed_is_trim(text in "\\PC{0,6}|[ \t\u{b}\u{85}\u{a0}\u{3000}]{0,2}[a-z_]{0,4}[ \u{b}\u{a0}]{0,2}") {
            proptest::prop_assert_eq!(trimmed(&text), text.trim());
        }
    }

    #[test]
    fn caller_trace_fields_rank_first() {
        let extra: Vec<Arc<str>> = vec!["job_ref".into()];
        let e = parse(br#"{"request_id":"r","job_ref":"j"}"#, &extra).unwrap();
        assert_eq!(&*e.trace.unwrap().value, "j");
    }

    #[test]
    fn null_error_is_not_a_failure_marker() {
        let e = env(r#"{"success":true,"data":{"x":1},"error":null}"#);
        assert!(!e.error_present);
        assert_eq!(e.success, Some(true));
    }
}
