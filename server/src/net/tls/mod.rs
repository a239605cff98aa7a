//! TLS on the shards' listeners (rustls with the `ring` provider; TLS 1.2
//! and 1.3 only). [`Certs`] holds the certificate and reloads it;
//! [`TlsAcceptor`] (one per shard and listener) looks at a new connection's
//! first byte and either runs the handshake or, for a client that speaks
//! plain text to the TLS port, answers it: plain HTTP gets a 400
//! `tls_required` or a 308 to `https://` ([`plain`]), the binary port gets
//! the bytes its listener gave (an Error frame `tls_required`) and is closed.
//! [`stream`] is the TLS connection itself; [`Hsts`] adds
//! `Strict-Transport-Security` to every answer sent over TLS.
//!
//! Knows paths and bytes, not `Config`: start-up reads the options and hands
//! over [`TlsSettings`].

mod certs;
mod plain;
mod stream;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use rustls::ServerConfig;

pub use certs::{CertFile, CertPaths, Certs, TlsError};
pub use stream::{TlsRead, TlsStream, TlsWrite};

use super::http::{Request, Response, Service};
use super::stream::Stream;

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
const HANDSHAKE_RECORD: u8 = 0x16;
/// A client that has not finished its handshake by then is dropped, so a
/// silent connection cannot hold a task and its buffers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HSTS-aware client keeps to https (one year, as commonly advised).
pub const HSTS: &str = "max-age=31536000";

/// TLS for a server: the certificate and what plain HTTP on the TLS port gets.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub certs: Certs,
    /// Plain HTTP is redirected (308 to https://Host/target) instead of refused (400).
    pub redirect: bool,
}

/// What a client that does not start with a TLS handshake gets.
#[derive(Clone, Debug)]
enum OnPlain {
    /// An HTTP answer: 400 `tls_required`, or with `redirect` a 308 to https.
    Http { redirect: bool },
    /// These bytes (possibly none), then the connection closes.
    Reply(Bytes),
}

/// Accepts TLS connections on one shard's listener.
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    on_plain: OnPlain,
}

impl TlsAcceptor {
    /// For the HTTP/WebSocket listener: ALPN `http/1.1`.
    pub fn http(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(&settings.certs, vec![b"http/1.1".to_vec()])?;
        Ok(TlsAcceptor { config, on_plain: OnPlain::Http { redirect: settings.redirect } })
    }

    /// For the binary listener: no ALPN; a plain client is sent `reply`
    /// (e.g. an Error frame it can read) and closed.
    pub fn binary(settings: &TlsSettings, reply: Bytes) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor { config: server_config(&settings.certs, Vec::new())?, on_plain: OnPlain::Reply(reply) })
    }

    /// The stream a new connection speaks: plain when `acceptor` is `None`,
    /// else TLS once the handshake is done. `None` when the connection is
    /// over already (a plain client answered, a failed or slow handshake:
    /// logged at debug with `peer`).
    pub async fn wrap(acceptor: Option<&TlsAcceptor>, tcp: TcpStream, peer: std::net::SocketAddr) -> Option<Stream> {
        let Some(acceptor) = acceptor else { return Some(Stream::Plain(tcp)) };
        match monoio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(Some(tls))) => Some(Stream::Tls(tls)),
            Ok(Ok(None)) => {
                tracing::debug!(%peer, "plain-text client on the TLS port answered and closed");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }

    async fn accept(&self, mut tcp: TcpStream) -> std::io::Result<Option<TlsStream>> {
        use monoio::io::AsyncReadRent;
        // The first read decides; its bytes go on to rustls or to the plain answer.
        let (res, first) = tcp.read(Vec::with_capacity(4096)).await;
        if res? == 0 {
            return Ok(None);
        }
        if first.first() == Some(&HANDSHAKE_RECORD) {
            let session = rustls::ServerConnection::new(self.config.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            return TlsStream::handshake(tcp, session, first).await.map(Some);
        }
        match &self.on_plain {
            OnPlain::Http { redirect } => plain::answer(tcp, first, *redirect).await,
            OnPlain::Reply(bytes) => {
                if !bytes.is_empty() {
                    let _ = tcp.write_all(bytes.clone()).await;
                }
                let _ = monoio::io::AsyncWriteRent::shutdown(&mut tcp).await;
            }
        }
        Ok(None)
    }
}

/// A shard's own rustls configuration (its own session cache), sharing the
/// certificate with every other shard.
fn server_config(certs: &Certs, alpn: Vec<Vec<u8>>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(certs.provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs.resolver());
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// The application, with `Strict-Transport-Security` on every answer when
/// the connection is TLS (one type for both, so the HTTP connection code is
/// compiled once).
pub struct Hsts<'a, S> {
    pub inner: &'a S,
    pub on: bool,
}

impl<S: Service> Service for Hsts<'_, S> {
    async fn call(&self, request: Request) -> Response {
        let response = self.inner.call(request).await;
        if self.on {
            response.with_header("strict-transport-security", HSTS)
        } else {
            response
        }
    }
}
