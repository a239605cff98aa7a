//! The recorded history of a chaos run: every publish attempt with its
//! outcome as the client saw it, and every activity a subscriber received,
//! in the order each client saw them. Append-only and shared by every load
//! thread; optionally mirrored to a JSON-lines file for a post-mortem.
//!
//! The checker ([`super::checker`]) reads only this and the final store: what
//! a client did not record, it cannot claim.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Which protocol a client spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Rest,
    Phoenix,
    Binary,
}

/// What one publish attempt came to, as its client knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The server acknowledged it: stored under this seq and id; `replayed`
    /// when the answer said the key was already stored (REST 200, the
    /// binary ack's flag; Phoenix does not say).
    Acked {
        seq: u64,
        id: String,
        #[serde(default)]
        replayed: bool,
    },
    /// The server answered with an error (REST status, Phoenix reason code
    /// or binary error code by name); `status` is the HTTP status, or the
    /// code's HTTP twin on the sockets (0 when it has none).
    Refused { status: u16, code: String },
    /// No answer: the connection broke or timed out. It may or may not be stored.
    Unknown { error: String },
}

/// One entry of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// One attempt of a publish; every attempt of one logical publish carries
    /// the same idempotency `key`, and the key is also the activity's text.
    Publish { client: String, transport: Transport, conversation: String, key: String, attempt: u32, outcome: Outcome },
    /// A subscriber received an activity (live or from a resume's backlog).
    Observe { subscriber: String, transport: Transport, conversation: String, seq: u64, id: String },
    /// A subscriber (re)connected and asked for everything after `after_seq`.
    Resume { subscriber: String, transport: Transport, conversation: String, after_seq: u64 },
    /// A fault was injected (for the reader of the file; the checker ignores it).
    Fault { cycle: u32, fault: String, detail: String },
}

/// The shared, append-only history.
#[derive(Clone, Default)]
pub struct History {
    records: Arc<Mutex<Vec<Record>>>,
    file: Option<Arc<Mutex<BufWriter<File>>>>,
}

impl History {
    /// A history kept in memory only.
    pub fn in_memory() -> History {
        History::default()
    }

    /// A history also appended, one JSON object a line, to `path` (created or
    /// appended to: several scenarios of one run share the file).
    pub fn with_file(path: &Path) -> std::io::Result<History> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(History { records: Default::default(), file: Some(Arc::new(Mutex::new(BufWriter::new(file)))) })
    }

    pub fn push(&self, record: Record) {
        if let Some(file) = &self.file {
            if let (Ok(mut f), Ok(line)) = (file.lock(), serde_json::to_string(&record)) {
                // A post-mortem aid: a failed write must not stop the run.
                let _ = writeln!(f, "{line}");
            }
        }
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }

    /// Everything recorded so far, in recording order.
    pub fn snapshot(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn flush(&self) {
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                let _ = f.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json_lines() {
        let r = Record::Publish {
            client: "rest-0".into(),
            transport: Transport::Rest,
            conversation: "c".into(),
            key: "k".into(),
            attempt: 2,
            outcome: Outcome::Acked { seq: 7, id: "a".into(), replayed: true },
        };
        let line = serde_json::to_string(&r).expect("json");
        assert!(line.contains(r#""record":"publish""#) && line.contains(r#""outcome":"acked""#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).expect("parse"), r);
    }
}
