//! `--storm-in-child`: the storm's connects run in a child `tether-load`
//! process, so the measuring loop (the established clients' PINGs and
//! PONGs) is never stalled behind thousands of connects and WELCOMEs in its
//! own turns. The child is this binary with the same flags, one
//! established client and no warmup; when its storm is over it prints one
//! [`STORM_OVER`] line with its outcomes and every connect time, which the
//! parent takes as its own, and it holds its connections until the parent
//! ends (dropping [`StormChild`] kills it).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, TryRecvError};

use super::Storm;
use crate::stats::ErrorKind;

/// Set in the child's environment: report the storm's end on stdout.
const CHILD_ENV: &str = "TETHER_LOAD_STORM_CHILD";
/// The first word of the child's report line.
const STORM_OVER: &str = "storm-over";
/// Flags of the parent the child does not get (with their values).
const NOT_PASSED: [&str; 3] = ["--server-pid", "--report", "--duration"];

/// Whether this process is a storm child.
pub fn is_storm_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The child's report line: outcomes, failures by kind and the connect
/// times (`value:count` pairs of the histogram, in ns).
pub fn report_line(storm: &Storm) -> String {
    let failed: Vec<String> = storm
        .failed_counts()
        .iter()
        .map(|(k, n)| format!("{k}:{n}"))
        .collect();
    let times: Vec<String> = storm
        .connect_time
        .iter_recorded()
        .map(|v| format!("{}:{}", v.value_iterated_to(), v.count_at_value()))
        .collect();
    format!(
        "{STORM_OVER} {} {} {} {} {}",
        storm.accepted,
        storm.refused,
        storm.goaway_other,
        failed.join(","),
        times.join(",")
    )
}

/// Prints the report line on stdout (the child, at its storm's end).
pub fn print_report(storm: &Storm) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", report_line(storm));
    let _ = out.flush();
}

/// Takes a child's report line into the parent's storm: outcomes and
/// connect times. `false` if the line is not one.
pub fn apply_report(storm: &mut Storm, line: &str) -> bool {
    let mut words = line.split(' ');
    if words.next() != Some(STORM_OVER) {
        return false;
    }
    let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
    let (Some(accepted), Some(refused), Some(other)) = (number(), number(), number()) else {
        return false;
    };
    storm.accepted = accepted;
    storm.refused = refused;
    storm.goaway_other = other;
    let pairs = |text: Option<&str>| -> Vec<(String, u64)> {
        text.unwrap_or("")
            .split(',')
            .filter_map(|p| {
                let (k, n) = p.split_once(':')?;
                Some((k.to_string(), n.parse().ok()?))
            })
            .collect()
    };
    for (name, n) in pairs(words.next()) {
        if let Some(kind) = ErrorKind::ALL.iter().find(|k| k.name() == name) {
            for _ in 0..n.min(1_000_000) {
                storm.on_failed(*kind);
            }
        }
    }
    for (value, count) in pairs(words.next()) {
        if let Ok(value) = value.parse::<u64>() {
            let _ = storm.connect_time.record_n(value.max(1), count);
        }
    }
    true
}

/// The running child and the lines it prints.
#[derive(Debug)]
pub struct StormChild {
    child: Child,
    lines: Receiver<String>,
}

impl StormChild {
    /// Starts this binary again with the parent's flags, `--connections 1
    /// --warmup 0` and a duration that outlasts the parent's run, at
    /// `nice 10`: a real storm's clients run on other machines, so the
    /// child's own work (10,000 client-side TLS handshakes on the same two
    /// cores) must not take the CPU from the server and the clients it
    /// measures; it still connects as fast as the CPU left lets it.
    pub fn spawn(outlast_secs: f64) -> std::io::Result<StormChild> {
        let mut args: Vec<OsString> = Vec::new();
        let mut skip_value = false;
        for arg in std::env::args_os().skip(1) {
            if std::mem::take(&mut skip_value) {
                continue;
            }
            let text = arg.to_string_lossy();
            if text == "--storm-in-child" {
                continue;
            }
            if let Some(flag) = NOT_PASSED
                .iter()
                .find(|f| text == **f || text.starts_with(&format!("{f}=")))
            {
                skip_value = text == *flag;
                continue;
            }
            args.push(arg);
        }
        for extra in ["--connections", "1", "--warmup", "0", "--duration"] {
            args.push(extra.into());
        }
        args.push(format!("{:.0}", outlast_secs.ceil()).into());
        let mut child = Command::new("nice")
            .arg("-n")
            .arg("10")
            .arg(std::env::current_exe()?)
            .args(&args)
            .env(CHILD_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout from the storm child"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(STORM_OVER) && tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(StormChild { child, lines })
    }

    /// The child's report line, once it is there; `Err` when the child
    /// ended without one.
    pub fn poll_report(&mut self) -> Result<Option<String>, String> {
        match self.lines.try_recv() {
            Ok(line) => Ok(Some(line)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                Err(format!(
                    "the storm child ended without a report ({status:?})"
                ))
            }
        }
    }
}

impl Drop for StormChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_carries_outcomes_and_connect_times_over() {
        let mut child = Storm::new(5).expect("storm");
        for ns in [1_000_000, 2_000_000, 2_000_000] {
            child.on_welcome(ns);
        }
        child.on_goaway(tether::protocol::GoawayCode::ServerFull);
        child.on_failed(ErrorKind::ALL[0]);
        let line = report_line(&child);
        let mut parent = Storm::new(5).expect("storm");
        assert!(apply_report(&mut parent, &line), "{line}");
        assert_eq!((parent.accepted, parent.refused), (3, 1));
        assert_eq!(parent.resolved(), 5);
        assert_eq!(parent.connect_time.len(), 3);
        assert_eq!(
            parent.connect_time.max(),
            child.connect_time.max(),
            "{line}"
        );
        assert!(!apply_report(&mut parent, "something else"));
    }
}
