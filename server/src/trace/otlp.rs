//! The OTLP/HTTP JSON body of an `ExportTraceServiceRequest` (the protobuf
//! JSON mapping as OTLP specifies it): lowerCamelCase field names, trace and
//! span ids as lowercase hex (not base64), enums as integers, 64-bit
//! integers (times, int attributes) as decimal strings. Any OpenTelemetry
//! collector's `otlphttp` receiver takes it on `/v1/traces`.

use std::io::Write;

use super::{SpanContext, SpanData, Value};

/// Who the spans come from.
pub struct Resource {
    /// `service.instance.id`: the node id.
    pub instance: String,
}

/// OTLP `Status.code`: ERROR.
const STATUS_ERROR: u8 = 2;

/// The request body. Written straight into bytes (strings escaped by
/// serde_json), not through a `serde_json::Value` tree: the exporter's thread
/// shares the cores with the shards, and a tree costs an allocation per field.
pub fn encode(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + spans.len() * 512);
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attribute(&mut out, "service.name", &Value::from("converger"));
    out.push(b',');
    attribute(&mut out, "service.version", &Value::from(env!("CARGO_PKG_VERSION")));
    out.push(b',');
    attribute(&mut out, "service.instance.id", &Value::Str(resource.instance.as_str().to_owned().into()));
    out.extend_from_slice(b"]},\"scopeSpans\":[{\"scope\":{\"name\":\"converger\",\"version\":");
    string(&mut out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(b"},\"spans\":[");
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        span(&mut out, s);
    }
    out.extend_from_slice(b"]}]}]}");
    out
}

fn span(out: &mut Vec<u8>, s: &SpanData) {
    let _ = write!(out, "{{\"traceId\":\"{}\",\"spanId\":\"{}\",", s.context.trace_id, s.context.span_id);
    if let Some(parent) = s.parent {
        let _ = write!(out, "\"parentSpanId\":\"{parent}\",");
    }
    out.extend_from_slice(b"\"name\":");
    string(out, &s.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":[",
        s.kind as u8, s.start_unix_nanos, s.end_unix_nanos
    );
    for (i, (k, v)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        attribute(out, k, v);
    }
    out.push(b']');
    if !s.links.is_empty() {
        out.extend_from_slice(b",\"links\":[");
        for (i, l) in s.links.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            link(out, l);
        }
        out.push(b']');
    }
    if let Some(message) = &s.error {
        let _ = write!(out, ",\"status\":{{\"code\":{STATUS_ERROR},\"message\":");
        string(out, message);
        out.push(b'}');
    }
    out.push(b'}');
}

fn link(out: &mut Vec<u8>, c: &SpanContext) {
    let _ = write!(out, "{{\"traceId\":\"{}\",\"spanId\":\"{}\"}}", c.trace_id, c.span_id);
}

fn attribute(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.extend_from_slice(b"{\"key\":");
    string(out, key);
    match value {
        Value::Str(s) => {
            out.extend_from_slice(b",\"value\":{\"stringValue\":");
            string(out, s);
            out.extend_from_slice(b"}}");
        }
        Value::Int(n) => {
            let _ = write!(out, ",\"value\":{{\"intValue\":\"{n}\"}}}}");
        }
    }
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

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
            error: Some("boom \"quoted\"\n".into()),
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
        assert_eq!(span["status"], json!({"code": 2, "message": "boom \"quoted\"\n"}));
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
