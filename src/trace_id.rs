//! Trace ids: the identifiers a provider asks for in a support ticket.
//!
//! [`ClassifyLayer`](crate::classify::ClassifyLayer) finds the server's id of each response (in a
//! header such as `x-request-id`, or a body field such as `trace_id`) and puts a [`TraceId`] into
//! the response's extensions and its [`Classification`](crate::classify::Classification).

use std::fmt;

use http::HeaderName;

/// An identifier a server gave a response, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceId {
    value: String,
    source: TraceIdSource,
}

/// Where a [`TraceId`] was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceIdSource {
    /// A response header, such as `x-request-id`.
    Header(HeaderName),
    /// A field of the JSON body (top level or inside its `error` object), such as `trace_id`.
    BodyField(String),
}

impl TraceId {
    /// A trace id with the place it came from.
    pub fn new(value: impl Into<String>, source: TraceIdSource) -> Self {
        TraceId {
            value: value.into(),
            source,
        }
    }

    /// The id as the server wrote it.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Where the id was found.
    pub fn source(&self) -> &TraceIdSource {
        &self.source
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Display for TraceIdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceIdSource::Header(name) => write!(f, "header {name}"),
            TraceIdSource::BodyField(name) => write!(f, "body field {name}"),
        }
    }
}
