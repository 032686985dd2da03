//! Durations written as text by servers: Go's `6m0s` / `250ms`, protobuf JSON's `34s` / `1.5s`,
//! and plain decimal seconds. Shared by the body classifier and the header wait hints.

use std::time::Duration;

/// The longest duration any hint may express; larger values are clamped so that arithmetic on
/// them cannot overflow.
pub(crate) const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Parses a Go-style duration (`1h2m3.5s`, `250ms`, `6m0s`, `1.5s`, `0s`), as OpenAI's
/// `x-ratelimit-reset-*` headers and Google's `retryDelay` use.
///
/// Returns `None` for anything malformed, negative or empty; never panics.
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut rest = text.as_bytes();
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        // The slice holds only ASCII digits and dots, so it is valid UTF-8.
        let number: f64 = std::str::from_utf8(&rest[..number_len])
            .ok()?
            .parse()
            .ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .iter()
            .position(|b| b.is_ascii_digit() || *b == b'.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            b"h" => 3600.0,
            b"m" => 60.0,
            b"s" => 1.0,
            b"ms" => 1e-3,
            b"us" | b"\xc2\xb5s" => 1e-6,
            b"ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    seconds_to_duration(total)
}

/// Converts a non-negative, finite number of seconds into a duration, clamped to [`MAX_HINT`].
pub(crate) fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(seconds.min(MAX_HINT.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_and_protobuf_durations_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("1s"), Some(ms(1000)));
        assert_eq!(parse_go_duration("34s"), Some(ms(34_000)));
        assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_go_duration("250ms"), Some(ms(250)));
        assert_eq!(parse_go_duration("6m0s"), Some(ms(360_000)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(ms(3_723_000)));
        assert_eq!(parse_go_duration("0s"), Some(ms(0)));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "", "s", "1", "1x", "-1s", "1..2s", "ms", "1s2", "NaNs", "1e3s",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_values_are_clamped_not_overflowed() {
        assert_eq!(parse_go_duration("99999999999999999999h"), Some(MAX_HINT));
        assert_eq!(seconds_to_duration(f64::INFINITY), None);
        assert_eq!(seconds_to_duration(-0.5), None);
    }
}
