//! TLS for end-to-end tests: a throwaway CA made with rcgen, a server
//! certificate it signs for `localhost` and `127.0.0.1` written to PEM files
//! the server is started with, and blocking rustls clients that trust only
//! that CA. [`TlsFiles::rotate`] replaces both files with a certificate from
//! a new CA, for the SIGHUP test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tempfile::TempDir;

/// A CA and the server certificate it issued, as files.
pub struct TlsFiles {
    dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's certificate, PEM: what a client trusts.
    pub ca_pem: String,
    /// The server certificate, DER: what a client should be shown.
    pub server_der: Vec<u8>,
    /// Bumped by each rotation, so CA names differ.
    generation: u32,
}

impl TlsFiles {
    pub fn new() -> TlsFiles {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let mut files = TlsFiles { dir, cert, key, ca_pem: String::new(), server_der: Vec::new(), generation: 0 };
        files.rotate();
        files
    }

    /// A new CA and a new server certificate from it, written over the files.
    pub fn rotate(&mut self) {
        self.generation += 1;
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, format!("converger test CA {}", self.generation));
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("server params");
        let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("server certificate");
        // Written whole, then renamed: the server never reads half a file.
        write_atomically(&self.cert, &cert.pem());
        write_atomically(&self.key, &key.serialize_pem());
        self.ca_pem = ca_cert.pem();
        self.server_der = cert.der().to_vec();
    }

    /// `--tls-cert FILE --tls-key FILE`.
    pub fn args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        vec!["--tls-cert".into(), path(&self.cert), "--tls-key".into(), path(&self.key)]
    }

    /// A directory for other files of the test (e.g. a broken certificate).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A client configuration trusting only this CA (as it is now).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&self.ca_pem, alpn)
    }
}

impl Default for TlsFiles {
    fn default() -> TlsFiles {
        TlsFiles::new()
    }
}

fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write PEM");
    std::fs::rename(&tmp, path).expect("rename PEM");
}

/// A client configuration trusting only the CA in `ca_pem`.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A blocking TLS connection to `addr`, handshake done (or its error).
pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsConn> {
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(TlsConn { stream })
}

/// One TLS connection of a test.
pub struct TlsConn {
    pub stream: StreamOwned<ClientConnection, TcpStream>,
}

impl TlsConn {
    /// The certificate the server presented (DER).
    pub fn server_cert(&self) -> Vec<u8> {
        let certs = self.stream.conn.peer_certificates().unwrap_or_default();
        certs.first().map(|c| c.to_vec()).unwrap_or_default()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// `GET path` with keep-alive; the answer's status line and headers, and body.
    pub fn get(&mut self, path: &str) -> std::io::Result<(String, String)> {
        self.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())?;
        self.read_reply()
    }

    /// One answer (with a Content-Length body): its head and body.
    pub fn read_reply(&mut self) -> std::io::Result<(String, String)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return Ok((head.to_string(), body[..length].to_string()));
                }
            }
        }
    }
}

/// `POST /admin/api/tenants` over TLS (the admin helpers speak plain HTTP):
/// the tenant's id and API key.
pub fn create_tenant(http: SocketAddr, files: &TlsFiles, name: &str) -> crate::api::Tenant {
    let mut conn = connect(http, files.client_config(&[b"http/1.1"])).expect("TLS connection");
    let body = serde_json::json!({ "name": name }).to_string();
    let request = format!(
        "POST /admin/api/tenants HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        crate::server::ADMIN_TOKEN,
        body.len()
    );
    conn.write_all(request.as_bytes()).expect("send");
    let (head, body) = conn.read_reply().expect("reply");
    assert!(head.starts_with("HTTP/1.1 201"), "{head}\n{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    crate::api::Tenant {
        id: body["tenant"]["id"].as_str().expect("tenant id").to_string(),
        api_key: body["api_key"].as_str().expect("api_key").to_string(),
    }
}
