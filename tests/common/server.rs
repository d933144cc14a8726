//! The process under test: the real `tether` binary (or another program that
//! prints `listening on IP:PORT` first, such as the C example) started on a
//! free port, its stderr collected, killed and reaped on drop; the flags that
//! give it short timers; and runs of the binary that must exit on their own.
//! With `--tls-listen` it also waits for the `listening on IP:PORT tls` line.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::client::Client;
use tether::protocol::Welcome;

/// The binary under test.
pub const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// How long the server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The fast heartbeat, for tests that wait for eviction: a 10 ms tick and a
/// 100 ms heartbeat (the floor lowered to 50 ms to allow it) missed twice, so
/// a silent connection is evicted 200 ms after its last frame.
pub const FAST_HEARTBEAT: &[&str] = &[
    "--tick-ms",
    "10",
    "--min-heartbeat-ms",
    "50",
    "--heartbeat-ms",
    "100",
    "--miss",
    "2",
];

/// [`FAST_HEARTBEAT`] with `changes` applied, as `(flag, value)` pairs: a flag
/// it already has takes the new value, any other is appended with its value.
pub fn fast_heartbeat_with<'a>(changes: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let mut args: Vec<&'a str> = FAST_HEARTBEAT.to_vec();
    for &(flag, value) in changes {
        match args.chunks(2).position(|pair| pair[0] == flag) {
            Some(pair) => args[2 * pair + 1] = value,
            None => args.extend([flag, value]),
        }
    }
    args
}

/// Every server timer short: [`FAST_HEARTBEAT`] (idle eviction after 200 ms)
/// and a 300 ms handshake timeout.
pub fn fast_timers() -> Vec<&'static str> {
    fast_heartbeat_with(&[("--handshake-timeout-ms", "300")])
}

/// `tether --listen 127.0.0.1:0 ARGS...`, ready for [`Server::spawn`]. The
/// echo app unless ARGS name another: most of these tests are about the
/// transport, which echo shows plainly. Quiet by default (the metrics address
/// is logged at info level, so with `--metrics` it logs that much);
/// `TETHER_TEST_LOG=debug` shows the server's log.
pub fn tether_command(args: &[&str]) -> Command {
    tether_command_at("127.0.0.1:0", args)
}

/// [`tether_command`] listening on `listen` instead of a free port: a
/// successor started on the address a stopped server used (a restart).
pub fn tether_command_at(listen: &str, args: &[&str]) -> Command {
    let mut with_listen = vec!["--listen", listen];
    with_listen.extend_from_slice(args);
    tether_command_without_listen(&with_listen)
}

/// [`tether_command`] without the `--listen 127.0.0.1:0` it adds: for a
/// server that listens on sockets it inherits (systemd socket activation).
pub fn tether_command_without_listen(args: &[&str]) -> Command {
    let app: &[&str] = if args.contains(&"--app") {
        &[]
    } else {
        &["--app", "echo"]
    };
    let wants_metrics = args.contains(&"--metrics");
    let level = std::env::var("TETHER_TEST_LOG")
        .unwrap_or_else(|_| if wants_metrics { "info" } else { "error" }.to_string());
    let mut command = Command::new(TETHER);
    command.args(app).args(args).env("RUST_LOG", level);
    command
}

/// A running server process, killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Child,
    /// The address it printed in its first `listening on` line.
    pub addr: SocketAddr,
    /// The address of its first TLS listener (`listening on IP:PORT tls`),
    /// when started with `--tls-listen`.
    pub tls_addr: Option<SocketAddr>,
    /// Its process id.
    pub pid: i32,
    /// The metrics address, when started with `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// Every line the process wrote on stderr so far, with when it arrived.
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Starts `tether --listen 127.0.0.1:0 ARGS...` (see [`tether_command`])
    /// and waits for its `listening on IP:PORT` line.
    pub fn start(args: &[&str]) -> Server {
        Server::spawn(tether_command(args))
    }

    /// Spawns `command`, whose first stdout line must be `listening on
    /// IP:PORT` (with ` tls` after it for a TLS listener), and waits for that
    /// line. With `--tls-listen` among its arguments, also waits for the
    /// first TLS listener's line; with `--metrics`, for the `metrics on
    /// http://IP:PORT/metrics` line on stderr. Stdio is piped here: the caller sets the rest (arguments,
    /// environment, `pre_exec`).
    pub fn spawn(mut command: Command) -> Server {
        let wants_metrics = command.get_args().any(|a| a == "--metrics");
        let wants_tls = command.get_args().any(|a| a == "--tls-listen");
        let name = Path::new(command.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Both readers keep draining after what they wait for, so the server
        // can never block (or get EPIPE) writing to a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = tx.send(Some(line));
            }
            let _ = tx.send(None);
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (mtx, mrx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("metrics on http://").nth(1) {
                        let addr = rest.trim().trim_end_matches("/metrics").to_string();
                        let _ = mtx.send(addr);
                    }
                    eprintln!("[{name}] {line}");
                    log.lock().expect("log lock").push((Instant::now(), line));
                }
            });
        }
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "{command:?} did not print `listening on ...` within {STARTUP_TIMEOUT:?}: \
                     got {other:?}, exit status {status:?}"
                );
            }
        };
        let Some((addr, is_tls)) = parse_listening(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first stdout line from {command:?}: {line:?}")
        };
        let mut tls_addr = is_tls.then_some(addr);
        // The TLS listeners' lines follow the plaintext ones.
        while wants_tls && tls_addr.is_none() {
            match rx.recv_timeout(STARTUP_TIMEOUT) {
                Ok(Some(Ok(line))) => {
                    tls_addr = parse_listening(&line).and_then(|(a, tls)| tls.then_some(a));
                }
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{command:?} printed no `listening on IP:PORT tls` line: got {other:?}");
                }
            }
        }
        let metrics = wants_metrics.then(|| {
            // Logged before `listening on` is printed, so it is already on its way.
            let text = mrx
                .recv_timeout(STARTUP_TIMEOUT)
                .expect("the `metrics on http://IP:PORT/metrics` log line");
            text.parse::<SocketAddr>()
                .unwrap_or_else(|_| panic!("unparsable metrics address {text:?}"))
        });
        Server {
            child,
            addr,
            tls_addr,
            pid,
            metrics,
            stderr: log,
            exit: None,
        }
    }

    /// A new client connected to this server (no HELLO sent yet).
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A new client that has completed the handshake with `heartbeat_ms`.
    pub fn open(&self, heartbeat_ms: u32) -> Client {
        let mut c = self.connect();
        c.handshake(heartbeat_ms);
        c
    }

    /// The WELCOME a new connection gets for a HELLO asking for `heartbeat_ms`
    /// (the connection is closed after it).
    pub fn welcome(&self, heartbeat_ms: u32) -> Welcome {
        self.connect().handshake(heartbeat_ms)
    }

    /// A new client that has completed a protocol-v2 handshake with
    /// `heartbeat_ms` (see [`Client::handshake_v2`]).
    pub fn open_v2(&self, heartbeat_ms: u32) -> Client {
        let mut c = self.connect();
        c.handshake_v2(heartbeat_ms);
        c
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits (at most 5 s) for the graceful stop a signal began, and checks
    /// it ended with status 0; `after` says which stop, for the message.
    pub fn expect_clean_exit(&mut self, after: &str) {
        let status = self
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("server still running 5 s after {after}"));
        assert_eq!(status.code(), Some(0), "exit status after {after}");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stderr lines so far that contain `needle`, with when each arrived.
    pub fn stderr_lines_with(&self, needle: &str) -> Vec<(Instant, String)> {
        self.stderr
            .lock()
            .expect("log lock")
            .iter()
            .filter(|(_, line)| line.contains(needle))
            .cloned()
            .collect()
    }

    /// Everything on stderr so far, one line after another.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .expect("log lock")
            .iter()
            .map(|(_, line)| format!("{line}\n"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `listening on IP:PORT` → (the address, false); `listening on IP:PORT
/// tls` → (the address, true); anything else → `None`.
fn parse_listening(line: &str) -> Option<(SocketAddr, bool)> {
    let rest = line.strip_prefix("listening on ")?.trim();
    let (addr, tls) = match rest.strip_suffix(" tls") {
        Some(addr) => (addr, true),
        None => (rest, false),
    };
    Some((addr.trim().parse().ok()?, tls))
}

/// Runs `tether ARGS...` expecting it to exit on its own (startup errors,
/// `--help`); returns (status, stdout, stderr). Killed after `timeout`.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<ExitStatus>, String, String) {
    let mut command = Command::new(TETHER);
    command.args(args);
    run_command_to_exit(command, timeout)
}

/// [`run_to_exit`] for a command the caller prepared (environment,
/// `pre_exec`); stdio is piped here.
pub fn run_command_to_exit(
    mut command: Command,
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    (status, stdout, stderr)
}
