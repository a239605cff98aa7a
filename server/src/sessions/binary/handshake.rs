//! The binary protocol's handshake: Hello within the handshake timeout,
//! version negotiation, the credential checked through the service layer,
//! and the Welcome that announces the connection's limits (docs/protocol.md,
//! Handshake).

use std::ops::RangeInclusive;

use converger_protocol::{Auth, ErrorCode, ErrorFrame, Frame, Hello, Version, Welcome};

use super::identity::{error_frame, Identity};
use super::link::Link;
use super::Limits;
use crate::auth::AuthError;
use crate::net::binary::Inbound;
use crate::rt::latch::Latch;
use crate::service::{Hub, ServiceError};

/// The protocol versions this server speaks; a connection speaks the highest
/// one its client offers too.
pub(super) const VERSIONS: RangeInclusive<Version> = Version::V1..=Version::V3;

/// Waits for Hello, negotiates the version and checks the credential.
pub(super) async fn handshake<L: Link>(
    link: &mut L,
    hub: &Hub,
    limits: Limits,
    upgrade_token: Option<&str>,
    shutdown: &Latch,
) -> Result<(Identity, Version), ErrorFrame> {
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
    let Some(version) = Version::negotiate(min_version, max_version, VERSIONS) else {
        let why = format!(
            "this server speaks versions {}..={}; the client offers {min_version}..={max_version}",
            VERSIONS.start(),
            VERSIONS.end()
        );
        return Err(ErrorFrame::new(0, ErrorCode::UnsupportedVersion, why));
    };
    let refused = |e: ServiceError| error_frame(0, &e);
    match auth {
        Auth::Token(token) => {
            if upgrade_token.is_some_and(|t| t != token) {
                return Err(ErrorFrame::new(0, ErrorCode::Forbidden, "Hello names another token than the upgrade"));
            }
            let claims = hub.verify_token(&token).await.map_err(refused)?;
            match hub.tenant_is_active(claims.tenant_id).await {
                Ok(true) => Ok((Identity::Token(claims), version)),
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
            Ok((Identity::Tenant(caller.tenant_id()), version))
        }
    }
}

pub(super) fn welcome(identity: &Identity, version: Version, limits: Limits) -> Welcome {
    let (conversation_id, expires_at, sender) = match identity {
        Identity::Token(c) => (Some(*c.conversation_id.as_bytes()), c.exp.saturating_mul(1_000_000), c.sub.clone()),
        Identity::Tenant(_) => (None, 0, String::new()),
    };
    Welcome {
        version: version.get(),
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
