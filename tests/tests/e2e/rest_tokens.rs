//! `/api/v1/tokens`: issue a client token (claims, lifetime), refresh a valid
//! one, and refuse expired-looking, tampered, foreign and malformed input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::server::JWT_SECRET;
use converger_e2e::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

on_both_backends!(
    issue_and_refresh_carry_the_claims,
    bad_token_requests_are_refused,
    tokens_from_the_future_are_refused
);

/// The claims of a JWT (not verified: the server does that).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

/// An HS256 token over `claims` with the test server's JWT secret.
fn sign(claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("hmac key");
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn issue_and_refresh_carry_the_claims(server: &TestServer) {
    let f = Fixture::new(server, "tok");
    let c = f.client(server);
    let issued = expect(
        &c.post(
            "/api/v1/tokens",
            &json!({"conversation_id": f.conversation_id(), "sender": "alice", "ttl_seconds": 600}),
        ),
        200,
    );
    assert_eq!(issued["conversation_id"].as_str(), Some(f.conversation_id()));
    let token = issued["token"].as_str().expect("token");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().expect("header")).expect("b64"))
            .expect("json");
    assert_eq!(header["alg"], "HS256");
    let c1 = claims(token);
    assert_eq!(
        (c1["sub"].as_str(), c1["tenant_id"].as_str(), c1["conversation_id"].as_str()),
        (Some("alice"), Some(f.tenant.id.as_str()), Some(f.conversation_id()))
    );
    assert_eq!(c1["exp"].as_i64().expect("exp") - c1["iat"].as_i64().expect("iat"), 600);
    assert!(c1["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(issued["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let default =
        expect(&c.post("/api/v1/tokens", &json!({"conversation_id": f.conversation_id(), "sender": "bob"})), 200);
    let d = claims(default["token"].as_str().expect("token"));
    assert_eq!(d["exp"].as_i64().expect("exp") - d["iat"].as_i64().expect("iat"), 3600, "default lifetime 1 h");
    let refreshed = expect(&Client::bearer(server, token).post("/api/v1/tokens/refresh", &json!({})), 200);
    let c2 = claims(refreshed["token"].as_str().expect("token"));
    assert_eq!(
        (c2["sub"].clone(), c2["conversation_id"].clone(), c2["tenant_id"].clone()),
        (c1["sub"].clone(), c1["conversation_id"].clone(), c1["tenant_id"].clone())
    );
    assert_ne!(c2["jti"], c1["jti"]);
    assert_eq!(c2["exp"].as_i64().expect("exp") - c2["iat"].as_i64().expect("iat"), 600, "same lifetime");
    // Refresh works without a body too.
    assert_eq!(
        server.request("POST", "/api/v1/tokens/refresh", &[("authorization", &format!("Bearer {token}"))], b"").status,
        200
    );
    // A token the test signs with the server's key is accepted: the format is plain HS256.
    assert_eq!(Client::bearer(server, &sign(&c1)).post("/api/v1/tokens/refresh", &json!({})).status, 200);
}

fn bad_token_requests_are_refused(server: &TestServer) {
    let f = Fixture::new(server, "badtok");
    let c = f.client(server);
    let conv = f.conversation_id();
    for (body, field) in [
        (json!({"sender": "a"}), "conversation_id"),
        (json!({"conversation_id": conv}), "sender"),
        (json!({"conversation_id": conv, "sender": "a", "ttl_seconds": 0}), "ttl_seconds"),
        (json!({"conversation_id": conv, "sender": "a", "ttl_seconds": 86_401}), "ttl_seconds"),
        (json!({"conversation_id": conv, "sender": "a", "ttl_seconds": "60"}), "ttl_seconds"),
    ] {
        assert_eq!(assert_error(&c.post("/api/v1/tokens", &body), 422, "validation_failed")["field"], field, "{body}");
    }
    let missing = json!({"conversation_id": "0190f0f0-0000-7000-8000-000000000000", "sender": "a"});
    assert_error(&c.post("/api/v1/tokens", &missing), 404, "not_found");
    let issued = expect(&c.post("/api/v1/tokens", &json!({"conversation_id": conv, "sender": "a"})), 200);
    let token = issued["token"].as_str().expect("token");
    // Tampered claims, garbage, and an API key in place of a token.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims(token);
    forged["sub"] = json!("mallory");
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged.to_string()), parts[2]);
    assert_error(&Client::bearer(server, &forged).post("/api/v1/tokens/refresh", &json!({})), 401, "unauthorized");
    assert_error(&Client::bearer(server, "a.b.c").post("/api/v1/tokens/refresh", &json!({})), 401, "unauthorized");
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), parts[1]);
    assert_error(&Client::bearer(server, &none).post("/api/v1/tokens/refresh", &json!({})), 401, "unauthorized");
    assert_error(&c.post("/api/v1/tokens/refresh", &json!({})), 403, "forbidden");
    // Correctly signed with the server's key, but expired beyond the leeway.
    let mut old = claims(token);
    old["exp"] = json!(old["iat"].as_i64().expect("iat") - 3600);
    assert_error(&Client::bearer(server, &sign(&old)).post("/api/v1/tokens/refresh", &json!({})), 401, "unauthorized");
    assert_error(&Client::bearer(server, token).get("/api/v1/channels"), 403, "forbidden");
    // A disabled tenant cannot refresh its clients' tokens.
    expect(
        &Client::admin(server).patch(&format!("/admin/api/tenants/{}", f.tenant.id), &json!({"status": "inactive"})),
        200,
    );
    assert_error(&Client::bearer(server, token).post("/api/v1/tokens/refresh", &json!({})), 403, "tenant_inactive");
}

/// Correctly signed tokens whose `iat` or `nbf` lie ahead of the server's
/// clock beyond the 30 s leeway are refused, like expired ones; within the
/// leeway they pass.
fn tokens_from_the_future_are_refused(server: &TestServer) {
    let f = Fixture::new(server, "future");
    let issued = expect(
        &f.client(server).post("/api/v1/tokens", &json!({"conversation_id": f.conversation_id(), "sender": "a"})),
        200,
    );
    let base = claims(issued["token"].as_str().expect("token"));
    let now = base["iat"].as_i64().expect("iat");
    let refresh = |c: &Value| Client::bearer(server, &sign(c)).post("/api/v1/tokens/refresh", &json!({}));
    let year = 365 * 24 * 3600;
    let mut from_next_year = base.clone();
    from_next_year["iat"] = json!(now + year);
    from_next_year["exp"] = json!(now + year + 3600);
    assert_error(&refresh(&from_next_year), 401, "unauthorized");
    let mut not_before_tomorrow = base.clone();
    not_before_tomorrow["nbf"] = json!(now + 24 * 3600);
    assert_error(&refresh(&not_before_tomorrow), 401, "unauthorized");
    // The socket checks the same rule: no upgrade for such a token.
    let socket = server.get(&format!("/socket/websocket?vsn=2.0.0&token={}", sign(&not_before_tomorrow)));
    assert_error(&socket, 401, "unauthorized");
    // Within the leeway (the test's clock and the server's are the same one).
    let mut slightly_ahead = base.clone();
    slightly_ahead["iat"] = json!(now + 5);
    slightly_ahead["nbf"] = json!(now + 5);
    assert_eq!(refresh(&slightly_ahead).status, 200);
}
