//! The server's word on when to come back: `Retry-After` and its cousins.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::duration_text::{seconds_to_duration, MAX_HINT};
use crate::pacing::announced::{header_str, until, Announced, Family};

/// How long the server asked the client to wait, and where it said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitHint {
    delay: Duration,
    source: WaitHintSource,
}

/// Where a [`WaitHint`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitHintSource {
    /// `retry-after-ms` (OpenAI, Azure OpenAI): milliseconds.
    RetryAfterMs,
    /// `Retry-After` (RFC 9110): delta-seconds or an HTTP-date; or Kong AI Gateway's
    /// `X-AI-RateLimit-Retry-After`, which stands in for it.
    RetryAfter,
    /// The body: Google's `RetryInfo.retryDelay`, a `retry_after` field, Hugging Face's
    /// `estimated_time`.
    Body,
    /// The IETF `RateLimit` field (`reset=` or `t=`) or `RateLimit-Reset`.
    RateLimitReset,
    /// OpenAI's `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` durations.
    OpenAiReset,
    /// Anthropic's `anthropic-ratelimit-*-reset` RFC 3339 times.
    AnthropicReset,
    /// `X-RateLimit-Reset`: epoch seconds (or, below 10^9, delta-seconds).
    XRateLimitReset,
    /// The [`Pacer`](crate::pacing::Pacer): the wait for the request's turn under the limits
    /// its scope announced, or for the scope's cooldown.
    Pacer,
}

impl WaitHint {
    /// A hint of `delay` from `source`.
    pub fn new(delay: Duration, source: WaitHintSource) -> Self {
        WaitHint { delay, source }
    }

    /// How long to wait.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Where the server said so.
    pub fn source(&self) -> WaitHintSource {
        self.source
    }

    /// Reads the response headers for a wait hint, falling back to `body_hint` (from the
    /// classification) after `retry-after-ms` and `Retry-After`.
    ///
    /// Precedence: `retry-after-ms`, `Retry-After`, the body, `RateLimit` / `RateLimit-Reset`,
    /// OpenAI's `x-ratelimit-reset-*`, Anthropic's `anthropic-ratelimit-*-reset`,
    /// `X-RateLimit-Reset`. For the per-resource resets, the resources reported exhausted
    /// (`remaining` 0) decide, else the latest reset. Malformed values are skipped; dates in the
    /// past mean no wait. `now` is the wall clock, for HTTP-dates and epoch times.
    pub fn from_response(
        headers: &HeaderMap,
        body_hint: Option<Duration>,
        now: SystemTime,
    ) -> Option<WaitHint> {
        let hint =
            |delay: Option<Duration>, source| delay.map(|d| WaitHint::new(d.min(MAX_HINT), source));
        hint(retry_after_ms(headers), WaitHintSource::RetryAfterMs)
            .or_else(|| hint(retry_after(headers, now), WaitHintSource::RetryAfter))
            .or_else(|| hint(body_hint, WaitHintSource::Body))
            .or_else(|| {
                let (reset, family) = Announced::reset_to_wait_for(headers, now)?;
                let source = match family {
                    Family::Ietf => WaitHintSource::RateLimitReset,
                    Family::OpenAi => WaitHintSource::OpenAiReset,
                    Family::Anthropic => WaitHintSource::AnthropicReset,
                    Family::XRateLimit => WaitHintSource::XRateLimitReset,
                };
                hint(Some(reset), source)
            })
    }
}

impl WaitHintSource {
    /// The stable name of the source, as tools and metric labels print it (`retry-after`).
    pub const fn as_str(self) -> &'static str {
        match self {
            WaitHintSource::RetryAfterMs => "retry-after-ms",
            WaitHintSource::RetryAfter => "retry-after",
            WaitHintSource::Body => "body",
            WaitHintSource::RateLimitReset => "ratelimit",
            WaitHintSource::OpenAiReset => "x-ratelimit-reset-requests/tokens",
            WaitHintSource::AnthropicReset => "anthropic-ratelimit-reset",
            WaitHintSource::XRateLimitReset => "x-ratelimit-reset",
            WaitHintSource::Pacer => "pacer",
        }
    }
}

impl fmt::Display for WaitHintSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `x-should-retry: true|false` (OpenAI, Anthropic) or `x-fal-retryable: true|false` (fal):
/// the server's own verdict.
pub(crate) fn server_says_retry(headers: &HeaderMap) -> Option<bool> {
    let value =
        header_str(headers, "x-should-retry").or_else(|| header_str(headers, "x-fal-retryable"))?;
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn retry_after_ms(headers: &HeaderMap) -> Option<Duration> {
    let ms: f64 = header_str(headers, "retry-after-ms")?.parse().ok()?;
    seconds_to_duration(ms / 1000.0)
}

/// `Retry-After`, or Kong AI Gateway's `X-AI-RateLimit-Retry-After` (delta-seconds), sent in
/// its place by the AI rate-limiting plugin.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header_str(headers, "retry-after")
        .or_else(|| header_str(headers, "x-ai-ratelimit-retry-after"))?;
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // delta-seconds; overly long digit strings saturate instead of failing.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)).min(MAX_HINT));
    }
    httpdate::parse_http_date(value)
        .ok()
        .map(|date| until(date, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::announced::test_support::{headers, now};
    use http::HeaderValue;

    fn hint(pairs: &[(&'static str, &str)]) -> Option<WaitHint> {
        WaitHint::from_response(&headers(pairs), None, now())
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        assert_eq!(
            hint(&[("retry-after", "2")]),
            Some(WaitHint::new(secs(2), WaitHintSource::RetryAfter))
        );
        let date = httpdate::fmt_http_date(now() + secs(30));
        assert_eq!(hint(&[("retry-after", &date)]).unwrap().delay(), secs(30));
        let past = httpdate::fmt_http_date(now() - secs(30));
        assert_eq!(
            hint(&[("retry-after", &past)]).unwrap().delay(),
            Duration::ZERO
        );
        assert_eq!(
            hint(&[("retry-after", "99999999999999999999999")])
                .unwrap()
                .delay(),
            MAX_HINT
        );
    }

    #[test]
    fn retry_after_ms_wins() {
        let h = hint(&[("retry-after", "2"), ("retry-after-ms", "1500.5")]).unwrap();
        assert_eq!(h.source(), WaitHintSource::RetryAfterMs);
        assert_eq!(h.delay(), Duration::from_micros(1_500_500));
    }

    #[test]
    fn ietf_ratelimit_fields() {
        assert_eq!(hint(&[("ratelimit-reset", "7")]).unwrap().delay(), secs(7));
        assert_eq!(
            hint(&[("ratelimit", "limit=100, remaining=0, reset=9")])
                .unwrap()
                .delay(),
            secs(9)
        );
        let h = hint(&[("ratelimit", "\"default\";r=0;t=12")]).unwrap();
        assert_eq!(
            (h.delay(), h.source()),
            (secs(12), WaitHintSource::RateLimitReset)
        );
    }

    #[test]
    fn openai_resets_follow_the_exhausted_resource() {
        let h = hint(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
        ])
        .unwrap();
        assert_eq!(
            (h.delay(), h.source()),
            (secs(360), WaitHintSource::OpenAiReset)
        );
        let h = hint(&[
            ("x-ratelimit-reset-requests", "250ms"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-tokens", "1000"),
        ])
        .unwrap();
        assert_eq!(h.delay(), Duration::from_millis(250));
        assert_eq!(
            hint(&[
                ("x-ratelimit-reset-requests", "250ms"),
                ("x-ratelimit-reset-tokens", "2s")
            ])
            .unwrap()
            .delay(),
            secs(2)
        );
    }

    #[test]
    fn anthropic_rfc3339_resets() {
        let at = humantime::format_rfc3339(now() + secs(20)).to_string();
        let h = hint(&[
            ("anthropic-ratelimit-requests-reset", &at),
            ("anthropic-ratelimit-requests-remaining", "0"),
        ])
        .unwrap();
        assert_eq!(
            (h.delay(), h.source()),
            (secs(20), WaitHintSource::AnthropicReset)
        );
    }

    #[test]
    fn x_ratelimit_reset_epoch_and_delta() {
        let epoch = (1_700_000_000u64 + 45).to_string();
        assert_eq!(
            hint(&[("x-ratelimit-reset", &epoch)]).unwrap().delay(),
            secs(45)
        );
        let epoch_ms = ((1_700_000_000u64 + 5) * 1000).to_string();
        assert_eq!(
            hint(&[("x-ratelimit-reset", &epoch_ms)]).unwrap().delay(),
            secs(5)
        );
        assert_eq!(
            hint(&[("x-ratelimit-reset", "3")]).unwrap().delay(),
            secs(3)
        );
    }

    #[test]
    fn body_hint_ranks_after_retry_after() {
        let map = headers(&[("x-ratelimit-reset", "3")]);
        let h = WaitHint::from_response(&map, Some(secs(34)), now()).unwrap();
        assert_eq!((h.delay(), h.source()), (secs(34), WaitHintSource::Body));
        let map = headers(&[("retry-after", "1")]);
        assert_eq!(
            WaitHint::from_response(&map, Some(secs(34)), now())
                .unwrap()
                .delay(),
            secs(1)
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        for (name, value) in [
            ("retry-after", "soon"),
            ("retry-after", "-5"),
            ("retry-after", "1.5"),
            ("retry-after-ms", "NaN"),
            ("retry-after-ms", "-1"),
            ("ratelimit", "reset=abc"),
            ("x-ratelimit-reset-requests", "5 minutes"),
            ("anthropic-ratelimit-requests-reset", "tomorrow"),
            ("x-ratelimit-reset", "-1"),
            ("x-ratelimit-reset", "inf"),
        ] {
            assert_eq!(hint(&[(name, value)]), None, "{name}: {value}");
        }
        let mut map = HeaderMap::new();
        map.insert("retry-after", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(WaitHint::from_response(&map, None, now()), None);
    }

    #[test]
    fn should_retry_header() {
        assert_eq!(
            server_says_retry(&headers(&[("x-should-retry", "true")])),
            Some(true)
        );
        assert_eq!(
            server_says_retry(&headers(&[("x-should-retry", "FALSE")])),
            Some(false)
        );
        assert_eq!(
            server_says_retry(&headers(&[("x-should-retry", "maybe")])),
            None
        );
        assert_eq!(server_says_retry(&HeaderMap::new()), None);
        assert_eq!(
            server_says_retry(&headers(&[("x-fal-retryable", "false")])),
            Some(false)
        );
    }
}
