//! The JWT decoder and HS256 verifier refuse any token not signed with the
//! key, never panic, and accept every token the signer makes.
#![no_main]

use converger_server::auth::jwt::{header, sign, verified_payload, verify, ALG};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let _ = header(token);
    let payload = verified_payload(token, KEY);
    if let Ok(claims) = verify(token, KEY, NOW) {
        // Only a token signed with KEY gets here: the fuzzer cannot forge one,
        // so it must be well formed and re-signing it must verify too.
        assert!(payload.is_ok());
        assert_eq!(header(token).expect("a verified token has a header").alg, ALG);
        assert_eq!(verify(&sign(&claims, KEY), KEY, NOW).ok(), Some(claims));
    }
    // Tokens the fuzzer writes the claims of, signed: each verifies or is refused cleanly.
    if let Ok(claims) = serde_json::from_slice(data) {
        let _ = verify(&sign(&claims, KEY), KEY, NOW);
    }
});
