//! [`ServiceError`]: why an operation of the service layer failed, and the
//! one rule for what a client sees of it, whatever the transport:
//! [`ServiceError::public`] gives the status, the catalogue code, a message
//! and the field. REST answers the status with the JSON error shape, the
//! Phoenix socket replies with the code and message, the binary protocol
//! sends the code's number and the message.
//!
//! Internal text never reaches a client: a failure of ours (500) or of the
//! storage (503) is logged here with a short reference, and the client gets
//! `internal` or `storage_unavailable` with that reference; a storage
//! constraint's own text is replaced by a plain sentence. A full disk
//! (`storage_full`) is told in a fixed sentence and not logged per request:
//! the storage logs when it becomes full and when writes succeed again.

use converger_storage::StoreError;

use super::json::JsonError;
use crate::auth::{AuthError, RandomError};
use crate::engine::PublishError as Publish;

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
    Publish(#[from] Publish),
    /// Storage refused or failed (not found, conflict, closed, unavailable …).
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] RandomError),
    /// An inbound webhook the channel's adapter refused (signature, shape …).
    #[error(transparent)]
    Inbound(#[from] crate::adapters::InboundError),
    /// The request clashes with the resource's state, in words for the client
    /// (a storage conflict's own text is not shown).
    #[error("{0}")]
    Conflict(String),
    /// A rate limit refused the request; `limit` names it, `retry_after` is
    /// when a token will be there.
    #[error("rate limited ({limit}): retry in {} ms", .retry_after.as_millis().max(1))]
    RateLimited { limit: &'static str, retry_after: std::time::Duration },
}

/// What a client is told of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
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
            ServiceError::Store(StoreError::Refused(r))
            | ServiceError::Publish(Publish::Store(StoreError::Refused(r))) => refusal_field(r),
            _ => None,
        }
    }
}

impl ServiceError {
    /// Status and catalogue code: the one table every transport uses.
    pub fn status_code(&self) -> (u16, &'static str) {
        match self {
            ServiceError::Auth(a) => auth_status(a),
            ServiceError::Validation { .. } => (422, "validation_failed"),
            ServiceError::InvalidJson { .. } => (400, "invalid_json"),
            ServiceError::Publish(Publish::Overloaded) => (503, "overloaded"),
            ServiceError::Publish(Publish::ShuttingDown) => (503, "shutting_down"),
            ServiceError::Publish(Publish::Rejected(_)) => (422, "rejected_by_hook"),
            ServiceError::Publish(Publish::Store(s)) | ServiceError::Store(s) => store_status(s),
            ServiceError::Random(_) => (500, "internal"),
            ServiceError::Conflict(_) => (409, "conflict"),
            ServiceError::RateLimited { .. } => (429, "rate_limited"),
            // What an adapter found wrong with an inbound request, in the one catalogue.
            ServiceError::Inbound(i) => {
                use crate::adapters::InboundError;
                match i {
                    InboundError::Unauthorized(_) => (401, "unauthorized"),
                    InboundError::Forbidden(_) => (403, "forbidden"),
                    InboundError::BadRequest(_) => (400, "bad_request"),
                    InboundError::Invalid { .. } => (422, "validation_failed"),
                    InboundError::MethodNotAllowed { .. } => (405, "method_not_allowed"),
                    InboundError::NoInbound(_) => (404, "not_found"),
                    // The channel's stored config, not the request, is at fault.
                    InboundError::Config(_) => (409, "conflict"),
                }
            }
        }
    }

    /// What the client sees. Logs what it does not see (500 and
    /// `storage_unavailable`), under the reference the message gives.
    pub fn public(&self) -> Public {
        let (status, code) = self.status_code();
        let message = match (status, code, self.store_error()) {
            (500, ..) => {
                let reference = reference();
                tracing::error!(%reference, error = %self, source = ?std::error::Error::source(self), "request failed");
                format!("internal error (reference {reference})")
            }
            (_, "storage_unavailable", _) => {
                let reference = reference();
                tracing::warn!(%reference, error = %self, "storage unavailable");
                format!("storage is unavailable; retry shortly (reference {reference})")
            }
            (_, "storage_full", _) => STORAGE_FULL.into(),
            (_, _, Some(StoreError::Conflict(_))) => "the request conflicts with an existing record".into(),
            (_, _, Some(StoreError::ForeignKey(_))) => "the request refers to a record that does not exist".into(),
            _ => self.to_string(),
        };
        Public { status, code, message, field: self.field().map(str::to_string) }
    }

    /// The same refusal again, for each item of a batch refused whole (a
    /// rate limit, a storage failure); an error that cannot be repeated
    /// exactly is kept as its public message under `internal`.
    pub fn again(&self) -> ServiceError {
        match self {
            ServiceError::RateLimited { limit, retry_after } => {
                ServiceError::RateLimited { limit, retry_after: *retry_after }
            }
            ServiceError::Store(s) | ServiceError::Publish(Publish::Store(s)) => ServiceError::Store(s.clone()),
            other => ServiceError::Store(StoreError::Internal(other.to_string())),
        }
    }

    fn store_error(&self) -> Option<&StoreError> {
        match self {
            ServiceError::Publish(Publish::Store(s)) | ServiceError::Store(s) => Some(s),
            _ => None,
        }
    }
}

/// What a client is told of a full disk (the store's own text names files).
const STORAGE_FULL: &str = "the server's storage is full; the write was not stored. Retry after space is freed";

/// Status and code of a storage error.
fn store_status(e: &StoreError) -> (u16, &'static str) {
    match e {
        StoreError::NotFound(_) => (404, "not_found"),
        StoreError::Conflict(_) => (409, "conflict"),
        StoreError::ChannelInactive => (409, "channel_inactive"),
        StoreError::ConversationClosed => (409, "conversation_closed"),
        StoreError::Refused(r) => refusal_status(r),
        StoreError::ForeignKey(_) => (422, "invalid_reference"),
        StoreError::Unavailable(_) => (503, "storage_unavailable"),
        StoreError::Full(_) => (503, "storage_full"),
        // Invalid is a bug above the store (the edge validates input), not the client's fault.
        StoreError::Invalid(_) | StoreError::Schema(_) | StoreError::Internal(_) => (500, "internal"),
    }
}

fn refusal_field(r: &converger_storage::Refusal) -> Option<&'static str> {
    use converger_storage::Refusal;
    match r {
        Refusal::TargetNotFound { field } | Refusal::TargetNotMessage { field } | Refusal::TargetDeleted { field } => {
            Some(field)
        }
        Refusal::ReceiptAhead => Some("read_seq"),
        _ => None,
    }
}

/// Status and code of a lifecycle or membership refusal (docs/api.md "Errors").
fn refusal_status(r: &converger_storage::Refusal) -> (u16, &'static str) {
    use converger_storage::Refusal;
    match r {
        Refusal::TargetNotFound { .. } => (404, "target_not_found"),
        Refusal::TargetNotMessage { .. } => (422, "invalid_target"),
        Refusal::TargetDeleted { .. } => (409, "target_deleted"),
        Refusal::NotAuthor => (403, "not_author"),
        Refusal::ReactionNotFound => (404, "reaction_not_found"),
        Refusal::NotMember => (403, "not_a_member"),
        Refusal::ReceiptAhead => (422, "validation_failed"),
    }
}

fn auth_status(e: &AuthError) -> (u16, &'static str) {
    match e {
        AuthError::Missing | AuthError::Invalid(_) | AuthError::Token(_) => (401, "unauthorized"),
        AuthError::TenantInactive => (403, "tenant_inactive"),
        AuthError::ChannelInactive => (403, "channel_inactive"),
        AuthError::WrongKind(_) | AuthError::AdminAddressRefused => (403, "forbidden"),
        AuthError::AdminDisabled => (404, "admin_disabled"),
    }
}

/// A short random reference that ties a client's error to the log line.
fn reference() -> String {
    // Without randomness the reference is only less unique, never wrong.
    crate::auth::random_hex(4).unwrap_or_else(|_| "00000000".into())
}

fn in_field(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!(" in `{f}`")).unwrap_or_default()
}

impl From<crate::engine::SubscribeError> for ServiceError {
    fn from(e: crate::engine::SubscribeError) -> ServiceError {
        match e {
            crate::engine::SubscribeError::Publish(p) => ServiceError::Publish(p),
            crate::engine::SubscribeError::Store(s) => ServiceError::Store(s),
        }
    }
}

impl From<JsonError> for ServiceError {
    /// A whole document (a body, a payload) that is not strict JSON.
    fn from(error: JsonError) -> ServiceError {
        ServiceError::InvalidJson { field: None, error }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_catalogue_code() {
        use converger_storage::Refusal;
        let field = "target_id";
        let all = [
            Refusal::TargetNotFound { field },
            Refusal::TargetNotMessage { field },
            Refusal::TargetDeleted { field },
            Refusal::NotAuthor,
            Refusal::ReactionNotFound,
            Refusal::NotMember,
            Refusal::ReceiptAhead,
        ];
        for r in &all {
            let (status, code) = refusal_status(r);
            let known = converger_protocol::ErrorCode::from_name(code);
            assert!(known.is_some(), "{code} is not in the catalogue: binary clients would read it as internal");
            assert_eq!(known.and_then(|c| c.http_status()), Some(status), "{code}");
        }
    }

    #[test]
    fn internal_text_never_reaches_the_client() {
        let leaky = [
            ServiceError::Store(StoreError::Internal("SELECT secret FROM x WHERE path='/var/lib/db'".into())),
            ServiceError::Publish(Publish::Store(StoreError::Unavailable("connection to 10.0.0.5 refused".into()))),
            ServiceError::Store(StoreError::Conflict("UNIQUE constraint failed: conversations.external_id".into())),
            ServiceError::Store(StoreError::ForeignKey("deliveries_channel_id_fkey".into())),
            ServiceError::Store(StoreError::Schema("no such table: activities".into())),
        ];
        for e in &leaky {
            let p = e.public();
            for word in ["SELECT", "/var/lib", "10.0.0.5", "UNIQUE", "fkey", "no such table"] {
                assert!(!p.message.contains(word), "{e:?} → {p:?}");
            }
        }
        let p = leaky[0].public();
        assert_eq!((p.status, p.code), (500, "internal"));
        assert!(p.message.starts_with("internal error (reference "), "{}", p.message);
        assert_eq!(leaky[1].public().code, "storage_unavailable");
        let full = ServiceError::Publish(Publish::Store(StoreError::Full(
            "database or disk is full: /var/lib/converger/converger.db-wal".into(),
        )))
        .public();
        assert_eq!((full.status, full.code, full.message.as_str()), (503, "storage_full", STORAGE_FULL));
        assert_eq!((leaky[2].public().status, leaky[2].public().code), (409, "conflict"));
    }

    #[test]
    fn client_errors_keep_their_words_and_field() {
        let p = ServiceError::invalid("sender", "`sender` is required").public();
        assert_eq!(
            p,
            Public {
                status: 422,
                code: "validation_failed",
                message: "`sender` is required".into(),
                field: Some("sender".into())
            }
        );
        let p = ServiceError::Conflict("only a failed delivery can be retried".into()).public();
        assert_eq!((p.status, p.code, p.message.as_str()), (409, "conflict", "only a failed delivery can be retried"));
        assert_eq!(ServiceError::Store(StoreError::ConversationClosed).public().message, "conversation is closed");
    }

    #[test]
    fn every_inbound_refusal_has_its_status_code_message_and_field() {
        use crate::adapters::{ConfigError, InboundError};
        let cases = [
            (InboundError::Unauthorized("wrong channel secret".into()), 401, "unauthorized", "wrong channel secret"),
            (InboundError::Forbidden("bad token".into()), 403, "forbidden", "bad token"),
            (InboundError::BadRequest("not JSON".into()), 400, "bad_request", "not JSON"),
            (InboundError::invalid("results", "is required"), 422, "validation_failed", "`results`: is required"),
            (
                InboundError::MethodNotAllowed { method: "PUT".into(), allow: "POST" },
                405,
                "method_not_allowed",
                "method PUT is not accepted here (allowed: POST)",
            ),
            (InboundError::NoInbound("echo"), 404, "not_found", "channels of type echo take no inbound requests"),
            (
                InboundError::Config(ConfigError::new("config.url", "is required")),
                409,
                "conflict",
                "the channel's config is invalid: `config.url`: is required",
            ),
        ];
        for (e, status, code, message) in cases {
            let field = matches!(e, InboundError::Invalid { .. }).then(|| "results".to_string());
            let p = ServiceError::Inbound(e).public();
            assert_eq!(p, Public { status, code, message: message.into(), field });
        }
    }
}
