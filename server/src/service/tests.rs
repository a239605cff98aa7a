//! The operations of the `Hub` against a real embedded store: API keys,
//! channel secrets and client tokens, each accepted and refused; channel
//! config patches; a tenant's own limits.

use std::sync::Arc;

use converger_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use converger_storage::{ConversationStatus, Status, Store, TenantLimits, TenantPatch};
use serde_json::json;

use super::channels::{ChannelPatchInput, NewChannelInput};
use super::conversations::NewConversationInput;
use super::tenants::TenantPatchInput;
use super::tokens::TokenInput;
use super::{Caller, Hub, Publisher, ServiceError};
use crate::auth::AuthError;
use crate::config::{Config, FileConfig, Options};

fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().expect("runtime");
    rt.block_on(f)
}

fn hub(dir: &std::path::Path) -> Hub {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("store"));
    let config = Config::resolve(Options::default(), FileConfig::default()).expect("config");
    Hub::new(store.clone(), Arc::new(config), Publisher::direct(store))
}

fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

fn auth_error<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> AuthError {
    match r {
        Err(ServiceError::Auth(e)) => e,
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[test]
fn api_keys_authenticate_their_tenant_until_disabled_or_rotated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path());
    run(async {
        let (tenant, key) = hub.create_tenant("t".into()).await.expect("tenant");
        assert_eq!(hub.caller_by_api_key(&key).await.expect("caller"), Caller::Tenant(tenant.id));
        assert!(matches!(auth_error(hub.caller_by_api_key("cvg_unknown").await), AuthError::Invalid(_)));
        let inactive = TenantPatchInput { status: Some(Status::Inactive), ..Default::default() };
        hub.update_tenant(tenant.id, inactive).await.expect("disable");
        assert!(matches!(auth_error(hub.caller_by_api_key(&key).await), AuthError::TenantInactive));
        let active = TenantPatchInput { status: Some(Status::Active), ..Default::default() };
        hub.update_tenant(tenant.id, active).await.expect("enable");
        let (_, new_key) = hub.rotate_tenant_key(tenant.id).await.expect("rotate");
        assert!(matches!(auth_error(hub.caller_by_api_key(&key).await), AuthError::Invalid(_)));
        assert_eq!(hub.caller_by_api_key(&new_key).await.expect("new key"), Caller::Tenant(tenant.id));
    });
}

#[test]
fn channel_secrets_open_their_channel_and_tokens_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path());
    run(async {
        let (tenant, _) = hub.create_tenant("t".into()).await.expect("tenant");
        let caller = Caller::Tenant(tenant.id);
        let input = NewChannelInput::from_json(map(json!({"name": "c", "type": "echo"}))).expect("input");
        let channel = hub.create_channel(caller, input).await.expect("channel");
        let by_secret = hub.caller_by_channel_secret(channel.id, &channel.secret).await.expect("secret");
        assert_eq!(by_secret, Caller::Channel { tenant_id: tenant.id, channel_id: channel.id });
        let wrong = hub.caller_by_channel_secret(channel.id, "cvs_wrong").await;
        assert!(matches!(auth_error(wrong), AuthError::Invalid(_)));
        let conv_input = NewConversationInput::from_json(map(json!({"channel_id": channel.id}))).expect("input");
        let conversation = hub.create_conversation(by_secret, conv_input).await.expect("conversation");
        assert_eq!(conversation.status, ConversationStatus::Active);
        let token_input = TokenInput { conversation_id: conversation.id, sender: "s".into(), ttl_seconds: 60 };
        let issued = hub.issue_token(by_secret, token_input).await.expect("token");
        let claims = hub.verify_token(&issued.token).await.expect("verifies");
        assert_eq!(
            (claims.tenant_id, claims.conversation_id, claims.exp - claims.iat),
            (tenant.id, conversation.id, 60)
        );
        let refreshed = hub.refresh_token(&issued.token).await.expect("refresh");
        assert_ne!(hub.verify_token(&refreshed.token).await.expect("verifies").jti, claims.jti);
        let rotated = hub.rotate_channel_secret(caller.scope(), channel.id).await.expect("rotate");
        let old = hub.caller_by_channel_secret(channel.id, &channel.secret).await;
        assert!(matches!(auth_error(old), AuthError::Invalid(_)));
        assert!(hub.caller_by_channel_secret(channel.id, &rotated.secret).await.is_ok());
    });
}

fn invalid_field<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> String {
    match r {
        Err(ServiceError::Validation { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn a_config_patch_is_validated_against_the_stored_channels_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path());
    run(async {
        let (tenant, _) = hub.create_tenant("t".into()).await.expect("tenant");
        let caller = Caller::Tenant(tenant.id);
        let body = json!({"name": "h", "type": "webhook", "config": {"url": "https://h.example/in"}});
        let hook =
            hub.create_channel(caller, NewChannelInput::from_json(map(body)).expect("input")).await.expect("hook");
        let patch = |v| ChannelPatchInput::from_json(map(json!({ "config": v }))).expect("patch");
        let bad = hub.update_channel(caller.scope(), hook.id, patch(json!({"url": "ftp://h.example"}))).await;
        assert_eq!(invalid_field(bad), "config.url");
        // A config valid for another type is not valid for this one.
        let echo_cfg = hub.update_channel(caller.scope(), hook.id, patch(json!({"sender": "bot"}))).await;
        assert_eq!(invalid_field(echo_cfg), "config.sender");
        let good = json!({"url": "https://h.example/v2", "method": "PUT"});
        let updated = hub.update_channel(caller.scope(), hook.id, patch(good.clone())).await.expect("valid patch");
        assert_eq!(updated.config.to_value(), good);
        let body = json!({"name": "e", "type": "echo"});
        let echo =
            hub.create_channel(caller, NewChannelInput::from_json(map(body)).expect("input")).await.expect("echo");
        let hook_cfg = hub.update_channel(caller.scope(), echo.id, patch(json!({"url": "https://h.example"}))).await;
        assert_eq!(invalid_field(hook_cfg), "config.url");
    });
}

#[test]
fn tenant_limits_are_patched_key_by_key_and_seen_at_once_on_every_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("store"));
    let config = Arc::new(Config::resolve(Options::default(), FileConfig::default()).expect("config"));
    let epoch = super::TenantEpoch::default();
    let shard = |_| {
        let publisher = Publisher::direct(store.clone());
        Hub::sharing(store.clone(), config.clone(), publisher, epoch.clone(), 2, Arc::default())
    };
    let (a, b) = (shard(0), shard(1));
    let patch = |v| TenantPatchInput::from_json(map(json!({ "limits": v }))).expect("patch");
    run(async {
        let (tenant, _) = a.create_tenant("t".into()).await.expect("tenant");
        assert_eq!(b.tenant_limits(tenant.id).await.expect("limits"), TenantLimits::default());
        let set = a.update_tenant(tenant.id, patch(json!({"deliveries_per_second": 5}))).await.expect("set");
        let five = TenantLimits { deliveries_per_second: Some(5), ..TenantLimits::default() };
        assert_eq!(set.limits, five);
        assert_eq!(b.tenant_limits(tenant.id).await.expect("limits"), five, "the other shard at once");

        // A key left out keeps its value; null clears one.
        let more = a.update_tenant(tenant.id, patch(json!({"requests_per_second": 7}))).await.expect("add");
        assert_eq!(more.limits, TenantLimits { requests_per_second: Some(7), ..five });
        let cleared = a
            .update_tenant(tenant.id, patch(json!({"deliveries_per_second": null, "activities_per_second": 3})))
            .await
            .expect("clear one");
        let now =
            TenantLimits { requests_per_second: Some(7), activities_per_second: Some(3), ..TenantLimits::default() };
        assert_eq!(cleared.limits, now);
        assert_eq!(b.tenant_limits(tenant.id).await.expect("limits"), now);

        // A change behind the hubs' backs (another node) is served from memory
        // until the TTL passes or a change through this node retires it.
        let elsewhere = TenantPatch { limits: Some(TenantLimits::default()), ..TenantPatch::default() };
        store.update_tenant(tenant.id, elsewhere).await.expect("another node's change");
        assert_eq!(b.tenant_limits(tenant.id).await.expect("limits"), now, "remembered");
        a.update_tenant(tenant.id, TenantPatchInput { name: Some("u".into()), ..Default::default() })
            .await
            .expect("rename");
        assert_eq!(b.tenant_limits(tenant.id).await.expect("limits"), TenantLimits::default());
        assert!(a.tenant_limits(converger_storage::new_id()).await.is_err(), "an unknown tenant is not remembered");
    });
}
