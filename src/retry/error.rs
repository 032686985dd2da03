//! [`RetryError`]: a request that ended without a response, with its attempts.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use super::Attempts;
use crate::classify::ErrorKind;

/// A logical request that ended without a response: the inner service failed (connect refused,
/// connection reset, body cut off), an attempt timed out, or the total deadline passed.
///
/// Failures that came with a response are not errors of the retry layer: the response is
/// returned, with its [`Classification`](crate::Classification) and [`Attempts`].
#[derive(Debug)]
pub struct RetryError<E> {
    cause: RetryErrorCause<E>,
    attempts: Attempts,
}

/// What ended the last attempt of a [`RetryError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum RetryErrorCause<E> {
    /// The inner service (the HTTP client) failed; kept as is, never flattened to a string.
    Service(E),
    /// The last attempt ran past the per-attempt timeout.
    AttemptTimeout(Duration),
    /// The total deadline passed during an attempt.
    Deadline(Duration),
}

impl<E> RetryError<E> {
    pub(crate) fn new(cause: RetryErrorCause<E>, attempts: Attempts) -> Self {
        RetryError { cause, attempts }
    }

    /// What ended the last attempt.
    pub fn cause(&self) -> &RetryErrorCause<E> {
        &self.cause
    }

    /// Every attempt, the elapsed time and why retrying stopped.
    pub fn attempts(&self) -> &Attempts {
        &self.attempts
    }

    /// The kind of failure: [`ErrorKind::Transport`] for a service error, else
    /// [`ErrorKind::Timeout`].
    pub fn kind(&self) -> ErrorKind {
        match self.cause {
            RetryErrorCause::Service(_) => ErrorKind::Transport,
            RetryErrorCause::AttemptTimeout(_) | RetryErrorCause::Deadline(_) => ErrorKind::Timeout,
        }
    }

    /// The inner service's error, if that is what ended the request.
    pub fn service_error(&self) -> Option<&E> {
        match &self.cause {
            RetryErrorCause::Service(error) => Some(error),
            _ => None,
        }
    }

    /// Splits the error into its cause and its attempts.
    pub fn into_parts(self) -> (RetryErrorCause<E>, Attempts) {
        (self.cause, self.attempts)
    }
}

/// Says what happened at this layer only: the inner service's error is the
/// [`source`](Error::source), so that a chain printer such as `anyhow`'s `{:#}` shows it once.
impl<E> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            RetryErrorCause::Service(_) => f.write_str("request failed without a response")?,
            RetryErrorCause::AttemptTimeout(timeout) => {
                write!(f, "attempt timed out after {timeout:?}")?
            }
            RetryErrorCause::Deadline(deadline) => write!(f, "deadline of {deadline:?} passed")?,
        }
        write!(f, " ({})", self.attempts)
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.cause {
            RetryErrorCause::Service(error) => Some(error),
            _ => None,
        }
    }
}

/// Whether `error` (or any error in its source chain) says the connection was never made, so the
/// request cannot have reached the server.
///
/// Reads the `std::io::Error` kinds a failed connect produces (refused, address unavailable or
/// not reachable), which hyper-util's and reqwest's connect errors carry as their source.
pub fn is_connect_error(error: &(dyn Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            ) {
                return true;
            }
        }
        current = error.source();
    }
    false
}
