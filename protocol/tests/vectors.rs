//! The golden vectors (`testdata/*.json`): every file decodes to its fields and
//! its fields encode to its bytes; the bad-input file fails the way it says.
//! `UPDATE_VECTORS=1 cargo test -p converger-protocol --test vectors` rewrites
//! the files from `common/samples.rs` (then review the diff: a changed byte
//! is a protocol change).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use bytes::BytesMut;
use common::samples::{invalid, samples};
use common::{from_json, hex, testdata, to_json, unhex};
use converger_protocol::{decode_frame, Frame, Kind, Version, WireError};
use serde_json::{json, Value};

fn encode(frame: &Frame, version: Version) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(version, &mut buf).expect("encodes");
    assert_eq!(buf.len(), frame.encoded_size(version), "encoded_size of {:?}", frame.kind());
    buf.to_vec()
}

fn version_of(v: &Value) -> Version {
    Version::from_u8(v["version"].as_u64().expect("version") as u8).expect("a version the codec speaks")
}

/// The vector files as the samples make them, by file name.
fn expected_files() -> BTreeMap<String, String> {
    let mut by_kind: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (kind, name, version, frame) in samples() {
        assert_eq!(kind, frame.kind().name(), "sample {name} is filed under its kind");
        by_kind.entry(kind).or_default().push(json!({
            "name": name,
            "version": version.get(),
            "hex": hex(&encode(&frame, version)),
            "frame": to_json(&frame),
        }));
    }
    let mut files: BTreeMap<String, String> = by_kind
        .into_iter()
        .map(|(kind, vectors)| (format!("{kind}.json"), pretty(&json!({"kind": kind, "vectors": vectors}))))
        .collect();
    let bad: Vec<Value> = invalid()
        .into_iter()
        .map(|(name, version, hex, error)| json!({"name": name, "version": version.get(), "hex": hex, "error": error}))
        .collect();
    files.insert("invalid.json".into(), pretty(&json!({"vectors": bad})));
    files
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("json") + "\n"
}

fn load(file: &str) -> Value {
    let text = fs::read_to_string(testdata().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every frame vector on disk: `(file, name, version, bytes, fields)`.
pub fn frame_vectors() -> Vec<(String, String, Version, Vec<u8>, Value)> {
    let mut out = Vec::new();
    let mut names: Vec<String> = fs::read_dir(testdata())
        .expect("testdata")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "invalid.json")
        .collect();
    names.sort();
    for file in names {
        let doc = load(&file);
        for v in doc["vectors"].as_array().expect("vectors") {
            let name = v["name"].as_str().expect("name").to_owned();
            out.push((file.clone(), name, version_of(v), unhex(v["hex"].as_str().expect("hex")), v["frame"].clone()));
        }
    }
    out
}

#[test]
fn vector_files_match_the_samples() {
    let expected = expected_files();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        for (file, text) in &expected {
            fs::write(testdata().join(file), text).expect("write vector");
        }
    }
    for (file, text) in &expected {
        let on_disk = fs::read_to_string(testdata().join(file)).unwrap_or_default();
        assert!(on_disk == *text, "{file} differs from the samples (UPDATE_VECTORS=1 rewrites it; review the diff)");
    }
}

#[test]
fn every_kind_has_a_vector_file() {
    let kinds: BTreeSet<String> =
        frame_vectors().into_iter().map(|(_, _, _, _, f)| f["kind"].as_str().unwrap().into()).collect();
    let all: BTreeSet<String> = Kind::ALL.iter().map(|k| k.name().to_owned()).collect();
    assert_eq!(kinds, all);
}

#[test]
fn vectors_decode_to_their_fields_and_fields_encode_to_their_bytes() {
    for (file, name, version, bytes, fields) in frame_vectors() {
        let (frame, used) = decode_frame(&bytes, version)
            .unwrap_or_else(|e| panic!("{file}/{name}: {e}"))
            .unwrap_or_else(|| panic!("{file}/{name}: incomplete"));
        assert_eq!(used, bytes.len(), "{file}/{name}: length");
        assert_eq!(to_json(&frame), fields, "{file}/{name}: decoded fields");
        assert_eq!(hex(&encode(&from_json(&fields), version)), hex(&bytes), "{file}/{name}: encoded bytes");
        assert_eq!(from_json(&fields), frame, "{file}/{name}: round trip");
    }
}

#[test]
fn every_version_1_vector_is_refused_or_unchanged_in_version_2() {
    // Version 2 changes no version-1 byte: a version-1 frame, with its header
    // saying 2 (Hello and Welcome keep 1), decodes in version 2 to the same frame.
    for (file, name, version, mut bytes, _) in frame_vectors() {
        if version != Version::V1 {
            continue;
        }
        let (v1, _) = decode_frame(&bytes, Version::V1).expect("v1").expect("complete");
        bytes[4] = v1.kind().header_version(Version::V2).get();
        let (v2, _) = decode_frame(&bytes, Version::V2).expect("v2").expect("complete");
        assert_eq!(v1, v2, "{file}/{name}");
    }
}

#[test]
fn version_2_kinds_and_fields_do_not_encode_in_version_1() {
    for (kind, name, version, frame) in samples() {
        if version != Version::V2 {
            continue;
        }
        let mut buf = BytesMut::new();
        let v1 = frame.encode(Version::V1, &mut buf);
        if matches!(kind, "ack" | "ephemeral") {
            // Unchanged layouts: only the header's version differs.
            let v2 = encode(&frame, Version::V2);
            assert_eq!((v1, &buf[..4], &buf[5..]), (Ok(()), &v2[..4], &v2[5..]), "{kind}/{name}");
        } else {
            // Every other version-2 sample carries a field (or is a kind) version 1 lacks.
            assert!(matches!(v1, Err(WireError::NotInVersion { version: 1, .. })), "{kind}/{name}: {v1:?}");
            assert!(buf.is_empty(), "{kind}/{name}: nothing left behind");
        }
    }
}

#[test]
fn invalid_vectors_fail_with_the_named_error() {
    let doc = load("invalid.json");
    for v in doc["vectors"].as_array().expect("vectors") {
        let (name, bytes) = (v["name"].as_str().unwrap(), unhex(v["hex"].as_str().unwrap()));
        match decode_frame(&bytes, version_of(v)) {
            Err(e) => assert_eq!(e.name(), v["error"].as_str().unwrap(), "{name}: {e}"),
            Ok(other) => panic!("{name}: decoded {other:?}"),
        }
    }
}

#[test]
fn every_sample_round_trips() {
    for (kind, name, version, frame) in samples() {
        let bytes = encode(&frame, version);
        let (back, used) = decode_frame(&bytes, version).expect("decodes").expect("complete");
        assert_eq!((back, used), (frame, bytes.len()), "{kind}/{name}");
    }
}
