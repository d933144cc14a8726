//! The live progress line on a terminal: what the current stage is doing,
//! in one short line rewritten in place (`\r`), e.g.
//! `connecting 12,345/19,000 · 4,210/s · errors 0` or, during a storm,
//! `storm 4,210 accepted · 0 refused · 5,790 pending · p99 3.10 ms · errors 0`.
//!
//! [`progress_line`] is a pure function of a [`ProgressView`]; the engine
//! fills the view and prints at most [`PROGRESS_EVERY_NS`] apart, and only
//! when stderr is a terminal.

use crate::args::Mode;
use crate::engine::Stage;
use crate::timeline::StormCounts;

/// Least time between two progress lines.
pub const PROGRESS_EVERY_NS: u64 = 250_000_000;

/// What the progress line shows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProgressView {
    /// The mode.
    pub mode: Option<Mode>,
    /// The stage.
    pub stage: Option<Stage>,
    /// Seconds into the stage.
    pub stage_secs: f64,
    /// The stage's planned length, s (warmup and measurement).
    pub stage_len_secs: Option<f64>,
    /// Connections open.
    pub open: u64,
    /// Connections the ramp-up opens.
    pub target: u64,
    /// Handshakes per second lately.
    pub handshakes_per_sec: f64,
    /// Messages per second lately.
    pub messages_per_sec: f64,
    /// The latest interval's p99, ns.
    pub p99_ns: Option<u64>,
    /// Failed connections so far.
    pub errors: u64,
    /// Storm outcomes, once the storm has begun.
    pub storm: Option<StormCounts>,
    /// Whether the storm is over.
    pub storm_over: bool,
    /// Fanout: messages published so far.
    pub published: Option<u64>,
}

/// `n` with a comma every three digits: 19,000.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in the unit that keeps it short.
fn latency(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// The progress line for `v` (no `\r`, no newline).
pub fn progress_line(v: &ProgressView) -> String {
    let rate = |r: f64| thousands(r.max(0.0).round() as u64);
    let elapsed = match v.stage_len_secs {
        Some(len) => format!("{:.1}/{:.1} s", v.stage_secs.min(len), len),
        None => format!("{:.1} s", v.stage_secs),
    };
    let mut parts: Vec<String> = Vec::with_capacity(6);
    let stage = v.stage.unwrap_or(Stage::Ramp);
    let churn = v.mode == Some(Mode::Churn);
    match (stage, v.storm) {
        (Stage::Ramp, _) if !churn => {
            parts.push(format!(
                "connecting {}/{}",
                thousands(v.open),
                thousands(v.target)
            ));
            parts.push(format!("{}/s", rate(v.handshakes_per_sec)));
        }
        (Stage::Measure, Some(s)) if !v.storm_over => {
            parts.push(format!("storm {} accepted", thousands(s.accepted)));
            parts.push(format!("{} refused", thousands(s.refused)));
            if s.failed > 0 {
                parts.push(format!("{} failed", thousands(s.failed)));
            }
            parts.push(format!("{} pending", thousands(s.pending)));
        }
        (Stage::Ramp | Stage::Warmup | Stage::Measure, _) => {
            let name = match (stage, v.mode) {
                (Stage::Warmup, _) => "warm-up",
                (_, Some(Mode::Storm)) => "after the storm",
                (_, Some(Mode::Fanout)) => "fanout",
                (_, Some(Mode::Churn)) => "churn",
                _ => "measure",
            };
            parts.push(format!("{name} {elapsed}"));
            parts.push(format!("{} open", thousands(v.open)));
            if let Some(n) = v.published {
                parts.push(format!("{} published", thousands(n)));
            }
            let what = match v.mode {
                Some(Mode::Fanout) => "deliveries",
                Some(Mode::Churn) => "cycles",
                _ => "msgs",
            };
            parts.push(format!("{} {what}/s", rate(v.messages_per_sec)));
        }
        (Stage::Drain, _) => parts.push(format!("draining {elapsed}")),
        (Stage::Close, _) => parts.push(format!("closing {} open", thousands(v.open))),
        (Stage::Done, _) => parts.push("done".to_string()),
    }
    if matches!(stage, Stage::Warmup | Stage::Measure) {
        if let Some(ns) = v.p99_ns {
            parts.push(format!("p99 {}", latency(ns)));
        }
    }
    parts.push(format!("errors {}", thousands(v.errors)));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn connecting_shows_progress_and_rate() {
        let v = ProgressView {
            mode: Some(Mode::Idle),
            stage: Some(Stage::Ramp),
            open: 12_345,
            target: 19_000,
            handshakes_per_sec: 4_210.4,
            ..ProgressView::default()
        };
        assert_eq!(
            progress_line(&v),
            "connecting 12,345/19,000 · 4,210/s · errors 0"
        );
    }

    #[test]
    fn a_storm_shows_its_outcomes_and_the_current_p99() {
        let v = ProgressView {
            mode: Some(Mode::Storm),
            stage: Some(Stage::Measure),
            storm: Some(StormCounts {
                accepted: 4_210,
                refused: 0,
                failed: 0,
                pending: 5_790,
            }),
            p99_ns: Some(3_100_000),
            errors: 0,
            ..ProgressView::default()
        };
        assert_eq!(
            progress_line(&v),
            "storm 4,210 accepted · 0 refused · 5,790 pending · p99 3.10 ms · errors 0"
        );
        let after = ProgressView {
            storm_over: true,
            stage_secs: 4.0,
            stage_len_secs: Some(10.0),
            open: 11_000,
            messages_per_sec: 10_000.0,
            p99_ns: Some(900_000),
            ..v
        };
        assert_eq!(
            progress_line(&after),
            "after the storm 4.0/10.0 s · 11,000 open · 10,000 msgs/s · p99 900 µs · errors 0"
        );
    }

    #[test]
    fn warmup_and_fanout_show_time_and_rates() {
        let v = ProgressView {
            mode: Some(Mode::Fanout),
            stage: Some(Stage::Warmup),
            stage_secs: 1.3,
            stage_len_secs: Some(2.0),
            open: 501,
            published: Some(120),
            messages_per_sec: 50_000.0,
            errors: 3,
            ..ProgressView::default()
        };
        assert_eq!(
            progress_line(&v),
            "warm-up 1.3/2.0 s · 501 open · 120 published · 50,000 deliveries/s · errors 3"
        );
        let measure = ProgressView {
            stage: Some(Stage::Measure),
            stage_secs: 12.0,
            stage_len_secs: Some(10.0),
            p99_ns: Some(40_000),
            ..v
        };
        assert_eq!(
            progress_line(&measure),
            "fanout 10.0/10.0 s · 501 open · 120 published · 50,000 deliveries/s · p99 40 µs · errors 3"
        );
    }

    #[test]
    fn churn_has_no_connecting_phase_and_the_end_shows_closing() {
        let v = ProgressView {
            mode: Some(Mode::Churn),
            stage: Some(Stage::Ramp),
            open: 3,
            messages_per_sec: 500.0,
            ..ProgressView::default()
        };
        assert!(progress_line(&v).starts_with("churn 0.0 s · 3 open · 500 cycles/s"));
        let close = ProgressView {
            stage: Some(Stage::Close),
            open: 1_200,
            ..v
        };
        assert_eq!(progress_line(&close), "closing 1,200 open · errors 0");
        let done = ProgressView {
            stage: Some(Stage::Done),
            ..close
        };
        assert_eq!(progress_line(&done), "done · errors 0");
    }
}
