//! The `tether` server binary: parse flags, bind (or take the sockets
//! systemd passed), print the address, tell systemd it is ready, run until
//! SIGTERM/SIGINT, exit 0 after a graceful stop.

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
use tether::systemd::{self, InheritedListener, Notifier};

/// Descriptors kept back from `max_connections`: listener, epoll, signal pipe, metrics, logs, slack.
const RESERVED_FDS: usize = 64;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Taken first, while single-threaded: it unsets LISTEN_* (an error is
    // reported after --help and --version had their chance).
    let inherited = systemd::take_listen_fds();
    let counts = inherited
        .as_ref()
        .map_or(cli::Inherited::default(), |sockets| {
            let tls = sockets.iter().filter(|s| s.tls).count();
            cli::Inherited {
                plain: sockets.len() - tls,
                tls,
            }
        });
    let mut config = match cli::parse_args_with(std::env::args_os().skip(1), counts) {
        Ok(Command::Run(config)) => *config,
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
    let inherited = match inherited {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &config.auth_token_file {
        match cli::load_tokens(path) {
            Ok(tokens) => config.auth_tokens = tokens,
            Err(e) => {
                eprintln!("tether: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(limit) = cli::open_file_limit() {
        let usable = limit.saturating_sub(RESERVED_FDS).max(1);
        if config.max_connections > usable {
            log::warn!(
                "--max-connections {} is above what the open-file limit {limit} allows; using {usable}",
                config.max_connections
            );
            config.max_connections = usable;
        }
    }
    match config.app {
        AppKind::Echo => serve(config, Echo, inherited),
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
            serve(config, app, inherited)
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
    // Every seed (a cluster's masters are found from them).
    let mut addrs = Vec::new();
    for (host, port) in &url.seeds {
        let addr = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
        addrs.push(addr);
    }
    RedisEngine::from_config(config, url, &addrs, Box::new(epochs), Instant::now())
}

/// Binds (besides the `inherited` sockets), announces the addresses on
/// stdout and to systemd, and runs until stopped.
fn serve<A: App>(config: Config, app: A, inherited: Vec<InheritedListener>) -> ExitCode {
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
    for socket in inherited {
        let (fd, name) = (socket.fd, socket.name);
        match reactor.adopt_listener(socket.socket, socket.tls) {
            Ok(addr) => log::info!("socket activation: fd {fd} ({name}) listening on {addr}"),
            Err(e) => {
                eprintln!("tether: socket activation: fd {fd} ({name}): {e}");
                return ExitCode::from(1);
            }
        }
    }
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
    if let Some(notifier) = Notifier::from_env(Instant::now()) {
        reactor.notify_ready(notifier);
    }
    match reactor.run() {
        Ok(StopKind::Graceful) => ExitCode::SUCCESS,
        Ok(StopKind::Forced) => ExitCode::from(1),
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
