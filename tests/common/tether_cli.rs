//! The `tether-cli` binary under test: runs that must exit on their own,
//! with optional stdin, and long-running subscribers whose stdout is read
//! line by line while they run (killed and reaped on drop).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const TETHER_CLI: &str = env!("CARGO_BIN_EXE_tether-cli");

/// What a finished run of `tether-cli` left.
#[derive(Debug)]
pub struct CliRun {
    /// Its exit status; `None` when it had to be killed at the timeout.
    pub status: Option<ExitStatus>,
    /// Everything on stdout (lossily UTF-8).
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl CliRun {
    /// The exit code, failing the test if the run was killed.
    pub fn code(&self) -> i32 {
        self.status
            .and_then(|s| s.code())
            .unwrap_or_else(|| panic!("tether-cli did not exit by itself: {self:?}"))
    }
}

fn quiet(command: &mut Command) -> &mut Command {
    let level = std::env::var("TETHER_TEST_LOG").unwrap_or_else(|_| "warn".to_string());
    command.env("RUST_LOG", level)
}

/// Runs `tether-cli ARGS...` with `stdin` (empty when `None`) until it
/// exits, killing it after `timeout`.
pub fn cli_run(args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> CliRun {
    let mut child = quiet(&mut Command::new(TETHER_CLI))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tether-cli");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.unwrap_or_default().to_vec();
    let feeder = thread::spawn(move || {
        let _ = input.write_all(&bytes);
        // Dropping `input` closes it: the end of stdin.
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_thread = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_or_kill(&mut child, timeout);
    let _ = feeder.join();
    CliRun {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running `tether-cli` (a subscriber), its stdout read line by line.
pub struct CliProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl CliProcess {
    /// Starts `tether-cli ARGS...` with an empty stdin.
    pub fn spawn(args: &[&str]) -> CliProcess {
        let mut child = quiet(&mut Command::new(TETHER_CLI))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tether-cli");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err).read_to_string(&mut s);
            let _ = etx.send(s);
        });
        CliProcess {
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Lines until one contains `needle` (returned last), or panics after `timeout`.
    pub fn lines_until(&self, needle: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within {timeout:?}; got {seen:?}"),
            }
        }
    }

    /// Every stdout line until the process exits (waiting at most
    /// `timeout`), its exit status, and its stderr.
    pub fn finish(mut self, timeout: Duration) -> (Vec<String>, Option<ExitStatus>, String) {
        let status = wait_or_kill(&mut self.child, timeout);
        let lines: Vec<String> = self.lines.iter().collect();
        let stderr = self.stderr.recv_timeout(timeout).unwrap_or_default();
        (lines, status, stderr)
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One JSON line `tether-cli --json` printed, parsed (a line that is not
/// JSON fails the test, showing it).
pub fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// Asserts that the `message` events among `events` are the publications
/// of `tether-cli pub --count N` at offsets `first..first + count`: each
/// once, in order, with payload `seq:K` (K from 1 at `first`). `who` names
/// the subscriber in the messages; `stderr` is shown on failure.
pub fn assert_every_seq_once<'a>(
    events: impl IntoIterator<Item = &'a serde_json::Value>,
    first: u64,
    count: u64,
    who: &str,
    stderr: &str,
) {
    let messages: Vec<&serde_json::Value> = events
        .into_iter()
        .filter(|e| e["event"] == "message")
        .collect();
    let offsets: Vec<u64> = messages
        .iter()
        .map(|m| m["offset"].as_u64().expect("offset"))
        .collect();
    let first_gap = offsets
        .iter()
        .zip(first..)
        .find(|(offset, expected)| **offset != *expected);
    assert_eq!(
        first_gap,
        None,
        "{who}: offsets not contiguous from {first} ({} messages; stderr {stderr})",
        offsets.len()
    );
    assert_eq!(offsets.len() as u64, count, "{who}: stderr {stderr}");
    for m in &messages {
        let offset = m["offset"].as_u64().expect("offset");
        assert_eq!(m["payload"], format!("seq:{}", offset - first + 1), "{who}");
    }
}
