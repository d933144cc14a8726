//! The `tether` server binary: parse flags, bind (or take the sockets
//! systemd passed), print the address, tell systemd it is ready, run until
//! SIGTERM/SIGINT, exit 0 after a graceful stop.

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
use tether::reactor::{ConfigLoader, Reactor, StopKind};
use tether::systemd::{self, InheritedListener, Notifier};

fn main() -> ExitCode {
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
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut config = match cli::parse_args_with(args.iter().cloned(), counts) {
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
    let inherited = match inherited {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cli::prepare_to_run(&mut config) {
        eprintln!("tether: {e}");
        return ExitCode::from(2);
    }
    // SIGHUP reads the configuration anew from the same command line (its
    // `--config` file, the token file), with the same inherited sockets.
    let reload: ConfigLoader =
        Box::new(move || cli::load_config(&args, counts).map_err(|e| e.to_string()));
    match config.app {
        AppKind::Echo => serve(config, Echo, inherited, reload),
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
            serve(config, app, inherited, reload)
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

/// Binds (besides the `inherited` sockets), announces the addresses on
/// stdout and to systemd, and runs until stopped; SIGHUP calls `reload`
/// and the reactor takes what it can of the configuration it gives.
fn serve<A: App>(
    config: Config,
    app: A,
    inherited: Vec<InheritedListener>,
    reload: ConfigLoader,
) -> ExitCode {
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
    reactor.reload_config_with(reload);
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
