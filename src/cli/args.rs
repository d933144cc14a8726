//! What both binaries' command lines share: the error type, the walk over the
//! arguments (on `lexopt`), and value parsing whose errors name the flag.
//!
//! The walk keeps the contract both parsers had before it, which differs from
//! lexopt's own conventions in three places: `--` is an ordinary (unknown)
//! flag rather than the end of the options, `-` is a flag rather than a
//! positional, and an argument with one leading dash is one flag named by the
//! whole argument (`-hV` is not `-h -V`). A value attached to a flag that
//! takes none (`--json=x`) is ignored, and lexopt's own error texts never
//! reach the user.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A command-line error; the binary prints it after its name and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// One argument of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An argument starting with `-`: a long flag without its `=value`
    /// (`--miss` for `--miss=3`), or the whole argument otherwise (`-h`, `-hV`, `-`).
    Flag(String),
    /// Any other argument.
    Positional(String),
}

/// Walks a command line flag by flag; after a [`Arg::Flag`], the value
/// methods read that flag's value (attached with `=`, or the next argument
/// whatever it looks like) and name the flag in their errors.
#[derive(Debug)]
pub struct ArgParser {
    inner: lexopt::Parser,
    /// The flag whose value the value methods read.
    flag: String,
    /// The current argument as given, for messages.
    raw: String,
}

impl ArgParser {
    /// A parser over the arguments after the program name.
    pub fn new<I>(args: I) -> ArgParser
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        ArgParser {
            inner: lexopt::Parser::from_args(args),
            flag: String::new(),
            raw: String::new(),
        }
    }

    /// The next argument, or `None` at the end of the command line.
    pub fn next_arg(&mut self) -> Option<Arg> {
        // A value attached to a flag that takes none is ignored, as it always was.
        let _ = self.inner.optional_value();
        let mut rest = self.inner.try_raw_args()?;
        self.raw = rest.peek()?.to_string_lossy().into_owned();
        if self.raw == "--" || self.raw == "-" {
            // lexopt reads these as "no options follow" and a positional.
            rest.next();
            return Some(self.flag_named(self.raw.clone()));
        }
        match self.inner.next() {
            Ok(Some(lexopt::Arg::Long(name))) => {
                let name = format!("--{name}");
                Some(self.flag_named(name))
            }
            Ok(Some(lexopt::Arg::Short(_))) => {
                // The rest of `-abc` belongs to this one flag.
                let _ = self.inner.optional_value();
                Some(self.flag_named(self.raw.clone()))
            }
            Ok(Some(lexopt::Arg::Value(value))) => {
                Some(Arg::Positional(value.to_string_lossy().into_owned()))
            }
            // lexopt's `next` fails only on an attached value left unread,
            // and that was dropped above.
            Ok(None) | Err(_) => None,
        }
    }

    fn flag_named(&mut self, name: String) -> Arg {
        self.flag.clone_from(&name);
        Arg::Flag(name)
    }

    /// The flag whose value the value methods read (the last one walked).
    pub fn flag(&self) -> &str {
        &self.flag
    }

    /// The current argument exactly as given (lossily, if not UTF-8), with
    /// any `=value`: what an "unknown flag" message shows.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The current flag's value as given, for values that need not be text (paths).
    pub fn value_os(&mut self) -> Result<OsString, CliError> {
        self.inner
            .value()
            .map_err(|_| CliError(format!("{}: missing value", self.flag)))
    }

    /// The current flag's value as text.
    pub fn value(&mut self) -> Result<String, CliError> {
        self.value_os()?.into_string().map_err(|value| {
            CliError(format!(
                "{}: expected UTF-8 text, got {:?}",
                self.flag,
                value.to_string_lossy()
            ))
        })
    }

    /// The current flag's value parsed as a `T`; `expected` says what it must
    /// be, as in `--miss: expected a number, got "x"`.
    pub fn parsed<T: FromStr>(&mut self, expected: &str) -> Result<T, CliError> {
        let value = self.value()?;
        parse_value(&self.flag, &value, expected)
    }

    /// The current flag's value as an `IP:PORT` socket address.
    pub fn address(&mut self) -> Result<SocketAddr, CliError> {
        self.parsed("IP:PORT")
    }

    /// The current flag's value as an `IP:PORT` socket address, or `None`
    /// for the word `none`.
    pub fn address_or_none(&mut self) -> Result<Option<SocketAddr>, CliError> {
        let value = self.value()?;
        if value == "none" {
            return Ok(None);
        }
        parse_value(&self.flag, &value, "IP:PORT").map(Some)
    }

    /// The current flag's value as a number of seconds in `0..=86400`,
    /// fractions allowed.
    pub fn seconds(&mut self) -> Result<f64, CliError> {
        let value = self.value()?;
        let secs: f64 = parse_value(&self.flag, &value, "a number")?;
        if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
            return Err(CliError(format!(
                "{}: expected 0..=86400 seconds, got {value:?}",
                self.flag
            )));
        }
        Ok(secs)
    }
}

/// Parses `value` of `flag` as a `T`, or says what was expected and what came.
pub fn parse_value<T: FromStr>(flag: &str, value: &str, expected: &str) -> Result<T, CliError> {
    value
        .parse()
        .map_err(|_| CliError(format!("{flag}: expected {expected}, got {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(args: &[&str]) -> Vec<Arg> {
        let mut p = ArgParser::new(args);
        std::iter::from_fn(|| p.next_arg()).collect()
    }

    fn flag(name: &str) -> Arg {
        Arg::Flag(name.to_string())
    }

    #[test]
    fn walk_keeps_the_old_contract_where_lexopt_differs() {
        assert_eq!(
            walk(&["--", "x", "-", "-hV", "-h=1", "--a=b", "---c", "--=d"]),
            [
                flag("--"),
                Arg::Positional("x".into()),
                flag("-"),
                flag("-hV"),
                flag("-h=1"),
                flag("--a"),
                flag("---c"),
                flag("--"),
            ]
        );
    }

    #[test]
    fn values_come_attached_or_next_whatever_they_look_like() {
        let mut p = ArgParser::new(["--a=1=2", "--b", "--", "--c", "-x", "--d"]);
        assert_eq!(p.next_arg(), Some(flag("--a")));
        assert_eq!(p.raw(), "--a=1=2");
        assert_eq!(p.value(), Ok("1=2".into()));
        assert_eq!(p.next_arg(), Some(flag("--b")));
        assert_eq!(p.value(), Ok("--".into()));
        assert_eq!(p.next_arg(), Some(flag("--c")));
        assert_eq!(p.value(), Ok("-x".into()));
        assert_eq!(p.next_arg(), Some(flag("--d")));
        assert_eq!(p.value(), Err(CliError("--d: missing value".into())));
        assert_eq!(p.next_arg(), None);
    }

    #[test]
    fn an_unread_attached_value_is_dropped() {
        let mut p = ArgParser::new(["--json=no", "idle"]);
        assert_eq!(p.next_arg(), Some(flag("--json")));
        assert_eq!(p.next_arg(), Some(Arg::Positional("idle".into())));
        assert_eq!(p.next_arg(), None);
    }

    #[test]
    fn value_errors_name_the_flag() {
        let mut p = ArgParser::new(["--n", "x", "--at", "nowhere", "--t", "-1", "--t", "x"]);
        p.next_arg();
        assert_eq!(
            p.parsed::<u32>("a number"),
            Err(CliError("--n: expected a number, got \"x\"".into()))
        );
        p.next_arg();
        assert_eq!(
            p.address(),
            Err(CliError("--at: expected IP:PORT, got \"nowhere\"".into()))
        );
        p.next_arg();
        assert_eq!(
            p.seconds(),
            Err(CliError(
                "--t: expected 0..=86400 seconds, got \"-1\"".into()
            ))
        );
        p.next_arg();
        assert_eq!(
            p.seconds(),
            Err(CliError("--t: expected a number, got \"x\"".into()))
        );
    }

    #[test]
    fn non_utf8_is_an_error_naming_the_flag_not_a_panic() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'a', 0xff]);
        let mut p = ArgParser::new([OsString::from("--n"), bad.clone(), bad.clone()]);
        assert_eq!(p.next_arg(), Some(flag("--n")));
        assert_eq!(p.value_os(), Ok(bad));
        assert_eq!(p.next_arg(), Some(Arg::Positional("a\u{fffd}".into())));
        let mut p = ArgParser::new([OsString::from("--n"), OsString::from_vec(vec![0xff])]);
        p.next_arg();
        assert_eq!(
            p.value(),
            Err(CliError(
                "--n: expected UTF-8 text, got \"\u{fffd}\"".into()
            ))
        );
    }
}
