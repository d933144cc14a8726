//! The server's log: env_logger's format, with a level that can change while
//! the server runs (`--log-level`, reloaded on SIGHUP). env_logger's own
//! filter is fixed when it is built, so the writer is built to pass
//! everything and the level is steered with `log::set_max_level`; when no
//! level is set, `RUST_LOG` (with its per-module rules) decides, else info.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};

/// The logger installed by [`init`].
struct Steered {
    /// Writes every record it is given, in env_logger's format.
    out: env_logger::Logger,
    /// `RUST_LOG`'s filter, when it is set.
    env: Option<env_logger::Logger>,
    /// No level is set: `env` decides (when there is one).
    use_env: AtomicBool,
}

static LOGGER: OnceLock<&'static Steered> = OnceLock::new();

impl Log for Steered {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.level() > log::max_level() {
            return false;
        }
        match &self.env {
            Some(env) if self.use_env.load(Ordering::Relaxed) => env.enabled(metadata),
            _ => true,
        }
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.out.log(record);
        }
    }

    fn flush(&self) {
        self.out.flush();
    }
}

/// Installs the server's logger at `level` (see [`set_level`]). Once per
/// process; a second call (or another logger already installed) changes
/// nothing but the level.
pub fn init(level: Option<LevelFilter>) {
    let steered: &'static Steered = LOGGER.get_or_init(|| {
        let env = std::env::var_os("RUST_LOG")
            .is_some()
            .then(|| env_logger::Builder::from_env(env_logger::Env::default()).build());
        let out = env_logger::Builder::new()
            .filter_level(LevelFilter::Trace)
            .build();
        let steered: &'static Steered = Box::leak(Box::new(Steered {
            out,
            env,
            use_env: AtomicBool::new(true),
        }));
        let _ = log::set_logger(steered);
        steered
    });
    let _ = steered;
    set_level(level);
}

/// Sets the most verbose level written: `level` when it is set, else what
/// `RUST_LOG` says (its per-module rules included), else info. Without
/// [`init`] (the library in another program) only a set level is applied.
pub fn set_level(level: Option<LevelFilter>) {
    let Some(steered) = LOGGER.get() else {
        if let Some(level) = level {
            log::set_max_level(level);
        }
        return;
    };
    match (level, &steered.env) {
        (Some(level), _) => {
            steered.use_env.store(false, Ordering::Relaxed);
            log::set_max_level(level);
        }
        (None, Some(env)) => {
            steered.use_env.store(true, Ordering::Relaxed);
            log::set_max_level(env.filter());
        }
        (None, None) => {
            steered.use_env.store(false, Ordering::Relaxed);
            log::set_max_level(LevelFilter::Info);
        }
    }
}
