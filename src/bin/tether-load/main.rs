//! tether-load: a single-threaded load generator for the tether server.
//!
//! One `mio::Poll` drives every connection, with the same care for memory as
//! the server: connections live in a slab, reads go through one shared
//! buffer, writes through one shared scratch buffer, and an idle connection
//! holds no heap buffer at all, so a 19,000-connection run measures the
//! server rather than the generator.
//!
//! - `args`: the command line.
//! - `conn`: one connection's state and socket calls.
//! - `wire`: zero-copy framing over the shared buffers.
//! - `engine`: the event loop, the run's stages, connects, reads, writes, closes.
//! - `modes`: what pingpong, echo, idle, churn and fanout send and measure.
//! - `fanout`: fan-out's messages in protocol 1 or 2.
//! - `storm`: storm mode's bookkeeping (windows, outcomes) and its connects.
//! - `stats`: the latency histogram, counters, `/proc` samples.
//! - `report`: the table and the JSON object, and `--report`'s directory.
//! - `timeline`: the run over time, one point per sampling interval.
//! - `charts`: the charts of a timeline, and their SVG.
//! - `progress`: the live progress line on a terminal.
#![deny(unsafe_code)]

mod args;
mod charts;
mod conn;
mod engine;
mod fanout;
mod modes;
mod progress;
mod report;
mod stats;
mod storm;
mod timeline;
mod wire;

use std::io::IsTerminal;
use std::process::ExitCode;

use args::{parse_args, usage, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(a)) => *a,
        Ok(Command::Help) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::from(2);
        }
    };
    // The TLS files are read here, before any connection: a bad one is a
    // usage error naming the file. The default name to verify is --addr's IP.
    let tls = match args.tls.load(&args.addr.ip().to_string()) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::from(2);
        }
    };
    let json = args.json;
    if let Some(dir) = &args.report {
        if let Err(e) = report::prepare_dir(dir) {
            eprintln!("tether-load: {e}");
            return ExitCode::from(2);
        }
    }
    // Before any connection exists: the baseline for RSS per connection.
    let baseline = args
        .server_pid
        .and_then(|pid| stats::sample_proc(&pid.to_string()));
    if args.server_pid.is_some() && baseline.is_none() {
        eprintln!("tether-load: --server-pid: cannot read /proc for that process");
        return ExitCode::from(2);
    }
    let mut engine = match engine::Engine::new(args, tls, std::io::stderr().is_terminal()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::from(1);
        }
    };
    engine.run();
    let report = report::Report::from_engine(&engine, baseline);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if let Some(f) = &report.failure {
        eprintln!("tether-load: {f}");
    }
    let mut written = true;
    if let Some(dir) = &engine.args.report {
        let storm = engine.work.storm.as_ref();
        let run = charts::RunInfo {
            mode: engine.args.mode,
            storm: (storm.and_then(|s| s.start_ns), storm.and_then(|s| s.end_ns)),
        };
        let charts = charts::charts(&engine.timeline, run);
        if let Err(e) = report::write_dir(dir, &engine.args, &report, &charts) {
            eprintln!("tether-load: {e}");
            written = false;
        }
    }
    if report.ok && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
