//! HTTP/1.1 over monoio TCP: [`parse`] turns bytes into [`Request`]s (coping
//! with a request split at any byte), [`Response`] encodes answers, and
//! [`conn`] runs one keep-alive connection with pipelining. Routing and
//! handlers live in `crate::api`; this layer knows nothing about them beyond
//! the [`Service`] it calls.

pub mod conn;
pub mod date;
pub mod parse;
pub mod query;
pub mod request;
pub mod response;

pub use parse::{Limits, ParseError};
pub use request::{Method, Request};
pub use response::Response;

/// What a connection calls for each request: the application (router +
/// handlers). Async because handlers await storage; not `Send` because a
/// connection and its handlers never leave their shard.
#[allow(async_fn_in_trait)]
pub trait Service {
    async fn call(&self, request: Request) -> Response;
}
