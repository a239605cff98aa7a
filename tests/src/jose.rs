//! Client tokens signed the way a tenant's backend signs them: HS256 with
//! the tenant's own secret, RS256 or ES256 with a private key whose public
//! half the tenant publishes as a JWKS. P-256 keys are made by each test;
//! `ring` cannot make RSA keys, so RS256 uses the server's fixed test key
//! (`server/src/auth/testdata/rsa-test-key.pem`, for tests only).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{json, Value};
use sha2::Sha256;

const RSA_PEM: &str = include_str!("../../server/src/auth/testdata/rsa-test-key.pem");

/// A private key that signs tokens.
pub enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Signer {
    pub fn rsa() -> Signer {
        let body: String = RSA_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("PEM body");
        Signer::Rsa(RsaKeyPair::from_pkcs8(&der).expect("the test RSA key"))
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

    /// The public key as a JWK named `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Signer::Rsa(k) => {
                let c: RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
        }
    }

    /// `claims` signed with this key, naming `kid`.
    pub fn sign(&self, claims: &Value, kid: &str) -> String {
        let input = signing_input(&json!({"alg": self.alg(), "typ": "JWT", "kid": kid}), claims);
        let rng = SystemRandom::new();
        let sig = match self {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig).expect("RSA sign");
                sig
            }
            Signer::Ec(k) => k.sign(&rng, input.as_bytes()).expect("ECDSA sign").as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// `claims` signed HS256 with `secret` (its UTF-8 bytes), naming `kid`.
pub fn sign_hs256(claims: &Value, secret: &str, kid: &str) -> String {
    let input = signing_input(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), claims);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// A token with `alg: none` and no signature, naming `kid`.
pub fn unsigned(claims: &Value, kid: &str) -> String {
    format!("{}.", signing_input(&json!({"alg": "none", "kid": kid}), claims))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// The claims Converger's client tokens carry: `sub`, `tenant_id`,
/// `conversation_id`, `iat`, `exp` (`ttl` seconds from now), `jti`.
pub fn claims(tenant_id: &str, conversation_id: &str, sender: &str, ttl: i64) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    json!({"sub": sender, "tenant_id": tenant_id, "conversation_id": conversation_id,
           "iat": now, "exp": now + ttl, "jti": format!("jti-{now}-{sender}")})
}
