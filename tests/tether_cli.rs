//! `tether-cli` end to end: the real binary against the real `tether`
//! server (pub/sub v2), plus a scripted v2 server in a thread for the
//! refusals the bundled server never makes. (`tests/cli.rs` is the server's
//! own command line.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tether::app::pubsub::ops_v2::{parse_client_op, ClientOp, PublishAck, ServerMsg, Status};
use tether::protocol::{encode_message, FrameDecoder, FrameType, Hello, SessionId, Welcome};

use common::tls::TestPki;
use common::{cli_run, json, CliProcess, Server, TempFile};

const RUN: Duration = Duration::from_secs(20);

fn pubsub_server(extra: &[&str]) -> Server {
    let mut args = vec!["--app", "pubsub"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A subscriber that has printed its `subscribed` line (so publishing now reaches it).
fn subscriber(args: &[&str]) -> CliProcess {
    let sub = CliProcess::spawn(args);
    sub.lines_until("\"subscribed\"", RUN);
    sub
}

#[test]
fn pub_reaches_sub_in_order_with_json_lines() {
    let server = pubsub_server(&[]);
    let addr = server.addr.to_string();
    let sub = subscriber(&["sub", &addr, "news", "--json", "--count", "3"]);
    let one = cli_run(&["pub", &addr, "news", "hello", "--json"], None, RUN);
    assert_eq!(one.code(), 0, "{one:?}");
    let ack = json(one.stdout.trim());
    assert_eq!(ack["channel"], "news");
    assert_eq!(ack["offset"], 1);
    let epoch = ack["epoch"].as_str().expect("epoch string").to_string();
    assert_eq!(epoch.len(), 16, "16 hex digits: {epoch}");
    let lines = cli_run(&["pub", &addr, "news", "--json"], Some(b"a\nb\r\n"), RUN);
    assert_eq!(lines.code(), 0, "{lines:?}");
    let offsets: Vec<Value> = lines
        .stdout
        .lines()
        .map(|l| json(l)["offset"].clone())
        .collect();
    assert_eq!(offsets, [2, 3]);
    let (out, status, stderr) = sub.finish(RUN);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    let messages: Vec<Value> = out.iter().map(|l| json(l)).collect();
    let expected: Vec<(u64, &str)> = vec![(1, "hello"), (2, "a"), (3, "b")];
    assert_eq!(messages.len(), 3, "{out:?}");
    for (m, (offset, payload)) in messages.iter().zip(expected) {
        assert_eq!(m["event"], "message");
        assert_eq!(m["channel"], "news");
        assert_eq!(m["epoch"], epoch.as_str());
        assert_eq!(m["offset"], offset);
        assert_eq!(m["payload"], payload);
    }
}

#[test]
fn plain_sub_prints_payload_lines_and_numbered_pub_paces_itself() {
    let server = pubsub_server(&[]);
    let addr = server.addr.to_string();
    let sub = CliProcess::spawn(&["sub", &addr, "a", "b", "--count", "4", "--json"]);
    sub.lines_until("\"event\":\"subscribed\",\"channel\":\"b\"", RUN);
    let run = cli_run(&["pub", &addr, "a", "x"], None, RUN);
    assert_eq!(
        (run.code(), run.stdout.as_str()),
        (0, ""),
        "silent without --json"
    );
    let numbered = cli_run(
        &["pub", &addr, "b", "--count", "3", "--rate", "20", "--json"],
        None,
        RUN,
    );
    assert_eq!(numbered.code(), 0, "{numbered:?}");
    let (out, status, _) = sub.finish(RUN);
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let pairs: Vec<(String, String)> = out
        .iter()
        .map(|l| json(l))
        .filter(|v| v["event"] == "message")
        .map(|v| (v["channel"].to_string(), v["payload"].to_string()))
        .collect();
    let expected: Vec<(String, String)> =
        [("a", "x"), ("b", "seq:1"), ("b", "seq:2"), ("b", "seq:3")]
            .iter()
            .map(|(c, p)| (format!("{c:?}"), format!("{p:?}")))
            .collect();
    assert_eq!(pairs, expected);
    // A plain subscriber, from the start of b's stream: the payloads, a line each.
    let epoch = json(numbered.stdout.lines().next().expect("an ack"))["epoch"]
        .as_str()
        .expect("epoch")
        .to_string();
    let from = format!("{epoch}:0");
    let plain = cli_run(
        &["sub", &addr, "b", "--from", &from, "--count", "3"],
        None,
        RUN,
    );
    assert_eq!(plain.code(), 0, "{plain:?}");
    assert_eq!(plain.stdout, "seq:1\nseq:2\nseq:3\n");
}

#[test]
fn a_payload_that_is_not_utf8_comes_as_base64() {
    let server = pubsub_server(&[]);
    let addr = server.addr.to_string();
    let sub = subscriber(&["sub", &addr, "bin", "--json", "--count", "1"]);
    let run = cli_run(
        &["pub", &addr, "bin"],
        Some(&[0xff, 0xfe, 0x00, b'\n']),
        RUN,
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let (out, _, _) = sub.finish(RUN);
    let message = json(&out[0]);
    assert_eq!(message["payload_b64"], "//4A");
    assert!(message.get("payload").is_none());
}

/// --from: the server replays what follows the position, or says why not.
#[test]
fn from_recovers_inside_the_history_and_reports_outside_it() {
    let server = pubsub_server(&[]);
    let addr = server.addr.to_string();
    let run = cli_run(&["pub", &addr, "h", "--count", "5", "--json"], None, RUN);
    assert_eq!(run.code(), 0, "{run:?}");
    let epoch = json(run.stdout.lines().next().expect("an ack"))["epoch"]
        .as_str()
        .expect("epoch")
        .to_string();
    let from = format!("{epoch}:2");
    let sub = cli_run(
        &["sub", &addr, "h", "--json", "--from", &from, "--count", "3"],
        None,
        RUN,
    );
    assert_eq!(sub.code(), 0, "{sub:?}");
    let lines: Vec<Value> = sub.stdout.lines().map(json).collect();
    let subscribed = lines
        .iter()
        .find(|l| l["event"] == "subscribed")
        .expect("subscribed");
    assert_eq!(
        (
            subscribed["recovered"].clone(),
            subscribed["replayed"].clone()
        ),
        (true.into(), 3.into())
    );
    let payloads: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| l["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["seq:3", "seq:4", "seq:5"]);
    let elsewhere = cli_run(
        &[
            "sub",
            &addr,
            "h",
            "--json",
            "--from",
            "1:2",
            "--timeout-s",
            "1",
        ],
        None,
        RUN,
    );
    assert_eq!(elsewhere.code(), 0, "{elsewhere:?}");
    let failed = elsewhere
        .stdout
        .lines()
        .map(json)
        .find(|l| l["event"] == "recovery_failed")
        .expect("recovery_failed");
    assert_eq!(failed["reason"], "EPOCH_CHANGED");
    assert_eq!(failed["old_epoch"], "0000000000000001");
    assert_eq!(failed["epoch"], epoch.as_str());
    assert_eq!(failed["offset"], 5);
}

#[test]
fn sub_timeout_is_success_without_count_and_failure_with_it() {
    let server = pubsub_server(&[]);
    let addr = server.addr.to_string();
    let quiet = cli_run(&["sub", &addr, "q", "--timeout-s", "0.3"], None, RUN);
    assert_eq!((quiet.code(), quiet.stdout.as_str()), (0, ""), "{quiet:?}");
    let short = cli_run(
        &["sub", &addr, "q", "--timeout-s", "0.3", "--count", "5"],
        None,
        RUN,
    );
    assert_eq!(short.code(), 1, "{short:?}");
    assert!(
        short.stderr.contains("timeout: 0 of 5 messages arrived"),
        "{}",
        short.stderr
    );
}

#[test]
fn ping_prints_the_round_trip() {
    let server = pubsub_server(&[]);
    let addr = server.addr.to_string();
    let run = cli_run(&["ping", &addr], None, RUN);
    assert_eq!(run.code(), 0, "{run:?}");
    let text = run.stdout.trim();
    let ms: f64 = text
        .strip_prefix("rtt ")
        .and_then(|t| t.strip_suffix(" ms"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not `rtt X ms`: {text:?}"));
    assert!(ms >= 0.0);
    let run = cli_run(&["ping", &addr, "--json"], None, RUN);
    assert!(json(run.stdout.trim())["rtt_us"].is_u64(), "{run:?}");
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let table: &[(&[&str], &str)] = &[
        (&["sub", "127.0.0.1:1", "c", "--bogus"], "--bogus"),
        (&["sub", "127.0.0.1:1", "c", "--count", "x"], "--count"),
        (&["sub", "127.0.0.1:1", "c", "--from", "zz:1"], "--from"),
        (
            &["sub", "127.0.0.1:1", "c", "--timeout-s", "-2"],
            "--timeout-s",
        ),
        (&["sub", "nowhere", "c"], "ADDR"),
        (&["pub", "127.0.0.1:1", "c", "--rate", "3"], "--rate"),
        (
            &["pub", "127.0.0.1:1", "c", "--heartbeat-ms", "soon"],
            "--heartbeat-ms",
        ),
        (&["ping", "127.0.0.1:1", "--tls-ca", "ca.pem"], "--tls-ca"),
        (
            &["ping", "127.0.0.1:1", "--token-file", "/nonexistent/token"],
            "--token-file",
        ),
        (
            &[
                "ping",
                "127.0.0.1:1",
                "--tls",
                "--tls-ca",
                "/nonexistent/ca.pem",
            ],
            "/nonexistent/ca.pem",
        ),
        (&["frob"], "frob"),
        (&[], "subcommand"),
    ];
    for (args, needle) in table {
        let run = cli_run(args, None, RUN);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(needle),
            "{args:?}: {needle:?} not in {:?}",
            run.stderr
        );
        assert!(run.stderr.starts_with("tether-cli: "), "{:?}", run.stderr);
    }
    for sub in ["sub", "pub", "ping"] {
        let run = cli_run(&[sub, "--help"], None, RUN);
        assert_eq!(run.code(), 0);
        assert!(
            run.stdout.contains(&format!("usage: tether-cli {sub}")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn no_server_exits_1() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let addr = dead.to_string();
    for args in [
        vec!["ping", &addr],
        vec!["sub", &addr, "c"],
        vec!["pub", &addr, "c", "x"],
    ] {
        let run = cli_run(&args, None, RUN);
        assert_eq!(run.code(), 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    }
}

/// A publish the server cannot take (above its --max-message) is refused
/// before sending; the others still go, and the exit status says it.
#[test]
fn a_publish_above_max_message_fails_the_run() {
    let server = pubsub_server(&["--max-message", "100"]);
    let addr = server.addr.to_string();
    let input = format!("ok\n{}\nalso ok\n", "x".repeat(200));
    let run = cli_run(&["pub", &addr, "c", "--json"], Some(input.as_bytes()), RUN);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("publish #2 on \"c\""), "{}", run.stderr);
    assert!(
        run.stderr.contains("above the server's max_message 100"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 of 3 publishes failed"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout.lines().count(), 2, "both others acknowledged");
}

#[test]
fn token_file_and_tls() {
    let token = TempFile::new("token", b"s3cret\n");
    let pki = TestPki::new();
    let mut args: Vec<String> = vec![
        "--app".into(),
        "pubsub".into(),
        "--auth-token-file".into(),
        token.arg().into(),
    ];
    args.extend(TestPki::server_args(&pki.main));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let tls_addr = server.tls_addr.expect("TLS listener").to_string();
    let ca = common::tls::path_arg(&pki.main.ca);
    let secure = ["--tls", "--tls-ca", &ca, "--token-file", token.arg()];
    let mut sub_args = vec!["sub", &tls_addr, "t", "--json", "--count", "1"];
    sub_args.extend_from_slice(&secure);
    let sub = subscriber(&sub_args);
    let mut pub_args = vec!["pub", &tls_addr, "t", "over tls"];
    pub_args.extend_from_slice(&secure);
    let run = cli_run(&pub_args, None, RUN);
    assert_eq!(run.code(), 0, "{run:?}");
    let (out, status, _) = sub.finish(RUN);
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert_eq!(json(&out[0])["payload"], "over tls");
    // Without the token: refused for good, exit 1.
    let run = cli_run(&["ping", &tls_addr, "--tls", "--tls-ca", &ca], None, RUN);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("UNAUTHORIZED"), "{}", run.stderr);
}

// ----- a scripted v2 server, for what the bundled one never answers -----

/// Serves one connection: WELCOME v2, then for each PUBLISH the next
/// answer of `answers` (`None`: cut the connection there).
fn scripted(answers: Vec<Option<Status>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(RUN)).expect("timeout");
        let mut decoder = FrameDecoder::new(u16::MAX as usize);
        let mut answers = answers.into_iter();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = sock.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            let mut input = &buf[..n];
            while let Ok(Some(frame)) = decoder.next_frame(&mut input) {
                let reply = match frame.kind {
                    FrameType::Hello => {
                        let hello = Hello::decode(&frame.payload).expect("HELLO");
                        assert_eq!(hello.version, 2);
                        Welcome {
                            version: 2,
                            resumed: false,
                            lost: false,
                            heartbeat_ms: 30_000,
                            idle_timeout_ms: 90_000,
                            max_frame: 65_535,
                            max_message: 1 << 20,
                            session: SessionId([1; 16]),
                        }
                        .encode_frame()
                    }
                    FrameType::Data => {
                        let Ok(ClientOp::Publish { request_id, .. }) =
                            parse_client_op(&frame.payload)
                        else {
                            panic!("only PUBLISH expected");
                        };
                        match answers.next().flatten() {
                            Some(status) => {
                                let ack = if status == Status::Ok {
                                    PublishAck {
                                        request_id,
                                        status,
                                        epoch: 7,
                                        offset: 1,
                                    }
                                } else {
                                    PublishAck::refused(request_id, status)
                                };
                                encode_message(&ServerMsg::PublishAck(ack).encode(), 65_535)
                            }
                            None => return, // cut: the outcome is unknown
                        }
                    }
                    _ => Bytes::new(),
                };
                if sock.write_all(&reply).is_err() {
                    return;
                }
            }
        }
    });
    addr
}

#[test]
fn a_refused_publish_names_the_status_and_fails_the_run() {
    let addr = scripted(vec![Some(Status::Ok), Some(Status::NotAllowed)]).to_string();
    let run = cli_run(&["pub", &addr, "c", "--json"], Some(b"one\ntwo\n"), RUN);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("publish #2 on \"c\": refused: NOT_ALLOWED"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout.lines().count(), 1);
}

#[test]
fn an_unknown_outcome_fails_the_run() {
    let addr = scripted(vec![None]).to_string();
    let run = cli_run(&["pub", &addr, "c", "lost?"], None, RUN);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr.contains("publish #1 on \"c\": outcome unknown"),
        "{}",
        run.stderr
    );
}
