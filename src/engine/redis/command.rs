//! Commands as values: the arguments of one Redis command, kept (as cheap
//! `Bytes` clones) until its reply, so a command that meets a redirect, a
//! missing script or a lost connection goes back to its owner whole, to be
//! sent again elsewhere.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::frame::encode_command;

/// A Lua script the engine runs with EVALSHA, falling back to EVAL when the
/// server's script cache does not hold it (after a restart or SCRIPT FLUSH).
pub struct Script {
    name: &'static str,
    source: String,
    sha: String,
}

impl Script {
    /// A script from its source; `name` says which in logs and errors.
    pub fn new(name: &'static str, source: String) -> Script {
        let sha = sha1_smol::Sha1::from(source.as_bytes())
            .digest()
            .to_string();
        Script { name, source, sha }
    }

    /// The script's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Lua source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The SHA-1 (hex) Redis names the script by, what SCRIPT LOAD returns.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    /// SCRIPT LOAD of this script, to warm a new connection's cache.
    pub fn load_command(&self) -> Command {
        Command::new("SCRIPT")
            .arg("LOAD")
            .arg(Bytes::copy_from_slice(self.source.as_bytes()))
    }
}

/// Scripts are the same when their sources are (Redis's view too).
impl PartialEq for Script {
    fn eq(&self, other: &Script) -> bool {
        self.sha == other.sha
    }
}

impl Eq for Script {}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script({} {})", self.name, self.sha)
    }
}

/// Which pub/sub a (un)subscription is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PubsubKind {
    /// Classic pub/sub: PUBLISH, SUBSCRIBE, `message` pushes.
    Global,
    /// Sharded pub/sub (Redis 7): SPUBLISH, SSUBSCRIBE, `smessage` pushes;
    /// a channel lives on the shard of its slot.
    Sharded,
}

/// What a pending command waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    /// One reply (or error reply).
    Reply,
    /// One confirmation push per channel (RESP3 answers SUBSCRIBE and its
    /// kin with pushes, not a reply), or one error reply.
    Confirmations {
        /// The push's first element: `subscribe`, `sunsubscribe`, ...
        push: &'static [u8],
        /// Channels not confirmed yet, in order.
        channels: Vec<Bytes>,
    },
}

/// One Redis command: its arguments, or a script call.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// The arguments: for a script call, `numkeys keys... args...` without
    /// the EVALSHA and SHA in front.
    args: Vec<Bytes>,
    script: Option<&'static Script>,
}

impl Command {
    /// A command named `name` (e.g. `"PING"`); add arguments with [`Command::arg`].
    pub fn new(name: &'static str) -> Command {
        Command {
            args: vec![Bytes::from_static(name.as_bytes())],
            script: None,
        }
    }

    /// The command with one more argument.
    pub fn arg(mut self, arg: impl Into<Bytes>) -> Command {
        self.args.push(arg.into());
        self
    }

    /// SUBSCRIBE / SSUBSCRIBE to `channels` (at least one; in cluster mode
    /// all in one slot). Completes with the last confirmation's count once
    /// every channel is confirmed.
    pub fn subscribe(kind: PubsubKind, channels: impl IntoIterator<Item = Bytes>) -> Command {
        let name = match kind {
            PubsubKind::Global => "SUBSCRIBE",
            PubsubKind::Sharded => "SSUBSCRIBE",
        };
        channels.into_iter().fold(Command::new(name), Command::arg)
    }

    /// UNSUBSCRIBE / SUNSUBSCRIBE from `channels` (at least one: the
    /// argument-less form would get one confirmation per subscribed
    /// channel, which this connection does not track).
    pub fn unsubscribe(kind: PubsubKind, channels: impl IntoIterator<Item = Bytes>) -> Command {
        let name = match kind {
            PubsubKind::Global => "UNSUBSCRIBE",
            PubsubKind::Sharded => "SUNSUBSCRIBE",
        };
        channels.into_iter().fold(Command::new(name), Command::arg)
    }

    /// A call of `script` with `keys` (KEYS) and `args` (ARGV).
    pub fn script(script: &'static Script, keys: Vec<Bytes>, args: Vec<Bytes>) -> Command {
        let mut all = Vec::with_capacity(1 + keys.len() + args.len());
        all.push(Bytes::from(keys.len().to_string()));
        all.extend(keys);
        all.extend(args);
        Command {
            args: all,
            script: Some(script),
        }
    }

    /// The arguments (for a script call: numkeys, keys, then args).
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// The script this command calls, if it is a script call.
    pub fn called_script(&self) -> Option<&'static Script> {
        self.script
    }

    /// The command's name in upper case (`EVALSHA` for a script call).
    pub fn name(&self) -> String {
        match self.script {
            Some(_) => "EVALSHA".to_owned(),
            None => String::from_utf8_lossy(&self.args[0]).to_ascii_uppercase(),
        }
    }

    /// Bytes of argument data, what the connection's byte bound counts.
    pub fn weight(&self) -> usize {
        self.args.iter().map(Bytes::len).sum::<usize>() + self.script.map_or(0, |s| s.sha.len())
    }

    /// What the reply looks like, or why this connection cannot send the
    /// command: ones that would desynchronise replies from commands.
    pub(super) fn expect(&self) -> Result<Expect, String> {
        if self.script.is_some() {
            return Ok(Expect::Reply);
        }
        let name = self.name();
        let push: &'static [u8] = match name.as_str() {
            "SUBSCRIBE" => b"subscribe",
            "SSUBSCRIBE" => b"ssubscribe",
            "UNSUBSCRIBE" => b"unsubscribe",
            "SUNSUBSCRIBE" => b"sunsubscribe",
            "PSUBSCRIBE" | "PUNSUBSCRIBE" | "MONITOR" | "RESET" | "QUIT" | "HELLO" | "SYNC"
            | "PSYNC" => {
                return Err(format!(
                "{name} is not supported on an engine connection (it would desynchronise replies)"
            ))
            }
            _ => return Ok(Expect::Reply),
        };
        if self.args.len() < 2 {
            return Err(format!("{name} needs at least one channel"));
        }
        Ok(Expect::Confirmations {
            push,
            channels: self.args[1..].to_vec(),
        })
    }

    /// Appends the command's RESP encoding: EVALSHA when `by_sha`, else EVAL
    /// with the source, for script calls.
    pub(super) fn encode(&self, out: &mut BytesMut, by_sha: bool) {
        match self.script {
            None => encode_command(out, self.args.iter().map(|a| &a[..])),
            Some(script) => {
                let head: [&[u8]; 2] = if by_sha {
                    [b"EVALSHA", script.sha.as_bytes()]
                } else {
                    [b"EVAL", script.source.as_bytes()]
                };
                encode_command(
                    out,
                    head.into_iter().chain(self.args.iter().map(|a| &a[..])),
                )
            }
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies can be large and binary: the name and sizes say enough.
        match self.script {
            Some(s) => write!(f, "EVALSHA {}", s.name)?,
            None => f.write_str(&self.name())?,
        }
        write!(f, " ({} args, {} bytes)", self.args.len(), self.weight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    static ECHO: LazyLock<Script> =
        LazyLock::new(|| Script::new("echo", "return ARGV[1]".to_owned()));

    #[test]
    fn script_sha_is_sha1_of_the_source() {
        // `echo -n 'return ARGV[1]' | sha1sum`
        assert_eq!(ECHO.sha(), "098e0f0d1448c0a81dafe820f66d460eb09263da");
    }

    #[test]
    fn script_calls_encode_by_sha_or_source() {
        let cmd = Command::script(
            &ECHO,
            vec![Bytes::from_static(b"k")],
            vec![Bytes::from_static(b"v")],
        );
        let mut out = BytesMut::new();
        cmd.encode(&mut out, true);
        let want = format!(
            "*5\r\n$7\r\nEVALSHA\r\n$40\r\n{}\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\nv\r\n",
            ECHO.sha()
        );
        assert_eq!(&out[..], want.as_bytes());
        out.clear();
        cmd.encode(&mut out, false);
        assert_eq!(
            &out[..],
            &b"*5\r\n$4\r\nEVAL\r\n$14\r\nreturn ARGV[1]\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\nv\r\n"[..]
        );
        assert_eq!(cmd.name(), "EVALSHA");
        assert_eq!(cmd.expect(), Ok(Expect::Reply));
    }

    #[test]
    fn pubsub_commands_expect_one_confirmation_per_channel() {
        let chans = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let sub = Command::subscribe(PubsubKind::Sharded, chans.clone());
        assert_eq!(
            sub.expect(),
            Ok(Expect::Confirmations {
                push: b"ssubscribe",
                channels: chans.to_vec()
            })
        );
        let unsub = Command::new("unsubscribe").arg("a");
        assert!(matches!(
            unsub.expect(),
            Ok(Expect::Confirmations {
                push: b"unsubscribe",
                ..
            })
        ));
        assert!(Command::unsubscribe(PubsubKind::Global, [])
            .expect()
            .is_err());
        for name in ["PSUBSCRIBE", "MONITOR", "hello", "RESET"] {
            let err = Command::new(name).arg("x").expect().unwrap_err();
            assert!(err.contains("not supported"), "{err}");
        }
        assert_eq!(Command::new("PING").expect(), Ok(Expect::Reply));
    }

    #[test]
    fn debug_hides_arguments() {
        let cmd = Command::new("SET").arg("secret").arg("value");
        assert_eq!(format!("{cmd:?}"), "SET (3 args, 14 bytes)");
    }
}
