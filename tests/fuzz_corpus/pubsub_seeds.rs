//! Seeds for the `pubsub_state` target: command scripts (the language is
//! documented on `tether::fuzzing::pubsub_state`) that reach each path of
//! v1 sessions and of v2 streams, recovery and batching.

/// The first byte: the limits. Bits 0-1 the session queue (3: 5000 bytes),
/// 2-3 `max_frame` (3: 65535, 0: 16), 4-5 the history size (0: off, 1: 1,
/// 2: 3, 3: 16), 6 a TTL of 6 ticks instead of forever.
const EXACT: u8 = 0x2f; // history of 3, TTL forever, big frames and queue
const HISTORY_OFF: u8 = 0x0f;
const HISTORY_1: u8 = 0x1f;
const SHORT_TTL: u8 = 0x7f; // history of 16
const SMALL_FRAMES: u8 = 0x23; // max_frame 16, history of 3

/// Channel indexes (`CHANNELS` in the harness).
const A: u8 = 0;
const B: u8 = 1;
const NEWS: u8 = 2;
const LONG: u8 = 3;
const EMPTY: u8 = 4;

/// A SUBSCRIBE's position selector and its argument.
#[derive(Clone, Copy)]
enum Pos {
    /// No position.
    None,
    /// The stream's (epoch, top), or (next epoch, 0) with no stream.
    Top,
    /// (epoch, top − n).
    Older(u8),
    /// (epoch, top + 1 + n).
    PastTop(u8),
    /// A forgotten epoch of the channel, else the current one + 1 + n % 3.
    OtherEpoch(u8),
    /// The connection's own position, else the n-th one a client held.
    Held(u8),
}

impl Pos {
    fn bytes(self) -> [u8; 2] {
        match self {
            Pos::None => [0, 0],
            Pos::Top => [2, 0],
            Pos::Older(n) => [3, n],
            Pos::PastTop(n) => [4, n],
            Pos::OtherEpoch(n) => [5, n],
            Pos::Held(n) => [6, n],
        }
    }
}

/// A script, tracking how many connections are open so that a connection
/// is named by its index among the open ones (in HELLO order).
struct Script {
    bytes: Vec<u8>,
    open: u8,
}

impl Script {
    fn new(sel: u8) -> Self {
        Script {
            bytes: vec![sel],
            open: 0,
        }
    }

    fn cmd(mut self, op: u8, args: &[u8]) -> Self {
        self.bytes.push(op);
        self.bytes.extend_from_slice(args);
        self
    }

    fn v1(mut self) -> Self {
        self.open += 1;
        self.cmd(0, &[0])
    }

    fn v2(mut self) -> Self {
        self.open += 1;
        self.cmd(0, &[0x80])
    }

    /// HELLO resuming the `nth` session granted so far (a takeover closes
    /// the old connection: call [`Script::gone`] for it).
    fn resume(mut self, v2: bool, nth: u8) -> Self {
        self.open += 1;
        self.cmd(0, &[if v2 { 0x80 } else { 0 } | nth << 2 | 1])
    }

    fn resume_unknown(mut self, v2: bool) -> Self {
        self.open += 1;
        self.cmd(0, &[if v2 { 0x82 } else { 0x02 }])
    }

    /// A connection the state closed (malformed message, takeover).
    fn gone(mut self) -> Self {
        self.open -= 1;
        self
    }

    fn sub(self, conn: u8, chan: u8, pos: Pos, rid: u8) -> Self {
        let [sel, arg] = pos.bytes();
        self.cmd(1, &[conn, chan, sel, arg, rid, 0])
    }

    /// A SUBSCRIBE whose replay may take at most `budget` × 24 bytes.
    fn sub_budget(self, conn: u8, chan: u8, pos: Pos, budget: u8) -> Self {
        let [sel, arg] = pos.bytes();
        self.cmd(1, &[conn, chan, sel, arg, 9, 0xc0 | budget])
    }

    fn unsub(self, conn: u8, chan: u8, rid: u8) -> Self {
        self.cmd(2, &[conn, chan, rid])
    }

    /// A publish of `body` (a multiple of 3 bytes, at most 93); v2: `ack`
    /// asks for a PUBLISH_ACK.
    fn publ(self, conn: u8, chan: u8, ack: bool, body: &[u8]) -> Self {
        assert!(body.len() % 3 == 0 && body.len() <= 93, "body length");
        let high = body.len() as u8 / 3 * 8;
        let pick = (high..high + 8)
            .find(|p| p % self.open.max(1) == conn)
            .expect("at most 8 connections open");
        let rid = if ack { 5 } else { 4 };
        self.cmd(3, &[pick, chan, rid]).raw_tail(body)
    }

    fn raw_tail(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    fn raw(self, conn: u8, message: &[u8]) -> Self {
        self.cmd(4, &[conn, message.len() as u8]).raw_tail(message)
    }

    fn malformed(self, conn: u8, kind: u8, arg: u8) -> Self {
        self.cmd(5, &[conn, kind, arg]).gone()
    }

    /// The peer closes: 0 GOAWAY NORMAL, 1 EOF, 2 reset, 3 idle timeout
    /// (bit 2: data may have been lost).
    fn close(mut self, conn: u8, how: u8) -> Self {
        self.open -= 1;
        self.cmd(6, &[conn, how])
    }

    fn ttl_timer(self) -> Self {
        self.cmd(7, &[])
    }

    fn turn(self) -> Self {
        self.cmd(8, &[])
    }

    fn advance(self, ticks: u8) -> Self {
        self.cmd(9, &[ticks])
    }
}

pub(crate) fn pubsub_state_seeds() -> Vec<(String, Vec<u8>)> {
    let body = |n: usize| (0..n as u8).collect::<Vec<u8>>();
    let cases: Vec<(&str, Script)> = vec![
        ("nothing", Script::new(0)),
        ("hello-only", Script::new(0).v1().turn()),
        // v1, each message its own turn.
        (
            "v1-fan-out",
            Script::new(0x0f)
                .v1()
                .v1()
                .sub(0, NEWS, Pos::None, 0)
                .sub(1, NEWS, Pos::None, 0)
                .turn()
                .publ(0, NEWS, false, &body(12))
                .turn(),
        ),
        (
            "v1-detach-queue-resume-lost",
            Script::new(0x01)
                .v1()
                .v1()
                .sub(0, A, Pos::None, 0)
                .close(0, 5)
                .turn()
                .publ(0, A, false, &body(24))
                .turn()
                .publ(0, A, false, &body(24))
                .turn()
                .resume(false, 0)
                .turn(),
        ),
        (
            "v1-takeover",
            Script::new(0x02)
                .v1()
                .sub(0, B, Pos::None, 0)
                .turn()
                .resume(false, 0)
                .gone()
                .publ(0, B, false, b"")
                .turn(),
        ),
        (
            "v1-goaway-normal-ends-session",
            Script::new(0x02)
                .v1()
                .sub(0, A, Pos::None, 0)
                .close(0, 0)
                .turn()
                .resume(false, 0)
                .turn(),
        ),
        (
            "v1-ttl-expiry",
            Script::new(0x02)
                .v1()
                .sub(0, A, Pos::None, 0)
                .close(0, 1)
                .turn()
                .ttl_timer()
                .resume(false, 0)
                .turn(),
        ),
        (
            "v1-stale-timer-after-resume",
            Script::new(0x02)
                .v1()
                .sub(0, A, Pos::None, 0)
                .close(0, 2)
                .turn()
                .resume(false, 0)
                .ttl_timer()
                .sub(0, B, Pos::None, 0)
                .turn(),
        ),
        (
            "v1-malformed-closes",
            Script::new(0x02)
                .v1()
                .sub(0, A, Pos::None, 0)
                .raw(0, b"X")
                .gone()
                .turn(),
        ),
        (
            "v1-raw-subscribe-long-channel",
            Script::new(0x0e).v1().raw(0, &[b'S'; 200]).turn(),
        ),
        (
            "v1-resume-unknown",
            Script::new(0x00)
                .resume_unknown(false)
                .publ(0, A, false, b"")
                .turn(),
        ),
        // A v1 subscriber of two channels: within a turn, its deliveries
        // come per channel, channels in the order of their first publication.
        (
            "v1-batch-across-channels",
            Script::new(0x0f)
                .v1()
                .v1()
                .sub(0, A, Pos::None, 0)
                .sub(0, B, Pos::None, 0)
                .turn()
                .publ(1, B, false, b"b1.")
                .publ(1, A, false, b"a1.")
                .publ(1, B, false, b"b2.")
                .turn(),
        ),
        (
            "v1-detached-queue-full-in-one-turn",
            Script::new(0x01)
                .v1()
                .v1()
                .sub(0, A, Pos::None, 0)
                .sub(0, NEWS, Pos::None, 0)
                .close(0, 1)
                .turn()
                .publ(0, A, false, &body(9))
                .publ(0, NEWS, false, &body(9))
                .publ(0, A, false, &body(9))
                .turn()
                .resume(false, 0)
                .turn(),
        ),
        // v2.
        (
            "v2-subscribe-publish-ack",
            Script::new(EXACT)
                .v2()
                .sub(0, NEWS, Pos::None, 1)
                .publ(0, NEWS, true, b"hi!")
                .publ(0, NEWS, false, b"")
                .turn(),
        ),
        (
            "v2-reconnect-recovers-replay",
            Script::new(EXACT)
                .v2()
                .v2()
                .sub(1, NEWS, Pos::None, 1)
                .publ(0, NEWS, true, b"one")
                .turn()
                .close(1, 1)
                .turn()
                .publ(0, NEWS, true, b"two")
                .publ(0, NEWS, false, b"thr")
                .turn()
                .v2()
                .sub(1, NEWS, Pos::Held(0), 2)
                .publ(0, NEWS, true, b"fou")
                .turn(),
        ),
        (
            "v2-recover-at-top",
            Script::new(EXACT)
                .v2()
                .publ(0, A, true, b"abc")
                .sub(0, A, Pos::Top, 1)
                .turn(),
        ),
        (
            "v2-too-far-behind",
            Script::new(HISTORY_1)
                .v2()
                .publ(0, A, true, b"one")
                .publ(0, A, true, b"two")
                .publ(0, A, true, b"thr")
                .sub(0, A, Pos::Older(2), 1)
                .sub(0, A, Pos::Older(1), 2)
                .sub(0, A, Pos::Older(0), 3)
                .turn(),
        ),
        (
            "v2-position-past-top",
            Script::new(EXACT)
                .v2()
                .publ(0, A, true, b"one")
                .sub(0, A, Pos::PastTop(0), 1)
                .turn(),
        ),
        (
            "v2-wrong-epoch",
            Script::new(EXACT)
                .v2()
                .publ(0, A, true, b"one")
                .sub(0, A, Pos::OtherEpoch(1), 1)
                .turn(),
        ),
        (
            "v2-position-for-a-new-stream",
            Script::new(EXACT).v2().sub(0, NEWS, Pos::Top, 1).turn(),
        ),
        (
            "v2-history-off",
            Script::new(HISTORY_OFF)
                .v2()
                .publ(0, A, true, b"one")
                .publ(0, A, true, b"two")
                .sub(0, A, Pos::Top, 1)
                .sub(0, B, Pos::None, 2)
                .publ(0, B, false, b"bbb")
                .sub(0, B, Pos::Older(1), 3)
                .turn(),
        ),
        (
            "v2-replay-over-budget",
            Script::new(EXACT)
                .v2()
                .publ(0, A, false, &body(30))
                .publ(0, A, false, &body(30))
                .sub_budget(0, A, Pos::Older(2), 2)
                .sub_budget(0, A, Pos::Older(1), 63)
                .turn(),
        ),
        (
            "v2-unsubscribe-mid-turn",
            Script::new(EXACT)
                .v2()
                .v2()
                .sub(0, NEWS, Pos::None, 1)
                .turn()
                .publ(1, NEWS, false, b"one")
                .unsub(0, NEWS, 2)
                .publ(1, NEWS, false, b"two")
                .unsub(0, NEWS, 3)
                .turn(),
        ),
        (
            "v2-replace-subscription-mid-turn",
            Script::new(EXACT)
                .v2()
                .sub(0, NEWS, Pos::None, 1)
                .turn()
                .publ(0, NEWS, true, b"one")
                .publ(0, NEWS, true, b"two")
                .sub(0, NEWS, Pos::Older(2), 2)
                .publ(0, NEWS, true, b"thr")
                .turn(),
        ),
        (
            "v2-batch-shared-with-v1",
            Script::new(SMALL_FRAMES)
                .v2()
                .v2()
                .v1()
                .sub(0, NEWS, Pos::None, 1)
                .sub(1, NEWS, Pos::None, 1)
                .sub(2, NEWS, Pos::None, 0)
                .turn()
                .publ(0, NEWS, true, b"one")
                .publ(1, NEWS, true, b"two")
                .publ(2, NEWS, false, b"thr")
                .publ(0, A, true, b"aaa")
                .turn(),
        ),
        (
            "v2-long-channel-small-frames",
            Script::new(SMALL_FRAMES)
                .v2()
                .sub(0, LONG, Pos::None, 1)
                .publ(0, LONG, true, &body(90))
                .turn()
                .sub(0, LONG, Pos::Older(1), 2)
                .turn(),
        ),
        (
            "v2-takeover-starts-empty",
            Script::new(EXACT)
                .v2()
                .sub(0, NEWS, Pos::None, 1)
                .turn()
                .resume(true, 0)
                .gone()
                .publ(0, NEWS, true, b"one")
                .turn()
                .sub(0, NEWS, Pos::Older(1), 2)
                .turn(),
        ),
        (
            "v2-sessions-do-not-cross-versions",
            Script::new(EXACT)
                .v1()
                .sub(0, A, Pos::None, 0)
                .v2()
                .sub(1, A, Pos::None, 1)
                .turn()
                .resume(true, 0)
                .resume(false, 1)
                .publ(0, A, false, b"one")
                .turn(),
        ),
        (
            "v2-session-ends-with-connection",
            Script::new(EXACT)
                .v2()
                .sub(0, A, Pos::None, 1)
                .close(0, 5)
                .turn()
                .resume(true, 0)
                .turn(),
        ),
        (
            "v2-empty-channel",
            Script::new(EXACT)
                .v2()
                .sub(0, EMPTY, Pos::None, 1)
                .unsub(0, EMPTY, 2)
                .publ(0, EMPTY, true, b"one")
                .publ(0, EMPTY, false, b"two")
                .turn(),
        ),
        (
            "v2-malformed",
            (0..8)
                .fold(Script::new(EXACT), |s, kind| {
                    s.v2().malformed(0, kind, kind * 3 + 1)
                })
                .v1()
                .malformed(0, 0, 0)
                .turn(),
        ),
        (
            "v2-expiry-forgets-idle-streams",
            Script::new(SHORT_TTL)
                .v2()
                .v2()
                .sub(0, NEWS, Pos::None, 1)
                .publ(1, NEWS, true, b"one")
                .publ(1, A, true, b"aaa")
                .turn()
                .advance(4)
                .publ(1, NEWS, true, b"two")
                .turn()
                .advance(4)
                .sub(1, NEWS, Pos::Older(2), 2)
                .turn()
                .advance(9)
                .sub(1, A, Pos::OtherEpoch(0), 3)
                .turn(),
        ),
    ];
    cases
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.bytes))
        .collect()
}

/// Inputs on which `PubsubState` panics today (see the issue-11 report):
/// a session ended while a channel it subscribed to has publications of
/// the turn not yet queued indexes its removed slab slot in the flush.
pub(crate) fn pubsub_state_known_bugs() -> Vec<(String, Vec<u8>)> {
    let cases: Vec<(&str, Script)> = vec![
        (
            "v1-ttl-expiry-with-a-batch-pending",
            Script::new(EXACT)
                .v1()
                .sub(0, A, Pos::None, 0)
                .close(0, 1)
                .turn()
                .v1()
                .publ(0, A, false, b"")
                .ttl_timer(),
        ),
        (
            "v2-takeover-with-a-batch-pending",
            Script::new(EXACT)
                .v2()
                .sub(0, A, Pos::None, 1)
                .v1()
                .publ(1, A, false, b"")
                .resume(true, 0),
        ),
    ];
    cases
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.bytes))
        .collect()
}
