use super::*;

fn parse(line: &str) -> Result<Command, CliError> {
    parse_args(line.split_whitespace().map(String::from))
}

fn sub(line: &str) -> SubArgs {
    match parse(line) {
        Ok(Command::Sub(a)) => a,
        other => panic!("{line:?} gave {other:?}"),
    }
}

fn publish(line: &str) -> PubArgs {
    match parse(line) {
        Ok(Command::Pub(a)) => a,
        other => panic!("{line:?} gave {other:?}"),
    }
}

#[test]
fn sub_reads_addresses_channels_and_flags() {
    let a = sub(
        "sub 127.0.0.1:7600,localhost:7601 news sport --json --count 5 --timeout-s 2.5 \
         --from 0123456789abcdef:41 --heartbeat-ms 500 --token-file t.txt --tls --tls-ca ca.pem",
    );
    assert_eq!(a.common.addrs, ["127.0.0.1:7600", "localhost:7601"]);
    assert_eq!(a.channels, ["news", "sport"]);
    assert_eq!((a.count, a.timeout_s), (Some(5), Some(2.5)));
    assert_eq!(
        a.from,
        Some(Position {
            epoch: 0x0123_4567_89ab_cdef,
            offset: 41
        })
    );
    assert!(a.common.json && a.common.tls.enabled);
    assert_eq!(a.common.heartbeat_ms, 500);
    assert_eq!(a.common.token_file, Some(PathBuf::from("t.txt")));
    let plain = sub("sub [::1]:7600 c");
    assert_eq!(
        plain.common,
        Common {
            addrs: vec!["[::1]:7600".into()],
            ..Common::default()
        }
    );
    assert_eq!(
        (plain.count, plain.timeout_s, plain.from),
        (None, None, None)
    );
}

#[test]
fn pub_takes_a_message_stdin_or_a_numbered_sequence() {
    assert_eq!(publish("pub h:1 news hi").source, Source::One("hi".into()));
    assert_eq!(publish("pub h:1 news").source, Source::Lines);
    assert_eq!(
        publish("pub h:1 news --count 10 --rate 2.5 --json").source,
        Source::Numbered {
            count: 10,
            rate: Some(2.5)
        }
    );
    assert_eq!(
        publish("pub h:1 news --count 3").source,
        Source::Numbered {
            count: 3,
            rate: None
        }
    );
}

#[test]
fn help_wins_per_subcommand() {
    for (line, needle) in [
        ("--help", "usage: tether-cli sub"),
        ("-h", "tether-cli ping ADDR"),
        ("sub --help", "--from EPOCH:OFFSET"),
        ("sub h:1 --help --count x", "--from EPOCH:OFFSET"),
        ("pub -h", "--rate R"),
        ("ping --help", "rtt"),
    ] {
        match parse(line) {
            Ok(Command::Help(text)) => {
                assert!(text.contains(needle), "{line:?}: {needle:?} missing");
                assert!(
                    text.contains("--tls-ca FILE"),
                    "{line:?}: TLS flags missing"
                );
                assert!(text.contains("--token-file FILE"), "{line:?}");
            }
            other => panic!("{line:?} gave {other:?}"),
        }
    }
}

#[test]
fn ping_takes_only_an_address() {
    assert!(matches!(parse("ping 127.0.0.1:1 --json"), Ok(Command::Ping(c)) if c.json));
}

/// Every message names the flag or the argument at fault.
#[test]
fn exact_error_messages() {
    let table = [
        ("", "missing subcommand: sub, pub or ping (see --help)"),
        ("subscribe", "unknown subcommand \"subscribe\": sub, pub or ping (see --help)"),
        ("--json sub", "unknown flag \"--json\" before the subcommand (see --help)"),
        ("sub", "missing ADDR (HOST:PORT[,HOST:PORT...])"),
        ("sub h:1", "missing CHANNEL"),
        ("sub nowhere c", "ADDR: expected HOST:PORT[,HOST:PORT...], got \"nowhere\""),
        ("sub h:1,:2 c", "ADDR: expected HOST:PORT[,HOST:PORT...], got \"h:1,:2\""),
        ("sub h:99999 c", "ADDR: expected HOST:PORT[,HOST:PORT...], got \"h:99999\""),
        ("sub h:1 c --bogus", "unknown flag \"--bogus\" (see tether-cli sub --help)"),
        ("sub h:1 c --count", "--count: missing value"),
        ("sub h:1 c --count 0", "--count: must be at least 1"),
        ("sub h:1 c --count x", "--count: expected a number, got \"x\""),
        ("sub h:1 c --timeout-s 0", "--timeout-s: must be above 0"),
        ("sub h:1 c --timeout-s -1", "--timeout-s: expected 0..=86400 seconds, got \"-1\""),
        (
            "sub h:1 c --from 0:5",
            "--from: expected EPOCH:OFFSET (EPOCH 16 hex digits, not 0; OFFSET decimal), got \"0:5\"",
        ),
        (
            "sub h:1 c --from 12",
            "--from: expected EPOCH:OFFSET (EPOCH 16 hex digits, not 0; OFFSET decimal), got \"12\"",
        ),
        (
            "sub h:1 c --from 0123456789abcdef0:1",
            "--from: expected EPOCH:OFFSET (EPOCH 16 hex digits, not 0; OFFSET decimal), got \"0123456789abcdef0:1\"",
        ),
        (
            "sub h:1 c --from +1:1",
            "--from: expected EPOCH:OFFSET (EPOCH 16 hex digits, not 0; OFFSET decimal), got \"+1:1\"",
        ),
        ("sub h:1 c --heartbeat-ms soon", "--heartbeat-ms: expected a number, got \"soon\""),
        ("sub h:1 c --tls-ca ca.pem", "--tls-ca: only with --tls"),
        ("pub h:1", "missing CHANNEL"),
        ("pub h:1 c a b", "one MESSAGE at most (quote it if it has spaces)"),
        ("pub h:1 c hi --count 3", "--count: not with a MESSAGE (it numbers its own)"),
        ("pub h:1 c --rate 5", "--rate: only with --count"),
        ("pub h:1 c --count 5 --rate 0", "--rate: expected a positive number up to 10000000, got \"0\""),
        ("pub h:1 c --count 5 --rate x", "--rate: expected a number, got \"x\""),
        ("pub h:1 c --from 1:1", "unknown flag \"--from\" (see tether-cli pub --help)"),
        ("ping h:1 extra", "ping: unexpected argument \"extra\""),
        ("ping h:1 --count 1", "unknown flag \"--count\" (see tether-cli ping --help)"),
    ];
    for (line, message) in table {
        assert_eq!(parse(line), Err(CliError(message.to_string())), "{line:?}");
    }
    let long = "x".repeat(256);
    assert_eq!(
        parse(&format!("sub h:1 {long}")),
        Err(CliError(format!(
            "CHANNEL: expected 1..=255 bytes, got 256 in {long:?}"
        )))
    );
}
