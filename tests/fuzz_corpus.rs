//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through
//! the same harness the fuzz target calls, so on stable `cargo test` every
//! seed and every input once found interesting stays a regression test.
//!
//! The seeds themselves are built here from the crate's own encoders and the
//! docs/protocol.md test vectors; `TETHER_WRITE_SEEDS=1 cargo test --test
//! fuzz_corpus -- --ignored` (re)writes them as `seed-*` files.

mod common;

use std::fs;
use std::path::PathBuf;

use tether::app::pubsub::ops::{publish, subscribe, unsubscribe};
use tether::fuzzing::{self, conn_flags, raw_frame, Cmd, CONN_TOKEN};
use tether::protocol::{encode_frame, encode_goaway, FrameType, GoawayCode, Hello, SessionId};

type Harness = fn(&[u8]);

/// Every fuzz target and the harness it calls.
const TARGETS: [(&str, Harness); 6] = [
    ("frame_decoder", fuzzing::frame_decoder),
    ("hello", fuzzing::hello),
    ("pubsub_op", fuzzing::pubsub_op),
    ("conn_machine", fuzzing::conn_machine),
    ("pubsub_state", fuzzing::pubsub_state),
    ("pubsub_v2_ops", fuzzing::pubsub_v2_ops),
];

fn corpus_dir(target: &str) -> PathBuf {
    common::root().join("fuzz/corpus").join(target)
}

#[test]
fn every_committed_corpus_file_passes_its_harness() {
    for (target, harness) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for file in files {
            let bytes = fs::read(&file).expect("corpus file");
            let run = std::panic::catch_unwind(|| harness(&bytes));
            assert!(run.is_ok(), "{target}: {} fails", file.display());
        }
    }
}

#[test]
fn every_seed_passes_its_harness() {
    for (target, harness) in TARGETS {
        let seeds = seeds(target);
        assert!(seeds.len() >= 10, "{target}: too few seeds");
        for (name, bytes) in seeds {
            let run = std::panic::catch_unwind(|| harness(&bytes));
            assert!(run.is_ok(), "{target}: seed {name} fails");
        }
    }
}

/// Writes the seeds into `fuzz/corpus/` (only with `TETHER_WRITE_SEEDS=1`).
#[test]
#[ignore = "writes the seed corpus; run with TETHER_WRITE_SEEDS=1"]
fn write_seed_corpus() {
    if std::env::var_os("TETHER_WRITE_SEEDS").is_none() {
        return;
    }
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in seeds(target) {
            fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

/// The frame test vectors of docs/protocol.md §1.
fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("ping", "a5 03 00 00 59 b7 88 72"),
        ("pong", "a5 04 00 00 5c f8 9e f7"),
        ("ping-abc", "a5 03 00 03 d6 bb 66 27 61 62 63"),
        ("data-hello", "a5 05 00 05 a0 25 1d 41 68 65 6c 6c 6f"),
        ("data-more-hel", "a5 85 00 03 ce 7d 21 3b 68 65 6c"),
        ("hello-v1", "a5 01 00 07 df 1d 8c 41 01 00 00 00 27 10 00"),
        ("goaway-bye", "a5 06 00 05 56 ee 03 1f 00 00 62 79 65"),
    ]
    .into_iter()
    .map(|(name, h)| (name, hex(h)))
    .collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let seeds = match target {
        "frame_decoder" => frame_decoder_seeds(),
        "hello" => hello_seeds(),
        "pubsub_op" => pubsub_op_seeds(),
        "conn_machine" => conn_machine_seeds(),
        "pubsub_state" => pubsub_state_seeds(),
        "pubsub_v2_ops" => pubsub_v2_ops_seeds(),
        other => panic!("unknown target {other}"),
    };
    seeds.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

/// First byte: max_frame index (low 3 bits) and chunking mode (high 5 bits).
fn frame_decoder_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, wire) in vectors() {
        out.push((format!("vec-{name}"), cat(&[&[0x07], &wire])));
        out.push((format!("vec-{name}-bytewise"), cat(&[&[0x0f], &wire])));
    }
    let all: Vec<u8> = vectors().into_iter().flat_map(|(_, w)| w).collect();
    out.push(("all-vectors-random-chunks".into(), cat(&[&[0xff], &all])));
    out.push(("all-vectors-chunks-of-3".into(), cat(&[&[0x1f], &all])));
    let ping = encode_frame(FrameType::Ping, false, b"");
    let mut bad_crc = encode_frame(FrameType::Data, false, b"hello").to_vec();
    bad_crc[12] ^= 1;
    let mut bad_type = ping.to_vec();
    bad_type[1] = 0x07; // CRC now fails: reads as BAD_CHECKSUM
    let max64 = encode_frame(FrameType::Data, false, &[7; 64]);
    let max65 = encode_frame(FrameType::Data, false, &[7; 65]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty-stream", vec![0x07]),
        ("bad-magic", cat(&[&[0x07], b"GET / HTTP/1.1\r\n"])),
        (
            "bad-magic-after-frame",
            cat(&[&[0x0f], &ping, &[0x00, 0xa5]]),
        ),
        ("partial-header", cat(&[&[0x07], &ping[..5]])),
        ("partial-payload", cat(&[&[0x0f], &max64[..40]])),
        ("bad-crc", cat(&[&[0x07], &bad_crc])),
        ("corrupt-type", cat(&[&[0x07], &bad_type])),
        (
            "unknown-type-good-crc",
            cat(&[&[0x07], &raw_frame(0x07, b"x")]),
        ),
        ("type-zero", cat(&[&[0x07], &raw_frame(0x00, b"")])),
        ("more-on-ping", cat(&[&[0x07], &raw_frame(0x83, b"")])),
        ("ping-65", cat(&[&[0x07], &raw_frame(0x03, &[1; 65])])),
        ("pong-64", cat(&[&[0x07], &raw_frame(0x04, &[1; 64])])),
        ("max-frame-64-exact", cat(&[&[0x04], &max64, &ping])),
        ("max-frame-64-over", cat(&[&[0x04], &max65])),
        ("over-max-split", cat(&[&[0x0c], &max65])),
        ("max-frame-0-empty-ok", cat(&[&[0x00], &ping, &ping])),
        ("max-frame-0-over", cat(&[&[0x08], &raw_frame(0x05, b"a")])),
        (
            "len-65535-header",
            cat(&[&[0x07], &[0xa5, 0x05, 0xff, 0xff, 0, 0, 0, 0]]),
        ),
        ("chunk-at-header-edge", cat(&[&[0x37], &max64, &max64])),
    ];
    out.extend(cases.into_iter().map(|(n, b)| (n.to_string(), b)));
    out
}

fn hello_seeds() -> Vec<(String, Vec<u8>)> {
    let hello = |h: &Hello| fuzzing_payload(&h.encode_frame());
    let welcome = hex(
        "01 03 00 00 75 30 00 01 5f 90 ff ff 00 10 00 00 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab",
    );
    let mut welcome_flags = welcome.clone();
    welcome_flags[1] = 0xfc;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("hello-vector", fuzzing_payload(&vectors()[5].1)),
        (
            "hello-token-resume",
            hello(&Hello {
                heartbeat_ms: 5,
                token: "secret".into(),
                resume: Some(SessionId([7; 16])),
            }),
        ),
        (
            "hello-token-255",
            hello(&Hello {
                heartbeat_ms: u32::MAX,
                token: vec![b't'; 255].into(),
                resume: None,
            }),
        ),
        ("hello-version-2", vec![2, 0, 0]),
        ("hello-short", vec![1, 0, 0, 0, 0]),
        ("hello-token-overrun", vec![1, 0, 0, 0, 0, 0, 2, 9]),
        ("hello-trailing", vec![1, 0, 0, 0, 0, 0, 0, 9]),
        ("hello-resume-no-id", vec![1, 1, 0, 0, 0, 0, 0]),
        ("hello-unknown-flag", vec![1, 4, 0, 0, 0, 0, 0]),
        ("welcome", welcome.clone()),
        ("welcome-unused-flags", welcome_flags),
        ("welcome-short", welcome[..31].to_vec()),
        ("welcome-long", cat(&[&welcome, &[0]])),
        ("goaway-vector", fuzzing_payload(&vectors()[6].1)),
        ("goaway-unknown-code", cat(&[&[0x12, 0x34], b"why"])),
        ("goaway-bad-utf8", vec![0, 1, 0xff, 0xfe, 0xc3]),
        ("goaway-reason-256", cat(&[&[0, 9], &[b'r'; 256]])),
        ("goaway-reason-257", cat(&[&[0, 9], &[b'r'; 257]])),
        ("goaway-code-only", vec![0, 13]),
        ("goaway-one-byte", vec![0]),
        (
            "goaway-utf8-cut",
            fuzzing_payload(&encode_goaway(GoawayCode::Normal, &"é".repeat(200))),
        ),
    ];
    cases.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

/// The payload of one encoded frame.
fn fuzzing_payload(frame: &[u8]) -> Vec<u8> {
    frame[8..].to_vec()
}

/// First byte: max_frame index for deliveries (low 3 bits); then the message.
fn pubsub_op_seeds() -> Vec<(String, Vec<u8>)> {
    let long = [b'c'; 255];
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("subscribe", 7, subscribe(b"news").to_vec()),
        ("unsubscribe", 7, unsubscribe(b"n").to_vec()),
        ("publish", 7, publish(b"news", b"hi").to_vec()),
        (
            "publish-split-1",
            0,
            publish(b"news", b"hello world").to_vec(),
        ),
        ("publish-split-3", 2, publish(b"ch", &[9; 40]).to_vec()),
        ("publish-empty-body", 4, publish(b"news", b"").to_vec()),
        ("publish-channel-255", 5, publish(&long, b"body").to_vec()),
        ("subscribe-channel-255", 7, subscribe(&long).to_vec()),
        ("subscribe-channel-256", 7, cat(&[b"S", &[b'c'; 256]])),
        ("empty", 7, vec![]),
        ("unknown-op", 7, b"X".to_vec()),
        ("delivery-as-op", 7, b"M\x01ab".to_vec()),
        ("delivery-empty-channel", 3, b"M\x00body".to_vec()),
        ("delivery-overrun", 7, b"M\x09ab".to_vec()),
        ("subscribe-empty", 7, b"S".to_vec()),
        ("unsubscribe-empty", 7, b"U".to_vec()),
        ("publish-no-len", 7, b"P".to_vec()),
        ("publish-len-0", 7, b"P\x00".to_vec()),
        ("publish-overrun", 7, b"P\x05abc".to_vec()),
    ];
    cases
        .into_iter()
        .map(|(n, sel, m)| (n.to_string(), cat(&[&[sel], &m])))
        .collect()
}

/// The payload test vectors of docs/protocol.md §7.9.
const V2_VECTORS: [(&str, &str); 13] = [
    ("subscribe", "01 00 00 00 01 00 04 6e 65 77 73"),
    (
        "subscribe-position",
        "01 00 00 00 02 01 04 6e 65 77 73 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 29",
    ),
    (
        "subscribed",
        "02 00 00 00 01 00 00 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2b 00 00 00 00",
    ),
    (
        "subscribed-recovered",
        "02 00 00 00 02 00 03 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2b 00 00 00 02",
    ),
    (
        "subscribed-epoch-changed",
        "02 00 00 00 02 00 01 01 9a 3c 5e 7f 10 32 54 76 00 00 00 00 00 00 00 07 00 00 00 00",
    ),
    (
        "subscribe-refused",
        "02 00 00 00 05 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    ),
    ("unsubscribe", "03 00 00 00 03 04 6e 65 77 73"),
    ("unsubscribed", "04 00 00 00 03 00"),
    ("publish", "05 00 00 00 04 04 6e 65 77 73 68 69"),
    ("publish-no-ack", "05 00 00 00 00 04 6e 65 77 73 68 69"),
    (
        "publish-ack",
        "06 00 00 00 04 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2c",
    ),
    (
        "publish-unavailable",
        "06 00 00 00 04 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    ),
    (
        "publication",
        "07 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2a 04 6e 65 77 73 68 69",
    ),
];

/// First byte: max_frame index for PUBLICATION frames (low 3 bits); then the
/// message: the §7.9 vectors, then edge and PROTOCOL_ERROR cases of §7.2.
fn pubsub_v2_ops_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = V2_VECTORS
        .iter()
        .map(|(name, h)| (format!("vec-{name}"), cat(&[&[7], &hex(h)])))
        .collect();
    let vector = |i: usize| hex(V2_VECTORS[i].1);
    let (sub_pos, reply) = (vector(1), vector(3));
    let mut unknown_numbers = reply.clone();
    unknown_numbers[5..8].copy_from_slice(&[9, 0xff, 7]);
    let mut zero_epoch = sub_pos.clone();
    zero_epoch[11..19].fill(0);
    let long = [b'c'; 255];
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("publish-split-1", 0, vector(8)),
        (
            "publication-split-3",
            2,
            cat(&[&vector(12)[..17], &[255], &long, &[9; 40]]),
        ),
        (
            "publish-channel-255-split-16",
            4,
            cat(&[&[5, 0, 0, 0, 7, 255], &long, b"body"]),
        ),
        ("subscribe-empty-channel", 7, vec![1, 0, 0, 0, 1, 0, 0]),
        ("unsubscribe-empty-channel", 7, vec![3, 0, 0, 0, 1, 0]),
        ("publish-empty-channel", 3, vec![5, 0, 0, 0, 1, 0, b'x']),
        ("reply-unknown-numbers", 7, unknown_numbers),
        ("empty", 7, vec![]),
        ("unknown-op", 7, vec![0x08, 0, 0]),
        ("v1-subscribe", 7, b"Snews".to_vec()),
        ("v1-delivery", 7, b"M\x04newshi".to_vec()),
        ("subscribe-truncated", 7, sub_pos[..20].to_vec()),
        ("subscribe-trailing", 7, cat(&[&sub_pos, b"x"])),
        ("subscribe-reserved-flags", 7, vec![1, 0, 0, 0, 1, 0x80, 0]),
        ("subscribe-zero-epoch", 7, zero_epoch),
        ("unsubscribe-trailing", 7, cat(&[&vector(6), b"x"])),
        ("publish-channel-overrun", 7, vec![5, 0, 0, 0, 1, 255, b'a']),
        ("reply-short", 7, reply[..27].to_vec()),
        ("ack-long", 7, cat(&[&vector(10), &[0]])),
        (
            "publication-overrun",
            7,
            cat(&[&vector(12)[..17], &[9, b'a']]),
        ),
    ];
    out.extend(
        cases
            .into_iter()
            .map(|(n, sel, m)| (n.to_string(), cat(&[&[sel], &m]))),
    );
    out
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

fn conn_machine_seeds() -> Vec<(String, Vec<u8>)> {
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

/// Pubsub ops: 0 hello (r), 1 sub, 2 unsub, 3 pub, 4 raw, 5 close, 6 timer;
/// each op is followed by a connection pick byte.
fn pubsub_state_seeds() -> Vec<(String, Vec<u8>)> {
    const HELLO: u8 = 0;
    const SUB: u8 = 1;
    const UNSUB: u8 = 2;
    const PUB: u8 = 3;
    const RAW: u8 = 4;
    const CLOSE: u8 = 5;
    const TIMER: u8 = 6;
    // Connections are picked modulo the live count; body lengths are (pick >> 3) × 3.
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("nothing", 0, vec![]),
        ("hello-only", 0, vec![HELLO, 0, 0]),
        (
            "fan-out",
            0x0f,
            vec![
                HELLO, 0, 0, HELLO, 0, 0, SUB, 0, 2, SUB, 1, 2, PUB, 0x20, 2, 1, 2, 3, 4, 5, 6, 7,
                8, 9, 10, 11, 12,
            ],
        ),
        (
            "detach-queue-resume-lost",
            0x01,
            vec![
                HELLO, 0, 0, HELLO, 0, 0, SUB, 0, 0, CLOSE, 0, 1, PUB, 0x40, 0, 1, 2, 3, 4, 5, 6,
                7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, PUB, 0x40, 0,
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, HELLO, 0, 1,
            ],
        ),
        (
            "takeover",
            0x02,
            vec![HELLO, 0, 0, SUB, 0, 1, HELLO, 0, 1, PUB, 1, 1],
        ),
        (
            "goaway-normal-ends-session",
            0x02,
            vec![HELLO, 0, 0, SUB, 0, 0, CLOSE, 0, 0, HELLO, 0, 1],
        ),
        (
            "ttl-expiry",
            0x02,
            vec![HELLO, 0, 0, SUB, 0, 0, CLOSE, 0, 1, TIMER, 0, HELLO, 0, 1],
        ),
        (
            "stale-timer-after-resume",
            0x02,
            vec![
                HELLO, 0, 0, SUB, 0, 0, CLOSE, 0, 2, HELLO, 0, 1, TIMER, 0, SUB, 0, 1,
            ],
        ),
        (
            "unsubscribe-then-close",
            0x02,
            vec![HELLO, 0, 0, SUB, 0, 3, UNSUB, 0, 3, CLOSE, 0, 1],
        ),
        (
            "malformed-closes",
            0x02,
            vec![HELLO, 0, 0, SUB, 0, 0, RAW, 0, 1, b'X'],
        ),
        (
            "raw-subscribe-long-channel",
            0x0e,
            [&[HELLO, 0, 0, RAW, 0, 200, b'S'][..], &[b'q'; 199]].concat(),
        ),
        (
            "resume-unknown",
            0x00,
            vec![HELLO, 0, 2, HELLO, 0, 6, PUB, 0, 0],
        ),
        (
            "publish-no-subscribers",
            0x00,
            vec![HELLO, 0, 0, PUB, 0x08, 3, 1, 2, 3],
        ),
    ];
    cases
        .into_iter()
        .map(|(n, sel, cmds)| (n.to_string(), cat(&[&[sel], &cmds])))
        .collect()
}

/// Keeps `CONN_TOKEN` in use so the flag's meaning is checked here too.
#[test]
fn conn_token_is_what_the_auth_flag_requires() {
    let config = fuzzing::conn_config(conn_flags::AUTH);
    let limits = tether::conn::ConnLimits::from_config(&config);
    assert!(limits.is_authorized(CONN_TOKEN));
    assert!(!limits.is_authorized(b""));
    assert_eq!(config.validate(), Ok(()));
}
