//! Request bodies: JSON objects only. An empty body reads as `{}` (so a
//! missing field is reported by name, not as a missing body); a non-empty one
//! needs a JSON Content-Type (`application/json` or any `…+json`), else 415,
//! and must be strict JSON (`service::json`), else 400 `invalid_json`.

use serde_json::{Map, Value};

use super::ApiError;
use crate::net::http::Request;
use crate::service::{json, ServiceError};

/// The body as a JSON object.
pub fn object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let content_type = request.header_str("content-type").unwrap_or("");
    if !is_json(content_type) {
        let shown = if content_type.is_empty() { "none" } else { content_type };
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body must be sent as Content-Type: application/json (got {shown})"
        )));
    }
    Ok(json::object(&request.body).map_err(ServiceError::from)?)
}

/// `application/json`, `application/merge-patch+json`, … with any parameters.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::net::http::Method;

    fn request(content_type: Option<&str>, body: &str) -> Request {
        Request {
            method: Method::Post,
            path: "/".into(),
            query: None,
            minor_version: 1,
            headers: content_type.map(|c| ("Content-Type".to_string(), c.as_bytes().to_vec())).into_iter().collect(),
            body: Bytes::from(body.to_string()),
            peer: None,
            id: String::new(),
        }
    }

    #[test]
    fn json_objects_pass_and_empty_bodies_read_as_empty_objects() {
        assert_eq!(object(&request(Some("application/json; charset=utf-8"), r#"{"a":1}"#)).expect("ok").len(), 1);
        assert!(object(&request(None, "")).expect("empty").is_empty());
        assert!(object(&request(Some("application/merge-patch+json"), "{}")).is_ok());
    }

    #[test]
    fn wrong_type_bad_json_and_non_objects_are_refused() {
        let code = |r: Result<_, ApiError>| r.expect_err("refused").code();
        assert_eq!(code(object(&request(Some("text/plain"), "{}"))), "unsupported_media_type");
        assert_eq!(code(object(&request(None, "{}"))), "unsupported_media_type");
        assert_eq!(code(object(&request(Some("application/json"), "{"))), "invalid_json");
        assert_eq!(code(object(&request(Some("application/json"), "[1]"))), "invalid_json");
        assert_eq!(code(object(&request(Some("application/json"), r#"{"a":1,"a":2}"#))), "invalid_json");
        assert_eq!(code(object(&request(Some("application/json"), r#"{"a":1e999}"#))), "invalid_json");
    }
}
