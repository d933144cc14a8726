//! The `--config` file: TOML whose keys are the setting flags without `--`
//! (`heartbeat-ms = 30000`, `tls-listen = ["127.0.0.1:7601"]`,
//! `tls13-only = true`). Each key and value goes through the same
//! [`apply`] as the command line, so the file knows every flag; errors say
//! `FILE:LINE: key: problem`. Also the other way: the configuration in
//! effect written back as such a file (`--check-config`, the example
//! `tether.toml`).

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::apply::{apply, FlagValue, Layer};
use super::{CliError, USAGE};
use crate::config::Config;
use crate::tls::TlsVersions;

/// Flags that may be given more than once: an array in the file.
const REPEATABLE: &[&str] = &["--tls-listen"];

/// Command-line flags that are not settings, so not keys of the file.
const NOT_KEYS: &[&str] = &["--config", "--check-config"];

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Reads the TOML file at `path` and applies each key to `layer`, in the
/// order of the file, noting the line of each. Errors name the file, the
/// line and the key.
pub fn apply_file(path: &Path, layer: &mut Layer) -> Result<(), CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("{shown}: cannot read the config file: {e}")))?;
    let table = DeTable::parse(&text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(&text, span.start));
        let message = e.message().trim_end().replace('\n', "; ");
        CliError(format!("{shown}:{line}: {message}"))
    })?;
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    layer.begin_source();
    for (key, value) in entries {
        let line = line_of(&text, key.span().start);
        let key = key.get_ref().as_ref();
        let flag = format!("--{key}");
        let name = format!("{shown}:{line}: {key}");
        let known = if NOT_KEYS.contains(&flag.as_str()) {
            false
        } else if REPEATABLE.contains(&flag.as_str()) {
            let DeValue::Array(items) = value.get_ref() else {
                return Err(CliError(format!(
                    "{name}: expected an array of strings, got {}",
                    kind(value.get_ref())
                )));
            };
            for item in items.iter() {
                let mut item = TomlValue {
                    name: name.clone(),
                    value: item.get_ref(),
                };
                apply(&flag, &mut item, layer)?;
            }
            true
        } else {
            let mut value = TomlValue {
                name: name.clone(),
                value: value.get_ref(),
            };
            apply(&flag, &mut value, layer)?
        };
        if !known {
            return Err(CliError(format!(
                "{name}: unknown key (the keys are the flags of --help without --)"
            )));
        }
        layer.from_file.insert(flag, line);
    }
    Ok(())
}

/// A TOML value for [`apply`], named `FILE:LINE: key` in errors.
struct TomlValue<'a, 'i> {
    name: String,
    value: &'a DeValue<'i>,
}

/// What kind of TOML value `v` is, for "expected ..., got ..." messages.
fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl TomlValue<'_, '_> {
    fn wrong_type(&self, expected: &str) -> CliError {
        self.error(&format!("expected {expected}, got {}", kind(self.value)))
    }
}

impl FlagValue for TomlValue<'_, '_> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn value(&mut self) -> Result<String, CliError> {
        match self.value {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    fn value_os(&mut self) -> Result<std::ffi::OsString, CliError> {
        FlagValue::value(self).map(Into::into)
    }

    fn number_text(&mut self) -> Result<String, CliError> {
        match self.value {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .map_err(|_| self.error(&format!("integer {} out of range", i.as_str()))),
            DeValue::Float(f) => Ok(f.as_str().to_string()),
            _ => Err(self.wrong_type("a number")),
        }
    }

    fn switch(&mut self) -> Result<bool, CliError> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type("true or false")),
        }
    }
}

/// Every setting flag of the usage text with its description on one line,
/// in the usage text's order: the keys of the config file.
pub fn setting_flags() -> Vec<(&'static str, String)> {
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let mut in_flag = false;
    for line in USAGE.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 2 && trimmed.starts_with("--") {
            let flag = trimmed.split_whitespace().next().unwrap_or("");
            let description = trimmed.split_once("  ").map_or("", |(_, d)| d.trim());
            in_flag = !NOT_KEYS.contains(&flag);
            if in_flag {
                flags.push((flag, description.to_string()));
            }
        } else if in_flag && indent > 2 && !trimmed.is_empty() && !trimmed.starts_with('-') {
            if let Some((_, description)) = flags.last_mut() {
                // A flag too long for the column has its text on the next lines.
                if !description.is_empty() {
                    description.push(' ');
                }
                description.push_str(trimmed);
            }
        } else {
            in_flag = false;
        }
    }
    flags
}

/// A setting's value as written in the file.
#[derive(Debug, PartialEq, Eq)]
pub enum Rendered {
    /// The value as TOML.
    Set(String),
    /// Not set (an optional setting without a default).
    NotSet,
    /// [`value_of`] does not know this flag (a new flag to add there).
    Unknown,
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_path(path: Option<&Path>) -> Rendered {
    path.map_or(Rendered::NotSet, |p| {
        Rendered::Set(toml_string(&p.to_string_lossy()))
    })
}

/// `flag`'s value in `config`, as TOML (the way back of [`apply`]).
pub fn value_of(config: &Config, flag: &str) -> Rendered {
    use Rendered::Set;
    let number = |n: u64| Set(n.to_string());
    let tls = config.tls.as_ref();
    match flag {
        "--listen" => Set(toml_string(
            &config.listen.map_or("none".into(), |a| a.to_string()),
        )),
        "--tls-listen" => {
            let items: Vec<String> = config
                .tls_listen
                .iter()
                .map(|a| toml_string(&a.to_string()))
                .collect();
            Set(format!("[{}]", items.join(", ")))
        }
        "--tls-cert" => toml_path(tls.map(|t| t.cert_chain.as_path())),
        "--tls-key" => toml_path(tls.map(|t| t.private_key.as_path())),
        "--tls-client-ca" => toml_path(tls.and_then(|t| t.client_ca.as_deref())),
        "--tls13-only" => Set(tls
            .is_some_and(|t| t.versions == TlsVersions::Tls13Only)
            .to_string()),
        "--app" => Set(toml_string(match config.app {
            crate::config::AppKind::Echo => "echo",
            crate::config::AppKind::Pubsub => "pubsub",
        })),
        "--heartbeat-ms" => number(config.heartbeat_ms.into()),
        "--min-heartbeat-ms" => number(config.min_heartbeat_ms.into()),
        "--max-heartbeat-ms" => number(config.max_heartbeat_ms.into()),
        "--miss" => number(config.miss.into()),
        "--handshake-timeout-ms" => number(config.handshake_timeout_ms.into()),
        "--linger-ms" => number(config.linger_ms.into()),
        "--frame-timeout-ms" => number(config.frame_timeout_ms.into()),
        "--max-connections" => number(config.max_connections as u64),
        "--max-accept-rate" => number(u64::from(config.max_accept_rate)),
        "--max-handshakes" => number(config.max_handshakes as u64),
        "--max-connections-per-ip" => number(u64::from(config.max_connections_per_ip)),
        "--max-frame" => number(config.max_frame.into()),
        "--max-message" => number(config.max_message.into()),
        "--max-output" => number(config.max_output as u64),
        "--session-ttl-ms" => number(config.session_ttl_ms.into()),
        "--auth-token-file" => toml_path(config.auth_token_file.as_deref()),
        "--tick-ms" => number(config.tick_ms.into()),
        "--soft-output" => number(config.soft_output as u64),
        "--soft-output-ms" => number(config.soft_output_ms.into()),
        "--rate-limit" => number(config.rate_limit.into()),
        "--rate-burst" => number(config.rate_burst.into()),
        "--session-queue" => number(config.session_queue as u64),
        "--history-size" => number(config.history_size as u64),
        "--history-ttl-ms" => number(config.history_ttl_ms.into()),
        "--history-memory" => number(config.history_memory as u64),
        // The password is shown as *** (Display): the output may be logged.
        "--engine" => Set(toml_string(
            &config
                .engine
                .as_ref()
                .map_or("memory".into(), |u| u.to_string()),
        )),
        "--metrics" => config
            .metrics
            .map_or(Rendered::NotSet, |a| Set(toml_string(&a.to_string()))),
        "--log-level" => config.log_level.map_or(Rendered::NotSet, |l| {
            Set(toml_string(&l.as_str().to_ascii_lowercase()))
        }),
        _ => Rendered::Unknown,
    }
}

/// Every key of `config` as a TOML file, each after its one-line
/// description: `key = value` (or `# key = value` when `commented`, as in
/// the example file), and `# key: not set` for an optional one left out.
pub fn render(config: &Config, commented: bool) -> String {
    let mut out = String::new();
    for (flag, description) in setting_flags() {
        let key = &flag[2..];
        out.push_str(&format!("\n# {description}\n"));
        match value_of(config, flag) {
            Rendered::Set(value) if commented => out.push_str(&format!("# {key} = {value}\n")),
            Rendered::Set(value) => out.push_str(&format!("{key} = {value}\n")),
            Rendered::NotSet => out.push_str(&format!("# {key}: not set\n")),
            Rendered::Unknown => out.push_str(&format!("# {key}: (not rendered yet)\n")),
        }
    }
    out
}

/// The example `tether.toml` at the repository root: every key at its
/// default, commented out, after its description from the usage text
/// (a test keeps the file equal to this).
pub fn example() -> String {
    format!(
        "# tether.toml: every setting of tether, commented out at its default.\n\
         # Each key is a command-line flag without its -- (tether --help); use the\n\
         # file with `tether --config tether.toml`, where flags given on the\n\
         # command line override it. `tether --check-config FILE` checks a file\n\
         # and prints the settings in effect; SIGHUP reloads it (README, Reload).\n\
         # Regenerate after changing a flag: TETHER_BLESS=1 cargo test --lib cli::file\n{}",
        render(&Config::default(), true)
    )
}

/// The keys whose value differs between `old` and `new`, as `key old → new`
/// (for the reload's log line).
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    setting_flags()
        .into_iter()
        .filter_map(|(flag, _)| {
            let (a, b) = (value_of(old, flag), value_of(new, flag));
            let show = |r: Rendered| match r {
                Rendered::Set(v) => v,
                _ => "(not set)".to_string(),
            };
            (a != b).then(|| format!("{} {} → {}", &flag[2..], show(a), show(b)))
        })
        .collect()
}

#[cfg(test)]
mod tests;
