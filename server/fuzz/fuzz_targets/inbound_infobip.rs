//! The Infobip WhatsApp adapter's inbound path: the channel secret (path,
//! header, forged, missing) then the body's parse (messages, delivery and
//! seen reports). Never a panic; a wrong or missing secret is always refused.
#![no_main]

#[path = "inbound.rs"]
mod inbound;

use converger_server::adapters::WhatsAppInfobip;
use inbound::{channel_secret, check, post, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else { return };
    let config =
        serde_json::json!({"base_url": "http://127.0.0.1:9/ib/", "api_key": "ib-key", "sender": "441134960000"});
    let (headers, path_secret, authentic) = channel_secret(input.mode, &input.line);
    let _ = check(&WhatsAppInfobip, &config, &post(headers, input.body, path_secret), authentic);
});
