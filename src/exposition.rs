//! The Prometheus text exposition format (version 0.0.4), written in one
//! place: every metric family is a `# HELP` line, a `# TYPE` line and its
//! samples, with the help text and label values escaped as the format asks.
//!
//! The reactor's counters ([`crate::reactor::stats::Stats::write_metrics`]) and the
//! application's ([`crate::app::App::write_metrics`]) both write into one [`Exposition`],
//! which the metrics endpoint serves as the body of `GET /metrics`.

use std::fmt::Write;

/// What a metric family measures, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only goes up (until a restart): totals.
    Counter,
    /// Goes up and down: levels measured when scraped.
    Gauge,
    /// Observations counted into cumulative buckets, with their sum.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A Prometheus text exposition being written: append families with
/// [`counter`](Exposition::counter), [`gauge`](Exposition::gauge) and their
/// labelled variants, then take the text with
/// [`into_string`](Exposition::into_string).
///
/// Metric and label names are the caller's constants and must match the
/// format's name rules (checked in debug builds); help text and label values
/// may be anything and are escaped here.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty exposition with room for `bytes` of text, so a whole scrape
    /// is written without growing the buffer.
    pub fn with_capacity(bytes: usize) -> Self {
        Exposition {
            text: String::with_capacity(bytes),
        }
    }

    /// Appends a counter family with one unlabelled sample:
    /// `# HELP name help`, `# TYPE name counter`, `name value`.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Counter);
        self.sample(name, None, value);
    }

    /// Appends a gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Gauge);
        self.sample(name, None, value);
    }

    /// Appends a counter family with one sample per `(label value, value)`
    /// of `series`, each as `name{label="label value"} value`.
    pub fn labelled_counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.labelled(Kind::Counter, name, help, label, series);
    }

    /// Appends a gauge family with one sample per `(label value, value)` of
    /// `series`, like [`labelled_counter`](Exposition::labelled_counter).
    pub fn labelled_gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.labelled(Kind::Gauge, name, help, label, series);
    }

    /// Appends a histogram family of durations in seconds: one cumulative
    /// `name_bucket{le="..."}` sample per bound and `+Inf`, then `name_sum`
    /// and `name_count`.
    pub fn histogram(&mut self, name: &str, help: &str, histogram: &DurationHistogram) {
        self.family(name, help, Kind::Histogram);
        let mut cumulative = 0;
        for (bound, count) in DURATION_BOUNDS_US.iter().zip(histogram.counts) {
            cumulative += count;
            let le = format!("{}", *bound as f64 / 1e6);
            self.sample_with(name, "_bucket", Some(("le", &le)), cumulative);
        }
        self.sample_with(name, "_bucket", Some(("le", "+Inf")), histogram.count);
        let _ = writeln!(self.text, "{name}_sum {}", histogram.sum_us as f64 / 1e6);
        self.sample_with(name, "_count", None, histogram.count);
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The finished text, the body of a `GET /metrics` answer.
    pub fn into_string(self) -> String {
        self.text
    }

    fn labelled<'a>(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, help, kind);
        for (label_value, value) in series {
            self.sample(name, Some((label, label_value)), value);
        }
    }

    fn family(&mut self, name: &str, help: &str, kind: Kind) {
        debug_assert!(is_metric_name(name), "bad metric name {name:?}");
        let _ = write!(self.text, "# HELP {name} ");
        push_escaped(&mut self.text, help, Quotes::Kept);
        let _ = writeln!(self.text, "\n# TYPE {name} {}", kind.as_str());
    }

    fn sample(&mut self, name: &str, label: Option<(&str, &str)>, value: u64) {
        self.sample_with(name, "", label, value);
    }

    fn sample_with(&mut self, name: &str, suffix: &str, label: Option<(&str, &str)>, value: u64) {
        self.text.push_str(name);
        self.text.push_str(suffix);
        if let Some((label, label_value)) = label {
            debug_assert!(is_label_name(label), "bad label name {label:?}");
            let _ = write!(self.text, "{{{label}=\"");
            push_escaped(&mut self.text, label_value, Quotes::Escaped);
            self.text.push_str("\"}");
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Upper bounds of the [`DurationHistogram`] buckets, in microseconds: from
/// 100 µs to 10 s, about three per decade.
pub const DURATION_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Durations counted into the fixed [`DURATION_BOUNDS_US`] buckets: fixed
/// memory, one add per observation, written by [`Exposition::histogram`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DurationHistogram {
    /// Observations per bucket (not cumulative): `counts[i]` ≤ bound `i`, above bound `i - 1`.
    counts: [u64; DURATION_BOUNDS_US.len()],
    /// All observations, including those above the last bound.
    count: u64,
    /// Their sum, µs.
    sum_us: u64,
}

impl DurationHistogram {
    /// Counts one duration.
    pub fn observe(&mut self, duration: std::time::Duration) {
        self.observe_many(duration, 1);
    }

    /// Counts `n` observations of the same duration (a batch measured with
    /// one clock read).
    pub fn observe_many(&mut self, duration: std::time::Duration, n: u64) {
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = DURATION_BOUNDS_US.iter().position(|bound| us <= *bound) {
            self.counts[i] += n;
        }
        self.count += n;
        self.sum_us = self.sum_us.saturating_add(us.saturating_mul(n));
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Whether `"` is escaped: in label values, not in help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quotes {
    Kept,
    Escaped,
}

/// Appends `text` with `\` and newlines escaped (and `"` if asked), so a help
/// text or label value cannot break the line it is on.
fn push_escaped(out: &mut String, text: &str, quotes: Quotes) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes == Quotes::Escaped => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the format's rule for metric names.
fn is_metric_name(name: &str) -> bool {
    is_name(name, true)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the format's rule for label names.
fn is_label_name(name: &str) -> bool {
    is_name(name, false)
}

fn is_name(name: &str, colon_allowed: bool) -> bool {
    let leading = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (colon_allowed && b == b':');
    let mut bytes = name.bytes();
    bytes.next().is_some_and(leading) && bytes.all(|b| leading(b) || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_help_type_and_samples() {
        let mut out = Exposition::new();
        out.gauge("t_open", "Open now.", 3);
        out.counter("t_total", "All of them.", 7);
        out.labelled_counter("t_by", "By reason.", "reason", [("a", 1), ("b", 2)]);
        out.labelled_gauge("t_level", "Levels.", "queue", [("q", 0)]);
        assert_eq!(
            out.into_string(),
            "# HELP t_open Open now.\n# TYPE t_open gauge\nt_open 3\n\
             # HELP t_total All of them.\n# TYPE t_total counter\nt_total 7\n\
             # HELP t_by By reason.\n# TYPE t_by counter\nt_by{reason=\"a\"} 1\nt_by{reason=\"b\"} 2\n\
             # HELP t_level Levels.\n# TYPE t_level gauge\nt_level{queue=\"q\"} 0\n"
        );
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let mut out = Exposition::new();
        out.labelled_counter(
            "t_x",
            "back\\slash\nnew \"quoted\"",
            "v",
            [("a\"b\\c\nd", u64::MAX)],
        );
        assert_eq!(
            out.as_str(),
            "# HELP t_x back\\\\slash\\nnew \"quoted\"\n# TYPE t_x counter\n\
             t_x{v=\"a\\\"b\\\\c\\nd\"} 18446744073709551615\n"
        );
    }

    #[test]
    fn an_empty_series_still_declares_its_family() {
        let mut out = Exposition::with_capacity(64);
        out.labelled_counter("t_none", "Nothing yet.", "code", []);
        assert_eq!(
            out.as_str(),
            "# HELP t_none Nothing yet.\n# TYPE t_none counter\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = DurationHistogram::default();
        h.observe(std::time::Duration::from_micros(80));
        h.observe(std::time::Duration::from_micros(300));
        h.observe(std::time::Duration::from_secs(60));
        let mut out = Exposition::new();
        out.histogram("t_h_seconds", "H.", &h);
        let text = out.into_string();
        assert!(text.starts_with("# HELP t_h_seconds H.\n# TYPE t_h_seconds histogram\n"));
        assert!(text.contains("t_h_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("t_h_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("t_h_seconds_bucket{le=\"0.0005\"} 2\n"));
        assert!(text.contains("t_h_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("t_h_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("t_h_seconds_sum 60.00038\n"));
        assert!(text.ends_with("t_h_seconds_count 3\n"));
    }

    #[test]
    fn name_rules() {
        for good in ["a", "tether_x_total", "_a:b", "A9"] {
            assert!(is_metric_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "é"] {
            assert!(!is_metric_name(bad), "{bad}");
        }
        assert!(is_label_name("code") && is_label_name("_r2"));
        assert!(!is_label_name("a:b") && !is_label_name("") && !is_label_name("1"));
    }
}
