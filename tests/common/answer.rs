//! The last middleware of a reqwest-middleware chain that answers at once, without the network:
//! a 200 with a small JSON body and a request id, as a generation API answers a POST. So what a
//! chain costs in front of it is the middleware's own (`tests/allocations.rs`,
//! `benches/middleware.rs`).

/// Answers every request at once, with its URL as the answer's.
pub struct Answer;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Answer {
    async fn handle(
        &self,
        request: reqwest::Request,
        _: &mut http::Extensions,
        _: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use reqwest::ResponseBuilderExt;
        let answer = http::Response::builder()
            .url(request.url().clone())
            .header("content-type", "application/json")
            .header("x-request-id", "req_8f2c1d")
            .body(r#"{"id":"task_8f2a","status":"queued","created":1764547200}"#)
            .expect("a valid response");
        Ok(reqwest::Response::from(answer))
    }
}
