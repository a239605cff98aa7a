//! The server's certificate: read from PEM files, checked (the key must match
//! the certificate), and held where every new handshake on every shard finds
//! it. [`Certs::reload`] reads the files again (SIGHUP) and swaps the whole
//! certified key at once; a connection already established keeps the session
//! it negotiated, and a reload that fails leaves the old certificate in place.
//!
//! The one value shared by the shards is the current `Arc<CertifiedKey>`
//! behind a `RwLock`: read once per handshake (uncontended next to the
//! handshake's own signature), written only on a reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Which of the two files an error is about (start-up names the flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertFile {
    Cert,
    Key,
}

/// Why a certificate or key cannot be used. Each message is one line that
/// names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {} file {}: {source}", file.noun(), path.display())]
    Read {
        file: CertFile,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS {} file {} holds no PEM {}", file.noun(), path.display(), file.expected())]
    Missing { file: CertFile, path: PathBuf },
    #[error("the TLS {} file {} is not valid PEM: {message}", file.noun(), path.display())]
    Pem { file: CertFile, path: PathBuf, message: String },
    #[error("the TLS key in {} cannot be used (RSA, ECDSA P-256/P-384 or Ed25519 expected): {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("the TLS key {} does not belong to the certificate {} ({message})", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf, message: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// The file to fix.
    pub fn file(&self) -> CertFile {
        match self {
            TlsError::Read { file, .. } | TlsError::Missing { file, .. } | TlsError::Pem { file, .. } => *file,
            TlsError::Key { .. } | TlsError::Mismatch { .. } => CertFile::Key,
            TlsError::Config(_) => CertFile::Cert,
        }
    }
}

impl CertFile {
    fn noun(self) -> &'static str {
        match self {
            CertFile::Cert => "certificate",
            CertFile::Key => "key",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            CertFile::Cert => "certificate (-----BEGIN CERTIFICATE-----)",
            CertFile::Key => "private key (PKCS#8, PKCS#1 or SEC1)",
        }
    }
}

/// Where the certificate chain and its key are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM: the server certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key of the first certificate.
    pub key: PathBuf,
}

/// The certificate in force and how to read it again. Cheap to clone; every
/// clone sees a reload.
#[derive(Clone, Debug)]
pub struct Certs {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
}

impl Certs {
    /// Reads and checks both files.
    pub fn load(paths: CertPaths) -> Result<Certs, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = read_certified_key(&paths, &provider)?;
        Ok(Certs { paths, provider, current: Arc::new(Current(RwLock::new(Arc::new(key)))) })
    }

    /// Reads both files again; on success new handshakes get the new
    /// certificate, on failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_certified_key(&self.paths, &self.provider)?;
        *self.current.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    pub(super) fn provider(&self) -> Arc<CryptoProvider> {
        self.provider.clone()
    }

    pub(super) fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        self.current.clone()
    }

    /// The certificate new handshakes get (DER), for tests.
    #[cfg(test)]
    pub(super) fn resolver_key_der(&self) -> Vec<u8> {
        let key = self.current.0.read().unwrap_or_else(PoisonError::into_inner).clone();
        key.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

/// The resolver handed to rustls: the same key for every client hello.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

fn read_certified_key(paths: &CertPaths, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&paths.cert)?;
    let key = read_key(&paths.key)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key { path: paths.key.clone(), message: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // Unknown: the key type cannot say (never for ring's keys); the handshake would tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(TlsError::Mismatch { cert: paths.cert.clone(), key: paths.key.clone(), message: e.to_string() }),
    }
}

fn read_file(file: CertFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { file, path: path.to_path_buf(), source })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(CertFile::Cert, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(CertFile::Cert, path, e))?;
    if chain.is_empty() {
        return Err(TlsError::Missing { file: CertFile::Cert, path: path.to_path_buf() });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(CertFile::Key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| pem_error(CertFile::Key, path, e))
}

fn pem_error(file: CertFile, path: &Path, e: pem::Error) -> TlsError {
    match e {
        pem::Error::NoItemsFound => TlsError::Missing { file, path: path.to_path_buf() },
        e => TlsError::Pem { file, path: path.to_path_buf(), message: e.to_string() },
    }
}
