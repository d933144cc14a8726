//! The `tether` server binary: parse flags, bind, print the address, run
//! until SIGTERM/SIGINT, exit 0 after a graceful stop.

use std::ffi::OsString;
use std::io::Write;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Instant;

use tether::app::pubsub::redis_engine::RedisEngine;
use tether::app::{App, Echo, Pubsub};
use tether::cli::{self, Command};
use tether::config::{AppKind, Config};
use tether::engine::redis::EngineUrl;
use tether::random::RandomPool;
use tether::reactor::{Reactor, StopKind};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut config = match cli::parse_args(args.iter().cloned()) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Check(config)) => return check_config(*config),
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("tether {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    cli::logging::init(config.log_level);
    if let Err(e) = cli::prepare_to_run(&mut config) {
        eprintln!("tether: {e}");
        return ExitCode::from(2);
    }
    match config.app {
        AppKind::Echo => serve(config, Echo, args),
        AppKind::Pubsub => {
            let epochs = match RandomPool::open() {
                Ok(pool) => pool,
                Err(e) => {
                    eprintln!("tether: opening /dev/urandom for stream epochs: {e}");
                    return ExitCode::from(1);
                }
            };
            let app = match config.engine.clone() {
                None => Pubsub::new(&config, Box::new(epochs)),
                Some(url) => match redis_engine(&config, &url, epochs) {
                    Ok(engine) => Pubsub::with_engine(&config, Box::new(engine)),
                    Err(e) => {
                        eprintln!("tether: --engine {url}: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            serve(config, app, args)
        }
    }
}

/// The Redis engine `url` names. Its host is resolved here, once, at start
/// (the reactor dials socket addresses); the first address is used.
fn redis_engine(
    config: &Config,
    url: &EngineUrl,
    epochs: RandomPool,
) -> Result<RedisEngine, String> {
    let (host, port) = url.seeds.first().ok_or("no host")?;
    let addr = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
    RedisEngine::from_config(config, url, addr, Box::new(epochs), Instant::now())
}

/// `--check-config`: the token and TLS files must load too; prints the
/// configuration in effect as TOML (a config file that gives the same).
fn check_config(config: Config) -> ExitCode {
    if let Some(path) = &config.auth_token_file {
        if let Err(e) = cli::load_tokens(path) {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(files) = &config.tls {
        if let Err(e) = cli::check_tls_files(files) {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    }
    print!(
        "# tether {}: the configuration in effect (--check-config)\n{}",
        env!("CARGO_PKG_VERSION"),
        cli::file::render(&config, false)
    );
    ExitCode::SUCCESS
}

/// Binds, announces the addresses on stdout, and runs until stopped.
/// SIGHUP reads the configuration anew from the same command line `args`
/// (its `--config` file, the token file) and the reactor takes what it can.
fn serve<A: App>(config: Config, app: A, args: Vec<OsString>) -> ExitCode {
    let listen = config.listen;
    let tls_listen = config.tls_listen.clone();
    let metrics = config.metrics;
    if let Some(files) = &config.tls {
        if let Err(e) = cli::check_tls_files(files) {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    }
    let mut reactor = match Reactor::new(config, app) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = listen {
        if let Err(e) = reactor.listen(addr) {
            eprintln!("tether: --listen {addr}: {e}");
            return ExitCode::from(1);
        }
    }
    for addr in tls_listen {
        if let Err(e) = reactor.listen_tls(addr) {
            eprintln!("tether: --tls-listen {addr}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(addr) = metrics {
        match reactor.serve_metrics(addr) {
            Ok(bound) => log::info!("metrics on http://{bound}/metrics"),
            Err(e) => {
                eprintln!("tether: --metrics {addr}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let Err(e) = reactor.handle_signals() {
        eprintln!("tether: installing signal handlers: {e}");
        return ExitCode::from(1);
    }
    reactor.reload_config_with(Box::new(move || {
        cli::load_config(&args).map_err(|e| e.to_string())
    }));
    let mut stdout = std::io::stdout().lock();
    for (addr, tls) in reactor.listener_addrs() {
        let _ = writeln!(
            stdout,
            "listening on {addr}{}",
            if tls { " tls" } else { "" }
        );
        log::info!(
            "tether {} listening on {addr}{}",
            env!("CARGO_PKG_VERSION"),
            if tls { " (TLS)" } else { "" }
        );
    }
    let _ = stdout.flush();
    drop(stdout);
    match reactor.run() {
        Ok(StopKind::Graceful) => ExitCode::SUCCESS,
        Ok(StopKind::Forced) => ExitCode::from(1),
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
