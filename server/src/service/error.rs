//! [`ServiceError`]: why an operation of the service layer failed, typed so
//! every transport maps it once to its own shape (HTTP status + JSON error in
//! `api::error`, a protocol error frame, a WebSocket close code).

use converger_storage::StoreError;

use super::json::JsonError;
use super::PublishError;
use crate::auth::{AuthError, RandomError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller is not authenticated, or not allowed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The input broke a rule; `field` names the offending input field.
    #[error("{message}")]
    Validation { field: String, message: String },
    /// A JSON input that is not strict JSON (see [`super::json`]); `field`
    /// names the field it came in, when it came in one.
    #[error("invalid JSON{}: {error}", in_field(.field))]
    InvalidJson { field: Option<String>, error: JsonError },
    /// The write path refused the activity (overloaded, shutting down, store).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Storage refused or failed (not found, conflict, closed, unavailable …).
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] RandomError),
    /// An inbound webhook the channel's adapter refused (signature, shape …).
    #[error(transparent)]
    Inbound(#[from] crate::adapters::InboundError),
}

impl ServiceError {
    /// A validation failure of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ServiceError {
        ServiceError::Validation { field: field.into(), message: message.into() }
    }

    /// `field`'s JSON text is not strict JSON.
    pub fn bad_json(field: impl Into<String>, error: JsonError) -> ServiceError {
        ServiceError::InvalidJson { field: Some(field.into()), error }
    }

    /// The input field the error names, for the `field` every transport
    /// shows beside the code: the one place that knows which errors have one
    /// (an adapter's refusal of an inbound webhook's body included).
    pub fn field(&self) -> Option<&str> {
        match self {
            ServiceError::Validation { field, .. }
            | ServiceError::InvalidJson { field: Some(field), .. }
            | ServiceError::Inbound(crate::adapters::InboundError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }
}

fn in_field(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!(" in `{f}`")).unwrap_or_default()
}

impl From<JsonError> for ServiceError {
    /// A whole document (a body, a payload) that is not strict JSON.
    fn from(error: JsonError) -> ServiceError {
        ServiceError::InvalidJson { field: None, error }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
