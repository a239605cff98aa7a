//! Public keys for tenant-signed client tokens: a JWKS document (RFC 7517)
//! parsed into the keys Converger can verify with, and their signature
//! checks — RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) and ES256
//! (ECDSA P-256 with SHA-256, its signature the fixed 64-byte `r‖s`, §3.4).
//!
//! The checks are `ring`'s, the crypto library rustls and reqwest already
//! compile here: no RSA or EC crate is added to the build.
//!
//! What a JWKS holds is the tenant's to choose, so parsing is lenient per key
//! and strict per document: a key of another type, curve or use is skipped
//! (an identity provider's JWKS often lists encryption keys beside signing
//! ones); a document that is not a JWKS, or names no key usable here, is an
//! error. At most [`MAX_KEYS`] keys are read; RSA moduli of 2048 to 8192 bits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

/// Keys read from one document at most; the rest are ignored.
pub const MAX_KEYS: usize = 32;

/// A public key a token's signature is checked with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: modulus and exponent, big-endian without leading zeros.
    Rs256 { n: Vec<u8>, e: Vec<u8> },
    /// P-256: the uncompressed point `0x04 ‖ x ‖ y`.
    Es256 { point: Vec<u8> },
}

impl PublicKey {
    /// The JWS `alg` this key verifies: a token must name exactly it.
    pub fn alg(&self) -> &'static str {
        match self {
            PublicKey::Rs256 { .. } => "RS256",
            PublicKey::Es256 { .. } => "ES256",
        }
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rs256 { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            PublicKey::Es256 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, signature).is_ok()
            }
        }
    }
}

/// One usable key of a JWKS, with the `kid` tokens name it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    pub key: PublicKey,
}

/// Why a document is not a usable JWKS.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("not a JWKS document (a JSON object with a `keys` array)")]
    NotJwks,
    #[error("no usable key: a JWKS needs at least one RSA (RS256) or P-256 (ES256) signing key with a `kid`")]
    NoUsableKey,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// The fields of one JWK that matter here; the rest are ignored.
#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The usable keys of a JWKS document.
pub fn parse_jwks(document: &[u8]) -> Result<Vec<Jwk>, JwksError> {
    let doc: Document = serde_json::from_slice(document).map_err(|_| JwksError::NotJwks)?;
    let keys: Vec<Jwk> = doc
        .keys
        .into_iter()
        .take(MAX_KEYS)
        .filter_map(|v| serde_json::from_value::<RawKey>(v).ok())
        .filter_map(usable)
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(keys)
}

/// The key, when it is a signing key of a type and size verified here.
fn usable(raw: RawKey) -> Option<Jwk> {
    let kid = raw.kid.filter(|k| !k.is_empty())?;
    if raw.usage.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let b64 = |s: Option<String>| URL_SAFE_NO_PAD.decode(s?.trim_end_matches('=')).ok();
    let key = match raw.kty.as_str() {
        "RSA" => {
            let n = strip_zeros(b64(raw.n)?);
            let e = strip_zeros(b64(raw.e)?);
            if !(256..=1024).contains(&n.len()) || e.is_empty() || e.len() > 4 {
                return None;
            }
            PublicKey::Rs256 { n, e }
        }
        "EC" if raw.crv.as_deref() == Some("P-256") => {
            let (x, y) = (b64(raw.x)?, b64(raw.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Es256 { point }
        }
        _ => return None,
    };
    // A key that names its algorithm is used for that one only.
    if raw.alg.as_deref().is_some_and(|a| a != key.alg()) {
        return None;
    }
    Some(Jwk { kid, key })
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Keys for tests. ES256 keys are generated by each test; `ring` cannot
    //! generate RSA keys, so RS256 tests use one fixed 2048-bit key made for
    //! them (`testdata/rsa-test-key.pem`, from `openssl genpkey`), never used
    //! for anything else.

    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    pub const RSA_PEM: &str = include_str!("testdata/rsa-test-key.pem");

    /// The DER inside a PEM block.
    pub fn pem_der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body is base64")
    }

    /// A signer and its public key.
    pub enum Signer {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
    }

    impl Signer {
        pub fn rsa() -> Signer {
            Signer::Rsa(RsaKeyPair::from_pkcs8(&pem_der(RSA_PEM)).expect("the test RSA key parses"))
        }

        pub fn ec() -> Signer {
            let rng = SystemRandom::new();
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate a P-256 key");
            Signer::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("P-256 key"))
        }

        pub fn alg(&self) -> &'static str {
            match self {
                Signer::Rsa(_) => "RS256",
                Signer::Ec(_) => "ES256",
            }
        }

        pub fn sign(&self, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                Signer::Rsa(k) => {
                    let mut sig = vec![0; k.public().modulus_len()];
                    k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).expect("RSA sign");
                    sig
                }
                Signer::Ec(k) => k.sign(&rng, message).expect("ECDSA sign").as_ref().to_vec(),
            }
        }

        /// The public key as a JWK object with `kid`.
        pub fn jwk(&self, kid: &str) -> serde_json::Value {
            let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
            match self {
                Signer::Rsa(k) => {
                    let c: RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                    serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": b64(&c.n), "e": b64(&c.e)})
                }
                Signer::Ec(k) => {
                    let p = k.public_key().as_ref();
                    serde_json::json!({"kty": "EC", "kid": kid, "crv": "P-256",
                        "x": b64(&p[1..33]), "y": b64(&p[33..65])})
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::Signer;
    use super::*;
    use serde_json::json;

    #[test]
    fn rsa_and_ec_keys_verify_their_own_signatures_only() {
        for signer in [Signer::rsa(), Signer::ec()] {
            let jwks = json!({"keys": [signer.jwk("k")]}).to_string();
            let keys = parse_jwks(jwks.as_bytes()).expect("parses");
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].kid, "k");
            assert_eq!(keys[0].key.alg(), signer.alg());
            let sig = signer.sign(b"message");
            assert!(keys[0].key.verify(b"message", &sig), "{}", signer.alg());
            assert!(!keys[0].key.verify(b"messagE", &sig), "{}: another message", signer.alg());
            let other = if signer.alg() == "RS256" { Signer::ec() } else { Signer::rsa() };
            assert!(!keys[0].key.verify(b"message", &other.sign(b"message")), "another key's signature");
        }
    }

    #[test]
    fn unusable_keys_are_skipped_and_a_document_without_any_is_refused() {
        let ec = Signer::ec().jwk("ec");
        let mut enc = Signer::rsa().jwk("enc");
        enc["use"] = json!("enc");
        let mut no_kid = Signer::ec().jwk("x");
        no_kid.as_object_mut().expect("object").remove("kid");
        let mut wrong_alg = Signer::ec().jwk("wrong");
        wrong_alg["alg"] = json!("RS256");
        let p384 = json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"});
        let oct = json!({"kty": "oct", "kid": "sym", "k": "c2VjcmV0"});
        let doc = json!({"keys": [enc, no_kid, wrong_alg, p384, oct, "junk", ec]}).to_string();
        let keys = parse_jwks(doc.as_bytes()).expect("one usable key");
        assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["ec"]);
        assert_eq!(parse_jwks(br#"{"keys": [{"kty": "oct", "kid": "k", "k": "AA"}]}"#), Err(JwksError::NoUsableKey));
        assert_eq!(parse_jwks(br#"{"keys": []}"#), Err(JwksError::NoUsableKey));
        for bad in [&b"[]"[..], b"{}", b"not json", br#"{"keys": 1}"#] {
            assert_eq!(parse_jwks(bad), Err(JwksError::NotJwks));
        }
    }

    #[test]
    fn short_rsa_moduli_are_not_usable() {
        let short = json!({"kty": "RSA", "kid": "s", "n": URL_SAFE_NO_PAD.encode([0xff; 128]), "e": "AQAB"});
        assert_eq!(parse_jwks(json!({"keys": [short]}).to_string().as_bytes()), Err(JwksError::NoUsableKey));
    }
}
