//! Response bodies shared by the handlers: bare objects, cursor pages
//! `{"data": […], "next_cursor": "…"|null}`, and a channel with its secret
//! (only on create and rotate-secret), plus, for `webhook` channels, the
//! Standard Webhooks signing key derived from it.

use converger_storage::{Channel, Entity, Id, Page, StoreError};
use serde::Serialize;

use super::{ApiError, Params};
use crate::adapters::standard_webhooks;
use crate::net::http::Response;
use crate::service::input::parse_id;

#[derive(Serialize)]
struct List<'a, T> {
    data: &'a [T],
    next_cursor: Option<String>,
}

/// A page of a list.
pub fn page<T: Serialize>(page: &Page<T>) -> Response {
    Response::json(200, &List { data: &page.items, next_cursor: page.next.map(|id| id.to_string()) })
}

/// A channel showing its secret and the key its outbound requests (a
/// webhook channel's deliveries, any channel's pre-publish hook calls) are
/// signed with, as `whsec_…` for a Standard Webhooks library (derived from
/// the secret, so shown only where the secret is).
#[derive(Serialize)]
pub struct WithSecret<'a> {
    #[serde(flatten)]
    pub channel: &'a Channel,
    pub secret: &'a str,
    pub webhook_signing_key: String,
}

pub fn channel_with_secret(status: u16, channel: &Channel) -> Response {
    let webhook_signing_key = standard_webhooks::whsec(&standard_webhooks::channel_key(&channel.secret));
    Response::json(status, &WithSecret { channel, secret: &channel.secret, webhook_signing_key })
}

/// The `{id}` path parameter. A malformed id (any but the canonical form, see
/// [`parse_id`]) names nothing: 404, like an unknown one.
pub fn path_id(params: &Params, entity: Entity) -> Result<Id, ApiError> {
    params.get("id").and_then(parse_id).ok_or(ApiError::from(StoreError::NotFound(entity)))
}

#[cfg(test)]
mod tests {
    use converger_storage::{Json, Status, Timestamp};

    use super::*;

    #[test]
    fn a_path_id_in_any_but_the_canonical_form_names_nothing() {
        let id = converger_storage::new_id();
        let read = |s: String| path_id(&Params(vec![("id", s)]), Entity::Channel);
        assert_eq!(read(id.to_string()).expect("canonical"), id);
        assert_eq!(read(id.to_string().to_uppercase()).expect("either case"), id);
        for lenient in [id.simple().to_string(), format!("{{{id}}}"), format!("urn:uuid:{id}")] {
            match read(lenient.clone()) {
                Err(e) => assert_eq!((e.status(), e.code()), (404, "not_found"), "{lenient}"),
                Ok(_) => panic!("{lenient} read as an id"),
            }
        }
    }

    #[test]
    fn secret_only_where_asked_and_pages_carry_the_cursor() {
        let channel = Channel {
            id: Id::nil(),
            tenant_id: Id::nil(),
            name: "n".into(),
            kind: "echo".into(),
            secret: "cvs_s".into(),
            config: Json::empty_object(),
            status: Status::Active,
            created_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
        };
        let bare = serde_json::to_value(&channel).expect("json");
        assert!(bare.get("secret").is_none());
        let r = channel_with_secret(201, &channel);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!((v["secret"].as_str(), v["type"].as_str()), (Some("cvs_s"), Some("echo")));
        let key = standard_webhooks::whsec(&standard_webhooks::channel_key("cvs_s"));
        assert_eq!(v["webhook_signing_key"].as_str(), Some(key.as_str()));
        let r = page(&Page { items: vec![1, 2], next: Some(Id::nil()) });
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v, serde_json::json!({"data": [1, 2], "next_cursor": Id::nil().to_string()}));
    }
}
