//! Cluster mode: `--nats-url` and `--node-id`. Several nodes share one
//! PostgreSQL and one NATS; the checks here refuse, at start and in one line,
//! the combinations that would run but break a guarantee (embedded storage
//! cannot be shared; a per-process JWT key would make a token issued on one
//! node fail on the next).

use super::{invalid, ConfigError};

/// Longest node id (it appears in logs, metrics labels and bus messages).
pub const MAX_NODE_ID: usize = 64;

/// How this node joins a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS servers to try, in order (one cluster).
    pub nats_urls: Vec<String>,
    pub node_id: String,
    /// True when no id was given and one was made for this start.
    pub node_id_generated: bool,
}

impl ClusterConfig {
    /// `None` when no NATS URL is set (a single node). `has_database` and
    /// `has_jwt_secret` say whether PostgreSQL and a shared token key are set.
    pub fn resolve(
        nats_url: Option<String>,
        node_id: Option<String>,
        has_database: bool,
        has_jwt_secret: bool,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        let urls: Vec<String> = nats_url
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            if node_id.is_some_and(|n| !n.trim().is_empty()) {
                return Err(invalid(
                    "node_id",
                    "--node-id is set without --nats-url: a node id names a cluster member",
                ));
            }
            return Ok(None);
        }
        for url in &urls {
            check_url(url)?;
        }
        if !has_database {
            return Err(invalid(
                "nats_url",
                "--nats-url needs PostgreSQL (--database-url / DATABASE_URL): the embedded store belongs to one node",
            ));
        }
        if !has_jwt_secret {
            return Err(invalid(
                "nats_url",
                "--nats-url needs --jwt-secret (CONVERGER_JWT_SECRET), the same on every node: a token issued by one node is checked by the others",
            ));
        }
        let (node_id, node_id_generated) = match node_id.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
            Some(id) => {
                check_node_id(&id)?;
                (id, false)
            }
            None => (generated_node_id()?, true),
        };
        Ok(Some(ClusterConfig { nats_urls: urls, node_id, node_id_generated }))
    }
}

/// `nats://host:port`, `tls://host:port` or `host:port`.
fn check_url(url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("nats://").or_else(|| url.strip_prefix("tls://")).unwrap_or(url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest);
    let ok = match hostport.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    };
    if !ok || url.contains("://") && !(url.starts_with("nats://") || url.starts_with("tls://")) {
        return Err(invalid("nats_url", &format!("`{}` is not nats://HOST:PORT", super::mask_database_url(url))));
    }
    Ok(())
}

fn check_node_id(id: &str) -> Result<(), ConfigError> {
    if id.len() > MAX_NODE_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(invalid("node_id", "use 1 to 64 letters, digits, `-` or `_`"));
    }
    Ok(())
}

/// `node-` and 8 random hex digits: short enough to read in a log line.
fn generated_node_id() -> Result<String, ConfigError> {
    let hex = crate::auth::random_hex(4)
        .map_err(|e| invalid("node_id", &format!("cannot generate one ({e}); set --node-id")))?;
    Ok(format!("node-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(url: Option<&str>, id: Option<&str>, db: bool, jwt: bool) -> Result<Option<ClusterConfig>, String> {
        ClusterConfig::resolve(url.map(Into::into), id.map(Into::into), db, jwt).map_err(|e| e.to_string())
    }

    #[test]
    fn no_url_is_one_node_and_a_lone_node_id_is_refused() {
        assert_eq!(resolve(None, None, true, true), Ok(None));
        assert_eq!(resolve(Some(" , "), None, true, true), Ok(None));
        assert!(resolve(None, Some("a"), true, true).unwrap_err().contains("without --nats-url"));
    }

    #[test]
    fn cluster_mode_needs_postgres_and_a_shared_jwt_secret() {
        let e = resolve(Some("nats://127.0.0.1:4222"), None, false, true).unwrap_err();
        assert!(e.contains("needs PostgreSQL"), "{e}");
        let e = resolve(Some("nats://127.0.0.1:4222"), None, true, false).unwrap_err();
        assert!(e.contains("--jwt-secret"), "{e}");
    }

    #[test]
    fn urls_split_on_commas_and_ids_are_checked_or_made() {
        let c = resolve(Some("nats://127.0.0.1:4222, 127.0.0.1:4223"), Some("b-1"), true, true).unwrap().unwrap();
        assert_eq!(c.nats_urls, ["nats://127.0.0.1:4222", "127.0.0.1:4223"]);
        assert_eq!((c.node_id.as_str(), c.node_id_generated), ("b-1", false));
        let made = resolve(Some("nats://h:1"), None, true, true).unwrap().unwrap();
        assert!(made.node_id_generated && made.node_id.starts_with("node-") && made.node_id.len() == 13);
        assert!(resolve(Some("nats://h:1"), Some("a.b"), true, true).unwrap_err().contains("letters"));
        assert!(resolve(Some("http://h:1"), None, true, true).unwrap_err().contains("nats://HOST:PORT"));
        assert!(resolve(Some("nats://h"), None, true, true).unwrap_err().contains("nats://HOST:PORT"));
    }
}
