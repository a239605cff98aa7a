//! Caps and rate limits at the edge (docs/operations.md, "Limits"): each
//! refuses past its budget with its own code, in the client's protocol, and
//! lets clients in again once there is room.

use std::time::Duration;

use converger_e2e::binary::{BinClient, Next};
use converger_e2e::{Conn, TestServer};
use converger_protocol::{ErrorCode, Frame};

/// An HTTP connection the server has certainly accepted (it answered).
fn held(server: &TestServer) -> Conn {
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send_request("GET", "/health", &[], b"").expect("send");
    assert_eq!(conn.read_reply(false).expect("reply").status, 200);
    conn
}

/// What a new HTTP connection is told before anything is sent.
fn refused(server: &TestServer) -> converger_e2e::Reply {
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.read_reply(false).expect("a refusal")
}

#[test]
fn connections_per_address_are_capped_and_a_closed_one_frees_its_place() {
    let server = TestServer::embedded_with(&["--max-connections-per-ip", "3"]);
    let first = held(&server);
    let _second = held(&server);
    let _third = held(&server);
    let reply = refused(&server);
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (503, Some("too_many_connections")));
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.header("connection"), Some("close"));
    drop(first);
    // The server sees the close a moment later.
    for _ in 0..100 {
        let mut conn = Conn::open(server.http_addr()).expect("connect");
        conn.send_request("GET", "/health", &[], b"").expect("send");
        if conn.read_reply(false).is_ok_and(|r| r.status == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the freed place was never given again");
}

#[test]
fn the_node_cap_covers_binary_connections_with_an_error_frame() {
    let server = TestServer::embedded_with(&["--max-connections", "2"]);
    let _a = held(&server);
    let _b = held(&server);
    let mut c = BinClient::tcp(server.binary_addr());
    match c.read_next() {
        Next::Frame(Frame::Error(e)) => {
            assert_eq!(e.error_code(), Some(ErrorCode::TooManyConnections));
            assert!(e.close, "the refusal closes the connection");
        }
        other => panic!("expected an Error frame, got {other:?}"),
    }
    assert!(matches!(c.read_next(), Next::Closed));
}

#[test]
fn new_connections_per_second_per_address_are_rate_limited_and_recover() {
    let server = TestServer::embedded_with(&["--ip-connections-per-second", "4"]);
    let mut limited = 0;
    let mut conns = Vec::new();
    for _ in 0..30 {
        let mut conn = Conn::open(server.http_addr()).expect("connect");
        conn.send_request("GET", "/health", &[], b"").expect("send");
        let reply = conn.read_reply(false).expect("reply");
        if reply.status == 429 {
            assert_eq!(reply.json()["error"]["code"], "rate_limited");
            assert!(reply.header("retry-after").is_some());
            limited += 1;
        }
        conns.push(conn);
    }
    assert!(limited >= 20, "a burst past the budget is refused ({limited} of 30)");
    // A second later the budget is back.
    std::thread::sleep(Duration::from_millis(1100));
    let _again = held(&server);
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("converger_limit_refusals_total{limit=\"connections_per_second_per_ip\"}"), "{metrics}");
}

#[test]
fn subscriptions_per_connection_are_capped_item_by_item() {
    use converger_e2e::api::{expect, Fixture};
    use converger_protocol::{Subscribe, SubscribeItem};
    use serde_json::json;

    let server = TestServer::embedded_with(&["--max-subscriptions-per-connection", "2"]);
    let f = Fixture::new(&server, "capped");
    let api = f.client(&server);
    let ids: Vec<[u8; 16]> = (0..3)
        .map(|_| {
            let c = expect(&api.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
            *uuid::Uuid::parse_str(c["id"].as_str().expect("id")).expect("uuid").as_bytes()
        })
        .collect();
    let (mut c, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    let items = ids.iter().map(|id| SubscribeItem { conversation_id: *id, after_seq: 0 }).collect();
    c.send(Subscribe { request_id: 1, items });
    loop {
        match c.read_next() {
            Next::Frame(Frame::Subscribed(s)) => {
                let codes: Vec<Option<ErrorCode>> =
                    s.items.iter().map(|i| i.result.as_ref().err().and_then(|f| f.error_code())).collect();
                assert_eq!(codes, [None, None, Some(ErrorCode::TooManySubscriptions)]);
                break;
            }
            Next::Frame(_) => continue,
            Next::Closed => panic!("closed"),
        }
    }
}

/// `n` GETs of `path` over one keep-alive connection with `headers`: the statuses.
fn burst(server: &TestServer, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    (0..n)
        .map(|_| {
            conn.send_request("GET", path, headers, b"").expect("send");
            let reply = conn.read_reply(false).expect("reply");
            if reply.status == 429 {
                assert_eq!(reply.json()["error"]["code"], "rate_limited");
                assert!(reply.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
            }
            reply.status
        })
        .collect()
}

#[test]
fn rest_requests_per_address_are_limited_but_health_checks_are_not() {
    let server = TestServer::embedded_with(&["--ip-requests-per-second", "10"]);
    let statuses = burst(&server, "/api/v1/channels", &[], 60);
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 30, "{statuses:?}");
    assert!(burst(&server, "/health", &[], 60).iter().all(|s| *s == 200), "health checks are not counted");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(burst(&server, "/api/v1/channels", &[], 1), [401], "the budget is back (and then auth speaks)");
}

#[test]
fn one_tenant_hammering_is_limited_and_another_tenant_is_not() {
    use converger_e2e::api::create_tenant;

    let server = TestServer::embedded_with(&["--tenant-requests-per-second", "20"]);
    let (loud, quiet) = (create_tenant(&server, "loud"), create_tenant(&server, "quiet"));
    let loud_auth = format!("Bearer {}", loud.api_key);
    let quiet_auth = format!("Bearer {}", quiet.api_key);
    let hammer = {
        let server_addr = server.http_addr();
        std::thread::spawn(move || {
            let mut conn = Conn::open(server_addr).expect("connect");
            let mut limited = 0;
            for _ in 0..200 {
                conn.send_request("GET", "/api/v1/channels", &[("authorization", &loud_auth)], b"").expect("send");
                if conn.read_reply(false).expect("reply").status == 429 {
                    limited += 1;
                }
            }
            limited
        })
    };
    // The quiet tenant asks at its own modest pace meanwhile: never refused.
    for _ in 0..8 {
        let statuses = burst(&server, "/api/v1/channels", &[("authorization", &quiet_auth)], 1);
        assert_eq!(statuses, [200], "the quiet tenant is not limited by the loud one");
        std::thread::sleep(Duration::from_millis(50));
    }
    let limited = hammer.join().expect("hammer");
    assert!(limited >= 100, "the loud tenant is limited: {limited} of 200 refused");
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("converger_limit_refusals_total{limit=\"tenant_requests\"}"), "{metrics}");
}

#[test]
fn activities_per_tenant_are_limited_over_rest_and_recover() {
    use converger_e2e::api::Fixture;
    use serde_json::json;

    let server = TestServer::embedded_with(&["--tenant-activities-per-second", "10"]);
    let f = Fixture::new(&server, "writer");
    let api = f.client(&server);
    let statuses: Vec<u16> = (0..40)
        .map(|i| api.post(&f.activities_path(), &json!({"sender": "s", "text": format!("{i}")})).status)
        .collect();
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 20, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 429), "{statuses:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(api.post(&f.activities_path(), &json!({"sender": "s", "text": "again"})).status, 201);
}

#[test]
fn a_tenants_own_request_limit_overrides_the_servers() {
    use converger_e2e::api::{create_tenant, expect, Client};
    use serde_json::json;

    let server = TestServer::embedded();
    let (small, other) = (create_tenant(&server, "small"), create_tenant(&server, "other"));
    let patch = json!({"limits": {"requests_per_second": 4}});
    expect(&Client::admin(&server).patch(&format!("/admin/api/tenants/{}", small.id), &patch), 200);
    let small_auth = format!("Bearer {}", small.api_key);
    let other_auth = format!("Bearer {}", other.api_key);
    let small_statuses = burst(&server, "/api/v1/channels", &[("authorization", &small_auth)], 30);
    assert!(small_statuses.iter().filter(|s| **s == 429).count() >= 15, "{small_statuses:?}");
    let other_statuses = burst(&server, "/api/v1/channels", &[("authorization", &other_auth)], 30);
    assert!(
        other_statuses.iter().all(|s| *s == 200),
        "the server's default (20,000/s) for the other: {other_statuses:?}"
    );
}
