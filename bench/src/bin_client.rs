//! A minimal async client of the binary protocol for load scenarios: connect
//! and authenticate, then a writer half that encodes frames and a reader half
//! that either decodes frames or walks them by their headers alone (a
//! subscriber that only counts deliveries needs no decoding).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use converger_protocol::{
    decode_frame, Auth, Draft, Frame, Header, Hello, Kind, Version, Welcome, HEADER_SIZE, MAX_FRAME_SIZE,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version the scenarios speak (and offer in Hello): the
/// version-1 layouts they were measured with.
const VERSION: Version = Version::V1;

pub struct BinReader {
    half: Box<dyn AsyncRead + Unpin + Send>,
    buf: BytesMut,
}

pub struct BinWriter {
    half: Box<dyn AsyncWrite + Unpin + Send>,
    out: BytesMut,
}

/// Connects to the binary listener and authenticates with a tenant API key.
pub async fn connect(addr: SocketAddr, api_key: &str) -> Result<(BinReader, BinWriter, Welcome), String> {
    connect_with(addr, api_key, None).await
}

/// [`connect`], over TLS when `tls` is given.
pub async fn connect_with(
    addr: SocketAddr,
    api_key: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(BinReader, BinWriter, Welcome), String> {
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }
    let (read, write) = tokio::io::split(crate::tls::connect(addr, tls).await?);
    let (mut reader, mut writer) = (
        BinReader { half: Box::new(read), buf: BytesMut::with_capacity(64 * 1024) },
        BinWriter { half: Box::new(write), out: BytesMut::new() },
    );
    let hello = Hello {
        min_version: VERSION.get(),
        max_version: VERSION.get(),
        auth: Auth::ApiKey(api_key.into()),
        client: "bench".into(),
    };
    writer.send(&hello.into()).await?;
    match reader.frame().await? {
        Frame::Welcome(w) => Ok((reader, writer, w)),
        other => Err(format!("handshake refused: {other:?}")),
    }
}

/// A message draft from `sender` with `text`, for `conversation`.
pub fn draft(conversation: [u8; 16], sender: &str, text: &str) -> Draft {
    Draft {
        conversation_id: conversation,
        kind: "message".into(),
        sender: sender.into(),
        text: Some(text.into()),
        attachments: None,
        metadata: None,
        idempotency_key: None,
        target_id: None,
        parent_id: None,
        traceparent: None,
    }
}

impl BinWriter {
    pub async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        self.out.clear();
        frame.encode(VERSION, &mut self.out).map_err(|e| e.to_string())?;
        self.half.write_all(&self.out).await.map_err(|e| format!("write: {e}"))
    }

    /// Ends the client's side (the server then closes the connection). Dropping
    /// the writer does not: the reader still holds the stream.
    pub async fn close(mut self) {
        let _ = self.half.shutdown().await;
    }
}

impl BinReader {
    async fn fill(&mut self) -> Result<bool, String> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = self.half.read_buf(&mut self.buf).await.map_err(|e| format!("read: {e}"))?;
        Ok(n > 0)
    }

    /// The next frame, decoded.
    pub async fn frame(&mut self) -> Result<Frame, String> {
        loop {
            if let Some((frame, used)) = decode_frame(&self.buf, VERSION).map_err(|e| e.to_string())? {
                self.buf.advance(used);
                return Ok(frame);
            }
            if !self.fill().await? {
                return Err("closed by the server".into());
            }
        }
    }

    /// Reads once and calls `f(kind, body)` for every whole frame buffered,
    /// without decoding bodies. False once the server closed.
    pub async fn walk(&mut self, mut f: impl FnMut(Kind, &[u8])) -> Result<bool, String> {
        let open = self.fill().await?;
        while let Some(header) = Header::peek(&self.buf, MAX_FRAME_SIZE, VERSION).map_err(|e| e.to_string())? {
            let size = header.size;
            if self.buf.len() < size {
                break;
            }
            f(header.kind, &self.buf[HEADER_SIZE..size]);
            self.buf.advance(size);
        }
        Ok(open)
    }
}
