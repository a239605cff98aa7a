//! The TOML config file loader: any text parses or is refused with an error
//! that names the file and fits on one line (the file's promise), never a
//! panic (the error path maps a byte span back to a line and a key).
#![no_main]

use converger_server::config::FileConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("fuzz.toml");
    if let Err(e) = FileConfig::parse(path, text) {
        let shown = e.to_string();
        assert!(!shown.contains('\n'), "a config error spans lines: {shown:?}");
    }
});
