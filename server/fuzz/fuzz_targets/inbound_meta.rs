//! The Meta WhatsApp Cloud API adapter's inbound path: the GET verification
//! handshake (the fuzzer's query), the POST's `X-Hub-Signature-256` (with an
//! app secret) or channel secret (without), then the body's parse. Never a
//! panic; a POST with a wrong signature or secret is always refused.
#![no_main]

#[path = "inbound.rs"]
mod inbound;

use converger_server::adapters::{InboundRequest, WhatsAppMeta};
use hmac::{Hmac, KeyInit, Mac};
use inbound::{channel_secret, check, post, Input};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const APP_SECRET: &str = "It's a Secret to Everybody";

fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else { return };
    let mut config = serde_json::json!({
        "phone_number_id": "106540352242922",
        "access_token": "EAAG-token",
        "verify_token": "let-me-in",
        "api_base": "http://127.0.0.1:9/graph/",
    });
    match input.mode % 4 {
        // GET: the verification handshake, the fuzzer's line as the query.
        0 => {
            let req = InboundRequest { method: "GET".into(), query: Some(input.line.clone()), ..Default::default() };
            let _ = check(&WhatsAppMeta, &config, &req, true);
        }
        // POST signed with the app secret, or with another key.
        1 | 2 => {
            config["app_secret"] = APP_SECRET.into();
            let right = input.mode % 4 == 1;
            let key: &[u8] = if right { APP_SECRET.as_bytes() } else { b"not the app secret" };
            let headers = vec![("X-Hub-Signature-256".into(), signature(key, input.body))];
            let _ = check(&WhatsAppMeta, &config, &post(headers, input.body, None), right);
        }
        // POST with no app secret configured: the channel secret, as the next bits pick.
        _ => {
            let (headers, path_secret, authentic) = channel_secret(input.mode / 4, &input.line);
            let _ = check(&WhatsAppMeta, &config, &post(headers, input.body, path_secret), authentic);
        }
    }
});
