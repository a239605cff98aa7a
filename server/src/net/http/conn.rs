//! One HTTP/1.1 connection: read, parse every complete request in the buffer,
//! answer them in order into one output buffer, write it with one call, repeat.
//! That is keep-alive and pipelining with one write per batch of requests.
//!
//! Shutdown: a connection waiting for its next request (nothing buffered) is
//! closed at once; one in the middle of a request finishes it, answers with
//! `connection: close`, then closes. The shard bounds the whole with the grace
//! period.

use std::net::SocketAddr;

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::parse::{parse, Limits};
use super::request::Method;
use super::response::Response;
use super::Service;
use crate::shard::shutdown::Shutdown;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection ended, for the debug log.
#[derive(Debug)]
pub enum Closed {
    /// The client closed, or asked to.
    Client,
    /// A request could not be parsed; it was answered with an error first.
    BadRequest,
    Shutdown,
    Io(std::io::Error),
}

/// Serves `stream` until the client leaves, an error, or shutdown.
pub async fn serve<S: Service>(
    mut stream: TcpStream,
    peer: SocketAddr,
    service: &S,
    limits: Limits,
    shutdown: &Shutdown,
) -> Closed {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let mut close = None;
        loop {
            match parse(&mut buf, &limits) {
                Ok(Some(mut request)) => {
                    request.peer = Some(peer);
                    let head_only = request.method == Method::Head;
                    let client_close = request.wants_close();
                    let response = service.call(request).await;
                    if client_close {
                        close = Some(Closed::Client);
                    } else if shutdown.is_triggered() {
                        close = Some(Closed::Shutdown);
                    }
                    response.encode(head_only, close.is_some(), &mut out);
                    if close.is_some() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    Response::error(e.status(), e.code(), &e.to_string()).encode(false, true, &mut out);
                    close = Some(Closed::BadRequest);
                    break;
                }
            }
        }
        if !out.is_empty() {
            let (res, written) = stream.write_all(out).await;
            out = written;
            out.clear();
            if let Err(e) = res {
                return Closed::Io(e);
            }
        }
        if let Some(reason) = close {
            return reason;
        }
        buf.reserve(READ_CHUNK);
        let (len, capacity) = (buf.len(), buf.capacity());
        let read = stream.read(buf.slice_mut(len..capacity));
        let (res, slice) = if len == 0 {
            // Idle between requests: this is where shutdown closes us.
            monoio::select! {
                r = read => r,
                _ = shutdown.wait() => return Closed::Shutdown,
            }
        } else {
            read.await
        };
        buf = slice.into_inner();
        match res {
            Ok(0) => return Closed::Client,
            Ok(_) => {}
            Err(e) => return Closed::Io(e),
        }
    }
}
