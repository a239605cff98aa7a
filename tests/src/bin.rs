//! Finds the `converger` binary under test: `CONVERGER_BIN` when set, else it
//! is built once per test process with the same cargo, profile and target
//! directory as the tests themselves, so `cargo test` never runs a stale binary.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of the binary, building it on first use.
pub fn converger_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match env::var_os("CONVERGER_BIN") {
        Some(path) => PathBuf::from(path),
        None => build(),
    })
}

/// A command for the binary with a clean configuration environment: no
/// `CONVERGER_*` and no `DATABASE_URL` leak in from the developer's shell.
pub fn converger_command() -> Command {
    let mut cmd = Command::new(converger_bin());
    for (key, _) in env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("CONVERGER_") || key_str == "DATABASE_URL" {
            cmd.env_remove(&key);
        }
    }
    cmd
}

fn build() -> PathBuf {
    // This test executable lives in <target-dir>/<profile-dir>/deps/.
    let exe = env::current_exe().expect("current test executable");
    let profile_dir = exe.parent().and_then(Path::parent).expect("test executable in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "converger-server", "--bin", "converger", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build for the converger binary");
    assert!(status.success(), "cargo build of the converger binary failed: {status}");
    profile_dir.join("converger")
}
