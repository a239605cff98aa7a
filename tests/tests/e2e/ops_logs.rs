//! `--log-format json`: every line the server writes to stderr is one JSON
//! object (time, level, target, message, fields); a request's lines carry its
//! `request_id`, which `x-request-id` echoes (the client's own when usable);
//! a socket session's lines carry the `connection_id` of its upgrade request.

use std::time::Duration;

use converger_e2e::api::Fixture;
use converger_e2e::phoenix::socket;
use converger_e2e::TestServer;
use serde_json::Value;

#[test]
fn json_lines_carry_the_request_and_connection_ids() {
    let server = TestServer::embedded_with(&["--log-format", "json", "--log", "info,converger_server=debug"]);

    let echoed = server.request("GET", "/health", &[("x-request-id", "trace-me-1")], b"");
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-1"));
    let made = server.request("GET", "/health", &[], b"");
    let made_id = made.header("x-request-id").expect("an id for every answer").to_string();
    assert_eq!(made_id.len(), 32, "{made_id}");
    let long = "x".repeat(129);
    let replaced = server.request("GET", "/health", &[("x-request-id", long.as_str())], b"");
    assert_ne!(replaced.header("x-request-id"), Some(long.as_str()), "an unusable id is replaced");

    let f = Fixture::new(&server, "logs");
    drop(socket(&server, &f, "alice"));
    assert!(server.wait_for_log("socket session ended", 1, Duration::from_secs(10)), "{}", server.stderr());
    assert!(server.wait_for_log("trace-me-1", 1, Duration::from_secs(10)), "{}", server.stderr());

    let stderr = server.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["time", "level", "target", "message", "fields"] {
            assert!(line.get(key).is_some(), "no `{key}` in {line}");
        }
    }
    let of = |id: &str| lines.iter().filter(|l| l["request_id"] == id).count();
    assert!(of("trace-me-1") >= 1 && of(&made_id) >= 1, "each request's line carries its id");
    let session: Vec<&Value> = lines.iter().filter(|l| l["message"] == "socket session ended").collect();
    assert!(
        session.iter().all(|l| l["connection_id"].as_str().is_some_and(|id| id.len() == 32)),
        "the session's lines carry its connection id: {session:?}"
    );
    assert!(lines.iter().any(|l| l["message"] == "storage opened"), "start-up lines too");
}
