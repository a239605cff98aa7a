//! Scenario `storage`: activities/s committed by `Store::write_batch`, per backend,
//! batch size and number of conversations, with concurrent writers standing in for
//! the shards (each writing its own share of the conversations, as a shard
//! writes only the conversations it owns). Each run starts from an empty database and checks afterwards that
//! every acknowledged activity is there (sum of last_seq = count acknowledged).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use converger_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use converger_storage::postgres::{PgOptions, PgStore};
use converger_storage::*;
use serde::Serialize;

use crate::report::{emit, new_histogram, Percentiles, Spread};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Embedded,
    Postgres,
}

#[derive(Args, Debug, Serialize)]
pub struct StorageArgs {
    /// Storage backend to measure.
    #[arg(long, value_enum, default_value = "embedded")]
    backend: Backend,
    /// PostgreSQL URL (postgres backend); each run uses a fresh schema in it.
    #[arg(long, env = "DATABASE_URL")]
    #[serde(skip)]
    database_url: Option<String>,
    /// Activities per write_batch call (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    batch_sizes: Vec<usize>,
    /// Conversations the activities are spread over (comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    conversations: Vec<usize>,
    /// Concurrent writers (the server has one per shard).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Runs per case; the report gives the median and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Activities per run (a run also stops at --max-seconds).
    #[arg(long, default_value_t = 200_000)]
    activities: usize,
    /// Upper bound on one run's duration, in seconds.
    #[arg(long, default_value_t = 10.0)]
    max_seconds: f64,
    /// Bytes of text per activity.
    #[arg(long, default_value_t = 128)]
    text_bytes: usize,
    /// Where the embedded backend's databases go (default: a temporary directory in
    /// the current directory, which should be on the disk under test, not tmpfs).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the JSON result here as well as to stdout.
    #[arg(long)]
    #[serde(skip)]
    output: Option<PathBuf>,
}

#[derive(Serialize)]
struct Case {
    batch_size: usize,
    conversations: usize,
    activities_per_s: Spread,
    batch_latency_us: Percentiles,
    committed_per_run: Vec<u64>,
}

#[derive(Serialize)]
struct Report {
    cases: Vec<Case>,
}

pub fn run(args: StorageArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.writers.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut cases = Vec::new();
    for &conversations in &args.conversations {
        for &batch_size in &args.batch_sizes {
            let mut rates = Vec::new();
            let mut committed_per_run = Vec::new();
            let mut hist = new_histogram();
            for run in 0..args.runs {
                let (store, scratch) = open_store(&args)?;
                let out = rt.block_on(one_run(&args, store, conversations, batch_size, &mut hist));
                // The store is gone (moved into the run); remove what it wrote so
                // every run starts from the same empty state.
                scratch.clean(&rt);
                let out = out?;
                eprintln!(
                    "storage {:?} batch={batch_size} conversations={conversations} run {}/{}: {:.0} activities/s ({} in {:.2}s)",
                    args.backend,
                    run + 1,
                    args.runs,
                    out.committed as f64 / out.elapsed.as_secs_f64(),
                    out.committed,
                    out.elapsed.as_secs_f64()
                );
                rates.push(out.committed as f64 / out.elapsed.as_secs_f64());
                committed_per_run.push(out.committed);
            }
            cases.push(Case {
                batch_size,
                conversations,
                activities_per_s: Spread::of(&rates),
                batch_latency_us: Percentiles::of(&hist),
                committed_per_run,
            });
        }
    }
    let report = Report { cases };
    let json = emit("storage", &args, report)?;
    if let Some(path) = &args.output {
        std::fs::write(path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Where a run's data lives, to be removed after it.
enum Scratch {
    // Held only to delete the directory when dropped.
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { url: String, schema: String },
}

impl Scratch {
    fn clean(self, rt: &tokio::runtime::Runtime) {
        let Scratch::Schema { url, schema } = self else { return };
        // A database grown by earlier runs (dirty buffers, checkpoints, autovacuum)
        // slows later ones: drop the run's schema and checkpoint.
        let done = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await?;
            // Needs superuser; where refused, runs just start from a busier database.
            let _ = client.batch_execute("CHECKPOINT").await;
            Ok::<_, tokio_postgres::Error>(())
        });
        if let Err(e) = done {
            eprintln!("warning: could not drop schema {schema}: {e}");
        }
    }
}

/// A fresh store, and what to clean up after the run.
fn open_store(args: &StorageArgs) -> Result<(Arc<dyn Store>, Scratch), String> {
    match args.backend {
        Backend::Embedded => {
            let parent = args.data_dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let dir = tempfile::Builder::new()
                .prefix("bench-store-")
                .tempdir_in(&parent)
                .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
            let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).map_err(|e| e.to_string())?;
            Ok((Arc::new(store), Scratch::Dir(dir)))
        }
        Backend::Postgres => {
            let url =
                args.database_url.as_deref().ok_or("the postgres backend needs --database-url or DATABASE_URL")?;
            let schema = format!("bench_{}", new_id().simple());
            let opts = PgOptions { schema: Some(schema.clone()), ..PgOptions::default() };
            let store = PgStore::connect(url, opts).map_err(|e| e.to_string())?;
            Ok((Arc::new(store), Scratch::Schema { url: url.to_string(), schema }))
        }
    }
}

struct RunResult {
    committed: u64,
    elapsed: Duration,
}

async fn one_run(
    args: &StorageArgs,
    store: Arc<dyn Store>,
    conversations: usize,
    batch_size: usize,
    hist: &mut hdrhistogram::Histogram<u64>,
) -> Result<RunResult, String> {
    let e = |e: StoreError| e.to_string();
    let mut api_key_hash = [0u8; 32];
    api_key_hash[..16].copy_from_slice(new_id().as_bytes());
    let tenant = store.create_tenant(NewTenant { name: "bench".into(), api_key_hash }).await.map_err(e)?;
    let channel = store
        .create_channel(NewChannel {
            tenant_id: tenant.id,
            name: "bench".into(),
            kind: "websocket".into(),
            secret: "bench".into(),
            config: Json::empty_object(),
        })
        .await
        .map_err(e)?;
    let mut conversation_ids = Vec::with_capacity(conversations);
    for _ in 0..conversations {
        let c = store
            .create_conversation(NewConversation {
                tenant_id: tenant.id,
                channel_id: channel.id,
                metadata: Json::empty_object(),
                external_id: None,
                members_only: false,
            })
            .await
            .map_err(e)?;
        conversation_ids.push(c.id);
    }
    let text: String = "x".repeat(args.text_bytes);
    let per_writer = args.activities.div_ceil(args.writers.max(1));
    let deadline = Instant::now() + Duration::from_secs_f64(args.max_seconds);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers.max(1) {
        let store = Arc::clone(&store);
        // Like the server's shards, each writer owns its own conversations: a
        // conversation has exactly one sequencer, so batches never contend on it.
        let ids: Vec<_> = conversation_ids.iter().skip(w).step_by(args.writers.max(1)).copied().collect();
        if ids.is_empty() {
            return Err(format!("--conversations {conversations} leaves writer {w} without a conversation"));
        }
        let text = text.clone();
        let tenant_id = tenant.id;
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut committed = 0u64;
            let mut next = 0;
            while (committed as usize) < per_writer && Instant::now() < deadline {
                let batch: Vec<NewActivity> = (0..batch_size)
                    .map(|_| {
                        next += 1;
                        NewActivity {
                            id: new_id(),
                            tenant_id,
                            conversation_id: ids[next % ids.len()],
                            kind: "message".into(),
                            text: Some(text.clone()),
                            attachments: None,
                            sender: "bench-user".into(),
                            metadata: Json::empty_object(),
                            idempotency_key: None,
                            created_at: Timestamp::now(),
                            deliver_to: Vec::new(),
                            target_id: None,
                            parent_id: None,
                            author_only: false,
                            member: None,
                            announce: false,
                            traceparent: None,
                        }
                    })
                    .collect();
                let t0 = Instant::now();
                let out = store.write_batch(batch).await.map_err(|e| e.to_string())?;
                let _ = hist.record(t0.elapsed().as_micros() as u64);
                for item in out {
                    item.map_err(|e| format!("an item failed: {e}"))?;
                    committed += 1;
                }
            }
            Ok::<_, String>((committed, hist))
        }));
    }
    let mut committed = 0;
    for t in tasks {
        let (n, h) = t.await.map_err(|e| format!("writer panicked: {e}"))??;
        committed += n;
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed();
    let stored = store.stats().await.map_err(e)?.activities;
    if stored != committed as i64 {
        return Err(format!("{committed} activities acknowledged but {stored} stored"));
    }
    Ok(RunResult { committed, elapsed })
}
