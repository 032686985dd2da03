//! The limits a server announces in an answer's headers, in the four families providers use.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::duration_text::{parse_go_duration, seconds_to_duration, MAX_HINT};

/// Which header family an answer announced its limits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// The IETF `RateLimit` / `RateLimit-Policy` fields (structured or the older
    /// `limit=, remaining=, reset=` form) and `RateLimit-Limit/Remaining/Reset`.
    Ietf,
    /// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (Azure OpenAI also spells
    /// them `x-rate-limit-…`).
    OpenAi,
    /// Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`.
    Anthropic,
    /// The common `X-RateLimit-Limit/Remaining/Reset`.
    XRateLimit,
}

/// What one request costs against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// One per request.
    Requests,
    /// The request's token cost.
    Tokens,
}

/// One limit as announced: any of its fields may be missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnnouncedLimit {
    /// `requests`, `tokens`, `input-tokens`, `output-tokens`, or an IETF policy's name.
    pub(crate) name: Cow<'static, str>,
    pub(crate) unit: Unit,
    pub(crate) limit: Option<f64>,
    pub(crate) remaining: Option<f64>,
    /// Time until the limit is whole again (or its window restarts).
    pub(crate) reset: Option<Duration>,
    /// The window the limit is counted over, when the server says it (IETF `w=`).
    pub(crate) window: Option<Duration>,
}

impl AnnouncedLimit {
    fn named(name: impl Into<Cow<'static, str>>, unit: Unit) -> Self {
        AnnouncedLimit {
            name: name.into(),
            unit,
            limit: None,
            remaining: None,
            reset: None,
            window: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// The limits one answer announced, in the first family found (IETF, OpenAI, Anthropic,
/// `X-RateLimit`); empty, without allocating, when the answer has no limit header.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Announced {
    pub(crate) family: Option<Family>,
    pub(crate) limits: Vec<AnnouncedLimit>,
}

impl Announced {
    /// Whether `headers` hold any limit header: one pass over the names, no allocation.
    pub(crate) fn any_in(headers: &HeaderMap) -> bool {
        families_present(headers).next().is_some()
    }

    /// Reads `headers`. `now` is the wall clock, for Anthropic's RFC 3339 times and epoch resets.
    pub(crate) fn parse(headers: &HeaderMap, now: SystemTime) -> Announced {
        for family in families_present(headers) {
            let limits = family.parse(headers, now);
            if !limits.is_empty() {
                return Announced {
                    family: Some(family),
                    limits,
                };
            }
        }
        Announced::default()
    }

    /// The first family, in the order of [`Announced::parse`], that gives a reset, and the reset
    /// to wait for: the exhausted limits decide (the longest of them), else the longest reset of
    /// all, so the client is never back before the limit lifts.
    pub(crate) fn reset_to_wait_for(
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<(Duration, Family)> {
        families_present(headers).find_map(|family| {
            let mut exhausted: Option<Duration> = None;
            let mut any: Option<Duration> = None;
            for limit in family.parse(headers, now) {
                let Some(reset) = limit.reset else { continue };
                any = any.max(Some(reset));
                if limit.remaining.is_some_and(|r| r <= 0.0) {
                    exhausted = exhausted.max(Some(reset));
                }
            }
            exhausted.or(any).map(|reset| (reset, family))
        })
    }
}

impl Family {
    const ALL: [Family; 4] = [
        Family::Ietf,
        Family::OpenAi,
        Family::Anthropic,
        Family::XRateLimit,
    ];

    fn parse(self, headers: &HeaderMap, now: SystemTime) -> Vec<AnnouncedLimit> {
        match self {
            Family::Ietf => ietf(headers),
            Family::OpenAi => openai(headers),
            Family::Anthropic => anthropic(headers, now),
            Family::XRateLimit => x_rate_limit(headers, now),
        }
    }
}

/// The families whose headers appear in `headers`, in precedence order: one pass over the
/// names, no allocation.
fn families_present(headers: &HeaderMap) -> impl Iterator<Item = Family> {
    let mut present = [false; 4];
    for name in headers.keys() {
        let name = name.as_str();
        match name.as_bytes().first() {
            Some(b'r') if name.starts_with("ratelimit") => present[0] = true,
            Some(b'x') if name.starts_with("x-ratelimit-") => {
                if name.ends_with("-requests") || name.ends_with("-tokens") {
                    present[1] = true
                } else {
                    present[3] = true
                }
            }
            // Azure's spelling of OpenAI's headers.
            Some(b'x')
                if name.starts_with("x-rate-limit-")
                    && (name.ends_with("-requests") || name.ends_with("-tokens")) =>
            {
                present[1] = true
            }
            Some(b'a') if name.starts_with("anthropic-ratelimit-") => present[2] = true,
            _ => {}
        }
    }
    Family::ALL
        .into_iter()
        .zip(present)
        .filter_map(|(family, found)| found.then_some(family))
}

/// A header's value as trimmed, non-empty text.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A count: a finite number, negatives read as zero (a server over its limit).
fn count(text: &str) -> Option<f64> {
    let n: f64 = text.trim().parse().ok()?;
    n.is_finite().then_some(n.clamp(0.0, 1e15))
}

fn seconds(text: &str) -> Option<Duration> {
    seconds_to_duration(text.trim().parse().ok()?)
}

/// The wait from `now` until `time` (none if it is past), at most [`MAX_HINT`].
pub(crate) fn until(time: SystemTime, now: SystemTime) -> Duration {
    time.duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(MAX_HINT)
}

/// `ratelimit-*`: the structured `RateLimit: "default";r=50;t=30` with
/// `RateLimit-Policy: "default";q=100;w=60`, the older `RateLimit: limit=100, remaining=50,
/// reset=30`, or `RateLimit-Limit` / `-Remaining` / `-Reset`.
fn ietf(headers: &HeaderMap) -> Vec<AnnouncedLimit> {
    let mut limits: Vec<AnnouncedLimit> = Vec::new();
    let field = header_str(headers, "ratelimit");
    if let Some(field) = field.filter(|f| f.starts_with('"')) {
        for (name, params) in structured_members(field) {
            let mut limit = AnnouncedLimit::named(name, Unit::Requests);
            for (key, value) in params {
                match key {
                    "r" => limit.remaining = count(value),
                    "t" => limit.reset = seconds(value),
                    _ => {}
                }
            }
            limits.push(limit);
        }
        let policies = headers
            .get_all("ratelimit-policy")
            .iter()
            .filter_map(|v| v.to_str().ok());
        for policy in policies {
            for (name, params) in structured_members(policy) {
                let position = limits.iter().position(|l| l.name == name);
                let limit = match position {
                    Some(i) => &mut limits[i],
                    None => {
                        limits.push(AnnouncedLimit::named(name, Unit::Requests));
                        let last = limits.len() - 1;
                        &mut limits[last]
                    }
                };
                let unit = params.iter().find(|(key, _)| *key == "qu").map(|(_, v)| *v);
                match unit {
                    Some(unit) if unit.contains("token") => limit.unit = Unit::Tokens,
                    None | Some("\"requests\"" | "requests") => {}
                    Some(_) => {
                        // Bytes or concurrent requests: not paced by request count.
                        limit.remaining = None;
                        limit.reset = None;
                        continue;
                    }
                }
                for (key, value) in params {
                    match key {
                        "q" => limit.limit = count(value),
                        "w" => limit.window = seconds(value),
                        _ => {}
                    }
                }
            }
        }
    } else {
        let mut limit = AnnouncedLimit::named("requests", Unit::Requests);
        if let Some(field) = field {
            for (key, value) in field.split([',', ';']).filter_map(|i| i.split_once('=')) {
                match key.trim() {
                    "limit" => limit.limit = count(value),
                    "remaining" => limit.remaining = count(value),
                    "reset" => limit.reset = seconds(value),
                    _ => {}
                }
            }
        }
        limit.limit = limit
            .limit
            .or_else(|| header_str(headers, "ratelimit-limit").and_then(count));
        limit.remaining = limit
            .remaining
            .or_else(|| header_str(headers, "ratelimit-remaining").and_then(count));
        limit.reset = limit
            .reset
            .or_else(|| header_str(headers, "ratelimit-reset").and_then(seconds));
        limits.push(limit);
    }
    limits.retain(|l| !l.is_empty());
    limits
}

/// The members of a structured-field list: `"name";k=v;k=v, "other";k=v`. A member whose name
/// is not a string or token is skipped.
fn structured_members(field: &str) -> impl Iterator<Item = (String, Vec<(&str, &str)>)> {
    // A handful of policies is all a server has; more is not believed.
    field.split(',').take(16).filter_map(|member| {
        let mut parts = member.split(';');
        let name = parts.next()?.trim().trim_matches('"');
        if name.is_empty() || name.len() > 64 {
            return None;
        }
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        Some((name.to_owned(), params))
    })
}

/// A resource a family names in three headers: its limit, what remains and when it resets.
struct Resource {
    name: &'static str,
    unit: Unit,
    /// The `limit`, `remaining` and `reset` header names, spelled out so that reading them
    /// formats nothing.
    headers: [&'static str; 3],
}

/// Reads every resource of one family; `reset` parses that family's reset format.
fn resources(
    headers: &HeaderMap,
    family: &[Resource],
    reset: impl Fn(&str) -> Option<Duration>,
) -> Vec<AnnouncedLimit> {
    family
        .iter()
        .map(|resource| {
            let [limit, remaining, reset_at] = resource.headers;
            AnnouncedLimit {
                limit: header_str(headers, limit).and_then(count),
                remaining: header_str(headers, remaining).and_then(count),
                reset: header_str(headers, reset_at).and_then(&reset),
                ..AnnouncedLimit::named(resource.name, resource.unit)
            }
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// OpenAI: `x-ratelimit-limit-requests: 60`, `x-ratelimit-remaining-requests: 59`,
/// `x-ratelimit-reset-requests: 1s`, and the same three for tokens (Go durations). Azure OpenAI
/// also spells them `x-rate-limit-…`; read when OpenAI's spelling is absent.
fn openai(headers: &HeaderMap) -> Vec<AnnouncedLimit> {
    let limits = openai_spelled(headers);
    if limits.is_empty() {
        azure_spelled(headers)
    } else {
        limits
    }
}

/// Azure OpenAI's `x-rate-limit-{limit,remaining,reset}-{requests,tokens}`: resets as Go
/// durations or plain seconds.
fn azure_spelled(headers: &HeaderMap) -> Vec<AnnouncedLimit> {
    const AZURE: [Resource; 2] = [
        Resource {
            name: "requests",
            unit: Unit::Requests,
            headers: [
                "x-rate-limit-limit-requests",
                "x-rate-limit-remaining-requests",
                "x-rate-limit-reset-requests",
            ],
        },
        Resource {
            name: "tokens",
            unit: Unit::Tokens,
            headers: [
                "x-rate-limit-limit-tokens",
                "x-rate-limit-remaining-tokens",
                "x-rate-limit-reset-tokens",
            ],
        },
    ];
    resources(headers, &AZURE, |value| {
        parse_go_duration(value).or_else(|| seconds(value))
    })
}

fn openai_spelled(headers: &HeaderMap) -> Vec<AnnouncedLimit> {
    const OPENAI: [Resource; 2] = [
        Resource {
            name: "requests",
            unit: Unit::Requests,
            headers: [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
        },
        Resource {
            name: "tokens",
            unit: Unit::Tokens,
            headers: [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        },
    ];
    resources(headers, &OPENAI, parse_go_duration)
}

/// Anthropic: `anthropic-ratelimit-{resource}-{limit,remaining,reset}`, resets in RFC 3339.
fn anthropic(headers: &HeaderMap, now: SystemTime) -> Vec<AnnouncedLimit> {
    const ANTHROPIC: [Resource; 4] = [
        Resource {
            name: "requests",
            unit: Unit::Requests,
            headers: [
                "anthropic-ratelimit-requests-limit",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
            ],
        },
        Resource {
            name: "tokens",
            unit: Unit::Tokens,
            headers: [
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ],
        },
        Resource {
            name: "input-tokens",
            unit: Unit::Tokens,
            headers: [
                "anthropic-ratelimit-input-tokens-limit",
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-input-tokens-reset",
            ],
        },
        Resource {
            name: "output-tokens",
            unit: Unit::Tokens,
            headers: [
                "anthropic-ratelimit-output-tokens-limit",
                "anthropic-ratelimit-output-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ],
        },
    ];
    resources(headers, &ANTHROPIC, |text| {
        let time = humantime::parse_rfc3339_weak(text).ok()?;
        Some(until(time, now))
    })
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds, epoch milliseconds past 10^12,
/// or delta-seconds below 10^9).
fn x_rate_limit(headers: &HeaderMap, now: SystemTime) -> Vec<AnnouncedLimit> {
    let limit = AnnouncedLimit {
        limit: header_str(headers, "x-ratelimit-limit").and_then(count),
        remaining: header_str(headers, "x-ratelimit-remaining").and_then(count),
        reset: header_str(headers, "x-ratelimit-reset").and_then(|v| x_reset(v, now)),
        ..AnnouncedLimit::named("requests", Unit::Requests)
    };
    if limit.is_empty() {
        Vec::new()
    } else {
        vec![limit]
    }
}

fn x_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let value: f64 = value.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    if value < 1e9 {
        return seconds_to_duration(value);
    }
    // An absolute time is not clamped like a delay; only the wait it leads to is.
    let seconds = if value >= 1e12 { value / 1000.0 } else { value };
    let since_epoch = Duration::try_from_secs_f64(seconds).ok()?;
    let reset = SystemTime::UNIX_EPOCH.checked_add(since_epoch)?;
    Some(until(reset, now))
}

/// Header maps and a fixed wall clock for the header parsers' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::time::{Duration, SystemTime};

    use http::{HeaderMap, HeaderValue};

    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    pub(crate) fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{headers, now};
    use super::*;

    fn parse(pairs: &[(&'static str, &str)]) -> Announced {
        Announced::parse(&headers(pairs), now())
    }

    #[test]
    fn openai_requests_and_tokens() {
        let a = parse(&[
            ("x-ratelimit-limit-requests", "600"),
            ("x-ratelimit-remaining-requests", "599"),
            ("x-ratelimit-reset-requests", "100ms"),
            ("x-ratelimit-limit-tokens", "100000"),
            ("x-ratelimit-remaining-tokens", "99850"),
            ("x-ratelimit-reset-tokens", "90ms"),
        ]);
        assert_eq!(a.family, Some(Family::OpenAi));
        assert_eq!(a.limits.len(), 2);
        assert_eq!(a.limits[0].name, "requests");
        assert_eq!(a.limits[0].limit, Some(600.0));
        assert_eq!(a.limits[0].remaining, Some(599.0));
        assert_eq!(a.limits[0].reset, Some(Duration::from_millis(100)));
        assert_eq!(a.limits[1].unit, Unit::Tokens);
        assert_eq!(a.limits[1].remaining, Some(99850.0));
    }

    #[test]
    fn azure_spells_openai_headers_with_a_dash() {
        let a = parse(&[
            ("x-rate-limit-limit-tokens", "1000"),
            ("x-rate-limit-remaining-tokens", "0"),
            ("x-rate-limit-reset-tokens", "20"),
            ("x-rate-limit-reset-requests", "1s"),
        ]);
        let tokens = a.limits.iter().find(|l| l.name == "tokens").unwrap();
        assert_eq!(tokens.remaining, Some(0.0));
        assert_eq!(tokens.reset, Some(Duration::from_secs(20)));
        let hint = Announced::reset_to_wait_for(
            &headers(&[
                ("x-rate-limit-remaining-tokens", "0"),
                ("x-rate-limit-reset-tokens", "20"),
            ]),
            now(),
        );
        assert_eq!(hint, Some((Duration::from_secs(20), Family::OpenAi)));
    }

    #[test]
    fn anthropic_four_resources() {
        let at = humantime::format_rfc3339(now() + Duration::from_secs(6)).to_string();
        let a = parse(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", &at),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            ("anthropic-ratelimit-output-tokens-remaining", "7000"),
        ]);
        assert_eq!(a.family, Some(Family::Anthropic));
        let names: Vec<_> = a.limits.iter().map(|l| l.name.as_ref()).collect();
        assert_eq!(names, ["requests", "input-tokens", "output-tokens"]);
        assert_eq!(a.limits[0].reset, Some(Duration::from_secs(6)));
    }

    #[test]
    fn ietf_structured_with_policies() {
        let a = parse(&[
            ("ratelimit", "\"burst\";r=50;t=30, \"daily\";r=900;t=3600"),
            (
                "ratelimit-policy",
                "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
            ),
        ]);
        assert_eq!(a.family, Some(Family::Ietf));
        assert_eq!(a.limits.len(), 2);
        assert_eq!(a.limits[0].name, "burst");
        assert_eq!(
            (a.limits[0].limit, a.limits[0].remaining),
            (Some(100.0), Some(50.0))
        );
        assert_eq!(a.limits[0].window, Some(Duration::from_secs(60)));
        assert_eq!(a.limits[1].reset, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn ietf_older_forms() {
        let a = parse(&[("ratelimit", "limit=100, remaining=0, reset=9")]);
        assert_eq!(a.limits[0].limit, Some(100.0));
        assert_eq!(a.limits[0].reset, Some(Duration::from_secs(9)));
        let a = parse(&[("ratelimit-limit", "10"), ("ratelimit-remaining", "3")]);
        assert_eq!(a.limits[0].remaining, Some(3.0));
    }

    #[test]
    fn x_ratelimit_epoch_and_delta() {
        let epoch = (1_700_000_000u64 + 45).to_string();
        let a = parse(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", &epoch),
        ]);
        assert_eq!(a.family, Some(Family::XRateLimit));
        assert_eq!(a.limits[0].reset, Some(Duration::from_secs(45)));
    }

    #[test]
    fn no_headers_no_limits_and_hostile_values_are_skipped() {
        assert_eq!(
            parse(&[("content-type", "application/json")]),
            Announced::default()
        );
        let a = parse(&[
            ("x-ratelimit-limit-requests", "NaN"),
            ("x-ratelimit-remaining-requests", "-5"),
            ("x-ratelimit-reset-requests", "soon"),
        ]);
        assert_eq!(a.limits[0].limit, None);
        assert_eq!(a.limits[0].remaining, Some(0.0));
        assert_eq!(a.limits[0].reset, None);
        let a = parse(&[("ratelimit", "\";;;,,=\";r=1e400;t=-1")]);
        assert!(a
            .limits
            .iter()
            .all(|l| l.remaining.is_none_or(f64::is_finite)));
    }
}
