//! A minimal WebSocket client for load scenarios: the upgrade handshake,
//! masked client text frames, and a reader that walks server frames without
//! decoding JSON (a subscriber only needs to count and classify them).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl WsClient {
    /// Connects and upgrades `path` (with its query) on `addr`.
    pub async fn connect(addr: SocketAddr, path: &str) -> Result<WsClient, String> {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".into());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                if !head.starts_with("HTTP/1.1 101") {
                    return Err(format!("upgrade refused: {}", head.lines().next().unwrap_or("")));
                }
                buf.drain(..end + 4);
                return Ok(WsClient { stream, buf, chunk: vec![0u8; 16 * 1024] });
            }
        }
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        let payload = text.as_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x81);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.map_err(|e| e.to_string())
    }

    /// Reads whatever arrived and calls `on_text` with each complete text
    /// frame's payload; returns false when the server closed.
    pub async fn read_frames(&mut self, mut on_text: impl FnMut(&[u8])) -> Result<bool, String> {
        let n = self.stream.read(&mut self.chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(false);
        }
        self.buf.extend_from_slice(&self.chunk[..n]);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if rest.len() < 2 {
                break;
            }
            let opcode = rest[0] & 0x0f;
            let (len, header) = match rest[1] & 0x7f {
                126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                127 if rest.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rest[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if rest.len() < header + len {
                break;
            }
            match opcode {
                0x1 => on_text(&rest[header..header + len]),
                0x8 => return Ok(false),
                _ => {}
            }
            at += header + len;
        }
        self.buf.drain(..at);
        Ok(true)
    }
}
