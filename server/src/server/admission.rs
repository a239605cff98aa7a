//! A shard's door: before a new connection gets a task, it must fit the
//! node's and its address's connection caps and its address's
//! new-connections-per-second budget (this shard's share of it). A refused
//! connection is told why in its own protocol (over TLS on a TLS port, the
//! handshake inside the same time bound), then closed, on a task of its own so
//! a slow peer never holds the accept loop.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use converger_protocol::{ErrorCode, ErrorFrame};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::Edge;
use crate::metrics::ShardMetrics;
use crate::net::http::Response;
use crate::net::tls::TlsAcceptor;
use crate::rt::admission::{Admitted, ConnCaps, Full};
use crate::rt::rate::{retry_after_secs, split, Buckets};

/// Addresses whose new-connection budget a shard remembers at most.
const MAX_ADDRESSES: usize = 100_000;
/// How long a refusal may take to write before the socket is dropped.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Why a connection was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Full(Full),
    TooFast(Duration),
}

impl Refusal {
    fn code(self) -> ErrorCode {
        match self {
            Refusal::Full(_) => ErrorCode::TooManyConnections,
            Refusal::TooFast(_) => ErrorCode::RateLimited,
        }
    }

    fn message(self) -> String {
        match self {
            Refusal::Full(Full::Node) => "this server holds as many connections as it allows; retry later".into(),
            Refusal::Full(Full::Address) => "this address holds as many connections as allowed; retry later".into(),
            Refusal::TooFast(wait) => {
                format!("too many new connections from this address; retry in {} ms", wait.as_millis().max(1))
            }
        }
    }

    fn retry_after(self) -> u64 {
        match self {
            Refusal::Full(_) => 1,
            Refusal::TooFast(wait) => retry_after_secs(wait),
        }
    }

    fn limit(self) -> &'static str {
        match self {
            Refusal::Full(Full::Node) => "connections_per_node",
            Refusal::Full(Full::Address) => "connections_per_ip",
            Refusal::TooFast(_) => "connections_per_second_per_ip",
        }
    }
}

/// One shard's door, for its HTTP and binary listeners.
pub struct Gate {
    caps: Arc<ConnCaps>,
    per_second: f64,
    new_connections: RefCell<Buckets<IpAddr>>,
    metrics: Arc<ShardMetrics>,
}

impl Gate {
    pub fn new(caps: Arc<ConnCaps>, edge: &Edge, shards: usize, metrics: Arc<ShardMetrics>) -> Gate {
        Gate {
            caps,
            per_second: split(edge.rates.ip_connections, shards),
            new_connections: RefCell::new(Buckets::new(MAX_ADDRESSES)),
            metrics,
        }
    }

    /// Lets a connection from `ip` in (it holds its place until dropped), or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let verdict = self
            .new_connections
            .borrow_mut()
            .take(&ip, self.per_second, Instant::now())
            .map_err(Refusal::TooFast)
            .and_then(|()| self.caps.admit(ip).map_err(Refusal::Full));
        if let Err(refusal) = verdict {
            self.metrics.rate_limited(refusal.limit());
        }
        verdict
    }
}

/// Answers a refused HTTP connection (503 or 429, JSON, `connection: close`).
pub async fn refuse_http(stream: TcpStream, peer: SocketAddr, tls: Option<Rc<TlsAcceptor>>, refusal: Refusal) {
    let status = match refusal {
        Refusal::Full(_) => 503,
        Refusal::TooFast(_) => 429,
    };
    let mut out = Vec::new();
    Response::error(status, refusal.code().name(), &refusal.message())
        .with_header("retry-after", refusal.retry_after().to_string())
        .encode(false, true, &mut out);
    write_and_close(stream, peer, tls, out.into()).await;
}

/// Answers a refused binary connection (an Error frame with the close flag).
pub async fn refuse_binary(stream: TcpStream, peer: SocketAddr, tls: Option<Rc<TlsAcceptor>>, refusal: Refusal) {
    let frame = crate::net::binary::encode_closing(
        ErrorFrame::new(0, refusal.code(), refusal.message()),
        converger_protocol::Version::V1,
    );
    write_and_close(stream, peer, tls, frame).await;
}

async fn write_and_close(stream: TcpStream, peer: SocketAddr, tls: Option<Rc<TlsAcceptor>>, bytes: Bytes) {
    let answer = async {
        // On a TLS port the client reads the refusal only over TLS.
        let Some(mut stream) = TlsAcceptor::wrap(tls.as_deref(), stream, peer).await else { return };
        if stream.write_all(bytes).await.0.is_ok() {
            let _ = stream.shutdown().await;
        }
    };
    let _ = monoio::time::timeout(REFUSAL_WRITE, answer).await;
}
