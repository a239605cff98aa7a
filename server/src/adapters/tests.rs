//! Fixtures every adapter's tests share, and the tests of the registry.

use converger_storage::{Activity, Id, Json, Timestamp};
use serde_json::{json, Map, Value};

use super::*;

pub const SECRET: &str = "cvs_test-channel-secret";
/// 2025-06-08T21:00:00Z.
pub const NOW: i64 = 1_749_416_400;

pub fn channel_id() -> Id {
    Id::parse_str("0190f0f0-0000-7000-8000-00000000c4a1").expect("uuid")
}

pub fn delivery_id() -> Id {
    Id::parse_str("0190f0f0-0000-7000-8000-00000000de11").expect("uuid")
}

pub fn activity(text: &str) -> Activity {
    Activity {
        id: Id::parse_str("0190f0f0-0000-7000-8000-0000000000a1").expect("uuid"),
        tenant_id: Id::parse_str("0190f0f0-0000-7000-8000-0000000000b1").expect("uuid"),
        conversation_id: Id::parse_str("0190f0f0-0000-7000-8000-0000000000c1").expect("uuid"),
        seq: 7,
        kind: "message".into(),
        text: Some(text.into()),
        attachments: None,
        sender: "agent-1".into(),
        metadata: Json::empty_object(),
        idempotency_key: None,
        created_at: Timestamp::from_micros(NOW * 1_000_000 - 1_500_000),
        target_id: None,
        parent_id: None,
        state: None,
    }
}

pub fn view(config: &Value) -> ChannelView<'_> {
    ChannelView { id: channel_id(), secret: SECRET, config }
}

pub fn context<'a>(config: &'a Value, activity: &'a Activity, external_id: Option<&'a str>) -> DeliveryContext<'a> {
    static NONE: Related = Related::None;
    DeliveryContext {
        channel: view(config),
        activity,
        external_id,
        delivery_id: delivery_id(),
        attempt: 1,
        now: NOW,
        related: &NONE,
    }
}

/// A lifecycle activity of type `kind` acting on [`activity`]'s message.
pub fn acting_on(kind: &str, text: Option<&str>) -> Activity {
    let mut a = activity("");
    a.id = Id::parse_str("0190f0f0-0000-7000-8000-0000000000a2").expect("uuid");
    a.seq = 8;
    a.kind = kind.into();
    a.text = text.map(str::to_string);
    a.target_id = Some(activity("").id);
    a
}

pub fn request(method: &str, headers: &[(&str, &str)], body: &[u8]) -> InboundRequest {
    InboundRequest {
        method: method.into(),
        query: None,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.to_vec(),
        path_secret: None,
    }
}

/// The request of a delivery that must be HTTP.
pub fn http(d: Result<Delivery, AdapterError>) -> OutboundRequest {
    match d {
        Ok(Delivery::Http(r)) => r,
        other => panic!("expected an HTTP delivery, got {other:?}"),
    }
}

pub fn body_json(r: &OutboundRequest) -> Value {
    serde_json::from_slice(&r.body).expect("JSON body")
}

pub fn events(r: Result<Inbound, InboundError>) -> Events {
    match r {
        Ok(Inbound::Events(e)) => e,
        other => panic!("expected events, got {other:?}"),
    }
}

pub fn delivered_metadata(o: ResponseOutcome) -> Map<String, Value> {
    match o {
        ResponseOutcome::Delivered { metadata } => metadata,
        other => panic!("expected delivered, got {other:?}"),
    }
}

#[test]
fn every_kind_has_its_adapter_and_unknown_kinds_none() {
    for kind in KINDS {
        assert_eq!(adapter_for(kind).map(|a| a.kind()), Some(*kind));
    }
    assert!(adapter_for("fax").is_none());
    assert!(adapter_for("").is_none());
    let delivering: Vec<&str> =
        KINDS.iter().copied().filter(|k| adapter_for(k).is_some_and(|a| a.delivers())).collect();
    assert_eq!(delivering, ["echo", "webhook", "whatsapp_meta", "whatsapp_infobip"]);
}

#[test]
fn every_adapter_refuses_a_non_object_config_naming_config() {
    for kind in KINDS {
        let e = adapter_for(kind).expect("adapter").validate_config(&json!([1])).expect_err("array");
        assert_eq!(e.field, "config", "{kind}");
    }
}

#[test]
fn network_failures_are_retried() {
    assert!(
        matches!(ResponseOutcome::network("connection refused"), ResponseOutcome::Retry { error } if error == "network: connection refused")
    );
}

#[test]
fn status_updates_become_a_flat_metadata_patch() {
    let s = StatusUpdate {
        provider_message_id: "wamid.1".into(),
        status: "read",
        at: Some(Timestamp::from_micros(NOW * 1_000_000)),
        error: None,
        detail: None,
    };
    assert_eq!(s.metadata_patch(), json!({"provider_status": "read", "status_read_at": "2025-06-08T21:00:00.000000Z"}));
    let f = StatusUpdate {
        status: "failed",
        at: None,
        error: Some("131047: expired".into()),
        detail: Some("X".into()),
        ..s
    };
    assert_eq!(
        f.metadata_patch(),
        json!({"provider_status": "failed", "status_failed_at": null, "provider_error": "131047: expired", "provider_status_detail": "X"})
    );
}

#[test]
fn inbound_activities_are_recognised_by_their_mark() {
    let mut a = activity("x");
    assert!(!is_inbound(&a));
    a.metadata = Json::parse(r#"{"note":"\"inbound\" in a string"}"#).expect("json");
    assert!(!is_inbound(&a));
    a.metadata = Json::parse(r#"{"inbound":{"channel_type":"whatsapp_meta"}}"#).expect("json");
    assert!(is_inbound(&a));
}

#[test]
fn outbound_requests_hide_header_values_in_debug() {
    let r = OutboundRequest {
        method: "POST".into(),
        url: "https://x.example".into(),
        headers: vec![("Authorization".into(), "Bearer top-secret".into())],
        body: b"{}".to_vec(),
    };
    let shown = format!("{r:?}");
    assert!(shown.contains("Authorization") && !shown.contains("top-secret"), "{shown}");
    assert_eq!(r.header("authorization"), Some("Bearer top-secret"));
}

#[test]
fn channel_views_keep_secrets_and_tokens_out_of_debug() {
    let config = json!({"access_token": "EAAG-very-secret"});
    let shown = format!("{:?}", context(&config, &activity("x"), None));
    assert!(shown.contains("access_token"), "{shown}");
    assert!(!shown.contains("EAAG-very-secret") && !shown.contains(SECRET), "{shown}");
}
