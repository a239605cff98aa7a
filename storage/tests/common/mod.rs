//! What the storage test binaries share: finding PostgreSQL, and saying once,
//! where it is seen, that its cases were skipped when there is none.

use std::io::Write;
use std::sync::Once;

/// `DATABASE_URL` when set and not empty, else `None`: the caller skips `what`
/// (a PostgreSQL case) and passes, unless `CONVERGER_REQUIRE_PG=1`, which fails
/// it. The first skip in a test binary prints a banner where it is seen.
pub fn database_url(what: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CONVERGER_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("CONVERGER_REQUIRE_PG=1 but DATABASE_URL is not set: cannot run {what}");
            }
            // Captured with the test's output: seen when the test fails or with --nocapture.
            eprintln!("skipping {what}: DATABASE_URL is not set");
            static BANNER: Once = Once::new();
            // libtest captures `eprint!`, not writes to the stderr handle: this reaches the terminal.
            BANNER.call_once(|| {
                let banner = SKIP_BANNER.replace("{binary}", env!("CARGO_CRATE_NAME"));
                let _ = std::io::stderr().write_all(banner.as_bytes());
            });
            None
        }
    }
}

/// Printed once per test binary when PostgreSQL cases are skipped.
const SKIP_BANNER: &str = "
################################################################################
# converger-storage ({binary}): PostgreSQL cases SKIPPED (DATABASE_URL is not set).
# They pass here without having run.
# To run them: scripts/test (starts a throwaway PostgreSQL), or set DATABASE_URL
# (e.g. from scripts/pg-test-cluster start <dir>). CONVERGER_REQUIRE_PG=1 makes
# a skip fail.
################################################################################
";
