//! Tenants' event endpoints (issue 17, item 2): where the lifecycle events
//! go (`conversation.created`, `member.joined`, …, `delivery.failed`), and
//! the events themselves for inspection.
//!
//! An endpoint's secret is a Standard Webhooks key (`whsec_…`), generated
//! here and shown once, at creation. Every change tells the write paths'
//! memory of which events each tenant takes ([`crate::engine::event_types`])
//! before it answers, on every shard of this node and, over the bus, on the
//! other nodes.

use converger_storage::{
    DeliveryStatus, Event, EventEndpoint, EventEndpointPatch, EventFilter, EventType, Id, NewEventEndpoint, Page,
    PageRequest, Scope,
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::input::Fields;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::adapters::standard_webhooks;
use crate::auth::keys::RandomError;

/// Endpoints a tenant may hold at once.
pub const MAX_ENDPOINTS_PER_TENANT: usize = 20;
/// The longest URL taken.
pub const MAX_URL_BYTES: usize = 2048;

/// What `POST /api/v1/event-endpoints` asks for, and `PATCH` changes.
#[derive(Debug, PartialEq, Eq)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
}

impl EndpointInput {
    /// `{"url": "https://…", "events": ["member.joined", …]}`; both required
    /// when `create`, either one on a change.
    pub fn from_json(map: Map<String, Value>, create: bool) -> ServiceResult<EndpointInput> {
        let f = Fields::new(map, &["url", "events"])?;
        let url = if create { Some(f.required_string("url", MAX_URL_BYTES)?) } else { f.string("url", MAX_URL_BYTES)? };
        if let Some(url) = &url {
            crate::adapters::check_url(url).map_err(|why| ServiceError::invalid("url", why))?;
        }
        let events = match f.array("events")? {
            Some(list) => Some(event_types(list)?),
            None if create => return Err(ServiceError::invalid("events", "is required")),
            None => None,
        };
        if !create && url.is_none() && events.is_none() {
            return Err(ServiceError::invalid("url", "nothing to change: give url or events"));
        }
        Ok(EndpointInput { url, events })
    }
}

/// The known names, each once; at least one.
fn event_types(list: &[Value]) -> ServiceResult<Vec<EventType>> {
    let known = || EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    if list.is_empty() {
        return Err(ServiceError::invalid("events", format!("must name at least one event type: {}", known())));
    }
    let mut types = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let t = v.as_str().and_then(EventType::parse).ok_or_else(|| {
            ServiceError::invalid(format!("events[{i}]"), format!("is not an event type; known types: {}", known()))
        })?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(types)
}

/// A created endpoint, with its signing secret (this once).
#[derive(Debug, Serialize)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EventEndpoint,
    pub secret: String,
}

/// A new endpoint secret: 32 random bytes as `whsec_…`.
fn generate_secret() -> Result<String, RandomError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| RandomError(e.to_string()))?;
    Ok(standard_webhooks::whsec(&key))
}

impl Hub {
    pub async fn create_event_endpoint(&self, caller: Caller, input: EndpointInput) -> ServiceResult<CreatedEndpoint> {
        let tenant = caller.tenant_id();
        let (Some(url), Some(events)) = (input.url, input.events) else {
            return Err(ServiceError::invalid("url", "is required"));
        };
        let limit = MAX_ENDPOINTS_PER_TENANT as u32;
        if self.store.list_event_endpoints(tenant, limit).await?.len() >= MAX_ENDPOINTS_PER_TENANT {
            return Err(ServiceError::Conflict(format!(
                "a tenant holds at most {MAX_ENDPOINTS_PER_TENANT} event endpoints: delete one first"
            )));
        }
        let secret = generate_secret()?;
        let new = NewEventEndpoint { tenant_id: tenant, url, events, secret: secret.clone() };
        let endpoint = self.store.create_event_endpoint(new).await?;
        self.auth_cache.epoch().event_endpoints_changed();
        Ok(CreatedEndpoint { endpoint, secret })
    }

    pub async fn list_event_endpoints(&self, caller: Caller) -> ServiceResult<Vec<EventEndpoint>> {
        Ok(self.store.list_event_endpoints(caller.tenant_id(), MAX_ENDPOINTS_PER_TENANT as u32).await?)
    }

    pub async fn get_event_endpoint(&self, caller: Caller, id: Id) -> ServiceResult<EventEndpoint> {
        Ok(self.store.get_event_endpoint(caller.tenant_id(), id).await?)
    }

    pub async fn update_event_endpoint(
        &self,
        caller: Caller,
        id: Id,
        input: EndpointInput,
    ) -> ServiceResult<EventEndpoint> {
        let patch = EventEndpointPatch { url: input.url, events: input.events };
        let endpoint = self.store.update_event_endpoint(caller.tenant_id(), id, patch).await?;
        self.auth_cache.epoch().event_endpoints_changed();
        Ok(endpoint)
    }

    /// Deletes the endpoint; its pending events fail in the same write.
    pub async fn delete_event_endpoint(&self, caller: Caller, id: Id) -> ServiceResult<EventEndpoint> {
        let endpoint = self.store.delete_event_endpoint(caller.tenant_id(), id).await?;
        self.auth_cache.epoch().event_endpoints_changed();
        Ok(endpoint)
    }

    pub async fn list_events(
        &self,
        scope: Scope,
        filter: EventFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Event>> {
        Ok(self.store.list_events(scope, filter, page).await?)
    }

    pub async fn get_event(&self, scope: Scope, id: Id) -> ServiceResult<Event> {
        Ok(self.store.get_event(scope, id).await?)
    }
}

/// The `status` filter's values.
pub fn parse_status(s: &str) -> Option<DeliveryStatus> {
    DeliveryStatus::parse(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value, create: bool) -> ServiceResult<EndpointInput> {
        EndpointInput::from_json(v.as_object().cloned().expect("object"), create)
    }

    fn field(e: ServiceError) -> String {
        match e {
            ServiceError::Validation { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_url_and_known_event_types_are_required() {
        let ok = input(json!({"url": "https://example.com/h", "events": ["member.joined", "member.joined"]}), true)
            .expect("ok");
        assert_eq!(ok.events, Some(vec![EventType::MemberJoined]), "repeats are dropped");
        assert_eq!(field(input(json!({"events": ["member.joined"]}), true).unwrap_err()), "url");
        assert_eq!(field(input(json!({"url": "ftp://x/", "events": ["member.joined"]}), true).unwrap_err()), "url");
        assert_eq!(field(input(json!({"url": "https://x/"}), true).unwrap_err()), "events");
        assert_eq!(field(input(json!({"url": "https://x/", "events": []}), true).unwrap_err()), "events");
        let e = input(json!({"url": "https://x/", "events": ["member.joined", "user.away"]}), true).unwrap_err();
        assert_eq!(field(e), "events[1]");
        assert_eq!(field(input(json!({"url": "https://x/", "colour": 1}), false).unwrap_err()), "colour");
        assert_eq!(field(input(json!({}), false).unwrap_err()), "url");
    }

    #[test]
    fn a_secret_is_a_standard_webhooks_key() {
        let s = generate_secret().expect("random");
        assert_eq!(standard_webhooks::parse_whsec(&s).map(|k| k.len()), Some(32));
        assert!(s.starts_with("whsec_"));
    }
}
