//! The SDK's errors: one [`Error`] for every call, with the server's refusals
//! typed as [`ServerError`] (a code of the shared catalogue,
//! [`converger_protocol::ErrorCode`], and a message for people).
//!
//! `Error` is `Clone` (I/O errors are shared behind an `Arc`) because one
//! cause, such as a refused reconnect, may end many subscriptions at once.

use std::sync::Arc;

use converger_protocol::{ErrorCode, ErrorFrame, Failure, WireError};

/// What can go wrong with a call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request (an Error frame, a failed list item, a
    /// REST error body).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The socket failed (connect, read or write).
    #[error("I/O error: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// The server sent bytes that are not the protocol, or a frame that makes
    /// no sense here.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection broke before the answer came. The request may or may not
    /// have taken effect: repeat a publish with the same idempotency key to be
    /// sure it happened exactly once.
    #[error("the connection was lost before the answer came")]
    ConnectionLost,
    /// No answer within the client's request timeout (waiting for a
    /// connection included).
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The client was closed (by [`crate::Client::close`], or for good after a
    /// reconnect was refused: see the subscription's end reason).
    #[error("the client is closed")]
    Closed,
    /// A REST call answered an error that is not the API's JSON error shape.
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// An argument the SDK cannot use (an address or URL it cannot parse).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// A `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Error {
        Error::Protocol(ProtocolError::Wire(e))
    }
}

impl Error {
    /// The catalogue code when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A refusal by the server: its catalogue code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({number}): {message}")]
pub struct ServerError {
    /// The code. A number this SDK version does not know is read by its
    /// thousands group, as the protocol asks (see [`ServerError::number`]).
    pub code: ErrorCode,
    /// The number as sent (differs from `code.code()` only for unknown numbers).
    pub number: u16,
    /// For people; never parse it.
    pub message: String,
}

impl ServerError {
    /// The error with a catalogue code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ServerError {
        ServerError { code, number: code.code(), message: message.into() }
    }

    /// The error for a wire number, known or not.
    pub fn from_number(number: u16, message: impl Into<String>) -> ServerError {
        ServerError { code: code_of(number), number, message: message.into() }
    }

    /// Whether the server closes the connection's credential for good
    /// (2xxx: reconnecting with the same credential cannot succeed).
    pub fn is_auth(&self) -> bool {
        (2000..3000).contains(&self.code.code())
    }
}

impl From<&ErrorFrame> for ServerError {
    fn from(e: &ErrorFrame) -> ServerError {
        ServerError::from_number(e.code, e.message.clone())
    }
}

impl From<Failure> for ServerError {
    fn from(f: Failure) -> ServerError {
        ServerError::from_number(f.code, f.message)
    }
}

/// A catalogue code for any number: unknown numbers take their group's most
/// general code (docs/protocol.md, Errors: "treat it by its thousands group").
pub fn code_of(number: u16) -> ErrorCode {
    ErrorCode::from_code(number).unwrap_or(match number / 1000 {
        1 => ErrorCode::BadFrame,
        2 => ErrorCode::Unauthorized,
        3 => ErrorCode::BadRequest,
        4 => ErrorCode::Conflict,
        _ => ErrorCode::Internal,
    })
}

/// The server's bytes or frames are not what the protocol allows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    /// The Welcome names a protocol version this client did not offer.
    #[error("the server chose protocol version {0}, which this client does not speak")]
    Version(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_numbers_are_read_by_their_group() {
        assert_eq!(code_of(4001), ErrorCode::NotFound);
        assert_eq!(code_of(4999), ErrorCode::Conflict);
        assert_eq!(code_of(2999), ErrorCode::Unauthorized);
        assert_eq!(code_of(9999), ErrorCode::Internal);
        let e = ServerError::from_number(9999, "newer");
        assert_eq!((e.code, e.number), (ErrorCode::Internal, 9999));
        assert!(ServerError::new(ErrorCode::TokenExpired, "x").is_auth());
        assert!(!ServerError::new(ErrorCode::SlowConsumer, "x").is_auth());
    }
}
