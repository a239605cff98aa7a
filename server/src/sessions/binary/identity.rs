//! Who a binary-protocol connection acts for: the handshake that establishes
//! it (Hello, version negotiation, a client token or a tenant API key), what
//! the credential covers, and how a service error reads on the wire.

use converger_protocol::{Auth, ErrorCode, ErrorFrame, Failure, Frame, Hello, Welcome, VERSION};
use converger_storage::{Id, Scope};

use super::link::Link;
use super::Limits;
use crate::auth::{AuthError, Claims};
use crate::net::binary::Inbound;
use crate::rt::latch::Latch;
use crate::service::caller::token_sender;
use crate::service::{Hub, ServiceError};

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

/// Waits for Hello, negotiates the version and checks the credential.
pub(super) async fn handshake<L: Link>(
    link: &mut L,
    hub: &Hub,
    limits: Limits,
    upgrade_token: Option<&str>,
    shutdown: &Latch,
) -> Result<Identity, ErrorFrame> {
    let first = monoio::select! {
        inbound = link.recv() => inbound,
        _ = monoio::time::sleep(limits.handshake_timeout) => {
            return Err(ErrorFrame::new(0, ErrorCode::HandshakeTimeout, "no Hello arrived in time"));
        }
        _ = shutdown.wait() => return Err(ErrorFrame::new(0, ErrorCode::ShuttingDown, "the server is stopping")),
    };
    let hello = match first {
        Inbound::Frame(Frame::Hello(hello)) => hello,
        Inbound::Frame(other) => {
            let why = format!("the first frame must be Hello, not {}", other.kind().name());
            return Err(ErrorFrame::new(0, ErrorCode::UnexpectedFrame, why));
        }
        Inbound::Bad(e) => return Err(ErrorFrame::new(0, e.code(), e.to_string())),
        Inbound::Closed => return Err(ErrorFrame::new(0, ErrorCode::BadFrame, "closed before Hello")),
    };
    let Hello { min_version, max_version, auth, .. } = hello;
    if !(min_version..=max_version).contains(&VERSION) {
        let why = format!("this server speaks version {VERSION} only; the client offers {min_version}..={max_version}");
        return Err(ErrorFrame::new(0, ErrorCode::UnsupportedVersion, why));
    }
    let refused = |e: ServiceError| {
        let (code, message) = wire_error(&e);
        ErrorFrame::new(0, code, message)
    };
    match auth {
        Auth::Token(token) => {
            if upgrade_token.is_some_and(|t| t != token) {
                return Err(ErrorFrame::new(0, ErrorCode::Forbidden, "Hello names another token than the upgrade"));
            }
            let claims = hub.verify_token(&token).map_err(refused)?;
            match hub.tenant_is_active(claims.tenant_id).await {
                Ok(true) => Ok(Identity::Token(claims)),
                Ok(false) => Err(refused(AuthError::TenantInactive.into())),
                Err(e) => Err(refused(e)),
            }
        }
        Auth::ApiKey(key) => {
            if upgrade_token.is_some() {
                return Err(ErrorFrame::new(
                    0,
                    ErrorCode::Forbidden,
                    "Hello names another credential than the upgrade",
                ));
            }
            let caller = hub.caller_by_api_key(&key).await.map_err(refused)?;
            Ok(Identity::Tenant(caller.tenant_id()))
        }
    }
}

pub(super) fn welcome(identity: &Identity, limits: Limits) -> Welcome {
    let (conversation_id, expires_at, sender) = match identity {
        Identity::Token(c) => (Some(*c.conversation_id.as_bytes()), c.exp.saturating_mul(1_000_000), c.sub.clone()),
        Identity::Tenant(_) => (None, 0, String::new()),
    };
    Welcome {
        version: VERSION,
        idle_timeout_secs: limits.idle_timeout.as_secs().min(u16::MAX as u64) as u16,
        max_frame: limits.max_frame,
        send_queue_bytes: limits.send_queue_bytes.min(u32::MAX as usize) as u32,
        tenant_id: *identity.tenant().as_bytes(),
        conversation_id,
        expires_at,
        sender,
        server: concat!("converger/", env!("CARGO_PKG_VERSION")).into(),
    }
}

/// A service error as a catalogue code and a message; internal details stay in the log.
pub(super) fn wire_error(e: &ServiceError) -> (ErrorCode, String) {
    let public = e.public();
    (ErrorCode::from_name(public.code).unwrap_or(ErrorCode::Internal), public.message)
}

pub(super) fn failure(e: &ServiceError) -> Failure {
    let (code, message) = wire_error(e);
    Failure::new(code, message)
}
