//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every HTTP route,
//! kept in `server/openapi.json` and compiled in. A test holds it to the
//! router: a route missing from the document, or a documented operation the
//! router does not serve, fails the build's tests.

use bytes::Bytes;

use crate::net::http::Response;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub fn serve() -> Response {
    let mut response = Response::new(200).with_header("content-type", "application/json");
    response.body = Bytes::from_static(DOCUMENT.as_bytes());
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::api::router;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    #[test]
    fn documents_exactly_the_routes_the_router_serves() {
        let served: BTreeSet<(String, String)> =
            router::routes().map(|(m, p)| (m.as_str().to_ascii_lowercase(), p.to_string())).collect();
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "routes missing from openapi.json: {missing:?}");
        assert!(extra.is_empty(), "openapi.json lists operations the router does not serve: {extra:?}");
    }

    #[test]
    fn every_reference_resolves_and_operation_ids_are_unique() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local ref");
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("item").values() {
                let id = op["operationId"].as_str().expect("operationId").to_string();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
