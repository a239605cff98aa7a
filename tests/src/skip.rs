//! One rule for a test whose outside part (PostgreSQL, nats-server) is
//! missing: it fails when its `CONVERGER_REQUIRE_*` variable is `1` (as
//! `scripts/test` sets it), else it passes without running, says so in its
//! own output, and once per test binary on the terminal.

use std::env;
use std::io::Write;
use std::sync::Once;

/// Call when the part is missing; the caller then returns without running.
/// `missing` completes "`require`=1 but …"; `notice` goes to the test's
/// output, `banner` (once, through `once`) to the terminal.
pub fn skip(require: &str, missing: &str, notice: &str, banner: &str, once: &Once) {
    if env::var(require).as_deref() == Ok("1") {
        panic!("{require}=1 but {missing}");
    }
    // Captured with the test's output: seen when the test fails or with --nocapture.
    eprintln!("notice: {notice}");
    // libtest captures `eprint!`, not writes to the stderr handle: this reaches the terminal.
    once.call_once(|| {
        let _ = std::io::stderr().write_all(banner.as_bytes());
    });
}
