//! Checks the callback a provider POSTs when a job finishes, and matches it to the job this
//! client created.
//!
//! Image, video and music generation is asynchronous: the create call answers with a job id, and
//! the provider POSTs the result to a callback URL later. Anyone who learns that URL can POST to
//! it too, so a handler answers three questions before it trusts a body:
//!
//! 1. **Did the provider send it?** [`WebhookVerifier`] checks the signature of the
//!    [Standard Webhooks] scheme, which Replicate and OpenAI use: an HMAC-SHA256 of
//!    `{webhook-id}.{webhook-timestamp}.{body}` keyed with the endpoint's `whsec_…` secret,
//!    compared in constant time, and a timestamp within a tolerance window
//!    ([`DEFAULT_TOLERANCE`], 5 minutes either way). Several keys can be accepted at once, so a
//!    secret can be rotated without dropping deliveries.
//! 2. **Was it delivered before?** [`ReplayGuard`] remembers the ids of accepted deliveries for
//!    the window, so a captured delivery sent again is refused.
//! 3. **Is it one of our jobs?** [`Callback`] reads the job id, state and error out of the body
//!    (the gateway's callback envelope, or Replicate's prediction object), and [`PendingJobs`]
//!    hands back what the caller stored for that job once the job is finished. A job id this
//!    client never created is a forged or foreign callback.
//!
//! A provider that does not sign its callbacks (the AI gateway of seed 000) leaves only the
//! third check, together with a callback URL that is hard to guess.
//!
//! # Example
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use base64::engine::general_purpose::STANDARD;
//! use base64::Engine as _;
//! use hmac::{Hmac, Mac};
//! use http::HeaderMap;
//! use http_resilience::webhooks::{
//!     Callback, CallbackState, PendingJobs, ReplayGuard, WebhookError, WebhookVerifier,
//!     DEFAULT_TOLERANCE,
//! };
//! use sha2::Sha256;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // At start-up: the endpoint's secret, the ids already delivered, the jobs in flight.
//! let secret = "whsec_ZXhhbXBsZSBrZXksIG5ldmVyIHVzZSBpdCBmb3IgcmVhbA==";
//! let verifier = WebhookVerifier::new(secret)?;
//! let replays = ReplayGuard::new(DEFAULT_TOLERANCE);
//! let pending = PendingJobs::new();
//! pending.insert("p-7xk2", "portrait for order 1138");
//!
//! // The provider's side, done here to have a delivery: sign `{id}.{timestamp}.{body}`.
//! let body = br#"{"id":"p-7xk2","status":"succeeded","output":["https://x.test/a.webp"],"error":null}"#;
//! let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs().to_string();
//! let key = STANDARD.decode(secret.trim_start_matches("whsec_"))?;
//! let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
//! mac.update(format!("msg_2Lf8.{timestamp}.").as_bytes());
//! mac.update(body);
//! let tag = mac.finalize().into_bytes();
//! let mut headers = HeaderMap::new();
//! headers.insert("webhook-id", "msg_2Lf8".parse()?);
//! headers.insert("webhook-timestamp", timestamp.parse()?);
//! let signature = format!("v1,{}", STANDARD.encode(tag.as_slice()));
//! headers.insert("webhook-signature", signature.parse()?);
//!
//! // The handler: verify the raw bytes, refuse a second delivery, then read the body.
//! let delivery = verifier.verify(&headers, body)?;
//! replays.check(&delivery, SystemTime::now())?;
//! let callback = Callback::parse(body)?;
//! assert_eq!(callback.job_id(), "p-7xk2");
//! assert_eq!(callback.state(), CallbackState::Succeeded);
//! assert_eq!(pending.take_for(&callback), Some("portrait for order 1138"));
//!
//! // The same delivery a second time, and a body changed on the way:
//! assert!(matches!(
//!     replays.check(&delivery, SystemTime::now()),
//!     Err(WebhookError::Replayed { .. })
//! ));
//! assert_eq!(verifier.verify(&headers, b"{}"), Err(WebhookError::NoValidSignature));
//! # Ok(())
//! # }
//! ```
//!
//! # Things to know
//!
//! - **Verify the bytes as received**, before any JSON parsing: a body parsed and serialised
//!   again no longer matches its signature. Parse the [`Callback`] only after the verifier said
//!   yes.
//! - **Answer a replay with a 2xx.** Providers send a delivery again, with the same
//!   `webhook-id`, when they did not see a 2xx in time. [`WebhookError::Replayed`] means the
//!   delivery was already accepted, so the handler can answer 200 without doing the work twice.
//!   A delivery the handler accepted but then failed to process can be made acceptable again
//!   with [`ReplayGuard::forget`].
//! - **Give the guard at least the verifier's tolerance** as its window: a delivery is
//!   remembered until its timestamp is older than the window, and the verifier refuses it from
//!   the moment its timestamp is older than the tolerance.
//! - **The guard is per process.** A fleet of handlers behind a load balancer needs a shared
//!   record of ids (a database's unique key on the id, for instance) to refuse a replay sent to
//!   another instance.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the delivery's id, the same on every retry of one delivery.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");

/// The header carrying the time the delivery was signed, in seconds since the Unix epoch.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");

/// The header carrying the space-separated signatures, each `v1,<base64 of HMAC-SHA256>`.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// How far a delivery's timestamp may be from the receiver's clock, either way, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// How many delivery ids a [`ReplayGuard`] remembers at most, by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The prefix of a Standard Webhooks secret, before the base64 of the key.
const SECRET_PREFIX: &str = "whsec_";

/// The version of the only signature scheme verified: HMAC-SHA256.
const SIGNATURE_VERSION: &[u8] = b"v1";

/// The longest decimal `u64` (20 digits); a longer timestamp is refused before parsing.
const MAX_TIMESTAMP_DIGITS: usize = 20;

/// Why a webhook delivery or a callback body was refused.
///
/// The texts never include a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is absent or empty; the header's name.
    MissingHeader(&'static str),
    /// A header holds bytes that are not visible ASCII; the header's name.
    InvalidHeader(&'static str),
    /// `webhook-timestamp` is not a whole number of seconds since the Unix epoch.
    InvalidTimestamp,
    /// The delivery was signed longer ago than the tolerance allows.
    StaleTimestamp {
        /// How old the timestamp is, in seconds, rounded up.
        age_secs: u64,
    },
    /// The delivery's timestamp is further in the future than the tolerance allows.
    FutureTimestamp {
        /// How far ahead of the receiver's clock the timestamp is, in seconds, rounded up.
        ahead_secs: u64,
    },
    /// No `v1` signature of the header matches the delivery with any accepted key.
    NoValidSignature,
    /// A delivery with this id was already accepted within the window.
    Replayed {
        /// The delivery's `webhook-id`.
        id: String,
    },
    /// The secret is not base64 (after an optional `whsec_` prefix), or is empty.
    InvalidSecret,
    /// The callback body is not one of the known callback envelopes; what is wrong with it.
    InvalidBody(&'static str),
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::MissingHeader(name) => {
                write!(f, "webhook delivery has no `{name}` header")
            }
            WebhookError::InvalidHeader(name) => {
                write!(f, "webhook header `{name}` is not visible ASCII")
            }
            WebhookError::InvalidTimestamp => f.write_str(
                "webhook timestamp is not a whole number of seconds since the Unix epoch",
            ),
            WebhookError::StaleTimestamp { age_secs } => write!(
                f,
                "webhook timestamp is {age_secs} s old, beyond the tolerance window"
            ),
            WebhookError::FutureTimestamp { ahead_secs } => write!(
                f,
                "webhook timestamp is {ahead_secs} s in the future, beyond the tolerance window"
            ),
            WebhookError::NoValidSignature => {
                f.write_str("no webhook signature matches the delivery with an accepted key")
            }
            WebhookError::Replayed { id } => {
                write!(f, "webhook delivery {id} was already accepted")
            }
            WebhookError::InvalidSecret => f.write_str(
                "webhook secret is not a non-empty base64 key (after an optional `whsec_` prefix)",
            ),
            WebhookError::InvalidBody(reason) => {
                write!(
                    f,
                    "callback body is not a known callback envelope: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for WebhookError {}

/// Verifies the signature and timestamp of a [Standard Webhooks] delivery.
///
/// Holds one or more keys: a delivery is valid when any of its `v1` signatures matches with any
/// key, so during a rotation the new secret is added with [`with_secret`](Self::with_secret)
/// and the old one removed once the provider signs with the new one only. Signatures of other
/// versions (`v1a`, `v2`, …) are ignored.
///
/// Its `Debug` output shows how many keys it holds, never the keys.
///
/// [Standard Webhooks]: https://www.standardwebhooks.com/
#[derive(Clone)]
pub struct WebhookVerifier {
    /// HMAC states already keyed, one per accepted key; the raw keys are not kept.
    keys: Vec<HmacSha256>,
    tolerance: Duration,
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("keys", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl WebhookVerifier {
    /// A verifier accepting the key of a secret as providers show it: `whsec_` followed by
    /// the base64 of the key (the prefix may be left out; surrounding whitespace is ignored).
    ///
    /// Fails with [`WebhookError::InvalidSecret`] when the rest is not standard base64 or
    /// decodes to nothing.
    pub fn new(secret: &str) -> Result<Self, WebhookError> {
        let key = decode_secret(secret)?;
        Ok(Self::from_bytes(key))
    }

    /// A verifier accepting a key given as raw bytes.
    ///
    /// An empty key is no secret (anyone can sign with it), so it is not accepted: a verifier
    /// without a key refuses every delivery.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Self {
        let mut verifier = WebhookVerifier {
            keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
        };
        verifier.accept_key(&key.into());
        verifier
    }

    /// Accepts the key of one more secret, written as for [`new`](Self::new): a delivery
    /// signed with any of the keys is valid. For rotating a secret.
    pub fn with_secret(mut self, secret: &str) -> Result<Self, WebhookError> {
        let key = decode_secret(secret)?;
        self.accept_key(&key);
        Ok(self)
    }

    /// How far a delivery's timestamp may be from the receiver's clock, in the past or the
    /// future ([`DEFAULT_TOLERANCE`], 5 minutes, by default).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a delivery against the system clock: its headers and its body, as received.
    ///
    /// See [`verify_at`](Self::verify_at).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedWebhook, WebhookError> {
        self.verify_at(headers, body, SystemTime::now())
    }

    /// Verifies a delivery as of `now`: its headers and its body, as received.
    ///
    /// Checks, in this order, that `webhook-id`, `webhook-timestamp` and `webhook-signature`
    /// are present, that the timestamp is within the tolerance of `now`, and that one of the
    /// `v1` signatures is the HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` with one
    /// of the keys. Signatures are compared in constant time.
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedWebhook, WebhookError> {
        let id_value = required_header(headers, WEBHOOK_ID, "webhook-id")?;
        let timestamp_value = required_header(headers, WEBHOOK_TIMESTAMP, "webhook-timestamp")?;
        required_header(headers, WEBHOOK_SIGNATURE, "webhook-signature")?;
        let id = id_value
            .to_str()
            .map_err(|_| WebhookError::InvalidHeader("webhook-id"))?;
        let timestamp =
            parse_timestamp(timestamp_value.as_bytes()).ok_or(WebhookError::InvalidTimestamp)?;
        self.check_window(timestamp, now)?;
        if !self.signature_matches(headers, id.as_bytes(), timestamp_value.as_bytes(), body) {
            return Err(WebhookError::NoValidSignature);
        }
        Ok(VerifiedWebhook {
            id: id.to_owned(),
            timestamp,
        })
    }

    fn accept_key(&mut self, key: &[u8]) {
        if key.is_empty() {
            return;
        }
        // HMAC takes a key of any length, so this always succeeds; were it ever to fail, the
        // key would be left out and the verifier would refuse what it would have accepted.
        if let Ok(keyed) = HmacSha256::new_from_slice(key) {
            self.keys.push(keyed);
        }
    }

    fn check_window(&self, timestamp: SystemTime, now: SystemTime) -> Result<(), WebhookError> {
        match now.duration_since(timestamp) {
            Ok(age) if age > self.tolerance => Err(WebhookError::StaleTimestamp {
                age_secs: seconds_rounded_up(age),
            }),
            Ok(_) => Ok(()),
            Err(ahead) if ahead.duration() > self.tolerance => Err(WebhookError::FutureTimestamp {
                ahead_secs: seconds_rounded_up(ahead.duration()),
            }),
            Err(_) => Ok(()),
        }
    }

    /// Whether a `v1` signature of the headers matches `{id}.{timestamp}.{body}` with a key.
    fn signature_matches(
        &self,
        headers: &HeaderMap,
        id: &[u8],
        timestamp: &[u8],
        body: &[u8],
    ) -> bool {
        let candidates: Vec<Vec<u8>> = headers
            .get_all(WEBHOOK_SIGNATURE)
            .iter()
            .flat_map(|value| value.as_bytes().split(u8::is_ascii_whitespace))
            .filter_map(v1_signature)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        self.keys.iter().any(|key| {
            let mut mac = key.clone();
            mac.update(id);
            mac.update(b".");
            mac.update(timestamp);
            mac.update(b".");
            mac.update(body);
            candidates
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        })
    }
}

/// The value of a header that must be present and not empty.
fn required_header<'a>(
    headers: &'a HeaderMap,
    header: HeaderName,
    name: &'static str,
) -> Result<&'a HeaderValue, WebhookError> {
    headers
        .get(header)
        .filter(|value| !value.is_empty())
        .ok_or(WebhookError::MissingHeader(name))
}

/// The key of a `whsec_…` secret (the prefix optional).
fn decode_secret(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let secret = secret.trim();
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    match BASE64_STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        // The decoder's error names the offending byte of the secret: not passed on.
        _ => Err(WebhookError::InvalidSecret),
    }
}

/// The time a `webhook-timestamp` stands for: ASCII digits only, no sign, no fraction.
fn parse_timestamp(text: &[u8]) -> Option<SystemTime> {
    if text.is_empty() || text.len() > MAX_TIMESTAMP_DIGITS || !text.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let seconds: u64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    // `checked_add`: a time past what `SystemTime` can hold is refused, not a panic.
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// The MAC of one `v1,<base64>` signature entry; `None` for another version or bad base64.
fn v1_signature(entry: &[u8]) -> Option<Vec<u8>> {
    let comma = entry.iter().position(|&byte| byte == b',')?;
    let version = entry.get(..comma)?;
    let encoded = entry.get(comma + 1..)?;
    if version != SIGNATURE_VERSION {
        return None;
    }
    BASE64_STANDARD.decode(encoded).ok()
}

/// A duration in whole seconds, a started second counting as one.
fn seconds_rounded_up(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// A delivery whose signature and timestamp [`WebhookVerifier`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    id: String,
    timestamp: SystemTime,
}

impl VerifiedWebhook {
    /// The delivery's `webhook-id`: the same on every retry of one delivery, so it is the key to
    /// process a delivery once (see [`ReplayGuard`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The time the provider signed the delivery (`webhook-timestamp`).
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }
}

/// Remembers the ids of accepted deliveries, to refuse one delivered again.
///
/// An id is remembered until its delivery's timestamp is older than the window; by then the
/// verifier refuses the delivery as stale anyway, if the window is at least the verifier's
/// tolerance. At most [`DEFAULT_REPLAY_CAPACITY`] ids are remembered (see
/// [`capacity`](Self::capacity)); when full, the id with the oldest timestamp, the next to
/// expire, is forgotten first.
///
/// Clones share one record, so a guard can be handed to every handler task.
#[derive(Clone)]
pub struct ReplayGuard {
    window: Duration,
    seen: Arc<Mutex<SeenIds>>,
}

/// The ids a [`ReplayGuard`] remembers, found by id and ordered by timestamp.
struct SeenIds {
    timestamp_by_id: HashMap<Arc<str>, SystemTime>,
    by_timestamp: BTreeSet<(SystemTime, Arc<str>)>,
    capacity: usize,
}

impl SeenIds {
    fn forget_older_than(&mut self, window: Duration, now: SystemTime) {
        while let Some((timestamp, _)) = self.by_timestamp.first() {
            let expired = now.duration_since(*timestamp).is_ok_and(|age| age > window);
            if !expired {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, id)) = self.by_timestamp.pop_first() {
            self.timestamp_by_id.remove(&id);
        }
    }

    fn remember(&mut self, id: &str, timestamp: SystemTime) {
        while self.timestamp_by_id.len() >= self.capacity && !self.by_timestamp.is_empty() {
            self.forget_oldest();
        }
        let id: Arc<str> = Arc::from(id);
        self.by_timestamp.insert((timestamp, Arc::clone(&id)));
        self.timestamp_by_id.insert(id, timestamp);
    }

    fn forget(&mut self, id: &str) -> bool {
        match self.timestamp_by_id.remove_entry(id) {
            Some((id, timestamp)) => {
                self.by_timestamp.remove(&(timestamp, id));
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self.lock();
        f.debug_struct("ReplayGuard")
            .field("window", &self.window)
            .field("remembered", &seen.timestamp_by_id.len())
            .field("capacity", &seen.capacity)
            .finish()
    }
}

impl ReplayGuard {
    /// A guard remembering ids for `window`, which should be at least the verifier's tolerance
    /// ([`DEFAULT_TOLERANCE`] unless changed).
    pub fn new(window: Duration) -> Self {
        ReplayGuard {
            window,
            seen: Arc::new(Mutex::new(SeenIds {
                timestamp_by_id: HashMap::new(),
                by_timestamp: BTreeSet::new(),
                capacity: DEFAULT_REPLAY_CAPACITY,
            })),
        }
    }

    /// Remembers at most `max_ids` ids (at least one); [`DEFAULT_REPLAY_CAPACITY`] by default.
    /// Applies to every clone of the guard.
    pub fn capacity(self, max_ids: usize) -> Self {
        {
            let mut seen = self.lock();
            seen.capacity = max_ids.max(1);
            while seen.timestamp_by_id.len() > seen.capacity && !seen.by_timestamp.is_empty() {
                seen.forget_oldest();
            }
        }
        self
    }

    /// Accepts a verified delivery the first time its id is seen within the window, and
    /// remembers the id.
    ///
    /// Fails with [`WebhookError::Replayed`] for an id accepted before whose delivery's
    /// timestamp is still within the window, and with [`WebhookError::StaleTimestamp`] for a
    /// delivery older than the window, which could not be remembered long enough to refuse
    /// its replays.
    pub fn check(&self, verified: &VerifiedWebhook, now: SystemTime) -> Result<(), WebhookError> {
        if let Ok(age) = now.duration_since(verified.timestamp) {
            if age > self.window {
                return Err(WebhookError::StaleTimestamp {
                    age_secs: seconds_rounded_up(age),
                });
            }
        }
        let mut seen = self.lock();
        seen.forget_older_than(self.window, now);
        if seen.timestamp_by_id.contains_key(verified.id()) {
            return Err(WebhookError::Replayed {
                id: verified.id.clone(),
            });
        }
        seen.remember(verified.id(), verified.timestamp);
        Ok(())
    }

    /// Forgets an id, so that the provider's next delivery of it is accepted: for a delivery
    /// the handler accepted but failed to process. Returns whether the id was remembered.
    pub fn forget(&self, id: &str) -> bool {
        self.lock().forget(id)
    }

    fn lock(&self) -> MutexGuard<'_, SeenIds> {
        // Every update leaves the record consistent, so a panic elsewhere cannot corrupt it.
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where a job stands, as its callback says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallbackState {
    /// Queued or running (Replicate's `starting` and `processing`): more callbacks will come.
    InProgress,
    /// Finished with a result.
    Succeeded,
    /// Finished without a result; see [`Callback::error_code`] and [`Callback::error_message`].
    Failed,
    /// Stopped before it finished, by a cancel request or a deadline (Replicate's `canceled`
    /// and `aborted`).
    Canceled,
}

impl CallbackState {
    /// Whether the job is finished: no further callback will change its outcome.
    pub fn is_terminal(self) -> bool {
        !matches!(self, CallbackState::InProgress)
    }
}

impl fmt::Display for CallbackState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallbackState::InProgress => "in progress",
            CallbackState::Succeeded => "succeeded",
            CallbackState::Failed => "failed",
            CallbackState::Canceled => "canceled",
        })
    }
}

/// The body of a job callback, with the fields that say which job it is about and how it went.
///
/// Two envelopes are understood:
///
/// - the gateway's callback (seed 000): `{"success": true, "task_id": "…", "trace_id": "…",
///   "data": {…}}`, or `"success": false` with `"error": {"code": "…", "message": "…"}`;
/// - Replicate's prediction object: `{"id": "…", "status": "starting" | "processing" |
///   "succeeded" | "failed" | "canceled" | "aborted", "error": null | "…", "output": …}`.
///
/// The raw body is kept ([`body`](Self::body)) for the caller to read the result from; fields
/// not listed here are skipped without being built.
#[derive(Clone)]
pub struct Callback {
    body: Bytes,
    job_id: String,
    state: CallbackState,
    error_code: Option<String>,
    error_message: Option<String>,
    trace_id: Option<String>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("job_id", &self.job_id)
            .field("state", &self.state)
            .field("error_code", &self.error_code)
            .field("error_message", &self.error_message)
            .field("trace_id", &self.trace_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The top-level fields of both envelopes. Each is read as any JSON value, so a field of the
/// other envelope with an unexpected type cannot make a body unreadable; unknown fields
/// (`data`, `output`, `urls`, …) are skipped.
#[derive(Deserialize)]
struct CallbackFields {
    success: Option<Value>,
    task_id: Option<Value>,
    trace_id: Option<Value>,
    id: Option<Value>,
    status: Option<Value>,
    error: Option<Value>,
}

impl Callback {
    /// Reads a callback body (copied into the kept [`body`](Self::body)).
    ///
    /// Fails with [`WebhookError::InvalidBody`] when the body is not a JSON object of one of the
    /// known envelopes, has no job id, or has a status this crate does not know.
    pub fn parse(body: &[u8]) -> Result<Callback, WebhookError> {
        Self::parse_bytes(Bytes::copy_from_slice(body))
    }

    /// Reads a callback body, keeping it without a copy. See [`parse`](Self::parse).
    pub fn parse_bytes(body: Bytes) -> Result<Callback, WebhookError> {
        // A struct can also be read from a JSON array, by position: only objects are callbacks.
        if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(WebhookError::InvalidBody("not a JSON object"));
        }
        let fields: CallbackFields = serde_json::from_slice(&body)
            .map_err(|_| WebhookError::InvalidBody("malformed JSON, or a field given twice"))?;
        let trace_id = non_empty_text(fields.trace_id);
        let (error_code, error_message) = error_fields(fields.error);
        let (job_id, state) = match fields.success {
            // The gateway's envelope: `success` says how the task ended.
            Some(Value::Bool(success)) => {
                let job_id = non_empty_text(fields.task_id).ok_or(WebhookError::InvalidBody(
                    "gateway callback without `task_id`",
                ))?;
                let state = if success {
                    CallbackState::Succeeded
                } else {
                    CallbackState::Failed
                };
                (job_id, state)
            }
            Some(_) => return Err(WebhookError::InvalidBody("`success` is not a boolean")),
            // Replicate's prediction: `id` and `status`.
            None => {
                let (Some(job_id), Some(status)) =
                    (non_empty_text(fields.id), non_empty_text(fields.status))
                else {
                    return Err(WebhookError::InvalidBody(
                        "neither `success` and `task_id` nor `id` and `status`",
                    ));
                };
                let state = prediction_state(&status)
                    .ok_or(WebhookError::InvalidBody("unknown prediction `status`"))?;
                (job_id, state)
            }
        };
        Ok(Callback {
            body,
            job_id,
            state,
            error_code,
            error_message,
            trace_id,
        })
    }

    /// The provider's id of the job: the gateway's `task_id`, Replicate's prediction `id`.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Where the job stands.
    pub fn state(&self) -> CallbackState {
        self.state
    }

    /// The machine-readable error code (the gateway's `error.code`, such as `api_error`).
    pub fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }

    /// The human-readable error (the gateway's `error.message`, Replicate's `error`).
    pub fn error_message(&self) -> Option<&str> {
        self.error_message.as_deref()
    }

    /// The server's trace id for support (the gateway's `trace_id`).
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// The body as received, to read the result from (`data`, `output`).
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// The state a Replicate prediction `status` stands for.
fn prediction_state(status: &str) -> Option<CallbackState> {
    Some(match status {
        "starting" | "processing" => CallbackState::InProgress,
        "succeeded" => CallbackState::Succeeded,
        "failed" => CallbackState::Failed,
        // `aborted`: stopped before it started, for instance when its deadline passed.
        "canceled" | "cancelled" | "aborted" => CallbackState::Canceled,
        _ => return None,
    })
}

/// The text of a string value that is not empty.
fn non_empty_text(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    }
}

/// The code and message of an `error` field: an object with `code` and `message` (the
/// gateway), or a text (Replicate).
fn error_fields(error: Option<Value>) -> (Option<String>, Option<String>) {
    match error {
        Some(Value::String(text)) if !text.is_empty() => (None, Some(text)),
        Some(Value::Object(mut fields)) => {
            let code = match fields.remove("code") {
                Some(Value::Number(number)) => Some(number.to_string()),
                other => non_empty_text(other),
            };
            (code, non_empty_text(fields.remove("message")))
        }
        _ => (None, None),
    }
}

/// The jobs this client created and awaits a callback for, by job id, each with a value of the
/// caller's (a channel to wake the waiting request, an order number, …).
///
/// A callback is matched to its job by [`take_for`](Self::take_for); a callback for an id not in
/// the map was not asked for by this client: forged, foreign, or delivered after the job was
/// taken. Clones share one map.
pub struct PendingJobs<T> {
    jobs: Arc<Mutex<HashMap<String, T>>>,
}

impl<T> Clone for PendingJobs<T> {
    fn clone(&self) -> Self {
        PendingJobs {
            jobs: Arc::clone(&self.jobs),
        }
    }
}

impl<T> Default for PendingJobs<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for PendingJobs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingJobs")
            .field("len", &self.len())
            .finish()
    }
}

impl<T> PendingJobs<T> {
    /// An empty map.
    pub fn new() -> Self {
        PendingJobs {
            jobs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Records a job this client created, by the id the provider gave it; returns the value
    /// recorded before for that id, if any.
    pub fn insert(&self, job_id: impl Into<String>, value: T) -> Option<T> {
        self.lock().insert(job_id.into(), value)
    }

    /// The value of the callback's job, removed from the map, once the callback says the job is
    /// finished ([`CallbackState::is_terminal`]).
    ///
    /// `None` for an id not in the map (a forged or foreign callback, or one delivered again),
    /// and for a job still in progress, which stays in the map; [`contains`](Self::contains)
    /// tells those apart.
    pub fn take_for(&self, callback: &Callback) -> Option<T> {
        if !callback.state().is_terminal() {
            return None;
        }
        self.lock().remove(callback.job_id())
    }

    /// Removes a job without a callback: one cancelled or given up on by the client.
    pub fn remove(&self, job_id: &str) -> Option<T> {
        self.lock().remove(job_id)
    }

    /// Whether a job with this id awaits its callback.
    pub fn contains(&self, job_id: &str) -> bool {
        self.lock().contains_key(job_id)
    }

    /// How many jobs await their callback.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job awaits its callback.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, T>> {
        // A map operation cannot be left half done, so a panic elsewhere cannot corrupt it.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const SECRET: &str = "whsec_ZXhhbXBsZSBrZXksIG5ldmVyIHVzZSBpdCBmb3IgcmVhbA==";
    const KEY: &[u8] = b"example key, never use it for real";
    const OLD_SECRET: &str = "whsec_b2xkIGtleSwgcm90YXRlZCBvdXQ=";
    const OLD_KEY: &[u8] = b"old key, rotated out";
    const SIGNED_AT: u64 = 1_700_000_000;
    const BODY: &[u8] =
        br#"{"id":"p-1","status":"succeeded","output":["https://x/y.webp"],"error":null}"#;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        BASE64_STANDARD.encode(tag.as_slice())
    }

    fn delivery(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(WEBHOOK_ID, HeaderValue::from_str(id).unwrap());
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_str(timestamp).unwrap());
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(signature).unwrap());
        headers
    }

    fn signed_delivery(key: &[u8], id: &str, body: &[u8]) -> HeaderMap {
        let timestamp = SIGNED_AT.to_string();
        let signature = format!("v1,{}", sign(key, id, &timestamp, body));
        delivery(id, &timestamp, &signature)
    }

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(SECRET).unwrap()
    }

    #[test]
    fn whsec_secret_decodes_to_its_key() {
        assert_eq!(decode_secret(SECRET).unwrap(), KEY);
        assert_eq!(decode_secret(OLD_SECRET).unwrap(), OLD_KEY);
        // The prefix is optional, surrounding whitespace ignored.
        assert_eq!(
            decode_secret(" ZXhhbXBsZSBrZXksIG5ldmVyIHVzZSBpdCBmb3IgcmVhbA==\n").unwrap(),
            KEY
        );
    }

    #[test]
    fn valid_signature_is_accepted() {
        let headers = signed_delivery(KEY, "msg_1", BODY);
        let verified = verifier()
            .verify_at(&headers, BODY, at(SIGNED_AT + 10))
            .unwrap();
        assert_eq!(verified.id(), "msg_1");
        assert_eq!(verified.timestamp(), at(SIGNED_AT));
    }

    #[test]
    fn raw_key_verifier_accepts_the_same_delivery() {
        let headers = signed_delivery(KEY, "msg_1", BODY);
        let verifier = WebhookVerifier::from_bytes(KEY);
        assert!(verifier.verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
    }

    #[test]
    fn standard_webhooks_published_example_verifies() {
        // The example delivery of the Standard Webhooks documentation.
        let verifier = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let headers = delivery(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        let body = br#"{"test": 2432232314}"#;
        assert!(verifier
            .verify_at(&headers, body, at(1_614_265_330))
            .is_ok());
    }

    #[test]
    fn tampered_body_is_refused() {
        let headers = signed_delivery(KEY, "msg_1", BODY);
        let tampered =
            br#"{"id":"p-1","status":"succeeded","output":["https://evil/y.webp"],"error":null}"#;
        assert_eq!(
            verifier().verify_at(&headers, tampered, at(SIGNED_AT)),
            Err(WebhookError::NoValidSignature)
        );
    }

    #[test]
    fn tampered_id_is_refused() {
        let mut headers = signed_delivery(KEY, "msg_1", BODY);
        headers.insert(WEBHOOK_ID, HeaderValue::from_static("msg_2"));
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
            Err(WebhookError::NoValidSignature)
        );
    }

    #[test]
    fn tampered_timestamp_is_refused() {
        let mut headers = signed_delivery(KEY, "msg_1", BODY);
        let moved = (SIGNED_AT + 60).to_string();
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_str(&moved).unwrap());
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT + 60)),
            Err(WebhookError::NoValidSignature)
        );
    }

    #[test]
    fn stale_timestamp_is_refused() {
        let headers = signed_delivery(KEY, "msg_1", BODY);
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT + 301)),
            Err(WebhookError::StaleTimestamp { age_secs: 301 })
        );
        // The edge of the window is inside it.
        assert!(verifier()
            .verify_at(&headers, BODY, at(SIGNED_AT + 300))
            .is_ok());
    }

    #[test]
    fn future_timestamp_is_refused() {
        let headers = signed_delivery(KEY, "msg_1", BODY);
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT - 301)),
            Err(WebhookError::FutureTimestamp { ahead_secs: 301 })
        );
        assert!(verifier()
            .verify_at(&headers, BODY, at(SIGNED_AT - 300))
            .is_ok());
    }

    #[test]
    fn tolerance_is_configurable() {
        let headers = signed_delivery(KEY, "msg_1", BODY);
        let strict = verifier().tolerance(Duration::from_secs(30));
        assert_eq!(
            strict.verify_at(&headers, BODY, at(SIGNED_AT + 31)),
            Err(WebhookError::StaleTimestamp { age_secs: 31 })
        );
    }

    #[test]
    fn missing_headers_are_named() {
        for (header, name) in [
            (WEBHOOK_ID, "webhook-id"),
            (WEBHOOK_TIMESTAMP, "webhook-timestamp"),
            (WEBHOOK_SIGNATURE, "webhook-signature"),
        ] {
            let mut headers = signed_delivery(KEY, "msg_1", BODY);
            headers.remove(header.clone());
            assert_eq!(
                verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
                Err(WebhookError::MissingHeader(name))
            );
            headers.insert(header, HeaderValue::from_static(""));
            assert_eq!(
                verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
                Err(WebhookError::MissingHeader(name))
            );
        }
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for timestamp in ["12a", "-5", "+5", "1.5", "99999999999999999999", "1 2"] {
            let mut headers = signed_delivery(KEY, "msg_1", BODY);
            headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_str(timestamp).unwrap());
            assert_eq!(
                verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
                Err(WebhookError::InvalidTimestamp),
                "{timestamp}"
            );
        }
        // Past what `SystemTime` holds on some platforms, or not: refused or stale, never a panic.
        let mut headers = signed_delivery(KEY, "msg_1", BODY);
        headers.insert(
            WEBHOOK_TIMESTAMP,
            HeaderValue::from_str(&u64::MAX.to_string()).unwrap(),
        );
        assert!(verifier().verify_at(&headers, BODY, at(SIGNED_AT)).is_err());
    }

    #[test]
    fn second_of_several_signatures_may_match() {
        let timestamp = SIGNED_AT.to_string();
        let wrong = sign(KEY, "msg_1", &timestamp, b"another body");
        let right = sign(KEY, "msg_1", &timestamp, BODY);
        let headers = delivery("msg_1", &timestamp, &format!("v1,{wrong} v1,{right}"));
        assert!(verifier().verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
        // Garbage entries around the match are skipped.
        let headers = delivery(
            "msg_1",
            &timestamp,
            &format!("v1,not-base64!  nocomma v1, v1,{right}"),
        );
        assert!(verifier().verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
    }

    #[test]
    fn signatures_in_repeated_headers_are_all_read() {
        let timestamp = SIGNED_AT.to_string();
        let wrong = sign(KEY, "msg_1", &timestamp, b"another body");
        let right = sign(KEY, "msg_1", &timestamp, BODY);
        let mut headers = delivery("msg_1", &timestamp, &format!("v1,{wrong}"));
        headers.append(
            WEBHOOK_SIGNATURE,
            HeaderValue::from_str(&format!("v1,{right}")).unwrap(),
        );
        assert!(verifier().verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
    }

    #[test]
    fn rotated_verifier_accepts_the_old_key() {
        let rotated = verifier().with_secret(OLD_SECRET).unwrap();
        let headers = signed_delivery(OLD_KEY, "msg_1", BODY);
        assert!(rotated.verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
        let headers = signed_delivery(KEY, "msg_2", BODY);
        assert!(rotated.verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
        // Without the old key, its deliveries are refused.
        let headers = signed_delivery(OLD_KEY, "msg_1", BODY);
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
            Err(WebhookError::NoValidSignature)
        );
    }

    #[test]
    fn other_signature_versions_are_ignored() {
        let timestamp = SIGNED_AT.to_string();
        let right = sign(KEY, "msg_1", &timestamp, BODY);
        let headers = delivery("msg_1", &timestamp, &format!("v2,{right}"));
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
            Err(WebhookError::NoValidSignature)
        );
        let headers = delivery("msg_1", &timestamp, &format!("v2,{right} v1,{right}"));
        assert!(verifier().verify_at(&headers, BODY, at(SIGNED_AT)).is_ok());
    }

    #[test]
    fn truncated_signature_is_refused() {
        let timestamp = SIGNED_AT.to_string();
        let mut mac = HmacSha256::new_from_slice(KEY).unwrap();
        mac.update(format!("msg_1.{timestamp}.").as_bytes());
        mac.update(BODY);
        let tag = mac.finalize().into_bytes();
        let short = BASE64_STANDARD.encode(&tag.as_slice()[..16]);
        let headers = delivery("msg_1", &timestamp, &format!("v1,{short}"));
        assert_eq!(
            verifier().verify_at(&headers, BODY, at(SIGNED_AT)),
            Err(WebhookError::NoValidSignature)
        );
    }

    #[test]
    fn invalid_and_empty_secrets_are_refused() {
        assert_eq!(
            WebhookVerifier::new("whsec_not*base64").unwrap_err(),
            WebhookError::InvalidSecret
        );
        assert_eq!(
            WebhookVerifier::new("whsec_").unwrap_err(),
            WebhookError::InvalidSecret
        );
        let text = WebhookVerifier::new("whsec_sup3r*secret")
            .unwrap_err()
            .to_string();
        assert!(!text.contains("sup3r"), "{text}");
    }

    #[test]
    fn empty_raw_key_accepts_nothing() {
        let verifier = WebhookVerifier::from_bytes(Vec::new());
        let headers = signed_delivery(b"", "msg_1", BODY);
        assert_eq!(
            verifier.verify_at(&headers, BODY, at(SIGNED_AT)),
            Err(WebhookError::NoValidSignature)
        );
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let verifier = verifier().with_secret(OLD_SECRET).unwrap();
        let text = format!("{verifier:?}");
        assert!(text.contains("keys: 2"), "{text}");
        assert!(text.contains("tolerance"), "{text}");
        for secret in [SECRET, OLD_SECRET] {
            let encoded = secret.trim_start_matches(SECRET_PREFIX);
            assert!(!text.contains(encoded), "{text}");
        }
        assert!(!text.contains("example key"), "{text}");
        assert!(!text.contains("old key"), "{text}");
        let bytes = format!("{KEY:?}");
        assert!(!text.contains(bytes.trim_matches(['[', ']'])), "{text}");
    }

    #[test]
    fn error_texts_name_no_signature() {
        let timestamp = SIGNED_AT.to_string();
        let right = sign(KEY, "msg_1", &timestamp, BODY);
        let headers = delivery("msg_1", &timestamp, &format!("v1,{right}"));
        let error = verifier()
            .verify_at(&headers, b"other", at(SIGNED_AT))
            .unwrap_err();
        let text = error.to_string();
        assert!(!text.contains(&right), "{text}");
    }

    fn verified(id: &str, timestamp: u64) -> VerifiedWebhook {
        VerifiedWebhook {
            id: id.to_owned(),
            timestamp: at(timestamp),
        }
    }

    #[test]
    fn replay_is_refused_within_the_window() {
        let guard = ReplayGuard::new(DEFAULT_TOLERANCE);
        let first = verified("msg_1", SIGNED_AT);
        assert_eq!(guard.check(&first, at(SIGNED_AT + 1)), Ok(()));
        assert_eq!(
            guard.check(&first, at(SIGNED_AT + 2)),
            Err(WebhookError::Replayed {
                id: "msg_1".to_owned()
            })
        );
        // A clone shares the record.
        assert!(guard.clone().check(&first, at(SIGNED_AT + 3)).is_err());
        // Another id is accepted.
        assert_eq!(
            guard.check(&verified("msg_2", SIGNED_AT), at(SIGNED_AT + 3)),
            Ok(())
        );
    }

    #[test]
    fn id_is_accepted_again_after_the_window() {
        let guard = ReplayGuard::new(DEFAULT_TOLERANCE);
        assert_eq!(
            guard.check(&verified("msg_1", SIGNED_AT), at(SIGNED_AT)),
            Ok(())
        );
        // Sent again with a fresh timestamp once the first one left the window.
        let later = SIGNED_AT + 301;
        assert_eq!(guard.check(&verified("msg_1", later), at(later)), Ok(()));
        assert_eq!(guard.lock().timestamp_by_id.len(), 1);
        // A delivery older than the window could not be remembered long enough: refused.
        assert_eq!(
            guard.check(&verified("msg_3", SIGNED_AT), at(later)),
            Err(WebhookError::StaleTimestamp { age_secs: 301 })
        );
    }

    #[test]
    fn future_dated_id_is_remembered_until_its_timestamp_leaves_the_window() {
        let guard = ReplayGuard::new(DEFAULT_TOLERANCE);
        let ahead = verified("msg_1", SIGNED_AT + 300);
        assert_eq!(guard.check(&ahead, at(SIGNED_AT)), Ok(()));
        // Still a replay 9 minutes later: the verifier would still accept it.
        assert!(guard.check(&ahead, at(SIGNED_AT + 540)).is_err());
    }

    #[test]
    fn full_guard_forgets_the_oldest_id() {
        let guard = ReplayGuard::new(DEFAULT_TOLERANCE).capacity(2);
        assert!(guard
            .check(&verified("old", SIGNED_AT), at(SIGNED_AT))
            .is_ok());
        assert!(guard
            .check(&verified("mid", SIGNED_AT + 1), at(SIGNED_AT + 1))
            .is_ok());
        assert!(guard
            .check(&verified("new", SIGNED_AT + 2), at(SIGNED_AT + 2))
            .is_ok());
        assert_eq!(guard.lock().timestamp_by_id.len(), 2);
        assert!(guard
            .check(&verified("old", SIGNED_AT), at(SIGNED_AT + 3))
            .is_ok());
        assert!(guard
            .check(&verified("new", SIGNED_AT + 2), at(SIGNED_AT + 3))
            .is_err());
    }

    #[test]
    fn forgotten_id_is_accepted_again() {
        let guard = ReplayGuard::new(DEFAULT_TOLERANCE);
        let first = verified("msg_1", SIGNED_AT);
        assert!(guard.check(&first, at(SIGNED_AT)).is_ok());
        assert!(guard.forget("msg_1"));
        assert!(!guard.forget("msg_1"));
        assert!(guard.check(&first, at(SIGNED_AT)).is_ok());
        let seen = guard.lock();
        assert_eq!(seen.timestamp_by_id.len(), seen.by_timestamp.len());
    }

    #[test]
    fn gateway_success_callback_is_read() {
        let body = br#"{"success":true,"task_id":"t-1","trace_id":"tr-9","data":{"image_url":"https://x/y.png"}}"#;
        let callback = Callback::parse(body).unwrap();
        assert_eq!(callback.job_id(), "t-1");
        assert_eq!(callback.state(), CallbackState::Succeeded);
        assert_eq!(callback.trace_id(), Some("tr-9"));
        assert_eq!(callback.error_code(), None);
        assert_eq!(callback.error_message(), None);
        assert_eq!(&callback.body()[..], &body[..]);
    }

    #[test]
    fn gateway_failure_callback_is_read() {
        let body = br#"{"success":false,"task_id":"t-1","error":{"code":"api_error","message":"upstream failed"},"trace_id":"tr-9"}"#;
        let callback = Callback::parse_bytes(Bytes::from_static(body)).unwrap();
        assert_eq!(callback.job_id(), "t-1");
        assert_eq!(callback.state(), CallbackState::Failed);
        assert_eq!(callback.error_code(), Some("api_error"));
        assert_eq!(callback.error_message(), Some("upstream failed"));
        assert_eq!(callback.trace_id(), Some("tr-9"));
    }

    #[test]
    fn replicate_prediction_callbacks_are_read() {
        let callback = Callback::parse(BODY).unwrap();
        assert_eq!(callback.job_id(), "p-1");
        assert_eq!(callback.state(), CallbackState::Succeeded);
        assert_eq!(callback.error_message(), None);

        let failed = br#"{"id":"p-2","status":"failed","error":"CUDA out of memory","output":null,"urls":{"get":"https://api.replicate.com/v1/predictions/p-2"}}"#;
        let callback = Callback::parse(failed).unwrap();
        assert_eq!(callback.state(), CallbackState::Failed);
        assert_eq!(callback.error_message(), Some("CUDA out of memory"));
        assert_eq!(callback.error_code(), None);

        for (status, state) in [
            ("starting", CallbackState::InProgress),
            ("processing", CallbackState::InProgress),
            ("canceled", CallbackState::Canceled),
            ("aborted", CallbackState::Canceled),
        ] {
            let body = format!(r#"{{"id":"p-3","status":"{status}","error":null}}"#);
            assert_eq!(Callback::parse(body.as_bytes()).unwrap().state(), state);
        }
    }

    #[test]
    fn unknown_bodies_are_refused() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"[true,\"t-1\"]",
            b"{\"success\":true,\"task_id\":\"t-1\"",
            b"{\"success\":true}",
            b"{\"success\":\"yes\",\"task_id\":\"t-1\"}",
            b"{\"id\":\"p-1\",\"status\":\"teleported\"}",
            b"{\"id\":\"p-1\"}",
            b"{\"success\":true,\"success\":false,\"task_id\":\"t-1\"}",
        ] {
            assert!(
                matches!(Callback::parse(body), Err(WebhookError::InvalidBody(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn pending_jobs_match_a_known_id_and_ignore_an_unknown_one() {
        let pending = PendingJobs::new();
        pending.insert("t-1", "order 7");
        assert!(pending.contains("t-1"));
        assert_eq!(pending.len(), 1);

        let foreign = Callback::parse(br#"{"success":true,"task_id":"t-666"}"#).unwrap();
        assert_eq!(pending.take_for(&foreign), None);
        assert!(pending.contains("t-1"));

        let progress = Callback::parse(br#"{"id":"t-1","status":"processing"}"#).unwrap();
        assert_eq!(pending.take_for(&progress), None);
        assert!(pending.contains("t-1"));

        let done = Callback::parse(br#"{"success":true,"task_id":"t-1"}"#).unwrap();
        assert_eq!(pending.take_for(&done), Some("order 7"));
        assert!(pending.is_empty());
        // The same callback delivered again finds nothing.
        assert_eq!(pending.take_for(&done), None);
    }
}
