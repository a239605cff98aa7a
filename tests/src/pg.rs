//! PostgreSQL for e2e tests: each server gets a fresh schema `t_<uuid>` in the
//! database named by `DATABASE_URL`, selected through the connection URL's
//! `options=-csearch_path=…`, and dropped when the server is.
//!
//! Without `DATABASE_URL` the PostgreSQL cases pass without running, and the
//! test binary says so once, on the terminal (see [`database_url`]).

use std::env;
use std::sync::Once;

use crate::skip::skip;

/// `DATABASE_URL`, or `None` when it is unset: the caller skips its PostgreSQL
/// case. With `CONVERGER_REQUIRE_PG=1` a missing database fails the test instead.
/// The first skip in a test binary prints a banner where it is seen.
pub fn database_url() -> Option<String> {
    if let Ok(url) = env::var("DATABASE_URL") {
        return Some(url);
    }
    static BANNER: Once = Once::new();
    let notice = "DATABASE_URL is not set; skipping the PostgreSQL variant of this test";
    skip("CONVERGER_REQUIRE_PG", "DATABASE_URL is not set", notice, SKIP_BANNER, &BANNER);
    None
}

/// Printed once per test binary when PostgreSQL cases are skipped.
const SKIP_BANNER: &str = "
################################################################################
# converger-e2e: PostgreSQL cases SKIPPED (DATABASE_URL is not set).
# They pass here without having run.
# To run them: scripts/test (starts a throwaway PostgreSQL), or set DATABASE_URL
# (e.g. from scripts/pg-test-cluster start <dir>). CONVERGER_REQUIRE_PG=1 makes
# a skip fail.
################################################################################
";

/// A schema created for one test server.
pub struct PgSchema {
    admin_url: String,
    pub name: String,
    /// `DATABASE_URL` pointed at the schema: what the server is given.
    pub url: String,
}

impl PgSchema {
    /// A fresh schema, or `None` when `DATABASE_URL` is unset (see [`database_url`]).
    pub fn create() -> Option<PgSchema> {
        Some(PgSchema::create_in(&database_url()?))
    }

    /// A fresh schema in the database at `admin_url` (e.g. a [`PrivatePostgres`]).
    pub fn create_in(admin_url: &str) -> PgSchema {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        execute(admin_url, &format!("CREATE SCHEMA {name}"));
        let url = with_search_path(admin_url, &name);
        PgSchema { admin_url: admin_url.to_string(), name, url }
    }
}

/// A PostgreSQL server of one test's own (`scripts/pg-test-cluster` in a
/// temporary directory), for tests that take it down and up again; stopped
/// and removed on drop. Declare it before whatever uses it, so it is dropped last.
pub struct PrivatePostgres {
    dir: std::path::PathBuf,
    url: String,
}

impl PrivatePostgres {
    /// Started, or `None` when the PostgreSQL cases are skipped (no
    /// `DATABASE_URL`: see [`database_url`]; the tools are there when it is set).
    pub fn start() -> Option<PrivatePostgres> {
        database_url()?;
        let dir = std::env::temp_dir().join(format!("converger-private-pg-{}", uuid::Uuid::new_v4().simple()));
        let out = script().arg("start").arg(&dir).output().expect("run scripts/pg-test-cluster");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().find_map(|l| l.strip_prefix("DATABASE_URL=")).map(str::to_owned);
        match url {
            Some(url) if out.status.success() => Some(PrivatePostgres { dir, url }),
            _ => panic!("scripts/pg-test-cluster start failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (fast shutdown: sessions are cut), keeping its data.
    pub fn down(&self) {
        self.run("down");
    }

    /// Starts it again on the same port.
    pub fn up(&self) {
        self.run("up");
    }

    fn run(&self, command: &str) {
        let out = script().arg(command).arg(&self.dir).output().expect("run scripts/pg-test-cluster");
        assert!(out.status.success(), "pg-test-cluster {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = script().arg("stop").arg(&self.dir).output();
    }
}

/// `scripts/pg-test-cluster` of this workspace.
fn script() -> std::process::Command {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    std::process::Command::new(root.join("scripts/pg-test-cluster"))
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        execute(&self.admin_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// `url` with the schema as its search path, in URL or key=value form.
fn with_search_path(url: &str, schema: &str) -> String {
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-csearch_path%3D{schema}")
    } else {
        format!("{url} options=-csearch_path={schema}")
    }
}

/// Runs `sql` on a throwaway connection (tests only: panics on failure).
fn execute(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to DATABASE_URL");
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        drop(client);
        let _ = driver.await;
    });
}

#[cfg(test)]
mod tests {
    use super::with_search_path;

    #[test]
    fn search_path_is_added_to_either_url_form() {
        assert_eq!(with_search_path("postgres://u@h/d", "t_1"), "postgres://u@h/d?options=-csearch_path%3Dt_1");
        assert_eq!(
            with_search_path("postgres://u@h/d?sslmode=disable", "t_1"),
            "postgres://u@h/d?sslmode=disable&options=-csearch_path%3Dt_1"
        );
        assert_eq!(with_search_path("host=h dbname=d", "t_1"), "host=h dbname=d options=-csearch_path=t_1");
    }
}
