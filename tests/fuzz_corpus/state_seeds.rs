//! Seeds for the `conn_machine` target: command scripts for one connection
//! (the pub/sub state's are in `pubsub_seeds.rs`).

use tether::fuzzing::{conn_flags, raw_frame, Cmd};

use super::vectors;

pub(crate) fn conn_machine_seeds() -> Vec<(String, Vec<u8>)> {
    use conn_flags::*;
    let open = PREFIX_HELLO | AUTO_ACCEPT;
    let v = vectors();
    let vector = |name: &str| {
        v.iter()
            .find(|(n, _)| *n == name)
            .expect("vector")
            .1
            .clone()
    };
    let big = 0xffff;
    let cases: Vec<(&str, Script)> = vec![
        ("nothing", Script::new(0)),
        ("open-only", Script::new(open)),
        (
            "hello-vector-accept",
            Script::new(0)
                .bytes(&vector("hello-v1"))
                .cmd(Cmd::Accept, &[3])
                .written(big),
        ),
        (
            "all-vectors-after-hello",
            v.iter()
                .fold(Script::new(AUTO_ACCEPT), |s, (_, w)| s.bytes(w))
                .written(big),
        ),
        (
            "ping-pong",
            Script::new(open)
                .bytes(&vector("ping-abc"))
                .bytes(&vector("ping"))
                .written(big),
        ),
        (
            "fragments-with-pings",
            Script::new(open)
                .bytes(&vector("data-more-hel"))
                .bytes(&vector("ping"))
                .bytes(&raw_frame(0x05, b"lo"))
                .cmd(Cmd::Message, &[40, 7])
                .cmd(Cmd::Deliver, &[3])
                .cmd(Cmd::Deliver, &[0]),
        ),
        (
            "message-too-large",
            Script::new(open)
                .cmd(Cmd::Message, &[200, 255])
                .cmd(Cmd::Deliver, &[0])
                .written(big),
        ),
        (
            "frame-too-large",
            Script::new(open)
                .cmd(Cmd::Frame, &[0x45, 100])
                .cmd(Cmd::Deliver, &[0]),
        ),
        ("bad-checksum", {
            let mut bad = vector("data-hello");
            bad[9] ^= 0xff;
            Script::new(open).bytes(&bad).written(big)
        }),
        (
            "unknown-type",
            Script::new(open).cmd(Cmd::Frame, &[0x07, 1, 0]),
        ),
        (
            "data-before-hello",
            Script::new(0).bytes(&vector("data-hello")).written(big),
        ),
        ("second-hello", Script::new(open).hello(0, 25).written(big)),
        (
            "peer-goaway",
            Script::new(open)
                .bytes(&vector("goaway-bye"))
                .cmd(Cmd::ShutWrite, &[])
                .written(big)
                .cmd(Cmd::ShutWrite, &[])
                .cmd(Cmd::Eof, &[]),
        ),
        (
            "handshake-timeout",
            Script::new(0).advance(3).advance(3).advance(3).written(big),
        ),
        (
            "idle-timeout-then-linger",
            Script::new(open)
                .advance(20)
                .bytes(&vector("ping"))
                .advance(40)
                .written(big)
                .cmd(Cmd::ShutWrite, &[])
                .advance(0x84),
        ),
        (
            "spurious-timeouts",
            Script::new(open)
                .advance(0x40)
                .advance(0x41)
                .bytes(&vector("pong"))
                .advance(0x45),
        ),
        (
            "slow-consumer-hard",
            Script::new(open)
                .cmd(Cmd::Send, &[0x03, 0xe8])
                .written(100)
                .cmd(Cmd::Send, &[0x0f, 0xa0])
                .cmd(Cmd::Send, &[0x0f, 0xa0])
                .written(big)
                .cmd(Cmd::ShutWrite, &[]),
        ),
        (
            "slow-consumer-soft",
            Script::new(open | SOFT_OUTPUT)
                .cmd(Cmd::Send, &[0x09, 0x00])
                .advance(2)
                .advance(3)
                .advance(4),
        ),
        (
            "rate-limited",
            (0..25)
                .fold(Script::new(open | RATE_LIMIT), |s, _| {
                    s.bytes(&vector("ping"))
                })
                .written(big),
        ),
        (
            "auth-right-token",
            Script::new(AUTH | AUTO_ACCEPT).hello(1, 0).written(big),
        ),
        (
            "auth-wrong-token",
            Script::new(AUTH | AUTO_ACCEPT).hello(0, 0).written(big),
        ),
        (
            "hello-resume-accept-later",
            Script::new(0)
                .hello(2, 255)
                .cmd(Cmd::Send, &[0, 10])
                .cmd(Cmd::Accept, &[1])
                .cmd(Cmd::Accept, &[1]),
        ),
        (
            "eof-mid-frame",
            Script::new(open)
                .bytes(&vector("data-hello")[..6])
                .cmd(Cmd::Eof, &[])
                .written(big)
                .cmd(Cmd::ShutWrite, &[]),
        ),
        (
            "eof-flushes-replies",
            Script::new(open)
                .bytes(&vector("ping"))
                .cmd(Cmd::Eof, &[])
                .written(3)
                .cmd(Cmd::ShutWrite, &[])
                .written(big)
                .cmd(Cmd::ShutWrite, &[]),
        ),
        (
            "server-close-then-peer-eof",
            Script::new(open)
                .cmd(Cmd::Close, &[0])
                .bytes(&vector("ping"))
                .written(big)
                .cmd(Cmd::ShutWrite, &[])
                .cmd(Cmd::Eof, &[]),
        ),
        (
            "shutdown-mid-write",
            Script::new(open)
                .cmd(Cmd::Send, &[0x02, 0x00])
                .written(17)
                .cmd(Cmd::Close, &[0xff])
                .written(big),
        ),
        (
            "slow-consumer-close-mid-write",
            Script::new(open)
                .cmd(Cmd::Send, &[0x02, 0x00])
                .written(17)
                .cmd(Cmd::Close, &[9])
                .written(big),
        ),
        (
            "reset",
            Script::new(open)
                .cmd(Cmd::Send, &[0, 9])
                .cmd(Cmd::Reset, &[]),
        ),
        (
            "bytewise-hello",
            Script::new(AUTO_ACCEPT)
                .cmd(Cmd::Hello, &[0, 0])
                .cmd(Cmd::Deliver, &[1])
                .cmd(Cmd::Deliver, &[5])
                .cmd(Cmd::Deliver, &[0]),
        ),
    ];
    cases
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.0))
        .collect()
}

/// A [`Cmd`] script for `conn_machine`.
struct Script(Vec<u8>);

impl Script {
    fn new(flags: u8) -> Self {
        Script(vec![flags])
    }

    fn cmd(mut self, cmd: Cmd, args: &[u8]) -> Self {
        self.0.push(cmd as u8);
        self.0.extend_from_slice(args);
        self
    }

    /// Raw bytes in pieces of at most 255, then delivered.
    fn bytes(mut self, bytes: &[u8]) -> Self {
        for piece in bytes.chunks(255) {
            self = self.cmd(Cmd::Raw, &[piece.len() as u8]);
            self.0.extend_from_slice(piece);
        }
        self.cmd(Cmd::Deliver, &[0])
    }

    fn hello(self, flags: u8, heartbeat: u8) -> Self {
        self.cmd(Cmd::Hello, &[flags, heartbeat])
            .cmd(Cmd::Deliver, &[0])
    }

    fn advance(self, ticks: u8) -> Self {
        self.cmd(Cmd::Advance, &[ticks])
    }

    fn written(self, n: u16) -> Self {
        self.cmd(Cmd::Written, &n.to_be_bytes())
    }
}
