//! Client tokens: JWT (RFC 7519) signed with HMAC-SHA256 (`HS256`), written
//! here on the `hmac` and `sha2` crates rather than a JWT crate: the common
//! JWT crates pull RSA/EC or aws-lc crypto backends into every cold build, for
//! one algorithm that takes forty lines.
//!
//! Verification order: three base64url parts → header says `HS256` (anything
//! else, `none` included, is refused before the signature is looked at) →
//! signature checked in constant time → claims parsed → the time claims
//! checked, each with [`LEEWAY_SECS`] of clock skew allowed: `exp` not past,
//! `nbf` (optional) not ahead, `iat` not ahead. A token issued "in the future"
//! was not issued by a server with a sane clock: whoever holds a key that signs
//! such tokens could otherwise mint ones that outlive any expiry policy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use converger_storage::Id;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const ALG: &str = "HS256";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// What a client token says: who (`sub`, the sender id) may do what in which
/// conversation of which tenant, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The sender id the token's holder acts as.
    pub sub: String,
    pub tenant_id: Id,
    pub conversation_id: Id,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Not valid before, seconds since the Unix epoch (RFC 7519 §4.1.5).
    /// This server never sets it; a token that carries it is honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id (for logs and future revocation).
    pub jti: String,
    /// A watcher (the admin console's live tail): it receives the stream but
    /// takes no part in the conversation's presence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub watch: bool,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm `{0}` (only HS256)")]
    UnsupportedAlgorithm(String),
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    /// `nbf` is later than now (beyond the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// `iat` is later than now (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// The compact serialization of `claims`, signed with `key`.
pub fn sign(claims: &Claims, key: &[u8]) -> String {
    let header = Header { alg: ALG.into(), typ: Some("JWT".into()) };
    // Both are plain structs of strings and integers: serialization cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature = mac(key, signing_input.as_bytes()).finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The claims of a token signed with `key` and valid at `now` (Unix seconds).
pub fn verify(token: &str, key: &[u8], now: i64) -> Result<Claims, JwtError> {
    let payload = verified_payload(token, key)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed("claims"))?;
    check_times(&claims, now)?;
    Ok(claims)
}

/// `exp`, `nbf` and `iat` against `now`, each with [`LEEWAY_SECS`].
fn check_times(claims: &Claims, now: i64) -> Result<(), JwtError> {
    let ahead = |t: i64| t > now.saturating_add(LEEWAY_SECS);
    if now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    if claims.nbf.is_some_and(ahead) {
        return Err(JwtError::NotYetValid);
    }
    if ahead(claims.iat) {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(())
}

/// The payload bytes of an HS256 token whose signature verifies with `key`.
pub fn verified_payload(token: &str, key: &[u8]) -> Result<Vec<u8>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let parsed: Header = serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed("header"))?;
    if parsed.alg != ALG {
        return Err(JwtError::UnsupportedAlgorithm(parsed.alg));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    // The signing input is the text as received: re-encoding could differ.
    let signed_len = header.len() + 1 + payload.len();
    mac(key, &token.as_bytes()[..signed_len]).verify_slice(&signature).map_err(|_| JwtError::BadSignature)?;
    URL_SAFE_NO_PAD.decode(payload).map_err(|_| JwtError::Malformed("payload is not base64url"))
}

fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first), so this is an
    // invariant, not input handling. A silent fallback key would be far worse.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA256 accepts a key of any length");
    mac.update(data);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example token of jwt.io, signed with `your-256-bit-secret`.
    const JWT_IO: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "user-1".into(),
            tenant_id: Id::nil(),
            conversation_id: Id::max(),
            iat: 1_000,
            exp,
            nbf: None,
            jti: "j1".into(),
            watch: false,
        }
    }

    #[test]
    fn verifies_the_published_jwt_io_hs256_example() {
        let payload = verified_payload(JWT_IO, b"your-256-bit-secret").expect("the published token verifies");
        let v: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(v["name"], "John Doe");
        assert_eq!(verified_payload(JWT_IO, b"another-secret"), Err(JwtError::BadSignature));
        // It carries none of our claims: a valid signature alone is not enough.
        assert_eq!(verify(JWT_IO, b"your-256-bit-secret", 0), Err(JwtError::Malformed("claims")));
    }

    #[test]
    fn round_trips_and_expires_with_leeway() {
        let token = sign(&claims(2_000), b"k");
        assert_eq!(verify(&token, b"k", 1_500), Ok(claims(2_000)));
        assert!(verify(&token, b"k", 2_000 + LEEWAY_SECS).is_ok(), "within the leeway");
        assert_eq!(verify(&token, b"k", 2_001 + LEEWAY_SECS), Err(JwtError::Expired));
        assert_eq!(verify(&token, b"other", 1_500), Err(JwtError::BadSignature));
    }

    #[test]
    fn refuses_nbf_and_iat_ahead_of_now_beyond_the_leeway() {
        let now = 10_000;
        let year = 365 * 24 * 3600;
        let at = |iat: i64, nbf: Option<i64>| {
            let c = Claims { iat, nbf, exp: now + 3600, ..claims(0) };
            verify(&sign(&c, b"k"), b"k", now)
        };
        assert!(at(now, None).is_ok());
        assert!(at(now + LEEWAY_SECS, Some(now + LEEWAY_SECS)).is_ok(), "within the leeway");
        assert!(at(now - 60, Some(now - 60)).is_ok(), "both in the past");
        assert_eq!(at(now + LEEWAY_SECS + 1, None), Err(JwtError::IssuedInFuture));
        assert_eq!(at(now + year, None), Err(JwtError::IssuedInFuture));
        assert_eq!(at(now, Some(now + LEEWAY_SECS + 1)), Err(JwtError::NotYetValid));
        assert_eq!(at(now, Some(now + 24 * 3600)), Err(JwtError::NotYetValid));
        // No overflow at the extremes.
        assert_eq!(at(i64::MAX, Some(i64::MAX)), Err(JwtError::NotYetValid));
        assert!(verify(&sign(&claims(i64::MAX), b"k"), b"k", i64::MAX).is_ok());
    }

    #[test]
    fn refuses_other_algorithms_tampering_and_garbage() {
        let token = sign(&claims(2_000), b"k");
        let (_, rest) = token.split_once('.').expect("dot");
        let none = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(verify(&none, b"k", 0), Err(JwtError::UnsupportedAlgorithm("none".into())));
        let hs512 = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512"}"#));
        assert_eq!(verify(&hs512, b"k", 0), Err(JwtError::UnsupportedAlgorithm("HS512".into())));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999)).expect("json"));
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(verify(&tampered, b"k", 0), Err(JwtError::BadSignature));
        for bad in ["", "a.b", "a.b.c.d", "!!.b.c", "e30.e30.***"] {
            assert!(matches!(verify(bad, b"k", 0), Err(JwtError::Malformed(_))), "{bad}");
        }
    }
}
