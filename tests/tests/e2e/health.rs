//! Health endpoints on both storage backends.

use converger_e2e::TestServer;

#[test]
fn health_answers_ok() {
    let server = TestServer::embedded();
    let reply = server.get("/health");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[test]
fn live_answers_ok() {
    let server = TestServer::embedded();
    assert_eq!(server.get("/health/live").status, 200);
}

#[test]
fn ready_answers_200_on_embedded_storage() {
    let server = TestServer::embedded();
    let reply = server.get("/health/ready");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["storage"], "embedded");
}

#[test]
fn ready_answers_200_on_postgres() {
    let Some(server) = TestServer::postgres() else { return };
    let reply = server.get("/health/ready");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["storage"], "postgres");
}

#[test]
fn unknown_route_is_a_json_404_and_wrong_method_a_405() {
    let server = TestServer::embedded();
    let reply = server.get("/no/such/route");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "not_found");
    let reply = server.request("DELETE", "/health", &[], b"");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["error"]["code"], "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
}
