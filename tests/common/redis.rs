//! Real Redis for the engine tests: `redis-server` processes started on
//! free loopback ports in temporary directories (one server, or a
//! three-master Redis Cluster made with `redis-cli --cluster create`),
//! killed and removed on drop; and [`BlockingRedis`], the engine's sans-io
//! [`RedisConn`] driven over a plain blocking `TcpStream`.
//!
//! A missing `redis-server` fails the test (scripts/test.sh installs it):
//! the engine tests never skip.

use std::collections::VecDeque;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether::app::pubsub::ops_v2::Position;
use tether::engine::redis::scripts::parse_publication;
use tether::engine::redis::{
    Command as RedisCommand, KeySpace, PubsubKind, RedisConfig, RedisConn, RedisError, RedisEvent,
    RedisStreams, StreamRead, Token, Value,
};
use tether::random::RandomPool;

use super::temp::TempFile;

mod cluster;
// Not every test binary that includes `common` uses it.
#[allow(unused_imports)]
pub use cluster::RedisCluster;

/// How long a server may take to answer PING, and a cluster to become `ok`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start one `redis-server`.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass`: clients must authenticate.
    pub password: Option<String>,
    /// `cluster-enabled yes`: a node of a Redis Cluster (its bus port is
    /// the port + 10000, which must be free too).
    pub cluster: bool,
}

/// A running `redis-server`, SIGKILLed and reaped on drop with its directory.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Holds `redis.conf`, `redis.log` and (in a cluster) `nodes.conf`.
    dir: TempFile,
}

impl RedisServer {
    /// A plain server: no password, no persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    /// A server as `options` say. Panics (the test fails) when none can be
    /// started: `redis-server` missing, or three tries lost to port races.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port(options.cluster);
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\nprotected-mode no\n\
                 daemonize no\nlogfile redis.log\n"
            );
            if let Some(password) = &options.password {
                conf.push_str(&format!("requirepass {password}\n"));
            }
            if options.cluster {
                conf.push_str("cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 5000\n");
            }
            let dir = TempFile::new("redis.conf", conf.as_bytes());
            let child = spawn_redis(&dir);
            let mut server = RedisServer { child, port, dir };
            if server.wait_for_pong() {
                return server;
            }
            last_log = server.log();
        }
        panic!("redis-server did not start in three tries; its last log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:PORT` as text, as redis-cli and MOVED replies write it.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.dir().join("redis.log")).unwrap_or_default()
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        self.dir.dir()
    }

    /// SIGKILL and reap: the server's sockets close at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL (unless [`RedisServer::kill`] came first), then a fresh
    /// `redis-server` on the same port and directory: the data is gone
    /// (nothing is persisted); a cluster node rejoins from its `nodes.conf`.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_redis(&self.dir);
        assert!(
            self.wait_for_pong(),
            "redis-server did not start again on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing.
    pub fn pause(&mut self) {
        signal(&mut self.child, libc::SIGSTOP);
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&mut self) {
        signal(&mut self.child, libc::SIGCONT);
    }

    /// Polls PING until `+PONG` (or `-NOAUTH`, which also says it serves);
    /// false when the process exits first (its port was taken) or on timeout.
    fn wait_for_pong(&mut self) -> bool {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
            {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut reply = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() {
                    if let Ok(n) = s.read(&mut reply) {
                        if reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH") {
                            return true;
                        }
                    }
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// `redis-server` on the `redis.conf` in `dir`, run there.
fn spawn_redis(dir: &TempFile) -> Child {
    Command::new("redis-server")
        .arg(dir.arg())
        .current_dir(dir.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}): scripts/test.sh installs it (apt-get install redis-server)")
        })
}

/// Sends `sig` to the server; a reaped one (after [`RedisServer::kill`]) is left alone.
fn signal(child: &mut Child, sig: libc::c_int) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({}, {sig}) failed", child.id());
}

/// A port that is free on 127.0.0.1 now (and, for a cluster node, its bus
/// port + 10000 too). Another process can take it before redis-server
/// binds it: [`RedisServer::start_with`] retries then.
fn free_port(with_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if !with_bus {
            return port;
        }
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// A [`RedisConn`] over a blocking `TcpStream`: what the reactor will do
/// with mio, done with plain reads with a timeout. Events not yet asked
/// for are kept in order.
pub struct BlockingRedis {
    /// The sans-io connection.
    pub conn: RedisConn,
    stream: TcpStream,
    backlog: VecDeque<RedisEvent>,
    next_token: Token,
}

/// How long [`BlockingRedis::request`] and the waits give Redis.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl BlockingRedis {
    /// Connects to `addr` and starts the handshake without waiting for it.
    pub fn connect(addr: SocketAddr, config: RedisConfig) -> BlockingRedis {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to redis at {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        BlockingRedis {
            conn: RedisConn::new(config, Instant::now()),
            stream,
            backlog: VecDeque::new(),
            next_token: 1,
        }
    }

    /// Connects and waits for [`RedisEvent::Ready`]; panics on anything else.
    pub fn open(addr: SocketAddr, config: RedisConfig) -> BlockingRedis {
        let mut redis = BlockingRedis::connect(addr, config);
        match redis.wait_event(REPLY_TIMEOUT, |e| {
            matches!(e, RedisEvent::Ready { .. } | RedisEvent::Closed(_))
        }) {
            Some(RedisEvent::Ready { .. }) => redis,
            other => panic!("redis at {addr} not ready: {other:?}"),
        }
    }

    /// Queues `command` under a fresh token; panics if refused.
    pub fn send(&mut self, command: RedisCommand) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        if let Err((why, command)) = self.conn.send(token, command, Instant::now()) {
            panic!("{command:?} refused: {why:?}");
        }
        token
    }

    /// Sends `command` and waits for its reply; other events stay queued.
    pub fn request(&mut self, command: RedisCommand) -> Result<Value, RedisError> {
        let token = self.send(command);
        self.result_of(token)
    }

    /// Waits for the reply or failure of `token`.
    pub fn result_of(&mut self, token: Token) -> Result<Value, RedisError> {
        let event = self.wait_event(REPLY_TIMEOUT, |e| match e {
            RedisEvent::Reply { token: t, .. } | RedisEvent::Failed { token: t, .. } => *t == token,
            _ => false,
        });
        match event {
            Some(RedisEvent::Reply { value, .. }) => Ok(value),
            Some(RedisEvent::Failed { error, .. }) => Err(error),
            other => panic!("no reply to token {token} within {REPLY_TIMEOUT:?}: {other:?}"),
        }
    }

    /// Moves bytes both ways until an event matching `wanted` comes (it is
    /// taken out; the others stay in order), or `timeout` passes.
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&RedisEvent) -> bool,
    ) -> Option<RedisEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(event) = self.conn.poll_event() {
                self.backlog.push_back(event);
            }
            if let Some(at) = self.backlog.iter().position(&mut wanted) {
                return self.backlog.remove(at);
            }
            let now = Instant::now();
            if now >= deadline || self.conn.is_closed() {
                return None;
            }
            self.pump(deadline - now);
        }
    }

    /// Every event received so far, in order.
    pub fn take_events(&mut self) -> Vec<RedisEvent> {
        self.pump(Duration::from_millis(1));
        self.backlog.drain(..).collect()
    }

    /// One round: writes what is due, reads once (at most `limit`, and not
    /// past the connection's timer), feeds the timer.
    pub fn pump(&mut self, limit: Duration) {
        while let Some(bytes) = self.conn.poll_transmit() {
            if let Err(e) = self.stream.write_all(&bytes) {
                self.conn.handle_io_error(&e.to_string());
            }
        }
        if !self.conn.is_closed() {
            let now = Instant::now();
            let until_timer = self
                .conn
                .poll_timeout()
                .map_or(limit, |t| t.saturating_duration_since(now));
            let wait = limit.min(until_timer).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(wait))
                .expect("read timeout");
            let mut buf = vec![0u8; 64 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => self.conn.handle_eof(),
                Ok(n) => self.conn.handle_bytes(&buf[..n], Instant::now()),
                Err(e)
                    if matches!(
                        e.kind(),
                        IoKind::WouldBlock | IoKind::TimedOut | IoKind::Interrupted
                    ) => {}
                Err(e) => self.conn.handle_io_error(&e.to_string()),
            }
            let now = Instant::now();
            if self.conn.poll_timeout().is_some_and(|t| now >= t) {
                self.conn.handle_timeout(now);
            }
            // The PING a timer queued goes out in this round, not the next.
            while let Some(bytes) = self.conn.poll_transmit() {
                if let Err(e) = self.stream.write_all(&bytes) {
                    self.conn.handle_io_error(&e.to_string());
                }
            }
        }
        while let Some(event) = self.conn.poll_event() {
            self.backlog.push_back(event);
        }
    }
}

// ----- the engine's streams, for the tests -----

/// Streams as the tests use them: classic pub/sub, default key space,
/// replays of up to 1000 publications or 1 MiB.
pub fn streams(history_size: u64, ttl_ms: u64) -> RedisStreams {
    RedisStreams {
        keys: KeySpace::default(),
        pubsub: PubsubKind::Global,
        history_size,
        ttl_ms,
        max_replay: 1000,
        max_replay_bytes: 1 << 20,
    }
}

/// A candidate epoch from the OS random source, as a node draws it.
pub fn epoch() -> u64 {
    RandomPool::open()
        .expect("OS random source")
        .epoch()
        .expect("an epoch")
}

/// A ready connection to `server` with the engine's scripts loaded.
pub fn open(server: &RedisServer) -> BlockingRedis {
    let mut redis = BlockingRedis::open(server.addr(), RedisConfig::default());
    for load in RedisStreams::load_commands() {
        redis.request(load).expect("SCRIPT LOAD");
    }
    redis
}

/// Publishes and returns (epoch, offset).
pub fn publish(
    redis: &mut BlockingRedis,
    s: &RedisStreams,
    channel: &[u8],
    body: &[u8],
) -> (u64, u64) {
    let reply = redis
        .request(s.publish(channel, Bytes::copy_from_slice(body), epoch()))
        .unwrap_or_else(|e| panic!("publish failed: {e}"));
    let p = RedisStreams::published(&reply).expect("a publish reply");
    (p.epoch, p.offset)
}

/// Runs the read script for `position` and parses its reply.
pub fn read(
    redis: &mut BlockingRedis,
    s: &RedisStreams,
    channel: &[u8],
    position: Option<Position>,
) -> StreamRead {
    let reply = redis
        .request(s.read(channel, position, epoch()))
        .expect("read");
    RedisStreams::stream_read(&reply).expect("a read reply")
}

/// The position (epoch, offset).
pub fn at(epoch: u64, offset: u64) -> Option<Position> {
    Some(Position { epoch, offset })
}

/// Offsets and bodies of replayed payloads.
pub fn entries(replay: &[Bytes]) -> Vec<(u64, Vec<u8>)> {
    replay
        .iter()
        .map(|p| {
            let p = parse_publication(p).expect("a PUBLICATION");
            (p.offset, p.body.to_vec())
        })
        .collect()
}

/// Runs `command` and returns its integer reply.
pub fn int(redis: &mut BlockingRedis, command: RedisCommand) -> i64 {
    redis
        .request(command)
        .expect("reply")
        .as_int()
        .expect("an integer")
}
