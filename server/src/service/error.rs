//! [`ServiceError`]: why an operation of the service layer failed, typed so
//! every transport maps it once to its own shape (HTTP status + JSON error in
//! `api::error`, a protocol error frame, a WebSocket close code).

use converger_storage::StoreError;

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
}

pub type ServiceResult<T> = Result<T, ServiceError>;
