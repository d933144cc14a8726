//! The run over time, for `--report`'s charts and the progress line: the
//! engine hands in a [`Snapshot`] of its cumulative counters (and the
//! latency percentiles of the interval just ended) every sampling
//! interval; [`Timeline`] keeps one [`Point`] per interval.
//!
//! Free of sockets and clocks: times come in as arguments, and the points
//! come out as plain numbers (`charts.rs` turns them into series). The
//! points are bounded: past [`MAX_POINTS`] adjacent pairs are merged and the
//! interval doubles, so an hour-long soak keeps the same few hundred points
//! as a ten-second run.

use crate::stats::ProcSample;

/// Most points kept; past it, pairs merge and the interval doubles.
pub const MAX_POINTS: usize = 600;
/// The sampling intervals to choose from, ns: the shortest that gives a
/// run of the expected length at least [`POINTS_PER_RUN`] points, at most 1 s.
const INTERVALS_NS: [u64; 5] = [
    100_000_000,
    200_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];
/// Points a run's warmup and measurement should get at least (a short
/// run is sampled more often than once a second).
const POINTS_PER_RUN: f64 = 100.0;

/// Storm mode's client outcomes at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StormCounts {
    /// Storm clients welcomed so far.
    pub accepted: u64,
    /// Refused with GOAWAY SERVER_FULL (or another GOAWAY) so far.
    pub refused: u64,
    /// Failed before their WELCOME so far.
    pub failed: u64,
    /// Storm clients without an outcome yet (not started included).
    pub pending: u64,
}

/// The engine's cumulative counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    /// When, in ns since the run started.
    pub now_ns: u64,
    /// Replies, deliveries or cycles so far (the whole run, not just the window).
    pub messages: u64,
    /// Handshakes (WELCOMEs) so far.
    pub handshakes: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections connecting or handshaking now.
    pub connecting: u64,
    /// Failed connections so far.
    pub errors: u64,
    /// The server process (with `--server-pid`).
    pub server: Option<ProcSample>,
    /// Storm mode's outcomes so far.
    pub storm: Option<StormCounts>,
}

/// Latency percentiles of one interval, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
}

impl Percentiles {
    /// The larger of each percentile: the bound kept when two intervals merge
    /// (their exact percentiles together are not known, neither is above it).
    fn max(self, o: Percentiles) -> Percentiles {
        Percentiles {
            p50_ns: self.p50_ns.max(o.p50_ns),
            p99_ns: self.p99_ns.max(o.p99_ns),
            p999_ns: self.p999_ns.max(o.p999_ns),
        }
    }
}

/// One interval of the run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Start of the interval, ns since the run started.
    pub start_ns: u64,
    /// End of the interval.
    pub end_ns: u64,
    /// Replies, deliveries or cycles in the interval.
    pub messages: u64,
    /// Handshakes in the interval.
    pub handshakes: u64,
    /// Latency in the interval, when any sample was timed.
    pub latency: Option<Percentiles>,
    /// Connections open at the end.
    pub open: u64,
    /// Connections connecting or handshaking at the end.
    pub connecting: u64,
    /// Failed connections so far, at the end.
    pub errors: u64,
    /// Server CPU time in the interval, ns.
    pub server_cpu_ns: Option<u64>,
    /// Server RSS at the end, bytes.
    pub server_rss_bytes: Option<u64>,
    /// Storm outcomes at the end.
    pub storm: Option<StormCounts>,
}

impl Point {
    /// The interval's length in seconds (never zero, so rates stay finite).
    pub fn secs(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns).max(1) as f64 / 1e9
    }

    /// Messages per second in the interval.
    pub fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs()
    }

    /// Handshakes per second in the interval.
    pub fn handshakes_per_sec(&self) -> f64 {
        self.handshakes as f64 / self.secs()
    }

    /// Server CPU in percent of one core over the interval.
    pub fn server_cpu_pct(&self) -> Option<f64> {
        self.server_cpu_ns
            .map(|ns| ns as f64 / 1e9 / self.secs() * 100.0)
    }

    /// `self` followed by `next` as one interval: counts add up, states are
    /// `next`'s, latency percentiles are the larger of the two.
    fn merge(self, next: Point) -> Point {
        let latency = match (self.latency, next.latency) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let server_cpu_ns = match (self.server_cpu_ns, next.server_cpu_ns) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Point {
            start_ns: self.start_ns,
            messages: self.messages + next.messages,
            handshakes: self.handshakes + next.handshakes,
            latency,
            server_cpu_ns,
            server_rss_bytes: next.server_rss_bytes.or(self.server_rss_bytes),
            ..next
        }
    }
}

/// The run's points, one per sampling interval, bounded.
#[derive(Debug, Clone)]
pub struct Timeline {
    interval_ns: u64,
    cap: usize,
    last: Option<Snapshot>,
    points: Vec<Point>,
}

impl Timeline {
    /// An empty timeline sampling every `interval_ns`, keeping at most `cap`
    /// points (at least 2).
    pub fn new(interval_ns: u64, cap: usize) -> Timeline {
        Timeline {
            interval_ns: interval_ns.max(1),
            cap: cap.max(2),
            last: None,
            points: Vec::new(),
        }
    }

    /// The timeline of a run whose warmup and measurement last
    /// `expected_secs`: sampled as [`Timeline::interval_for`] says, at most
    /// [`MAX_POINTS`] points.
    pub fn for_run(expected_secs: f64) -> Timeline {
        Timeline::new(Timeline::interval_for(expected_secs), MAX_POINTS)
    }

    /// The sampling interval for a run whose warmup and measurement last
    /// `expected_secs`: once a second, or more often for a short run.
    pub fn interval_for(expected_secs: f64) -> u64 {
        let wanted = expected_secs.max(0.0) / POINTS_PER_RUN * 1e9;
        INTERVALS_NS
            .iter()
            .copied()
            .find(|i| *i as f64 >= wanted)
            .unwrap_or(INTERVALS_NS[INTERVALS_NS.len() - 1])
    }

    /// The current sampling interval (it doubles when points merge).
    #[cfg(test)]
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// When the next snapshot is due: at once for the first.
    pub fn next_due_ns(&self) -> u64 {
        self.last.map_or(0, |l| l.now_ns + self.interval_ns)
    }

    /// Whether a snapshot is due at `now_ns`.
    pub fn due(&self, now_ns: u64) -> bool {
        now_ns >= self.next_due_ns()
    }

    /// Takes a snapshot; `latency` holds the percentiles of what was timed
    /// since the previous one. The first snapshot is the baseline (no
    /// point); a snapshot not later than the previous one is ignored; one
    /// less than a quarter interval after the previous one extends the
    /// latest point instead of adding one.
    pub fn record(&mut self, snap: Snapshot, latency: Option<Percentiles>) {
        let Some(prev) = self.last else {
            self.last = Some(snap);
            return;
        };
        if snap.now_ns <= prev.now_ns {
            return;
        }
        let server_cpu_ns = match (prev.server, snap.server) {
            (Some(a), Some(b)) => Some(b.cpu_ns.saturating_sub(a.cpu_ns)),
            _ => None,
        };
        let point = Point {
            start_ns: prev.now_ns,
            end_ns: snap.now_ns,
            messages: snap.messages.saturating_sub(prev.messages),
            handshakes: snap.handshakes.saturating_sub(prev.handshakes),
            latency,
            open: snap.open,
            connecting: snap.connecting,
            errors: snap.errors,
            server_cpu_ns,
            server_rss_bytes: snap.server.map(|s| s.rss_bytes),
            storm: snap.storm,
        };
        self.last = Some(snap);
        // A sliver (the last snapshot, taken when the load ends) joins the
        // point before it: a rate over a few milliseconds is only noise.
        let sliver = point.end_ns - point.start_ns < self.interval_ns / 4;
        match self.points.last_mut() {
            Some(prev) if sliver => *prev = prev.merge(point),
            _ => self.points.push(point),
        }
        if self.points.len() > self.cap {
            self.halve();
        }
    }

    /// Merges adjacent pairs of points and doubles the interval.
    fn halve(&mut self) {
        let merged = self
            .points
            .chunks(2)
            .filter_map(|pair| pair.iter().copied().reduce(Point::merge))
            .collect();
        self.points = merged;
        self.interval_ns = self.interval_ns.saturating_mul(2);
    }

    /// The points so far, oldest first.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The latest point.
    pub fn latest(&self) -> Option<&Point> {
        self.points.last()
    }
}

#[cfg(test)]
mod tests;
