//! What every scenario against running servers shares: where they are
//! (loopback addresses only; one node, or the nodes of a cluster), the admin
//! token for the setup, the client runtime, and the setup calls themselves (a
//! fresh tenant, a channel, conversations, client tokens) over REST. The
//! setup always goes to the first node: the nodes of a cluster share one
//! database and one token key, so what it makes there is valid on every node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::http::Client;

#[derive(Args, Debug, Serialize)]
pub struct Target {
    /// The server's HTTP address (loopback). For a cluster, one per node,
    /// comma-separated or repeated; the setup goes to the first.
    #[arg(long = "addr", value_delimiter = ',', default_value = "127.0.0.1:4000")]
    #[serde(rename = "addr")]
    pub addrs: Vec<SocketAddr>,
    /// The server's admin token (for the setup).
    #[arg(long, env = "CONVERGER_ADMIN_TOKEN")]
    #[serde(skip)]
    pub admin_token: String,
    /// The server's binary-protocol address (loopback), for the `bin-*`
    /// scenarios. For a cluster, one per node in the order of `--addr`.
    #[arg(long = "binary-addr", env = "CONVERGER_BENCH_BINARY_ADDR", value_delimiter = ',')]
    #[serde(rename = "binary_addr")]
    pub binary_addrs: Vec<SocketAddr>,
    /// The CA (PEM) of a server started with --tls-cert/--tls-key: connect
    /// over TLS, trusting it (rest-ingest and bin-ingest).
    #[arg(long, env = "CONVERGER_BENCH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Give the bench's channel a pre-publish hook: a server in this process
    /// that accepts every item at once (`config.pre_publish`, timeout 1 s,
    /// on_failure reject), to measure what the hook's round trip costs. The
    /// report counts its requests and items and its thread's CPU (which is
    /// part of the load generator's). The server must allow private
    /// addresses (`--delivery-allow-private`; scripts/bench-server passes it).
    #[arg(long)]
    pub pre_publish: bool,
}

impl Target {
    /// A two-thread client runtime, once every address is known to be
    /// loopback and the binary addresses, when given, match the nodes.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, String> {
        self.check()?;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))
    }

    fn check(&self) -> Result<(), String> {
        if self.addrs.is_empty() {
            return Err("no --addr given".into());
        }
        if let Some(a) = self.addrs.iter().chain(&self.binary_addrs).find(|a| !a.ip().is_loopback()) {
            return Err(format!("{a} is not a loopback address: load runs only against this machine"));
        }
        if self.addrs.len() > 1 && !self.binary_addrs.is_empty() && self.binary_addrs.len() != self.addrs.len() {
            return Err(format!(
                "{} --addr nodes but {} --binary-addr: give one binary address per node, in the same order",
                self.addrs.len(),
                self.binary_addrs.len()
            ));
        }
        Ok(())
    }

    /// The first node's HTTP address: where the setup goes.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every node's HTTP address, in the order given.
    pub fn nodes(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// For the scenarios that run against one node: refuses a list.
    pub fn single_node(&self, scenario: &str) -> Result<(), String> {
        if self.addrs.len() > 1 || self.binary_addrs.len() > 1 {
            return Err(format!("{scenario} runs against one node: give one --addr (and one --binary-addr)"));
        }
        Ok(())
    }

    /// The first node's binary-protocol address.
    pub fn binary(&self) -> Result<SocketAddr, String> {
        Ok(self.binary_nodes()?[0])
    }

    /// Every node's binary-protocol address, in the order of `--addr`.
    pub fn binary_nodes(&self) -> Result<&[SocketAddr], String> {
        if self.binary_addrs.is_empty() {
            return Err("this scenario needs --binary-addr (scripts/bench-server passes it)".into());
        }
        self.check()?;
        Ok(&self.binary_addrs)
    }

    /// The TLS client configuration when `--tls-ca` is given.
    pub fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        self.tls_ca.as_deref().map(crate::tls::client_config).transpose()
    }

    /// A fresh tenant with one `websocket` channel, ready for conversations
    /// (with `--pre-publish`, the channel's hook is this process's).
    pub async fn tenant(&self, name: &str) -> Result<Tenant, String> {
        let mut client = Client::connect_with(self.addr(), self.tls()?.as_ref()).await?;
        let body = json!({"name": name}).to_string();
        let tenant =
            client.call("POST", "/admin/api/tenants", &self.admin_token, Some(body.as_bytes())).await?.json()?;
        let api_key = field(&tenant, "api_key")?;
        let mut body = json!({"name": name, "type": "websocket"});
        if self.pre_publish {
            let hook = json!({"url": crate::hook::url()?, "timeout_ms": 1000, "on_failure": "reject"});
            body["config"] = json!({ "pre_publish": hook });
        }
        let body = body.to_string();
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
        self.token_for(conversation, sender, None).await
    }

    /// [`Tenant::token`] valid for `ttl_seconds` (the server's default, an
    /// hour, when None): a long run's sockets outlive the default.
    pub async fn token_for(
        &mut self,
        conversation: &str,
        sender: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<String, String> {
        let mut body = json!({"conversation_id": conversation, "sender": sender});
        if let Some(ttl) = ttl_seconds {
            body["ttl_seconds"] = json!(ttl);
        }
        let body = body.to_string();
        let t = self.client.call("POST", "/api/v1/tokens", &self.api_key, Some(body.as_bytes())).await?.json()?;
        field(&t, "token")
    }
}

fn field(v: &serde_json::Value, name: &str) -> Result<String, String> {
    v[name].as_str().map(str::to_string).ok_or_else(|| format!("no `{name}` in {v}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        target: Target,
    }

    fn parse(args: &[&str]) -> Target {
        let mut argv = vec!["bench", "--admin-token", "t"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").target
    }

    #[test]
    fn one_addr_is_one_node_and_the_default_is_unchanged() {
        let t = parse(&[]);
        assert_eq!(t.nodes(), ["127.0.0.1:4000".parse::<SocketAddr>().unwrap()]);
        let t = parse(&["--addr", "127.0.0.1:5000", "--binary-addr", "127.0.0.1:5001"]);
        assert_eq!(t.addr().port(), 5000);
        assert_eq!(t.binary().unwrap().port(), 5001);
        assert!(t.check().is_ok() && t.single_node("x").is_ok());
    }

    #[test]
    fn nodes_come_comma_separated_or_repeated() {
        let t = parse(&["--addr", "127.0.0.1:1,127.0.0.1:2", "--addr", "127.0.0.1:3"]);
        assert_eq!(t.nodes().iter().map(|a| a.port()).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(t.addr().port(), 1);
        assert!(t.single_node("ws-fanout").is_err());
        let t = parse(&["--addr", "127.0.0.1:1,127.0.0.1:2", "--binary-addr", "127.0.0.1:11,127.0.0.1:12"]);
        assert_eq!(t.binary_nodes().unwrap().iter().map(|a| a.port()).collect::<Vec<_>>(), [11, 12]);
    }

    #[test]
    fn a_non_loopback_node_or_a_binary_list_of_another_length_is_refused() {
        let t = parse(&["--addr", "127.0.0.1:1,10.0.0.1:2"]);
        assert!(t.check().unwrap_err().contains("10.0.0.1:2 is not a loopback"));
        let t = parse(&["--addr", "127.0.0.1:1", "--binary-addr", "127.0.0.1:2,192.168.1.1:3"]);
        assert!(t.check().unwrap_err().contains("not a loopback"));
        let t = parse(&["--addr", "127.0.0.1:1,127.0.0.1:2", "--binary-addr", "127.0.0.1:11"]);
        assert!(t.check().unwrap_err().contains("one binary address per node"));
        assert!(parse(&["--addr", "[::1]:1,127.0.0.2:2"]).check().is_ok());
    }
}
