//! Lifecycle events as sent to a tenant's event endpoint (pure: no I/O).
//!
//! The body is Standard Webhooks' shape, `{"type", "timestamp", "data"}`,
//! `timestamp` being when the change happened (the same on every retry);
//! the headers are those of [`super::standard_webhooks`], `webhook-id` being
//! the event's id (the receiver's idempotency key: the same on every retry),
//! signed with the endpoint's `whsec_…` secret.

use converger_storage::{Event, EventEndpoint};
use serde_json::{json, Map};

use super::{standard_webhooks, wire, OutboundRequest, ResponseOutcome};

/// Why an event cannot be signed: its endpoint's secret is not a key.
#[derive(Debug, thiserror::Error)]
#[error("the endpoint's secret is not a whsec_ key")]
pub struct BadSecret;

/// The JSON body of `event`.
pub fn body(event: &Event) -> Vec<u8> {
    let body = json!({"type": event.kind, "timestamp": event.created_at, "data": event.data.to_value()});
    body.to_string().into_bytes()
}

/// The signed `POST` of `event` to `endpoint` at `now` (unix seconds).
pub fn request(event: &Event, endpoint: &EventEndpoint, now: i64) -> Result<OutboundRequest, BadSecret> {
    let key = standard_webhooks::parse_whsec(&endpoint.secret).ok_or(BadSecret)?;
    let body = body(event);
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(standard_webhooks::headers(&key, &format!("msg_{}", event.id), now, &body));
    Ok(OutboundRequest { method: "POST".into(), url: endpoint.url.clone(), headers, body })
}

/// 2xx delivered; 408, 429, 5xx retried; anything else failed, as deliveries.
pub fn interpret(status: u16, body: &[u8]) -> ResponseOutcome {
    wire::classify(status, body, |_| Map::new())
}

#[cfg(test)]
mod tests {
    use converger_storage::{new_id, DeliveryStatus, EventType, Json, Timestamp};

    use super::*;

    #[test]
    fn the_request_is_signed_with_the_event_id_and_verifies() {
        let key = [7u8; 32];
        let endpoint = EventEndpoint {
            id: new_id(),
            tenant_id: new_id(),
            url: "https://example.com/events".into(),
            events: vec![EventType::MemberJoined],
            secret: standard_webhooks::whsec(&key),
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        };
        let event = Event {
            id: new_id(),
            tenant_id: endpoint.tenant_id,
            endpoint_id: endpoint.id,
            kind: EventType::MemberJoined,
            data: Json::from_value(&json!({"sender": "alice"})),
            status: DeliveryStatus::Pending,
            attempts: 1,
            last_error: None,
            next_attempt_at: Timestamp::now(),
            delivered_at: None,
            created_at: Timestamp::from_micros(1_700_000_000_000_000),
            updated_at: Timestamp::now(),
        };
        let r = request(&event, &endpoint, 1_700_000_100).expect("signed");
        assert_eq!(r.header("webhook-id"), Some(format!("msg_{}", event.id).as_str()));
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["type"], "member.joined");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(body["data"]["sender"], "alice");
        standard_webhooks::verify(&key, &r.headers, &r.body, 1_700_000_100).expect("verifies");
        assert!(matches!(interpret(503, b""), ResponseOutcome::Retry { .. }));
        assert!(matches!(interpret(410, b""), ResponseOutcome::Failed { .. }));
        assert!(matches!(interpret(204, b""), ResponseOutcome::Delivered { .. }));
    }
}
