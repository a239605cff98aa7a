//! [`ApiError`]: every way an API request can fail, mapped once, here, to an
//! HTTP status and the JSON error shape. Storage errors keep their source for
//! the log, but internal details never reach the client.

use converger_storage::StoreError;
use tracing::{error, warn};

use crate::net::http::Response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for {path}")]
    NoRoute { path: String },
    #[error("method {method} is not allowed here (allowed: {allow})")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("storage is unavailable")]
    StorageUnavailable(#[source] StoreError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NoRoute { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::BadRequest(_) => 400,
            ApiError::StorageUnavailable(_) => 503,
            ApiError::Store(e) => match e {
                StoreError::NotFound(_) => 404,
                StoreError::Conflict(_) | StoreError::ChannelInactive | StoreError::ConversationClosed => 409,
                StoreError::ForeignKey(_) => 422,
                StoreError::Unavailable(_) => 503,
                // Invalid is a bug above the store (the edge validates input), not the client's fault.
                StoreError::Invalid(_) | StoreError::Schema(_) | StoreError::Internal(_) => 500,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NoRoute { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::StorageUnavailable(_) => "storage_unavailable",
            ApiError::Store(e) => match e {
                StoreError::NotFound(_) => "not_found",
                StoreError::Conflict(_) => "conflict",
                StoreError::ChannelInactive => "channel_inactive",
                StoreError::ConversationClosed => "conversation_closed",
                StoreError::ForeignKey(_) => "invalid_reference",
                StoreError::Unavailable(_) => "storage_unavailable",
                StoreError::Invalid(_) | StoreError::Schema(_) | StoreError::Internal(_) => "internal",
            },
        }
    }

    /// The message shown to the client: internal details stay in the log.
    fn public_message(&self) -> String {
        match self {
            ApiError::Store(StoreError::Invalid(_) | StoreError::Schema(_) | StoreError::Internal(_)) => {
                "internal error".into()
            }
            ApiError::Store(StoreError::Unavailable(_)) => "storage is unavailable".into(),
            other => other.to_string(),
        }
    }

    pub fn into_response(self) -> Response {
        match self.status() {
            500.. => {
                error!(error = %self, source = ?std::error::Error::source(&self), "request failed")
            }
            _ if matches!(self, ApiError::StorageUnavailable(_)) => {
                warn!(error = ?self, "storage unavailable")
            }
            _ => {}
        }
        let response = Response::error(self.status(), self.code(), &self.public_message());
        match self {
            ApiError::MethodNotAllowed { allow, .. } => response.with_header("allow", allow),
            _ => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use converger_storage::Entity;

    use super::*;

    #[test]
    fn store_errors_map_to_statuses_and_hide_internals() {
        let e = ApiError::from(StoreError::NotFound(Entity::Channel));
        assert_eq!((e.status(), e.code()), (404, "not_found"));
        let e = ApiError::from(StoreError::Internal("SELECT secret FROM x".into()));
        let r = e.into_response();
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }

    #[test]
    fn method_not_allowed_carries_allow_header() {
        let r = ApiError::MethodNotAllowed { method: "POST".into(), allow: "GET, HEAD".into() }.into_response();
        assert_eq!(r.status, 405);
        assert!(r.headers.iter().any(|(n, v)| *n == "allow" && v == "GET, HEAD"));
    }
}
