//! The OTLP/HTTP JSON body of an `ExportTraceServiceRequest` (the protobuf
//! JSON mapping as OTLP specifies it): lowerCamelCase field names, trace and
//! span ids as lowercase hex (not base64), enums as integers, 64-bit
//! integers (times, int attributes) as decimal strings. Any OpenTelemetry
//! collector's `otlphttp` receiver takes it on `/v1/traces`.

use serde_json::{json, Value as Json};

use super::{SpanContext, SpanData, Value};

/// Who the spans come from.
pub struct Resource {
    /// `service.instance.id`: the node id.
    pub instance: String,
}

/// OTLP `Status.code`: ERROR.
const STATUS_ERROR: u8 = 2;

pub fn encode(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let body = json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    attribute("service.name", &Value::from("converger")),
                    attribute("service.version", &Value::from(env!("CARGO_PKG_VERSION"))),
                    attribute("service.instance.id", &Value::from(resource.instance.clone())),
                ]
            },
            "scopeSpans": [{
                "scope": { "name": "converger", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }]
        }]
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn span(s: &SpanData) -> Json {
    let mut out = json!({
        "traceId": s.context.trace_id.to_string(),
        "spanId": s.context.span_id.to_string(),
        "name": s.name,
        "kind": s.kind as u8,
        "startTimeUnixNano": s.start_unix_nanos.to_string(),
        "endTimeUnixNano": s.end_unix_nanos.to_string(),
        "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
    });
    if let Some(parent) = s.parent {
        out["parentSpanId"] = parent.to_string().into();
    }
    if !s.links.is_empty() {
        out["links"] = s.links.iter().map(link).collect::<Vec<_>>().into();
    }
    if let Some(message) = &s.error {
        out["status"] = json!({ "code": STATUS_ERROR, "message": message });
    }
    out
}

fn link(c: &SpanContext) -> Json {
    json!({ "traceId": c.trace_id.to_string(), "spanId": c.span_id.to_string() })
}

fn attribute(key: &str, value: &Value) -> Json {
    let value = match value {
        Value::Str(s) => json!({ "stringValue": s }),
        Value::Int(n) => json!({ "intValue": n.to_string() }),
    };
    json!({ "key": key, "value": value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Kind, SpanId};

    #[test]
    fn spans_encode_as_otlp_json() {
        let parent = SpanContext::parse_str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("ok");
        let linked = SpanContext::parse_str("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").expect("ok");
        let s = SpanData {
            name: "POST /api/v1/conversations/{id}/activities".into(),
            kind: Kind::Server,
            context: SpanContext { span_id: SpanId([1, 2, 3, 4, 5, 6, 7, 8]), ..parent },
            parent: Some(parent.span_id),
            start_unix_nanos: 1_700_000_000_000_000_001,
            end_unix_nanos: 1_700_000_000_000_000_999,
            attributes: vec![("http.request.method", "POST".into()), ("http.response.status_code", 201u16.into())],
            links: vec![linked],
            error: Some("boom".into()),
        };
        let body: Json = serde_json::from_slice(&encode(&Resource { instance: "node-1".into() }, &[s])).expect("json");
        let rs = &body["resourceSpans"][0];
        let attrs = &rs["resource"]["attributes"];
        assert_eq!(attrs[0], json!({"key": "service.name", "value": {"stringValue": "converger"}}));
        assert_eq!(attrs[2], json!({"key": "service.instance.id", "value": {"stringValue": "node-1"}}));
        let span = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "0102030405060708");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(span["endTimeUnixNano"], "1700000000000000999");
        assert_eq!(span["attributes"][0], json!({"key": "http.request.method", "value": {"stringValue": "POST"}}));
        assert_eq!(span["attributes"][1], json!({"key": "http.response.status_code", "value": {"intValue": "201"}}));
        assert_eq!(
            span["links"],
            json!([{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}])
        );
        assert_eq!(span["status"], json!({"code": 2, "message": "boom"}));
    }

    #[test]
    fn a_root_span_has_no_parent_field_and_no_status() {
        let s = SpanData {
            name: "owner commit".into(),
            kind: Kind::Internal,
            context: SpanContext::root(),
            parent: None,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: Vec::new(),
            links: Vec::new(),
            error: None,
        };
        let body: Json = serde_json::from_slice(&encode(&Resource { instance: "n".into() }, &[s])).expect("json");
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["kind"], 1);
        assert!(span.get("parentSpanId").is_none() && span.get("links").is_none() && span.get("status").is_none());
    }
}
