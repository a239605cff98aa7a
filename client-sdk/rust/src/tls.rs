//! TLS to the binary port (a server started with `--tls-cert`/`--tls-key`):
//! [`Tls`] in [`Options::tls`](crate::Options::tls). The server's
//! certificate is checked against the roots you give (your CA, or the
//! Mozilla set) for the host name of the address, or the one you set.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::Error;

/// How to reach the server over TLS. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl Tls {
    /// Trusts the certificates in `roots` (TLS 1.2 and 1.3, ring provider).
    pub fn with_roots(roots: RootCertStore) -> Result<Tls, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls::with_config(Arc::new(config)))
    }

    /// Trusts the CA certificate(s) in `pem` (e.g. your own CA's file).
    pub fn with_ca_pem(pem: &[u8]) -> Result<Tls, Error> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::InvalidArgument(format!("CA certificate PEM: {e}")))?;
            roots.add(cert).map_err(|e| Error::InvalidArgument(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::InvalidArgument("no CA certificate in the PEM".into()));
        }
        Tls::with_roots(roots)
    }

    /// Trusts the Mozilla root set built into the crate (`webpki-roots`):
    /// for a server with a certificate from a public CA.
    pub fn webpki_roots() -> Result<Tls, Error> {
        Tls::with_roots(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
    }

    /// Your own rustls configuration, as it is.
    pub fn with_config(config: Arc<ClientConfig>) -> Tls {
        Tls { config, server_name: None }
    }

    /// The name the certificate must carry, when it is not the host of the
    /// address (e.g. connecting to an IP address with a certificate for a name).
    pub fn server_name(mut self, name: impl Into<String>) -> Tls {
        self.server_name = Some(name.into());
        self
    }

    /// The handshake on `tcp`, to `addr` (`host:port`).
    pub(crate) async fn connect(&self, addr: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Error> {
        let host = match &self.server_name {
            Some(name) => name.clone(),
            None => host_of(addr).to_string(),
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|_| Error::InvalidArgument(format!("`{host}` is not a host name or address for TLS")))?;
        Ok(TlsConnector::from(self.config.clone()).connect(name, tcp).await?)
    }
}

/// `host` of `host:port` (`[v6]:port` → `v6`).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_address_without_its_port() {
        assert_eq!(host_of("localhost:4001"), "localhost");
        assert_eq!(host_of("127.0.0.1:4001"), "127.0.0.1");
        assert_eq!(host_of("[::1]:4001"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }

    #[test]
    fn a_pem_without_certificates_is_refused() {
        assert!(matches!(Tls::with_ca_pem(b"nothing here"), Err(Error::InvalidArgument(_))));
        assert!(Tls::webpki_roots().is_ok());
    }
}
