//! Connects to a tether server, sends a few messages, prints the echoes and
//! the client's status events, then closes politely; in plaintext, or over
//! TLS with `--tls`.
//!
//! ```text
//! cargo run --example client -- [ADDR] [COUNT] [TLS flags]   # default 127.0.0.1:7600, 3
//! cargo run --example client -- localhost:7601 --tls --tls-ca ca.pem
//! ```

use std::process::ExitCode;
use std::time::Duration;

use tether::cli::args::{Arg, ArgParser, CliError};
use tether::client::{AdaptiveConfig, Client, ClientConfig, TlsFlags, TLS_FLAGS_USAGE};

const USAGE: &str = "\
usage: client [ADDR] [COUNT] [flags]   (ADDR 127.0.0.1:7600, COUNT 3)

";

/// What the command line asks for.
struct Args {
    addr: String,
    count: usize,
    tls: TlsFlags,
}

fn parse_args() -> Result<Option<Args>, CliError> {
    let mut args = Args {
        addr: "127.0.0.1:7600".to_owned(),
        count: 3,
        tls: TlsFlags::default(),
    };
    let mut positionals = 0;
    let mut p = ArgParser::new(std::env::args_os().skip(1));
    while let Some(arg) = p.next_arg() {
        match arg {
            Arg::Positional(value) => {
                match positionals {
                    0 => args.addr = value,
                    1 => args.count = tether::cli::args::parse_value("COUNT", &value, "a number")?,
                    _ => return Err(CliError(format!("unexpected argument {value:?}"))),
                }
                positionals += 1;
            }
            Arg::Flag(flag) if flag == "-h" || flag == "--help" => return Ok(None),
            Arg::Flag(flag) => {
                if !args.tls.parse_flag(&flag, &mut p)? {
                    return Err(CliError(format!("unknown flag {flag:?} (see --help)")));
                }
            }
        }
    }
    args.tls.validate()?;
    Ok(Some(args))
}

/// The host part of `HOST:PORT` or `[V6]:PORT`: the name TLS verifies by default.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}{TLS_FLAGS_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match args.tls.load(host_of(&args.addr)) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, ClientConfig { tls, ..config() }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::from(1)
        }
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        heartbeat_ms: 10_000,
        adaptive: Some(AdaptiveConfig {
            floor: Duration::from_secs(5),
            step: Duration::from_secs(5),
            ..AdaptiveConfig::default()
        }),
        ..ClientConfig::default()
    }
}

fn run(args: &Args, config: ClientConfig) -> std::io::Result<()> {
    let addr = &args.addr;
    let mut client = Client::connect(addr.as_str(), config)?;
    print_events(&mut client);
    println!(
        "connected to {addr}, session {}",
        client
            .session()
            .map_or_else(|| "-".to_owned(), |s| s.to_string())
    );

    for i in 0..args.count {
        let message = format!("hello #{i} from the tether example client");
        client.send(message.as_bytes())?;
        match client.recv_timeout(Duration::from_secs(5))? {
            Some(echo) => println!("echo: {}", String::from_utf8_lossy(&echo)),
            None => println!("no echo within 5 s"),
        }
        print_events(&mut client);
    }
    if let Some(rtt) = client.machine().rtt() {
        println!("last ping rtt: {rtt:?}");
    }

    client.close()?;
    print_events(&mut client);
    println!("closed");
    Ok(())
}

fn print_events(client: &mut Client) {
    for event in client.events() {
        println!("event: {event:?}");
    }
}
