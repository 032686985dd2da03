//! The canonical taxonomy of failures and the retry verdict each one carries.

use std::fmt;

use http::StatusCode;

/// What went wrong, in one vocabulary for every provider.
///
/// Each kind carries a default [`RetryVerdict`]; see [`ErrorKind::default_verdict`].
/// The snake_case name ([`ErrorKind::as_str`]) is stable and is what tools print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or a parameter is invalid (400, 422, `invalid_request_error`).
    InvalidRequest,
    /// The credential is missing, wrong, revoked or expired (401, `invalid_token`).
    Unauthenticated,
    /// The credential is valid but not allowed to do this (403 scope, disabled key).
    PermissionDenied,
    /// Balance, credits, quota or spending limit exhausted (402, `insufficient_quota`).
    QuotaExhausted,
    /// The input or output was rejected by moderation (`content_policy_violation`).
    ContentPolicy,
    /// The endpoint, model, app or task does not exist (404, `no_api`).
    NotFound,
    /// The payload is larger than the service accepts (413, `file_too_large`).
    PayloadTooLarge,
    /// The service does not support what was asked (format, feature, method).
    Unsupported,
    /// A conflicting request is in flight, such as an idempotency key in use (409).
    Conflict,
    /// Too many requests for the caller's rate limit (429, `rate_limit_error`).
    RateLimited,
    /// Too many requests running at once for the caller (`CONCURRENT_GENERATION_LIMIT`).
    ConcurrencyLimited,
    /// The service as a whole is busy or a model is still loading (503, 529).
    Overloaded,
    /// The server or an upstream timed out (408, 504).
    Timeout,
    /// The server or an upstream failed internally (500, 502).
    ServerError,
    /// The connection failed or the body was cut off before an answer was complete.
    Transport,
    /// A failure that no rule recognised.
    Unknown,
}

/// What a failure of some kind allows a client to do next.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryVerdict {
    /// Retrying the same request cannot succeed: fix the input, the credential or the account.
    Never,
    /// The failure is likely transient: retry after an exponential backoff.
    Backoff,
    /// The server knows when to come back: wait as long as it says, else back off.
    ServerWait,
}

impl ErrorKind {
    /// Every kind, in declaration order. A slice, so that adding a kind changes no type.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::InvalidRequest,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::QuotaExhausted,
        ErrorKind::ContentPolicy,
        ErrorKind::NotFound,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Unsupported,
        ErrorKind::Conflict,
        ErrorKind::RateLimited,
        ErrorKind::ConcurrencyLimited,
        ErrorKind::Overloaded,
        ErrorKind::Timeout,
        ErrorKind::ServerError,
        ErrorKind::Transport,
        ErrorKind::Unknown,
    ];

    /// The verdict this kind carries by default.
    ///
    /// | kind | verdict |
    /// | --- | --- |
    /// | `InvalidRequest`, `Unauthenticated`, `PermissionDenied`, `QuotaExhausted`, `ContentPolicy`, `NotFound`, `PayloadTooLarge`, `Unsupported` | `Never` |
    /// | `Conflict`, `ConcurrencyLimited`, `Timeout`, `ServerError`, `Transport` | `Backoff` |
    /// | `RateLimited`, `Overloaded` | `ServerWait` |
    /// | `Unknown` | `Never`; [`Classification::verdict`](super::Classification::verdict) refines it by status (5xx backs off) |
    ///
    /// Whether a retry is *safe* (the method, an idempotency key, a replayable body) is the
    /// retry layer's decision, not the taxonomy's.
    pub const fn default_verdict(self) -> RetryVerdict {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::Unauthenticated
            | ErrorKind::PermissionDenied
            | ErrorKind::QuotaExhausted
            | ErrorKind::ContentPolicy
            | ErrorKind::NotFound
            | ErrorKind::PayloadTooLarge
            | ErrorKind::Unsupported
            | ErrorKind::Unknown => RetryVerdict::Never,
            ErrorKind::Conflict
            | ErrorKind::ConcurrencyLimited
            | ErrorKind::Timeout
            | ErrorKind::ServerError
            | ErrorKind::Transport => RetryVerdict::Backoff,
            ErrorKind::RateLimited | ErrorKind::Overloaded => RetryVerdict::ServerWait,
        }
    }

    /// The stable snake_case name of the kind, as tools print it (`rate_limited`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::ContentPolicy => "content_policy",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ConcurrencyLimited => "concurrency_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Transport => "transport",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// The kind an HTTP status implies on its own, or `None` for a status that is not a failure.
    ///
    /// This is the fallback when a body carries no recognised code. Informational, success and
    /// redirect statuses are not failures. Cloudflare's 52x origin errors count as server errors
    /// (524, its origin timeout, as a timeout); Cohere's 498 is an invalid token.
    pub fn from_status(status: StatusCode) -> Option<ErrorKind> {
        let kind = match status.as_u16() {
            0..=399 => return None,
            400 | 422 => ErrorKind::InvalidRequest,
            401 | 407 | 498 => ErrorKind::Unauthenticated,
            402 => ErrorKind::QuotaExhausted,
            403 | 451 => ErrorKind::PermissionDenied,
            404 | 410 => ErrorKind::NotFound,
            405 | 406 | 415 | 501 | 505 => ErrorKind::Unsupported,
            408 | 504 | 524 => ErrorKind::Timeout,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Overloaded,
            500..=599 => ErrorKind::ServerError,
            _ => ErrorKind::Unknown,
        };
        Some(kind)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RetryVerdict {
    /// Whether this verdict allows another attempt at all.
    pub const fn allows_retry(self) -> bool {
        !matches!(self, RetryVerdict::Never)
    }

    /// The stable snake_case name of the verdict.
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryVerdict::Never => "never",
            RetryVerdict::Backoff => "backoff",
            RetryVerdict::ServerWait => "server_wait",
        }
    }
}

impl fmt::Display for RetryVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn status_fallback_covers_the_seed_statuses() {
        let table = [
            (400, ErrorKind::InvalidRequest),
            (401, ErrorKind::Unauthenticated),
            (402, ErrorKind::QuotaExhausted),
            (403, ErrorKind::PermissionDenied),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Timeout),
            (409, ErrorKind::Conflict),
            (413, ErrorKind::PayloadTooLarge),
            (422, ErrorKind::InvalidRequest),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::ServerError),
            (502, ErrorKind::ServerError),
            (503, ErrorKind::Overloaded),
            (504, ErrorKind::Timeout),
            (529, ErrorKind::Overloaded),
            (418, ErrorKind::Unknown),
        ];
        for (status, kind) in table {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(ErrorKind::from_status(status), Some(kind), "{status}");
        }
        for ok in [200, 201, 202, 204, 301, 304] {
            assert_eq!(
                ErrorKind::from_status(StatusCode::from_u16(ok).unwrap()),
                None
            );
        }
    }

    #[test]
    fn transient_kinds_allow_retry_and_permanent_ones_do_not() {
        assert!(!ErrorKind::QuotaExhausted.default_verdict().allows_retry());
        assert!(!ErrorKind::ContentPolicy.default_verdict().allows_retry());
        assert_eq!(
            ErrorKind::RateLimited.default_verdict(),
            RetryVerdict::ServerWait
        );
        assert_eq!(
            ErrorKind::Overloaded.default_verdict(),
            RetryVerdict::ServerWait
        );
        assert_eq!(ErrorKind::Timeout.default_verdict(), RetryVerdict::Backoff);
    }
}
