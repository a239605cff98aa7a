//! Shared set-up of the SDK's tests: a real `converger` server (the e2e
//! harness's [`TestServer`]: embedded storage, two shards, loopback, port 0), a
//! tenant with a channel, and clients with fast reconnects.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use converger_client::{Activity, Client, Credential, Options, Rest, Subscription, Uuid};
use converger_e2e::api::create_tenant;
use converger_e2e::TestServer;

/// How long a test waits for anything the server should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Env {
    pub server: TestServer,
    pub api_key: String,
    pub tenant_id: Uuid,
    pub rest: Rest,
    pub channel_id: Uuid,
}

impl Env {
    pub async fn start() -> Env {
        let server = TestServer::embedded();
        let tenant = create_tenant(&server, "sdk");
        let rest = Rest::new(&format!("http://{}", server.http_addr()), tenant.api_key.clone()).expect("base url");
        let channel = rest.create_channel("sdk", "websocket", serde_json::json!({})).await.expect("channel");
        let tenant_id = tenant.id.parse().expect("tenant id");
        Env { server, api_key: tenant.api_key, tenant_id, rest, channel_id: channel.id }
    }

    pub async fn conversation(&self) -> Uuid {
        self.rest.create_conversation(self.channel_id, None, None).await.expect("conversation").id
    }

    /// A client with the tenant's API key.
    pub async fn api_client(&self) -> Client {
        Client::connect_with(self.server.binary_addr(), Credential::ApiKey(self.api_key.clone()), options())
            .await
            .expect("connect with the API key")
    }

    /// A client with a fresh token for `sender` in `conversation`.
    pub async fn token_client(&self, conversation: Uuid, sender: &str) -> Client {
        let token = self.rest.create_token(conversation, sender, None).await.expect("token").token;
        Client::connect_with(self.server.binary_addr(), Credential::Token(token), options())
            .await
            .expect("connect with a token")
    }
}

/// Fast reconnects, so the resume tests take milliseconds, not seconds.
pub fn options() -> Options {
    Options {
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(200),
        request_timeout: WAIT,
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

/// `f`, or a panic naming `what` after [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The subscription's next activity, which must come.
pub async fn next(sub: &mut Subscription) -> Activity {
    within("the next activity", sub.next()).await.expect("the subscription is open")
}
