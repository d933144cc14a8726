//! Version 2 on the fake clock: HELLO asks for the configured version,
//! WELCOME must echo it (docs/protocol.md §7.1), a v2 connection takes
//! messages 16 bytes above `max_message` (§7.2), and a GOAWAY's retry-after
//! hint delays the reconnect (§7.8).

use super::tests::{config, ms, welcome_version, Harness};
use super::*;
use crate::protocol::{Goaway, PROTOCOL_V1, PROTOCOL_V2};

fn v2_config() -> ClientConfig {
    ClientConfig {
        version: PROTOCOL_V2,
        max_message: 100,
        ..config()
    }
}

/// Connects and returns the HELLO the machine sent.
fn hello_of(h: &mut Harness) -> Hello {
    h.m.handle_connected(h.now);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    Hello::decode(&sent[0].payload).expect("a valid HELLO")
}

#[test]
fn the_default_is_v1_as_before() {
    assert_eq!(ClientConfig::default().version, PROTOCOL_V1);
    let mut h = Harness::new(config());
    assert_eq!(hello_of(&mut h).version, PROTOCOL_V1);
}

#[test]
fn v2_hello_and_a_v2_welcome_open_the_connection() {
    let mut h = Harness::new(v2_config());
    assert_eq!(hello_of(&mut h).version, PROTOCOL_V2);
    h.deliver(&welcome_version(PROTOCOL_V2, 1000, 16, 100, false));
    assert!(h.m.is_open());
    assert_eq!(h.m.welcome().map(|w| w.version), Some(PROTOCOL_V2));
}

/// A WELCOME of another version than the HELLO's: GOAWAY
/// UNSUPPORTED_VERSION, and no reconnect (the server would answer the same).
#[test]
fn a_welcome_of_another_version_is_unsupported_and_final() {
    for (asked, answered) in [(PROTOCOL_V2, PROTOCOL_V1), (PROTOCOL_V1, PROTOCOL_V2)] {
        let mut h = Harness::new(ClientConfig {
            version: asked,
            ..config()
        });
        let _ = hello_of(&mut h);
        let _ = h.events();
        h.deliver(&welcome_version(answered, 1000, 16, 100, false));
        assert!(!h.m.is_open());
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        let goaway = Goaway::decode(&sent[0].payload).expect("GOAWAY");
        assert_eq!(
            goaway.code,
            GoawayCode::UnsupportedVersion,
            "{asked} vs {answered}"
        );
        assert!(h.m.wants_shutdown_write());
        h.m.handle_eof(h.now);
        assert_eq!(
            h.events(),
            [
                ClientEvent::Disconnected {
                    reason: DisconnectReason::Protocol(ProtocolError::UnsupportedVersion(answered))
                },
                ClientEvent::Closed,
            ]
        );
        assert!(h.m.is_closed() && !h.m.wants_connect());
    }
}

/// A v1-only server refuses a v2 HELLO with GOAWAY UNSUPPORTED_VERSION: final too.
#[test]
fn a_server_refusing_v2_is_final() {
    let mut h = Harness::new(v2_config());
    let _ = hello_of(&mut h);
    h.deliver(&encode_goaway(GoawayCode::UnsupportedVersion, "v1 only"));
    h.m.handle_eof(h.now);
    assert!(h.m.is_closed());
    assert!(matches!(h.events().last(), Some(ClientEvent::Closed)));
}

fn open_v2(max_message: usize) -> Harness {
    let mut h = Harness::new(ClientConfig {
        max_message,
        ..v2_config()
    });
    let _ = hello_of(&mut h);
    h.deliver(&welcome_version(PROTOCOL_V2, 1000, 16, 100, false));
    assert!(h.m.is_open());
    let _ = h.events();
    h
}

fn message_too_large(h: &mut Harness) -> Option<(usize, usize)> {
    h.m.handle_eof(h.now);
    h.events().into_iter().find_map(|e| match e {
        ClientEvent::Disconnected {
            reason: DisconnectReason::Protocol(ProtocolError::MessageTooLarge { len, max }),
        } => Some((len, max)),
        _ => None,
    })
}

#[test]
fn v2_accepts_max_message_plus_16_and_no_more() {
    let mut h = open_v2(100);
    h.deliver(&encode_message(&[7; 116], 16));
    assert_eq!(
        h.events(),
        [ClientEvent::Message(Bytes::from(vec![7; 116]))],
        "max_message + 16 is a PUBLICATION of the largest publish"
    );
    assert!(h.sent().is_empty());
    h.deliver(&encode_message(&[7; 117], 16));
    let sent = h.sent();
    assert_eq!(
        Goaway::decode(&sent[0].payload).map(|g| g.code),
        Ok(GoawayCode::MessageTooLarge)
    );
    assert_eq!(message_too_large(&mut h), Some((117, 116)));
}

#[test]
fn v2_growth_saturates_instead_of_overflowing() {
    let mut h = open_v2(usize::MAX);
    h.deliver(&encode_message(&[1; 40], 16));
    assert_eq!(h.events().len(), 1);
}

fn reconnect_delay(events: Vec<ClientEvent>) -> Option<Duration> {
    events.into_iter().find_map(|e| match e {
        ClientEvent::Reconnecting { delay, .. } => Some(delay),
        _ => None,
    })
}

/// SERVER_BUSY (code 14, unknown to this build's table) with a hint: the
/// next attempt waits the hint plus up to half of it, not the 100 ms of §4.4.
#[test]
fn a_retry_after_hint_delays_the_reconnect() {
    let mut h = open_v2(100);
    h.deliver(&encode_goaway(
        GoawayCode::from_u16(14),
        "retry-after-ms=1500 engine unavailable",
    ));
    h.m.handle_eof(h.now);
    let delay = reconnect_delay(h.events()).expect("reconnects");
    assert!(
        delay >= ms(1500) && delay <= ms(2250),
        "the hint and its jitter, got {delay:?}"
    );
    h.jump();
    assert!(h.m.wants_connect());
    // A reason without the hint: the usual schedule (second retry: 200 ms).
    let _ = hello_of(&mut h);
    h.deliver(&encode_goaway(GoawayCode::ServerFull, "full"));
    h.m.handle_eof(h.now);
    assert_eq!(reconnect_delay(h.events()), Some(ms(200)));
}

/// The pub/sub layer found a bad reply: our GOAWAY, nothing more read, a
/// drain to EOF, then a reconnect as after any protocol error.
#[test]
fn abort_sends_the_goaway_stops_reading_and_reconnects() {
    let mut h = open_v2(100);
    h.m.abort(GoawayCode::ProtocolError, "reply to no request", h.now);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let goaway = Goaway::decode(&sent[0].payload).expect("GOAWAY");
    assert_eq!(
        (goaway.code, goaway.reason.as_str()),
        (GoawayCode::ProtocolError, "reply to no request")
    );
    assert!(h.m.wants_shutdown_write());
    h.deliver(&encode_message(b"late", 16));
    h.m.handle_eof(h.now);
    let events = h.events();
    assert_eq!(
        events[0],
        ClientEvent::Disconnected {
            reason: DisconnectReason::Aborted {
                code: GoawayCode::ProtocolError,
                reason: "reply to no request".into()
            }
        }
    );
    assert!(matches!(events[1], ClientEvent::Reconnecting { .. }));
    assert_eq!(events.len(), 2, "nothing read after the abort: {events:?}");
}

#[test]
fn an_explicit_ping_measures_the_round_trip() {
    let mut h = Harness::new(config());
    assert_eq!(h.m.ping(h.now), None, "no connection yet");
    h.open();
    let seq = h.m.ping(h.now).expect("open");
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, FrameType::Ping);
    assert_eq!(&sent[0].payload[..], &seq.to_be_bytes());
    assert!(h.m.pongs() < seq);
    h.now += ms(3);
    h.deliver(&encode_frame(FrameType::Pong, false, &seq.to_be_bytes()));
    assert_eq!(h.m.rtt(), Some(ms(3)));
    assert_eq!(h.m.pongs(), seq);
    // A PONG for a PING we never sent does not count as an answer.
    h.deliver(&encode_frame(
        FrameType::Pong,
        false,
        &(seq + 5).to_be_bytes(),
    ));
    assert_eq!(h.m.pongs(), seq);
}
