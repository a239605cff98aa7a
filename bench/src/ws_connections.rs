//! Scenario `ws-connections`: how many idle Phoenix sockets the server holds,
//! and what each costs it in memory. Opens `--connections` WebSockets
//! (connected and authenticated; with `--join`, each also joined to one shared
//! conversation — which makes every join a presence broadcast to all joined
//! sockets, quadratic in their number, so keep it for small counts), spreading client source addresses over
//! 127.0.0.1–127.0.0.254 so the 64k-ports-per-address limit does not bind,
//! holds them, and reads the server's resident memory (`/proc/<pid>/status`)
//! before and after. Raise the file limit first (`ulimit -n`), as
//! `scripts/bench-server` does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::process::rss_kib;
use crate::report::emit;
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct WsConnectionsArgs {
    #[command(flatten)]
    target: Target,
    /// The server's process id, to read its memory.
    #[arg(long, env = "CONVERGER_SERVER_PID")]
    server_pid: u32,
    /// Sockets to open and hold.
    #[arg(long, default_value_t = 100_000)]
    connections: usize,
    /// Sockets opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Also join every socket to the one conversation (presence makes this quadratic).
    #[arg(long)]
    join: bool,
    /// Seconds to hold them before measuring.
    #[arg(long, default_value_t = 3.0)]
    hold_seconds: f64,
}

#[derive(Serialize)]
struct Report {
    held: usize,
    open_seconds: f64,
    server_rss_before_kib: u64,
    server_rss_after_kib: u64,
    server_kib_per_socket: f64,
}

pub fn run(args: WsConnectionsArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("ws-connections")?;
    rt.block_on(async {
        let mut tenant = args.target.tenant("ws-connections").await?;
        let conversation = tenant.conversation().await?;
        let token = tenant.token(&conversation, "idle").await?;
        let topic = format!("conversation:{conversation}");
        let before = rss_kib(args.server_pid)?;
        let started = Instant::now();
        let mut held: Vec<TcpStream> = Vec::with_capacity(args.connections);
        let mut next = 0usize;
        while next < args.connections {
            let wave = args.concurrency.min(args.connections - next);
            let opens: Vec<_> = (next..next + wave)
                .map(|i| {
                    let (addr, token, topic) = (args.target.addr(), token.clone(), args.join.then(|| topic.clone()));
                    tokio::spawn(async move { open(addr, i, &token, topic.as_deref()).await })
                })
                .collect();
            for o in opens {
                held.push(o.await.map_err(|e| e.to_string())??);
            }
            next += wave;
            if next % 10_000 < wave {
                eprintln!("ws-connections: {next} open");
            }
        }
        let open_seconds = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(args.hold_seconds)).await;
        let after = rss_kib(args.server_pid)?;
        let report = Report {
            held: held.len(),
            open_seconds,
            server_rss_before_kib: before,
            server_rss_after_kib: after,
            server_kib_per_socket: after.saturating_sub(before) as f64 / held.len().max(1) as f64,
        };
        eprintln!(
            "ws-connections: {} sockets held, server RSS {} → {} KiB ({:.1} KiB per socket)",
            report.held, before, after, report.server_kib_per_socket
        );
        emit("ws-connections", &args, report)?;
        Ok(())
    })
}

/// One socket from source address 127.0.0.(1 + i mod 254), upgraded and joined.
async fn open(addr: SocketAddr, i: usize, token: &str, join: Option<&str>) -> Result<TcpStream, String> {
    let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 254) as u8)), 0);
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(source).map_err(|e| format!("bind {source}: {e}"))?;
    let mut stream = socket.connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET /socket/websocket?vsn=2.0.0&token={token} HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\n\
         connection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    if !head[..n].starts_with(b"HTTP/1.1 101") {
        return Err(format!("upgrade refused: {}", String::from_utf8_lossy(&head[..n.min(80)])));
    }
    if let Some(topic) = join {
        let join = json!(["1", "1", topic, "phx_join", {}]).to_string();
        let mut frame = vec![0x81, 0x80 | 126, (join.len() >> 8) as u8, join.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(join.as_bytes()); // mask 0,0,0,0: the payload is unchanged
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    }
    Ok(stream)
}
