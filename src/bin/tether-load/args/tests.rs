//! The command line's parsing: flags, defaults and the exact error messages.

use super::*;

fn parse(line: &str) -> Result<Command, CliError> {
    parse_args(line.split_whitespace().map(String::from))
}

fn run(line: &str) -> Args {
    match parse(line) {
        Ok(Command::Run(a)) => *a,
        other => panic!("{line:?} gave {other:?}"),
    }
}

#[test]
fn defaults_are_pingpong_against_the_default_port() {
    let a = run("");
    assert_eq!(a, Args::default());
    assert_eq!(a.mode, Mode::PingPong);
    assert_eq!(a.addr.to_string(), "127.0.0.1:7600");
    assert_eq!(a.connect_concurrency, 256);
}

#[test]
fn every_flag_is_read() {
    let a = run(
        "echo --addr 127.0.0.1:9 --connections 5 --duration 2.5 --warmup 1 \
         --depth 3 --payload 0 --size 100 --heartbeat-ms 500 --rate 7 --channel c --protocol 2 \
         --sources 127.0.0.2-127.0.0.4 --connect-concurrency 9 --token tk \
         --server-pid 42 --max-error-pct 0.5 --json --report out/r1 --tls --tls-ca ca.pem \
         --tls-server-name localhost --tls-cert c.pem --tls-key c.key",
    );
    assert_eq!(a.mode, Mode::Echo);
    assert_eq!(a.addr.port(), 9);
    assert_eq!(a.connections, 5);
    assert_eq!(a.duration_secs, 2.5);
    assert_eq!(a.warmup_secs, 1.0);
    assert_eq!(a.depth, 3);
    assert_eq!(a.payload, 0);
    assert_eq!(a.size, 100);
    assert_eq!(a.heartbeat_ms, 500);
    assert_eq!(a.rate, 7.0);
    assert_eq!(a.channel, "c");
    assert_eq!(a.protocol, 2);
    assert!(!a.verbatim_deliveries);
    assert!(run("fanout --verbatim-deliveries").verbatim_deliveries);
    assert_eq!(a.publish_addr, None);
    assert_eq!(
        run("fanout --publish-addr 127.0.0.1:7601").publish_addr,
        Some("127.0.0.1:7601".parse().expect("an address"))
    );
    assert_eq!(run("fanout --protocol 1").protocol, 1);
    assert_eq!(a.sources.len(), 3);
    assert_eq!(a.connect_concurrency, 9);
    assert_eq!(a.token, b"tk");
    assert_eq!(a.server_pid, Some(42));
    assert_eq!(a.max_error_pct, 0.5);
    assert!(a.json);
    assert_eq!(a.report, Some(PathBuf::from("out/r1")));
    assert!(a.tls.enabled && !a.tls.insecure);
    assert_eq!(a.tls.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(a.tls.server_name.as_deref(), Some("localhost"));
    assert_eq!(a.tls.cert.as_deref(), Some(std::path::Path::new("c.pem")));
    assert_eq!(a.tls.key.as_deref(), Some(std::path::Path::new("c.key")));
    assert!(run("churn --tls --tls-insecure").tls.insecure);
}

#[test]
fn help_lists_the_tls_flags() {
    let text = usage();
    for flag in [
        "--tls ",
        "--tls-ca FILE",
        "--tls-insecure",
        "--tls-server-name NAME",
        "--tls-cert FILE",
        "--tls-key FILE",
        "--connect-concurrency",
        "--protocol V",
        "--verbatim-deliveries",
        "Every run is bounded",
    ] {
        assert!(text.contains(flag), "{flag} missing from the help");
    }
}

#[test]
fn inline_values_and_mode_flag() {
    let a = run("--mode=idle --connections=10000 --heartbeat-ms=2000");
    assert_eq!(a.mode, Mode::Idle);
    assert_eq!(a.connections, 10_000);
    assert_eq!(a.heartbeat_ms, 2000);
    for m in ["pingpong", "echo", "idle", "churn", "fanout", "storm"] {
        assert_eq!(run(m).mode.name(), m);
    }
}

#[test]
fn help_wins() {
    assert_eq!(parse("idle --help"), Ok(Command::Help));
    assert_eq!(parse("-h"), Ok(Command::Help));
}

#[test]
fn errors_name_the_flag() {
    let cases = [
        ("--connections", "--connections"),
        ("--connections x", "--connections"),
        ("--connections 0", "--connections"),
        ("--addr nowhere", "--addr"),
        ("--payload 65", "--payload"),
        ("--size 15", "--size"),
        ("--depth 0", "--depth"),
        ("--rate 0", "--rate"),
        ("--duration -1", "--duration"),
        ("--duration 0", "--duration"),
        ("--sources 127.0.0.9-127.0.0.1", "--sources"),
        ("--sources bogus", "--sources"),
        ("--sources ::1", "--sources"),
        ("--frobnicate 1", "--frobnicate"),
        ("sprint", "sprint"),
        ("echo idle", "idle"),
    ];
    for (line, needle) in cases {
        match parse(line) {
            Err(CliError(msg)) => assert!(msg.contains(needle), "{line:?}: {msg}"),
            other => panic!("{line:?} gave {other:?}"),
        }
    }
}

/// Today's exact messages, pinned so that a change of parser cannot alter them.
#[test]
fn exact_error_messages() {
    let table = [
        (
            "--connections x",
            "--connections: expected a number, got \"x\"",
        ),
        ("--rate=fast", "--rate: expected a number, got \"fast\""),
        ("--connections", "--connections: missing value"),
        ("--json --token", "--token: missing value"),
        ("--report", "--report: missing value"),
        ("--report=", "--report: expected a directory"),
        ("--connections 0", "--connections: must be at least 1"),
        ("--connections 1000001", "--connections: at most 1000000"),
        (
            "--depth --json",
            "--depth: expected a number, got \"--json\"",
        ),
        (
            "--addr nowhere",
            "--addr: expected IP:PORT, got \"nowhere\"",
        ),
        ("--duration x", "--duration: expected a number, got \"x\""),
        (
            "--duration -1",
            "--duration: expected 0..=86400 seconds, got \"-1\"",
        ),
        (
            "--warmup=inf",
            "--warmup: expected 0..=86400 seconds, got \"inf\"",
        ),
        ("--duration 0", "--duration: must be above 0"),
        ("--payload 65", "--payload: a PING carries at most 64 bytes"),
        ("--channel=", "--channel: expected 1..=255 bytes"),
        ("--protocol 3", "--protocol: expected 1 or 2"),
        ("--protocol 0", "--protocol: expected 1 or 2"),
        ("--protocol 258", "--protocol: expected 1 or 2"),
        ("--protocol v2", "--protocol: expected a number, got \"v2\""),
        (
            "echo --publish-addr 127.0.0.1:1",
            "--publish-addr: only in fanout",
        ),
        (
            "echo --verbatim-deliveries",
            "--verbatim-deliveries: only in fanout with --protocol 1",
        ),
        (
            "fanout --protocol 2 --verbatim-deliveries",
            "--verbatim-deliveries: only in fanout with --protocol 1",
        ),
        (
            "--max-error-pct -1",
            "--max-error-pct: expected a non-negative number",
        ),
        (
            "--frobnicate 1",
            "unknown flag \"--frobnicate\" (see --help)",
        ),
        ("--frob=1", "unknown flag \"--frob\" (see --help)"),
        ("--", "unknown flag \"--\" (see --help)"),
        ("-- echo", "unknown flag \"--\" (see --help)"),
        ("--=x", "unknown flag \"--\" (see --help)"),
        ("-", "unknown flag \"-\" (see --help)"),
        ("-x", "unknown flag \"-x\" (see --help)"),
        ("-hx", "unknown flag \"-hx\" (see --help)"),
        ("-h=1", "unknown flag \"-h=1\" (see --help)"),
        ("sprint", "unknown mode \"sprint\" (see --help)"),
        ("a=b", "unknown mode \"a=b\" (see --help)"),
        ("echo sprint", "unknown mode \"sprint\" (see --help)"),
        ("echo idle", "a second mode \"idle\""),
        ("--mode idle echo", "a second mode \"echo\""),
        ("--mode sprint", "--mode: unknown mode \"sprint\""),
        (
            "--connections x --help",
            "--connections: expected a number, got \"x\"",
        ),
        ("--tls-ca ca.pem", "--tls-ca: only with --tls"),
        ("--tls --tls-cert c.pem", "--tls-cert: needs --tls-key"),
        (
            "--tls --tls-insecure --tls-ca ca.pem",
            "--tls-insecure: not with --tls-ca (one names whom to trust, the other trusts anyone)",
        ),
        ("--tls --tls-key", "--tls-key: missing value"),
    ];
    for (line, message) in table {
        assert_eq!(parse(line), Err(CliError(message.to_string())), "{line:?}");
    }
}

/// Today's behaviour for repeated flags, `--flag=value` and `--help`
/// next to other flags, pinned like the messages.
#[test]
fn repeats_inline_values_and_help_order() {
    let a = run("--depth 2 --depth=3 echo --mode idle --json=no");
    assert_eq!((a.depth, a.mode, a.json), (3, Mode::Idle, true));
    assert_eq!(parse("--help --connections x"), Ok(Command::Help));
    assert_eq!(parse("--help=1"), Ok(Command::Help));
    assert_eq!(parse("--connections 5 -h"), Ok(Command::Help));
}

#[test]
fn sources_ranges_and_lists() {
    let r = parse_sources("127.0.0.2-127.0.0.40").expect("range");
    assert_eq!(r.len(), 39);
    assert_eq!(r[0].to_string(), "127.0.0.2");
    assert_eq!(r[38].to_string(), "127.0.0.40");
    let l = parse_sources("127.0.0.1, 127.0.0.5").expect("list");
    assert_eq!(l.len(), 2);
    let wide = parse_sources("127.0.0.255-127.0.1.1").expect("crosses an octet");
    assert_eq!(wide.len(), 3);
    assert!(parse_sources("10.0.0.0-10.1.0.0").is_err());
    assert!(parse_sources("").is_err());
}

#[test]
fn storm_has_its_own_defaults_unless_given() {
    let a = run("storm");
    assert_eq!(a.mode, Mode::Storm);
    assert_eq!(
        (a.connections, a.storm, a.heartbeat_ms),
        (1_000, 10_000, 100)
    );
    assert_eq!(a.warmup_secs, 2.0);
    assert_eq!(a.sources.len(), 4);
    assert_eq!(a.sources[3].to_string(), "127.0.0.4");
    let b = run(
        "--mode=storm --connections 50 --storm=500 --heartbeat-ms 200 --warmup 0 \
         --sources 127.0.0.9",
    );
    assert_eq!((b.connections, b.storm, b.heartbeat_ms), (50, 500, 200));
    assert_eq!(b.warmup_secs, 0.0);
    assert_eq!(b.sources.len(), 1);
    // Another server address: the kernel picks the source.
    assert!(run("storm --addr 127.0.0.2:7600").sources.is_empty());
    // Other modes keep the common defaults.
    assert_eq!(run("idle").connections, 100);
}

#[test]
fn storm_sockets_stay_under_the_file_limit() {
    assert_eq!(run("storm --connections 9000 --storm 10000").storm, 10_000);
    let over = "--storm: --connections plus --storm must be at most 19000 (the open-file limit)";
    assert_eq!(
        parse("storm --connections 9001 --storm 10000"),
        Err(CliError(over.to_string()))
    );
    assert_eq!(
        parse("storm --storm 0"),
        Err(CliError("--storm: must be at least 1".to_string()))
    );
    assert_eq!(
        parse("storm --storm x"),
        Err(CliError(
            "--storm: expected a number, got \"x\"".to_string()
        ))
    );
    // Without storm mode the flag is read but does nothing.
    assert_eq!(run("idle --storm 0").storm, 0);
}

#[test]
fn churn_may_have_zero_connections() {
    assert_eq!(run("churn --connections 0").connections, 0);
}
