//! The first run on embedded storage (docs/operations.md, "First run"): no
//! admin token and no JWT secret given, the server makes both, keeps them in
//! the data directory (0600), shows the token once with the console's URL,
//! and a restart keeps the admin token and every client token valid.

use converger_e2e::api::{expect, Client};
use converger_e2e::TestServer;
use serde_json::json;

/// The admin token the server printed, if it printed one.
fn shown_token(stderr: &str) -> Option<String> {
    let line = stderr.lines().find(|l| l.starts_with("admin console: "))?;
    line.split_once("shown once, kept in ").and_then(|(_, rest)| rest.split_once("): ")).map(|(_, t)| t.to_string())
}

fn wait_for_console_line(server: &TestServer) -> String {
    for _ in 0..250 {
        let stderr = server.stderr();
        if stderr.lines().any(|l| l.starts_with("admin console: ")) {
            return stderr;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no console line on stderr:\n{}", server.stderr());
}

#[test]
fn the_first_start_makes_and_shows_a_token_that_survives_restarts_with_client_tokens() {
    let mut server = TestServer::first_run(&[]);
    let stderr = wait_for_console_line(&server);
    let url = format!("http://{}/admin", server.http_addr());
    assert!(stderr.contains(&url), "the console URL: {stderr}");
    let token = shown_token(&stderr).expect("the token is shown on the first start");
    let file = server.data_dir().join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).expect("kept").trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).expect("file").permissions().mode() & 0o777, 0o600);
    }
    let admin = Client::bearer(&server, &token);
    expect(&admin.get("/admin/api/stats"), 200);

    // A client token made now must still verify after a restart.
    let tenant = {
        let body = expect(&admin.post("/admin/api/tenants", &json!({"name": "first"})), 201);
        body["api_key"].as_str().expect("key").to_string()
    };
    let api = Client::bearer(&server, &tenant);
    let channel = expect(&api.post("/api/v1/channels", &json!({"name": "c", "type": "websocket"})), 201);
    let conversation = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let issued =
        expect(&api.post("/api/v1/tokens", &json!({"conversation_id": conversation["id"], "sender": "alice"})), 200);
    let client_token = issued["token"].as_str().expect("token").to_string();

    server.kill_and_restart();
    let stderr = wait_for_console_line(&server);
    assert_eq!(shown_token(&stderr), None, "shown once only: {stderr}");
    assert!(stderr.contains("(token in ") && stderr.contains("admin-token"), "{stderr}");
    expect(&Client::bearer(&server, &token).get("/admin/api/stats"), 200);
    let refreshed = Client::bearer(&server, &client_token).post("/api/v1/tokens/refresh", &json!({}));
    assert_eq!(refreshed.status, 200, "a client token from before the restart: {}", refreshed.text());
}

#[test]
fn configured_values_win_and_an_empty_token_keeps_the_admin_api_off() {
    let server = TestServer::first_run(&["--admin-token", "mine", "--jwt-secret", "s"]);
    expect(&Client::bearer(&server, "mine").get("/admin/api/stats"), 200);
    assert!(!server.data_dir().join("admin-token").exists());
    assert!(!server.data_dir().join("jwt-secret").exists());
    assert!(!server.stderr().contains("admin console:"));

    let server = TestServer::first_run(&["--admin-token", ""]);
    let reply = Client::bearer(&server, "anything").get("/admin/api/stats");
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (404, Some("admin_disabled")));
    assert!(!server.data_dir().join("admin-token").exists());
    // The JWT secret is still kept: client tokens survive restarts.
    assert!(server.data_dir().join("jwt-secret").exists());
}
