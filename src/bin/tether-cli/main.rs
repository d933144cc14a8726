//! tether-cli: subscribe, publish and ping from the shell, the way
//! mosquitto_sub / mosquitto_pub / redis-cli are used, over protocol v2
//! (docs/protocol.md §7) with the library's reconnecting pub/sub client.
//!
//! - `args` and `help`: the command line and its help texts.
//! - `connect`: flags to resolved addresses and a client configuration.
//! - `sub`, `publish`, `ping`: the subcommands.
//! - `output`: payload lines and JSON lines on stdout.
#![deny(unsafe_code)]

mod args;
mod connect;
mod help;
mod output;
mod ping;
mod publish;
mod sub;

use std::process::ExitCode;

use args::{parse_args, Command};

/// Why a run failed, and so its exit status.
#[derive(Debug)]
pub enum Fail {
    /// A bad command line or file: exit 2.
    Usage(String),
    /// The server, the connection or a publish failed: exit 1.
    Runtime(String),
}

impl Fail {
    /// A failed write to stdout.
    pub fn stdout(e: std::io::Error) -> Fail {
        Fail::Runtime(format!("writing stdout: {e}"))
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let command = match parse_args(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => return fail(Fail::Usage(e.to_string())),
    };
    let result = match &command {
        Command::Help(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Command::Sub(a) => connect::prepare(&a.common).and_then(|t| sub::run(a, t)),
        Command::Pub(a) => connect::prepare(&a.common).and_then(|t| publish::run(a, t)),
        Command::Ping(common) => connect::prepare(common).and_then(|t| ping::run(common, t)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: Fail) -> ExitCode {
    let (code, message) = match e {
        Fail::Usage(m) => (2, m),
        Fail::Runtime(m) => (1, m),
    };
    eprintln!("tether-cli: {message}");
    ExitCode::from(code)
}
