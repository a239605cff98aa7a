//! `converger-bench`: reproducible load scenarios for Converger, one subcommand
//! each. Every scenario is bounded in count and time, talks only to loopback or
//! local storage, and prints a JSON result (machine, commit, parameters,
//! throughput, latency percentiles) on stdout with progress on stderr.

mod bin_client;
mod bin_fanout;
mod bin_ingest;
mod bin_latency;
mod cpu;
mod delivery;
mod floor;
mod hook;
mod http;
mod mesh;
mod mix;
mod pacer;
mod placement;
mod plot;
mod process;
mod read_state;
mod report;
mod rest_ingest;
mod resume_storm;
mod soak;
mod storage;
mod target;
mod tls;
mod ws;
mod ws_connections;
mod ws_fanout;
mod ws_latency;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "converger-bench", version, about = "Load scenarios and benchmarks for Converger")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Draw the run as SVG: the latency by percentile (log axes) and, for
    /// throughput scenarios, the throughput over time, one line per run.
    #[arg(long, global = true, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Batched activity writes straight into a storage backend (no server).
    Storage(storage::StorageArgs),
    /// The cross-shard mesh: round-trip latency and messages/s between two shards.
    Mesh(mesh::MeshArgs),
    /// Acknowledged REST activity creates/s from many keep-alive connections
    /// (`--mix chat`: with reactions and edits).
    RestIngest(rest_ingest::RestIngestArgs),
    /// Publishers → one conversation → many Phoenix-socket subscribers: deliveries/s
    /// and publish → receive latency (`--mix chat`: with reactions and edits).
    WsFanout(ws_fanout::WsFanoutArgs),
    /// Durable publish → receive latency on Phoenix sockets at a paced rate.
    WsLatency(ws_latency::WsLatencyArgs),
    /// Idle Phoenix sockets held, and the server's memory per socket.
    WsConnections(ws_connections::WsConnectionsArgs),
    /// Many clients rejoin with their last seq at once: time until all are complete.
    ResumeStorm(resume_storm::ResumeStormArgs),
    /// Durable acknowledged activities/s through the binary protocol's batched publish.
    BinIngest(bin_ingest::BinIngestArgs),
    /// One binary publisher → one conversation → many binary subscribers: deliveries/s.
    BinFanout(bin_fanout::BinFanoutArgs),
    /// One binary connection, one publish in flight: ack latency.
    BinLatency(bin_latency::BinLatencyArgs),
    /// Reading a 10,000-activity conversation in 1,000-activity pages: plain
    /// messages against edits, deletes, reactions and replies in their current state.
    ReadState(read_state::ReadStateArgs),
    /// Activities → webhook deliveries to a local receiver: deliveries/s and publish → delivered latency.
    Delivery(delivery::DeliveryArgs),
    /// A mixed load at a moderate rate for a bounded time, sampling the server's
    /// memory, descriptors, queues and latency; fails when they grow without bound.
    Soak(soak::SoakArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Some(path) = cli.plot {
        plot::set_output(path);
    }
    let result = match cli.scenario {
        Scenario::Storage(args) => storage::run(args),
        Scenario::Mesh(args) => mesh::run(args),
        Scenario::RestIngest(args) => rest_ingest::run(args),
        Scenario::WsFanout(args) => ws_fanout::run(args),
        Scenario::WsLatency(args) => ws_latency::run(args),
        Scenario::WsConnections(args) => ws_connections::run(args),
        Scenario::ResumeStorm(args) => resume_storm::run(args),
        Scenario::BinIngest(args) => bin_ingest::run(args),
        Scenario::BinFanout(args) => bin_fanout::run(args),
        Scenario::BinLatency(args) => bin_latency::run(args),
        Scenario::Delivery(args) => delivery::run(args),
        Scenario::ReadState(args) => read_state::run(args),
        Scenario::Soak(args) => soak::run(args),
    };
    if let Err(e) = result {
        eprintln!("converger-bench: {e}");
        std::process::exit(1);
    }
}
