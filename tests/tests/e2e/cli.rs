//! The start-up contract as seen from outside: the ready line and `--help`.

use converger_e2e::{converger_command, TestServer};

#[test]
fn ready_line_names_the_actual_bound_addresses() {
    let server = TestServer::embedded();
    let line = server.ready_line();
    assert_eq!(
        line,
        format!("converger listening http={} binary={}", server.http_addr(), server.binary_addr()),
        "exact format"
    );
    assert_ne!(server.http_addr().port(), 0);
    assert_ne!(server.binary_addr().port(), 0);
    assert_ne!(server.http_addr().port(), server.binary_addr().port());
}

#[test]
fn help_lists_every_option_with_its_env_and_default() {
    let out = converger_command().arg("--help").output().expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let options = [
        ("--http-addr", "CONVERGER_HTTP_ADDR", "0.0.0.0:4000"),
        ("--binary-addr", "CONVERGER_BINARY_ADDR", "0.0.0.0:4001"),
        ("--data-dir", "CONVERGER_DATA_DIR", "./converger-data"),
        ("--database-url", "DATABASE_URL", "unset"),
        ("--admin-token", "CONVERGER_ADMIN_TOKEN", "admin API disabled"),
        ("--admin-allow", "CONVERGER_ADMIN_ALLOW", "127.0.0.0/8,::1/128"),
        ("--jwt-secret", "CONVERGER_JWT_SECRET", "random per start"),
        ("--shards", "CONVERGER_SHARDS", "number of CPU cores"),
        ("--config", "CONVERGER_CONFIG", "TOML"),
        ("--io-driver", "CONVERGER_IO_DRIVER", "[default: auto]"),
        ("--log", "CONVERGER_LOG", "[default: info]"),
        ("--max-body-bytes", "CONVERGER_MAX_BODY_BYTES", "1048576"),
        ("--shutdown-grace-ms", "CONVERGER_SHUTDOWN_GRACE_MS", "[default: 10000]"),
    ];
    for (flag, env, default) in options {
        let at = help.find(&format!("{flag} <")).unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        let section = &help[at..];
        let section = &section[..section[2..].find("\n      --").map(|i| i + 2).unwrap_or(section.len())];
        assert!(section.contains(env), "{flag} does not name {env}: {section}");
        assert!(section.contains(default), "{flag} does not give its default {default:?}: {section}");
    }
    assert!(help.contains("migrate"), "the migrate subcommand is listed");
}

#[test]
fn migrate_on_embedded_storage_says_nothing_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = converger_command().arg("migrate").arg("--data-dir").arg(dir.path()).output().expect("run migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("needs no migrations"));
}
