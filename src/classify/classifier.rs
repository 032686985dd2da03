//! The rules that turn a status, headers and a body into a [`Classification`].

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::classification::Message;
use super::envelope::{self, trimmed, Envelope, Scalar};
use super::providers;
use super::{BodyRead, Classification, DecidedBy, ErrorKind, ProviderCode, RetryVerdict};
use crate::duration_text::{parse_go_duration, seconds_to_duration};
use crate::ids::{TraceId, TraceIdSource};

/// Reads responses into [`Classification`]s: the provider tables of this crate plus any rules a
/// caller adds.
///
/// # Precedence
///
/// The most specific signal decides; [`Classification::decided_by`] names it.
///
/// 1. A specific provider code that a rule knows, in the body or a code header; the most
///    specific is tried first (Anthropic's `error.details.error_code`, Google's
///    `ErrorInfo.reason`, Azure's `innererror.code`, then `error.code`, `error.type`,
///    `error.status`, a top-level `code`, `error_type`, `name`, `detail[].type`, then the
///    `x-amzn-errortype` and `x-fal-error-type` headers). A dotted code unknown as a whole
///    (`AuthFailure.SignatureFailure`) is read by its family (`AuthFailure`).
/// 2. A phrase of the message, under the statuses it applies to (`credit balance is too low`,
///    `余额不足`, `server is busy`, `location is not supported`).
/// 3. The HTTP status ([`ErrorKind::from_status`]).
/// 4. A generic code (`invalid_request_error`, `server_error`, Google's `INVALID_ARGUMENT`).
/// 5. A numeric code that is an HTTP status (OpenRouter, Google), or a six-digit business code
///    whose first three digits are one (`402xxx`), read as that status.
///
/// A body that is not JSON (an HTML 502 page, plain text, empty) falls to the status.
///
/// # Failures under 2xx
///
/// A success status is read as a failure when its JSON body says so: `success: false`, a
/// non-empty `error` (object, text or `true`, but not a zero code), or a non-zero numeric
/// top-level `code` beside a `msg` or `message` (gateways that answer `{"code":130005,"msg":…}`
/// under HTTP 200). Such a failure whose code no rule
/// knows is [`ErrorKind::Unknown`].
///
/// # Example
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use http_resilience::classify::{BodyRead, Classifier, ErrorKind};
///
/// let classifier = Classifier::new()
///     .code("QUEUE_FULL", ErrorKind::Overloaded)
///     .trace_id_field("job_ref");
///
/// let body = br#"{"error":{"code":"QUEUE_FULL","message":"try later"},"job_ref":"j-42"}"#;
/// let c = classifier.classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), body, BodyRead::Complete);
/// assert_eq!(c.kind(), Some(ErrorKind::Overloaded));
/// assert_eq!(c.trace_id().unwrap().as_str(), "j-42");
/// ```
#[derive(Clone)]
pub struct Classifier {
    text_codes: HashMap<Box<str>, ErrorKind, CodeHash>,
    numeric_codes: HashMap<i64, ErrorKind, CodeHash>,
    message_phrases: PhraseTable,
    /// The headers read for a provider's code, in order.
    code_headers: KnownHeaders,
    /// The headers read for a trace id, best-ranked first.
    trace_id_headers: KnownHeaders,
    /// The caller's trace-id fields, best first; shared with the trace ids found in them.
    trace_id_fields: Vec<Arc<str>>,
}

/// Header names the classifier reads (the code headers, the trace-id headers), in the order
/// they are tried, with a filter that rules out most other headers of a response
/// (`content-type`, `date`, …) before their name is compared with every known one.
#[derive(Clone, Debug)]
struct KnownHeaders {
    names: Vec<HeaderName>,
    filter: NameFilter,
}

impl KnownHeaders {
    fn new(names: &[&'static str]) -> Self {
        let names: Vec<HeaderName> = names.iter().map(|n| HeaderName::from_static(n)).collect();
        let filter = NameFilter::of(&names);
        KnownHeaders { names, filter }
    }

    fn insert(&mut self, at: usize, name: HeaderName) {
        self.filter.insert(&name);
        self.names.insert(at, name);
    }

    /// The rank of `name` among the known names, if it is one; `bit` is its
    /// [`NameFilter::bit`].
    fn rank(&self, name: &HeaderName, bit: usize) -> Option<usize> {
        if !self.filter.holds_bit(bit) {
            return None;
        }
        self.names.iter().position(|known| known == name)
    }
}

/// A response with at most this many header names is read in one pass rather than looked up
/// name by name.
const SMALL_HEADER_MAP: usize = 16;

/// A code header's value as a code: AWS appends the documentation URL
/// (`ThrottlingException:http://…`); empty values are none.
fn usable_code(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let code = value.split(':').next().unwrap_or(value).trim();
    (!code.is_empty()).then_some(code)
}

/// The code headers of a response, found in one pass or looked up one by one.
enum HeaderCodes<'h> {
    Found(std::array::IntoIter<Option<(&'h HeaderName, &'h str)>, 4>),
    Looked(std::slice::Iter<'h, HeaderName>, &'h HeaderMap),
}

impl<'h> Iterator for HeaderCodes<'h> {
    type Item = (&'h HeaderName, &'h str);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HeaderCodes::Found(found) => found.find_map(|code| code),
            HeaderCodes::Looked(names, headers) => {
                names.find_map(|name| Some((name, usable_code(headers.get(name)?)?)))
            }
        }
    }
}

/// A set of header names as 256 bits, one per mix of a name's length and first and last
/// bytes: a name whose bit is clear is not in the set, found without comparing it with any
/// member. Most common response headers (`content-type`, `date`, `server`, the rate-limit
/// families) are ruled out this way for the trace-id names; a few pass and are compared.
#[derive(Clone, Copy, Debug, Default)]
struct NameFilter([u64; 4]);

impl NameFilter {
    fn of(names: &[HeaderName]) -> Self {
        let mut filter = NameFilter::default();
        for name in names {
            filter.insert(name);
        }
        filter
    }

    fn bit(name: &HeaderName) -> usize {
        let name = name.as_str().as_bytes();
        let (first, last) = match name {
            [first, .., last] => (*first, *last),
            [only] => (*only, *only),
            [] => (0, 0),
        };
        ((name.len() << 3) ^ usize::from(first) ^ (usize::from(last) << 1)) & 255
    }

    fn insert(&mut self, name: &HeaderName) {
        let bit = Self::bit(name);
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// Whether a name whose [`bit`](Self::bit) this is may be in the set.
    fn holds_bit(&self, bit: usize) -> bool {
        self.0[bit / 64] & 1 << (bit % 64) != 0
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("text_codes", &self.text_codes.len())
            .field("numeric_codes", &self.numeric_codes.len())
            .field("message_phrases", &self.message_phrases.rows.len())
            .field("code_headers", &self.code_headers.names)
            .field("trace_id_headers", &self.trace_id_headers.names)
            .field("trace_id_fields", &self.trace_id_fields)
            .finish()
    }
}

impl Classifier {
    /// A classifier with every provider table of this crate.
    pub fn new() -> Self {
        Classifier {
            text_codes: providers::TEXT_CODES
                .iter()
                .map(|(code, kind)| (Box::from(*code), *kind))
                .collect(),
            numeric_codes: providers::NUMERIC_CODES.iter().copied().collect(),
            message_phrases: PhraseTable::builtin(),
            code_headers: KnownHeaders::new(providers::CODE_HEADERS),
            trace_id_headers: KnownHeaders::new(providers::TRACE_ID_HEADERS),
            trace_id_fields: Vec::new(),
        }
    }

    /// A classifier with no provider tables: statuses, envelopes and the default trace id
    /// headers and fields only. Add the codes you need with [`code`](Self::code).
    pub fn empty() -> Self {
        Classifier {
            text_codes: HashMap::default(),
            numeric_codes: HashMap::default(),
            message_phrases: PhraseTable::new(Vec::new()),
            ..Classifier::new()
        }
    }

    /// Maps a provider code to a kind, replacing any rule for the same code.
    ///
    /// A text code is matched exactly, case included; a number matches a numeric code and a text
    /// code of the same digits.
    pub fn code(mut self, code: impl Into<ProviderCode>, kind: ErrorKind) -> Self {
        match code.into() {
            ProviderCode::Text(text) => {
                self.text_codes.insert(text.into_boxed_str(), kind);
            }
            ProviderCode::Number(n) => {
                self.numeric_codes.insert(n, kind);
            }
        }
        self
    }

    /// Maps a phrase in the message to a kind, under any status (matched ignoring ASCII case;
    /// it outranks the status and generic codes such as `invalid_request_error`, never a
    /// specific code). Later phrases are tried first.
    pub fn message_phrase(mut self, phrase: &str, kind: ErrorKind) -> Self {
        let mut rows = self.message_phrases.rows.to_vec();
        rows.insert(0, (phrase.to_ascii_lowercase().into_boxed_str(), kind, &[]));
        self.message_phrases = PhraseTable::new(rows);
        self
    }

    /// Reads the provider's code from this response header too (after the body's codes).
    pub fn code_header(mut self, name: HeaderName) -> Self {
        self.code_headers
            .insert(self.code_headers.names.len(), name);
        self
    }

    /// Looks for the trace id in this response header before the default ones.
    pub fn trace_id_header(mut self, name: HeaderName) -> Self {
        self.trace_id_headers.insert(0, name);
        self
    }

    /// Looks for the trace id in this body field (top level or inside `error`) before the
    /// default ones (`trace_id`, `request_id`, `requestId`, `traceId`, `x_request_id`, and `id`
    /// in failure bodies only: in a success body `id` names the resource, such as a task or
    /// an image). A field named here is read in every body.
    pub fn trace_id_field(mut self, name: impl Into<String>) -> Self {
        self.trace_id_fields.insert(0, Arc::from(name.into()));
        self
    }

    /// Classifies one response from its status, headers and as much of its body as was read.
    ///
    /// `body` is empty when `body_read` is [`BodyRead::NotRead`]. Never panics, whatever the bytes.
    pub fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        body_read: BodyRead,
    ) -> Classification {
        let status_kind = ErrorKind::from_status(status);
        if let Some(kind) = status_kind {
            if let Some(by_status) = self.classify_by_status(status, kind, headers, body, body_read)
            {
                return by_status;
            }
        }
        self.classify_read(status, status_kind, headers, body, body_read)
    }

    /// [`classify`](Self::classify) without its status-only path: reads the body's envelope
    /// or phrases, then every signal in order.
    fn classify_read(
        &self,
        status: StatusCode,
        status_kind: Option<ErrorKind>,
        headers: &HeaderMap,
        body: &[u8],
        body_read: BodyRead,
    ) -> Classification {
        let mut parsed = None;
        let envelope = match body_read {
            BodyRead::NotRead => None,
            // Most success bodies hold none of the keys a success is read for: skip the parse.
            _ if status_kind.is_none() && !self.success_body_may_say_more(body) => None,
            BodyRead::Complete | BodyRead::Prefix => {
                let slot = parsed.insert(Envelope::default());
                envelope::parse_into(body, &self.trace_id_fields, slot).then_some(&*slot)
            }
        };
        // A short plain-text failure body ("no healthy upstream") is read for its phrases; not
        // an HTML page.
        let plain = match (&envelope, status_kind) {
            (None, Some(_)) if may_be_plain_text(body) => body,
            _ => &[],
        };
        self.classify_envelope(status, status_kind, headers, envelope, plain, body_read)
    }

    /// A failure with nothing to read but its status and headers (an HTML page from a proxy,
    /// an empty body, a body not read): the status decides, and one pass over the headers
    /// finds the trace id. `None` when the body may hold an envelope or a phrase, a code
    /// header with a usable value is present, or the header map is large: then
    /// [`classify_envelope`](Self::classify_envelope) reads it all, and would find the same.
    fn classify_by_status(
        &self,
        status: StatusCode,
        kind: ErrorKind,
        headers: &HeaderMap,
        body: &[u8],
        body_read: BodyRead,
    ) -> Option<Classification> {
        let may_hold_envelope = body_read != BodyRead::NotRead && envelope::may_be_json(body);
        if may_hold_envelope || may_be_plain_text(body) || headers.keys_len() > SMALL_HEADER_MAP {
            return None;
        }
        let pass = self.header_pass(headers, true);
        if pass.code_header {
            return None;
        }
        Some(Classification {
            kind: Some(kind),
            status,
            code: None,
            message: None,
            trace_id: self.trace_id_of(pass.trace_id),
            wait_hint: None,
            body_read,
            decided_by: Some(DecidedBy::Status),
        })
    }

    /// Whether a success body has a key that classification reads in one: `success`, `error`
    /// (`errors`, Tencent Cloud's `Error`), a business `code`, or a trace-id field (the bare
    /// `id` only when the caller named it, as in [`body_trace_id`](Self::body_trace_id)).
    fn success_body_may_say_more(&self, body: &[u8]) -> bool {
        // Bit `n` set for every wanted key `n` bytes long: most keys of a success body (`id`,
        // `url`, `status`, `data`) are ruled out by one test.
        const WANTED_LENGTHS: u64 = {
            let mut mask = 0u64;
            let keys: [&str; 7] = [
                "success",
                "error",
                "errors",
                "Error",
                "code",
                "error_code",
                "base_resp",
            ];
            let mut i = 0;
            while i < keys.len() {
                mask |= 1 << keys[i].len();
                i += 1;
            }
            let mut i = 0;
            while i < envelope::DEFAULT_TRACE_FIELDS.len() {
                mask |= 1 << envelope::DEFAULT_TRACE_FIELDS[i].len();
                i += 1;
            }
            mask
        };
        let callers_fields = !self.trace_id_fields.is_empty();
        envelope::has_key(body, |key| {
            if !callers_fields && (key.len() > 63 || WANTED_LENGTHS & 1 << key.len() == 0) {
                return false;
            }
            matches!(
                key,
                b"success"
                    | b"error"
                    | b"errors"
                    | b"Error"
                    | b"code"
                    | b"error_code"
                    | b"base_resp"
            ) || self.trace_id_fields.iter().any(|f| f.as_bytes() == key)
                || (key != b"id"
                    && envelope::DEFAULT_TRACE_FIELDS
                        .iter()
                        .any(|f| f.as_bytes() == key))
        })
    }

    fn classify_envelope(
        &self,
        status: StatusCode,
        status_kind: Option<ErrorKind>,
        headers: &HeaderMap,
        envelope: Option<&Envelope<'_>>,
        plain: &[u8],
        body_read: BodyRead,
    ) -> Classification {
        let failed = status_kind.is_some() || envelope.is_some_and(says_failed);

        let mut classification = Classification {
            kind: None,
            status,
            code: None,
            message: None,
            trace_id: None,
            wait_hint: None,
            body_read,
            decided_by: None,
        };
        if !failed {
            classification.trace_id = self
                .header_trace_id(headers, true)
                .or_else(|| envelope.and_then(|env| self.body_trace_id(env, false)));
            return classification;
        }
        // The most specific signal decides: a specific code (body first, then headers), then a
        // phrase of the message, then the status, then a generic code (`invalid_request_error`,
        // `server_error`), then a number read as a status.
        let mut found = Found::default();
        let body = envelope.into_iter().flat_map(code_candidates);
        let mut done = false;
        for (field, candidate) in body {
            if found.consider(self.lookup(&candidate), Signal::Field(field), candidate) {
                done = true;
                break;
            }
        }
        if !done {
            for (name, code) in self.header_codes(headers) {
                let candidate = Candidate::Text(code);
                let by = Signal::Header(name);
                if found.consider(self.lookup(&candidate), by, candidate) {
                    break;
                }
            }
        }
        let Found {
            decided,
            generic,
            status_like: status_like_code,
            first,
        } = found;
        let message = envelope.and_then(message_of);
        let (kind, decided_by, code) = match decided {
            Some((kind, by, candidate)) => (kind, by.to_decided_by(), Some(candidate)),
            None => {
                let plain = || std::str::from_utf8(plain).ok().filter(|p| !p.is_empty());
                let phrase = message
                    .or_else(plain)
                    .and_then(|m| self.phrase_kind(m, status));
                // The code reported beside the kind: the most telling one found.
                let shown = generic.as_ref().map(|(_, _, c)| *c).or(first);
                match (phrase, status_kind, generic, status_like_code) {
                    (Some(kind), ..) => (kind, DecidedBy::Message, shown),
                    (None, Some(kind), ..) => (kind, DecidedBy::Status, shown),
                    (None, None, Some((kind, by, candidate)), _)
                    | (None, None, None, Some((kind, by, candidate))) => {
                        (kind, by.to_decided_by(), Some(candidate))
                    }
                    (None, None, None, None) => (ErrorKind::Unknown, DecidedBy::Status, first),
                }
            }
        };
        // A request larger than a per-minute limit can never pass it: Groq's 413 and OpenAI's
        // 429 "Request too large … on tokens per min" carry a rate-limit code, yet no wait helps.
        let too_large = |m: &str| contains_ignore_ascii_case(m, "request too large");
        let body_wait = envelope.and_then(body_wait_hint);
        let kind = match kind {
            // A quota message under a 429 with a stated wait (Gemini's per-minute free tier:
            // "You exceeded your current quota" with RetryInfo), or naming a per-minute window
            // (Cohere: "a Trial key, which is limited to 5 API calls / minute"), is a rate that
            // comes back, not a used-up quota.
            ErrorKind::QuotaExhausted
                if decided_by == DecidedBy::Message
                    && status == StatusCode::TOO_MANY_REQUESTS
                    && (body_wait.is_some() || message.is_some_and(names_short_window)) =>
            {
                ErrorKind::RateLimited
            }
            // Providers that answer their per-minute limit with OpenAI's words and code for a
            // used-up quota, told apart only by the documentation they link to.
            ErrorKind::QuotaExhausted
                if status == StatusCode::TOO_MANY_REQUESTS
                    && message.is_some_and(|m| {
                        providers::QUOTA_MEANS_RATE_DOCS
                            .iter()
                            .any(|doc| m.contains(doc))
                    }) =>
            {
                ErrorKind::RateLimited
            }
            ErrorKind::RateLimited
                if status == StatusCode::PAYLOAD_TOO_LARGE || message.is_some_and(too_large) =>
            {
                ErrorKind::PayloadTooLarge
            }
            kind => kind,
        };
        let (kind, decided_by) = match envelope {
            Some(env) if env.moderation_flagged => (
                ErrorKind::ContentPolicy,
                DecidedBy::BodyField("results.flagged"),
            ),
            _ => (kind, decided_by),
        };
        classification.decided_by = Some(decided_by);
        classification.kind = Some(kind);
        classification.code = code.map(Candidate::to_code);
        // Secret-named values in the message (`api_key=…`, `"token": "…"`) are masked when it is
        // first read; a key the server echoes bare is masked by the retry layer and the reqwest
        // adapter, which know the request's secrets.
        classification.message = message.map(Message::new);
        classification.trace_id = envelope
            .and_then(|env| self.body_trace_id(env, true))
            .or_else(|| self.header_trace_id(headers, false));
        // A wait stated only in the message ("try again in 20s") is the last resort.
        // Read only for a failure that is retried: no wait matters to one that is not.
        classification.wait_hint = body_wait.or_else(|| {
            (kind.default_verdict() != RetryVerdict::Never)
                .then(|| message.and_then(message_wait))
                .flatten()
        });
        classification
    }

    fn lookup(&self, candidate: &Candidate<'_>) -> Option<ErrorKind> {
        match candidate {
            Candidate::Text(text) => self
                .text_codes
                .get(*text)
                .copied()
                .or_else(|| {
                    let n: i64 = trimmed(text).parse().ok()?;
                    self.numeric_codes.get(&n).copied()
                })
                // A dotted code names its family first (Tencent Cloud's
                // `AuthFailure.SignatureFailure`, DashScope's `Throttling.RateQuota`): an
                // unlisted member means what its family means.
                .or_else(|| {
                    let (family, _) = text.split_once('.')?;
                    self.text_codes.get(family).copied()
                }),
            Candidate::Number(n) => self.numeric_codes.get(n).copied(),
        }
    }

    /// The kind the first phrase found in `message` means under `status`; no allocation.
    fn phrase_kind(&self, message: &str, status: StatusCode) -> Option<ErrorKind> {
        let status = status.as_u16();
        // A success status carries a failure only in a business envelope: read as 200.
        let status = if (200..300).contains(&status) {
            200
        } else {
            status
        };
        self.message_phrases.find(message, status)
    }

    /// The code headers the response carries, in the order of `code_headers`, with a usable
    /// value.
    fn header_codes<'h>(&'h self, headers: &'h HeaderMap) -> HeaderCodes<'h> {
        const PASS: usize = 4;
        // Few headers and few code names (the usual case): one pass over the headers, most
        // ruled out by the name filter, instead of a hashed lookup per code name.
        let known = &self.code_headers;
        if headers.keys_len() <= SMALL_HEADER_MAP && known.names.len() <= PASS {
            let mut found: [Option<(&HeaderName, &str)>; PASS] = [None; PASS];
            for (name, value) in headers {
                if let Some(at) = known.rank(name, NameFilter::bit(name)) {
                    if found[at].is_none() {
                        found[at] = usable_code(value).map(|code| (&known.names[at], code));
                    }
                }
            }
            return HeaderCodes::Found(found.into_iter());
        }
        HeaderCodes::Looked(known.names.iter(), headers)
    }

    /// The best-ranked trace id among the response's headers. `likely_first`: the response is
    /// a success, where the best-ranked name (`x-request-id` by default) is usually present and
    /// one hashed lookup finds it; on a failure (an HTML page from a proxy, often with no trace
    /// header at all) the pass alone is cheaper.
    fn header_trace_id(&self, headers: &HeaderMap, likely_first: bool) -> Option<TraceId> {
        let known = &self.trace_id_headers;
        if let Some(first) = known.names.first().filter(|_| likely_first) {
            if let Some(id) = crate::header_id::find_header(headers, first)
                .and_then(|value| TraceId::from_header(first, value))
            {
                return Some(id);
            }
        }
        if headers.keys_len() <= SMALL_HEADER_MAP {
            // Few headers (the usual response): one pass over them, most ruled out by the
            // name filter, is cheaper than a hashed lookup per known name.
            return self.trace_id_of(self.header_pass(headers, false).trace_id);
        }
        known.names.iter().find_map(|name| {
            let value = headers.get_all(name).iter().find(|v| TraceId::usable(v))?;
            TraceId::from_header(name, value)
        })
    }

    /// One pass over a small header map: the best-ranked usable trace-id header and, with
    /// `codes`, whether a code header with a usable value is present.
    fn header_pass<'h>(&self, headers: &'h HeaderMap, codes: bool) -> HeaderPass<'h> {
        let known = &self.trace_id_headers;
        let mut pass = HeaderPass::default();
        // Over the names only (a plain slice walk); the values of the few that pass the
        // filters are looked up.
        for name in headers.keys() {
            let bit = NameFilter::bit(name);
            if codes
                && self.code_headers.rank(name, bit).is_some()
                && headers
                    .get_all(name)
                    .iter()
                    .any(|v| usable_code(v).is_some())
            {
                pass.code_header = true;
            }
            let Some(rank) = known.rank(name, bit) else {
                continue;
            };
            if pass.trace_id.is_none_or(|(best, _)| rank < best) {
                if let Some(value) = headers.get_all(name).iter().find(|v| TraceId::usable(v)) {
                    pass.trace_id = Some((rank, value));
                }
            }
        }
        pass
    }

    /// The trace id of a header found by [`header_pass`](Self::header_pass), named by the known
    /// name rather than the response's equal one: a name parsed from the wire is a fresh
    /// buffer whose first clone allocates, a known name is static.
    fn trace_id_of(&self, found: Option<(usize, &HeaderValue)>) -> Option<TraceId> {
        let (rank, value) = found?;
        TraceId::from_header(&self.trace_id_headers.names[rank], value)
    }

    /// The trace id a body carries. The bare `id` field is Stability AI's error id in a failure
    /// body, but the resource's own id in a success body (`{"id":"img_1",…}`), so there it
    /// counts only when the caller listed it.
    fn body_trace_id(&self, env: &Envelope<'_>, failed: bool) -> Option<TraceId> {
        let trace = env.trace.as_ref()?;
        if !failed && trace.field == "id" && !self.trace_id_fields.iter().any(|f| &**f == "id") {
            return None;
        }
        // The field's name, shared rather than copied: one of the caller's or a default one.
        let field = match trace.rank.checked_sub(self.trace_id_fields.len()) {
            None => self.trace_id_fields.get(trace.rank).cloned(),
            Some(default) => default_trace_fields().get(default).cloned(),
        }
        .unwrap_or_else(|| Arc::from(&*trace.field));
        Some(TraceId::new(
            trimmed(&trace.value),
            TraceIdSource::BodyField(field),
        ))
    }
}

/// [`envelope::DEFAULT_TRACE_FIELDS`] as shared names, made once per process.
fn default_trace_fields() -> &'static [Arc<str>] {
    static NAMES: std::sync::OnceLock<Vec<Arc<str>>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        envelope::DEFAULT_TRACE_FIELDS
            .iter()
            .map(|name| Arc::from(*name))
            .collect()
    })
}

/// A lower-case phrase, the kind it means and the statuses it is read under (empty: any).
type PhraseRow = (Box<str>, ErrorKind, &'static [u16]);

/// The phrase table: lower-case phrases, the kind each means and the statuses it is read
/// under (empty: any), in the order tried, with one automaton that finds them all in a single
/// pass ignoring ASCII case.
#[derive(Clone)]
struct PhraseTable {
    // Shared: cloning a classifier (one per layer) copies no phrase.
    rows: Arc<[PhraseRow]>,
    /// The ASCII phrases, as a DFA: fast, and small over an ASCII alphabet.
    ascii: Option<PhraseMatcher>,
    /// The other phrases (Chinese ones), as a contiguous NFA: their UTF-8 bytes would multiply
    /// a DFA's alphabet, and with it its size; read only when a message is not all ASCII.
    other: Option<PhraseMatcher>,
}

/// One automaton over some rows of the table, and the row of each of its patterns.
#[derive(Clone)]
struct PhraseMatcher {
    automaton: aho_corasick::AhoCorasick,
    rows: Arc<[usize]>,
}

impl PhraseMatcher {
    fn new(
        rows: &[PhraseRow],
        wanted: impl Fn(&str) -> bool,
        kind: aho_corasick::AhoCorasickKind,
    ) -> Option<Self> {
        let picked: Vec<usize> = (0..rows.len()).filter(|&i| wanted(&rows[i].0)).collect();
        if picked.is_empty() {
            return None;
        }
        let automaton = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(kind))
            .build(picked.iter().map(|&i| rows[i].0.as_bytes()))
            .ok()?;
        Some(PhraseMatcher {
            automaton,
            rows: picked.into(),
        })
    }
}

impl PhraseTable {
    fn new(rows: Vec<PhraseRow>) -> Self {
        // One DFA over every phrase took about 0.9 MiB of resident memory, most of it for the
        // Chinese phrases' bytes; split, the two automata take a fraction of that.
        let ascii = PhraseMatcher::new(
            &rows,
            |phrase| phrase.is_ascii(),
            aho_corasick::AhoCorasickKind::DFA,
        );
        let other = PhraseMatcher::new(
            &rows,
            |phrase| !phrase.is_ascii(),
            aho_corasick::AhoCorasickKind::ContiguousNFA,
        );
        PhraseTable {
            rows: rows.into(),
            ascii,
            other,
        }
    }

    /// The built-in table, built once per process.
    fn builtin() -> Self {
        static BUILTIN: std::sync::OnceLock<PhraseTable> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                PhraseTable::new(
                    providers::MESSAGE_PHRASES
                        .iter()
                        .map(|(phrase, kind, statuses)| (Box::from(*phrase), *kind, *statuses))
                        .collect(),
                )
            })
            .clone()
    }

    /// The kind of the first row (in table order) found in `message` and read under `status`.
    fn find(&self, message: &str, status: u16) -> Option<ErrorKind> {
        let mut best: Option<usize> = None;
        let matchers = [
            self.ascii.as_ref(),
            self.other.as_ref().filter(|_| !message.is_ascii()),
        ];
        for matcher in matchers.into_iter().flatten() {
            // Non-overlapping matches: one pass, with the automaton's prefilter.
            for found in matcher.automaton.find_iter(message) {
                let row = matcher.rows[found.pattern().as_usize()];
                let (_, _, statuses) = &self.rows[row];
                if best.is_none_or(|b| row < b)
                    && (statuses.is_empty() || statuses.contains(&status))
                {
                    best = Some(row);
                }
            }
        }
        best.map(|row| self.rows[row].1)
    }
}

/// The longest plain-text failure body read for phrases: a proxy's one-line answer, not a page.
const PLAIN_PHRASE_LIMIT: usize = 512;

/// Whether a failure body that is not JSON is short plain text, read for its phrases ("no
/// healthy upstream"); not an HTML page.
fn may_be_plain_text(body: &[u8]) -> bool {
    body.len() <= PLAIN_PHRASE_LIMIT && body.first().is_some_and(|b| *b != b'<')
}

/// What [`Classifier::header_pass`] found.
#[derive(Default)]
struct HeaderPass<'h> {
    /// The best-ranked usable trace-id header: its rank and value.
    trace_id: Option<(usize, &'h HeaderValue)>,
    code_header: bool,
}

/// Where a code was found, borrowed until the decision is made.
#[derive(Clone, Copy)]
enum Signal<'c> {
    Field(&'static str),
    Header(&'c HeaderName),
}

impl Signal<'_> {
    fn to_decided_by(self) -> DecidedBy {
        match self {
            Signal::Field(field) => DecidedBy::BodyField(field),
            Signal::Header(name) => DecidedBy::Header(name.clone()),
        }
    }
}

/// The codes an answer holds, sorted by how much they say.
#[derive(Default)]
struct Found<'c> {
    /// The first specific code a rule knows.
    decided: Option<(ErrorKind, Signal<'c>, Candidate<'c>)>,
    /// The first generic code a rule knows.
    generic: Option<(ErrorKind, Signal<'c>, Candidate<'c>)>,
    /// The first unknown number that reads as a status.
    status_like: Option<(ErrorKind, Signal<'c>, Candidate<'c>)>,
    /// The first code of all, reported when no code decided.
    first: Option<Candidate<'c>>,
}

impl<'c> Found<'c> {
    /// Files `candidate` (whose rule says `kind`, if any); true when it decides.
    fn consider(
        &mut self,
        kind: Option<ErrorKind>,
        by: Signal<'c>,
        candidate: Candidate<'c>,
    ) -> bool {
        self.first.get_or_insert(candidate);
        match kind {
            Some(kind) if is_generic(&candidate) => {
                self.generic.get_or_insert((kind, by, candidate));
                false
            }
            Some(kind) => {
                self.decided = Some((kind, by, candidate));
                true
            }
            None => {
                if self.status_like.is_none() {
                    self.status_like = status_like(&candidate).map(|kind| (kind, by, candidate));
                }
                false
            }
        }
    }
}

/// A code found in a response, before any rule has read it.
#[derive(Debug, Clone, Copy)]
enum Candidate<'a> {
    Text(&'a str),
    Number(i64),
}

impl Candidate<'_> {
    fn to_code(self) -> ProviderCode {
        match self {
            Candidate::Text(text) => ProviderCode::Text(text.to_owned()),
            Candidate::Number(n) => ProviderCode::Number(n),
        }
    }
}

/// The body's codes, most specific first, each with the field it came from. Read lazily: the
/// first known code usually decides.
fn code_candidates<'a>(
    env: &'a Envelope<'_>,
) -> impl Iterator<Item = (&'static str, Candidate<'a>)> {
    type Read = for<'e> fn(&'e Envelope<'_>) -> Option<Candidate<'e>>;
    fn text<'e>(t: &'e Option<std::borrow::Cow<'_, str>>) -> Option<Candidate<'e>> {
        t.as_deref().map(Candidate::Text)
    }
    fn scalar<'e>(s: &'e Option<Scalar<'_>>) -> Option<Candidate<'e>> {
        match s {
            Some(Scalar::Text(text)) => Some(Candidate::Text(text)),
            Some(Scalar::Integer(n)) => Some(Candidate::Number(*n)),
            _ => None,
        }
    }
    const FIELDS: [(&str, Read); 12] = [
        ("error.details.error_code", |e| text(&e.details_code)),
        ("error.details.reason", |e| text(&e.reason)),
        ("error.innererror.code", |e| text(&e.inner_code)),
        ("error.code", |e| scalar(&e.error_code)),
        ("error.type", |e| text(&e.error_type)),
        ("error.status", |e| text(&e.error_status)),
        // AWS JSON services: `com.amazon.coral.service#ThrottlingException`.
        ("__type", |e| {
            let t = e.aws_type.as_deref()?;
            Some(Candidate::Text(t.rsplit('#').next().unwrap_or(t)))
        }),
        ("code", |e| scalar(&e.code)),
        ("error_code", |e| scalar(&e.top_error_code)),
        ("error_type", |e| text(&e.error_type_field)),
        ("name", |e| text(&e.name)),
        ("detail.type", |e| text(&e.detail_type)),
    ];
    FIELDS
        .iter()
        .filter_map(move |(field, read)| Some((*field, read(env)?)))
        .filter(|(_, c)| !matches!(c, Candidate::Text(t) if trimmed(t).is_empty()))
}

/// Whether a code says only a broad class of failure (see [`providers::GENERIC_CODES`]).
fn is_generic(candidate: &Candidate<'_>) -> bool {
    matches!(candidate, Candidate::Text(text) if providers::GENERIC_CODES.contains(&trimmed(text)))
}

/// Whether `haystack` contains `needle` (lower case), ignoring ASCII case; no allocation.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = needle.first() else {
        return true;
    };
    if haystack.len() < needle.len() {
        return false;
    }
    let last_start = haystack.len() - needle.len();
    (0..=last_start).any(|i| {
        haystack[i].to_ascii_lowercase() == first
            && haystack[i..i + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// A numeric code read as an HTTP status: OpenRouter's and Google's `error.code`, Azure's
/// `"429"`, or seed 003's six-digit `SSSxxx`.
fn status_like(candidate: &Candidate<'_>) -> Option<ErrorKind> {
    let n = match candidate {
        Candidate::Number(n) => *n,
        Candidate::Text(text) => trimmed(text).parse().ok()?,
    };
    let status = match n {
        400..=599 => n,
        400_000..=599_999 => n / 1000,
        _ => return None,
    };
    let status = StatusCode::from_u16(u16::try_from(status).ok()?).ok()?;
    ErrorKind::from_status(status)
}

/// Whether a JSON body under a success status reports a failure.
fn says_failed(env: &Envelope<'_>) -> bool {
    match env.success {
        Some(true) => return false,
        Some(false) => return true,
        None => {}
    }
    let zero_code = |code: &Option<Scalar<'_>>| match code {
        Some(Scalar::Integer(0)) => true,
        Some(Scalar::Text(text)) => trimmed(text) == "0",
        _ => false,
    };
    if env.error_present && !zero_code(&env.error_code) {
        return true;
    }
    if env.top_error_code.is_some() && !zero_code(&env.top_error_code) {
        return true;
    }
    let business_code = matches!(env.code, Some(Scalar::Integer(n)) if n != 0 && n != 200);
    business_code && (env.msg.is_some() || env.message.is_some())
}

fn message_of<'a>(env: &'a Envelope<'_>) -> Option<&'a str> {
    [
        &env.error_message,
        &env.msg,
        &env.message,
        &env.detail_text,
        &env.detail_msg,
        &env.title,
        &env.error_text,
        &env.errors_first,
    ]
    .into_iter()
    .find_map(|m| m.as_deref().filter(|m| !trimmed(m).is_empty()))
}

/// Whether a message names a limit per minute or per second ("5 API calls / minute").
fn names_short_window(message: &str) -> bool {
    [
        "/ minute",
        "/minute",
        "per minute",
        "/ second",
        "/second",
        "per second",
    ]
    .iter()
    .any(|window| contains_ignore_ascii_case(message, window))
}

fn body_wait_hint(env: &Envelope<'_>) -> Option<std::time::Duration> {
    env.retry_delay
        .as_deref()
        .and_then(parse_go_duration)
        .or_else(|| env.retry_after.and_then(seconds_to_duration))
        .or_else(|| env.estimated_time.and_then(seconds_to_duration))
}

/// A wait a message states: "Please try again in 20s", "try again in 1.5 seconds", "Please
/// retry after 55 seconds" (Azure OpenAI), "please try again after 1 seconds" (Moonshot),
/// "retry in 250ms", "resets in ~30s" (Replicate); `None` when it states none.
fn message_wait(message: &str) -> Option<std::time::Duration> {
    // Every stated wait has an ASCII digit; most messages have none at all, and a byte loop rules
    // them out for a fraction of the search below.
    if !message.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    static LEADS: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::OnceLock::new();
    let leads = LEADS.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                "try again in ",
                "try again after ",
                "retry after ",
                "retry in ",
                // Replicate: "Your rate limit resets in ~30s."
                "resets in ",
            ])
            .ok()
    });
    let start = leads.as_ref()?.find(message)?.end();
    // "~30s": an approximate wait is still the wait to keep.
    let rest = message.get(start..)?.trim_start().trim_start_matches('~');
    let number_len = rest
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(rest.len());
    if number_len == 0 {
        return None;
    }
    let (number, unit) = rest.split_at(number_len);
    let unit = unit.trim_start();
    let word_len = unit
        .bytes()
        .position(|b| !b.is_ascii_alphanumeric() && b != b'.')
        .unwrap_or(unit.len());
    let word = unit[..word_len].trim_end_matches('.');
    // A Go duration such as "6m0s" or "1.5s" runs on without a space.
    if unit.len() == rest.len() - number_len {
        if let Some(wait) = parse_go_duration(&format!("{number}{word}")) {
            return Some(wait);
        }
    }
    let seconds_per_unit = match word.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        _ => return None,
    };
    seconds_to_duration(number.parse::<f64>().ok()? * seconds_per_unit)
}

/// FxHash-style hasher for the code tables: their keys are short codes fixed at construction, so
/// SipHash's flooding resistance buys nothing and costs a fifth of a lookup.
type CodeHash = BuildHasherDefault<crate::fold_hash::FoldHasher>;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "success",
            "error",
            "code",
            "msg",
            "message",
            "id",
            "trace_id",
            "request_id",
            "requestId",
            "x_request_id",
            "errors",
            "Response",
            "Error",
            "Code",
            "Message",
            "RequestId",
            "data",
            "status",
            "url",
            r"suc\u0063ess",
            r#"co\"de"#,
            r"err\nor",
        ])
    }

    /// A JSON object of up to `max` fields, some with spaces and a newline before the colon.
    fn object_of(
        value: impl Strategy<Value = String> + Clone,
        max: usize,
    ) -> impl Strategy<Value = String> {
        prop::collection::vec((key(), value, any::<bool>()), 0..max).prop_map(|fields| {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v, spaced)| match spaced {
                    true => format!("\"{k}\" :\n {v}"),
                    false => format!("\"{k}\":{v}"),
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        })
    }

    fn json_value() -> impl Strategy<Value = String> + Clone {
        let leaf = prop::sample::select(vec![
            "true",
            "false",
            "null",
            "0",
            "130005",
            "200",
            r#""""#,
            r#""x""#,
            r#""0""#,
            r#""img_1""#,
            r#""he said \"code\": 1""#,
            r#""a\\""#,
            r#""code""#,
            r#""error""#,
        ])
        .prop_map(String::from);
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                object_of(inner.clone(), 4),
                prop::collection::vec(inner, 0..3)
                    .prop_map(|items| format!("[{}]", items.join(","))),
            ]
        })
    }

    /// Envelopes mixing the fields a success is read for, so every signal comes up often.
    fn envelope_body() -> impl Strategy<Value = String> {
        let fields = vec![
            r#""code":130005"#,
            r#""code":0"#,
            r#""code":"0""#,
            r#""msg":"Request too frequent""#,
            r#""message":"m""#,
            r#""success":false"#,
            r#""success":true"#,
            r#""error":"CUDA out of memory""#,
            r#""error":null"#,
            r#""error":{"code":"c","message":"m"}"#,
            r#""request_id":"rq-1""#,
            r#""trace_id" : "tr-1""#,
            r#""id":"img_1""#,
            r#""data":{"code":1,"msg":"nested"}"#,
            r#""suc\u0063ess":false"#,
            r#""note":"\"code\":130005""#,
        ];
        prop::sample::subsequence(fields, 0..=6)
            .prop_shuffle()
            .prop_map(|fields| format!("{{{}}}", fields.join(",")))
    }

    /// A body as a provider sends it: mostly an object, sometimes an array or a bare value.
    fn json_body() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => envelope_body(),
            3 => object_of(json_value(), 7),
            1 => json_value(),
        ]
    }

    /// The classification with the key scan against the one that always parses.
    fn same_either_way(classifier: &Classifier, status: u16, body: &[u8]) {
        let status = StatusCode::from_u16(status).unwrap();
        let headers = HeaderMap::new();
        for read in [BodyRead::Complete, BodyRead::Prefix] {
            let parsed = envelope::parse(body, &classifier.trace_id_fields);
            let always_parsed = classifier.classify_envelope(
                status,
                ErrorKind::from_status(status),
                &headers,
                parsed.as_ref(),
                &[],
                read,
            );
            assert_eq!(
                classifier.classify(status, &headers, body, read),
                always_parsed,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn skipping_the_parse_of_a_success_body_changes_nothing(
            body in json_body(),
            cut in any::<prop::sample::Index>(),
            status in prop::sample::select(vec![200u16, 201, 202, 204]),
        ) {
            let with_id = Classifier::new().trace_id_field("id");
            for classifier in [&Classifier::new(), &with_id] {
                same_either_way(classifier, status, body.as_bytes());
                // A truncated body (a stream that failed midway) is not JSON.
                let cut = cut.index(body.len() + 1);
                same_either_way(classifier, status, &body.as_bytes()[..cut]);
            }
        }

        #[test]
        fn skipping_the_parse_of_arbitrary_bytes_changes_nothing(
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            same_either_way(&Classifier::new(), 200, &body);
        }
    }

    /// Header maps a failure may carry: none, trace-id headers (usable, blank, repeated), a
    /// code header, and common others.
    fn failure_headers() -> impl Strategy<Value = HeaderMap> {
        let header = prop::sample::select(vec![
            ("content-type", "text/html"),
            ("server", "nginx"),
            ("date", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("x-request-id", "req_1"),
            ("x-request-id", " "),
            ("request-id", "req_2"),
            ("cf-ray", "8f2a-CDG"),
            ("x-amzn-requestid", "aws-3"),
            ("x-amzn-errortype", "ThrottlingException:http://internal"),
            ("x-fal-error-type", ""),
            ("retry-after", "3"),
        ]);
        prop::collection::vec(header, 0..6).prop_map(|pairs| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(name, http::HeaderValue::from_static(value));
            }
            headers
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn classifying_by_status_alone_finds_what_reading_everything_finds(
            status in prop::sample::select(vec![400u16, 404, 429, 500, 502, 503, 504, 529]),
            headers in failure_headers(),
            body in prop::sample::select(vec![
                "",
                "<html><body>502 Bad Gateway</body></html>",
                "  \r\n<html>",
                "no healthy upstream",
                "{\"error\":{\"message\":\"overloaded\"}}",
                "{\"error\":",
            ]),
            long in any::<bool>(),
            read in prop::sample::select(vec![BodyRead::Complete, BodyRead::Prefix, BodyRead::NotRead]),
        ) {
            let classifier = Classifier::new();
            let status = StatusCode::from_u16(status).unwrap();
            let mut body = body.as_bytes().to_vec();
            if long {
                body.resize(PLAIN_PHRASE_LIMIT + 1, b'x');
            }
            let kind = ErrorKind::from_status(status).unwrap();
            if let Some(by_status) = classifier.classify_by_status(status, kind, &headers, &body, read) {
                let read_all = classifier.classify_read(status, Some(kind), &headers, &body, read);
                prop_assert_eq!(by_status, read_all);
            }
        }
    }

    #[test]
    fn an_html_failure_is_classified_by_status_with_its_trace_header() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", http::HeaderValue::from_static("text/html"));
        headers.insert("cf-ray", http::HeaderValue::from_static("8f2a-CDG"));
        headers.insert("request-id", http::HeaderValue::from_static("req_2"));
        let page = b"<html><body>502 Bad Gateway</body></html>";
        let classifier = Classifier::new();
        let c = classifier
            .classify_by_status(
                StatusCode::BAD_GATEWAY,
                ErrorKind::from_status(StatusCode::BAD_GATEWAY).unwrap(),
                &headers,
                page,
                BodyRead::Complete,
            )
            .expect("nothing in the page to read");
        assert_eq!(c.trace_id().unwrap().as_str(), "req_2");
        assert_eq!(c.decided_by(), Some(&DecidedBy::Status));
        // A code header is read by the full path.
        headers.insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static("ThrottlingException"),
        );
        assert!(classifier
            .classify_by_status(
                StatusCode::BAD_GATEWAY,
                ErrorKind::Overloaded,
                &headers,
                page,
                BodyRead::Complete
            )
            .is_none());
    }

    #[test]
    fn a_success_body_without_those_keys_is_not_parsed() {
        let classifier = Classifier::new();
        assert!(!classifier.success_body_may_say_more(br#"{"id":"img_1","url":"u"}"#));
        assert!(classifier.success_body_may_say_more(br#"{"code":0,"msg":"ok"}"#));
        assert!(classifier.success_body_may_say_more(br#"{"request_id":"r"}"#));
        assert!(Classifier::new()
            .trace_id_field("id")
            .success_body_may_say_more(br#"{"id":"t"}"#));
    }
}
