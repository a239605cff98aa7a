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

    /// `v`, or what its `$ref` points at.
    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => doc.pointer(r.trim_start_matches('#')).expect("resolves"),
            None => v,
        }
    }

    fn operations(doc: &Value) -> impl Iterator<Item = (&String, &String, &Value)> {
        doc["paths"].as_object().expect("paths").iter().flat_map(|(path, item)| {
            item.as_object().expect("path item").iter().map(move |(method, op)| (method, path, op))
        })
    }

    #[test]
    fn every_path_parameter_is_declared_and_no_other() {
        let doc = document();
        for (method, path, op) in operations(&doc) {
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().map(|p| resolve(&doc, p)).filter(|p| p["in"] == "path").collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    assert_eq!(p["required"], true, "{method} {path}: path parameter {} must be required", p["name"]);
                    p["name"].as_str().expect("name")
                })
                .collect();
            assert_eq!(in_path, declared, "{method} {path}: path parameters");
        }
    }

    #[test]
    fn every_error_is_the_error_shape_and_bodies_document_their_refusals() {
        let doc = document();
        for (method, path, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let schema = &resolve(&doc, response)["content"]["application/json"]["schema"];
                let refs = |s: &Value| s["$ref"] == "#/components/schemas/Error";
                let shaped = refs(schema) || schema["allOf"].as_array().is_some_and(|all| all.iter().any(refs));
                assert!(shaped, "{method} {path} {status}: not the Error schema");
            }
            if op.get("requestBody").is_some_and(|b| b["required"] == true) {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} takes a JSON body but lacks {status}");
                }
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
