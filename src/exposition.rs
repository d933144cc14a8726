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
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
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
        self.text.push_str(name);
        if let Some((label, label_value)) = label {
            debug_assert!(is_label_name(label), "bad label name {label:?}");
            let _ = write!(self.text, "{{{label}=\"");
            push_escaped(&mut self.text, label_value, Quotes::Escaped);
            self.text.push_str("\"}");
        }
        let _ = writeln!(self.text, " {value}");
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
