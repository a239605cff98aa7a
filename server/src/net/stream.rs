//! A connection's byte stream, plain TCP or TLS, as one type: the HTTP
//! connection, the WebSocket and the binary transport take a [`Stream`] and
//! split it into a [`ReadHalf`] and a [`WriteHalf`] for their reader and
//! writer tasks. An enum rather than a generic parameter or a trait object:
//! the code above is compiled once, and each read or write costs one match
//! (the plain arm calls monoio's TCP stream directly).

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::tls::{TlsRead, TlsStream, TlsWrite};

/// One accepted connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(TlsStream),
}

/// The receiving half of a [`Stream`].
pub enum ReadHalf {
    Plain(OwnedReadHalf<TcpStream>),
    Tls(TlsRead),
}

/// The sending half of a [`Stream`].
pub enum WriteHalf {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(TlsWrite),
}

impl Stream {
    /// Halves for a reader task and a writer task.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(tls) => {
                let (r, w) = tls.into_split();
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl From<TcpStream> for Stream {
    fn from(tcp: TcpStream) -> Stream {
        Stream::Plain(tcp)
    }
}

/// Forwards the read side of the traits to whichever stream it is.
macro_rules! read_rent {
    ($ty:ident) => {
        impl AsyncReadRent for $ty {
            async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.read(buf).await,
                    $ty::Tls(s) => s.read(buf).await,
                }
            }

            async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.readv(buf).await,
                    $ty::Tls(s) => s.readv(buf).await,
                }
            }
        }
    };
}

/// Forwards the write side of the traits to whichever stream it is.
macro_rules! write_rent {
    ($ty:ident) => {
        impl AsyncWriteRent for $ty {
            async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.write(buf).await,
                    $ty::Tls(s) => s.write(buf).await,
                }
            }

            async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.writev(buf).await,
                    $ty::Tls(s) => s.writev(buf).await,
                }
            }

            async fn flush(&mut self) -> io::Result<()> {
                match self {
                    $ty::Plain(s) => s.flush().await,
                    $ty::Tls(s) => s.flush().await,
                }
            }

            async fn shutdown(&mut self) -> io::Result<()> {
                match self {
                    $ty::Plain(s) => s.shutdown().await,
                    $ty::Tls(s) => s.shutdown().await,
                }
            }
        }
    };
}

read_rent!(Stream);
read_rent!(ReadHalf);
write_rent!(Stream);
write_rent!(WriteHalf);
