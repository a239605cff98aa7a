//! The unversioned HTTP endpoints: health (readiness on both storage
//! backends), metrics, and the answers for unknown routes and methods.

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

on_both_backends!(ready_answers_200_naming_the_storage_backend);

fn ready_answers_200_naming_the_storage_backend(server: &TestServer) {
    let reply = server.get("/health/ready");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["storage"], server.backend());
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

#[test]
fn metrics_count_requests_and_committed_activities_across_shards() {
    let server = TestServer::embedded();
    let f = converger_e2e::api::Fixture::new(&server, "metrics");
    let client = f.client(&server);
    for i in 0..5 {
        let reply = client.post(&f.activities_path(), &serde_json::json!({"sender": "m", "text": format!("{i}")}));
        assert_eq!(reply.status, 201);
    }
    let page = server.get("/metrics");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let text = page.text();
    let value = |prefix: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number")
    };
    assert_eq!(value("converger_activities_committed_total "), 5.0);
    let route = "converger_http_requests_total{route=\"/api/v1/conversations/{id}/activities\",status=\"201\"} ";
    assert_eq!(value(route), 5.0, "requests are labelled by route pattern, not by path");
    assert!(value("converger_batch_size_count ") >= 1.0);
    assert!(value("converger_commit_seconds_count ") >= 1.0);
    assert!(text.contains("converger_publish_queue_depth "));
}
