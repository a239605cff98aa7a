//! TLS on both ports (`--tls-cert`, `--tls-key`): HTTPS with reqwest and a
//! raw rustls client, HSTS, plain HTTP on the TLS port (400 `tls_required`,
//! or 308 with `--tls-redirect`), plain TCP on the binary port (Error
//! `tls_required`), the binary protocol over TLS, certificate rotation on
//! SIGHUP without dropping a connection, and one-line start-up errors.
//! Certificates are made by each test (rcgen), trusted only by its clients.

use std::io::Read;
use std::time::Duration;

use bytes::BytesMut;
use converger_e2e::api::{assert_error, create_tenant};
use converger_e2e::tls::{self, TlsFiles};
use converger_e2e::{converger_command, TestServer};
use converger_protocol::{decode_frame, Auth, ErrorCode, Frame, Hello, Version};

const RELOADED: &str = "TLS certificate reloaded";
const NOT_RELOADED: &str = "TLS certificate not reloaded";

fn tls_server(files: &TlsFiles, extra: &[&str]) -> TestServer {
    let mut args = files.args();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::embedded_with(&args)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

#[test]
fn https_with_reqwest_serves_the_api_with_hsts_over_http_1_1() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    let port = server.http_addr().port();
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(files.ca_pem.as_bytes()).expect("CA"))
            .https_only(true)
            .build()
            .expect("client");
        let health = client.get(format!("https://localhost:{port}/health")).send().await.expect("https GET");
        assert_eq!(health.status(), 200);
        assert_eq!(health.version(), reqwest::Version::HTTP_11, "ALPN http/1.1");
        let hsts = health.headers().get("strict-transport-security").and_then(|v| v.to_str().ok());
        assert_eq!(hsts, Some("max-age=31536000"));
        // A write with a body, through the admin API, over the same client.
        let created = client
            .post(format!("https://localhost:{port}/admin/api/tenants"))
            .bearer_auth(converger_e2e::server::ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"name":"over-tls"}"#)
            .send()
            .await
            .expect("https POST");
        assert_eq!(created.status(), 201);
        assert!(created.headers().contains_key("strict-transport-security"));
        let body: serde_json::Value = serde_json::from_slice(&created.bytes().await.expect("body")).expect("json");
        assert_eq!(body["tenant"]["name"], "over-tls");
    });
}

#[test]
fn a_client_that_does_not_trust_the_ca_is_refused_and_tls_1_2_is_accepted() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    let stranger = TlsFiles::new();
    let err = tls::connect(server.http_addr(), stranger.client_config(&[])).err().expect("unknown CA refused");
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(files.ca_pem.as_bytes()).expect("CA")).expect("root");
    let tls12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = tls::connect(server.http_addr(), std::sync::Arc::new(tls12)).expect("TLS 1.2 handshake");
    assert_eq!(conn.stream.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let (head, _) = conn.get("/health").expect("GET over TLS 1.2");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn plain_http_on_the_tls_port_gets_400_tls_required_naming_the_https_url() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    let reply = server.get("/api/v1/conversations?limit=2");
    let body = assert_error(&reply, 400, "tls_required");
    // The URL is built from the request's Host (the harness sends `host: test`).
    assert_eq!(body["message"], "this port speaks HTTPS: use https://test/api/v1/conversations?limit=2");
    assert!(reply.header("strict-transport-security").is_none(), "HSTS is sent over TLS only");
}

#[test]
fn plain_http_on_the_tls_port_is_redirected_with_308_under_tls_redirect() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &["--tls-redirect"]);
    let mut conn = converger_e2e::Conn::open(server.http_addr()).expect("connect");
    let request = "POST /api/v1/tokens?x=1 HTTP/1.1\r\nHost: chat.example.test:8443\r\ncontent-length: 2\r\n\r\n{}";
    conn.send(request.as_bytes()).expect("send");
    let reply = conn.read_reply(false).expect("reply");
    assert_eq!(reply.status, 308, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("https://chat.example.test:8443/api/v1/tokens?x=1"));
}

#[test]
fn plain_tcp_on_the_tls_binary_port_reads_error_tls_required_then_the_end() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    let mut tcp = std::net::TcpStream::connect(server.binary_addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut hello = BytesMut::new();
    Frame::from(Hello { min_version: 1, max_version: 1, auth: Auth::ApiKey("k".into()), client: "plain".into() })
        .encode(Version::V1, &mut hello)
        .expect("encode");
    std::io::Write::write_all(&mut tcp, &hello).expect("send Hello in the clear");
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).expect("read until the server closes");
    match decode_frame(&got, Version::V1) {
        Ok(Some((Frame::Error(e), used))) => {
            assert_eq!(e.error_code(), Some(ErrorCode::TlsRequired), "{e:?}");
            assert!(e.close && used == got.len(), "one closing frame, then the end: {e:?}");
        }
        other => panic!("expected Error tls_required, got {other:?}"),
    }
}

#[test]
fn the_binary_protocol_runs_over_tls() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    let key = tls::create_tenant(server.http_addr(), &files, "bin-over-tls").api_key;

    let mut bin = tls::connect(server.binary_addr(), files.client_config(&[])).expect("binary TLS");
    assert_eq!(bin.alpn(), None, "no ALPN on the binary port");
    let mut hello = BytesMut::new();
    Frame::from(Hello { min_version: 1, max_version: 1, auth: Auth::ApiKey(key), client: "e2e-tls".into() })
        .encode(Version::V1, &mut hello)
        .expect("encode");
    bin.write_all(&hello).expect("Hello over TLS");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let frame = loop {
        if let Some((frame, _)) = decode_frame(&got, Version::V1).expect("valid frames") {
            break frame;
        }
        let n = bin.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed before Welcome");
        got.extend_from_slice(&chunk[..n]);
    };
    assert!(matches!(frame, Frame::Welcome(_)), "{frame:?}");
}

#[test]
fn sighup_rotates_the_certificate_for_new_connections_and_keeps_open_ones() {
    let mut files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    let old_config = files.client_config(&[b"http/1.1"]);
    let mut open = tls::connect(server.http_addr(), old_config).expect("first connection");
    let (old_der, old_ca) = (files.server_der.clone(), files.ca_pem.clone());
    assert_eq!(open.server_cert(), old_der);
    assert!(open.get("/health").expect("before rotation").0.starts_with("HTTP/1.1 200"));

    files.rotate();
    server.signal("HUP");
    assert!(server.wait_for_log(RELOADED, 1, Duration::from_secs(10)), "{}", server.stderr());

    // The connection made before the rotation goes on with its session.
    let (head, _) = open.get("/health").expect("the open connection still works");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A new one is shown the new certificate: refused by the old CA, accepted by the new.
    // (A fresh client: `old_config` may resume its session, which keeps the old authentication.)
    let old_ca_only = tls::client_config(&old_ca, &[]);
    assert!(tls::connect(server.http_addr(), old_ca_only).is_err(), "the old CA no longer fits");
    let fresh = tls::connect(server.http_addr(), files.client_config(&[])).expect("new CA");
    assert_eq!(fresh.server_cert(), files.server_der);
    assert_ne!(files.server_der, old_der);
    // The binary port shares the certificate.
    let bin = tls::connect(server.binary_addr(), files.client_config(&[])).expect("binary with the new CA");
    assert_eq!(bin.server_cert(), files.server_der);
}

#[test]
fn a_broken_certificate_on_sighup_is_logged_and_the_old_one_kept() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &[]);
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n").expect("break the file");
    server.signal("HUP");
    assert!(server.wait_for_log(NOT_RELOADED, 1, Duration::from_secs(10)), "{}", server.stderr());
    let conn = tls::connect(server.http_addr(), files.client_config(&[])).expect("still served");
    assert_eq!(conn.server_cert(), files.server_der, "the previous certificate stays");
}

#[test]
fn a_missing_certificate_file_is_a_one_line_start_up_error() {
    let files = TlsFiles::new();
    let data = tempfile::tempdir().expect("data dir");
    let missing = files.dir().join("nope.pem");
    let out = converger_command()
        .args(["--http-addr", "127.0.0.1:0", "--binary-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&files.key)
        .output()
        .expect("run converger");
    assert!(!out.status.success(), "{}", out.status);
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()) && stderr.contains("--tls-cert"), "{stderr}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_a_one_line_start_up_error() {
    let files = TlsFiles::new();
    let other = TlsFiles::new();
    let data = tempfile::tempdir().expect("data dir");
    let out = converger_command()
        .args(["--http-addr", "127.0.0.1:0", "--binary-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&other.key)
        .output()
        .expect("run converger");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not belong to the certificate") && stderr.contains("--tls-key"), "{stderr}");
}

#[test]
fn without_tls_flags_http_stays_plain_and_sends_no_hsts() {
    // Without TLS flags nothing changes: plain HTTP, no HSTS.
    let server = TestServer::embedded();
    let tenant = create_tenant(&server, "plain");
    assert!(!tenant.api_key.is_empty());
    assert!(server.get("/health").header("strict-transport-security").is_none());
}

#[test]
fn a_connection_over_the_cap_on_a_tls_port_is_refused_over_tls() {
    let files = TlsFiles::new();
    let server = tls_server(&files, &["--max-connections-per-ip", "1"]);
    let mut held = tls::connect(server.http_addr(), files.client_config(&[])).expect("first connection");
    assert!(held.get("/health").expect("served").0.starts_with("HTTP/1.1 200"));
    let mut refused = tls::connect(server.http_addr(), files.client_config(&[])).expect("handshake, then the refusal");
    let (head, body) = refused.read_reply().expect("a refusal readable over TLS");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.contains("too_many_connections"), "{body}");
    // The binary port's cap answers with an Error frame, over TLS too.
    let mut bin = tls::connect(server.binary_addr(), files.client_config(&[])).expect("binary handshake");
    let mut got = Vec::new();
    let _ = bin.stream.read_to_end(&mut got);
    match decode_frame(&got, Version::V1) {
        Ok(Some((Frame::Error(e), _))) => assert_eq!(e.error_code(), Some(ErrorCode::TooManyConnections), "{e:?}"),
        other => panic!("expected Error too_many_connections, got {other:?}"),
    }
}
