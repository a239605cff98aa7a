//! Calling pre-publish hooks (issue 17): a thread of its own with a tokio
//! runtime and an HTTP client, apart from the shards (a hook that takes its
//! whole timeout never stalls a shard) and from the delivery worker (a busy
//! delivery queue never delays a publish). Shards hand it calls through a
//! bounded queue ([`QUEUE`]); when it is full the call fails at once and its
//! publishes take their hook's `on_failure`.
//!
//! A call is one signed Standard Webhooks POST (the channel's webhook key,
//! `webhook-id` new per call) whose answer is read within the hook's
//! timeout, at most [`MAX_ANSWER_BYTES`]. The delivery guard applies: a hook
//! on a private address needs `--delivery-allow-private`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures_channel::oneshot;
use tokio::sync::mpsc;

use super::guard;
use crate::adapters::pre_publish::{read_answer, request_body, MAX_ANSWER_BYTES};
use crate::adapters::standard_webhooks;
use crate::engine::hook::{HookAnswer, HookCall, HookCaller};

/// Calls waiting for the hook thread, node-wide.
pub const QUEUE: usize = 16 * 1024;

struct Job {
    call: HookCall,
    reply: oneshot::Sender<HookAnswer>,
}

/// The node's way to its hook thread; each shard's engine gets a [`ShardHooks`] of it.
#[derive(Clone)]
pub struct HookClient {
    jobs: mpsc::Sender<Job>,
}

/// The hook thread, stopped by [`HookThread::stop`] once the shards are gone
/// (not when its clients are dropped: a task a stopped shard leaves behind
/// may keep one alive).
pub struct HookThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl HookThread {
    /// Stops the thread (calls still out are dropped: their shards are gone) and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

impl HookClient {
    /// Starts the hook thread.
    pub fn start(allow_private: bool) -> std::io::Result<(HookClient, HookThread)> {
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("pre-publish".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "pre-publish hooks: no runtime; hooked publishes take their on_failure");
                    return;
                }
            };
            let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
            if !allow_private {
                builder = builder.dns_resolver(Arc::new(guard::PublicOnly));
            }
            let http = match builder.build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "pre-publish hooks: no HTTP client; hooked publishes take their on_failure");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                loop {
                    let job = tokio::select! {
                        job = rx.recv() => job,
                        _ = &mut stopped => None,
                    };
                    let Some(job) = job else { break };
                    let http = http.clone();
                    tokio::task::spawn_local(async move {
                        let answer = call(&http, job.call, allow_private).await;
                        let _ = job.reply.send(answer);
                    });
                }
            });
        })?;
        Ok((HookClient { jobs }, HookThread { stop, thread }))
    }
}

async fn call(http: &reqwest::Client, call: HookCall, allow_private: bool) -> HookAnswer {
    let route = &call.route;
    if !allow_private {
        guard::check_url(&route.config.url).map_err(|e| e.to_string())?;
    }
    let now = converger_storage::Timestamp::now();
    let body = request_body(&route.channel_id.to_string(), &now.to_string(), &call.items);
    let id = format!("msg_{}", converger_storage::new_id().simple());
    let headers = standard_webhooks::headers(&route.key, &id, now.as_micros().div_euclid(1_000_000), &body);
    let mut request = http
        .post(&route.config.url)
        .timeout(route.config.timeout)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let asked = async {
        let mut response = request.send().await.map_err(|e| format!("the hook cannot be reached: {e}"))?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("the hook's answer broke off: {e}"))? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("the hook's answer is over {MAX_ANSWER_BYTES} bytes"));
            }
            answer.extend_from_slice(&chunk);
        }
        read_answer(status, &answer, call.items.len()).map_err(|e| e.to_string())
    };
    // The request's timeout covers the answer's body too; this bounds the whole call.
    match tokio::time::timeout(route.config.timeout, asked).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("the hook did not answer within {} ms", route.config.timeout.as_millis())),
    }
}

/// A shard's [`HookCaller`]: hands calls to the hook thread.
pub struct ShardHooks(pub HookClient);

impl HookCaller for ShardHooks {
    fn call(&self, call: HookCall) -> Pin<Box<dyn Future<Output = HookAnswer>>> {
        let (reply, answer) = oneshot::channel();
        if self.0.jobs.try_send(Job { call, reply }).is_err() {
            return Box::pin(async { Err("too many pre-publish hook calls are waiting".to_string()) });
        }
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err("the pre-publish hook thread stopped".into())) })
    }
}
