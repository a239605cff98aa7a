//! Tenant-signed tokens through `Hub::verify_token`, against a real embedded
//! store and a stand-in JWKS fetcher (no network): each algorithm, an
//! unknown kid, a revoked key, a tampered token, another tenant's claims,
//! `alg: none`, an expired token, and refresh refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use converger_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use converger_storage::{new_id, Id, Store};
use serde_json::json;

use super::super::jwks::{self, KeySet};
use super::super::signing_keys::NewKeyInput;
use super::super::{Caller, Hub, Publisher, ServiceError};
use crate::auth::jwk::test_keys::Signer;
use crate::auth::jwk::{parse_jwks, Jwk};
use crate::auth::jwt::{self, tests::sign_public, JwtError};
use crate::auth::{AuthError, Claims};
use crate::config::{Config, FileConfig, Options};

fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().expect("runtime");
    rt.block_on(f)
}

/// A stand-in for the fetcher: answers every ask with `keys`, counting asks.
struct FakeJwks {
    keys: Arc<Mutex<Vec<Jwk>>>,
    asks: Arc<AtomicUsize>,
}

fn hub(dir: &std::path::Path) -> (Hub, FakeJwks) {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("store"));
    let options = Options { delivery_allow_private: Some(true), ..Options::default() };
    let config = Config::resolve(options, FileConfig::default()).expect("config");
    let (client, mut rx) = jwks::channel();
    let fake = FakeJwks { keys: Arc::default(), asks: Arc::default() };
    let (keys, asks) = (fake.keys.clone(), fake.asks.clone());
    std::thread::spawn(move || {
        while let Some(ask) = rx.blocking_recv() {
            asks.fetch_add(1, Ordering::SeqCst);
            let keys = keys.lock().expect("keys").clone();
            let _ = ask.done.send(Ok(KeySet { keys: Arc::new(keys), fresh_for: Duration::from_secs(300) }));
        }
    });
    (Hub::new(store.clone(), Arc::new(config), Publisher::direct(store)).with_jwks(client), fake)
}

fn claims(tenant: Id, exp_in: i64) -> Claims {
    let now = super::unix_now_for_tests();
    Claims {
        sub: "alice".into(),
        tenant_id: tenant,
        conversation_id: new_id(),
        iat: now,
        exp: now + exp_in,
        nbf: None,
        jti: "j".into(),
        watch: false,
    }
}

fn refusal(r: Result<Claims, ServiceError>) -> JwtError {
    match r {
        Err(ServiceError::Auth(AuthError::Token(e))) => e,
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

#[test]
fn hs256_tenant_keys_verify_their_tenants_tokens_until_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, _) = hub(dir.path());
    run(async {
        let (a, _) = hub.create_tenant("a".into()).await.expect("tenant");
        let (b, _) = hub.create_tenant("b".into()).await.expect("tenant");
        let key = hub.create_signing_key(Caller::Tenant(a.id), NewKeyInput::Hs256).await.expect("key");
        let (kid, secret) = (key.info.kid.clone(), key.secret.clone().expect("secret shown on create"));
        let sign = |c: &Claims| jwt::sign_with_kid(c, secret.as_bytes(), Some(&kid));
        let good = claims(a.id, 60);
        assert_eq!(hub.verify_token(&sign(&good)).await.expect("verifies"), good);
        // Listed without its secret.
        let listed = hub.list_signing_keys(Caller::Tenant(a.id)).await.expect("list");
        assert_eq!(listed.iter().map(|k| (k.kid.as_str(), k.kind)).collect::<Vec<_>>(), [(kid.as_str(), "HS256")]);
        assert!(!serde_json::to_string(&listed).expect("json").contains(&secret));
        // Another tenant's claims under A's key; a token signed with another secret.
        assert_eq!(refusal(hub.verify_token(&sign(&claims(b.id, 60))).await), JwtError::WrongTenant);
        let forged = jwt::sign_with_kid(&good, b"not-the-secret", Some(&kid));
        assert_eq!(refusal(hub.verify_token(&forged).await), JwtError::BadSignature);
        // Tampered claims.
        let token = sign(&good);
        let parts: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&Claims { sub: "mallory".into(), ..good.clone() }).expect("json"));
        let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(refusal(hub.verify_token(&tampered).await), JwtError::BadSignature);
        // alg none naming the kid.
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string()), parts[1]);
        assert_eq!(refusal(hub.verify_token(&none).await), JwtError::UnsupportedAlgorithm("none".into()));
        // Expired.
        let expired = Claims { iat: good.iat - 7200, exp: good.iat - 3600, ..good.clone() };
        assert_eq!(refusal(hub.verify_token(&sign(&expired)).await), JwtError::Expired);
        // An unknown kid.
        let unknown = jwt::sign_with_kid(&good, secret.as_bytes(), Some("key_unknown"));
        assert_eq!(refusal(hub.verify_token(&unknown).await), JwtError::UnknownKey("key_unknown".into()));
        // Refresh is the signer's business.
        let refreshed = hub.refresh_token(&token).await;
        assert!(matches!(refreshed, Err(ServiceError::Auth(AuthError::WrongKind(_)))), "{refreshed:?}");
        // Revoked: another tenant cannot, the owner can, and it is seen at once (the cache too).
        let theirs = hub.revoke_signing_key(Caller::Tenant(b.id), &kid).await;
        assert!(matches!(theirs, Err(ServiceError::Store(converger_storage::StoreError::NotFound(_)))));
        hub.revoke_signing_key(Caller::Tenant(a.id), &kid).await.expect("revoke");
        assert_eq!(refusal(hub.verify_token(&token).await), JwtError::UnknownKey(kid.clone()));
        // The server's own tokens keep working beside them.
        let server = jwt::sign(&good, hub.config.jwt_secret.key.expose().as_bytes());
        assert_eq!(hub.verify_token(&server).await.expect("server token"), good);
    });
}

#[test]
fn rs256_and_es256_tokens_verify_with_the_tenants_jwks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, fake) = hub(dir.path());
    let (rsa, ec) = (Signer::rsa(), Signer::ec());
    let jwks = json!({"keys": [rsa.jwk("rsa-1"), ec.jwk("ec-1")]}).to_string();
    *fake.keys.lock().expect("keys") = parse_jwks(jwks.as_bytes()).expect("jwks");
    run(async {
        let (a, _) = hub.create_tenant("a".into()).await.expect("tenant");
        let (b, _) = hub.create_tenant("b".into()).await.expect("tenant");
        // Not https: refused before anything is fetched.
        let ftp = NewKeyInput::Jwks { url: "ftp://idp.example/jwks".into() };
        let refused = hub.create_signing_key(Caller::Tenant(a.id), ftp).await;
        assert!(
            matches!(refused, Err(ServiceError::Validation { ref field, .. }) if field == "jwks_url"),
            "{refused:?}"
        );
        let url = NewKeyInput::Jwks { url: "https://idp.example/.well-known/jwks.json".into() };
        let created = hub.create_signing_key(Caller::Tenant(a.id), url).await.expect("register");
        assert_eq!((created.info.kind, created.secret.as_deref()), ("JWKS", None));
        assert_eq!(fake.asks.load(Ordering::SeqCst), 1, "fetched once to check it");
        let good = claims(a.id, 60);
        for (signer, kid) in [(&rsa, "rsa-1"), (&ec, "ec-1")] {
            let token = sign_public(&good, signer, kid);
            assert_eq!(hub.verify_token(&token).await.expect("verifies"), good, "{kid}");
            // The same key under the other algorithm's kid: the alg must be the key's.
            let crossed = sign_public(&good, signer, if kid == "rsa-1" { "ec-1" } else { "rsa-1" });
            assert!(matches!(refusal(hub.verify_token(&crossed).await), JwtError::KeyMismatch { .. }), "{kid}");
            // Tampered, expired.
            let parts: Vec<&str> = token.split('.').collect();
            let other = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(a.id, 9_999)).expect("json"));
            let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
            assert_eq!(refusal(hub.verify_token(&tampered).await), JwtError::BadSignature, "{kid}");
            let expired = Claims { iat: good.iat - 7200, exp: good.iat - 3600, ..good.clone() };
            assert_eq!(refusal(hub.verify_token(&sign_public(&expired, signer, kid)).await), JwtError::Expired);
            // A's key signing a token that names tenant B: B has no such key.
            let theirs = sign_public(&claims(b.id, 60), signer, kid);
            assert_eq!(refusal(hub.verify_token(&theirs).await), JwtError::UnknownKey(kid.into()), "{kid}");
        }
        // A key of nobody's JWKS, an unknown kid: one refetch at most, then refusals from memory.
        let stranger = Signer::ec();
        let asks = fake.asks.load(Ordering::SeqCst);
        for _ in 0..5 {
            let t = sign_public(&good, &stranger, "ec-unknown");
            assert_eq!(refusal(hub.verify_token(&t).await), JwtError::UnknownKey("ec-unknown".into()));
        }
        assert!(fake.asks.load(Ordering::SeqCst) <= asks + 1, "a flood of bad kids asks once per interval");
        // An HS256 token naming a JWKS registration's kid; alg none without a kid.
        let hs = jwt::sign_with_kid(&good, b"x", Some(&created.info.kid));
        assert!(matches!(refusal(hub.verify_token(&hs).await), JwtError::KeyMismatch { .. }));
        let none = format!("{}.e30.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#));
        assert_eq!(refusal(hub.verify_token(&none).await), JwtError::UnsupportedAlgorithm("none".into()));
        let rs_without_kid = format!("{}.e30.AA", URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#));
        assert_eq!(refusal(hub.verify_token(&rs_without_kid).await), JwtError::UnsupportedAlgorithm("RS256".into()));
        // Revoking the registration: its keys stop verifying at once.
        hub.revoke_signing_key(Caller::Tenant(a.id), &created.info.kid).await.expect("revoke");
        let token = sign_public(&good, &ec, "ec-1");
        assert_eq!(refusal(hub.verify_token(&token).await), JwtError::UnknownKey("ec-1".into()));
    });
}
