//! Start-up failures: a non-zero exit and exactly one line on stderr that says
//! what is wrong and how to fix it — never a panic or a backtrace.

use std::net::TcpListener;
use std::process::Output;

use converger_e2e::converger_command;

/// Runs the binary to completion with `args`, listening on port 0 unless
/// `args` say otherwise.
fn run(args: &[&str], data_dir: &std::path::Path) -> Output {
    let mut cmd = converger_command();
    for flag in ["--http-addr", "--binary-addr"] {
        if !args.contains(&flag) {
            cmd.args([flag, "127.0.0.1:0"]);
        }
    }
    cmd.arg("--data-dir").arg(data_dir).args(args).output().expect("run converger")
}

/// Asserts a failed start with one stderr line containing every `needle`.
fn assert_one_line_failure(out: &Output, needles: &[&str]) -> String {
    assert!(!out.status.success(), "expected failure, got {}", out.status);
    assert!(out.stdout.is_empty(), "no ready line: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr, got:\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
    stderr
}

#[test]
fn port_already_taken_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(&["--http-addr", &addr], dir.path());
    assert_one_line_failure(&out, &[&addr, "already in use", "--http-addr"]);
}

#[test]
fn unwritable_data_dir_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A path under a regular file cannot be created, even by root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").expect("write file");
    let out = run(&[], &file.join("data"));
    assert_one_line_failure(&out, &["data directory", "--data-dir"]);
}

#[test]
fn unreachable_database_url_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("postgres://converger:hunter2@127.0.0.1:{closed}/converger");
    let out = run(&["--database-url", &url], dir.path());
    let line = assert_one_line_failure(&out, &["PostgreSQL", "DATABASE_URL"]);
    assert!(!line.contains("hunter2"), "password masked: {line}");
}

#[test]
fn database_that_does_not_exist_exits_non_zero_with_one_clear_line() {
    // A running PostgreSQL that refuses the connection: a missing database.
    let Some(url) = converger_e2e::pg::database_url() else { return };
    let Some((server, _db)) = url.split('?').next().and_then(|u| u.rsplit_once('/')) else {
        panic!("DATABASE_URL has no database name: {url}");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = format!("{server}/converger_no_such_database");
    let out = run(&["--database-url", &wrong], dir.path());
    assert_one_line_failure(&out, &["PostgreSQL", "converger_no_such_database", "does not exist", "DATABASE_URL"]);
}

#[test]
fn bad_toml_exits_non_zero_naming_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("converger.toml");
    std::fs::write(&config, "shards = 2\nhttp_addr = \"127.0.0.1:0\"\nlog = [unclosed\n").expect("write");
    let out = run(&["--config", config.to_str().expect("utf8 path")], dir.path());
    assert_one_line_failure(&out, &["converger.toml", "line 3"]);
}

#[test]
fn bad_value_in_toml_names_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("converger.toml");
    std::fs::write(&config, "\nadmin_allow = \"10.0.0.0/99\"\n").expect("write");
    let out = run(&["--config", config.to_str().expect("utf8 path")], dir.path());
    assert_one_line_failure(&out, &["line 2", "admin_allow", "10.0.0.0/99"]);
}

#[test]
fn unknown_config_key_exits_non_zero_naming_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("converger.toml");
    std::fs::write(&config, "shards = 2\nhttp_adress = \"127.0.0.1:0\"\n").expect("write");
    let out = run(&["--config", config.to_str().expect("utf8 path")], dir.path());
    assert_one_line_failure(&out, &["http_adress", "line 2", "unknown field"]);
}

#[test]
fn bad_flag_value_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["--shards", "many"], dir.path());
    assert_one_line_failure(&out, &["--shards", "many"]);
    let out = run(&["--io-driver", "kqueue"], dir.path());
    assert_one_line_failure(&out, &["--io-driver", "kqueue"]);
}

#[test]
fn bad_env_value_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = converger_command()
        .env("CONVERGER_HTTP_ADDR", "not-an-address")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run converger");
    assert_one_line_failure(&out, &["not-an-address", "--http-addr"]);
}

#[test]
fn second_server_on_a_taken_port_fails_instead_of_sharing_it() {
    // The shards share their port through SO_REUSEPORT; a second converger
    // must still be refused rather than silently take half the connections.
    let first = converger_e2e::TestServer::embedded();
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = first.http_addr().to_string();
    let out = run(&["--http-addr", &addr], dir.path());
    assert_one_line_failure(&out, &[&addr, "already in use"]);
    assert_eq!(first.get("/health").status, 200, "the first server is unharmed");
}

#[test]
fn cluster_mode_without_postgres_or_a_shared_jwt_secret_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["--nats-url", "nats://127.0.0.1:4222"], dir.path());
    assert_one_line_failure(&out, &["--nats-url", "PostgreSQL", "embedded"]);
    // Checked before any connection is tried: the database need not exist.
    let url = "postgres://converger:hunter2@127.0.0.1:1/converger";
    let out = run(&["--nats-url", "nats://127.0.0.1:4222", "--database-url", url], dir.path());
    let line = assert_one_line_failure(&out, &["--jwt-secret", "same on every node"]);
    assert!(!line.contains("hunter2"), "no password in the line: {line}");
    let out = run(&["--node-id", "a"], dir.path());
    assert_one_line_failure(&out, &["--node-id", "without --nats-url"]);
}

#[test]
fn a_cluster_node_that_cannot_reach_nats_exits_with_one_clear_line() {
    let Some(schema) = converger_e2e::pg::PgSchema::create() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let nats = format!("nats://127.0.0.1:{closed}");
    let args = ["--database-url", &schema.url, "--nats-url", &nats, "--jwt-secret", "s", "--log", "error"];
    let out = run(&args, dir.path());
    assert_one_line_failure(&out, &["cannot reach NATS", &nats, "--nats-url"]);
}
