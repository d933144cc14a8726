//! SIGHUP: the configuration read anew and what can change live taken from
//! it, without dropping a connection. The reading (files, command line) is
//! the host's, through a [`ConfigLoader`]; here the reactor decides what to
//! take: every field but those that need a restart
//! ([`Config::keep_restart_only`], each difference logged and left alone),
//! all or nothing. New connections use the new limits, tokens and TLS
//! files; open ones keep what they were granted (heartbeat, handshake)
//! except limits read live (output and rate limits, timeouts of what they
//! do next).

use std::time::Instant;

use super::Reactor;
use crate::app::App;
use crate::config::Config;
use crate::conn::ConnLimits;
use crate::tls::load_server_config;

/// Reads the whole configuration anew for a reload (files and all, tokens
/// loaded), or says why it cannot (naming the file, line and key).
pub type ConfigLoader = Box<dyn FnMut() -> Result<Config, String>>;

impl<A: App> Reactor<A> {
    /// Makes SIGHUP reload the whole configuration through `loader`, not
    /// only the TLS files.
    pub fn reload_config_with(&mut self, loader: ConfigLoader) {
        self.config_loader = Some(loader);
    }

    /// A SIGHUP: the whole configuration when there is a loader, else the
    /// TLS files. Any error keeps what runs and is logged.
    pub(super) fn on_reload_signal(&mut self) {
        let Some(loader) = self.config_loader.as_mut() else {
            match self.reload_tls() {
                Ok(true) => log::info!("SIGHUP: TLS certificate, key and client CA reloaded"),
                Ok(false) => log::info!("SIGHUP: nothing to reload"),
                Err(e) => {
                    log::error!("SIGHUP: TLS reload failed, keeping the old certificate: {e}")
                }
            }
            return;
        };
        let result = loader().and_then(|config| self.reload(config));
        if let Err(e) = result {
            log::error!("SIGHUP: keeping the old configuration: {e}");
        }
    }

    /// Takes from `new` everything that can change while running; what needs
    /// a restart is logged and left as it is. On an error (the merged
    /// configuration is invalid, or a TLS file does not load) nothing changes.
    pub fn reload(&mut self, mut new: Config) -> Result<(), String> {
        let running = &self.core.config;
        let restart = new.keep_restart_only(running);
        new.validate()
            .map_err(|e| e.describe(|field| field.replace('_', "-")))?;
        let tls_config = match (&new.tls, &self.tls_config) {
            (Some(files), Some(_)) => Some(load_server_config(files).map_err(|e| e.to_string())?),
            _ => self.tls_config.clone(),
        };
        for field in restart {
            log::warn!(
                "SIGHUP: {} changed: needs a restart, left as it is",
                field.replace('_', "-")
            );
        }
        let mut changed = crate::cli::file::changes(running, &new);
        if new.auth_tokens != running.auth_tokens {
            changed.push(format!(
                "auth tokens replaced ({} → {})",
                running.auth_tokens.len(),
                new.auth_tokens.len()
            ));
        }
        if new.tls.is_some() && self.tls_config.is_some() {
            changed.push("TLS files read anew".into());
        }
        if changed.is_empty() {
            log::info!("SIGHUP: configuration reloaded, nothing changed");
        } else {
            log::info!("SIGHUP: configuration reloaded: {}", changed.join(", "));
        }
        crate::cli::logging::set_level(new.log_level);
        self.app.reconfigure(&new);
        self.core.limits = ConnLimits::from_config(&new);
        if new.max_accept_rate != self.core.config.max_accept_rate {
            self.accept_bucket = super::accept_bucket_for(&new, Instant::now());
        }
        self.core.config = new;
        self.tls_config = tls_config;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Echo;

    fn reactor() -> Reactor<Echo> {
        Reactor::new(Config::default(), Echo).expect("reactor")
    }

    #[test]
    fn live_fields_are_taken_and_restart_only_ones_kept() {
        let mut r = reactor();
        let new = Config {
            tick_ms: 10,
            max_frame: 1024,
            heartbeat_ms: 5_000,
            rate_limit: 50,
            max_connections: 9,
            auth_tokens: vec![b"t".to_vec()],
            ..Config::default()
        };
        r.reload(new).expect("reload");
        let c = &r.core.config;
        assert_eq!((c.tick_ms, c.max_frame), (100, 65535));
        assert_eq!(
            (c.heartbeat_ms, c.rate_limit, c.max_connections),
            (5_000, 50, 9)
        );
        assert_eq!(r.core.limits.heartbeat_ms, 5_000);
        assert!(r.core.limits.is_authorized(b"t") && !r.core.limits.is_authorized(b"u"));
    }

    #[test]
    fn an_invalid_result_changes_nothing() {
        let mut r = reactor();
        // Valid alone with its own miss, invalid with the running one kept.
        let new = Config {
            max_heartbeat_ms: 2_000_000_000,
            heartbeat_ms: 5_000,
            miss: 1,
            ..Config::default()
        };
        let err = r.reload(new).expect_err("miss 3 × max heartbeat overflows");
        assert!(err.starts_with("miss: "), "{err}");
        assert_eq!(r.core.config, Config::default());
        assert_eq!(r.core.limits.heartbeat_ms, 30_000);
    }

    #[test]
    fn the_accept_rate_is_reloaded_into_its_bucket() {
        let mut r = reactor();
        assert!(r.accept_bucket.is_none());
        let paced = Config {
            max_accept_rate: 500,
            ..Config::default()
        };
        r.reload(paced).expect("reload");
        assert_eq!(r.accept_bucket.as_ref().map(|b| b.rate()), Some(500));
        r.reload(Config::default()).expect("reload");
        assert!(r.accept_bucket.is_none(), "0 turns pacing off");
    }
}
