//! Listening sockets, bound before any shard starts: one socket per shard per
//! protocol, all on the same port with `SO_REUSEPORT`, so the kernel spreads
//! incoming connections over the shards and no accept is ever shared.
//!
//! The first socket is bound to the requested address; the others to the
//! address it actually got, so port 0 works. `SO_REUSEPORT` would also let us
//! silently share a port with another process of the same user (say, a second
//! `converger`), so a requested fixed port is first probed with a plain socket
//! that fails with "address in use" if anyone listens there.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue per socket.
const BACKLOG: i32 = 1024;

/// The listeners a server runs on: `http[i]` and `binary[i]` go to shard `i`;
/// with `tls`, both speak TLS.
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub binary: Vec<TcpListener>,
    pub tls: Option<super::tls::TlsSettings>,
}

impl Listeners {
    /// Binds `shards` HTTP and binary sockets each.
    pub fn bind(http: SocketAddr, binary: SocketAddr, shards: usize) -> io::Result<Listeners> {
        Ok(Listeners { http: bind_reuseport(http, shards)?, binary: bind_reuseport(binary, shards)?, tls: None })
    }

    /// The actual HTTP address (port 0 resolved).
    pub fn http_addr(&self) -> io::Result<SocketAddr> {
        first_addr(&self.http)
    }

    /// The actual binary-protocol address.
    pub fn binary_addr(&self) -> io::Result<SocketAddr> {
        first_addr(&self.binary)
    }
}

fn first_addr(list: &[TcpListener]) -> io::Result<SocketAddr> {
    list.first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no listener"))?.local_addr()
}

/// `count` non-blocking listeners sharing `addr` through `SO_REUSEPORT`.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        probe_free(addr)?;
    }
    let first = bind_one(addr)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_one(actual)?);
    }
    Ok(all)
}

/// Fails with `AddrInUse` when something already listens on `addr`.
fn probe_free(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR so that connections of a previous run in TIME_WAIT do not
    // count as "in use"; only a live listener makes this bind fail.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // `[::]` also accepts IPv4 (dual stack), as users of `0.0.0.0` expect.
        socket.set_only_v6(false)?;
    }
    // Accepted sockets inherit TCP_NODELAY: small responses go out at once.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gives_every_socket_the_same_actual_port() {
        let l = bind_reuseport("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        let ports: Vec<u16> = l.iter().map(|s| s.local_addr().expect("addr").port()).collect();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != 0 && ports.iter().all(|p| *p == ports[0]), "{ports:?}");
    }

    #[test]
    fn a_taken_port_is_refused_even_when_its_holder_uses_reuseport() {
        let held = bind_reuseport("127.0.0.1:0".parse().expect("addr"), 1).expect("bind");
        let addr = held[0].local_addr().expect("addr");
        let err = bind_reuseport(addr, 2).expect_err("port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
