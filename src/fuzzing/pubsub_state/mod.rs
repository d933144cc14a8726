//! Harness 5: the pub/sub state against a model of it, over protocol v1 and
//! v2, in explicit turns.
//!
//! [`pubsub_state`] reads a command language; the rig ([`rig`]) hands each
//! command to [`PubsubState`](crate::app::pubsub::PubsubState) and to the
//! model (`model.rs`, `model_v2.rs`) and then compares the state's actions
//! with the model's expectations and with what each client may see
//! (`view.rs`).

use bytes::Bytes;

use super::Input;
use crate::app::pubsub::ops::{encode_delivery, publish, subscribe, unsubscribe};
use crate::app::pubsub::ops_v2::{
    encode_publication, encode_publish, encode_subscribe, encode_unsubscribe, Position,
};
use crate::app::pubsub::streams::HistoryLimits;
use crate::app::pubsub::PubsubLimits;
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, SessionId};
use crate::time::Span;

mod model;
mod model_v2;
mod rig;
mod view;

use rig::Rig;

/// Channel names commands draw from: a small set so they collide, the
/// longest allowed, and the empty one (PROTOCOL_ERROR in v1, BAD_CHANNEL in v2).
const CHANNELS: [&[u8]; 5] = [b"a", b"b", b"news", &[b'z'; 255], b""];

/// History bytes: far above what an input can publish, so the model is
/// exact (no memory eviction); a replay's budget is set per SUBSCRIBE instead.
const HISTORY_MEMORY: usize = 1 << 40;

/// An idle stream or a held publication lives this many ticks in the
/// short-TTL configuration (forever in the other).
const SHORT_TTL: u64 = 6;

/// The limits the first input byte selects: bits 0-1 the session queue,
/// 2-3 `max_frame`, 4-5 the history size (0 = history off), 6 a short TTL.
fn limits(sel: u8) -> PubsubLimits {
    PubsubLimits {
        session_ttl_ms: 1_000,
        session_queue: [0, 40, 200, 5000][usize::from(sel & 3)],
        max_frame: [16, 64, 256, 65535][usize::from(sel >> 2 & 3)],
        history: HistoryLimits {
            size: [0, 1, 3, 16][usize::from(sel >> 4 & 3)],
            ttl: Span::from_ticks(if sel & 0x40 != 0 { SHORT_TTL } else { 1 << 40 }),
            memory: HISTORY_MEMORY,
        },
        tick_ms: 1,
    }
}

/// A request id from an input byte (0 from 0).
fn request_id(b: u8) -> u32 {
    u32::from_be_bytes([b, 0, 0, b])
}

/// [`PubsubState`](crate::app::pubsub::PubsubState) against a model, driven
/// by a command language. The first byte picks the limits (session queue,
/// `max_frame`, history size 0/1/3/16, TTL forever or 6 ticks); then each
/// command is a byte (mod 10) and its arguments; connections are picked
/// among the open ones modulo their count, channels among five names:
///
/// | op | args | command |
/// |---|---|---|
/// | 0 | r | HELLO: v2 if bit 7, RESUME a granted id (r & 3 = 1) or an unknown one (2) |
/// | 1 | conn, chan, pos, arg, rid, raise | subscribe (v2: with a position drawn from the streams, older, past the top, a wrong or forgotten epoch, or one a client held; the output raise bounds the replay) |
/// | 2 | conn, chan, rid | unsubscribe |
/// | 3 | conn, chan, rid, body | publish (v2: request id 0 when rid & 3 = 0); body of (conn >> 3) × 3 bytes |
/// | 4 | conn, n, bytes | a raw message of n bytes |
/// | 5 | conn, kind, arg | a malformed message of the connection's version (or the other's) |
/// | 6 | conn, how | the peer closes (GOAWAY NORMAL, EOF, reset, idle timeout; bit 2: data may be lost) |
/// | 7 | | the oldest session TTL timer fires |
/// | 8 | | end of the turn: flush, reap the closed connections, flush |
/// | 9 | ticks | the clock advances; the streams' expiry timer fires when due |
///
/// Checks against the model after every command: the grant of every HELLO
/// (resume, takeover with SESSION_TAKEN_OVER, no crossing of versions, a v2
/// takeover starting with no subscriptions); every action, exactly, per
/// connection and in order per channel (replies with the §7.4 table's
/// fields, the output raise then the replay, batched deliveries as one
/// buffer per channel and flush for every member, v1 `M`s, detached queues
/// and LOST, closes, timers); every client's stream (`view.rs`: §7.5 order,
/// nothing before SUBSCRIBED or after UNSUBSCRIBE_REPLY, every subscriber
/// caught up with its stream's top at the end of each turn); one buffer per
/// publication (the history's, never copied); and the state's counts,
/// stream positions and held publications.
pub fn pubsub_state(data: &[u8]) {
    let mut input = Input::new(data);
    let mut rig = Rig::new(limits(input.byte()));
    while !input.is_empty() {
        match input.byte() % 10 {
            0 => rig.hello(input.byte()),
            1 => {
                let [pick, chan, pos, arg, rid, raise] = [(); 6].map(|_| input.byte());
                let Some(conn) = rig.pick(pick) else { continue };
                let channel = Bytes::from_static(CHANNELS[usize::from(chan) % 5]);
                let message = if rig.is_v2(conn) {
                    let position = rig.position(conn, &channel, pos, arg);
                    encode_subscribe(request_id(rid), &channel, position)
                } else {
                    subscribe(&channel)
                };
                let raise = if raise < 0xc0 {
                    0
                } else {
                    HISTORY_MEMORY - usize::from(raise & 0x3f) * 24
                };
                rig.message(conn, message, raise);
            }
            2 => {
                let [pick, chan, rid] = [(); 3].map(|_| input.byte());
                let Some(conn) = rig.pick(pick) else { continue };
                let channel = CHANNELS[usize::from(chan) % 5];
                rig.note_positions(conn);
                let message = if rig.is_v2(conn) {
                    encode_unsubscribe(request_id(rid), channel)
                } else {
                    unsubscribe(channel)
                };
                rig.message(conn, message, 0);
            }
            3 => {
                let [pick, chan, rid] = [(); 3].map(|_| input.byte());
                let body = input.take(usize::from(pick >> 3) * 3);
                let Some(conn) = rig.pick(pick) else { continue };
                let channel = CHANNELS[usize::from(chan) % 5];
                let message = if rig.is_v2(conn) {
                    let rid = if rid & 3 == 0 { 0 } else { request_id(rid) };
                    encode_publish(rid, channel, body)
                } else {
                    publish(channel, body)
                };
                rig.message(conn, message, 0);
            }
            4 => {
                let [pick, n] = [(); 2].map(|_| input.byte());
                let message = Bytes::copy_from_slice(input.take(n.into()));
                if let Some(conn) = rig.pick(pick) {
                    rig.message(conn, message, 0);
                }
            }
            5 => {
                let [pick, kind, arg] = [(); 3].map(|_| input.byte());
                let Some(conn) = rig.pick(pick) else { continue };
                let message = malformed(rig.is_v2(conn), kind, arg);
                rig.message(conn, message, 0);
            }
            6 => {
                let [pick, how] = [(); 2].map(|_| input.byte());
                let reason = match how & 3 {
                    0 => CloseReason::PeerGoaway(GoawayCode::Normal),
                    1 => CloseReason::PeerEof,
                    2 => CloseReason::Reset,
                    _ => CloseReason::Goaway(GoawayCode::IdleTimeout),
                };
                if let Some(conn) = rig.pick(pick) {
                    rig.peer_close(conn, reason, how & 4 != 0);
                }
            }
            7 => rig.ttl_timer(),
            8 => rig.end_turn(),
            _ => rig.advance(input.byte()),
        }
        rig.check();
    }
    rig.end_turn();
    rig.check();
}

/// A message no correct client of this version sends (mostly; a cut
/// PUBLISH may still parse, and the model follows the parser).
fn malformed(v2: bool, kind: u8, arg: u8) -> Bytes {
    let channel = CHANNELS[usize::from(arg) % 4];
    let position = Some(Position {
        epoch: 1,
        offset: arg.into(),
    });
    if !v2 {
        return match kind % 4 {
            0 => encode_subscribe(1, channel, None),
            1 => Bytes::new(),
            2 => encode_delivery(channel, b"m", 65535).slice(8..),
            _ => Bytes::from_static(b"X"),
        };
    }
    let mut m = match kind % 8 {
        0 => encode_subscribe(arg.into(), channel, None).to_vec(),
        1 => encode_subscribe(
            arg.into(),
            channel,
            Some(Position {
                epoch: 0,
                offset: 0,
            }),
        )
        .to_vec(),
        2 => {
            let whole = match arg % 3 {
                0 => encode_subscribe(2, channel, position),
                1 => encode_unsubscribe(2, channel),
                _ => encode_publish(2, channel, b""),
            };
            whole[..whole.len().saturating_sub(1 + usize::from(arg % 5))].to_vec()
        }
        3 => {
            let whole = match arg % 2 {
                0 => encode_subscribe(3, channel, position),
                _ => encode_unsubscribe(3, channel),
            };
            [&whole[..], &[arg]].concat()
        }
        4 => subscribe(channel).to_vec(),
        5 => encode_publication(1, 1, channel, b"x").to_vec(),
        6 => Vec::new(),
        _ => vec![0x08 + arg % 0xf0, 0, 0, 0, 1, 0, 1, b'a'],
    };
    if kind % 8 == 0 {
        // A reserved SUBSCRIBE flag.
        m[5] |= 2 << (arg % 7);
    }
    Bytes::from(m)
}

/// A session id no HELLO was granted.
fn unknown_session(r: u8) -> SessionId {
    SessionId([r; 16])
}
