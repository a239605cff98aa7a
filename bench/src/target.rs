//! What every scenario against a running server shares: where it is (a
//! loopback address only), its admin token for the setup, the client runtime,
//! and the setup calls themselves (a fresh tenant, a channel, conversations,
//! client tokens) over REST.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::http::Client;

#[derive(Args, Debug, Serialize)]
pub struct Target {
    /// The server's HTTP address (loopback).
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,
    /// The server's admin token (for the setup).
    #[arg(long, env = "CONVERGER_ADMIN_TOKEN")]
    #[serde(skip)]
    pub admin_token: String,
    /// The server's binary-protocol address (loopback), for the `bin-*` scenarios.
    #[arg(long, env = "CONVERGER_BENCH_BINARY_ADDR")]
    pub binary_addr: Option<SocketAddr>,
    /// The CA (PEM) of a server started with --tls-cert/--tls-key: connect
    /// over TLS, trusting it (rest-ingest and bin-ingest).
    #[arg(long, env = "CONVERGER_BENCH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl Target {
    /// A two-thread client runtime, once the address is known to be loopback.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, String> {
        if !self.addr.ip().is_loopback() {
            return Err(format!("{} is not a loopback address: load runs only against this machine", self.addr));
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))
    }

    /// The binary-protocol address, once known to be loopback.
    pub fn binary(&self) -> Result<SocketAddr, String> {
        let addr = self.binary_addr.ok_or("this scenario needs --binary-addr (scripts/bench-server passes it)")?;
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address: load runs only against this machine"));
        }
        Ok(addr)
    }

    /// The TLS client configuration when `--tls-ca` is given.
    pub fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        self.tls_ca.as_deref().map(crate::tls::client_config).transpose()
    }

    /// A fresh tenant with one `websocket` channel, ready for conversations.
    pub async fn tenant(&self, name: &str) -> Result<Tenant, String> {
        let mut client = Client::connect_with(self.addr, self.tls()?.as_ref()).await?;
        let body = json!({"name": name}).to_string();
        let tenant =
            client.call("POST", "/admin/api/tenants", &self.admin_token, Some(body.as_bytes())).await?.json()?;
        let api_key = field(&tenant, "api_key")?;
        let body = json!({"name": name, "type": "websocket"}).to_string();
        let channel = client.call("POST", "/api/v1/channels", &api_key, Some(body.as_bytes())).await?.json()?;
        Ok(Tenant { client, channel_id: field(&channel, "id")?, api_key })
    }
}

pub struct Tenant {
    client: Client,
    pub api_key: String,
    channel_id: String,
}

impl Tenant {
    /// A new conversation on the tenant's channel: its id.
    pub async fn conversation(&mut self) -> Result<String, String> {
        let body = json!({"channel_id": self.channel_id}).to_string();
        let conv =
            self.client.call("POST", "/api/v1/conversations", &self.api_key, Some(body.as_bytes())).await?.json()?;
        field(&conv, "id")
    }

    /// A client token for `conversation`, acting as `sender`.
    pub async fn token(&mut self, conversation: &str, sender: &str) -> Result<String, String> {
        let body = json!({"conversation_id": conversation, "sender": sender}).to_string();
        let t = self.client.call("POST", "/api/v1/tokens", &self.api_key, Some(body.as_bytes())).await?.json()?;
        field(&t, "token")
    }
}

fn field(v: &serde_json::Value, name: &str) -> Result<String, String> {
    v[name].as_str().map(str::to_string).ok_or_else(|| format!("no `{name}` in {v}"))
}
