//! tether-load's fanout mode against the real server, in both protocols:
//! every publication reaches every subscriber, v2 subscribers all have their
//! SUBSCRIBE_REPLY, and a server that cannot serve the run is named.

mod common;

use common::{json_count, run_tether_load, Server};

/// Runs a short fanout (20 subscribers, 200 publishes/s, 0.5 s) against `server`.
fn fanout(server: &Server, extra: &[&str]) -> (Option<i32>, String, String) {
    let addr = server.addr.to_string();
    let mut args = vec![
        "fanout",
        "--addr",
        &addr,
        "--connections",
        "20",
        "--rate",
        "200",
        "--duration",
        "0.5",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_tether_load(&args)
}

#[test]
fn fanout_delivers_every_publication_in_both_protocols() {
    let mut server = Server::start(&["--app", "pubsub"]);
    for protocol in ["1", "2"] {
        let (code, out, err) = fanout(&server, &["--protocol", protocol]);
        assert_eq!(code, Some(0), "protocol {protocol}: {out}\n{err}");
        assert!(out.contains("\"ok\":true"), "protocol {protocol}: {out}");
        let expected = json_count(&out, "deliveries_expected");
        assert!(expected >= 20, "protocol {protocol}: {out}");
        assert_eq!(
            json_count(&out, "delivered"),
            expected,
            "protocol {protocol}: {out}"
        );
        assert_eq!(json_count(&out, "publishes_skipped"), 0, "{out}");
        if protocol == "2" {
            assert_eq!(json_count(&out, "subscribed"), 20, "{out}");
        } else {
            assert!(!out.contains("\"subscribed\""), "{out}");
        }
    }
    server.signal(libc::SIGTERM);
    server.expect_clean_exit("SIGTERM after the fanout runs");
}

#[test]
fn fanout_names_a_server_that_cannot_serve_it() {
    let echo = Server::start(&["--app", "echo"]);
    for protocol in ["1", "2"] {
        let (code, out, err) = fanout(&echo, &["--protocol", protocol]);
        assert_eq!(code, Some(1), "protocol {protocol}: {out}\n{err}");
        assert!(
            err.contains("it runs the echo app (start it with --app pubsub)"),
            "protocol {protocol}: {err}"
        );
    }
    // The pub/sub server's deliveries are M, not the P a floor forwards:
    // --verbatim-deliveries still takes them.
    let pubsub = Server::start(&["--app", "pubsub"]);
    let (code, out, err) = fanout(&pubsub, &["--verbatim-deliveries"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
}
