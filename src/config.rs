//! Every knob and limit of the server, its default, and its validation.
//!
//! Each limit is a defence against a peer that would otherwise make the server
//! hold memory or time without bound; the reason is beside each field.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::engine::redis::EngineUrl;
use crate::protocol::frame::MAX_FRAME_LIMIT;
use crate::tls::ServerTlsFiles;

/// Which application interprets DATA messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Every message comes back unchanged.
    Echo,
    /// Channels, subscribers and sessions (docs/protocol.md §5).
    Pubsub,
}

/// The server's configuration: every value the reactor and connections obey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of the plain (unencrypted) listener; port 0 picks a free
    /// port; `None`: no plain listener (`--listen none`).
    pub listen: Option<SocketAddr>,
    /// Addresses of TLS listeners (each needs `tls`).
    pub tls_listen: Vec<SocketAddr>,
    /// The TLS certificate chain, key, client CA (mutual TLS) and versions.
    pub tls: Option<ServerTlsFiles>,
    /// The application behind the reactor.
    pub app: AppKind,
    /// Heartbeat granted when the client asks for 0.
    pub heartbeat_ms: u32,
    /// Shortest heartbeat granted: bounds the ping rate a client can ask for.
    pub min_heartbeat_ms: u32,
    /// Longest heartbeat granted: bounds how long a dead peer can hold a slot.
    pub max_heartbeat_ms: u32,
    /// Heartbeat intervals without a frame before eviction (idle = heartbeat × miss).
    pub miss: u32,
    /// Time allowed for a valid HELLO: bounds slots held by silent or slow openers.
    pub handshake_timeout_ms: u32,
    /// Time allowed to finish a frame once its first byte arrived (slowloris defence).
    pub frame_timeout_ms: u32,
    /// How long a closing connection may take to flush and see the peer's EOF.
    pub linger_ms: u32,
    /// Most open connections; newcomers past it get SERVER_FULL.
    pub max_connections: usize,
    /// New connections accepted per second over all listeners (0 = no
    /// limit): past it accepting pauses and the kernel's backlog holds the
    /// rest, so a reconnect storm is spread instead of taken in one gulp.
    pub max_accept_rate: u32,
    /// Connections in their handshake at once (accepted, no WELCOME yet, TLS
    /// included; 0 = no limit): at it accepting pauses until one finishes.
    pub max_handshakes: usize,
    /// Connections held per peer IP address (0 = no limit); past it a
    /// newcomer from that address is refused with SERVER_FULL.
    pub max_connections_per_ip: u32,
    /// Largest frame payload accepted: the most one partial frame can buffer.
    pub max_frame: u16,
    /// Largest reassembled message: the most one reassembly can buffer.
    pub max_message: u32,
    /// Most unsent output per connection before SLOW_CONSUMER.
    pub max_output: usize,
    /// How long a detached session is kept for resume.
    pub session_ttl_ms: u32,
    /// File of accepted auth tokens, one per line.
    pub auth_token_file: Option<PathBuf>,
    /// Timer resolution: the wheel's tick.
    pub tick_ms: u32,
    /// Soft output limit (0 = off): above it for `soft_output_ms` → SLOW_CONSUMER.
    pub soft_output: usize,
    /// Grace period above the soft output limit.
    pub soft_output_ms: u32,
    /// Frames per second a connection may send on average (0 = no limit).
    pub rate_limit: u32,
    /// Frames a connection may send in a burst above the rate.
    pub rate_burst: u32,
    /// Bytes of deliveries kept for a detached session; the oldest go first.
    pub session_queue: usize,
    /// Publications kept per channel stream for v2 recovery; 0 turns history
    /// off (docs/protocol.md §7.3).
    pub history_size: usize,
    /// How long a publication is kept, and how long an idle stream lives.
    pub history_ttl_ms: u32,
    /// Bytes of history server-wide (held publications plus per-stream
    /// overheads); beyond it the oldest publications go first. Also the most a
    /// replay may raise one connection's output limits.
    pub history_memory: usize,
    /// Where publications and history live: `None` in this process (the
    /// default), else the Redis that joins nodes (`--engine`, issue 12).
    pub engine: Option<EngineUrl>,
    /// Address of the HTTP metrics endpoint (`GET /metrics`, `GET /healthz`).
    pub metrics: Option<SocketAddr>,
    /// Accepted auth tokens (loaded from `auth_token_file`); empty = no auth.
    pub auth_tokens: Vec<Vec<u8>>,
    /// The most verbose log level written (`--log-level`); `None`: `RUST_LOG`
    /// decides, else info. Reloadable, unlike `RUST_LOG`.
    pub log_level: Option<log::LevelFilter>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 7600))),
            tls_listen: Vec::new(),
            tls: None,
            app: AppKind::Pubsub,
            heartbeat_ms: 30_000,
            min_heartbeat_ms: 1_000,
            max_heartbeat_ms: 600_000,
            miss: 3,
            handshake_timeout_ms: 5_000,
            frame_timeout_ms: 10_000,
            linger_ms: 2_000,
            max_connections: 100_000,
            max_accept_rate: 0,
            max_handshakes: 0,
            max_connections_per_ip: 0,
            max_frame: MAX_FRAME_LIMIT as u16,
            max_message: 1_048_576,
            max_output: 4_194_304,
            session_ttl_ms: 60_000,
            auth_token_file: None,
            tick_ms: 100,
            soft_output: 0,
            soft_output_ms: 10_000,
            rate_limit: 0,
            rate_burst: 100,
            session_queue: 1_048_576,
            history_size: 256,
            history_ttl_ms: 300_000,
            history_memory: 64 << 20,
            engine: None,
            metrics: None,
            auth_tokens: Vec::new(),
            log_level: None,
        }
    }
}

/// A configuration value that cannot work, naming the [`Config`] field to fix.
///
/// It names fields, not command-line flags, because a `Config` also comes from
/// the C ABI; the server's command line renders the same error with its flags
/// through [`ConfigError::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field to fix, e.g. `miss`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a field; the variants that compare it with other fields
/// name them, so that [`ConfigError::describe`] can render every name alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A rule on the value alone, e.g. `must be at least 1`.
    Invalid(&'static str),
    /// The value is above another field's value that bounds it.
    Above {
        /// The value given.
        value: u64,
        /// The field whose value bounds it.
        limit_field: &'static str,
        /// That field's value.
        limit: u64,
    },
    /// The value is outside the range two other fields set.
    Outside {
        /// The value given.
        value: u64,
        /// The field setting the low end.
        low_field: &'static str,
        /// Its value.
        low: u64,
        /// The field setting the high end.
        high_field: &'static str,
        /// Its value.
        high: u64,
    },
}

impl ConfigError {
    /// The message, with every field (this one and any it is compared with)
    /// written as `name` spells it: `Display` uses the field names themselves,
    /// the command line its flags.
    pub fn describe(&self, name: impl Fn(&'static str) -> String) -> String {
        let problem = match &self.problem {
            Problem::Invalid(rule) => (*rule).to_string(),
            Problem::Above {
                value,
                limit_field,
                limit,
            } => format!("{value} is above {} {limit}", name(limit_field)),
            Problem::Outside {
                value,
                low_field,
                low,
                high_field,
                high,
            } => format!(
                "{value} is outside [{} {low}, {} {high}]",
                name(low_field),
                name(high_field)
            ),
        };
        format!("{}: {problem}", name(self.field))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(str::to_string))
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: &'static str, rule: &'static str) -> ConfigError {
    ConfigError {
        field,
        problem: Problem::Invalid(rule),
    }
}

impl Config {
    /// Checks that the values work together; the error names the field to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.tls_listen.is_empty() && self.tls.is_none() {
            return Err(invalid("tls_listen", "needs a TLS certificate and key"));
        }
        if self.tick_ms == 0 {
            return Err(invalid("tick_ms", "must be at least 1"));
        }
        if self.min_heartbeat_ms == 0 {
            return Err(invalid("min_heartbeat_ms", "must be at least 1"));
        }
        if self.min_heartbeat_ms > self.max_heartbeat_ms {
            return Err(ConfigError {
                field: "min_heartbeat_ms",
                problem: Problem::Above {
                    value: self.min_heartbeat_ms.into(),
                    limit_field: "max_heartbeat_ms",
                    limit: self.max_heartbeat_ms.into(),
                },
            });
        }
        if self.heartbeat_ms < self.min_heartbeat_ms || self.heartbeat_ms > self.max_heartbeat_ms {
            return Err(ConfigError {
                field: "heartbeat_ms",
                problem: Problem::Outside {
                    value: self.heartbeat_ms.into(),
                    low_field: "min_heartbeat_ms",
                    low: self.min_heartbeat_ms.into(),
                    high_field: "max_heartbeat_ms",
                    high: self.max_heartbeat_ms.into(),
                },
            });
        }
        if self.miss == 0 {
            return Err(invalid("miss", "must be at least 1"));
        }
        if u64::from(self.max_heartbeat_ms) * u64::from(self.miss) > u64::from(u32::MAX) {
            return Err(invalid(
                "miss",
                "max heartbeat × miss does not fit the 32-bit idle_timeout_ms",
            ));
        }
        if self.frame_timeout_ms == 0 {
            return Err(invalid("frame_timeout_ms", "must be at least 1"));
        }
        if self.handshake_timeout_ms == 0 {
            return Err(invalid("handshake_timeout_ms", "must be at least 1"));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        if self.max_frame < 16 {
            return Err(invalid(
                "max_frame",
                "must be at least 16 (a WELCOME and a GOAWAY must fit)",
            ));
        }
        if self.max_message == 0 {
            return Err(invalid("max_message", "must be at least 1"));
        }
        if self.max_output < 1024 {
            return Err(invalid("max_output", "must be at least 1024 bytes"));
        }
        if self.soft_output > self.max_output {
            return Err(ConfigError {
                field: "soft_output",
                problem: Problem::Above {
                    value: self.soft_output as u64,
                    limit_field: "max_output",
                    limit: self.max_output as u64,
                },
            });
        }
        if self.rate_limit > 0 && !(1..=1_000_000).contains(&self.rate_burst) {
            return Err(invalid("rate_burst", "must be between 1 and 1000000"));
        }
        if self.history_ttl_ms == 0 {
            return Err(invalid("history_ttl_ms", "must be at least 1"));
        }
        if self.history_memory > u32::MAX as usize {
            return Err(invalid(
                "history_memory",
                "must be at most 4294967295 bytes (it bounds a replay's raise of the output limits)",
            ));
        }
        if self.engine.is_some() && self.app != AppKind::Pubsub {
            return Err(invalid("engine", "is for the pubsub app only"));
        }
        if self.max_accept_rate > 10_000_000 {
            return Err(invalid(
                "max_accept_rate",
                "must be at most 10000000 connections a second (0 = no limit)",
            ));
        }
        if self.rate_limit > 1_000_000 {
            return Err(invalid(
                "rate_limit",
                "must be at most 1000000 frames a second",
            ));
        }
        Ok(())
    }
}

/// The log level a `--log-level` word names: `error`, `warn`, `info`,
/// `debug` or `trace` (`None` for anything else).
pub fn parse_log_level(word: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter;
    match word {
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

impl Config {
    /// For a reload: puts back in `self` (the configuration read anew) every
    /// field that a running server cannot change without a restart, taken
    /// from `running`, and returns the names of those that differed. Listeners,
    /// the app and its engine, the metrics endpoint, the tick, history, and
    /// what WELCOME told open connections (frame and message sizes, `miss`
    /// in their idle timeout) or what the app was built with (session TTL)
    /// stay; every other field takes effect.
    pub fn keep_restart_only(&mut self, running: &Config) -> Vec<&'static str> {
        let mut kept = Vec::new();
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if self.$field != running.$field {
                    kept.push(stringify!($field));
                    self.$field = running.$field.clone();
                }
            )*};
        }
        keep!(
            listen,
            tls_listen,
            app,
            engine,
            metrics,
            tick_ms,
            history_size,
            history_ttl_ms,
            history_memory,
            max_frame,
            max_message,
            miss,
            session_ttl_ms
        );
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = Config::default();
        c.validate().expect("defaults valid");
    }

    #[test]
    fn errors_name_the_field() {
        let c = Config {
            min_heartbeat_ms: 5_000,
            max_heartbeat_ms: 1_000,
            ..Config::default()
        };
        assert_eq!(c.validate().map_err(|e| e.field), Err("min_heartbeat_ms"));
        let table = [
            (c, "min_heartbeat_ms: 5000 is above max_heartbeat_ms 1000"),
            (
                Config {
                    miss: 0,
                    ..Config::default()
                },
                "miss: must be at least 1",
            ),
            (
                Config {
                    heartbeat_ms: 10,
                    ..Config::default()
                },
                "heartbeat_ms: 10 is outside [min_heartbeat_ms 1000, max_heartbeat_ms 600000]",
            ),
            (
                Config {
                    soft_output: 5_000_000,
                    ..Config::default()
                },
                "soft_output: 5000000 is above max_output 4194304",
            ),
        ];
        for (c, message) in table {
            assert_eq!(c.validate().map_err(|e| e.to_string()), Err(message.into()));
        }
    }

    #[test]
    fn a_reload_keeps_what_needs_a_restart_and_takes_the_rest() {
        let running = Config::default();
        let mut read = Config {
            listen: None,
            tick_ms: 10,
            heartbeat_ms: 5_000,
            rate_limit: 7,
            ..Config::default()
        };
        assert_eq!(read.keep_restart_only(&running), ["listen", "tick_ms"]);
        assert_eq!(
            read,
            Config {
                heartbeat_ms: 5_000,
                rate_limit: 7,
                ..Config::default()
            }
        );
    }

    #[test]
    fn describe_renders_every_field_with_the_given_name() {
        let e = Config {
            heartbeat_ms: 10,
            ..Config::default()
        }
        .validate()
        .expect_err("outside");
        assert_eq!(
            e.describe(|f| f.to_uppercase()),
            "HEARTBEAT_MS: 10 is outside [MIN_HEARTBEAT_MS 1000, MAX_HEARTBEAT_MS 600000]"
        );
    }
}
