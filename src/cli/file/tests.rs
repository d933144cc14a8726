use super::*;
use crate::cli::{parse_args, Command};
use std::path::PathBuf;

/// A file in a fresh directory under the system's temporary directory.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tether-cli-file-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

fn parse(args: &[&str]) -> Result<Command, CliError> {
    parse_args(args.iter().map(|s| s.to_string()))
}

fn run(args: &[&str]) -> Config {
    match parse(args) {
        Ok(Command::Run(c)) | Ok(Command::Check(c)) => *c,
        other => panic!("{args:?}: {other:?}"),
    }
}

/// The example file at the repository root.
const EXAMPLE: &str = include_str!("../../../tether.toml");

#[test]
fn every_usage_flag_is_a_key_that_renders() {
    let flags = setting_flags();
    assert!(flags.len() >= 30, "{flags:?}");
    for (flag, description) in &flags {
        assert!(!description.is_empty(), "{flag} has no description");
        assert_ne!(
            value_of(&Config::default(), flag),
            Rendered::Unknown,
            "{flag}: add it to cli::file::value_of"
        );
    }
    assert!(flags.iter().any(|(f, _)| *f == "--log-level"));
    assert!(!flags
        .iter()
        .any(|(f, _)| *f == "--config" || *f == "--help"));
}

#[test]
fn file_values_apply_and_flags_override() {
    let path = temp_file(
        "t.toml",
        "# a comment\nheartbeat-ms = 5000\nmiss = 4\napp = \"echo\"\nlisten = \"none\"\n\
         tls-listen = [\"127.0.0.1:7601\", \"127.0.0.1:7602\"]\ntls-cert = \"/c\"\n\
         tls-key = \"/k\"\ntls13-only = true\nlog-level = \"debug\"\nrate-limit = 0x10\n",
    );
    let p = path.to_str().expect("utf-8");
    let c = run(&["--config", p]);
    assert_eq!((c.heartbeat_ms, c.miss, c.rate_limit), (5000, 4, 16));
    assert_eq!(c.app, crate::config::AppKind::Echo);
    assert_eq!(c.listen, None);
    assert_eq!(c.tls_listen.len(), 2);
    assert_eq!(c.log_level, Some(log::LevelFilter::Debug));
    let tls = c.tls.expect("tls");
    assert_eq!(tls.versions, TlsVersions::Tls13Only);
    // Flags override, wherever they stand; a repeatable flag replaces the file's list.
    let c = run(&[
        "--miss",
        "2",
        "--config",
        p,
        "--tls-listen",
        "127.0.0.1:7609",
        "--listen=127.0.0.1:0",
    ]);
    assert_eq!((c.heartbeat_ms, c.miss), (5000, 2));
    assert_eq!(c.tls_listen, ["127.0.0.1:7609".parse().expect("addr")]);
    assert!(c.listen.is_some());
    assert!(matches!(
        parse(&["--check-config", p]),
        Ok(Command::Check(_))
    ));
    assert_eq!(parse(&["--config", p, "--help"]), Ok(Command::Help));
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        ("miss = 2\nbogus = 1\n", ":2: bogus: unknown key"),
        (
            "\n\nmiss = \"3\"\n",
            ":3: miss: expected a number, got a string",
        ),
        (
            "miss = -1\n",
            ":1: miss: expected a non-negative whole number in range, got \"-1\"",
        ),
        (
            "tls13-only = 1\n",
            ":1: tls13-only: expected true or false, got an integer",
        ),
        (
            "app = \"chat\"\n",
            ":1: app: expected echo or pubsub, got \"chat\"",
        ),
        (
            "listen = [\"127.0.0.1:1\"]\n",
            ":1: listen: expected a string, got an array",
        ),
        (
            "tls-listen = \"127.0.0.1:1\"\n",
            ":1: tls-listen: expected an array of strings, got a string",
        ),
        (
            "tls-listen = [1]\n",
            ":1: tls-listen: expected a string, got an integer",
        ),
        ("[server]\nmiss = 3\n", ":1: server: unknown key"),
        ("config = \"x\"\n", ":1: config: unknown key"),
        ("miss = \n", ":1: "),
        ("\ntick-ms = 0\n", ":2: tick-ms: must be at least 1"),
        (
            "min-heartbeat-ms = 5000\nmax-heartbeat-ms = 1000\n",
            ":1: min-heartbeat-ms: 5000 is above max-heartbeat-ms 1000",
        ),
        (
            "tls-listen = [\"127.0.0.1:1\"]\n",
            ".toml: tls-cert: needed by --tls-listen",
        ),
    ];
    for (text, expected) in cases {
        let path = temp_file("bad.toml", text);
        let p = path.to_str().expect("utf-8");
        let err = parse(&["--config", p]).expect_err(text);
        assert!(
            err.0.starts_with(p) && err.0.contains(expected),
            "{text:?}: {err} should contain {expected}"
        );
    }
    // A validation error about a key the file does not set still names the file.
    let path = temp_file("t.toml", "min-heartbeat-ms = 50000\n");
    let p = path.to_str().expect("utf-8");
    let err = parse(&["--config", p]).expect_err("outside");
    assert_eq!(
        err.0,
        format!(
            "{p}: heartbeat-ms: 30000 is outside [min-heartbeat-ms 50000, max-heartbeat-ms 600000]"
        )
    );
    // A flag given on the command line is named as a flag.
    let err = parse(&["--config", p, "--heartbeat-ms", "10"]).expect_err("outside");
    assert!(err.0.starts_with("--heartbeat-ms: 10 is outside"), "{err}");
    let err = parse(&["--config", "/nonexistent/t.toml"]).expect_err("missing");
    assert!(
        err.0.starts_with("/nonexistent/t.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn the_rendered_configuration_reads_back_the_same() {
    let path = temp_file(
        "t.toml",
        "heartbeat-ms = 5000\napp = \"echo\"\ntls-listen = [\"127.0.0.1:7601\"]\n\
         tls-cert = \"/c\"\ntls-key = \"/k\"\ntls-client-ca = \"/ca\"\nmetrics = \"127.0.0.1:9\"\n\
         auth-token-file = \"/t\"\nlog-level = \"warn\"\nlisten = \"none\"\n",
    );
    for args in [
        vec!["--config", path.to_str().expect("utf-8")],
        vec!["--rate-limit", "5", "--engine", "redis://127.0.0.1:6379"],
        vec![],
    ] {
        let config = run(&args);
        let rendered = temp_file("back.toml", &render(&config, false));
        let back = run(&["--config", rendered.to_str().expect("utf-8")]);
        assert_eq!(back, config, "{args:?}");
    }
}

#[test]
fn the_example_file_lists_every_key_at_its_default() {
    let uncommented: String = EXAMPLE
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("# ")?;
            let (key, _) = rest.split_once(" = ")?;
            setting_flags()
                .iter()
                .any(|(flag, _)| flag[2..] == *key)
                .then(|| format!("{rest}\n"))
        })
        .collect();
    let path = temp_file("example.toml", &uncommented);
    assert_eq!(
        run(&["--config", path.to_str().expect("utf-8")]),
        Config::default()
    );
    for (flag, _) in setting_flags() {
        let key = &flag[2..];
        assert!(
            EXAMPLE.contains(&format!("\n# {key} = "))
                || EXAMPLE.contains(&format!("\n# {key}: not set")),
            "tether.toml lacks {key}"
        );
    }
    // The example as a whole is a valid (empty) file.
    let path = temp_file("whole.toml", EXAMPLE);
    assert_eq!(
        run(&["--config", path.to_str().expect("utf-8")]),
        Config::default()
    );
}

#[test]
fn the_example_file_is_the_generated_one() {
    let generated = example();
    if std::env::var_os("TETHER_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tether.toml");
        std::fs::write(path, &generated).expect("write tether.toml");
        return;
    }
    assert!(
        EXAMPLE == generated,
        "tether.toml is stale: TETHER_BLESS=1 cargo test --lib cli::file"
    );
}

#[test]
fn with_inherited_sockets_only_a_listen_key_binds_the_plain_listener() {
    let inherited = crate::cli::Inherited { plain: 1, tls: 0 };
    let listen_of = |text: &str| {
        let path = temp_file("inherited.toml", text);
        let args = ["--config", path.to_str().expect("utf-8")];
        match crate::cli::parse_args_with(args, inherited) {
            Ok(Command::Run(config)) => config.listen,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(listen_of("miss = 4\n"), None, "the default is not bound");
    assert_eq!(
        listen_of("listen = \"127.0.0.1:7609\"\n"),
        Some("127.0.0.1:7609".parse().expect("an address"))
    );
}
