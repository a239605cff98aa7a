//! A server-side TLS connection over monoio's owned-buffer I/O, with rustls's
//! `ServerConnection` driven by hand: ciphertext is read into a buffer this
//! side owns (io_uring may hold it while the read is in flight), handed to
//! `read_tls`, decrypted by `process_new_packets`, and the plaintext copied
//! out; writes encrypt into rustls, `write_tls` into a buffer we own, and
//! that buffer goes to the socket.
//!
//! The TCP stream is split from the start (monoio's halves of a `TcpStream`
//! may be used by two tasks) and the rustls state sits between the halves in
//! an `Rc<RefCell<_>>` that is never borrowed across an await. So the
//! WebSocket and binary transports, which read on one task and write on
//! another, split a TLS connection exactly as they split a plain one, with no
//! aliasing of the session: that is why this is not `monoio-rustls`, whose
//! split halves share the whole stream through an `UnsafeCell` while both
//! tasks are suspended in it (docs/architecture.md, "TLS").
//!
//! Records rustls produces while reading (an alert, a TLS 1.3 key update
//! answer) are written by the next write; a connection that only reads has
//! nothing the peer is waiting for.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ServerConnection;

/// Ciphertext asked of the kernel per read: the caller's own read size,
/// within these bounds (an idle socket asks for little and holds little).
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;

type Session = Rc<RefCell<ServerConnection>>;

/// One TLS connection, handshake done. [`TlsStream::into_split`] gives the
/// two halves for a reader task and a writer task.
pub struct TlsStream {
    read: TlsRead,
    write: TlsWrite,
}

/// The receiving half: ciphertext from the socket, plaintext to the caller.
pub struct TlsRead {
    io: OwnedReadHalf<TcpStream>,
    session: Session,
    /// Ciphertext read from the socket; `buf[pos..]` is not yet given to rustls.
    buf: Vec<u8>,
    pos: usize,
    /// The socket reported end of stream.
    eof: bool,
}

/// The sending half: plaintext from the caller, ciphertext to the socket.
pub struct TlsWrite {
    io: OwnedWriteHalf<TcpStream>,
    session: Session,
    /// Ciphertext taken from rustls, on its way to the socket.
    buf: Vec<u8>,
}

impl TlsStream {
    /// Runs the handshake on `tcp`; `first` holds bytes already read from it
    /// (the start of the client hello).
    pub(super) async fn handshake(tcp: TcpStream, session: ServerConnection, first: Vec<u8>) -> io::Result<TlsStream> {
        let session = Rc::new(RefCell::new(session));
        let (io_read, io_write) = tcp.into_split();
        let mut stream = TlsStream {
            read: TlsRead { io: io_read, session: session.clone(), buf: first, pos: 0, eof: false },
            write: TlsWrite { io: io_write, session, buf: Vec::new() },
        };
        loop {
            stream.write.flush_tls().await?;
            if !stream.read.session.borrow().is_handshaking() {
                return Ok(stream);
            }
            if let Err(e) = stream.read.fill(MIN_READ).await {
                // Tell the client why (the alert rustls queued), if it still listens.
                let _ = stream.write.flush_tls().await;
                return Err(e);
            }
            if stream.read.eof {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the client left during the TLS handshake"));
            }
        }
    }

    /// The protocol the client and server agreed on through ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.read.session.borrow().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The negotiated TLS version, e.g. for a log line.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.read.session.borrow().protocol_version()
    }

    pub fn into_split(self) -> (TlsRead, TlsWrite) {
        (self.read, self.write)
    }
}

impl TlsRead {
    /// Gives rustls ciphertext: what is buffered, else one read from the socket.
    async fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.pos >= self.buf.len() {
            let want = want.clamp(MIN_READ, MAX_READ);
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            if buf.capacity() < want || buf.capacity() > 2 * want {
                buf = Vec::with_capacity(want);
            }
            self.pos = 0;
            let (res, buf) = self.io.read(buf).await;
            self.buf = buf;
            if res? == 0 {
                self.eof = true;
                // End of stream: rustls learns it from a read of nothing.
                self.session.borrow_mut().read_tls(&mut io::empty())?;
                return Ok(());
            }
        }
        let mut session = self.session.borrow_mut();
        while self.pos < self.buf.len() {
            let mut pending = &self.buf[self.pos..];
            match session.read_tls(&mut pending) {
                // After close_notify nothing more is read; the rest is dropped.
                Ok(0) => self.pos = self.buf.len(),
                Ok(n) => self.pos += n,
                // The only `Other` is "received plaintext buffer full": the
                // caller drains it first, the rest waits here.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(e),
            }
            session.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(())
    }

    /// Copies decrypted bytes into `dst`; `None` when rustls has none yet.
    /// End of stream, with or without the peer's close_notify, is `Some(0)`:
    /// our protocols frame their own messages, so a cut stream cannot pass a
    /// truncated message off as whole.
    fn take_plaintext(&mut self, dst: &mut impl IoBufMut) -> Option<io::Result<usize>> {
        let mut session = self.session.borrow_mut();
        let mut reader = session.reader();
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Some(Ok(0)),
            Err(e) => return Some(Err(e)),
        };
        let n = chunk.len().min(dst.bytes_total());
        // SAFETY: `write_ptr` is valid for `bytes_total` bytes (the IoBufMut
        // contract) and `n` is at most that; the source is rustls's buffer,
        // which cannot overlap a buffer the caller owns.
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.write_ptr(), n);
            dst.set_init(n);
        }
        reader.consume(n);
        Some(Ok(n))
    }
}

impl AsyncReadRent for TlsRead {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let want = buf.bytes_total();
        loop {
            if let Some(res) = self.take_plaintext(&mut buf) {
                return (res, buf);
            }
            if self.eof && self.pos >= self.buf.len() {
                // rustls answered above once it knew; this only guards the loop.
                return (Ok(0), buf);
            }
            if let Err(e) = self.fill(want).await {
                return (Err(e), buf);
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer points into the first iovec of `buf`, which
        // this call owns until it returns; it is used only inside the call.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes of the first iovec were just written.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl TlsWrite {
    /// Writes everything rustls has to send.
    async fn flush_tls(&mut self) -> io::Result<()> {
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            {
                let mut session = self.session.borrow_mut();
                while session.wants_write() {
                    session.write_tls(&mut buf)?;
                }
            }
            if buf.is_empty() {
                self.buf = buf;
                return Ok(());
            }
            let (res, buf) = self.io.write_all(buf).await;
            self.buf = buf;
            res?;
        }
    }

    fn plaintext<T: IoBuf>(buf: &T) -> &[u8] {
        // SAFETY: `read_ptr` is valid for `bytes_init` initialised bytes (the
        // IoBuf contract) for as long as `buf` is borrowed.
        unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
    }
}

impl AsyncWriteRent for TlsWrite {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // rustls takes plaintext up to its buffer limit (64 KiB), encrypted at
        // once; `write_all` comes back for the rest.
        let taken = self.session.borrow_mut().writer().write(Self::plaintext(&buf));
        let n = match taken {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.flush_tls().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer points into the first iovec of `buf`, which
        // this call owns until it returns.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    /// Sends close_notify, then half-closes the TCP stream.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.session.borrow_mut().send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}

impl AsyncReadRent for TlsStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read.readv(buf).await
    }
}

impl AsyncWriteRent for TlsStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.write.write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.write.writev(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.write.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.write.shutdown().await
    }
}
