//! Watching the run as it goes: a timeline snapshot every sampling interval
//! until the closing starts
//! (the engine's counters, the interval's latency percentiles, the server's
//! `/proc` sample) and the live progress line on a terminal. The decisions
//! are `timeline.rs`'s and `progress.rs`'s; this is only the glue that
//! reads the engine and the clock.

use super::*;
use crate::progress::{progress_line, ProgressView, PROGRESS_EVERY_NS};
use crate::timeline::{Percentiles, Snapshot, StormCounts};

impl Engine {
    /// Takes the timeline's snapshot when due, then prints the progress
    /// line when due (always when `last`). The timeline ends where the
    /// closing starts (`sample_timeline` from `set_stage`): tearing the
    /// connections down is not part of the load.
    pub(super) fn observe(&mut self, last: bool) {
        if self.stage < Stage::Close && self.timeline.due(self.now_ns) {
            self.sample_timeline();
        }
        self.show_progress(last);
    }

    /// Hands the timeline a snapshot of the counters and the latency
    /// percentiles since the previous one.
    pub(super) fn sample_timeline(&mut self) {
        let snap = self.snapshot();
        let h = &self.stats.interval_latency;
        let latency = (!h.is_empty()).then(|| Percentiles {
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
        });
        self.stats.interval_latency.reset();
        self.timeline.record(snap, latency);
    }

    /// The engine's cumulative counters now.
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            now_ns: self.now_ns,
            messages: self.stats.messages_total,
            handshakes: self.stats.handshakes,
            open: self.open as u64,
            connecting: self.connecting as u64,
            errors: self.stats.error_total(),
            server: self.server_sample(),
            storm: self.storm_counts(),
        }
    }

    /// Storm mode's outcomes so far.
    fn storm_counts(&self) -> Option<StormCounts> {
        let s = self.work.storm.as_ref()?;
        let refused = s.refused + s.goaway_other;
        let resolved = s.resolved();
        Some(StormCounts {
            accepted: s.accepted,
            refused,
            failed: resolved.saturating_sub(s.accepted + refused),
            pending: s.size.saturating_sub(resolved),
        })
    }

    fn show_progress(&mut self, last: bool) {
        if !self.progress {
            return;
        }
        let due = self
            .last_progress_ns
            .is_none_or(|t| self.now_ns >= t + PROGRESS_EVERY_NS);
        if !last && !due {
            return;
        }
        self.last_progress_ns = Some(self.now_ns);
        let latest = self.timeline.latest().copied().unwrap_or_default();
        let storm = self.work.storm.as_ref();
        let view = ProgressView {
            mode: Some(self.args.mode),
            stage: Some(self.stage),
            stage_secs: self.now_ns.saturating_sub(self.stage_since_ns) as f64 / 1e9,
            stage_len_secs: match self.stage {
                Stage::Warmup => Some(self.args.warmup_secs),
                Stage::Measure => Some(self.args.duration_secs),
                _ => None,
            },
            open: self.open as u64,
            target: self.work.target_connections,
            handshakes_per_sec: latest.handshakes_per_sec(),
            messages_per_sec: latest.messages_per_sec(),
            p99_ns: latest.latency.map(|l| l.p99_ns),
            errors: self.stats.error_total(),
            storm: self
                .storm_counts()
                .filter(|_| storm.is_some_and(|s| s.start_ns.is_some())),
            storm_over: storm.is_some_and(|s| s.end_ns.is_some()),
            published: (self.args.mode == Mode::Fanout).then_some(self.work.published),
        };
        eprint!(
            "\r\x1b[K{}{}",
            progress_line(&view),
            if last { "\n" } else { "" }
        );
    }
}
