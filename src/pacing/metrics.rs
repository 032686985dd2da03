//! The pacer's state as metrics, through the `metrics` facade (the `metrics` feature).
//!
//! | name | kind | unit | labels |
//! | --- | --- | --- | --- |
//! | `http_resilience.pacer.limit` | gauge | requests or tokens | `server.address`, `limit` |
//! | `http_resilience.pacer.remaining` | gauge | requests or tokens | `server.address`, `limit` |
//! | `http_resilience.pacer.queued` | gauge | requests | `server.address` |
//! | `http_resilience.pacer.in_flight` | gauge | requests | `server.address` |
//! | `http_resilience.pacer.cooldown` | gauge | seconds | `server.address` |
//! | `http_resilience.pacer.wait` | histogram | seconds | `server.address` |
//!
//! Labels stay bounded: the host of each scope (at most the pacer's scope cap) and the names of
//! the limits its provider announces (at most 8 per scope); never a path, an id or a credential
//! fingerprint. Scopes of one host (several keys, or several [`ScopeLabel`]s) share their
//! series, each answer publishing its own scope's figures; a scope's series stay at their last
//! value after the scope is evicted.
//!
//! [`ScopeLabel`]: super::ScopeLabel

use std::time::Duration;

use tokio::time::Instant;

use super::announced::Unit;
use super::scope::Scope;

/// Publishes `scope`'s gauges.
pub(crate) fn export(scope: &Scope, now: Instant) {
    let address = address(scope);
    for bucket in &scope.buckets {
        let position = match bucket.unit {
            Unit::Requests => scope.requests,
            Unit::Tokens => scope.tokens,
        };
        let labels = [
            ("server.address", address.clone()),
            ("limit", bucket.name.to_string()),
        ];
        if let Some(limit) = bucket.limit {
            metrics::gauge!("http_resilience.pacer.limit", &labels).set(limit);
        }
        let remaining = bucket.level(position, now);
        if remaining.is_finite() {
            let remaining = bucket.limit.map_or(remaining, |limit| remaining.min(limit));
            metrics::gauge!("http_resilience.pacer.remaining", &labels).set(remaining);
        }
    }
    let labels = [("server.address", address)];
    metrics::gauge!("http_resilience.pacer.queued", &labels).set(scope.queued as f64);
    metrics::gauge!("http_resilience.pacer.in_flight", &labels).set(scope.in_flight as f64);
    let cooldown = scope
        .cooldown_until
        .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
    metrics::gauge!("http_resilience.pacer.cooldown", &labels).set(cooldown.as_secs_f64());
}

/// Records that a request of `scope` waits `wait` for its turn.
pub(crate) fn record_wait(scope: &Scope, wait: Duration) {
    let labels = [("server.address", address(scope))];
    metrics::histogram!("http_resilience.pacer.wait", &labels).record(wait.as_secs_f64());
}

fn address(scope: &Scope) -> String {
    scope.address.clone().unwrap_or_default()
}
