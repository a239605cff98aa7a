//! Client tokens: JWT (RFC 7519). The server's own are signed with
//! HMAC-SHA256 (`HS256`), written here on the `hmac` and `sha2` crates rather
//! than a JWT crate: the common JWT crates pull RSA/EC or aws-lc crypto
//! backends into every cold build, for one algorithm that takes forty lines.
//! Tenants may sign their own ([`Verifier`]): HS256 with a key of their own,
//! or RS256/ES256 checked with a public key of their JWKS (`super::jwk`).
//!
//! Verification order: three base64url parts → the header's `alg` is the
//! verifier's (anything else, `none` included, is refused before the
//! signature is looked at: an HS256 token is never checked against a public
//! key, nor RS256 against a shared secret) → signature checked (in constant
//! time for HMAC) → claims parsed → the time claims checked, each with
//! [`LEEWAY_SECS`] of clock skew allowed: `exp` not past, `nbf` (optional)
//! not ahead, `iat` not ahead. A token issued "in the future" was not issued
//! by a server with a sane clock: whoever holds a key that signs such tokens
//! could otherwise mint ones that outlive any expiry policy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use converger_storage::Id;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::jwk::PublicKey;

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
    #[error("unsupported algorithm `{0}` (HS256, RS256 or ES256)")]
    UnsupportedAlgorithm(String),
    /// The header's `alg` is not the one its key verifies.
    #[error("the token says `{alg}` but its key is {key}")]
    KeyMismatch { alg: String, key: &'static str },
    /// The header names a `kid` no key of the server's answers to.
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    /// A tenant's key signed a token whose `tenant_id` is another tenant.
    #[error("the token names another tenant than its key's")]
    WrongTenant,
    /// The tenant's JWKS could not be fetched or read.
    #[error("the tenant's key set is unavailable: {0}")]
    KeySetUnavailable(String),
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

/// The JOSE header, as far as it matters here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Which key signed: a tenant's (see `service::signing_keys`); the
    /// server's own tokens carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// What checks a token's signature.
#[derive(Clone, Copy, Debug)]
pub enum Verifier<'a> {
    /// A shared secret (the server's `--jwt-secret`, or a tenant's HS256 key).
    Hs256(&'a [u8]),
    /// A public key of a tenant's JWKS.
    Public(&'a PublicKey),
}

impl Verifier<'_> {
    fn alg(&self) -> &'static str {
        match self {
            Verifier::Hs256(_) => ALG,
            Verifier::Public(k) => k.alg(),
        }
    }

    /// What the key is, for a refusal's message.
    fn describe(&self) -> &'static str {
        match self {
            Verifier::Hs256(_) => "an HS256 secret",
            Verifier::Public(PublicKey::Rs256 { .. }) => "an RSA key (RS256)",
            Verifier::Public(PublicKey::Es256 { .. }) => "a P-256 key (ES256)",
        }
    }
}

/// The compact serialization of `claims`, signed with `key`.
pub fn sign(claims: &Claims, key: &[u8]) -> String {
    sign_with_kid(claims, key, None)
}

/// Like [`sign`], naming `kid` in the header (a tenant's HS256 key).
pub fn sign_with_kid(claims: &Claims, key: &[u8], kid: Option<&str>) -> String {
    let header = Header { alg: ALG.into(), typ: Some("JWT".into()), kid: kid.map(str::to_string) };
    // Both are plain structs of strings and integers: serialization cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature = mac(key, signing_input.as_bytes()).finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The claims of a token signed with `key` and valid at `now` (Unix seconds).
pub fn verify(token: &str, key: &[u8], now: i64) -> Result<Claims, JwtError> {
    verify_with(token, Verifier::Hs256(key), now)
}

/// The claims of a token `verifier` accepts, valid at `now` (Unix seconds).
pub fn verify_with(token: &str, verifier: Verifier<'_>, now: i64) -> Result<Claims, JwtError> {
    let payload = verified_payload_with(token, verifier)?;
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
    verified_payload_with(token, Verifier::Hs256(key))
}

/// The header of a token, unverified: which key to verify it with.
pub fn header(token: &str) -> Result<Header, JwtError> {
    let (header, ..) = parts(token)?;
    let header_bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| JwtError::Malformed("header is not base64url"))?;
    serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed("header"))
}

fn parts(token: &str) -> Result<(&str, &str, &str), JwtError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(JwtError::Malformed("expected three dot-separated parts")),
    }
}

/// The payload bytes of a token whose signature `verifier` accepts.
fn verified_payload_with(token: &str, verifier: Verifier<'_>) -> Result<Vec<u8>, JwtError> {
    let (header_part, payload, signature) = parts(token)?;
    let parsed = header(token)?;
    if !matches!(parsed.alg.as_str(), "HS256" | "RS256" | "ES256") {
        return Err(JwtError::UnsupportedAlgorithm(parsed.alg));
    }
    if parsed.alg != verifier.alg() {
        return Err(JwtError::KeyMismatch { alg: parsed.alg, key: verifier.describe() });
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    // The signing input is the text as received: re-encoding could differ.
    let signing_input = &token.as_bytes()[..header_part.len() + 1 + payload.len()];
    let valid = match verifier {
        Verifier::Hs256(key) => mac(key, signing_input).verify_slice(&signature).is_ok(),
        Verifier::Public(key) => key.verify(signing_input, &signature),
    };
    if !valid {
        return Err(JwtError::BadSignature);
    }
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
pub(crate) mod tests {
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
        let rs256 = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#));
        assert!(matches!(verify(&rs256, b"k", 0), Err(JwtError::KeyMismatch { .. })), "RS256 against a secret");
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999)).expect("json"));
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(verify(&tampered, b"k", 0), Err(JwtError::BadSignature));
        for bad in ["", "a.b", "a.b.c.d", "!!.b.c", "e30.e30.***"] {
            assert!(matches!(verify(bad, b"k", 0), Err(JwtError::Malformed(_))), "{bad}");
        }
    }

    /// `claims` signed by `signer` (RS256 or ES256), naming `kid`.
    pub(crate) fn sign_public(claims: &Claims, signer: &crate::auth::jwk::test_keys::Signer, kid: &str) -> String {
        let header = serde_json::json!({"alg": signer.alg(), "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"))
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes())))
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_their_public_key_only() {
        use crate::auth::jwk::{parse_jwks, test_keys::Signer};
        let (rsa, ec) = (Signer::rsa(), Signer::ec());
        let jwks = serde_json::json!({"keys": [rsa.jwk("r"), ec.jwk("e")]}).to_string();
        let keys = parse_jwks(jwks.as_bytes()).expect("jwks");
        let (rsa_key, ec_key) = (&keys[0].key, &keys[1].key);
        for (signer, key, other) in [(&rsa, rsa_key, ec_key), (&ec, ec_key, rsa_key)] {
            let alg = signer.alg();
            let token = sign_public(&claims(2_000), signer, "k");
            assert_eq!(header(&token).expect("header").kid.as_deref(), Some("k"));
            assert_eq!(verify_with(&token, Verifier::Public(key), 1_500), Ok(claims(2_000)), "{alg}");
            assert_eq!(
                verify_with(&token, Verifier::Public(key), 2_001 + LEEWAY_SECS),
                Err(JwtError::Expired),
                "{alg}"
            );
            // RS256 against a P-256 key (and back), or against a secret: refused before any signature check.
            assert!(matches!(verify_with(&token, Verifier::Public(other), 0), Err(JwtError::KeyMismatch { .. })));
            assert!(matches!(verify_with(&token, Verifier::Hs256(b"k"), 0), Err(JwtError::KeyMismatch { .. })));
            // Tampered claims, or another key of the same type.
            let parts: Vec<&str> = token.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999)).expect("json"));
            let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
            assert_eq!(verify_with(&tampered, Verifier::Public(key), 0), Err(JwtError::BadSignature), "{alg}");
            // `none`, with or without the signature.
            let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k"}"#);
            for t in [format!("{none}.{}.", parts[1]), format!("{none}.{}.{}", parts[1], parts[2])] {
                let refused = verify_with(&t, Verifier::Public(key), 0);
                assert_eq!(refused, Err(JwtError::UnsupportedAlgorithm("none".into())), "{alg}");
            }
        }
        // An HS256 token, signed with the public key's bytes as its secret, against that public key.
        let PublicKey::Rs256 { n, .. } = rsa_key else { panic!("rsa") };
        let confused = sign(&claims(2_000), n);
        assert!(matches!(verify_with(&confused, Verifier::Public(rsa_key), 0), Err(JwtError::KeyMismatch { .. })));
        let other_ec = Signer::ec();
        let foreign = sign_public(&claims(2_000), &other_ec, "e");
        assert_eq!(verify_with(&foreign, Verifier::Public(ec_key), 0), Err(JwtError::BadSignature));
    }

    #[test]
    fn a_tenant_hs256_token_names_its_kid() {
        let token = sign_with_kid(&claims(2_000), b"tenant-secret", Some("key_1"));
        let h = header(&token).expect("header");
        assert_eq!((h.alg.as_str(), h.kid.as_deref()), ("HS256", Some("key_1")));
        assert_eq!(verify(&token, b"tenant-secret", 1_000), Ok(claims(2_000)));
        assert_eq!(verify(&token, b"server-secret", 1_000), Err(JwtError::BadSignature));
    }
}
