//! Scenario `read-state`: what reading messages in their current state costs.
//! Two conversations of one tenant get `--activities` each over REST: one of
//! plain messages, one of the chat fill (68 % messages, one in ten a reply;
//! 20 % reactions; 10 % edits; 2 % deletes; the targets are recent messages,
//! as in `mix`). Then one keep-alive connection reads each conversation from
//! start to end in pages (`GET …/activities?after_seq=…&limit=--page`), with
//! and without `reader=`: four variants, alternated pass by pass so a noisy
//! machine hits them alike. A page's time runs from sending the request to
//! the last byte of the answer.
//!
//! The fill answers exactly `--activities` committed writes per conversation:
//! a reaction already there (200, a replay) or a write whose target a
//! concurrent delete took (409) is counted and made again with a new pick.
//! The first pass of each variant is checked (every seq once, in order) and
//! summarized (messages edited, deleted, with reactions, replies, `me`); the
//! timed passes only read.
//!
//! With the server's pid (`CONVERGER_SERVER_PID`, set by scripts/bench-server)
//! the report gives the server's CPU per page; with a database server's pid
//! (`--db-pid`: PostgreSQL's postmaster) that of its backends too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cpu::CpuMeter;
use crate::http::Client;
use crate::mix::{self, Kind, KindTally, Outcome, Recent, Rng, Weights};
use crate::report::{emit, new_histogram, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct ReadStateArgs {
    #[command(flatten)]
    target: Target,
    /// Activities written into each of the two conversations (at most 1,000,000).
    #[arg(long, default_value_t = 10_000)]
    activities: usize,
    /// Activities per page read (`limit`: 1 to 1,000).
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Passes over each conversation per variant and run (the variants alternate pass by pass).
    #[arg(long, default_value_t = 20)]
    passes: usize,
    /// Runs; the report gives the median and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// REST connections writing the fill (one write in flight each).
    #[arg(long, default_value_t = 16)]
    fill_connections: usize,
    /// Bytes of text per message and edit.
    #[arg(long, default_value_t = 128)]
    text_bytes: usize,
    /// The sender named by `reader=` (one of the reacting senders, so `me` is sometimes true).
    #[arg(long, default_value = "user-0")]
    reader: String,
    /// Which conversations to fill and read: `plain`, `chat`, or both
    /// (comma-separated). `plain` alone runs against a server without the
    /// message lifecycle (an earlier build, for a before/after comparison).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain,chat")]
    conversations: Vec<Conversation>,
    /// Stop reading after this many seconds, whatever is left.
    #[arg(long, default_value_t = 300.0)]
    max_seconds: f64,
    /// The server's process id, to measure its CPU per page.
    #[arg(long, env = "CONVERGER_SERVER_PID")]
    server_pid: Option<u32>,
    /// The database server's main process id (PostgreSQL's postmaster, the
    /// first line of its `postmaster.pid`), to measure its backends' CPU per page.
    #[arg(long, env = "CONVERGER_BENCH_DB_PID")]
    db_pid: Option<u32>,
}

/// The two conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Conversation {
    /// `--activities` plain messages.
    Plain,
    /// The chat fill: messages, replies, reactions, edits, deletes.
    Chat,
}

/// The four ways of reading.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    chat: bool,
    reader: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant { name: "plain", chat: false, reader: false },
    Variant { name: "plain, reader=", chat: false, reader: true },
    Variant { name: "chat", chat: true, reader: false },
    Variant { name: "chat, reader=", chat: true, reader: true },
];

#[derive(Serialize)]
struct Report {
    fill: Vec<FillReport>,
    variants: Vec<VariantReport>,
}

#[derive(Serialize)]
struct FillReport {
    conversation: &'static str,
    /// Committed writes per kind.
    kinds: Vec<(&'static str, u64)>,
    /// `reaction_add` answered 200 (already there), made again.
    replays: u64,
    /// Writes refused 409 (their target deleted meanwhile), made again.
    retried: u64,
    seconds: f64,
}

#[derive(Serialize)]
struct VariantReport {
    variant: &'static str,
    /// Pages read per second by the one reading connection (pages / the time spent reading them).
    pages_per_s: Spread,
    activities_per_s: Spread,
    /// Milliseconds per page, every run merged.
    page_ms_p50: f64,
    page_ms_p90: f64,
    page_ms_p99: f64,
    page_ms_max: f64,
    pages: u64,
    bytes_per_page: u64,
    /// The server's CPU per page (ms), when its pid is known.
    server_cpu_ms_per_page: Option<f64>,
    /// The database backends' CPU per page (ms), with `--db-pid`.
    db_cpu_ms_per_page: Option<f64>,
    /// What the checked pass found in the conversation.
    contents: Contents,
}

/// What one whole pass read.
#[derive(Clone, Debug, Default, Serialize)]
struct Contents {
    activities: u64,
    messages: u64,
    replies: u64,
    edits: u64,
    deletes: u64,
    reaction_adds: u64,
    edited_messages: u64,
    deleted_messages: u64,
    messages_with_reactions: u64,
    reactions_counted: u64,
    reactions_me: u64,
    reply_count_sum: u64,
}

/// One variant's figures over the runs.
struct Tally {
    hist: Histogram<u64>,
    rates: Vec<f64>,
    activity_rates: Vec<f64>,
    pages: u64,
    bytes: u64,
    server_cpu: f64,
    db_cpu: f64,
    contents: Contents,
}

pub fn run(args: ReadStateArgs) -> Result<(), String> {
    if !(1..=1_000_000).contains(&args.activities) || !(1..=1000).contains(&args.page) {
        return Err("--activities takes 1 to 1,000,000 and --page 1 to 1,000".into());
    }
    let rt = args.target.runtime()?;
    args.target.single_node("read-state")?;
    rt.block_on(measure(&args))
}

async fn measure(args: &ReadStateArgs) -> Result<(), String> {
    let mut tenant = args.target.tenant("read-state").await?;
    let plain = tenant.conversation().await?;
    let chat = tenant.conversation().await?;
    let key = tenant.api_key.clone();
    let mut fills = Vec::new();
    let wanted =
        |chat: bool| args.conversations.contains(if chat { &Conversation::Chat } else { &Conversation::Plain });
    let variants: Vec<Variant> = VARIANTS.iter().copied().filter(|v| wanted(v.chat)).collect();
    for (name, conversation, weights) in [("plain", &plain, Weights::PLAIN), ("chat", &chat, Weights::FILL)] {
        if !wanted(name == "chat") {
            continue;
        }
        let f = fill(args, &key, conversation, weights).await?;
        eprintln!(
            "read-state: {name} conversation filled in {:.1} s: {:?}, {} replays and {} retries made again",
            f.seconds, f.kinds, f.replays, f.retried
        );
        fills.push(FillReport { conversation: name, ..f });
    }
    let meter = CpuMeter::new(args.server_pid, args.db_pid);
    let (cpu_server, cpu_db) = (meter.measures_server(), meter.measures_database());
    let mut tallies: Vec<Tally> = variants
        .iter()
        .map(|_| Tally {
            hist: new_histogram(),
            rates: Vec::new(),
            activity_rates: Vec::new(),
            pages: 0,
            bytes: 0,
            server_cpu: 0.0,
            db_cpu: 0.0,
            contents: Contents::default(),
        })
        .collect();
    let mut client = Client::connect(args.target.addr()).await?;
    // The checked pass of each variant: its contents, and a warm-up.
    for (v, t) in variants.iter().zip(tallies.iter_mut()) {
        let conversation = if v.chat { &chat } else { &plain };
        t.contents = checked_pass(args, &mut client, &key, conversation, v).await?;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.max_seconds);
    'runs: for run in 0..args.runs {
        let mut spent = vec![Duration::ZERO; variants.len()];
        let mut read = vec![0u64; variants.len()];
        for _ in 0..args.passes {
            for (i, v) in variants.iter().enumerate() {
                if Instant::now() >= deadline {
                    eprintln!("read-state: --max-seconds reached, stopping");
                    break 'runs;
                }
                let conversation = if v.chat { &chat } else { &plain };
                let cpu0 = meter.now();
                let mut after = 0;
                while after < args.activities {
                    let path = page_path(conversation, after, args.page, v.reader.then_some(args.reader.as_str()));
                    let t0 = Instant::now();
                    let reply = client.call("GET", &path, &key, None).await?;
                    let took = t0.elapsed();
                    if reply.status != 200 {
                        return Err(format!("{path} answered {}", reply.status));
                    }
                    let _ = tallies[i].hist.record(took.as_micros() as u64);
                    spent[i] += took;
                    tallies[i].pages += 1;
                    tallies[i].bytes += reply.body.len() as u64;
                    read[i] += args.page.min(args.activities - after) as u64;
                    after += args.page;
                }
                let cpu1 = meter.now();
                tallies[i].server_cpu += cpu1.server - cpu0.server;
                tallies[i].db_cpu += cpu1.database - cpu0.database;
            }
        }
        let pages_per_pass = args.activities.div_ceil(args.page) as f64;
        let mut line = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            let secs = spent[i].as_secs_f64().max(1e-9);
            let rate = pages_per_pass * args.passes as f64 / secs;
            tallies[i].rates.push(rate);
            tallies[i].activity_rates.push(read[i] as f64 / secs);
            line.push(format!("{} {rate:.1} pages/s ({:.0} activities/s)", v.name, read[i] as f64 / secs));
        }
        eprintln!("read-state run {}/{}: {}", run + 1, args.runs, line.join("; "));
    }
    let ms = |h: &Histogram<u64>, q: f64| (h.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    let reports = variants
        .iter()
        .zip(&tallies)
        .map(|(v, t)| {
            let pages = t.pages.max(1) as f64;
            VariantReport {
                variant: v.name,
                pages_per_s: Spread::of(&t.rates),
                activities_per_s: Spread::of(&t.activity_rates),
                page_ms_p50: ms(&t.hist, 0.5),
                page_ms_p90: ms(&t.hist, 0.9),
                page_ms_p99: ms(&t.hist, 0.99),
                page_ms_max: (t.hist.max() as f64 / 10.0).round() / 100.0,
                pages: t.pages,
                bytes_per_page: t.bytes / t.pages.max(1),
                server_cpu_ms_per_page: cpu_server.then(|| (t.server_cpu * 1000.0 / pages * 100.0).round() / 100.0),
                db_cpu_ms_per_page: cpu_db.then(|| (t.db_cpu * 1000.0 / pages * 100.0).round() / 100.0),
                contents: t.contents.clone(),
            }
        })
        .collect();
    emit("read-state", args, Report { fill: fills, variants: reports })?;
    Ok(())
}

fn page_path(conversation: &str, after: usize, limit: usize, reader: Option<&str>) -> String {
    let reader = reader.map(|r| format!("&reader={r}")).unwrap_or_default();
    format!("/api/v1/conversations/{conversation}/activities?after_seq={after}&limit={limit}{reader}")
}

/// Writes exactly `args.activities` activities of `weights` into `conversation`.
async fn fill(args: &ReadStateArgs, key: &str, conversation: &str, weights: Weights) -> Result<FillReport, String> {
    let path = Arc::new(format!("/api/v1/conversations/{conversation}/activities"));
    let message = Arc::new(json!({"sender": "bench", "text": "x".repeat(args.text_bytes)}).to_string().into_bytes());
    let text: Arc<str> = "e".repeat(args.text_bytes).into();
    let recent = Arc::new(Mutex::new(Recent::new()));
    let claimed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.fill_connections.max(1) {
        let (path, message, text, recent, claimed, key) =
            (path.clone(), message.clone(), text.clone(), recent.clone(), claimed.clone(), key.to_string());
        let (addr, n) = (args.target.addr(), args.activities);
        let mut rng = Rng::new(0xf111 + c as u64);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await?;
            let (mut kinds, mut retried) = (KindTally::new(), 0u64);
            while claimed.fetch_add(1, Ordering::Relaxed) < n {
                // One committed write per claim; bounded tries.
                let mut tries = 0;
                loop {
                    tries += 1;
                    if tries > 100 {
                        return Err("100 tries without a committed write".to_string());
                    }
                    let w = mix::next_write(&weights, &mut rng, &recent, &message, &text);
                    let reply = client.call("POST", &path, &key, Some(&w.body)).await?;
                    match mix::outcome(w.kind, reply.status) {
                        Outcome::Created => {
                            mix::remember(w.kind, &reply.body, &recent);
                            kinds.count(w.kind);
                            break;
                        }
                        Outcome::Replayed => kinds.replayed += 1,
                        Outcome::Refused if reply.status == 409 => retried += 1,
                        Outcome::Refused => {
                            return Err(format!(
                                "fill: {} answered {}: {}",
                                w.kind.name(),
                                reply.status,
                                String::from_utf8_lossy(&reply.body)
                            ))
                        }
                    }
                }
            }
            Ok::<_, String>((kinds, retried))
        }));
    }
    let (mut kinds, mut retried) = (KindTally::new(), 0);
    for t in tasks {
        let (k, r) = t.await.map_err(|e| e.to_string())??;
        kinds.add(&k)?;
        retried += r;
    }
    Ok(FillReport {
        conversation: "",
        kinds: Kind::ALL
            .iter()
            .filter(|k| kinds.created[k.index()] > 0)
            .map(|k| (k.name(), kinds.created[k.index()]))
            .collect(),
        replays: kinds.replayed,
        retried,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads the whole conversation once, checks every seq comes once and in
/// order up to `--activities`, and counts what it holds.
async fn checked_pass(
    args: &ReadStateArgs,
    client: &mut Client,
    key: &str,
    conversation: &str,
    v: &Variant,
) -> Result<Contents, String> {
    let mut c = Contents::default();
    let mut after = 0;
    while after < args.activities {
        let path = page_path(conversation, after, args.page, v.reader.then_some(args.reader.as_str()));
        let page = client.call("GET", &path, key, None).await?.json()?;
        let data = page["data"].as_array().ok_or_else(|| format!("{path}: no data"))?;
        if data.is_empty() {
            return Err(format!("{path}: empty page at seq {after} of {}", args.activities));
        }
        for a in data {
            let seq = a["seq"].as_u64().unwrap_or(0) as usize;
            if seq != after + 1 {
                return Err(format!("{path}: seq {seq} where {} was due", after + 1));
            }
            after = seq;
            count(&mut c, a);
        }
    }
    Ok(c)
}

fn count(c: &mut Contents, a: &Value) {
    c.activities += 1;
    match a["type"].as_str().unwrap_or("") {
        "message" if a["parent_id"].is_string() => c.replies += 1,
        "message" => c.messages += 1,
        "edit" => c.edits += 1,
        "delete" => c.deletes += 1,
        "reaction_add" => c.reaction_adds += 1,
        _ => {}
    }
    if a["type"] != "message" {
        return;
    }
    c.edited_messages += u64::from(a["edited_at"].is_string());
    c.deleted_messages += u64::from(a["deleted"] == true);
    c.reply_count_sum += a["reply_count"].as_u64().unwrap_or(0);
    if let Some(reactions) = a["reactions"].as_array().filter(|r| !r.is_empty()) {
        c.messages_with_reactions += 1;
        for r in reactions {
            c.reactions_counted += r["count"].as_u64().unwrap_or(0);
            c.reactions_me += u64::from(r["me"] == true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_path_names_the_reader_only_when_asked() {
        assert_eq!(page_path("c", 2000, 1000, None), "/api/v1/conversations/c/activities?after_seq=2000&limit=1000");
        assert!(page_path("c", 0, 10, Some("user-0")).ends_with("?after_seq=0&limit=10&reader=user-0"));
    }

    #[test]
    fn a_pass_counts_kinds_and_current_state() {
        let mut c = Contents::default();
        for a in [
            json!({"type": "message", "edited_at": "t", "deleted": false, "reply_count": 2,
                   "reactions": [{"emoji": "👍", "count": 2, "me": true}, {"emoji": "🎉", "count": 1, "me": false}]}),
            json!({"type": "message", "parent_id": "p", "deleted": true, "reply_count": 0, "reactions": []}),
            json!({"type": "reaction_add", "text": "👍"}),
            json!({"type": "edit"}),
        ] {
            count(&mut c, &a);
        }
        assert_eq!((c.activities, c.messages, c.replies, c.reaction_adds, c.edits), (4, 1, 1, 1, 1));
        assert_eq!((c.edited_messages, c.deleted_messages, c.reply_count_sum), (1, 1, 2));
        assert_eq!((c.messages_with_reactions, c.reactions_counted, c.reactions_me), (1, 3, 1));
    }
}
