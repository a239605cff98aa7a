//! OpenTelemetry traces (`--otlp-endpoint`): the server posts OTLP/HTTP JSON
//! to a local receiver standing in for a collector, which the test decodes.
//! A REST write with a `traceparent` is a SERVER span child of it; the owner's
//! commit span links to that span; the fan-out span is the commit span's
//! child; the delivery attempt is a CLIENT span in the request's trace, and
//! the webhook carries a `traceparent` naming it. Without the flag, nothing
//! of that is sent: no `traceparent` on deliveries.

use std::time::{Duration, Instant};

use converger_e2e::api::{create_tenant, delivery_of, expect, Client};
use converger_e2e::binary::{uuid_bytes, BinClient};
use converger_e2e::pg::PgSchema;
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use converger_protocol::{Auth, Draft, Frame, Publish};
use serde_json::{json, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const BIN_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Every span the receiver got, across its requests.
fn spans(otlp: &Receiver) -> Vec<Value> {
    let mut out = Vec::new();
    for r in otlp.requests() {
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        for rs in body["resourceSpans"].as_array().expect("resourceSpans") {
            let service = &rs["resource"]["attributes"][0];
            assert_eq!(service, &json!({"key": "service.name", "value": {"stringValue": "converger"}}));
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                out.extend(ss["spans"].as_array().expect("spans").iter().cloned());
            }
        }
    }
    out
}

/// Polls the receiver (bounded) until `found` picks what it needs from the spans.
fn wait_for_spans<T>(otlp: &Receiver, what: &str, found: impl Fn(&[Value]) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = spans(otlp);
        if let Some(t) = found(&got) {
            return t;
        }
        assert!(Instant::now() < deadline, "no {what} among the spans received: {got:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A tenant, a webhook channel to `hook`, a conversation on it: the API and the activities path.
fn webhook_conversation<'a>(server: &'a TestServer, hook: &Receiver) -> (Client<'a>, String, String) {
    let tenant = create_tenant(server, "traced");
    let api = Client::bearer(server, &tenant.api_key);
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": hook.url("/hook")}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    (api, format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id")), tenant.api_key)
}

#[test]
fn a_traced_rest_write_links_request_commit_fan_out_and_delivery_embedded() {
    a_traced_rest_write_links_request_commit_fan_out_and_delivery(None);
}

#[test]
fn a_traced_rest_write_links_request_commit_fan_out_and_delivery_postgres() {
    if let Some(schema) = PgSchema::create() {
        a_traced_rest_write_links_request_commit_fan_out_and_delivery(Some(schema));
    }
}

fn a_traced_rest_write_links_request_commit_fan_out_and_delivery(schema: Option<PgSchema>) {
    let otlp = Receiver::start(vec![200], "{}");
    let hook = Receiver::start(vec![200], "{}");
    let endpoint = otlp.url("");
    let server = TestServer::start(&["--otlp-endpoint", &endpoint], schema).unwrap_or_else(|e| panic!("{e}"));
    let (api, path, api_key) = webhook_conversation(&server, &hook);

    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let body = json!({"sender": "alice", "text": "traced"});
    let written = expect(&api.send("POST", &path, &[("traceparent", &traceparent)], Some(&body)), 201);

    // The REST span: a SERVER child of the given traceparent.
    let request = wait_for_spans(&otlp, "request span", |spans| {
        spans.iter().find(|s| s["name"] == "POST /api/v1/conversations/{id}/activities").cloned()
    });
    assert_eq!(request["traceId"], TRACE);
    assert_eq!(request["parentSpanId"], PARENT);
    assert_eq!(request["kind"], 2, "SERVER");
    let request_span = request["spanId"].as_str().expect("spanId").to_string();
    assert!(is_hex(&request_span, 16), "{request_span}");
    assert_eq!(attr(&request, "http.request.method"), Some(&json!({"stringValue": "POST"})));
    assert_eq!(attr(&request, "http.route"), Some(&json!({"stringValue": "/api/v1/conversations/{id}/activities"})));
    assert_eq!(attr(&request, "http.response.status_code"), Some(&json!({"intValue": "201"})));
    assert!(attr(&request, "converger.request_id").is_some());
    let start: u128 = request["startTimeUnixNano"].as_str().expect("start").parse().expect("decimal");
    let end: u128 = request["endTimeUnixNano"].as_str().expect("end").parse().expect("decimal");
    assert!(start <= end && start > 1_600_000_000_000_000_000, "{start} {end}");

    // The owner's commit span links to it; the fan-out span is the commit span's child.
    let links_request = |s: &Value| {
        s["links"].as_array().is_some_and(|l| l.iter().any(|l| l["traceId"] == TRACE && l["spanId"] == request_span))
    };
    let commit = wait_for_spans(&otlp, "commit span linking the request", |spans| {
        spans.iter().find(|s| s["name"] == "owner commit" && links_request(s)).cloned()
    });
    assert_eq!(commit["kind"], 1, "INTERNAL");
    assert_eq!(attr(&commit, "converger.batch.size"), Some(&json!({"intValue": "1"})));
    let commit_span = commit["spanId"].as_str().expect("spanId").to_string();
    let fan_out = wait_for_spans(&otlp, "fan-out span under the commit", |spans| {
        spans.iter().find(|s| s["name"] == "fan-out" && s["parentSpanId"] == commit_span.as_str()).cloned()
    });
    assert_eq!(fan_out["traceId"], commit["traceId"]);
    assert!(attr(&fan_out, "converger.fanout.shards").is_some());

    // The delivery attempt: a CLIENT span in the request's trace, child of the request span,
    // and the webhook's traceparent names it.
    let got = hook.wait_for(1, Duration::from_secs(15));
    assert_eq!(got.len(), 1, "delivered once: {}", server.stderr());
    let sent = got[0].header("traceparent").expect("a traceparent on the webhook").to_string();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "{sent}");
    let attempt = wait_for_spans(&otlp, "delivery attempt span", |spans| {
        spans.iter().find(|s| s["name"] == "delivery attempt" && s["spanId"] == parts[2]).cloned()
    });
    assert_eq!(attempt["traceId"], TRACE);
    assert_eq!(attempt["parentSpanId"], request_span.as_str());
    assert_eq!(attempt["kind"], 3, "CLIENT");
    assert_eq!(attr(&attempt, "converger.delivery.outcome"), Some(&json!({"stringValue": "delivered"})));
    assert_eq!(attr(&attempt, "http.response.status_code"), Some(&json!({"intValue": "200"})));
    // The trace is kept with the delivery row, beside what the outcome recorded.
    let activity = written["id"].as_str().expect("id");
    let d = delivery_of(&api, activity, |d| d["status"] == "delivered");
    assert_eq!(d["metadata"]["traceparent"], format!("00-{TRACE}-{request_span}-01"), "{d}");

    // A request without a traceparent starts a trace of its own; one with a bad header too.
    for headers in [vec![], vec![("traceparent", "00-not-a-valid-header-01")]] {
        let before = spans(&otlp).len();
        let reply = api.send("GET", "/api/v1/channels", &headers, None);
        assert_eq!(reply.status, 200);
        let fresh = wait_for_spans(&otlp, "span of a GET", |spans| {
            spans[before.min(spans.len())..].iter().find(|s| s["name"] == "GET /api/v1/channels").cloned()
        });
        assert!(fresh.get("parentSpanId").is_none_or(|p| p == ""), "a new trace: {fresh}");
        assert_ne!(fresh["traceId"], TRACE);
    }

    // A binary publish (protocol version 3) with a traceparent: a SERVER span child of it,
    // linked by the commit, and the delivery of what it wrote in its trace.
    let tenant_key = api_key.clone();
    let (mut bin, welcome) = {
        let mut c = BinClient::tcp(server.binary_addr());
        let w = c.hello_versions(1, 3, Auth::ApiKey(tenant_key)).expect("welcome");
        (c, w)
    };
    assert_eq!(welcome.version, 3);
    let conversation = path.trim_start_matches("/api/v1/conversations/").trim_end_matches("/activities");
    let binary_parent = format!("00-{BIN_TRACE}-{PARENT}-01");
    let draft = Draft {
        conversation_id: uuid_bytes(conversation),
        kind: "message".into(),
        sender: "bob".into(),
        text: Some("over the binary protocol".into()),
        traceparent: Some(binary_parent),
        ..Draft::default()
    };
    bin.send(Publish { request_id: 7, activity: draft });
    assert!(matches!(bin.frame(), Frame::PublishAck(a) if a.request_id == 7));
    let publish = wait_for_spans(&otlp, "binary publish span", |spans| {
        spans.iter().find(|s| s["name"] == "binary publish" && s["traceId"] == BIN_TRACE).cloned()
    });
    assert_eq!(publish["parentSpanId"], PARENT);
    assert_eq!(publish["kind"], 2, "SERVER");
    let publish_span = publish["spanId"].as_str().expect("spanId").to_string();
    wait_for_spans(&otlp, "commit span linking the binary publish", |spans| {
        spans
            .iter()
            .find(|s| {
                s["name"] == "owner commit"
                    && s["links"].as_array().is_some_and(|l| l.iter().any(|l| l["spanId"] == publish_span.as_str()))
            })
            .cloned()
    });
    let got = hook.wait_for(2, Duration::from_secs(15));
    assert_eq!(got.len(), 2, "the binary publish delivered too");
    let sent = got[1].header("traceparent").expect("a traceparent").to_string();
    assert!(sent.starts_with(&format!("00-{BIN_TRACE}-")), "{sent}");
    let attempt = wait_for_spans(&otlp, "delivery attempt of the binary publish", |spans| {
        spans.iter().find(|s| s["name"] == "delivery attempt" && s["traceId"] == BIN_TRACE).cloned()
    });
    assert_eq!(attempt["parentSpanId"], publish_span.as_str());

    let metrics = server.get("/metrics");
    assert!(
        metrics.text().contains("converger_trace_spans_dropped_total{reason=\"queue_full\"} 0"),
        "{}",
        metrics.text()
    );
}

#[test]
fn without_an_endpoint_no_traceparent_goes_out() {
    let hook = Receiver::start(vec![200], "{}");
    let server = TestServer::embedded();
    let (api, path, _) = webhook_conversation(&server, &hook);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let body = json!({"sender": "alice", "text": "untraced"});
    let written = expect(&api.send("POST", &path, &[("traceparent", &traceparent)], Some(&body)), 201);
    let got = hook.wait_for(1, Duration::from_secs(15));
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(got[0].header("traceparent"), None, "tracing is off");
    // Nothing of the trace is kept with the delivery either.
    let list =
        expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", written["id"].as_str().expect("id"))), 200);
    assert!(list["data"][0]["metadata"].get("traceparent").is_none(), "{list}");
    assert!(!server.stderr().contains("traces: exporting"), "no exporter started");
}
