//! [`AuthError`]: every way a caller can fail to prove who it is, or be
//! refused for what it is. The API maps each to 401, 403 or 404 in
//! `api::error`; other transports map them to their own codes.

use super::jwt::JwtError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential at all.
    #[error("missing credentials: send `Authorization: Bearer <api key>` or `X-Api-Key: <api key>`")]
    Missing,
    /// A credential that matches nothing (unknown key, wrong secret, garbage).
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    /// A client token that does not verify.
    #[error("invalid token: {0}")]
    Token(#[from] JwtError),
    /// A valid credential of a kind this endpoint does not take.
    #[error("{0}")]
    WrongKind(&'static str),
    #[error("the tenant is inactive")]
    TenantInactive,
    #[error("the channel is inactive")]
    ChannelInactive,
    /// No admin token is configured: the admin API is off.
    #[error("the admin API is disabled: no admin token is configured")]
    AdminDisabled,
    /// The client address is not in the admin allow-list.
    #[error("the client address is not in the admin allow-list")]
    AdminAddressRefused,
}

impl AuthError {
    /// True for the refusals of a caller that did prove who it is (403).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            AuthError::WrongKind(_)
                | AuthError::TenantInactive
                | AuthError::ChannelInactive
                | AuthError::AdminAddressRefused
        )
    }
}
