//! Scenario `ws-connections`: how many idle Phoenix sockets the server holds,
//! and what each costs it in memory. Opens `--connections` WebSockets
//! (connected and authenticated; with `--join`, each is also its own user,
//! joined to one of `--rooms` conversations, and reads and discards what the
//! server sends as an idle browser tab does: one room is the large-room case,
//! with presence for every member; as many rooms as sockets is a joined, idle
//! socket with nobody else around), spreading client source addresses over
//! 127.0.0.1–127.0.0.254 so the 64k-ports-per-address limit does not bind,
//! holds them, and reads the server's resident memory (`/proc/<pid>/status`)
//! before and after. Raise the file limit first (`ulimit -n`), as
//! `scripts/bench-server` does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

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
    /// Also join every socket (its own user) to a conversation, and read what it is sent.
    #[arg(long)]
    join: bool,
    /// With `--join`: conversations the sockets are spread over, round-robin.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
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
    /// With `--join`: messages the sockets received in all (joins' replies,
    /// presence state and diffs).
    messages_received: u64,
}

pub fn run(args: WsConnectionsArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("ws-connections")?;
    if args.join && args.rooms == 0 {
        return Err("--rooms must be at least 1".into());
    }
    rt.block_on(async {
        let mut tenant = args.target.tenant("ws-connections").await?;
        let rooms = if args.join { args.rooms.min(args.connections.max(1)) } else { 1 };
        let mut topics = Vec::with_capacity(rooms);
        for _ in 0..rooms {
            topics.push(tenant.conversation().await?);
        }
        let idle_token = tenant.token(&topics[0], "idle").await?;
        // One user per joined socket: tokens are minted before the clock starts.
        let mut tokens = Vec::new();
        if args.join {
            for i in 0..args.connections {
                tokens.push(tenant.token(&topics[i % rooms], &format!("user-{i}")).await?);
            }
        }
        let received = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let before = rss_kib(args.server_pid)?;
        let started = Instant::now();
        let mut held: Vec<TcpStream> = Vec::with_capacity(args.connections);
        let mut readers = Vec::new();
        let mut next = 0usize;
        while next < args.connections {
            let wave = args.concurrency.min(args.connections - next);
            let opens: Vec<_> = (next..next + wave)
                .map(|i| {
                    let token = tokens.get(i).cloned().unwrap_or_else(|| idle_token.clone());
                    let topic = args.join.then(|| format!("conversation:{}", topics[i % rooms]));
                    let addr = args.target.addr();
                    tokio::spawn(async move { open(addr, i, &token, topic.as_deref()).await })
                })
                .collect();
            for o in opens {
                let stream = o.await.map_err(|e| e.to_string())??;
                match args.join {
                    true => readers.push(tokio::spawn(discard(stream, received.clone(), stopped.clone()))),
                    false => held.push(stream),
                }
            }
            next += wave;
            if next % 10_000 < wave {
                eprintln!("ws-connections: {next} open");
            }
        }
        let open_seconds = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(args.hold_seconds)).await;
        let after = rss_kib(args.server_pid)?;
        let count = held.len() + readers.len();
        let _ = stop.send(true);
        for r in readers {
            r.await.map_err(|e| e.to_string())??;
        }
        let report = Report {
            held: count,
            open_seconds,
            server_rss_before_kib: before,
            server_rss_after_kib: after,
            server_kib_per_socket: after.saturating_sub(before) as f64 / count.max(1) as f64,
            messages_received: received.load(Ordering::Relaxed),
        };
        eprintln!(
            "ws-connections: {} sockets held in {rooms} room(s), server RSS {} → {} KiB ({:.1} KiB per socket); {} messages received",
            report.held, before, after, report.server_kib_per_socket, report.messages_received
        );
        emit("ws-connections", &args, report)?;
        Ok(())
    })
}

/// Reads and discards what a joined socket is sent, counting the messages
/// (unfragmented frames: the server sends no fragments), until stopped.
async fn discard(
    mut stream: TcpStream,
    received: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut buf = vec![0u8; 4096];
    // Bytes still to skip of the frame being read, and a partial header.
    let (mut skip, mut head) = (0usize, Vec::new());
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => r.map_err(|e| e.to_string())?,
            _ = stopped.changed() => return Ok(()),
        };
        if n == 0 {
            return Err("the server closed a joined socket".into());
        }
        let mut at = 0;
        while at < n {
            if skip > 0 {
                let take = skip.min(n - at);
                skip -= take;
                at += take;
                continue;
            }
            head.push(buf[at]);
            at += 1;
            if let Some((len, _)) = frame_len(&head) {
                received.fetch_add(1, Ordering::Relaxed);
                skip = len;
                head.clear();
            }
        }
    }
}

/// The payload length of an unmasked server frame whose header is `head`,
/// once `head` holds all of it.
fn frame_len(head: &[u8]) -> Option<(usize, usize)> {
    match *head {
        [_, n] if n & 0x7f < 126 => Some(((n & 0x7f) as usize, 2)),
        [_, n, a, b] if n & 0x7f == 126 => Some((u16::from_be_bytes([a, b]) as usize, 4)),
        [_, n, ref len @ ..] if n & 0x7f == 127 && len.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(len);
            Some((u64::from_be_bytes(b) as usize, 10))
        }
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::frame_len;

    #[test]
    fn a_frame_length_is_read_once_its_header_is_whole() {
        assert_eq!(frame_len(&[0x81]), None);
        assert_eq!(frame_len(&[0x81, 5]), Some((5, 2)));
        assert_eq!(frame_len(&[0x81, 126]), None);
        assert_eq!(frame_len(&[0x81, 126, 1, 0]), Some((256, 4)));
        assert_eq!(frame_len(&[0x81, 127, 0, 0, 0, 0, 0]), None);
        assert_eq!(frame_len(&[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]), Some((65536, 10)));
    }
}
