//! The `converger` binary: parse the command line, run, and turn any failure
//! into one line on stderr and a non-zero exit (never a panic or backtrace).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use converger_server::config::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's own report spans several lines; keep its first, which names
            // the flag and the problem.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("converger: error: {first} (see converger --help)");
            return ExitCode::from(2);
        }
    };
    match converger_server::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("converger: error: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
