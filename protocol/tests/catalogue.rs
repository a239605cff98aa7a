//! The error-code table of `docs/protocol.md` is the catalogue
//! ([`ErrorCode`]), row for row. `UPDATE_DOC=1 cargo test -p
//! converger-protocol --test catalogue` rewrites the table from the enum.

use std::fs;
use std::path::PathBuf;

use converger_protocol::ErrorCode;

const START: &str = "<!-- error-codes:start -->\n";
const END: &str = "<!-- error-codes:end -->";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md")
}

/// The table as the catalogue makes it.
fn table() -> String {
    let mut t = String::from("| code | name | HTTP | when |\n| --- | --- | --- | --- |\n");
    for c in ErrorCode::ALL {
        let status = c.http_status().map_or("—".to_owned(), |s| s.to_string());
        t.push_str(&format!("| {} | `{}` | {} | {} |\n", c.code(), c.name(), status, c.description()));
    }
    t
}

#[test]
fn the_doc_table_is_the_catalogue() {
    let doc = fs::read_to_string(doc_path()).expect("docs/protocol.md");
    let start = doc.find(START).expect("start marker") + START.len();
    let end = start + doc[start..].find(END).expect("end marker");
    let expected = table();
    if std::env::var_os("UPDATE_DOC").is_some() {
        fs::write(doc_path(), format!("{}{}{}", &doc[..start], expected, &doc[end..])).expect("write doc");
        return;
    }
    assert!(
        doc[start..end] == expected,
        "docs/protocol.md's error table differs from ErrorCode (UPDATE_DOC=1 rewrites it); expected:\n{expected}"
    );
}

#[test]
fn codes_are_grouped_by_thousands() {
    for c in ErrorCode::ALL {
        assert!((1000..6000).contains(&c.code()), "{c} is outside the groups");
    }
}

#[test]
fn the_doc_lists_and_lays_out_every_frame_kind() {
    let doc = fs::read_to_string(doc_path()).expect("docs/protocol.md");
    for k in converger_protocol::Kind::ALL {
        let row = format!("| 0x{:02x} | ", *k as u8);
        let heading = format!("0x{:02x} ", *k as u8);
        assert!(doc.contains(&row), "kinds table lacks {k:?}");
        assert!(doc.lines().any(|l| l.starts_with("### ") && l.contains(&heading)), "no layout section for {k:?}");
    }
}
