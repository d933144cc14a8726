//! The blocking pub/sub client against a scripted v2 server in a thread on
//! loopback: each accepted connection runs one closure that reads the
//! client's frames and answers with hand-built v2 messages.

use bytes::Bytes;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::*;
use crate::app::pubsub::ops_v2::{
    parse_client_op, ClientOp, Publication, PublishAck, ServerMsg, SubscribeReply,
};
use crate::client::backoff::{BackoffConfig, Jitter};
use crate::client::pubsub::RecoveryReason;
use crate::client::DisconnectReason;
use crate::protocol::{
    encode_message, Frame, FrameDecoder, FrameType, Goaway, Hello, SessionId, Welcome,
};

const E: u64 = 0x0123_4567_89ab_cdef;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const NEWS: &[u8] = b"news";

/// One accepted connection, seen from the server's side.
struct Peer {
    sock: TcpStream,
    decoder: FrameDecoder,
    frames: VecDeque<Frame>,
}

impl Peer {
    /// The next connection, or `None` when none comes within [`IO_TIMEOUT`].
    fn accept(listener: &TcpListener) -> Option<Peer> {
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        let sock = loop {
            match listener.accept() {
                Ok((sock, _)) => break sock,
                Err(_) if std::time::Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(2))
                }
                Err(_) => return None,
            }
        };
        sock.set_nonblocking(false).expect("blocking");
        sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Some(Peer {
            sock,
            decoder: FrameDecoder::new(u16::MAX as usize),
            frames: VecDeque::new(),
        })
    }

    /// The client's next frame other than PING (answered) and PONG.
    fn frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                match frame.kind {
                    FrameType::Ping => {
                        let pong =
                            crate::protocol::encode_frame(FrameType::Pong, false, &frame.payload);
                        self.sock.write_all(&pong).expect("write");
                    }
                    FrameType::Pong => {}
                    _ => return frame,
                }
                continue;
            }
            let mut buf = [0u8; 4096];
            let n = self.sock.read(&mut buf).expect("read");
            assert!(n > 0, "the client closed early");
            let mut input = &buf[..n];
            while let Some(frame) = self.decoder.next_frame(&mut input).expect("client frames") {
                self.frames.push_back(frame);
            }
        }
    }

    /// Reads the HELLO and answers WELCOME v2.
    fn handshake(&mut self) -> Hello {
        let frame = self.frame();
        assert_eq!(frame.kind, FrameType::Hello);
        let hello = Hello::decode(&frame.payload).expect("HELLO");
        let welcome = Welcome {
            version: PROTOCOL_V2,
            resumed: hello.resume.is_some(),
            lost: false,
            heartbeat_ms: 30_000,
            idle_timeout_ms: 90_000,
            max_frame: 1024,
            max_message: 4096,
            session: SessionId([3; 16]),
        };
        self.sock.write_all(&welcome.encode_frame()).expect("write");
        hello
    }

    /// The client's next pub/sub op.
    fn op(&mut self) -> ClientOp {
        let frame = self.frame();
        assert_eq!(frame.kind, FrameType::Data, "{frame:?}");
        assert!(!frame.more);
        parse_client_op(&frame.payload).expect("a valid op")
    }

    fn send(&mut self, msg: ServerMsg) {
        self.sock
            .write_all(&encode_message(&msg.encode(), 1024))
            .expect("write");
    }

    fn publications(&mut self, offsets: impl IntoIterator<Item = u64>) {
        for offset in offsets {
            self.send(ServerMsg::Publication(Publication {
                epoch: E,
                offset,
                channel: Bytes::from_static(NEWS),
                body: Bytes::from(format!("m{offset}")),
            }));
        }
    }

    /// The client's GOAWAY code.
    fn goaway(&mut self) -> Goaway {
        let frame = self.frame();
        assert_eq!(frame.kind, FrameType::Goaway);
        Goaway::decode(&frame.payload).expect("GOAWAY")
    }

    /// Cuts the connection without a word.
    fn cut(self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// A server running `scripts`, one per accepted connection, in order.
fn serve(scripts: Vec<Box<dyn FnOnce(Peer) + Send>>) -> (std::net::SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = thread::spawn(move || {
        for script in scripts {
            match Peer::accept(&listener) {
                Some(peer) => script(peer),
                None => panic!("no client came for a scripted connection"),
            }
        }
    });
    (addr, thread)
}

fn config() -> ClientConfig {
    ClientConfig {
        backoff: BackoffConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            jitter: Jitter::None,
            ..BackoffConfig::default()
        },
        ..ClientConfig::default()
    }
}

/// Events until (and including) the first one `stop` accepts.
fn events_until(
    client: &mut PubsubClient,
    stop: impl Fn(&PubsubEvent) -> bool,
) -> Vec<PubsubEvent> {
    let mut events = Vec::new();
    loop {
        let event = client
            .next_event(IO_TIMEOUT)
            .expect("client open")
            .expect("an event in time");
        let done = stop(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

fn offsets(events: &[PubsubEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            PubsubEvent::Message { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

fn is_message(offset: u64) -> impl Fn(&PubsubEvent) -> bool {
    move |e| matches!(e, PubsubEvent::Message { offset: o, .. } if *o == offset)
}

/// A cut mid-stream: the client reconnects by itself, resubscribes with its
/// position, and the replay continues the stream without a repeat.
#[test]
fn a_cut_connection_is_resubscribed_and_recovered() {
    let (addr, server) = serve(vec![
        Box::new(|mut peer: Peer| {
            assert_eq!(peer.handshake().version, PROTOCOL_V2);
            let ClientOp::Subscribe {
                request_id,
                position,
                ..
            } = peer.op()
            else {
                panic!("a SUBSCRIBE first");
            };
            assert_eq!((request_id, position), (1, None));
            peer.send(ServerMsg::SubscribeReply(SubscribeReply {
                epoch: E,
                top: 10,
                ..SubscribeReply::refused(1, Status::Ok)
            }));
            peer.publications([11, 12]);
            peer.cut();
        }),
        Box::new(|mut peer: Peer| {
            assert!(peer.handshake().resume.is_some(), "resumes the session");
            let op = peer.op();
            let expected = ClientOp::Subscribe {
                request_id: 1,
                channel: Bytes::from_static(NEWS),
                position: Some(Position {
                    epoch: E,
                    offset: 12,
                }),
            };
            assert_eq!(op, expected);
            peer.send(ServerMsg::SubscribeReply(SubscribeReply {
                recovery_asked: true,
                recovered: true,
                epoch: E,
                top: 14,
                replay: 2,
                ..SubscribeReply::refused(1, Status::Ok)
            }));
            peer.publications([11, 12, 13, 14, 15]);
            assert_eq!(peer.goaway().code, GoawayCode::Normal);
        }),
    ]);
    let mut client =
        PubsubClient::connect(addr, config(), PubsubConfig::default()).expect("connect");
    client.subscribe(NEWS, None).expect("valid");
    let events = events_until(&mut client, is_message(15));
    assert_eq!(offsets(&events), [11, 12, 13, 14, 15]);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            PubsubEvent::Connected { .. } => "connected",
            PubsubEvent::Disconnected { .. } => "disconnected",
            PubsubEvent::Subscribed {
                recovered: true, ..
            } => "recovered",
            PubsubEvent::Subscribed { .. } => "subscribed",
            PubsubEvent::Message { .. } => "m",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "connected",
            "subscribed",
            "m",
            "m",
            "disconnected",
            "connected",
            "recovered",
            "m",
            "m",
            "m"
        ]
    );
    client.close().expect("close");
    server.join().expect("server script");
}

#[test]
fn publish_acked_gives_the_position_the_refusal_or_unknown() {
    let (addr, server) = serve(vec![
        Box::new(|mut peer: Peer| {
            peer.handshake();
            let ClientOp::Publish {
                request_id, body, ..
            } = peer.op()
            else {
                panic!("PUBLISH");
            };
            assert_eq!((request_id, &body[..]), (1, &b"a"[..]));
            peer.send(ServerMsg::PublishAck(PublishAck {
                request_id: 1,
                status: Status::Ok,
                epoch: E,
                offset: 5,
            }));
            assert!(matches!(peer.op(), ClientOp::Publish { request_id: 2, .. }));
            peer.send(ServerMsg::PublishAck(PublishAck::refused(
                2,
                Status::TooLarge,
            )));
            assert!(matches!(peer.op(), ClientOp::Publish { request_id: 0, .. }));
            assert!(matches!(peer.op(), ClientOp::Publish { request_id: 3, .. }));
            peer.cut();
        }),
        Box::new(|mut peer: Peer| {
            peer.handshake();
            assert_eq!(peer.goaway().code, GoawayCode::Normal);
        }),
    ]);
    let mut client =
        PubsubClient::connect(addr, config(), PubsubConfig::default()).expect("connect");
    let position = client.publish_acked(NEWS, b"a").expect("acked");
    assert_eq!(
        position,
        Position {
            epoch: E,
            offset: 5
        }
    );
    match client.publish_acked(NEWS, b"b") {
        Err(PubsubClientError::Refused(Status::TooLarge)) => {}
        other => panic!("{other:?}"),
    }
    client.publish(NEWS, b"no ack").expect("sent");
    match client.publish_acked(NEWS, b"c") {
        Err(PubsubClientError::Unknown) => {}
        other => panic!("{other:?}"),
    }
    // The events meanwhile are kept, the outcomes taken out.
    let mut events = events_until(&mut client, |e| {
        matches!(e, PubsubEvent::Disconnected { .. })
    });
    events.extend(events_until(&mut client, |e| {
        matches!(e, PubsubEvent::Connected { .. })
    }));
    assert!(matches!(events[0], PubsubEvent::Connected { .. }));
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(events[1], PubsubEvent::Disconnected { .. }));
    client.close().expect("close");
    server.join().expect("server script");
}

/// A reply to no request: the client closes with GOAWAY PROTOCOL_ERROR
/// naming it, and reconnects.
#[test]
fn a_reply_to_no_request_is_answered_with_protocol_error() {
    let (addr, server) = serve(vec![
        Box::new(|mut peer: Peer| {
            peer.handshake();
            peer.send(ServerMsg::PublishAck(PublishAck::refused(9, Status::Ok)));
            let goaway = peer.goaway();
            assert_eq!(goaway.code, GoawayCode::ProtocolError);
            assert_eq!(
                goaway.reason,
                "PUBLISH_ACK for request 9, which is not pending"
            );
            peer.cut();
        }),
        Box::new(|mut peer: Peer| {
            peer.handshake();
            assert_eq!(peer.goaway().code, GoawayCode::Normal);
        }),
    ]);
    let mut client =
        PubsubClient::connect(addr, config(), PubsubConfig::default()).expect("connect");
    let events = events_until(&mut client, |e| {
        matches!(e, PubsubEvent::Disconnected { .. })
    });
    assert!(matches!(
        events.last(),
        Some(PubsubEvent::Disconnected {
            reason: DisconnectReason::Aborted {
                code: GoawayCode::ProtocolError,
                ..
            }
        })
    ));
    let _ = events_until(&mut client, |e| matches!(e, PubsubEvent::Connected { .. }));
    client.close().expect("close");
    server.join().expect("server script");
}

/// Not recovered: the event says why, with both positions.
#[test]
fn a_failed_recovery_is_an_event() {
    let (addr, server) = serve(vec![Box::new(|mut peer: Peer| {
        peer.handshake();
        let ClientOp::Subscribe { position, .. } = peer.op() else {
            panic!("SUBSCRIBE");
        };
        assert_eq!(
            position,
            Some(Position {
                epoch: E,
                offset: 3
            })
        );
        peer.send(ServerMsg::SubscribeReply(SubscribeReply {
            recovery_asked: true,
            reason: RecoveryReason::TooFarBehind,
            epoch: E,
            top: 700,
            ..SubscribeReply::refused(1, Status::Ok)
        }));
        peer.publications([701]);
        assert_eq!(peer.goaway().code, GoawayCode::Normal);
    })]);
    let mut client =
        PubsubClient::connect(addr, config(), PubsubConfig::default()).expect("connect");
    client
        .subscribe(
            NEWS,
            Some(Position {
                epoch: E,
                offset: 3,
            }),
        )
        .expect("valid");
    let events = events_until(&mut client, is_message(701));
    assert!(events.contains(&PubsubEvent::RecoveryFailed {
        channel: Bytes::from_static(NEWS),
        reason: RecoveryReason::TooFarBehind,
        old: Position {
            epoch: E,
            offset: 3
        },
        new: Position {
            epoch: E,
            offset: 700
        },
    }));
    client.close().expect("close");
    server.join().expect("server script");
}

/// `ADDR,ADDR,...`: a refused address is skipped, and once a connection
/// ends the next attempt starts with the address after it.
#[test]
fn after_a_connection_ends_the_next_address_is_tried_first() {
    let refused = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port nobody listens on once dropped");
    let back_to_first = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let first = listener.local_addr().expect("addr");
    let first_server = {
        let back_to_first = Arc::clone(&back_to_first);
        thread::spawn(move || {
            let mut peer = Peer::accept(&listener).expect("the first connection");
            peer.handshake();
            peer.cut();
            // Still listening: a reconnect that starts over would land here.
            if let Some(mut peer) = Peer::accept(&listener) {
                back_to_first.store(true, Ordering::SeqCst);
                peer.handshake();
            }
        })
    };
    let (second, second_server) = serve(vec![Box::new(|mut peer: Peer| {
        peer.handshake();
        assert_eq!(peer.goaway().code, GoawayCode::Normal);
    })]);
    let addrs = [refused, first, second];
    let mut client =
        PubsubClient::connect(&addrs[..], config(), PubsubConfig::default()).expect("connect");
    let mut events = events_until(&mut client, |e| {
        matches!(e, PubsubEvent::Disconnected { .. })
    });
    events.extend(events_until(&mut client, |e| {
        matches!(e, PubsubEvent::Connected { .. })
    }));
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        !back_to_first.load(Ordering::SeqCst),
        "the reconnect went back to the first address"
    );
    client.close().expect("close");
    second_server
        .join()
        .expect("second server: the reconnect went there");
    // The first server gives up listening on its own, IO_TIMEOUT later.
    drop(first_server);
}
