//! The edge's options: which browser origins may call the API and open
//! sockets (CORS, WebSocket origin check), how many connections and
//! subscriptions a node, an address and a connection may hold (caps), and the
//! rate limits. Every limit holds per node; a per-second budget is split
//! evenly across the node's shards (docs/operations.md, "Limits").

use std::fmt;
use std::str::FromStr;

use clap::Args;
use serde::Deserialize;

use super::{invalid, ConfigError, FileConfig};

pub mod defaults {
    pub const MAX_CONNECTIONS: usize = 100_000;
    pub const MAX_CONNECTIONS_PER_IP: usize = 10_000;
    pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 1_000;
    pub const TENANT_REQUESTS_PER_SECOND: u32 = 20_000;
    pub const IP_REQUESTS_PER_SECOND: u32 = 5_000;
    pub const TENANT_ACTIVITIES_PER_SECOND: u32 = 20_000;
    pub const IP_CONNECTIONS_PER_SECOND: u32 = 500;
    /// WhatsApp Cloud API's default throughput is 80 messages/s per number.
    pub const CHANNEL_DELIVERIES_PER_SECOND: u32 = 80;
}

/// Browser origins allowed by CORS and the WebSocket origin check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origins {
    /// No list: no CORS headers, and sockets accept any Origin.
    #[default]
    Unset,
    /// `*`: every origin (never together with credentials).
    Any,
    /// Exact origins (`scheme://host[:port]`, lower-case).
    List(Vec<String>),
}

impl Origins {
    /// Whether a request with `Origin: origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::Unset | Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    pub fn is_set(&self) -> bool {
        !matches!(self, Origins::Unset)
    }
}

impl FromStr for Origins {
    type Err = String;

    fn from_str(s: &str) -> Result<Origins, String> {
        let items: Vec<&str> = s.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
        if items.is_empty() {
            return Ok(Origins::Unset);
        }
        if items == ["*"] {
            return Ok(Origins::Any);
        }
        let mut list = Vec::new();
        for item in items {
            let (scheme, rest) = item.split_once("://").ok_or_else(|| format!("`{item}` is not an origin"))?;
            let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
            if !matches!(scheme, "http" | "https") || rest.is_empty() || !rest.chars().all(plain) {
                return Err(format!(
                    "`{item}` is not an origin (scheme://host[:port], no path; `*` alone allows every origin)"
                ));
            }
            list.push(item.to_ascii_lowercase());
        }
        Ok(Origins::List(list))
    }
}

impl fmt::Display for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origins::Unset => f.write_str("unset"),
            Origins::Any => f.write_str("*"),
            Origins::List(l) => f.write_str(&l.join(",")),
        }
    }
}

impl<'de> Deserialize<'de> for Origins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Per-second budgets (token buckets whose burst is one second's worth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// REST requests per tenant (after authentication).
    pub tenant_requests: u32,
    /// REST requests per client address (before authentication).
    pub ip_requests: u32,
    /// Activities written per tenant, whatever the transport.
    pub tenant_activities: u32,
    /// New connections (HTTP and binary) per client address.
    pub ip_connections: u32,
    /// Delivery attempts per channel (the delivery worker waits, never fails).
    pub channel_deliveries: u32,
}

/// The edge's effective options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub cors_origins: Origins,
    /// `Access-Control-Allow-Credentials: true` for listed origins.
    pub cors_credentials: bool,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_subscriptions_per_connection: usize,
    pub rates: Rates,
}

/// The edge's flags (flattened into [`super::Options`]).
#[derive(Debug, Default, Args)]
pub struct EdgeOptions {
    /// Browser origins allowed to call the API and open sockets, comma-separated
    /// (`https://app.example.com,https://admin.example.com`), or `*` for any
    /// (not with --cors-credentials). With a list, a WebSocket upgrade from
    /// another Origin is refused 403 [default: unset = no CORS headers, any Origin]
    #[arg(long, env = "CONVERGER_CORS_ORIGINS", value_name = "ORIGINS", hide_env_values = true, global = true)]
    pub cors_origins: Option<Origins>,

    /// Send `Access-Control-Allow-Credentials: true` to listed origins [default: false]
    #[arg(
        long,
        env = "CONVERGER_CORS_CREDENTIALS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        hide_env_values = true,
        global = true
    )]
    pub cors_credentials: Option<bool>,

    /// Open connections (HTTP, WebSocket, binary) per node; more are refused
    /// with `too_many_connections` [default: 100000]
    #[arg(long, env = "CONVERGER_MAX_CONNECTIONS", value_name = "N", hide_env_values = true, global = true)]
    pub max_connections: Option<usize>,

    /// Open connections per client address [default: 10000]
    #[arg(long, env = "CONVERGER_MAX_CONNECTIONS_PER_IP", value_name = "N", hide_env_values = true, global = true)]
    pub max_connections_per_ip: Option<usize>,

    /// Conversations one connection may follow at once (Phoenix joins, binary
    /// subscriptions); more are refused with `too_many_subscriptions` [default: 1000]
    #[arg(
        long,
        env = "CONVERGER_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        value_name = "N",
        hide_env_values = true,
        global = true
    )]
    pub max_subscriptions_per_connection: Option<usize>,

    /// REST requests per second per tenant (per node; tenants may have their
    /// own through the admin API) [default: 20000]
    #[arg(long, env = "CONVERGER_TENANT_REQUESTS_PER_SECOND", value_name = "N", hide_env_values = true, global = true)]
    pub tenant_requests_per_second: Option<u32>,

    /// REST requests per second per client address [default: 5000]
    #[arg(long, env = "CONVERGER_IP_REQUESTS_PER_SECOND", value_name = "N", hide_env_values = true, global = true)]
    pub ip_requests_per_second: Option<u32>,

    /// Activities written per second per tenant, over every transport (per
    /// node; tenants may have their own) [default: 20000]
    #[arg(
        long,
        env = "CONVERGER_TENANT_ACTIVITIES_PER_SECOND",
        value_name = "N",
        hide_env_values = true,
        global = true
    )]
    pub tenant_activities_per_second: Option<u32>,

    /// New connections per second per client address [default: 500]
    #[arg(long, env = "CONVERGER_IP_CONNECTIONS_PER_SECOND", value_name = "N", hide_env_values = true, global = true)]
    pub ip_connections_per_second: Option<u32>,

    /// Delivery attempts per second per channel; a throttled delivery waits
    /// (tenants may have their own) [default: 80, WhatsApp's default throughput]
    #[arg(
        long,
        env = "CONVERGER_CHANNEL_DELIVERIES_PER_SECOND",
        value_name = "N",
        hide_env_values = true,
        global = true
    )]
    pub channel_deliveries_per_second: Option<u32>,
}

impl Edge {
    /// Layers the flags over the file over the defaults.
    pub(super) fn resolve(o: EdgeOptions, f: &FileConfig) -> Result<Edge, ConfigError> {
        use defaults as d;
        let cors_origins = o.cors_origins.or_else(|| f.cors_origins.clone()).unwrap_or_default();
        let cors_credentials = o.cors_credentials.or(f.cors_credentials).unwrap_or(false);
        if cors_credentials && cors_origins == Origins::Any {
            return Err(invalid(
                "cors_credentials",
                "cannot be used with cors_origins `*` (browsers refuse credentials for any origin): list the origins",
            ));
        }
        let count = |key, given: Option<usize>, default| positive(key, given.map(|n| n as u64), default as u64);
        let rate = |key, given: Option<u32>, default: u32| {
            positive(key, given.map(u64::from), u64::from(default)).map(|n| n as u32)
        };
        Ok(Edge {
            cors_origins,
            cors_credentials,
            max_connections: count("max_connections", o.max_connections.or(f.max_connections), d::MAX_CONNECTIONS)?
                as usize,
            max_connections_per_ip: count(
                "max_connections_per_ip",
                o.max_connections_per_ip.or(f.max_connections_per_ip),
                d::MAX_CONNECTIONS_PER_IP,
            )? as usize,
            max_subscriptions_per_connection: count(
                "max_subscriptions_per_connection",
                o.max_subscriptions_per_connection.or(f.max_subscriptions_per_connection),
                d::MAX_SUBSCRIPTIONS_PER_CONNECTION,
            )? as usize,
            rates: Rates {
                tenant_requests: rate(
                    "tenant_requests_per_second",
                    o.tenant_requests_per_second.or(f.tenant_requests_per_second),
                    d::TENANT_REQUESTS_PER_SECOND,
                )?,
                ip_requests: rate(
                    "ip_requests_per_second",
                    o.ip_requests_per_second.or(f.ip_requests_per_second),
                    d::IP_REQUESTS_PER_SECOND,
                )?,
                tenant_activities: rate(
                    "tenant_activities_per_second",
                    o.tenant_activities_per_second.or(f.tenant_activities_per_second),
                    d::TENANT_ACTIVITIES_PER_SECOND,
                )?,
                ip_connections: rate(
                    "ip_connections_per_second",
                    o.ip_connections_per_second.or(f.ip_connections_per_second),
                    d::IP_CONNECTIONS_PER_SECOND,
                )?,
                channel_deliveries: rate(
                    "channel_deliveries_per_second",
                    o.channel_deliveries_per_second.or(f.channel_deliveries_per_second),
                    d::CHANNEL_DELIVERIES_PER_SECOND,
                )?,
            },
        })
    }

    /// The edge's part of the effective-configuration line.
    pub fn summary(&self) -> String {
        let r = &self.rates;
        format!(
            "cors_origins={} cors_credentials={} max_connections={} max_connections_per_ip={} max_subscriptions_per_connection={} tenant_requests_per_second={} ip_requests_per_second={} tenant_activities_per_second={} ip_connections_per_second={} channel_deliveries_per_second={}",
            self.cors_origins,
            self.cors_credentials,
            self.max_connections,
            self.max_connections_per_ip,
            self.max_subscriptions_per_connection,
            r.tenant_requests,
            r.ip_requests,
            r.tenant_activities,
            r.ip_connections,
            r.channel_deliveries,
        )
    }
}

/// A count or rate: given, or the default; zero is refused.
fn positive(key: &'static str, given: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match given {
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(n) if n > u64::from(u32::MAX) => Err(invalid(key, "is too large")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_as_a_list_any_or_unset() {
        assert_eq!("".parse::<Origins>(), Ok(Origins::Unset));
        assert_eq!(" * ".parse::<Origins>(), Ok(Origins::Any));
        let list: Origins = "https://App.example.com, http://localhost:3000".parse().expect("list");
        assert_eq!(list, Origins::List(vec!["https://app.example.com".into(), "http://localhost:3000".into()]));
        assert!(list.allows("https://app.example.com") && list.allows("HTTP://LOCALHOST:3000"));
        assert!(!list.allows("https://evil.example.com"));
        for bad in ["example.com", "ftp://x", "https://x/path", "https://", "*,https://x"] {
            assert!(bad.parse::<Origins>().is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_with_any_origin_are_refused_and_zero_is_refused() {
        let f = FileConfig::default();
        let o = EdgeOptions { cors_origins: Some(Origins::Any), cors_credentials: Some(true), ..Default::default() };
        assert!(Edge::resolve(o, &f).expect_err("refused").to_string().contains("cors_credentials"));
        let o = EdgeOptions { ip_requests_per_second: Some(0), ..Default::default() };
        assert!(Edge::resolve(o, &f).expect_err("zero").to_string().contains("ip_requests_per_second"));
        let e = Edge::resolve(EdgeOptions::default(), &f).expect("defaults");
        assert_eq!(e.rates.channel_deliveries, 80);
        assert_eq!(e.cors_origins, Origins::Unset);
    }
}
