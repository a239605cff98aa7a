//! The first run on embedded storage: with no admin token and no JWT secret
//! configured, the server makes them once and keeps them in the data
//! directory (`admin-token`, `jwt-secret`, mode 0600), so a newcomer's
//! `cargo run` has a usable admin API and client tokens that survive a
//! restart. A configured value always wins (an empty `--admin-token`
//! disables the admin API); PostgreSQL deployments are untouched: they have no
//! data directory, and their operators configure both.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, JwtSecret, Secret};

use super::startup::StartupError;

pub const ADMIN_TOKEN_FILE: &str = "admin-token";
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// What the first run did, for the start-up message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// The admin token's file, when the token is kept in the data directory.
    pub admin_token_file: Option<PathBuf>,
    /// The token, when it was made by this very start (printed once).
    pub new_admin_token: Option<String>,
}

/// Fills in the admin token and the JWT secret from (or into) the data
/// directory, where embedded storage is used and they are not configured.
pub fn apply(config: &mut Config) -> Result<Kept, StartupError> {
    let mut kept = Kept::default();
    if config.database_url.is_some() {
        return Ok(kept);
    }
    let dir = config.data_dir.clone();
    if !config.admin_token_given {
        let path = dir.join(ADMIN_TOKEN_FILE);
        let (token, made) = read_or_make(&path, "cvg_admin_")?;
        config.admin_token = Some(Secret::new(token.clone()));
        kept.new_admin_token = made.then_some(token);
        kept.admin_token_file = Some(path);
    }
    if config.jwt_secret.generated {
        let (key, _) = read_or_make(&dir.join(JWT_SECRET_FILE), "")?;
        config.jwt_secret = JwtSecret { key: Secret::new(key), generated: false };
    }
    Ok(kept)
}

/// The secret kept at `path`, or a new one written there (0600) first.
fn read_or_make(path: &Path, prefix: &str) -> Result<(String, bool), StartupError> {
    let err = |source| StartupError::Secret { path: path.to_path_buf(), source };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let hex = crate::auth::random_hex(32).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let secret = format!("{prefix}{hex}");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    Ok((secret, true))
}

/// The console's address as a browser can open it (an unspecified bind
/// address is reached on localhost).
pub fn console_url(http: std::net::SocketAddr) -> String {
    let host = match http.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "localhost".to_string(),
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/admin", http.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Options};

    fn config(dir: &Path, options: Options) -> Config {
        let o = Options { data_dir: Some(dir.to_path_buf()), ..options };
        Config::resolve(o, FileConfig::default()).expect("config")
    }

    #[test]
    fn made_once_kept_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = config(dir.path(), Options::default());
        let kept = apply(&mut first).expect("first run");
        let token = kept.new_admin_token.clone().expect("a new token is shown once");
        assert_eq!(first.admin_token.as_ref().map(|t| t.expose().to_string()), Some(token.clone()));
        assert!(!first.jwt_secret.generated);
        #[cfg(unix)]
        for file in [ADMIN_TOKEN_FILE, JWT_SECRET_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(file)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mut again = config(dir.path(), Options::default());
        let kept = apply(&mut again).expect("second run");
        assert_eq!(kept.new_admin_token, None, "not shown again");
        assert_eq!(again.admin_token.map(|t| t.expose().to_string()), Some(token));
        assert_eq!(again.jwt_secret.key.expose(), first.jwt_secret.key.expose(), "client tokens survive");
    }

    #[test]
    fn configured_values_win_and_an_empty_token_disables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Options { admin_token: Some("mine".into()), jwt_secret: Some("j".into()), ..Options::default() };
        let mut c = config(dir.path(), o);
        assert_eq!(apply(&mut c).expect("apply"), Kept::default());
        assert_eq!(c.admin_token.map(|t| t.expose().to_string()), Some("mine".into()));
        assert!(!dir.path().join(ADMIN_TOKEN_FILE).exists() && !dir.path().join(JWT_SECRET_FILE).exists());
        let mut c = config(dir.path(), Options { admin_token: Some(String::new()), ..Options::default() });
        apply(&mut c).expect("apply");
        assert!(c.admin_token.is_none(), "an empty token keeps the admin API off");
    }

    #[test]
    fn postgres_deployments_are_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Options { database_url: Some("postgres://x@127.0.0.1/db".into()), ..Options::default() };
        let mut c = config(dir.path(), o);
        assert_eq!(apply(&mut c).expect("apply"), Kept::default());
        assert!(c.admin_token.is_none() && c.jwt_secret.generated);
    }

    #[test]
    fn console_urls_are_browsable() {
        assert_eq!(console_url("0.0.0.0:4000".parse().expect("addr")), "http://localhost:4000/admin");
        assert_eq!(console_url("127.0.0.1:9".parse().expect("addr")), "http://127.0.0.1:9/admin");
        assert_eq!(console_url("[::1]:9".parse().expect("addr")), "http://[::1]:9/admin");
    }
}
