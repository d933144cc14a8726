use super::*;
use crate::engine::redis::command::Script;
use proptest::prelude::*;
use std::sync::LazyLock;
use std::time::Duration;

static ECHO: LazyLock<Script> = LazyLock::new(|| Script::new("echo", "return ARGV[1]".to_owned()));

const HELLO_REPLY: &[u8] =
    b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n";

fn t0() -> Instant {
    // Any fixed instant: the connection only compares and adds.
    static T0: LazyLock<Instant> = LazyLock::new(Instant::now);
    *T0
}

fn ms(n: u64) -> Instant {
    t0() + Duration::from_millis(n)
}

fn config() -> RedisConfig {
    RedisConfig {
        client_name: None,
        ping_interval: Duration::from_millis(1000),
        timeout: Duration::from_millis(3000),
        ..RedisConfig::default()
    }
}

fn sent(conn: &mut RedisConn) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        all.extend_from_slice(&b);
    }
    all
}

fn events(conn: &mut RedisConn) -> Vec<RedisEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn ready(config: RedisConfig) -> RedisConn {
    let mut conn = RedisConn::new(config, t0());
    let _ = sent(&mut conn);
    conn.handle_bytes(HELLO_REPLY, t0());
    assert_eq!(
        events(&mut conn),
        [RedisEvent::Ready {
            version: "7.0.15".into(),
            mode: "standalone".into()
        }]
    );
    assert!(conn.is_ready());
    conn
}

fn cmd(name: &'static str) -> Command {
    Command::new(name)
}

fn bulk(s: &[u8]) -> Value {
    Value::Bytes(Bytes::copy_from_slice(s))
}

fn reply(token: Token, value: Value) -> RedisEvent {
    RedisEvent::Reply { token, value }
}

#[test]
fn hello_goes_first_with_auth_and_name() {
    let mut conn = RedisConn::new(
        RedisConfig {
            password: Some("pw".into()),
            client_name: Some("tether".into()),
            ..config()
        },
        t0(),
    );
    conn.send(1, cmd("PING"), t0()).unwrap();
    assert_eq!(
        sent(&mut conn),
        b"*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n\
          $7\r\nSETNAME\r\n$6\r\ntether\r\n*1\r\n$4\r\nPING\r\n"
    );
    assert!(!conn.is_ready());
}

#[test]
fn a_failed_handshake_is_a_typed_auth_error_and_fails_what_was_pipelined() {
    let mut conn = RedisConn::new(config(), t0());
    conn.send(9, cmd("PING"), t0()).unwrap();
    let _ = sent(&mut conn);
    conn.handle_bytes(
        b"-WRONGPASS invalid username-password pair\r\n-NOAUTH x\r\n",
        ms(1),
    );
    let handshake = CloseReason::Handshake(ServerError {
        kind: ErrorKind::Auth,
        message: "WRONGPASS invalid username-password pair".into(),
    });
    assert_eq!(
        events(&mut conn),
        [
            RedisEvent::Failed {
                token: 9,
                error: RedisError::Closed {
                    reason: handshake.clone(),
                    sent: true
                },
                command: cmd("PING"),
            },
            RedisEvent::Closed(handshake.clone()),
        ]
    );
    assert_eq!(conn.close_reason(), Some(&handshake));
    assert_eq!(
        conn.send(1, cmd("PING"), ms(2)),
        Err((SendError::Closed, cmd("PING")))
    );
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn replies_match_commands_in_order_through_a_bounded_pipeline() {
    let mut conn = ready(RedisConfig {
        max_in_flight: 2,
        ..config()
    });
    for token in 1..=5 {
        conn.send(token, cmd("PING").arg(token.to_string()), t0())
            .unwrap();
    }
    assert_eq!(conn.in_flight(), 2);
    assert_eq!(conn.pending(), 5);
    let wire = sent(&mut conn);
    assert_eq!(
        wire,
        b"*2\r\n$4\r\nPING\r\n$1\r\n1\r\n*2\r\n$4\r\nPING\r\n$1\r\n2\r\n"
    );
    // Replies split anywhere, even inside a frame.
    conn.handle_bytes(b"$1\r\n1\r\n$1", ms(1));
    assert_eq!(events(&mut conn), [reply(1, bulk(b"1"))]);
    assert_eq!(sent(&mut conn), b"*2\r\n$4\r\nPING\r\n$1\r\n3\r\n");
    conn.handle_bytes(b"\r\n2\r\n:3\r\n", ms(2));
    assert_eq!(
        events(&mut conn),
        [reply(2, bulk(b"2")), reply(3, Value::Int(3))]
    );
    conn.handle_bytes(b"-ERR no\r\n_\r\n", ms(3));
    let evs = events(&mut conn);
    assert!(
        matches!(&evs[0], RedisEvent::Failed { token: 4, error: RedisError::Server(e), .. } if e.kind == ErrorKind::Other)
    );
    assert_eq!(evs[1], reply(5, Value::Nil));
    assert_eq!((conn.pending(), conn.in_flight()), (0, 0));
}

#[test]
fn pending_commands_are_bounded_by_count_and_bytes() {
    let mut conn = ready(RedisConfig {
        max_pending: 2,
        max_pending_bytes: 20,
        ..config()
    });
    conn.send(1, cmd("GET").arg("a"), t0()).unwrap();
    conn.send(2, cmd("GET").arg("b"), t0()).unwrap();
    let (why, back) = conn.send(3, cmd("GET").arg("c"), t0()).unwrap_err();
    assert_eq!(
        why,
        SendError::Full {
            pending: 2,
            pending_bytes: 8
        }
    );
    assert_eq!(back, cmd("GET").arg("c"));
    conn.handle_bytes(b"_\r\n", ms(1));
    let _ = events(&mut conn);
    // 4 pending + 20 > 20 bytes.
    let big = cmd("SET").arg("k").arg("0123456789abcdef");
    assert!(matches!(
        conn.send(4, big, t0()),
        Err((SendError::Full { pending: 1, .. }, _))
    ));
    let huge = cmd("SET").arg("k").arg(vec![0u8; 30]);
    assert!(
        matches!(conn.send(5, huge, t0()), Err((SendError::Unsupported(why), _)) if why.contains("over the 20-byte bound"))
    );
    let bad = Command::unsubscribe(PubsubKind::Global, []);
    assert!(matches!(
        conn.send(6, bad, t0()),
        Err((SendError::Unsupported(_), _))
    ));
    assert_eq!(conn.stats().refused, 4);
}

#[test]
fn pushes_become_messages_and_subscribes_complete_on_every_confirmation() {
    let mut conn = ready(config());
    let chans = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
    conn.send(
        7,
        Command::subscribe(PubsubKind::Sharded, chans.clone()),
        t0(),
    )
    .unwrap();
    assert_eq!(
        sent(&mut conn),
        b"*3\r\n$10\r\nSSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    conn.handle_bytes(b">3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n", ms(1));
    assert_eq!(events(&mut conn), []);
    conn.handle_bytes(
        b">3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$2\r\n\x00\xff\r\n",
        ms(2),
    );
    conn.handle_bytes(b">3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:2\r\n", ms(3));
    conn.handle_bytes(b">3\r\n$7\r\nmessage\r\n$1\r\nz\r\n$0\r\n\r\n", ms(4));
    // Redis dropping a shard channel on its own (slot migrated).
    conn.handle_bytes(b">3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:1\r\n", ms(5));
    conn.handle_bytes(b">2\r\n$10\r\ninvalidate\r\n_\r\n", ms(6));
    assert_eq!(
        events(&mut conn),
        [
            RedisEvent::Message {
                kind: PubsubKind::Sharded,
                channel: chans[0].clone(),
                payload: Bytes::from_static(b"\x00\xff"),
            },
            reply(7, Value::Int(2)),
            RedisEvent::Message {
                kind: PubsubKind::Global,
                channel: Bytes::from_static(b"z"),
                payload: Bytes::new(),
            },
            RedisEvent::Unsubscribed {
                kind: PubsubKind::Sharded,
                channel: chans[0].clone()
            },
            RedisEvent::Push(vec![bulk(b"invalidate"), Value::Nil]),
        ]
    );
    assert_eq!(conn.stats().pushes, 6);
}

#[test]
fn a_redirect_gives_the_command_back() {
    let mut conn = ready(config());
    let sub = Command::subscribe(PubsubKind::Sharded, [Bytes::from_static(b"a")]);
    conn.send(3, sub.clone(), t0()).unwrap();
    conn.handle_bytes(b"-MOVED 15495 127.0.0.1:7002\r\n", ms(1));
    assert_eq!(
        events(&mut conn),
        [RedisEvent::Failed {
            token: 3,
            error: RedisError::Server(ServerError {
                kind: ErrorKind::Moved {
                    slot: 15495,
                    addr: "127.0.0.1:7002".into()
                },
                message: "MOVED 15495 127.0.0.1:7002".into(),
            }),
            command: sub,
        }]
    );
    assert_eq!(conn.pending(), 0);
}

fn script_call(arg: &'static str) -> Command {
    Command::script(&ECHO, vec![], vec![Bytes::from_static(arg.as_bytes())])
}

#[test]
fn noscript_sends_the_script_again_as_eval_once_and_in_order() {
    let mut conn = ready(config());
    for (token, arg) in [(1, "a"), (2, "b")] {
        conn.send(token, script_call(arg), t0()).unwrap();
    }
    let _ = sent(&mut conn);
    conn.handle_bytes(
        b"-NOSCRIPT No matching script.\r\n-NOSCRIPT No matching script.\r\n",
        ms(1),
    );
    assert_eq!(events(&mut conn), []);
    let eval = |arg: &str| {
        format!("*4\r\n$4\r\nEVAL\r\n$14\r\nreturn ARGV[1]\r\n$1\r\n0\r\n$1\r\n{arg}\r\n")
            .into_bytes()
    };
    assert_eq!(sent(&mut conn), [eval("a"), eval("b")].concat());
    conn.handle_bytes(b"$1\r\na\r\n-NOSCRIPT again\r\n", ms(2));
    let evs = events(&mut conn);
    assert_eq!(evs[0], reply(1, bulk(b"a")));
    assert!(
        matches!(&evs[1], RedisEvent::Failed { token: 2, error, .. } if error.kind() == Some(&ErrorKind::NoScript))
    );
    assert_eq!(conn.stats().script_fallbacks, 2);
    assert_eq!(conn.pending(), 0);
}

#[test]
fn liveness_pings_when_silent_and_closes_when_nothing_comes() {
    let mut conn = ready(config());
    assert_eq!(conn.poll_timeout(), Some(ms(1000)));
    conn.handle_timeout(ms(999));
    assert_eq!(sent(&mut conn), b"");
    conn.handle_timeout(ms(1000));
    assert_eq!(sent(&mut conn), b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(conn.poll_timeout(), Some(ms(4000)));
    conn.handle_bytes(b"+PONG\r\n", ms(1010));
    assert_eq!(events(&mut conn), []);
    assert_eq!(conn.stats().rtt, Some(Duration::from_millis(10)));
    assert_eq!(conn.poll_timeout(), Some(ms(2010)));
    conn.handle_timeout(ms(2010));
    assert_eq!(sent(&mut conn), b"*1\r\n$4\r\nPING\r\n");
    // Bytes of a reply still arriving keep it alive.
    conn.handle_bytes(b"+PO", ms(4000));
    conn.handle_timeout(ms(5009));
    assert!(!conn.is_closed());
    conn.handle_timeout(ms(7000));
    assert_eq!(
        events(&mut conn),
        [RedisEvent::Closed(CloseReason::Timeout)]
    );
    assert_eq!(conn.stats().pings, 2);
}

#[test]
fn a_server_that_never_answers_times_out_from_the_hello() {
    let mut conn = RedisConn::new(config(), t0());
    assert_eq!(conn.poll_timeout(), Some(ms(3000)));
    conn.handle_timeout(ms(3000));
    assert_eq!(conn.close_reason(), Some(&CloseReason::Timeout));
}

#[test]
fn eof_fails_every_pending_command_saying_whether_it_was_sent() {
    let mut conn = ready(RedisConfig {
        max_in_flight: 1,
        ..config()
    });
    conn.send(1, cmd("GET").arg("a"), t0()).unwrap();
    let _ = sent(&mut conn);
    conn.send(2, cmd("GET").arg("b"), t0()).unwrap();
    conn.handle_eof();
    assert_eq!(
        events(&mut conn),
        [
            RedisEvent::Failed {
                token: 1,
                error: RedisError::Closed {
                    reason: CloseReason::Eof,
                    sent: true
                },
                command: cmd("GET").arg("a"),
            },
            RedisEvent::Failed {
                token: 2,
                error: RedisError::Closed {
                    reason: CloseReason::Eof,
                    sent: false
                },
                command: cmd("GET").arg("b"),
            },
            RedisEvent::Closed(CloseReason::Eof),
        ]
    );
    // Encoded but never handed out counts as not sent.
    let mut conn = ready(config());
    conn.send(3, cmd("GET").arg("c"), t0()).unwrap();
    conn.handle_io_error("connection reset");
    assert!(matches!(
        &events(&mut conn)[0],
        RedisEvent::Failed {
            error: RedisError::Closed {
                sent: false,
                reason: CloseReason::Io(_)
            },
            ..
        }
    ));
    assert_eq!(conn.poll_transmit(), None);
}

fn protocol_error(conn: &mut RedisConn) -> String {
    match conn.close_reason() {
        Some(CloseReason::Protocol(why)) => why.clone(),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn what_no_correct_server_sends_closes_the_connection() {
    let mut conn = ready(config());
    conn.handle_bytes(b"+OK\r\n", ms(1));
    assert!(protocol_error(&mut conn).contains("no command waiting"));

    let mut conn = ready(config());
    conn.handle_bytes(b"?what\r\n", ms(1));
    assert!(protocol_error(&mut conn).contains("unknown RESP type"));

    let mut conn = ready(config());
    conn.send(1, cmd("GET").arg("a"), t0()).unwrap();
    conn.handle_bytes(&b"*1\r\n".repeat(10_000), ms(1));
    assert!(protocol_error(&mut conn).contains("nested deeper"));

    let mut conn = ready(RedisConfig {
        max_reply_bytes: 100,
        ..config()
    });
    conn.send(1, cmd("GET").arg("a"), t0()).unwrap();
    conn.handle_bytes(b"$1000\r\n", ms(1));
    assert!(!conn.is_closed());
    conn.handle_bytes(&[b'x'; 200], ms(2));
    assert!(protocol_error(&mut conn).contains("over the 100-byte limit"));

    let mut conn = ready(config());
    conn.send(
        1,
        Command::subscribe(PubsubKind::Global, [Bytes::from_static(b"a")]),
        t0(),
    )
    .unwrap();
    conn.handle_bytes(b"+OK\r\n", ms(1));
    assert!(protocol_error(&mut conn).contains("instead of pushes"));
}

proptest! {
    /// Any bytes, in any chunks, with commands pending: no panic, and the
    /// connection is either open or closed with a reason.
    #[test]
    fn arbitrary_input_never_panics(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
        prefix in prop_oneof![Just(&b""[..]), Just(HELLO_REPLY), Just(&b">3\r\n"[..]), Just(&b"*2\r\n"[..])],
    ) {
        let mut conn = RedisConn::new(config(), t0());
        conn.send(1, cmd("GET").arg("a"), t0()).unwrap();
        conn.send(2, Command::subscribe(PubsubKind::Sharded, [Bytes::from_static(b"a")]), t0()).unwrap();
        conn.send(3, script_call("x"), t0()).unwrap();
        conn.handle_bytes(prefix, ms(1));
        for (i, chunk) in chunks.iter().enumerate() {
            conn.handle_bytes(chunk, ms(2 + i as u64));
            let _ = sent(&mut conn);
            let _ = events(&mut conn);
        }
        conn.handle_timeout(ms(10_000));
        prop_assert!(conn.is_closed() || conn.poll_timeout().is_some());
    }
}

#[test]
fn debug_output_never_shows_the_password() {
    let conn = RedisConn::new(
        RedisConfig {
            password: Some("hunter2".into()),
            ..config()
        },
        t0(),
    );
    let shown = format!("{conn:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("password: Some(\"***\")"), "{shown}");
}
