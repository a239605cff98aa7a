//! `converger-test-certs DIR`: a throwaway CA and a server certificate it
//! signs for `localhost` and `127.0.0.1`, written as `DIR/ca.pem`,
//! `DIR/cert.pem` and `DIR/key.pem`, for the Node suites that run the
//! server over TLS (rcgen, the same code as the Rust tests' `TlsFiles`).

use std::path::PathBuf;
use std::process::ExitCode;

use converger_e2e::tls::TlsFiles;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: converger-test-certs DIR");
        return ExitCode::from(2);
    };
    let files = TlsFiles::new();
    let copy = |from: &PathBuf, name: &str| std::fs::copy(from, dir.join(name)).map(|_| ());
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| copy(&files.cert, "cert.pem"))
        .and_then(|()| copy(&files.key, "key.pem"))
        .and_then(|()| std::fs::write(dir.join("ca.pem"), &files.ca_pem));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("converger-test-certs: cannot write to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
