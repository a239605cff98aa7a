//! Layering (defaults < file < env < flags) and masking of the effective config.

use std::path::Path;
use std::sync::Mutex;

use clap::Parser;

use super::*;

/// Tests that read the process environment through clap hold this lock, so the
/// one test that sets variables cannot leak into the others.
static ENV: Mutex<()> = Mutex::new(());

fn options(args: &[&str]) -> Options {
    let mut argv = vec!["converger"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("valid flags").options
}

fn file(text: &str) -> FileConfig {
    FileConfig::parse(Path::new("test.toml"), text).expect("valid toml")
}

#[test]
fn defaults_apply_when_nothing_is_given() {
    let _env = ENV.lock();
    let c = Config::resolve(Options::default(), FileConfig::default()).expect("defaults");
    assert_eq!(c.http_addr.to_string(), "0.0.0.0:4000");
    assert_eq!(c.binary_addr.to_string(), "0.0.0.0:4001");
    assert_eq!(c.data_dir, PathBuf::from("./converger-data"));
    assert!(c.database_url.is_none() && c.admin_token.is_none());
    assert_eq!(c.admin_allow.to_string(), "127.0.0.0/8,::1/128");
    assert!(c.jwt_secret.generated);
    assert_eq!(c.jwt_secret.key.expose().len(), 64);
    assert!(c.shards >= 1);
    assert_eq!(c.io_driver, IoDriver::Auto);
    assert_eq!(c.log.to_string(), "info");
    assert_eq!(c.max_body_bytes, 1024 * 1024);
    assert_eq!(c.shutdown_grace, Duration::from_secs(10));
}

#[test]
fn file_overrides_defaults_and_flags_override_file() {
    let _env = ENV.lock();
    let f = file("http_addr = \"127.0.0.1:7000\"\nshards = 3\nlog = \"debug\"\njwt_secret = \"from-file\"\n");
    let o = options(&["--shards", "5", "--io-driver", "epoll"]);
    let c = Config::resolve(o, f).expect("config");
    assert_eq!(c.http_addr.to_string(), "127.0.0.1:7000", "file beats default");
    assert_eq!(c.shards, 5, "flag beats file");
    assert_eq!(c.log.to_string(), "debug");
    assert_eq!(c.io_driver, IoDriver::Epoll);
    assert_eq!(c.jwt_secret.key.expose(), "from-file");
    assert!(!c.jwt_secret.generated);
}

#[test]
fn env_overrides_file_and_flag_overrides_env() {
    let _env = ENV.lock();
    std::env::set_var("CONVERGER_SHARDS", "7");
    std::env::set_var("CONVERGER_BINARY_ADDR", "127.0.0.1:7101");
    let o = options(&["--binary-addr", "127.0.0.1:7102"]);
    std::env::remove_var("CONVERGER_SHARDS");
    std::env::remove_var("CONVERGER_BINARY_ADDR");
    let c = Config::resolve(o, file("shards = 2\nbinary_addr = \"127.0.0.1:7100\"\n")).expect("config");
    assert_eq!(c.shards, 7, "env beats file");
    assert_eq!(c.binary_addr.to_string(), "127.0.0.1:7102", "flag beats env");
}

#[test]
fn invalid_values_are_errors_naming_the_key() {
    let _env = ENV.lock();
    let err = Config::resolve(options(&["--shards", "0"]), FileConfig::default()).expect_err("0 shards");
    assert!(err.to_string().contains("shards"), "{err}");
    let argv = ["converger", "--admin-allow", "10.0.0.0/40"];
    let err = Cli::try_parse_from(argv).expect_err("bad cidr").to_string();
    assert!(err.contains("--admin-allow") && err.contains("10.0.0.0/40"), "{err}");
}

#[test]
fn the_otlp_endpoint_is_an_http_url_unset_by_default_and_masked_in_the_summary() {
    let _env = ENV.lock();
    let c = Config::resolve(options(&[]), FileConfig::default()).expect("config");
    assert_eq!(c.otlp_endpoint, None);
    assert!(c.masked_summary().contains("otlp_endpoint=unset"), "{}", c.masked_summary());
    let o = options(&["--otlp-endpoint", "https://user:pw-SECRET@collector:4318"]);
    let c = Config::resolve(o, FileConfig::default()).expect("config");
    assert_eq!(c.otlp_endpoint.as_deref(), Some("https://user:pw-SECRET@collector:4318"));
    let summary = c.masked_summary();
    assert!(
        summary.contains("otlp_endpoint=https://user:***@collector:4318") && !summary.contains("pw-SECRET"),
        "{summary}"
    );
    let err =
        Config::resolve(options(&["--otlp-endpoint", "collector:4318"]), FileConfig::default()).expect_err("not a URL");
    assert!(err.to_string().contains("otlp_endpoint"), "{err}");
    let file: FileConfig = toml::from_str("otlp_endpoint = \"http://127.0.0.1:4318\"").expect("toml");
    let c = Config::resolve(options(&[]), file).expect("config");
    assert_eq!(c.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
}

#[test]
fn empty_secrets_mean_unset() {
    let _env = ENV.lock();
    let o = options(&["--database-url", "", "--admin-token", " "]);
    let c = Config::resolve(o, FileConfig::default()).expect("config");
    assert!(c.database_url.is_none() && c.admin_token.is_none());
}

#[test]
fn summary_masks_every_secret() {
    let _env = ENV.lock();
    let o = options(&[
        "--admin-token",
        "adm-SECRET",
        "--jwt-secret",
        "jwt-SECRET",
        "--database-url",
        "postgres://conv:pw-SECRET@db:5432/conv",
    ]);
    let summary = Config::resolve(o, FileConfig::default()).expect("config").masked_summary();
    assert!(!summary.contains("SECRET"), "{summary}");
    assert!(summary.contains("database_url=postgres://conv:***@db:5432/conv"), "{summary}");
    assert!(summary.contains("admin_token=***"), "{summary}");
    assert!(!summary.contains('\n'));
}

#[test]
fn tls_needs_both_files_and_the_summary_shows_it_on_with_paths_only() {
    let _env = ENV.lock();
    let c = Config::resolve(Options::default(), FileConfig::default()).expect("defaults");
    assert!(c.tls.is_none() && !c.tls_redirect);
    assert!(c.masked_summary().contains("tls=off"));
    let err = Config::resolve(options(&["--tls-cert", "c.pem"]), FileConfig::default()).expect_err("cert alone");
    assert!(err.to_string().contains("--tls-key"), "{err}");
    let err = Config::resolve(options(&[]), file("tls_key = \"k.pem\"\n")).expect_err("key alone");
    assert!(err.to_string().contains("--tls-cert"), "{err}");
    let o = options(&["--tls-cert", "/etc/c.pem", "--tls-redirect"]);
    let c = Config::resolve(o, file("tls_key = \"/etc/k.pem\"\n")).expect("config");
    let paths = c.tls.as_ref().expect("tls on");
    assert_eq!((paths.cert.to_str(), paths.key.to_str()), (Some("/etc/c.pem"), Some("/etc/k.pem")));
    assert!(c.tls_redirect);
    let summary = c.masked_summary();
    assert!(summary.contains("tls=on tls_cert=/etc/c.pem tls_key=/etc/k.pem tls_redirect=true"), "{summary}");
}
