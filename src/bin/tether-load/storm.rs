//! Storm mode (issue 13): `--connections` established clients PING every
//! `--heartbeat-ms` and time each PONG; after the warmup, `--storm` more
//! clients start their connects at once (as fast as the loop can issue
//! them, over the run's source addresses), each sending HELLO and waiting for
//! its WELCOME. The established clients' round trips are kept in three
//! windows: before the storm, during it (first storm connect to the moment
//! the last storm client has its WELCOME or has failed), and after it; a
//! round trip that overlaps the storm at all counts in the storm's window.
//!
//! [`Storm`] is the bookkeeping, free of sockets and clocks (times come in
//! as arguments); the `impl Engine` below is the glue to the event loop.
//! With `--storm-in-child` the connects run in a child process
//! ([`child`]), and this process only measures.

pub mod child;

use hdrhistogram::Histogram;
use tether::protocol::GoawayCode;

use crate::conn::Role;
use crate::engine::{Engine, Stage};
use crate::stats::{sample_proc, ErrorKind, ProcSample};

/// The heartbeat storm clients ask for: they hold their connection without
/// adding a second PING load on top of the established clients' (10 s, the
/// generator's usual default).
pub const STORM_HEARTBEAT_MS: u32 = 10_000;
/// Silence after which a storm-mode connection counts as dead, when longer
/// than three heartbeats: a stall of the server during the storm is what
/// the run measures (as a long round trip), not a reason to drop the client.
pub const STORM_MISS_NS: u64 = 5_000_000_000;
/// Storm connects started per loop turn: the established clients' PONGs are
/// read between batches, so the generator's own delay stays small next to
/// the server's.
const STORM_CONNECTS_PER_TURN: u64 = 256;

/// The three windows of the established clients' round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StormWindow {
    /// Steady state before the first storm connect.
    Before,
    /// From the first storm connect until every storm client is resolved.
    During,
    /// After the storm.
    After,
}

impl StormWindow {
    /// Every window, in report order.
    pub const ALL: [StormWindow; 3] =
        [StormWindow::Before, StormWindow::During, StormWindow::After];

    /// The window's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            StormWindow::Before => "before",
            StormWindow::During => "during",
            StormWindow::After => "after",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What happened to the storm clients, and the round trips around them.
#[derive(Debug)]
pub struct Storm {
    /// Storm clients to start.
    pub size: u64,
    /// Storm connects started (a connect that failed to start included).
    pub started: u64,
    /// Storm clients that got their WELCOME.
    pub accepted: u64,
    /// Storm clients refused with GOAWAY SERVER_FULL before their WELCOME.
    pub refused: u64,
    /// Storm clients sent another GOAWAY before their WELCOME.
    pub goaway_other: u64,
    /// Storm clients that failed before their WELCOME, by kind.
    failed: [u64; ErrorKind::ALL.len()],
    /// First storm connect, ns since the run started.
    pub start_ns: Option<u64>,
    /// When the last storm client was resolved.
    pub end_ns: Option<u64>,
    /// Established clients' round trips, one histogram per window.
    rtt: [Histogram<u64>; 3],
    /// Storm clients' time from connect start to WELCOME.
    pub connect_time: Histogram<u64>,
    /// The server process when the storm began and when it was resolved.
    pub server: Option<(ProcSample, ProcSample)>,
    /// The child process making the storm's connects (`--storm-in-child`).
    pub child: Option<child::StormChild>,
}

fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
}

impl Storm {
    /// Bookkeeping for a storm of `size` clients.
    pub fn new(size: u64) -> Result<Storm, hdrhistogram::CreationError> {
        Ok(Storm {
            size,
            started: 0,
            accepted: 0,
            refused: 0,
            goaway_other: 0,
            failed: [0; ErrorKind::ALL.len()],
            start_ns: None,
            end_ns: None,
            rtt: [histogram()?, histogram()?, histogram()?],
            connect_time: histogram()?,
            server: None,
            child: None,
        })
    }

    /// The window of a round trip completing now whose PING went out at
    /// `sent_ns`: during, if it overlaps the storm at all (a PING sent just
    /// before the storm and stalled by it, or sent in it and answered after
    /// its end, counts there); before or after only if wholly outside it.
    pub fn window(&self, sent_ns: u64) -> StormWindow {
        match (self.start_ns, self.end_ns) {
            (None, _) => StormWindow::Before,
            (Some(_), None) => StormWindow::During,
            (Some(_), Some(end)) if sent_ns < end => StormWindow::During,
            (Some(_), Some(_)) => StormWindow::After,
        }
    }

    /// One established client's round trip of `ns`, completing at `now_ns`.
    pub fn record_rtt(&mut self, ns: u64, now_ns: u64) {
        let w = self.window(now_ns.saturating_sub(ns)).index();
        self.rtt[w].saturating_record(ns.max(1));
    }

    /// The round trips of one window.
    pub fn rtt(&self, w: StormWindow) -> &Histogram<u64> {
        &self.rtt[w.index()]
    }

    /// Storm connects still to start.
    pub fn to_start(&self) -> u64 {
        self.size.saturating_sub(self.started)
    }

    /// A storm connect starts at `now_ns`.
    pub fn on_started(&mut self, now_ns: u64) {
        self.start_ns.get_or_insert(now_ns);
        self.started += 1;
    }

    /// A storm client got its WELCOME, `took_ns` after its connect began.
    pub fn on_welcome(&mut self, took_ns: u64) {
        self.accepted += 1;
        self.connect_time.saturating_record(took_ns.max(1));
    }

    /// A storm client got a GOAWAY before its WELCOME.
    pub fn on_goaway(&mut self, code: GoawayCode) {
        if code == GoawayCode::ServerFull {
            self.refused += 1;
        } else {
            self.goaway_other += 1;
        }
    }

    /// A storm client failed before its WELCOME (or its connect did not start).
    pub fn on_failed(&mut self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.failed[i] += 1;
        }
    }

    /// Failures by kind, every kind listed.
    pub fn failed_counts(&self) -> Vec<(&'static str, u64)> {
        ErrorKind::ALL
            .iter()
            .zip(self.failed.iter())
            .map(|(k, n)| (k.name(), *n))
            .collect()
    }

    /// Storm clients with an outcome: welcomed, refused or failed.
    pub fn resolved(&self) -> u64 {
        self.accepted + self.refused + self.goaway_other + self.failed.iter().sum::<u64>()
    }

    /// Ends the storm at `now_ns` once every client is started and resolved;
    /// returns whether it ended just now.
    pub fn settle(&mut self, now_ns: u64) -> bool {
        if self.end_ns.is_some() || self.started < self.size || self.resolved() < self.started {
            return false;
        }
        self.end_ns = Some(now_ns);
        true
    }
}

impl Engine {
    /// The storm's bookkeeping (storm mode only).
    fn storm_mut(&mut self) -> Option<&mut Storm> {
        self.work.storm.as_mut()
    }

    /// Storm mode's paced work: in the measured stage, start the storm's
    /// connects a batch per turn, and end the storm once all are resolved.
    pub fn storm_tick(&mut self) {
        if self.stage != Stage::Measure {
            return;
        }
        let now = self.now_ns;
        let Some((begun, to_start)) = self
            .work
            .storm
            .as_ref()
            .map(|s| (s.start_ns.is_some(), s.to_start()))
        else {
            return;
        };
        if !begun && to_start > 0 {
            let sample = self
                .args
                .server_pid
                .and_then(|p| sample_proc(&p.to_string()));
            if let Some(s) = self.storm_mut() {
                s.server = sample.map(|x| (x, x));
            }
            if self.args.storm_in_child {
                self.start_storm_child(to_start);
                return;
            }
        }
        if self.args.storm_in_child {
            self.poll_storm_child();
            return;
        }
        let batch = to_start.min(STORM_CONNECTS_PER_TURN);
        for _ in 0..batch {
            let outcome = self.open_connection(Role::Storm);
            if let Some(s) = self.storm_mut() {
                s.on_started(now);
                if let Err(kind) = outcome {
                    s.on_failed(kind);
                }
            }
        }
        self.storm_settle();
    }

    /// Starts the child that makes the storm's `count` connects; they count
    /// as started now.
    fn start_storm_child(&mut self, count: u64) {
        let now = self.now_ns;
        let outlast = self.args.warmup_secs + self.args.duration_secs + 30.0;
        match child::StormChild::spawn(outlast) {
            Ok(spawned) => {
                if let Some(s) = self.storm_mut() {
                    s.child = Some(spawned);
                    for _ in 0..count {
                        s.on_started(now);
                    }
                }
            }
            Err(e) => self.fatal = Some(format!("starting the storm child: {e}")),
        }
    }

    /// Takes the child's report once it is there, which ends the storm.
    fn poll_storm_child(&mut self) {
        let Some(s) = self.storm_mut() else {
            return;
        };
        let Some(running) = s.child.as_mut() else {
            return;
        };
        match running.poll_report() {
            Ok(None) => {}
            Ok(Some(line)) => {
                if child::apply_report(s, &line) {
                    self.storm_settle();
                } else {
                    self.fatal = Some(format!("a bad report from the storm child: {line:.200}"));
                }
            }
            Err(e) => {
                if s.end_ns.is_none() {
                    self.fatal = Some(e);
                }
            }
        }
    }

    /// Ends the storm if its last client was just resolved, sampling the server.
    pub fn storm_settle(&mut self) {
        let now = self.now_ns;
        if self.storm_mut().is_some_and(|s| s.settle(now)) {
            if child::is_storm_child() {
                if let Some(s) = self.work.storm.as_ref() {
                    child::print_report(s);
                }
            }
            let sample = self
                .args
                .server_pid
                .and_then(|p| sample_proc(&p.to_string()));
            if let (Some(s), Some(end)) = (self.storm_mut(), sample) {
                if let Some(pair) = s.server.as_mut() {
                    pair.1 = end;
                }
            }
        }
    }

    /// Whether storm connects are waiting to start (the loop must not sleep).
    pub fn storm_pending(&self) -> bool {
        self.stage == Stage::Measure && self.work.storm.as_ref().is_some_and(|s| s.to_start() > 0)
    }
}

#[cfg(test)]
mod tests;
