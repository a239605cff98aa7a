//! Imports point down the layer table (docs/architecture.md, "Layers"):
//! a module of `server/src` may use only modules of layers below its own.
//! This reads every source file, collects each `crate::<module>` it names
//! (in `use` lines, grouped `use crate::{a, b}` and inline paths) and fails
//! with every upward import it finds.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Every top-level module with its rank; a module may import only lower
/// ranks. The order inside a layer is part of the rule: the edges `api`
/// (which starts sessions on upgrade) sits over `sessions` and `delivery`;
/// among the building blocks, `config` (which builds the others' limits) is
/// highest and `rt` lowest.
const RANKS: &[(&str, u32)] = &[
    // bootstrap
    ("main", 90),
    ("lib", 90),
    ("run", 81),
    ("server", 80),
    // edges
    ("api", 73),
    ("admin", 72),
    ("sessions", 71),
    ("delivery", 70),
    // service
    ("service", 60),
    // engine
    ("engine", 50),
    // building blocks
    ("config", 16),
    ("adapters", 15),
    ("net", 14),
    ("auth", 13),
    ("trace", 12),
    ("metrics", 11),
    ("rt", 10),
];

/// Test doubles for unit tests: importable from anywhere.
const TEST_ONLY: &[&str] = &["testing"];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments (line comments and `/* */`), so prose
/// that names a module is not taken for an import.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else if rest.starts_with('"') {
            // Skip string literals (they may hold `//`).
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            rest = rest.get(end + 1..).unwrap_or("");
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `code` names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `converger_crate::` or `$crate::` are not ours.
        if code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(group[start..i].trim()).to_string());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(group[start..i].trim()).to_string());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest).to_string());
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

#[test]
fn every_import_points_down_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unknown = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&root).expect("under src");
        let first = relative.components().next().expect("a component").as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if TEST_ONLY.contains(&module.as_str()) {
            continue;
        }
        let Some(own) = rank(&module) else {
            unknown.insert(module);
            continue;
        };
        let text = fs::read_to_string(file).expect("read");
        for target in imports(&code(&text)) {
            if target == module || TEST_ONLY.contains(&target.as_str()) {
                continue;
            }
            match rank(&target) {
                Some(r) if r < own => {}
                Some(_) => upward.push(format!("{} uses crate::{target}", relative.display())),
                // A re-exported item at the crate root (`crate::Config`): fine from below lib only if lower.
                None if target.starts_with(|c: char| c.is_ascii_uppercase()) => upward.push(format!(
                    "{} uses crate::{target} (a root re-export: import from its module)",
                    relative.display()
                )),
                None => {
                    unknown.insert(target);
                }
            }
        }
    }
    assert!(unknown.is_empty(), "modules missing from the layer table: {unknown:?}");
    assert!(upward.is_empty(), "imports pointing up the layer table:\n  {}", upward.join("\n  "));
}

#[test]
fn the_scanner_sees_grouped_and_inline_imports_but_not_comments() {
    let text = "use crate::{api::App, net::{http, ws}};\n// crate::server\nfn f() { crate::engine::x(); let s = \"crate::run\"; }\n/* crate::run */";
    let found = imports(&code(text));
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["api", "engine", "net"]);
}
