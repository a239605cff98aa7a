//! Standard Webhooks 1.0 signatures (<https://www.standardwebhooks.com/>):
//! what the `webhook` adapter puts on every outbound request and checks on
//! every inbound one.
//!
//! - Headers: `webhook-id` (the same on every retry of one delivery: the
//!   receiver's idempotency key), `webhook-timestamp` (unix seconds of the
//!   attempt), `webhook-signature`.
//! - Signature: `v1,` + base64 of HMAC-SHA256(key, `"{id}.{timestamp}.{body}"`)
//!   over the raw body bytes. A header may carry several space-separated
//!   signatures (key rotation); one match is enough. Other versions (`v1a,…`)
//!   are skipped.
//! - Tolerance: a timestamp more than [`TOLERANCE_SECS`] away from now, either
//!   way, is refused (replays).
//! - Key: [`channel_key`] derives it from the channel secret, so the receiver
//!   holds a signing key but not the channel secret (which is also a
//!   credential of the Converger API). [`whsec`] spells it the way the
//!   Standard Webhooks libraries take it: `whsec_` + base64(key).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;

use super::wire::hmac_sha256;

/// Accepted distance between `webhook-timestamp` and now, in seconds.
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// The label [`channel_key`] signs.
pub const KEY_LABEL: &[u8] = b"converger-webhook-signing-v1";
const WHSEC_PREFIX: &str = "whsec_";

/// The signing key of a channel: HMAC-SHA256(channel secret as UTF-8 bytes,
/// [`KEY_LABEL`]). Rotating the channel secret rotates it.
pub fn channel_key(channel_secret: &str) -> [u8; 32] {
    hmac_sha256(channel_secret.as_bytes(), &[KEY_LABEL]).finalize().into_bytes().into()
}

/// `whsec_` + base64(key): the secret to give a Standard Webhooks library.
pub fn whsec(key: &[u8]) -> String {
    format!("{WHSEC_PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a `whsec_…` secret (the prefix is optional, as in the
/// reference libraries); `None` if the rest is not base64.
pub fn parse_whsec(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(WHSEC_PREFIX).unwrap_or(secret)).ok()
}

/// The `webhook-signature` value for one key: `v1,<base64>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = signed_content_mac(key, id, &timestamp.to_string(), body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three headers of a signed request.
pub fn headers(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [(String, String); 3] {
    [
        ("webhook-id".into(), id.to_string()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), sign(key, id, timestamp, body)),
    ]
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not unix seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes away from the server's clock")]
    OutOfTolerance,
    #[error("no webhook-signature matches")]
    NoMatch,
}

/// Verifies a request's Standard Webhooks headers against `key` at `now`
/// (unix seconds). Signatures are compared in constant time.
pub fn verify(key: &[u8], headers: &[(String, String)], body: &[u8], now: i64) -> Result<(), VerifyError> {
    let header = |name: &'static str| {
        super::wire::find_header(headers, name).filter(|v| !v.is_empty()).ok_or(VerifyError::MissingHeader(name))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if now.abs_diff(ts) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::OutOfTolerance);
    }
    let mac = signed_content_mac(key, id, timestamp, body);
    let matches = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

fn signed_content_mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    hmac_sha256(key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TS: i64 = 1649367553;
    const SPEC_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SPEC_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn spec_key() -> Vec<u8> {
        parse_whsec(SPEC_SECRET).expect("base64")
    }

    fn with_signature(sig: &str, ts: i64) -> Vec<(String, String)> {
        vec![
            ("Webhook-Id".into(), SPEC_ID.into()),
            ("Webhook-Timestamp".into(), ts.to_string()),
            ("Webhook-Signature".into(), sig.into()),
        ]
    }

    #[test]
    fn signs_the_specification_test_vector() {
        assert_eq!(sign(&spec_key(), SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert_eq!(whsec(&spec_key()), SPEC_SECRET, "whsec round-trips");
    }

    #[test]
    fn verifies_the_specification_test_vector_within_tolerance_only() {
        let key = spec_key();
        let h = with_signature(SPEC_SIGNATURE, SPEC_TS);
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS), Ok(()));
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS + TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS - TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS + TOLERANCE_SECS + 1), Err(VerifyError::OutOfTolerance));
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS - TOLERANCE_SECS - 1), Err(VerifyError::OutOfTolerance));
    }

    #[test]
    fn any_one_of_several_signatures_is_enough() {
        let key = spec_key();
        let several = format!("v1a,abc v1,AAAA v1,not-base64! {SPEC_SIGNATURE}");
        assert_eq!(verify(&key, &with_signature(&several, SPEC_TS), SPEC_BODY, SPEC_TS), Ok(()));
        let none = "v1,AAAA v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(verify(&key, &with_signature(none, SPEC_TS), SPEC_BODY, SPEC_TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn a_changed_body_id_timestamp_or_key_fails() {
        let key = spec_key();
        let h = with_signature(SPEC_SIGNATURE, SPEC_TS);
        assert_eq!(verify(&key, &h, b"{}", SPEC_TS), Err(VerifyError::NoMatch));
        assert_eq!(verify(b"other key", &h, SPEC_BODY, SPEC_TS), Err(VerifyError::NoMatch));
        let moved = with_signature(SPEC_SIGNATURE, SPEC_TS + 1);
        assert_eq!(verify(&key, &moved, SPEC_BODY, SPEC_TS), Err(VerifyError::NoMatch));
        let mut other_id = h.clone();
        other_id[0].1 = "msg_other".into();
        assert_eq!(verify(&key, &other_id, SPEC_BODY, SPEC_TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn missing_or_malformed_headers_are_named() {
        let key = spec_key();
        let mut h = with_signature(SPEC_SIGNATURE, SPEC_TS);
        h.remove(2);
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS), Err(VerifyError::MissingHeader("webhook-signature")));
        let mut h = with_signature(SPEC_SIGNATURE, SPEC_TS);
        h[1].1 = "yesterday".into();
        assert_eq!(verify(&key, &h, SPEC_BODY, SPEC_TS), Err(VerifyError::BadTimestamp));
        assert_eq!(verify(&key, &[], SPEC_BODY, SPEC_TS), Err(VerifyError::MissingHeader("webhook-id")));
    }

    #[test]
    fn channel_keys_are_derived_and_differ_from_the_secret() {
        let a = channel_key("cvs_one");
        assert_eq!(a, channel_key("cvs_one"), "deterministic");
        assert_ne!(a, channel_key("cvs_two"));
        assert_ne!(&a[..], b"cvs_one");
        // Pinned so a change of derivation (which would break every receiver) fails here.
        assert_eq!(super::super::wire::hex(&a), CHANNEL_KEY_OF_CVS_ONE);
        let sig = sign(&a, "msg_1", 1, b"{}");
        let h = vec![
            ("webhook-id".into(), "msg_1".into()),
            ("webhook-timestamp".into(), "1".into()),
            ("webhook-signature".into(), sig),
        ];
        assert_eq!(verify(&parse_whsec(&whsec(&a)).expect("b64"), &h, b"{}", 1), Ok(()));
    }

    #[test]
    fn matches_the_reference_python_library() {
        // From `standardwebhooks` 1.1.0 (PyPI): Webhook(whsec).sign("msg_1", 1749416400, '{"a":1}'),
        // with whsec = "whsec_" + base64(HMAC-SHA256(b"cvs_one", KEY_LABEL)) as docs/webhooks.md says.
        let key = channel_key("cvs_one");
        assert_eq!(whsec(&key), "whsec_1bePUFuybA2xjC21kfMzpca38Luu8AB4N48JuI8AiKQ=");
        assert_eq!(sign(&key, "msg_1", 1749416400, br#"{"a":1}"#), "v1,ujEUd9VfLs4h32//yKJsJcpYVx9MdPn4dk6tIcm1OSw=");
    }

    /// HMAC-SHA256(key "cvs_one", "converger-webhook-signing-v1").
    const CHANNEL_KEY_OF_CVS_ONE: &str = "d5b78f505bb26c0db18c2db591f333a5c6b7f0bbaef00078378f09b88f0088a4";
}
