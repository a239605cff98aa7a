//! The generic webhook adapter's inbound path: Standard Webhooks verification
//! (signed right, forged, replayed) then the body's parse. Never a panic; a
//! request not signed with the channel's key is always refused.
#![no_main]

#[path = "inbound.rs"]
#[allow(dead_code)] // channel_secret: this adapter signs instead.
mod inbound;

use converger_server::adapters::standard_webhooks::{channel_key, headers};
use converger_server::adapters::Webhook;
use inbound::{check, post, Input, NOW, SECRET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else { return };
    let config = serde_json::json!({"url": "http://127.0.0.1:9/hook"});
    let key = channel_key(SECRET);
    let (hdrs, authentic) = match input.mode % 4 {
        // Signed right, the fuzzer's line as the webhook-id.
        0 => (headers(&key, &input.line, NOW, input.body).to_vec(), true),
        // Signed with another key.
        1 => (headers(&channel_key("cvs_other"), &input.line, NOW, input.body).to_vec(), false),
        // Signed right but an hour old: a replay.
        2 => (headers(&key, &input.line, NOW - 3600, input.body).to_vec(), false),
        // The fuzzer's line as the signature.
        _ => {
            let mut h = headers(&key, "msg_1", NOW, input.body).to_vec();
            h.retain(|(n, _)| n != "webhook-signature");
            h.push(("webhook-signature".into(), input.line.clone()));
            (h, false)
        }
    };
    let _ = check(&Webhook, &config, &post(hdrs, input.body, None), authentic);
});
