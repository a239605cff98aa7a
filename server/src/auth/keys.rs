//! Tenant API keys and channel secrets: generation, hashing and recognition.
//!
//! - API key: `cvg_` + 43 characters (32 random bytes, base64url without
//!   padding). Only its SHA-256 is stored; a request's key is hashed first and
//!   the tenant looked up by hash, so no stored key is ever compared
//!   byte-by-byte with input (no timing oracle, nothing to steal from a dump).
//! - Channel secret: `cvs_` + 43 characters, kept in clear by the store
//!   because adapters sign outbound webhooks with it; compared in constant time.
//!
//! - Signing secret: `cvk_` + 43 characters, a tenant's HS256 key for its own
//!   client tokens, kept in clear because the server verifies HMACs with it;
//!   named by a `kid`: `key_` + 22 characters (128 random bits).
//!
//! The prefixes let a request's credential be classified without touching
//! storage (and make a leaked key easy to grep for in logs and repositories).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

pub const API_KEY_PREFIX: &str = "cvg_";
pub const CHANNEL_SECRET_PREFIX: &str = "cvs_";
pub const SIGNING_SECRET_PREFIX: &str = "cvk_";
pub const KID_PREFIX: &str = "key_";
/// Random bytes behind every key and secret (256 bits).
const RANDOM_BYTES: usize = 32;

/// The operating system's random source failed (it practically never does).
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the operating system: {0}")]
pub struct RandomError(pub String);

/// A new API key and the hash to store for it.
pub fn generate_api_key() -> Result<(String, [u8; 32]), RandomError> {
    let key = random_token(API_KEY_PREFIX)?;
    let hash = hash_api_key(&key);
    Ok((key, hash))
}

/// A new channel secret.
pub fn generate_channel_secret() -> Result<String, RandomError> {
    random_token(CHANNEL_SECRET_PREFIX)
}

/// A new HS256 signing secret for a tenant's own tokens.
pub fn generate_signing_secret() -> Result<String, RandomError> {
    random_token(SIGNING_SECRET_PREFIX)
}

/// A new key id (unique across tenants: 128 random bits).
pub fn generate_kid() -> Result<String, RandomError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(format!("{KID_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of the key as presented (prefix included).
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// `bytes` random bytes from the operating system, hex-encoded (two digits each).
pub fn random_hex(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_token(prefix: &str) -> Result<String, RandomError> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_prefixed_random_and_hashed() {
        let (a, hash_a) = generate_api_key().expect("random");
        let (b, _) = generate_api_key().expect("random");
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash_a, hash_api_key(&a));
        assert_ne!(hash_a, hash_api_key(&b));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let h = hash_api_key("abc");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn signing_secrets_and_kids_are_prefixed_and_distinct() {
        let s = generate_signing_secret().expect("random");
        assert!(s.starts_with(SIGNING_SECRET_PREFIX) && s.len() == 47, "{s}");
        let k = generate_kid().expect("random");
        assert!(k.starts_with(KID_PREFIX) && k.len() == 4 + 22, "{k}");
        assert_ne!(k, generate_kid().expect("random"));
    }

    #[test]
    fn channel_secrets_are_prefixed_and_distinct() {
        let a = generate_channel_secret().expect("random");
        assert!(a.starts_with(CHANNEL_SECRET_PREFIX) && a.len() == 47, "{a}");
        assert_ne!(a, generate_channel_secret().expect("random"));
    }
}
