//! Channel operations: create (with a fresh secret), list, read, update name,
//! config and status, rotate the secret.
//!
//! [`validate_config`] hands a config to its type's adapter
//! ([`crate::adapters`]), which names the offending key as `config.<key>`;
//! create and update (against the stored channel's type) both go through it.

use std::sync::atomic::{AtomicU64, Ordering};

use converger_storage::{Channel, ChannelFilter, ChannelPatch, Id, Json, NewChannel, Page, PageRequest, Scope, Status};
use serde_json::{Map, Value};

use super::input::Fields;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::adapters;
use crate::auth::keys;

/// Every channel type: one adapter each.
pub const CHANNEL_TYPES: &[&str] = adapters::KINDS;
pub const MAX_NAME_BYTES: usize = 200;

/// A validated channel to create.
#[derive(Debug)]
pub struct NewChannelInput {
    pub name: String,
    pub kind: String,
    pub config: Json,
}

impl NewChannelInput {
    /// `{name, type, config?}`; config defaults to `{}`.
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<NewChannelInput> {
        let f = Fields::new(map, &["name", "type", "config"])?;
        let name = f.required_string("name", MAX_NAME_BYTES)?;
        let kind = f.required_string("type", 64)?;
        if !CHANNEL_TYPES.contains(&kind.as_str()) {
            return Err(ServiceError::invalid(
                "type",
                format!("unknown channel type `{kind}` (expected one of: {})", CHANNEL_TYPES.join(", ")),
            ));
        }
        let config = f.object("config")?.unwrap_or_else(Json::empty_object);
        validate_config(&kind, &config)?;
        Ok(NewChannelInput { name, kind, config })
    }
}

/// A validated change to a channel: any of name, config, status.
#[derive(Debug, Default)]
pub struct ChannelPatchInput {
    pub name: Option<String>,
    pub config: Option<Json>,
    pub status: Option<Status>,
}

impl ChannelPatchInput {
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<ChannelPatchInput> {
        if map.contains_key("type") {
            return Err(ServiceError::invalid("type", "a channel's type cannot be changed; create a new channel"));
        }
        let f = Fields::new(map, &["name", "config", "status"])?;
        if f.is_empty() {
            return Err(ServiceError::invalid("name", "nothing to update: give name, config or status"));
        }
        let status = match f.string("status", 16)? {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| {
                ServiceError::invalid("status", format!("unknown status `{s}` (expected active or inactive)"))
            })?),
        };
        Ok(ChannelPatchInput { name: f.non_blank_string("name", MAX_NAME_BYTES)?, config: f.object("config")?, status })
    }
}

/// Checks `config` for a channel of type `kind` with the type's adapter; a
/// refusal is a validation error naming `config` or `config.<key>`.
pub fn validate_config(kind: &str, config: &Json) -> ServiceResult<()> {
    if !config.is_object() {
        return Err(ServiceError::invalid("config", "`config` must be a JSON object"));
    }
    let adapter = adapters::adapter_for(kind)
        .ok_or_else(|| ServiceError::invalid("type", format!("unknown channel type `{kind}`")))?;
    let value = config.to_value();
    adapter.validate_config(&value).map_err(|e| ServiceError::invalid(e.field, e.message))?;
    adapters::pre_publish::HookConfig::parse(value.get("pre_publish"), "config.pre_publish")
        .map(drop)
        .map_err(|e| ServiceError::invalid(e.field, e.message))
}

impl Hub {
    /// Creates a channel of the caller's tenant; the result carries its secret.
    pub async fn create_channel(&self, caller: Caller, input: NewChannelInput) -> ServiceResult<Channel> {
        let new = NewChannel {
            tenant_id: caller.tenant_id(),
            name: input.name,
            kind: input.kind,
            secret: keys::generate_channel_secret()?,
            config: input.config,
        };
        Ok(self.store.create_channel(new).await?)
    }

    pub async fn list_channels(
        &self,
        scope: Scope,
        filter: ChannelFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Channel>> {
        Ok(self.store.list_channels(scope, filter, page).await?)
    }

    pub async fn get_channel(&self, scope: Scope, id: Id) -> ServiceResult<Channel> {
        Ok(self.store.get_channel(scope, id).await?)
    }

    /// Applies `patch`; a new config is validated against the channel's type.
    pub async fn update_channel(&self, scope: Scope, id: Id, patch: ChannelPatchInput) -> ServiceResult<Channel> {
        if let Some(config) = &patch.config {
            let channel = self.store.get_channel(scope, id).await?;
            validate_config(&channel.kind, config)?;
        }
        let patch = ChannelPatch { name: patch.name, config: patch.config, status: patch.status, secret: None };
        let updated = self.store.update_channel(scope, id, patch).await?;
        self.auth_cache.epoch().channels_changed();
        Ok(updated)
    }

    /// Replaces the channel's secret; the old one stops working at once.
    pub async fn rotate_channel_secret(&self, scope: Scope, id: Id) -> ServiceResult<Channel> {
        let patch = ChannelPatch { secret: Some(keys::generate_channel_secret()?), ..ChannelPatch::default() };
        let updated = self.store.update_channel(scope, id, patch).await?;
        self.auth_cache.epoch().channels_changed();
        Ok(updated)
    }
}

/// Bumped after every channel change made through this process (config,
/// status, secret), so whoever remembers channels (the delivery worker) reads
/// them again at once instead of signing with a rotated-out secret.
pub static CHANNELS_CHANGED: AtomicU64 = AtomicU64::new(0);

/// A channel changed (through this node or, told by the cluster bus, another).
pub fn channels_changed_here() {
    CHANNELS_CHANGED.fetch_add(1, Ordering::Release);
}

/// The current value of [`CHANNELS_CHANGED`].
pub fn channels_epoch() -> u64 {
    CHANNELS_CHANGED.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn field(e: ServiceError) -> String {
        match e {
            ServiceError::Validation { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_input_checks_type_and_config() {
        let ok = NewChannelInput::from_json(map(json!({"name": "n", "type": "echo"}))).expect("ok");
        assert_eq!(ok.config.as_str(), "{}");
        let e = NewChannelInput::from_json(map(json!({"name": "n", "type": "carrier-pigeon"}))).expect_err("type");
        assert_eq!(field(e), "type");
        let e = NewChannelInput::from_json(map(json!({"name": "n", "type": "echo", "config": [1]}))).expect_err("cfg");
        assert_eq!(field(e), "config");
        let e = NewChannelInput::from_json(map(json!({"type": "echo"}))).expect_err("name");
        assert_eq!(field(e), "name");
    }

    #[test]
    fn create_input_validates_config_through_the_adapter() {
        let create = |v: Value| NewChannelInput::from_json(map(v));
        let ok = create(json!({"name": "h", "type": "webhook", "config": {"url": "https://h.example/in"}}));
        assert_eq!(ok.expect("valid webhook").kind, "webhook");
        for (body, want) in [
            (json!({"name": "h", "type": "webhook"}), "config.url"),
            (json!({"name": "h", "type": "webhook", "config": {"url": "nope"}}), "config.url"),
            (json!({"name": "m", "type": "whatsapp_meta", "config": {}}), "config.phone_number_id"),
            (json!({"name": "i", "type": "whatsapp_infobip", "config": {"sender": "1"}}), "config.api_key"),
            (json!({"name": "w", "type": "websocket", "config": {"k": 1}}), "config.k"),
            (json!({"name": "e", "type": "echo", "config": {"sender": 5}}), "config.sender"),
        ] {
            assert_eq!(field(create(body.clone()).expect_err("refused")), want, "{body}");
        }
    }

    #[test]
    fn validate_config_refuses_unknown_types_and_non_objects() {
        let cfg = Json::parse(r#"{"url":"https://h.example"}"#).expect("json");
        assert!(validate_config("webhook", &cfg).is_ok());
        assert_eq!(field(validate_config("fax", &cfg).expect_err("type")), "type");
        assert_eq!(field(validate_config("echo", &Json::parse("[]").expect("json")).expect_err("cfg")), "config");
        assert_eq!(field(validate_config("echo", &cfg).expect_err("echo has no url")), "config.url");
    }

    #[test]
    fn patch_input_refuses_type_changes_bad_status_and_empty_patches() {
        assert_eq!(field(ChannelPatchInput::from_json(map(json!({"type": "echo"}))).expect_err("type")), "type");
        assert_eq!(field(ChannelPatchInput::from_json(map(json!({"status": "gone"}))).expect_err("status")), "status");
        assert!(ChannelPatchInput::from_json(map(json!({}))).is_err());
        let p = ChannelPatchInput::from_json(map(json!({"status": "inactive"}))).expect("ok");
        assert_eq!(p.status, Some(Status::Inactive));
    }
}
