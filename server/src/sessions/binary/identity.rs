//! Who a binary-protocol connection acts for (a client token's claims or a
//! tenant's API key), what that credential covers, and how a service error
//! reads on the wire.

use converger_protocol::{ErrorCode, ErrorFrame, Failure};
use converger_storage::{Id, Scope};

use crate::auth::Claims;
use crate::service::caller::token_sender;
use crate::service::ServiceError;

/// Who the connection acts for.
#[derive(Clone, Debug)]
pub(super) enum Identity {
    /// A client token: one conversation, one sender.
    Token(Claims),
    /// A tenant API key: any conversation of the tenant, senders named per write.
    Tenant(Id),
}

impl Identity {
    pub(super) fn tenant(&self) -> Id {
        match self {
            Identity::Token(c) => c.tenant_id,
            Identity::Tenant(t) => *t,
        }
    }

    pub(super) fn scope(&self) -> Scope {
        Scope::Tenant(self.tenant())
    }

    /// Whether the credential covers `conversation` (the tenant's ownership
    /// is checked by the store: another tenant's id is not found).
    pub(super) fn covers(&self, conversation: Id) -> Result<(), Failure> {
        match self {
            Identity::Token(c) if c.conversation_id != conversation => {
                Err(Failure::new(ErrorCode::Forbidden, "the token is for another conversation"))
            }
            _ => Ok(()),
        }
    }

    /// The sender a write acts as.
    /// Whose reactions count as "me" in the states this connection reads:
    /// a token's sender; nobody for an API key.
    pub(super) fn reader(&self) -> Option<&str> {
        match self {
            Identity::Token(c) => Some(&c.sub),
            Identity::Tenant(_) => None,
        }
    }

    /// A client token's writes may edit or delete only its own messages
    /// (`ActivityInput::author_only`); an API key's may act on any.
    pub(super) fn is_client(&self) -> bool {
        matches!(self, Identity::Token(_))
    }

    /// The sender this connection's subscriptions act as, which a disconnect
    /// of one sender matches: a client token's (not a watcher's); none for an
    /// API key, which acts for the tenant.
    pub(super) fn client(&self) -> Option<String> {
        match self {
            Identity::Token(c) if !c.watch => Some(c.sub.clone()),
            _ => None,
        }
    }

    pub(super) fn sender(&self, given: &str) -> Result<String, Failure> {
        match self {
            Identity::Token(c) => token_sender(c, Some(given)).map_err(|e| failure(&e)),
            Identity::Tenant(_) if given.trim().is_empty() => {
                Err(Failure::new(ErrorCode::ValidationFailed, "`sender` is required with an API key"))
            }
            Identity::Tenant(_) => Ok(given.to_string()),
        }
    }
}

/// A service error as a catalogue code and a message; internal details stay in the log.
pub(super) fn wire_error(e: &ServiceError) -> (ErrorCode, String) {
    let public = e.public();
    (ErrorCode::from_name(public.code).unwrap_or(ErrorCode::Internal), public.message)
}

/// A service error as the Error frame answering request `request_id` (0: the connection's).
pub(super) fn error_frame(request_id: u32, e: &ServiceError) -> ErrorFrame {
    let (code, message) = wire_error(e);
    ErrorFrame::new(request_id, code, message)
}

pub(super) fn failure(e: &ServiceError) -> Failure {
    let (code, message) = wire_error(e);
    Failure::new(code, message)
}
