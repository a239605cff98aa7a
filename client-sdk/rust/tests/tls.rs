//! The SDK over TLS against the real server started with `--tls-cert` and
//! `--tls-key` (certificates made by the test): the binary protocol through
//! `Options::tls`, the REST helpers over https with the test CA, and the
//! refusal a plain client gets from the TLS port.

mod common;

use common::{next, options, within};
use converger_client::{Client, Credential, Draft, Error, ErrorCode, Rest, Tls};
use converger_e2e::tls::{create_tenant, TlsFiles};
use converger_e2e::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_subscribes_over_tls_and_a_plain_client_is_told_tls_required() {
    let files = TlsFiles::new();
    let args = files.args();
    let server = TestServer::embedded_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let tenant = create_tenant(server.http_addr(), &files, "sdk-tls");
    let base = format!("https://localhost:{}", server.http_addr().port());
    let rest = Rest::with_ca_pem(&base, tenant.api_key.clone(), files.ca_pem.as_bytes()).expect("rest");
    let channel = rest.create_channel("tls", "websocket", serde_json::json!({})).await.expect("channel over https");
    let conversation = rest.create_conversation(channel.id, None, None).await.expect("conversation").id;

    // The certificate names localhost and 127.0.0.1: both addresses verify.
    let tls = Tls::with_ca_pem(files.ca_pem.as_bytes()).expect("tls");
    let addr = format!("localhost:{}", server.binary_addr().port());
    let with_tls = converger_client::Options { tls: Some(tls.clone()), ..options() };
    let client = Client::connect_with(&addr, Credential::ApiKey(tenant.api_key.clone()), with_tls.clone())
        .await
        .expect("connect over TLS");
    let mut sub = client.subscribe(conversation, 0).await.expect("subscribe");
    let written = client.publish(Draft::message(conversation, "over tls").sender("bot")).await.expect("publish");
    let got = next(&mut sub).await;
    assert_eq!((got.seq, got.text.as_deref()), (written.seq, Some("over tls")));
    let token = rest.create_token(conversation, "user-1", None).await.expect("token").token;
    let by_ip = converger_client::Options { tls: Some(tls), ..options() };
    let user = Client::connect_with(server.binary_addr(), Credential::Token(token), by_ip).await.expect("by IP");
    assert_eq!(user.welcome().sender, "user-1");
    within("ping over TLS", user.ping()).await.expect("pong");

    // Plain TCP to the TLS port: the server's Error frame, typed.
    match Client::connect_with(&addr, Credential::ApiKey(tenant.api_key.clone()), options()).await {
        Err(Error::Server(e)) => assert_eq!(e.code, ErrorCode::TlsRequired, "{e}"),
        other => panic!("expected tls_required, got {other:?}"),
    }
    // A CA the server's certificate does not come from: the handshake fails.
    let stranger = Tls::with_ca_pem(TlsFiles::new().ca_pem.as_bytes()).expect("tls");
    let refused = converger_client::Options { tls: Some(stranger), ..options() };
    assert!(matches!(
        Client::connect_with(&addr, Credential::ApiKey(tenant.api_key), refused).await,
        Err(Error::Io(_))
    ));
    client.close().await;
    user.close().await;
}
