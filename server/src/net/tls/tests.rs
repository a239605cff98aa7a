//! The TLS stream on both I/O drivers: a megabyte each way at once over the
//! split halves (a reader task and a writer task, as WebSocket and binary
//! connections run), with reads large enough to fill rustls's plaintext
//! buffer and reads of a few bytes, ending with close_notify both ways.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::pki_types::{CertificateDer, ServerName};

use super::{CertPaths, Certs, TlsAcceptor, TlsSettings};
use crate::net::stream::Stream;
use crate::rt::runtime::{self, IoDriver};

const SIZE: usize = 1 << 20;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A certificate for 127.0.0.1 in a temp dir, and the client config trusting it.
fn certificate() -> (tempfile::TempDir, Certs, Arc<rustls::ClientConfig>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params").self_signed(&key).expect("cert");
    let paths = CertPaths { cert: dir.path().join("c.pem"), key: dir.path().join("k.pem") };
    std::fs::write(&paths.cert, cert.pem()).expect("write cert");
    std::fs::write(&paths.key, key.serialize_pem()).expect("write key");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.der().to_vec())).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (dir, Certs::load(paths).expect("load"), Arc::new(client))
}

/// Serves one connection: echoes nothing, reads everything the client sends
/// (its length and a checksum go to `report`) while writing `SIZE` bytes,
/// then closes with close_notify.
fn serve_one(driver: IoDriver, certs: Certs) -> (SocketAddr, mpsc::Receiver<(usize, bool)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let (report, reported) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut rt, _) = runtime::build(driver, 0).expect("runtime");
        rt.block_on(async move {
            let listener = monoio::net::TcpListener::from_std(listener).expect("listener");
            let acceptor = TlsAcceptor::http(&TlsSettings { certs, redirect: false }).expect("acceptor");
            let (tcp, peer) = listener.accept().await.expect("accept");
            let Some(stream @ Stream::Tls(_)) = TlsAcceptor::wrap(Some(&acceptor), tcp, peer).await else {
                panic!("no TLS stream")
            };
            let (mut read, mut write) = stream.into_split();
            let writer = monoio::spawn(async move {
                let data: Vec<u8> = (0..SIZE).map(pattern).collect();
                for chunk in data.chunks(100_000) {
                    let (res, _) = write.write_all(chunk.to_vec()).await;
                    res.expect("write");
                }
                write.shutdown().await.expect("close_notify");
            });
            let (mut got, mut intact, mut big) = (0usize, true, true);
            loop {
                // Large reads let one socket read carry more than rustls's
                // 16 KiB plaintext buffer; small ones leave plaintext behind.
                let size = if big { 64 * 1024 } else { 100 };
                big = !big;
                let buf = Vec::with_capacity(size);
                let (res, buf) = read.read(buf).await;
                let n = res.expect("read");
                if n == 0 {
                    break;
                }
                intact &= buf[..n].iter().enumerate().all(|(i, b)| *b == pattern(got + i));
                got += n;
            }
            writer.await;
            let _ = report.send((got, intact));
        });
    });
    (addr, reported)
}

fn client_round_trip(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> usize {
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("client");
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let data: Vec<u8> = (0..SIZE).map(pattern).collect();
    tls.write_all(&data).expect("client write");
    tls.conn.send_close_notify();
    tls.flush().expect("flush");
    let mut back = Vec::new();
    tls.read_to_end(&mut back).expect("client read until close_notify");
    assert!(back.iter().enumerate().all(|(i, b)| *b == pattern(i)), "the server's bytes arrive intact");
    back.len()
}

fn megabyte_each_way(driver: IoDriver) {
    let (_dir, certs, client) = certificate();
    let (addr, reported) = serve_one(driver, certs);
    assert_eq!(client_round_trip(addr, client), SIZE);
    let (got, intact) = reported.recv_timeout(std::time::Duration::from_secs(20)).expect("server report");
    assert_eq!((got, intact), (SIZE, true));
}

#[test]
fn a_megabyte_each_way_over_split_halves_on_io_uring_or_its_fallback() {
    megabyte_each_way(IoDriver::Auto);
}

#[test]
fn a_megabyte_each_way_over_split_halves_on_epoll() {
    megabyte_each_way(IoDriver::Epoll);
}

#[test]
fn a_reload_that_fails_keeps_the_certificate_and_one_that_works_replaces_it() {
    let (dir, certs, _) = certificate();
    let before = certs.resolver_key_der();
    std::fs::write(dir.path().join("k.pem"), "not a key").expect("break the key");
    assert!(certs.reload().is_err());
    assert_eq!(certs.resolver_key_der(), before, "unchanged after a failed reload");
    let (other_dir, _, _) = certificate();
    for name in ["c.pem", "k.pem"] {
        std::fs::copy(other_dir.path().join(name), dir.path().join(name)).expect("rotate");
    }
    certs.reload().expect("reload");
    assert_ne!(certs.resolver_key_der(), before, "new handshakes get the new certificate");
}
