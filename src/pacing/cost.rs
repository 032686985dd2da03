//! [`TokenCost`]: what a request will cost against a provider's token limits.

/// A request extension: the request's estimated cost in tokens, for the
/// [`Pacer`](super::Pacer) to take from a scope's token limits before sending it.
///
/// A request without one counts as one token; the pacer corrects its model from the provider's
/// remaining tokens on every answer either way. Estimate generously: providers such as OpenAI
/// count `max_tokens` against the limit when the request arrives.
///
/// ```
/// use http_resilience::pacing::TokenCost;
///
/// let body = br#"{"model":"gpt-4o-mini","max_tokens":300,"messages":[{"role":"user","content":"Write a haiku about retries."}]}"#;
/// let cost = TokenCost::estimate_json(body);
/// assert!(cost.get() >= 300);
/// let request = http::Request::post("https://api.openai.com/v1/chat/completions")
///     .extension(cost)
///     .body(body.to_vec())
///     .unwrap();
/// # let _ = request;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenCost(u64);

/// The output budget fields providers read, most common first.
const MAX_OUTPUT_FIELDS: [&str; 4] = [
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "maxOutputTokens",
];

impl TokenCost {
    /// A cost of `tokens`.
    pub const fn new(tokens: u64) -> Self {
        TokenCost(tokens)
    }

    /// The cost in tokens.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Estimates a JSON request body's cost: its output budget (`max_tokens`,
    /// `max_completion_tokens`, `max_output_tokens` or Gemini's `maxOutputTokens`, times `n`
    /// when several choices are asked for) plus its text at about four bytes a token, the rule
    /// of thumb OpenAI's cookbook uses for English.
    ///
    /// Counting the whole body, not only the prompt, errs on the high side by the JSON
    /// punctuation, which is what a pacer wants. A body that is not JSON is counted by its
    /// length alone. Never panics; the estimate saturates.
    pub fn estimate_json(body: &[u8]) -> TokenCost {
        let text_tokens = (body.len() as u64).div_ceil(4);
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
            return TokenCost(text_tokens.max(1));
        };
        let output = MAX_OUTPUT_FIELDS
            .iter()
            .find_map(|name| fields.get(*name).and_then(serde_json::Value::as_u64))
            .or_else(|| {
                // Gemini nests it under generationConfig.
                fields
                    .get("generationConfig")?
                    .get("maxOutputTokens")?
                    .as_u64()
            })
            .unwrap_or(0);
        let choices = fields
            .get("n")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 128);
        TokenCost(
            output
                .saturating_mul(choices)
                .saturating_add(text_tokens)
                .max(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_budget_and_text() {
        let body = br#"{"max_tokens":100,"n":2,"prompt":"abcd"}"#;
        assert_eq!(
            TokenCost::estimate_json(body).get(),
            200 + (body.len() as u64).div_ceil(4)
        );
        let gemini = br#"{"generationConfig":{"maxOutputTokens":50}}"#;
        assert!(TokenCost::estimate_json(gemini).get() >= 50);
    }

    #[test]
    fn not_json_and_hostile_values() {
        assert_eq!(TokenCost::estimate_json(b"hello world!").get(), 3);
        assert_eq!(TokenCost::estimate_json(b"").get(), 1);
        let huge = br#"{"max_tokens":18446744073709551615,"n":128}"#;
        assert_eq!(TokenCost::estimate_json(huge).get(), u64::MAX);
    }
}
