//! A local HTTP server standing in for an external service (a webhook
//! receiver, the WhatsApp APIs): it records every request it gets and answers
//! each with the next status of its script (the last one repeats) and a JSON
//! body, fixed or computed from the request (a provider echoing an id it was
//! sent). Loopback only; it stops when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

pub struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Answers the n-th request with `script[n]` (the last status repeats)
    /// and `body` (JSON).
    pub fn start(script: Vec<u16>, body: &str) -> Receiver {
        let body = body.to_string();
        Receiver::start_with(script, move |_| body.clone())
    }

    /// Like [`Receiver::start`], with each answer's body computed from the
    /// request it answers.
    pub fn start_with(script: Vec<u16>, answer: impl Fn(&Recorded) -> String + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (got2, stop2) = (got.clone(), stop.clone());
        let (script, answer) = (Arc::new(script), Arc::new(answer));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    // A thread per connection: a client keeping one alive must not hold up the next.
                    Ok((stream, _)) => {
                        let (got, script, answer) = (got2.clone(), script.clone(), answer.clone());
                        std::thread::spawn(move || serve(stream, &got, &script, &*answer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Receiver { addr, got, stop }
    }

    /// A pre-publish hook (docs/api.md "Pre-publish hook") that rejects
    /// `bad` ("no bad words"), rewrites `rude` to `[polite]` (metadata
    /// `{"rewritten": true}`) and accepts the rest, after `delay`.
    pub fn pre_publish_hook(delay: Duration) -> Receiver {
        Receiver::start_with(vec![200], move |r| {
            std::thread::sleep(delay);
            let items = r.json()["data"]["items"].as_array().cloned().unwrap_or_default();
            let verdicts: Vec<serde_json::Value> = items
                .iter()
                .map(|i| match i["text"].as_str() {
                    Some("bad") => serde_json::json!({"action": "reject", "reason": "no bad words"}),
                    Some("rude") => {
                        serde_json::json!({"action": "rewrite", "text": "[polite]", "metadata": {"rewritten": true}})
                    }
                    _ => serde_json::json!({"action": "accept"}),
                })
                .collect();
            serde_json::json!({ "results": verdicts }).to_string()
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (bounded) until `n` requests arrived; returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut stream: TcpStream, got: &Mutex<Vec<Recorded>>, script: &[u16], answer: &dyn Fn(&Recorded) -> String) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // Keep-alive: several requests may come on one connection.
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut stream, &mut buf) else { return };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&buf[..end]), Ok(httparse::Status::Complete(_))) {
            return;
        }
        let method = req.method.unwrap_or("").to_string();
        let path = req.path.unwrap_or("").to_string();
        let headers: Vec<(String, String)> =
            req.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).to_string())).collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        buf.drain(..end);
        while buf.len() < len {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let request_body: Vec<u8> = buf.drain(..len).collect();
        let recorded = Recorded { method, path, headers, body: request_body, at: Instant::now() };
        let body = answer(&recorded);
        let status = {
            let mut got = got.lock().expect("lock");
            let status = script.get(got.len()).or(script.last()).copied().unwrap_or(200);
            got.push(recorded);
            status
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads until a whole request head is buffered; its length, or `None` at EOF.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
