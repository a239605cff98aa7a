//! JSON helpers for the REST and admin APIs: a [`Client`] that sends JSON with
//! a bearer credential, fixtures that create a tenant, a channel and a
//! conversation through the API itself, and [`assert_error`] for the one error
//! shape.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Reply;
use crate::server::{TestServer, ADMIN_TOKEN};

/// Requests against one server with one credential (or none).
pub struct Client<'a> {
    server: &'a TestServer,
    bearer: Option<String>,
}

impl<'a> Client<'a> {
    /// A client presenting `Authorization: Bearer <bearer>`.
    pub fn bearer(server: &'a TestServer, bearer: &str) -> Client<'a> {
        Client { server, bearer: Some(bearer.to_string()) }
    }

    /// A client without credentials.
    pub fn anonymous(server: &'a TestServer) -> Client<'a> {
        Client { server, bearer: None }
    }

    /// The admin: the test server's admin token (from loopback).
    pub fn admin(server: &'a TestServer) -> Client<'a> {
        Client::bearer(server, ADMIN_TOKEN)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, &[], Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send("PATCH", path, &[], Some(body))
    }

    /// Any request; a body goes as `application/json`.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Reply {
        self.try_send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n--- server stderr ---\n{}", self.server.stderr()))
    }

    /// `send`, with I/O errors returned rather than panicking: for requests
    /// to a server that may be killed meanwhile.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> std::io::Result<Reply> {
        let auth = self.bearer.as_ref().map(|b| format!("Bearer {b}"));
        let mut all: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = &auth {
            all.push(("authorization", auth));
        }
        if body.is_some() {
            all.push(("content-type", "application/json"));
        }
        all.extend_from_slice(headers);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        crate::http::request(self.server.http_addr(), method, path, &all, &bytes)
    }
}

/// Asserts the error shape, status and code; returns the error object.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "expected {status} {code}, got: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body["error"].clone()
}

/// Asserts `status` and returns the JSON body.
#[track_caller]
pub fn expect(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    reply.json()
}

/// Polls `GET /api/v1/deliveries?activity_id=…` until the activity's first
/// delivery satisfies `done`, and returns it; fails after 15 s.
#[track_caller]
pub fn delivery_of(api: &Client, activity_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = expect(&api.get(&format!("/api/v1/deliveries?activity_id={activity_id}")), 200);
        if let Some(d) = list["data"].get(0) {
            if done(d) {
                return d.clone();
            }
        }
        assert!(Instant::now() < deadline, "delivery never got there: {list}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tenant created through the admin API.
pub struct Tenant {
    pub id: String,
    pub api_key: String,
}

pub fn create_tenant(server: &TestServer, name: &str) -> Tenant {
    let body = expect(&Client::admin(server).post("/admin/api/tenants", &json!({"name": name})), 201);
    Tenant {
        id: body["tenant"]["id"].as_str().expect("tenant id").to_string(),
        api_key: body["api_key"].as_str().expect("api_key").to_string(),
    }
}

/// A tenant with one channel and one conversation on it.
pub struct Fixture {
    pub tenant: Tenant,
    /// The channel as created (with its secret).
    pub channel: Value,
    pub conversation: Value,
}

impl Fixture {
    pub fn new(server: &TestServer, name: &str) -> Fixture {
        let tenant = create_tenant(server, name);
        let client = Client::bearer(server, &tenant.api_key);
        let channel =
            expect(&client.post("/api/v1/channels", &json!({"name": format!("{name}-ws"), "type": "websocket"})), 201);
        let conversation = expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
        Fixture { tenant, channel, conversation }
    }

    pub fn client<'a>(&self, server: &'a TestServer) -> Client<'a> {
        Client::bearer(server, &self.tenant.api_key)
    }

    pub fn channel_id(&self) -> &str {
        self.channel["id"].as_str().expect("channel id")
    }

    pub fn channel_secret(&self) -> &str {
        self.channel["secret"].as_str().expect("channel secret")
    }

    pub fn conversation_id(&self) -> &str {
        self.conversation["id"].as_str().expect("conversation id")
    }

    pub fn activities_path(&self) -> String {
        format!("/api/v1/conversations/{}/activities", self.conversation_id())
    }

    /// A client token for the conversation, as `sender`, issued by `server`.
    pub fn token(&self, server: &TestServer, sender: &str) -> String {
        let body = json!({"conversation_id": self.conversation_id(), "sender": sender});
        let t = expect(&self.client(server).post("/api/v1/tokens", &body), 200);
        t["token"].as_str().expect("token").to_string()
    }

    /// Every activity of the conversation as `server` lists it, page by page.
    pub fn all_activities(&self, server: &TestServer) -> Vec<Value> {
        let client = self.client(server);
        let mut all: Vec<Value> = Vec::new();
        loop {
            let after = all.last().and_then(|a| a["seq"].as_i64()).unwrap_or(0);
            let page = expect(&client.get(&format!("{}?after_seq={after}&limit=1000", self.activities_path())), 200);
            let data = page["data"].as_array().expect("data");
            if data.is_empty() {
                return all;
            }
            all.extend(data.iter().cloned());
        }
    }
}
