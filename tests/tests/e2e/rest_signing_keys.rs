//! `/api/v1/signing-keys` and the tokens tenants sign themselves: an HS256
//! key shown once, listed without its secret, revoked; a JWKS served by a
//! local server (RS256 and ES256, a rotated key, a flood of unknown kids);
//! the tokens used on the Phoenix socket, the binary protocol (TCP Hello,
//! Reauth, `/socket/binary?token=`), and refused where they must be.

use std::sync::{Arc, Mutex};

use converger_e2e::api::{assert_error, create_tenant, expect, Client, Fixture};
use converger_e2e::binary::BinClient;
use converger_e2e::jose::{claims, sign_hs256, unsigned, Signer};
use converger_e2e::phoenix::{connect, join, topic, with_token};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use converger_protocol::{Ack, Auth, Frame, Reauth};
use serde_json::{json, Value};

on_both_backends!(hs256_keys_sign_tokens_every_transport_takes_until_revoked, jwks_keys_verify_rs256_and_es256_tokens);

/// The HTTP status a Phoenix socket upgrade with `token` gets (101 = accepted).
fn phoenix_status(server: &TestServer, token: &str) -> u16 {
    match connect(server, &format!("token={token}&vsn=2.0.0")) {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("socket upgrade failed: {e}"),
    }
}

fn hs256_keys_sign_tokens_every_transport_takes_until_revoked(server: &TestServer) {
    let f = Fixture::new(server, "keys");
    let api = f.client(server);
    let created = expect(&api.send("POST", "/api/v1/signing-keys", &[], None), 201);
    let (kid, secret) = (created["kid"].as_str().expect("kid"), created["secret"].as_str().expect("secret"));
    assert!(kid.starts_with("key_") && secret.starts_with("cvk_"), "{created}");
    assert_eq!(created["type"], "HS256");
    let listed = expect(&api.get("/api/v1/signing-keys"), 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["kid"], kid);
    assert!(!listed.to_string().contains(secret), "a listing never shows the secret");

    let mine = claims(&f.tenant.id, f.conversation_id(), "alice", 600);
    let token = sign_hs256(&mine, secret, kid);
    // Phoenix: connect and join the conversation the token names.
    let mut ws = with_token(server, &token);
    let reply = join(&mut ws, &topic(&f), json!({}));
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    // Binary over TCP: Hello, then Reauth with another token of the same key.
    let (mut bin, welcome) = BinClient::with_token(server.binary_addr(), &token);
    assert_eq!(welcome.sender, "alice");
    let again = sign_hs256(&claims(&f.tenant.id, f.conversation_id(), "alice", 900), secret, kid);
    bin.send(Reauth { request_id: 7, token: again });
    assert!(matches!(bin.frame(), Frame::Ack(Ack { request_id: 7 })));
    // Binary over WebSocket, the token checked at the upgrade.
    let mut ws_bin = BinClient::websocket(server.http_addr(), Some(&token)).expect("upgrade");
    ws_bin.hello(Auth::Token(token.clone())).expect("welcome");
    // Refresh is for the server's tokens: the tenant's backend signs a new one.
    assert_error(&Client::bearer(server, &token).post("/api/v1/tokens/refresh", &json!({})), 403, "forbidden");

    // Refused: another tenant's claims under this key, a wrong secret, alg none, expired.
    let other = create_tenant(server, "other");
    let theirs = claims(&other.id, f.conversation_id(), "alice", 600);
    assert_eq!(phoenix_status(server, &sign_hs256(&theirs, secret, kid)), 401);
    assert_eq!(phoenix_status(server, &sign_hs256(&mine, "cvk_not-the-secret", kid)), 401);
    assert_eq!(phoenix_status(server, &unsigned(&mine, kid)), 401);
    assert_eq!(
        phoenix_status(server, &sign_hs256(&claims(&f.tenant.id, f.conversation_id(), "a", -3600), secret, kid)),
        401
    );
    let mut refused = BinClient::tcp(server.binary_addr());
    assert!(refused.hello(Auth::Token(sign_hs256(&theirs, secret, kid))).is_err(), "another tenant's claims");

    // Revoke: only by its tenant; then its tokens are refused everywhere.
    let other_api = Client::bearer(server, &other.api_key);
    assert_error(&other_api.send("DELETE", &format!("/api/v1/signing-keys/{kid}"), &[], None), 404, "not_found");
    assert_eq!(api.send("DELETE", &format!("/api/v1/signing-keys/{kid}"), &[], None).status, 204);
    assert_eq!(phoenix_status(server, &token), 401);
    let mut after = BinClient::tcp(server.binary_addr());
    assert!(after.hello(Auth::Token(token.clone())).is_err(), "a revoked key");
    assert_error(&api.send("DELETE", &format!("/api/v1/signing-keys/{kid}"), &[], None), 404, "not_found");
    assert_eq!(expect(&api.get("/api/v1/signing-keys"), 200)["data"], json!([]));
    // The server's own tokens are untouched.
    assert_eq!(phoenix_status(server, &f.token(server, "bob")), 101);
}

/// A JWKS document served from loopback, changeable while it runs.
struct Jwks {
    receiver: Receiver,
    keys: Arc<Mutex<Vec<Value>>>,
}

impl Jwks {
    fn serve(keys: Vec<Value>) -> Jwks {
        let keys = Arc::new(Mutex::new(keys));
        let served = keys.clone();
        let receiver =
            Receiver::start_with(vec![200], move |_| json!({"keys": *served.lock().expect("keys")}).to_string());
        Jwks { receiver, keys }
    }

    fn fetches(&self) -> usize {
        self.receiver.requests().len()
    }
}

fn jwks_keys_verify_rs256_and_es256_tokens(server: &TestServer) {
    let (rsa, ec) = (Signer::rsa(), Signer::ec());
    let jwks = Jwks::serve(vec![rsa.jwk("rsa-1"), ec.jwk("ec-1")]);
    let f = Fixture::new(server, "jwks");
    let api = f.client(server);
    let url = jwks.receiver.url("/.well-known/jwks.json");
    let created = expect(&api.post("/api/v1/signing-keys", &json!({"jwks_url": url})), 201);
    assert_eq!((created["type"].as_str(), created["jwks_url"].as_str()), (Some("JWKS"), Some(url.as_str())));
    assert!(created.get("secret").is_none(), "{created}");
    assert_eq!(jwks.fetches(), 1, "fetched once to check it");

    let mine = claims(&f.tenant.id, f.conversation_id(), "alice", 600);
    // RS256 on the Phoenix socket, ES256 on the binary protocol: from the kept set.
    let mut ws = with_token(server, &rsa.sign(&mine, "rsa-1"));
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");
    let (_bin, welcome) = BinClient::with_token(server.binary_addr(), &ec.sign(&mine, "ec-1"));
    assert_eq!(welcome.sender, "alice");
    assert_eq!(jwks.fetches(), 1, "kept for its max-age, not fetched per token");

    // The tenant rotates: a new key appears; its first token refetches the set.
    let rotated = Signer::ec();
    jwks.keys.lock().expect("keys").push(rotated.jwk("ec-2"));
    assert_eq!(phoenix_status(server, &rotated.sign(&mine, "ec-2")), 101);
    let fetched = jwks.fetches();
    assert_eq!(fetched, 2);
    // A flood of made-up kids: refused, and the tenant's server is not hammered.
    let stranger = Signer::ec();
    for i in 0..10 {
        assert_eq!(phoenix_status(server, &stranger.sign(&mine, &format!("bogus-{i}"))), 401);
    }
    assert!(jwks.fetches() <= fetched + 1, "at most one refetch per interval: {} fetches", jwks.fetches());
    // The algorithm must be the key's; none is refused; another tenant's claims too.
    assert_eq!(phoenix_status(server, &ec.sign(&mine, "rsa-1")), 401);
    assert_eq!(phoenix_status(server, &unsigned(&mine, "rsa-1")), 401);
    let other = create_tenant(server, "other");
    assert_eq!(phoenix_status(server, &rsa.sign(&claims(&other.id, f.conversation_id(), "a", 600), "rsa-1")), 401);

    // A URL that answers no key set is refused at registration.
    let empty = Receiver::start(vec![200], r#"{"keys": []}"#);
    let refused = assert_error(
        &api.post("/api/v1/signing-keys", &json!({"jwks_url": empty.url("/jwks")})),
        422,
        "validation_failed",
    );
    assert_eq!(refused["field"], "jwks_url");
    // Revoked: its keys stop verifying.
    let kid = created["kid"].as_str().expect("kid");
    assert_eq!(api.send("DELETE", &format!("/api/v1/signing-keys/{kid}"), &[], None).status, 204);
    assert_eq!(phoenix_status(server, &rsa.sign(&mine, "rsa-1")), 401);
}

/// Without `--delivery-allow-private`: https only, and no private or loopback address.
#[test]
fn jwks_urls_must_be_public_https() {
    let server = TestServer::embedded_with(&["--delivery-allow-private", "false"]);
    let t = create_tenant(&server, "guarded");
    let api = Client::bearer(&server, &t.api_key);
    let jwks = Jwks::serve(vec![Signer::ec().jwk("k")]);
    for url in [
        jwks.receiver.url("/jwks"),
        jwks.receiver.url("/jwks").replacen("http://", "https://", 1),
        "https://localhost/jwks".to_string(),
        "https://169.254.169.254/latest".to_string(),
    ] {
        let refused =
            assert_error(&api.post("/api/v1/signing-keys", &json!({"jwks_url": url})), 422, "validation_failed");
        assert_eq!(refused["field"], "jwks_url", "{url}: {refused}");
    }
    assert_eq!(jwks.fetches(), 0, "nothing reached the private address");
}

/// The endpoints take the tenant API key only, and refuse unknown fields.
#[test]
fn signing_key_endpoints_take_the_api_key_only() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "auth");
    assert_error(&Client::anonymous(&server).get("/api/v1/signing-keys"), 401, "unauthorized");
    let by_secret = Client::bearer(&server, f.channel_secret());
    assert_error(&by_secret.post("/api/v1/signing-keys", &json!({})), 403, "forbidden");
    let api = f.client(&server);
    let refused = assert_error(&api.post("/api/v1/signing-keys", &json!({"alg": "HS256"})), 422, "validation_failed");
    assert_eq!(refused["field"], "alg");
}
