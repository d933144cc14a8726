//! The run's stages: ramp-up, warmup, the measured window, drain, close.
//! Each has a time bound, so every run ends; the window's edges are where the
//! counters and the `/proc` samples are taken.

use super::*;

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Opening connections.
    Ramp,
    /// Running the workload, not recording.
    Warmup,
    /// Running the workload and recording.
    Measure,
    /// No new requests; waiting for replies in flight.
    Drain,
    /// Closing every connection politely.
    Close,
    /// Finished.
    Done,
}

impl Stage {
    /// The stage's label on the progress line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ramp => "ramp",
            Stage::Warmup => "warmup",
            Stage::Measure => "measure",
            Stage::Drain => "drain",
            Stage::Close => "close",
            Stage::Done => "done",
        }
    }

    /// Whether workloads may start new requests and connections.
    pub fn is_issuing(self) -> bool {
        self <= Stage::Measure
    }
}

/// Counters copied at the edges of the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// When the window opened (ns since start).
    pub start_ns: u64,
    /// When it closed.
    pub end_ns: u64,
    /// Connections open when it opened.
    pub open_at_start: usize,
    /// Connections open when it closed.
    pub open_at_end: usize,
    /// The server process at each edge.
    pub server: Option<(ProcSample, ProcSample)>,
    /// This process at each edge.
    pub load: Option<(ProcSample, ProcSample)>,
    /// Time the ramp-up took.
    pub ramp_ns: u64,
    /// Requests still unanswered when the drain ended.
    pub unanswered: u64,
}

impl Engine {
    pub(super) fn stage_end_ns(&self) -> Option<u64> {
        let secs = |s: f64| (s * 1e9) as u64;
        Some(match self.stage {
            Stage::Ramp => self.stage_since_ns + RAMP_LIMIT_NS,
            Stage::Warmup => self.stage_since_ns + secs(self.args.warmup_secs),
            Stage::Measure => self.stage_since_ns + secs(self.args.duration_secs),
            Stage::Drain => self.stage_since_ns + DRAIN_LIMIT_NS,
            Stage::Close => self.stage_since_ns + CLOSE_LIMIT_NS,
            Stage::Done => return None,
        })
    }

    pub(super) fn set_stage(&mut self, stage: Stage) {
        log::debug!("stage {} => {}", self.stage.name(), stage.name());
        self.clock();
        match stage {
            Stage::Warmup | Stage::Measure if self.stage == Stage::Ramp => {
                self.window.ramp_ns = self.now_ns;
            }
            _ => {}
        }
        if stage == Stage::Measure {
            self.window.start_ns = self.now_ns;
            self.window.open_at_start = self.open;
            self.stats.recording = true;
            self.window.server = self.server_sample().map(|s| (s, s));
            self.window.load = sample_proc("self").map(|s| (s, s));
        }
        if self.stage == Stage::Measure {
            self.stats.recording = false;
            self.window.end_ns = self.now_ns;
            self.window.open_at_end = self.open;
            let server = self.server_sample();
            if let (Some(w), Some(s)) = (self.window.server.as_mut(), server) {
                w.1 = s;
            }
            if let (Some(w), Some(s)) = (self.window.load.as_mut(), sample_proc("self")) {
                w.1 = s;
            }
        }
        if stage == Stage::Close {
            // The timeline's last point: the load ends here.
            self.sample_timeline();
            self.window.unanswered = self.work.outstanding(self);
            // Closed a batch per turn (`close_some`): a write and a shutdown
            // per connection add up, and EOFs must be read while it goes on.
            self.to_close = self
                .conns
                .iter()
                .map(|(k, c)| token_of(k, c.generation))
                .collect();
        }
        self.stage = stage;
        self.stage_since_ns = self.now_ns;
    }

    /// Starts the polite close of the next batch of connections.
    pub(super) fn close_some(&mut self) {
        for _ in 0..CLOSES_PER_TURN {
            let Some(token) = self.to_close.pop() else {
                break;
            };
            let Some(key) = self.live(token) else {
                continue;
            };
            match self.conns[key].phase {
                Phase::Open => self.close_politely(key),
                Phase::Connecting | Phase::Handshaking => self.kill(key),
                Phase::Closing | Phase::Dead => {}
            }
        }
    }

    pub(super) fn server_sample(&self) -> Option<ProcSample> {
        self.args
            .server_pid
            .and_then(|pid| sample_proc(&pid.to_string()))
    }

    pub(super) fn advance_stage(&mut self) {
        if self.fatal.is_some() && self.stage < Stage::Close {
            if self.stage == Stage::Measure {
                self.set_stage(Stage::Drain);
            }
            self.set_stage(Stage::Close);
        }
        let over = self.stage_end_ns().is_some_and(|t| self.now_ns >= t);
        let next = match self.stage {
            Stage::Ramp => {
                let done = self.args.mode == Mode::Churn
                    || (self.started >= self.work.target_connections && self.connecting == 0);
                (done || over).then_some(if self.args.warmup_secs > 0.0 {
                    Stage::Warmup
                } else {
                    Stage::Measure
                })
            }
            Stage::Warmup => over.then_some(Stage::Measure),
            Stage::Measure => over.then_some(Stage::Drain),
            Stage::Drain => (over || self.work.outstanding(self) == 0).then_some(Stage::Close),
            Stage::Close => (over || self.conns.is_empty()).then_some(Stage::Done),
            Stage::Done => None,
        };
        if let Some(next) = next {
            self.set_stage(next);
        }
    }
}
