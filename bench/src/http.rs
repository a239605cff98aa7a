//! A minimal async HTTP/1.1 client for load scenarios: one keep-alive
//! connection, one request in flight, JSON bodies. Enough to drive the REST
//! API hard without a client library's overhead in the measurement.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::{self, Conn};

pub struct Client {
    stream: Conn,
    buf: Vec<u8>,
    request: Vec<u8>,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("status {}: body is not JSON: {e}", self.status))
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        Client::connect_with(addr, None).await
    }

    /// Over TLS when `tls` is given.
    pub async fn connect_with(addr: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Client, String> {
        let stream = tls::connect(addr, tls).await?;
        Ok(Client { stream, buf: Vec::with_capacity(8192), request: Vec::with_capacity(1024) })
    }

    /// Sends one request with a JSON body (or none) and reads the reply.
    pub async fn call(&mut self, method: &str, path: &str, bearer: &str, body: Option<&[u8]>) -> Result<Reply, String> {
        use std::io::Write;
        self.request.clear();
        let _ = write!(self.request, "{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {bearer}\r\n");
        if let Some(body) = body {
            let _ = write!(self.request, "content-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
            self.request.extend_from_slice(body);
        } else {
            self.request.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&self.request).await.map_err(|e| format!("write: {e}"))?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Reply, String> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = parsed.parse(&self.buf).map_err(|e| e.to_string())? {
                let length = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if self.buf.len() >= head + length {
                    let status = parsed.code.unwrap_or(0);
                    let body = self.buf[head..head + length].to_vec();
                    self.buf.drain(..head + length);
                    return Ok(Reply { status, body });
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
