//! The `--help` texts, one per subcommand plus the overview.

use tether::client::TLS_FLAGS_USAGE;

const TOP: &str = "\
tether-cli: talk to a tether server from the shell (pub/sub protocol v2).

usage: tether-cli sub  ADDR CHANNEL... [flags]    print what is published
       tether-cli pub  ADDR CHANNEL [MESSAGE] [flags]
                                                  publish and wait for each acknowledgement
       tether-cli ping ADDR [flags]               one PING's round trip
       tether-cli SUBCOMMAND --help               that subcommand's flags

ADDR is HOST:PORT, or HOST:PORT,HOST:PORT,... tried in order (after a
connection ends, the next address first). sub and pub reconnect by
themselves; sub resubscribes from where it was and gets what it missed.
Exit status: 0 done, 1 failed (connection, refusal, timeout), 2 bad usage.
";

const COMMON: &str = "\
connection flags (every subcommand):
  --json                      one JSON object per line on stdout
  --token-file FILE           send the auth token in FILE (its first line)
  --heartbeat-ms N            heartbeat asked for in HELLO (0 = the server's choice, the default)
  -h, --help                  this text
";

const SUB: &str = "\
tether-cli sub: subscribe to each CHANNEL and print every publication once,
in order, across reconnects (v2 recovery from the server's history).

usage: tether-cli sub ADDR CHANNEL... [flags]

  --count N                   exit 0 after N messages (all channels together)
  --timeout-s S               stop after S seconds: exit 0 without --count,
                              else exit 1 saying how many of N arrived
  --from EPOCH:OFFSET         start after this position on every CHANNEL: the
                              server replays what follows if it still holds it

Output: each message's payload on a line. With --json, one object per event:
  {\"event\":\"message\",\"channel\":C,\"epoch\":E,\"offset\":N,\"payload\":P}
      (\"payload_b64\" instead of \"payload\" when it is not UTF-8)
  {\"event\":\"subscribed\",\"channel\":C,\"epoch\":E,\"offset\":TOP,\"recovered\":B,\"replayed\":K}
  {\"event\":\"recovery_failed\",\"channel\":C,\"reason\":R,\"old_epoch\":E,\"old_offset\":N,\"epoch\":E,\"offset\":N}
  {\"event\":\"subscribe_failed\",\"channel\":C,\"status\":S}
  {\"event\":\"connected\",\"resumed\":B}   {\"event\":\"disconnected\",\"reason\":R}
Epochs (E, and in --from) are 16 hex digits, as strings in JSON: they are
random 64-bit numbers, which JSON numbers (doubles in most readers) would
round. Offsets are decimal numbers.
";

const PUB: &str = "\
tether-cli pub: publish MESSAGE, or each line of stdin when there is none, or
numbered messages seq:1..seq:N; each is acknowledged by the server (up to 64
in flight).

usage: tether-cli pub ADDR CHANNEL [MESSAGE] [flags]

  --count N                   publish seq:1 .. seq:N instead of MESSAGE or stdin
  --rate R                    with --count: R publishes per second (default: as
                              fast as acknowledgements allow)

Output with --json: {\"channel\":C,\"epoch\":E,\"offset\":N} per acknowledged
publish (E as 16 hex digits). Exit 1 if any publish was refused or its outcome
is unknown (the connection ended first, or the server said OUTCOME_UNKNOWN;
it is not resent), with a line on
stderr naming the status.
";

const PING: &str = "\
tether-cli ping: connect, send one PING and print its round trip.

usage: tether-cli ping ADDR [flags]

Output: `rtt 0.213 ms`; with --json {\"event\":\"pong\",\"rtt_us\":213}.
";

/// The overview.
pub fn top() -> String {
    format!("{TOP}\n{COMMON}\nTLS:\n{TLS_FLAGS_USAGE}")
}

fn with_common(text: &str) -> String {
    format!("{text}\n{COMMON}\nTLS:\n{TLS_FLAGS_USAGE}")
}

/// `tether-cli sub --help`.
pub fn sub() -> String {
    with_common(SUB)
}

/// `tether-cli pub --help`.
pub fn publish() -> String {
    with_common(PUB)
}

/// `tether-cli ping --help`.
pub fn ping() -> String {
    with_common(PING)
}
