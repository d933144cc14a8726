//! The reactor: one thread, one `mio::Poll`, every socket. The only layer
//! that makes syscalls.
//!
//! Each turn it waits for readiness (or the next wheel deadline), reads every
//! ready connection up to a budget (the rest goes on a still-has-work queue
//! for the next turn), hands bytes to the connection state machines and
//! whole messages to the [`App`], fires expired timers, then *settles* every
//! connection it touched: writes its queued output, shuts its write side
//! when it is done, updates its interest and deadline, and finally reclaims
//! the slots of closed connections, after all events of the turn.

mod accept;
mod actions;
mod core;
pub mod io;
mod links;
mod listeners;
pub mod metrics;
pub mod pacing;
mod reload;
mod sd_notify;
mod signals;
pub mod stats;
mod tls;
mod turn;

use mio::Waker;
use mio::{Events, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{Action, App, ConnId, Ctx, Outbox};
use crate::config::Config;
use crate::time::{Span, Tick, TickClock};
use crate::wheel::{TimerId, Wheel};

use self::accept::AcceptHold;
use self::core::Core;
use self::links::Links;
use self::listeners::Listener;
use self::metrics::{MetricsServer, ScraperId, HTTP_TOKEN_BIT};
use self::pacing::{default_accept_burst, AcceptBucket};
pub use self::reload::ConfigLoader;
use self::signals::ServerSignals;
use self::stats::Stats;
use self::turn::{render_metrics, ReadUntil};
use crate::random::RandomPool;
use crate::systemd::Notifier;
use crate::tls::load_server_config;

const SIGNALS: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const METRICS: Token = Token(usize::MAX - 3);
/// Listener `i` has token `LISTENER_BASE - i`; connection tokens stay far below.
const LISTENER_BASE: usize = usize::MAX - 16;
/// The most listeners one reactor holds.
const MAX_LISTENERS: usize = 1024;

/// Size of the read buffer shared by every connection (connections keep only partial frames).
const READ_BUF_BYTES: usize = 64 * 1024;
/// Reads per connection per turn before it yields to the others (fairness).
const READ_CALLS_PER_TURN: usize = 16;
/// Bytes read from one connection per turn before it yields. Besides fairness,
/// this bounds what one publisher can fan out to each subscriber between two
/// writes, so a burst cannot push readers that keep up past `max_output`.
const READ_BYTES_PER_TURN: usize = 64 * 1024;
/// Accepts per listener per turn before the loop turns to its connections:
/// under a connect storm the established connections are served between
/// small batches of newcomers (each read at once, its HELLO answered), so
/// one turn never accepts thousands; the kernel's backlog holds the rest
/// and the next poll does not wait while accepts are pending.
const ACCEPTS_PER_TURN: usize = 64;
/// Time one turn spends accepting (checked after each accept) before the
/// loop turns to its connections. Plain accepts rarely reach it (64 take
/// about a millisecond); TLS ones do, since each newcomer's ClientHello is
/// usually there at once and its handshake (a key exchange and a
/// signature) is done in the accept: without it one turn of TLS accepts
/// could hold every established connection for several milliseconds.
const ACCEPT_TIME_PER_TURN: Duration = Duration::from_millis(1);
/// Time one turn spends in TLS handshakes read from the network (the
/// ClientHello's key exchange and signature are the expensive part); past
/// it, handshaking connections wait on the backlog for the next turn.
const TLS_HANDSHAKE_TIME_PER_TURN: Duration = Duration::from_millis(2);
/// Expired timers handled per turn; the rest wait one turn, so a mass expiry cannot stall I/O.
const EXPIRIES_PER_TURN: usize = 4096;
/// How long accepting pauses after EMFILE/ENFILE before it is retried.
const ACCEPT_PAUSE_MS: u64 = 100;
/// Connections past `max_connections` that may linger to receive SERVER_FULL;
/// beyond this a newcomer is dropped without a word (a connect flood must not
/// exhaust descriptors on refusals).
const MIN_REFUSAL_SLACK: usize = 64;

/// Wheel slots: 4096 × 100 ms ticks is about 7 minutes per revolution.
const WHEEL_SLOTS: usize = 4096;

/// What a wheel entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// A connection's handshake, idle or linger deadline.
    Conn(ConnId),
    /// Try accepting again after running out of descriptors.
    ResumeAccept,
    /// A timer the application set with an [`Action::SetTimer`](crate::app::Action); its key.
    App(u64),
    /// A metrics scraper's deadline to finish its exchange.
    Scraper(ScraperId),
}

/// Starts a graceful stop of a running reactor from anywhere: another thread,
/// or a signal handler (it only stores a flag and writes to an eventfd).
#[derive(Clone)]
pub struct StopHandle {
    waker: Arc<Waker>,
    requested: Arc<AtomicBool>,
}

impl StopHandle {
    /// Asks the reactor to stop gracefully; it wakes from its poll to do so.
    pub fn stop(&self) {
        self.requested.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::warn!("waking the reactor: {e}");
        }
    }
}

/// How [`Reactor::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Every connection closed (or linger ran out) after a stop signal.
    Graceful,
    /// A second stop signal came before the graceful stop finished.
    Forced,
}

/// The event loop with its connections, timers and application.
pub struct Reactor<A: App> {
    poll: Poll,
    events: Events,
    listeners: Vec<Listener>,
    /// What new TLS connections handshake with (replaced by a reload).
    tls_config: Option<Arc<rustls::ServerConfig>>,
    signals: Option<ServerSignals>,
    metrics: Option<MetricsServer>,
    waker: Arc<Waker>,
    stop_requested: Arc<AtomicBool>,
    core: Core,
    app: A,
    /// The app's actions, reused from call to call (see `actions.rs`).
    outbox: Outbox,
    /// The wheel entry of each app timer, by the app's key.
    app_timers: HashMap<u64, TimerId>,
    wheel: Wheel<TimerKind>,
    clock: TickClock,
    /// The clock's one reading this turn (`core.now` is its tick).
    clock_read: Instant,
    read_buf: Vec<u8>,
    /// Connections cut off by their read budget, served first next turn.
    backlog: VecDeque<ConnId>,
    /// The app's outbound links (to an engine such as Redis).
    links: Links,
    /// Link actions of the outbox being carried out, applied after it.
    link_actions: Vec<Action>,
    expired: Vec<TimerKind>,
    random: RandomPool,
    /// Reads the configuration anew on SIGHUP (see `reload.rs`); without
    /// one, SIGHUP reloads the TLS files only.
    config_loader: Option<ConfigLoader>,
    stop_deadline: Option<Tick>,
    forced: bool,
    accept_paused: bool,
    accept_pending: bool,
    /// `max_accept_rate`'s bucket (None: no limit).
    accept_bucket: Option<AcceptBucket>,
    /// The pacing limit holding accepts back since it last stopped them.
    accept_held: Option<AcceptHold>,
    timers_pending: bool,
    last_pause_log: Option<Tick>,
    /// Time this turn spent in TLS handshakes (`TLS_HANDSHAKE_TIME_PER_TURN`).
    tls_handshake_spent: Duration,
    /// When a slow turn was last logged (the warning is rate-limited).
    last_slow_turn_log: Option<Tick>,
    next_generation: u32,
    stats: Stats,
    /// Readiness, stop, reload and watchdog messages to systemd (`sd_notify.rs`).
    notifier: Option<Notifier>,
}

impl<A: App> Reactor<A> {
    /// Binds `config.listen` and every `config.tls_listen`, and prepares the
    /// loop: [`Reactor::new`] plus [`Reactor::listen`] and
    /// [`Reactor::listen_tls`]. An error names the address it is about.
    pub fn bind(config: Config, app: A) -> std::io::Result<Reactor<A>> {
        let plain = config.listen;
        let tls = config.tls_listen.clone();
        let mut reactor = Reactor::new(config, app)?;
        let named = |addr: SocketAddr, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{addr}: {e}"))
        };
        if let Some(addr) = plain {
            reactor.listen(addr).map_err(|e| named(addr, e))?;
        }
        for addr in tls {
            reactor.listen_tls(addr).map_err(|e| named(addr, e))?;
        }
        Ok(reactor)
    }

    /// A reactor with no listener yet; nothing runs until [`Reactor::run`],
    /// [`Reactor::turn`] or [`Reactor::step`]. The config is validated, and
    /// its TLS files (if any) loaded, here: an error names the field or file.
    pub fn new(config: Config, app: A) -> std::io::Result<Reactor<A>> {
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        config.validate().map_err(|e| invalid(&e))?;
        let tls_config = match &config.tls {
            Some(files) => Some(load_server_config(files).map_err(|e| invalid(&e))?),
            None => None,
        };
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let started = Instant::now();
        let clock = TickClock::new(started, Duration::from_millis(config.tick_ms.into()));
        let outbox = Outbox::new(config.max_frame.into());
        let accept_bucket = accept_bucket_for(&config, started);
        Ok(Reactor {
            poll,
            events: Events::with_capacity(1024),
            listeners: Vec::new(),
            tls_config,
            signals: None,
            metrics: None,
            waker,
            stop_requested: Arc::new(AtomicBool::new(false)),
            core: Core::new(config),
            app,
            outbox,
            app_timers: HashMap::new(),
            wheel: Wheel::new(WHEEL_SLOTS, 0),
            clock,
            clock_read: started,
            read_buf: vec![0; READ_BUF_BYTES],
            backlog: VecDeque::new(),
            links: Links::default(),
            link_actions: Vec::new(),
            expired: Vec::new(),
            random: RandomPool::open()?,
            config_loader: None,
            stop_deadline: None,
            forced: false,
            accept_paused: false,
            accept_pending: false,
            accept_bucket,
            accept_held: None,
            timers_pending: false,
            last_pause_log: None,
            last_slow_turn_log: None,
            tls_handshake_spent: Duration::ZERO,
            next_generation: 0,
            stats: Stats::default(),
            notifier: None,
        })
    }

    /// A handle that starts a graceful stop from another thread or a signal
    /// handler: it sets a flag and wakes the poll (an eventfd write).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            waker: Arc::clone(&self.waker),
            requested: Arc::clone(&self.stop_requested),
        }
    }

    /// The epoll descriptor: readable whenever the reactor has events to
    /// handle, so a foreign event loop can poll it and call [`Reactor::step`].
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.poll.as_raw_fd()
    }

    /// How long the reactor may sleep before its next deadline (None: no
    /// deadline; zero: it has work now). A host loop waits at most this long.
    pub fn timeout(&self) -> Option<Duration> {
        self.poll_timeout(None)
    }

    /// One non-blocking turn: handles what is ready and what is due, then returns.
    pub fn step(&mut self) -> std::io::Result<()> {
        self.turn(Some(Duration::ZERO))
    }

    /// Installs signal handling in this loop: the first SIGTERM/SIGINT starts
    /// a graceful stop, a second one makes [`Reactor::run`] return at once;
    /// SIGHUP reloads the configuration (see [`Reactor::reload_config_with`];
    /// without it, the TLS certificate, key and client CA).
    pub fn handle_signals(&mut self) -> std::io::Result<()> {
        self.signals = Some(ServerSignals::register(self.poll.registry(), SIGNALS)?);
        Ok(())
    }

    /// Serves `GET /metrics` and `GET /healthz` on `addr` from this loop; returns the bound address.
    pub fn serve_metrics(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let tick_ms = self.core.config.tick_ms;
        let server = MetricsServer::bind(addr, self.poll.registry(), METRICS, tick_ms)?;
        let bound = server.local_addr()?;
        self.metrics = Some(server);
        Ok(bound)
    }

    /// The Prometheus text exposition of the reactor's and the app's metrics.
    pub fn render_metrics(&self) -> String {
        render_metrics(&self.stats, &self.core, &self.wheel, &self.app)
    }

    /// Runs `f` with the app and a [`Ctx`] outside any callback (to push to
    /// connections from a timer of the host, say), then carries out and
    /// writes what it queued.
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut A, &mut Ctx<'_>) -> R) -> R {
        self.read_clock();
        let result = self.call_app(f);
        self.settle();
        result
    }

    /// Reads the clock: once per turn, and when the host calls in between turns.
    fn read_clock(&mut self) {
        self.clock_read = Instant::now();
        self.core.now = self.clock.tick_at(self.clock_read);
    }

    /// Counts how long this turn worked; a slow one is logged, at most once
    /// a second. One more clock read per turn, for metrics only: the turn's
    /// tick stays the one `read_clock` took.
    fn time_turn(&mut self) {
        let took = self.clock_read.elapsed();
        self.stats.turn_time.observe(took);
        if took > stats::SLOW_TURN {
            self.stats.slow_turns += 1;
            let now = self.core.now;
            let second = Span::from_ms(1000, self.core.config.tick_ms);
            if self
                .last_slow_turn_log
                .is_none_or(|t| now >= second.deadline_from(t))
            {
                self.last_slow_turn_log = Some(now);
                log::warn!(
                    "a loop turn took {} ms ({} connections, {} slow turns so far)",
                    took.as_millis(),
                    self.core.conns.len(),
                    self.stats.slow_turns
                );
            }
        }
    }

    /// Counts `n` connections whose input was handled by now, each with the
    /// time since `poll` returned (one clock read for the batch).
    fn observe_ready_delay(&mut self, n: u32) {
        let delay = self.clock_read.elapsed();
        self.stats.ready_delay.observe_many(delay, n.into());
    }

    /// The application, mutably (between turns).
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections currently held (open or closing).
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// Starts a graceful stop: no more accepts, GOAWAY SHUTTING_DOWN to every
    /// connection, each closed politely; [`Reactor::run`] returns when all are gone.
    pub fn begin_stop(&mut self) {
        self.read_clock();
        self.start_stop();
    }

    /// [`Reactor::begin_stop`] at the tick already read.
    fn start_stop(&mut self) {
        if self.stop_deadline.is_some() {
            return;
        }
        self.notify_stopping();
        let now = self.core.now;
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        // One tick past every connection's own linger deadline, so each gets
        // its chance to close politely before the stop gives up on it.
        let grace = Span::from_ticks(self.core.limits.linger.ticks() + 1);
        self.stop_deadline = Some(grace.deadline_from(now));
        log::info!("stopping: closing {} connections", self.core.conns.len());
        let keys: Vec<ConnId> = self.core.conns.iter().map(|(_, e)| e.id).collect();
        for id in keys {
            if let Some((e, limits, now)) = self.core.parts(id) {
                e.conn.shutdown(now, limits);
            }
            self.core.mark_dirty(id);
        }
        self.settle();
    }

    /// Whether a stop has finished (or was forced).
    pub fn is_stopped(&self) -> bool {
        if self.forced {
            return true;
        }
        match self.stop_deadline {
            Some(deadline) => self.core.conns.is_empty() || self.core.now >= deadline,
            None => false,
        }
    }

    /// Runs turns until a stop finishes.
    pub fn run(&mut self) -> std::io::Result<StopKind> {
        while !self.is_stopped() {
            self.turn(None)?;
        }
        log::info!("stopped: {}", self.stats.summary());
        Ok(if self.forced {
            StopKind::Forced
        } else {
            StopKind::Graceful
        })
    }

    /// One turn of the loop, waiting at most `max_wait` (None: until the next
    /// event or deadline). Zero makes it non-blocking.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> std::io::Result<()> {
        let timeout = self.poll_timeout(max_wait);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.stats.turns += 1;
        self.read_clock();
        self.tls_handshake_spent = Duration::ZERO;
        let carried = self.backlog.len();
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        // Connections read since the last ready-delay clock read.
        let mut unmeasured = 0;
        for event in events.iter() {
            self.stats.events += 1;
            match event.token() {
                SIGNALS => self.on_signal(),
                WAKER => {
                    if self.stop_requested.swap(false, Ordering::SeqCst) {
                        self.start_stop();
                    }
                }
                METRICS => {
                    if let Some(m) = self.metrics.as_mut() {
                        m.accept(self.poll.registry(), &mut self.wheel, self.core.now);
                    }
                }
                Token(t) if t > LISTENER_BASE - MAX_LISTENERS && t <= LISTENER_BASE => {
                    self.accept_pending = true;
                }
                token if links::link_index(token).is_some() => {
                    if let Some(index) = links::link_index(token) {
                        self.link_ready(index, event.is_writable());
                    }
                }
                Token(t) if t & HTTP_TOKEN_BIT != 0 => {
                    if let Some(m) = self.metrics.as_mut() {
                        let (stats, core, wheel, app) =
                            (&self.stats, &self.core, &self.wheel, &self.app);
                        let mut render = || render_metrics(stats, core, wheel, app);
                        if let Some(deadline) =
                            m.handle(Token(t), self.poll.registry(), &mut render)
                        {
                            self.wheel.cancel(deadline);
                        }
                    }
                }
                token => {
                    let id = core::token_to_id(token);
                    if event.is_read_closed() || event.is_error() {
                        self.read_ready(id, ReadUntil::WouldBlock);
                    } else if event.is_readable() {
                        self.read_ready(id, ReadUntil::ShortRead);
                    } else {
                        self.core.mark_dirty(id);
                        continue;
                    }
                    unmeasured += 1;
                    if unmeasured == stats::READY_DELAY_BATCH {
                        self.observe_ready_delay(unmeasured);
                        unmeasured = 0;
                    }
                }
            }
        }
        if unmeasured > 0 {
            self.observe_ready_delay(unmeasured);
        }
        events.clear();
        self.events = events;
        self.serve_backlog(carried);
        self.serve_link_backlog();
        self.fire_timers();
        self.settle();
        // Accept last, after this turn's closed slots were reclaimed, so a
        // newcomer is not refused for room that was already free.
        if self.accept_pending && !self.accept_paused {
            self.accept_all();
            self.settle();
        }
        self.time_turn();
        self.pet_watchdog();
        Ok(())
    }

    fn poll_timeout(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let accept_wait = self.accept_wait();
        let busy = !self.backlog.is_empty()
            || self.links.has_backlog()
            || self.timers_pending
            || accept_wait == Some(Duration::ZERO)
            || self.forced;
        let until_timer = if busy {
            Some(Duration::ZERO)
        } else {
            // From this turn's clock reading: a timer may fire late by the
            // turn's own work (micro- to milliseconds, against 100 ms ticks),
            // never early, and the loop reads the clock once per turn.
            let wheel = self.wheel.next_expiry().map(|tick| {
                self.clock
                    .instant_of(tick)
                    .saturating_duration_since(self.clock_read)
            });
            match (wheel, accept_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let until_watchdog = self
            .notifier
            .as_ref()
            .and_then(|n| n.watchdog_wait(self.clock_read));
        [until_timer, max_wait, until_watchdog]
            .into_iter()
            .flatten()
            .min()
    }

    /// How long until accepting can go on: zero when it can now; `None`
    /// when nothing waits to be accepted, or only the end of a handshake (an
    /// event or a handshake deadline on the wheel) can let it go on. Under
    /// `max_accept_rate` the loop sleeps until a batch of tokens (a
    /// hundredth of a second's worth) is there, not one token at a time.
    fn accept_wait(&self) -> Option<Duration> {
        if !self.accept_pending || self.accept_paused {
            return None;
        }
        let max = self.core.config.max_handshakes;
        if max > 0 && self.core.handshaking >= max {
            return None;
        }
        match &self.accept_bucket {
            Some(bucket) => {
                let batch = (bucket.rate() / 100).max(1);
                Some(bucket.wait_for(batch, Instant::now()))
            }
            None => Some(Duration::ZERO),
        }
    }

    fn on_signal(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let pending = signals.take_pending();
        if pending.reload {
            self.notify_reloading();
            self.on_reload_signal();
            self.notify_reloaded();
        }
        let count = pending.stops;
        if count == 0 {
            return;
        }
        if self.stop_deadline.is_some() || count > 1 {
            log::warn!(
                "second stop signal: exiting without waiting for {} connections",
                self.core.conns.len()
            );
            self.forced = true;
        }
        self.start_stop();
    }
}

/// The token bucket `--max-accept-rate` asks for (none when it is 0), full
/// at `now`.
fn accept_bucket_for(config: &Config, now: Instant) -> Option<AcceptBucket> {
    let rate = config.max_accept_rate;
    (rate > 0).then(|| AcceptBucket::new(rate, default_accept_burst(rate), now))
}
