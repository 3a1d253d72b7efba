//! `xenkvm`: run a Xen guest on Linux/KVM, with QEMU's command-line syntax.

mod chardev;
mod cli;
mod console_client;
mod qmp_client;
mod drive;
mod error;
mod net;
mod options;
mod xenstored;

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::error::{error_chain, CliError};

/// Environment variable holding the tracing filter (default `warn`).
const LOG_ENV: &str = "XENKVM_LOG";

fn main() -> ExitCode {
    init_tracing();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "xenstored") {
        let rest = args.get(2..).unwrap_or(&[]);
        return match xenstored::parse(rest).map(xenstored::run) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => fail(&e),
            Err(e) => fail(&e),
        };
    }
    if args.get(1).is_some_and(|a| a == "console") {
        let rest = args.get(2..).unwrap_or(&[]);
        return match console_client::parse(rest).map(|p| console_client::run(&p)) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => fail(&e),
            Err(e) => fail(&e),
        };
    }
    if args.get(1).is_some_and(|a| a == "qmp") {
        let rest = args.get(2..).unwrap_or(&[]);
        return match qmp_client::parse(rest).map(|c| qmp_client::run(&c)) {
            Ok(Ok(result)) => {
                println!("{result}");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => fail(&e),
            Err(e) => fail(&e),
        };
    }
    let cfg = match cli::parse(args) {
        Ok(cfg) => cfg,
        Err(CliError::Clap(err)) => return clap_exit(&err),
        Err(err) => return fail(&err),
    };
    match xenkvm_vmm::run(cfg) {
        Ok(outcome) => {
            if !outcome.message.is_empty() {
                eprintln!("xenkvm: {}", outcome.message);
            }
            exit_code(outcome.exit_code)
        }
        Err(err) => fail(&err),
    }
}

/// Logs to stderr, filtered by `XENKVM_LOG` (e.g. `debug`, `xenkvm_vmm=trace`).
fn init_tracing() {
    let filter = EnvFilter::try_from_env(LOG_ENV);
    let invalid = std::env::var_os(LOG_ENV).is_some() && filter.is_err();
    tracing_subscriber::fmt()
        .with_env_filter(filter.unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if invalid {
        tracing::warn!("ignoring invalid {LOG_ENV}; logging warnings only");
    }
}

/// Prints the error and its causes; exit status 1.
fn fail(err: &dyn std::error::Error) -> ExitCode {
    eprintln!("xenkvm: {}", error_chain(err));
    ExitCode::FAILURE
}

/// `--help`/`--version` print to stdout and succeed; usage errors print clap's
/// message (naming the option) and exit 1, as QEMU does.
fn clap_exit(err: &clap::Error) -> ExitCode {
    // Printing can only fail if stdout/stderr is gone; nothing left to report to.
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The guest's exit status; values outside 0..=255 become 1 rather than wrapping
/// (256 would otherwise look like success).
fn exit_code(code: i32) -> ExitCode {
    u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through_or_become_failure() {
        assert_eq!(exit_code(0), ExitCode::SUCCESS);
        assert_eq!(exit_code(3), ExitCode::from(3));
        assert_eq!(exit_code(255), ExitCode::from(255));
        assert_eq!(exit_code(256), ExitCode::FAILURE);
        assert_eq!(exit_code(-1), ExitCode::FAILURE);
    }
}
