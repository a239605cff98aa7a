//! CORS and the WebSocket origin check (`--cors-origins`): a preflight is
//! answered with what the path allows, listed origins get
//! `Access-Control-Allow-Origin`, others get nothing (and 403 on a preflight
//! or a socket upgrade); clients that send no Origin are not browsers and
//! pass.

use converger_e2e::{converger_command, Conn, TestServer};

const APP: &str = "https://app.example.com";

fn preflight(server: &TestServer, origin: &str, path: &str, method: &str) -> converger_e2e::Reply {
    server.request(
        "OPTIONS",
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", "authorization, content-type"),
        ],
        b"",
    )
}

/// The answer head to a WebSocket upgrade of `path` with `origin` (if any).
fn upgrade(server: &TestServer, path: &str, origin: Option<&str>) -> u16 {
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    let mut headers = vec![
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    conn.send_request("GET", path, &headers, b"").expect("send");
    conn.read_reply(false).expect("reply").status
}

#[test]
fn a_listed_origin_gets_preflight_and_cors_headers_and_others_get_none() {
    let server = TestServer::embedded_with(&["--cors-origins", &format!("{APP},http://localhost:3000")]);
    let reply = preflight(&server, APP, "/api/v1/channels", "POST");
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(reply.header("vary"), Some("origin"));
    assert_eq!(reply.header("access-control-allow-methods"), Some("POST"));
    let allowed = reply.header("access-control-allow-headers").expect("allow-headers");
    assert!(allowed.contains("authorization") && allowed.contains("idempotency-key"), "{allowed}");
    assert!(reply.header("access-control-max-age").is_some());
    assert!(reply.header("access-control-allow-credentials").is_none(), "no credentials unless asked");
    assert!(reply.header("content-length").is_none(), "a 204 has no length");
    // A method the path does not take: the answer lists what it does take.
    let reply = preflight(&server, APP, "/api/v1/channels", "DELETE");
    assert_eq!(reply.header("access-control-allow-methods"), Some("POST, GET, HEAD"));

    // Answers to a listed origin carry the header; to another, none.
    let reply = server.request("GET", "/health", &[("origin", "http://localhost:3000")], b"");
    assert_eq!(reply.header("access-control-allow-origin"), Some("http://localhost:3000"));
    assert!(reply.header("access-control-expose-headers").expect("expose").contains("retry-after"));
    let reply = server.request("GET", "/health", &[("origin", "https://evil.example.com")], b"");
    assert_eq!(reply.status, 200);
    assert!(reply.header("access-control-allow-origin").is_none());
    let reply = preflight(&server, "https://evil.example.com", "/api/v1/channels", "POST");
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (403, Some("origin_not_allowed")));
    assert!(reply.header("access-control-allow-origin").is_none());
    // An unknown path is 404 even to a preflight.
    assert_eq!(preflight(&server, APP, "/nope", "GET").status, 404);
}

#[test]
fn without_a_list_there_are_no_cors_headers_and_options_is_405() {
    let server = TestServer::embedded();
    let reply = preflight(&server, APP, "/api/v1/channels", "POST");
    assert_eq!(reply.status, 405);
    let reply = server.request("GET", "/health", &[("origin", APP)], b"");
    assert!(reply.header("access-control-allow-origin").is_none());
    assert_eq!(upgrade(&server, "/socket/binary", Some("https://anyone.example")), 101, "no list: any Origin");
}

#[test]
fn any_origin_is_star_and_credentials_are_for_listed_origins_only() {
    let server = TestServer::embedded_with(&["--cors-origins", "*"]);
    let reply = server.request("GET", "/health", &[("origin", "https://whoever.example")], b"");
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert!(reply.header("access-control-allow-credentials").is_none());

    let server = TestServer::embedded_with(&["--cors-origins", APP, "--cors-credentials"]);
    let reply = server.request("GET", "/health", &[("origin", APP)], b"");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "never * with credentials");
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));

    let dir = tempfile::tempdir().expect("tempdir");
    let out = converger_command()
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--binary-addr",
            "127.0.0.1:0",
            "--cors-origins",
            "*",
            "--cors-credentials",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cors_credentials") && stderr.contains("*"), "{stderr}");
}

#[test]
fn a_socket_upgrade_from_an_unlisted_origin_is_403_and_non_browsers_pass() {
    let server = TestServer::embedded_with(&["--cors-origins", APP]);
    for path in ["/socket/binary", "/socket/websocket?vsn=2.0.0&token=x"] {
        assert_eq!(upgrade(&server, path, Some("https://evil.example.com")), 403, "{path}");
    }
    assert_eq!(upgrade(&server, "/socket/binary", Some(APP)), 101, "a listed origin");
    assert_eq!(upgrade(&server, "/socket/binary", None), 101, "no Origin: not a browser");
}
