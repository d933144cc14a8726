//! The C ABI driven from Rust the way a C host would: plain functions as
//! callbacks, a `poll()` loop over `tether_fd`, and the misuse cases (NULL,
//! re-entry, stale ids) that must come back as codes, not crashes.

use super::callback::close_reason_code;
use super::*;
use crate::client::{Client, ClientConfig};
use crate::conn::CloseReason;
use std::ptr;
use std::time::Instant;

#[test]
fn config_default_is_the_rust_default_and_round_trips() {
    let mut c = std::mem::MaybeUninit::<tether_config_t>::uninit();
    // SAFETY: a writable config.
    assert_eq!(unsafe { tether_config_default(c.as_mut_ptr()) }, TETHER_OK);
    // SAFETY: just initialised by tether_config_default.
    let c = unsafe { c.assume_init() };
    assert_eq!(c, tether_config_t::from_config(&Config::default()));
    // SAFETY: the TLS path fields are NULL.
    assert_eq!(unsafe { c.to_config() }, Some(Config::default()));
    // SAFETY: NULL is allowed and reported.
    assert_eq!(
        unsafe { tether_config_default(ptr::null_mut()) },
        TETHER_ERR_NULL
    );
}

#[test]
fn tls_from_c_needs_a_certificate_and_key_and_reloads() {
    use crate::tls::tests::support::{KeyKind, Pki};
    let pki = Pki::new(KeyKind::EcdsaP256);
    let path =
        |p: &std::path::Path| std::ffi::CString::new(p.to_str().expect("utf-8")).expect("no NUL");
    let cert = path(&pki.server_files.cert_chain);
    let key = path(&pki.server_files.private_key);
    let addr = c"127.0.0.1:0";
    let mut c = tether_config_t::from_config(&Config::default());
    let mut t: *mut tether_t = ptr::null_mut();
    // SAFETY: valid pointers throughout; each handle made here is freed here.
    unsafe {
        // Plain handle: no TLS listener possible, no reload.
        assert_eq!(
            tether_new(&c, ptr::null(), ptr::null_mut(), &mut t),
            TETHER_OK
        );
        assert_eq!(
            tether_listen_tls(t, addr.as_ptr(), ptr::null_mut()),
            TETHER_ERR_INVALID
        );
        assert_eq!(tether_reload_tls(t), TETHER_ERR_INVALID);
        assert_eq!(tether_free(t), TETHER_OK);
        // A key without its certificate.
        c.tls_key_file = key.as_ptr();
        assert_eq!(
            tether_new(&c, ptr::null(), ptr::null_mut(), &mut t),
            TETHER_ERR_INVALID
        );
        assert!(t.is_null());
        // Both: a TLS listener, and a reload that works, then one that keeps the old files.
        c.tls_cert_file = cert.as_ptr();
        assert_eq!(
            tether_new(&c, ptr::null(), ptr::null_mut(), &mut t),
            TETHER_OK
        );
        let mut port = 0u16;
        assert_eq!(tether_listen_tls(t, addr.as_ptr(), &mut port), TETHER_OK);
        assert_ne!(port, 0);
        assert_eq!(tether_reload_tls(t), TETHER_OK);
        std::fs::write(&pki.server_files.private_key, b"not a key").expect("overwrite key");
        assert_eq!(tether_reload_tls(t), TETHER_ERR_INVALID);
        assert_eq!(tether_free(t), TETHER_OK);
        // A bad file at creation is refused.
        assert_eq!(
            tether_new(&c, ptr::null(), ptr::null_mut(), &mut t),
            TETHER_ERR_INVALID
        );
    }
}

#[test]
fn goaway_constants_match_the_protocol() {
    let ours = [
        TETHER_GOAWAY_NORMAL,
        TETHER_GOAWAY_PROTOCOL_ERROR,
        TETHER_GOAWAY_BAD_CHECKSUM,
        TETHER_GOAWAY_FRAME_TOO_LARGE,
        TETHER_GOAWAY_MESSAGE_TOO_LARGE,
        TETHER_GOAWAY_UNSUPPORTED_VERSION,
        TETHER_GOAWAY_UNAUTHORIZED,
        TETHER_GOAWAY_HANDSHAKE_TIMEOUT,
        TETHER_GOAWAY_IDLE_TIMEOUT,
        TETHER_GOAWAY_SLOW_CONSUMER,
        TETHER_GOAWAY_SERVER_FULL,
        TETHER_GOAWAY_SHUTTING_DOWN,
        TETHER_GOAWAY_RATE_LIMITED,
        TETHER_GOAWAY_SESSION_TAKEN_OVER,
        TETHER_GOAWAY_SERVER_BUSY,
    ];
    let wire: Vec<u16> = GoawayCode::ALL.iter().map(|c| c.as_u16()).collect();
    assert_eq!(ours.to_vec(), wire);
    assert_eq!(
        close_reason_code(CloseReason::Goaway(GoawayCode::IdleTimeout)),
        8
    );
    assert_eq!(
        close_reason_code(CloseReason::PeerGoaway(GoawayCode::Normal)),
        TETHER_CLOSE_BY_PEER
    );
}

#[test]
fn every_code_has_a_description() {
    for code in -10..=1 {
        // SAFETY: strerror returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(tether_strerror(code)) };
        assert!(!text.to_bytes().is_empty(), "code {code}");
    }
}

#[test]
fn null_and_bad_arguments_are_codes() {
    // SAFETY: every call below is allowed to get NULL and must report it.
    unsafe {
        assert_eq!(
            tether_new(ptr::null(), ptr::null(), ptr::null_mut(), ptr::null_mut()),
            TETHER_ERR_NULL
        );
        assert_eq!(tether_step(ptr::null_mut()), TETHER_ERR_NULL);
        assert_eq!(tether_run(ptr::null_mut()), TETHER_ERR_NULL);
        assert_eq!(tether_fd(ptr::null()), TETHER_ERR_NULL);
        assert_eq!(tether_timeout_ms(ptr::null_mut()), 0);
        assert_eq!(tether_stop(ptr::null()), TETHER_ERR_NULL);
        assert_eq!(tether_is_stopped(ptr::null()), TETHER_ERR_NULL);
        assert_eq!(tether_connection_count(ptr::null()), 0);
        assert_eq!(
            tether_send(ptr::null_mut(), 1, ptr::null(), 0),
            TETHER_ERR_NULL
        );
        assert_eq!(
            tether_close_conn(ptr::null_mut(), 1, 0, ptr::null()),
            TETHER_ERR_NULL
        );
        assert_eq!(
            tether_ctx_send(ptr::null_mut(), 1, b"x".as_ptr(), 1),
            TETHER_ERR_NULL
        );
        assert_eq!(
            tether_ctx_close(ptr::null_mut(), 1, 0, ptr::null()),
            TETHER_ERR_NULL
        );
        assert_eq!(tether_free(ptr::null_mut()), TETHER_OK);

        let bad = tether_config_t {
            miss: 0,
            ..tether_config_t::from_config(&Config::default())
        };
        let mut t = ptr::null_mut();
        assert_eq!(
            tether_new(&bad, ptr::null(), ptr::null_mut(), &mut t),
            TETHER_ERR_INVALID
        );
        assert!(t.is_null());

        assert_eq!(
            tether_new(ptr::null(), ptr::null(), ptr::null_mut(), &mut t),
            TETHER_OK
        );
        assert!(tether_fd(t) >= 0);
        assert_eq!(tether_timeout_ms(t), -1, "nothing to do, no deadline");
        assert_eq!(
            tether_listen(t, c"not an address".as_ptr(), ptr::null_mut()),
            TETHER_ERR_INVALID
        );
        assert_eq!(
            tether_listen(t, ptr::null(), ptr::null_mut()),
            TETHER_ERR_NULL
        );
        assert_eq!(
            tether_send(t, 12345, b"x".as_ptr(), 1),
            TETHER_ERR_GONE,
            "unknown id"
        );
        assert_eq!(tether_send(t, 1, ptr::null(), 3), TETHER_ERR_NULL);
        assert_eq!(tether_close_conn(t, 12345, 0, c"bye".as_ptr()), TETHER_OK);
        // A stop with nothing to close finishes on the next step.
        assert_eq!(tether_stop(t), TETHER_OK);
        assert_eq!(tether_step(t), TETHER_OK);
        assert_eq!(tether_is_stopped(t), 1);
        assert_eq!(tether_free(t), TETHER_OK);
    }
}

/// What the callbacks saw and did, reached through the `user` pointer.
struct Host {
    tether: *mut tether_t,
    opened: Vec<u64>,
    closed: Vec<(u64, c_int)>,
    reentry: Vec<c_int>,
    peer: Option<String>,
    /// Messages received (the bridge tests).
    messages: Vec<(u64, Vec<u8>)>,
    /// What each `tether_ctx_send` returned (the bridge tests).
    send_results: Vec<c_int>,
    /// The mutual-TLS identity seen (the bridge tests).
    identity: Option<String>,
}

impl Default for Host {
    fn default() -> Host {
        Host {
            tether: ptr::null_mut(),
            opened: Vec::new(),
            closed: Vec::new(),
            reentry: Vec::new(),
            peer: None,
            messages: Vec::new(),
            send_results: Vec::new(),
            identity: None,
        }
    }
}

/// Recovers the host from the `user` pointer.
///
/// # Safety
/// `user` is the `&mut Host` given to tether_new, and no other reference to it is live.
unsafe fn host<'a>(user: *mut c_void) -> &'a mut Host {
    // SAFETY: the caller's contract.
    unsafe { &mut *user.cast::<Host>() }
}

unsafe extern "C" fn on_open(user: *mut c_void, ctx: *mut tether_ctx_t, conn: u64) {
    // SAFETY: tether passes back our user pointer; ctx is live during the call.
    let host = unsafe { host(user) };
    host.opened.push(conn);
    let mut buf = [0 as c_char; 64];
    // SAFETY: a 64-byte buffer for the address.
    let n = unsafe { tether_ctx_peer_addr(ctx, conn, buf.as_mut_ptr(), buf.len()) };
    assert!(n > 0, "peer address: {n}");
    // SAFETY: tether wrote a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
    host.peer = Some(text.to_string_lossy().into_owned());
    // SAFETY: too small a buffer must be refused, not overrun.
    let small = unsafe { tether_ctx_peer_addr(ctx, conn, buf.as_mut_ptr(), 4) };
    assert_eq!(small, TETHER_ERR_INVALID);
    // SAFETY: ctx is live; the test's clients say HELLO version 1.
    assert_eq!(unsafe { tether_ctx_version(ctx, conn) }, 1);
    // SAFETY: as above; no connection has this id.
    assert_eq!(
        unsafe { tether_ctx_version(ctx, u64::MAX) },
        TETHER_ERR_GONE
    );
}

unsafe extern "C" fn on_message(
    user: *mut c_void,
    ctx: *mut tether_ctx_t,
    conn: u64,
    data: *const u8,
    len: usize,
) {
    // SAFETY: tether passes back our user pointer and `len` bytes at `data`.
    let (host, message) = unsafe { (host(user), bytes_arg(data, len).unwrap_or_default()) };
    // Re-entry into the running handle must be refused, never aliased.
    // SAFETY: the handle is live; these calls must only return BUSY.
    unsafe {
        host.reentry.push(tether_step(host.tether));
        host.reentry.push(tether_send(host.tether, conn, data, len));
        host.reentry.push(tether_free(host.tether));
        // Stopping from a callback is allowed; it is tested elsewhere, not here.
        assert_eq!(tether_fd(host.tether), (*host.tether).fd);
    }
    let upper = message.to_ascii_uppercase();
    // SAFETY: ctx is live during the callback; `upper` is copied by the call.
    let rc = unsafe { tether_ctx_send(ctx, conn, upper.as_ptr(), upper.len()) };
    assert_eq!(rc, TETHER_OK);
}

unsafe extern "C" fn on_close(user: *mut c_void, ctx: *mut tether_ctx_t, conn: u64, reason: c_int) {
    // SAFETY: tether passes back our user pointer.
    let host = unsafe { host(user) };
    host.closed.push((conn, reason));
    // SAFETY: ctx is live; the connection is gone, so sends report it.
    assert_eq!(
        unsafe { tether_ctx_send(ctx, conn, b"late".as_ptr(), 4) },
        TETHER_ERR_GONE
    );
}

/// Steps `t` from a poll() loop, as a C host would, until `done` or 10 s.
fn drive(t: *mut tether_t, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out driving the reactor");
        // SAFETY: `t` is live for the whole test.
        let (fd, timeout) = unsafe { (tether_fd(t), tether_timeout_ms(t)) };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = if timeout < 0 { 50 } else { timeout.min(50) };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, wait) };
        // SAFETY: as above.
        assert_eq!(unsafe { tether_step(t) }, TETHER_OK);
    }
}

#[test]
fn a_host_poll_loop_serves_a_client() {
    let mut host_state = Box::new(Host::default());
    let user: *mut c_void = (&mut *host_state as *mut Host).cast();
    let callbacks = tether_callbacks_t {
        on_open: Some(on_open),
        on_message: Some(on_message),
        on_close: Some(on_close),
    };
    let mut t = ptr::null_mut();
    let mut port = 0u16;
    // SAFETY: valid pointers throughout; `host_state` outlives the handle.
    unsafe {
        assert_eq!(tether_new(ptr::null(), &callbacks, user, &mut t), TETHER_OK);
        (*user.cast::<Host>()).tether = t;
        assert_eq!(
            tether_listen(t, c"127.0.0.1:0".as_ptr(), &mut port),
            TETHER_OK
        );
    }
    assert_ne!(port, 0);

    let client = std::thread::spawn(move || {
        let mut c = Client::connect(("127.0.0.1", port), ClientConfig::default()).expect("connect");
        c.send(b"hello, tether").expect("send");
        let reply = c.recv_timeout(Duration::from_secs(5)).expect("recv");
        c.close().expect("close");
        reply
    });
    // SAFETY: read through the same pointer the callbacks use, between steps.
    drive(t, || unsafe { !(*user.cast::<Host>()).closed.is_empty() });
    let reply = client.join().expect("client thread");
    assert_eq!(reply.as_deref(), Some(&b"HELLO, TETHER"[..]));

    // SAFETY: between steps no callback runs, so this is the only reference.
    let seen = unsafe { &*user.cast::<Host>() };
    assert_eq!(seen.opened.len(), 1);
    assert_eq!(seen.closed, vec![(seen.opened[0], TETHER_CLOSE_BY_PEER)]);
    assert_eq!(seen.reentry, vec![TETHER_ERR_BUSY; 3]);
    assert!(seen
        .peer
        .as_deref()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    // SAFETY: the handle is live; stale ids are just GONE.
    unsafe {
        assert_eq!(
            tether_send(t, seen.opened[0], b"x".as_ptr(), 1),
            TETHER_ERR_GONE
        );
        assert_eq!(tether_stop(t), TETHER_OK);
    }
    // SAFETY: as above.
    drive(t, || unsafe { tether_is_stopped(t) } == 1);
    // SAFETY: not used after this.
    assert_eq!(unsafe { tether_free(t) }, TETHER_OK);
    drop(host_state);
}

/// The bridge at its boundary: C callbacks (plain Rust `extern "C"` functions
/// here) answering through `tether_ctx_*`, their effects read as actions
/// from the outbox. No reactor, no socket.
mod bridge {
    use super::*;
    use crate::app::fake_conns::FakeConns;
    use crate::app::{
        Action, App, CloseEvent, ConnId, Ctx, HelloEvent, MessageEvent, Outbox, SessionGrant,
    };
    use crate::protocol::{encode_message, Hello, SessionId};
    use bytes::Bytes;
    use std::net::SocketAddr;

    /// Greets the newcomer, and tries a stranger (id 99) too.
    unsafe extern "C" fn on_open(user: *mut c_void, ctx: *mut tether_ctx_t, conn: u64) {
        // SAFETY: as the ABI promises: a live user pointer and ctx for the call.
        let seen = unsafe { host(user) };
        seen.opened.push(conn);
        for to in [conn, 99] {
            // SAFETY: ctx is the running callback's handle; the bytes are live.
            let rc = unsafe { tether_ctx_send(ctx, to, b"hi".as_ptr(), 2) };
            seen.send_results.push(rc);
        }
    }

    /// Echoes upper-cased, and records the sender's address.
    unsafe extern "C" fn on_message(
        user: *mut c_void,
        ctx: *mut tether_ctx_t,
        conn: u64,
        data: *const u8,
        len: usize,
    ) {
        // SAFETY: as above; `data` has `len` bytes (or is NULL for 0).
        let (seen, bytes) = unsafe { (host(user), bytes_arg(data, len).unwrap_or(&[])) };
        seen.messages.push((conn, bytes.to_vec()));
        let upper = bytes.to_ascii_uppercase();
        let mut buf = [0 as c_char; 64];
        // SAFETY: ctx as above; `buf` has 64 writable bytes; `upper` is live.
        unsafe {
            seen.send_results
                .push(tether_ctx_send(ctx, conn, upper.as_ptr(), upper.len()));
            let n = tether_ctx_peer_addr(ctx, conn, buf.as_mut_ptr(), buf.len());
            if n > 0 {
                seen.peer = Some(CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned());
            }
            let n = tether_ctx_peer_identity(ctx, conn, buf.as_mut_ptr(), buf.len());
            if n > 0 {
                seen.identity = Some(CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned());
            }
            tether_ctx_close(ctx, conn, 0, c"done".as_ptr());
        }
    }

    unsafe extern "C" fn on_close(
        user: *mut c_void,
        _ctx: *mut tether_ctx_t,
        conn: u64,
        reason: c_int,
    ) {
        // SAFETY: as above.
        unsafe { host(user) }.closed.push((conn, reason));
    }

    fn bridge(seen: &mut Host) -> CallbackApp {
        CallbackApp {
            callbacks: tether_callbacks_t {
                on_open: Some(on_open),
                on_message: Some(on_message),
                on_close: Some(on_close),
            },
            user: (seen as *mut Host).cast(),
        }
    }

    #[test]
    fn open_message_and_close_become_c_calls_and_their_answers_actions() {
        let mut seen = Host::default();
        let mut app = bridge(&mut seen);
        let mut conns = FakeConns::default();
        let mut out = Outbox::new(1024);
        let conn = ConnId::from_u64(5);
        let hello = Hello {
            version: crate::protocol::PROTOCOL_V1,
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume: None,
        };
        let fresh = SessionId([9; 16]);
        app.on_hello(
            &HelloEvent {
                conn,
                hello: &hello,
                fresh,
                peer_identity: None,
            },
            &mut Ctx::new(&mut out, &conns, 0),
        );
        // The send from on_open reaches the connection being accepted; the stranger's is refused.
        assert_eq!(
            out[..],
            [
                Action::Accept(conn, SessionGrant::fresh(fresh)),
                Action::Send(conn, encode_message(b"hi", 1024)),
            ]
        );
        out.clear();
        conns.open.insert(conn);
        let addr: SocketAddr = "127.0.0.9:4321".parse().expect("address");
        conns.addrs.insert(conn, addr);
        conns.identities.insert(
            conn,
            crate::tls::PeerIdentity {
                common_name: None,
                sans: vec!["DNS:device-7.example".into()],
            },
        );
        app.on_message(
            MessageEvent {
                conn,
                session: fresh,
                version: crate::protocol::PROTOCOL_V1,
                message: Bytes::from_static(b"abc"),
            },
            &mut Ctx::new(&mut out, &conns, 0),
        );
        assert_eq!(
            out[..],
            [
                Action::Send(conn, encode_message(b"ABC", 1024)),
                Action::Close(conn, GoawayCode::Normal, "done".into()),
            ]
        );
        out.clear();
        conns.open.remove(&conn);
        app.on_close(
            &CloseEvent {
                conn,
                reason: CloseReason::Goaway(GoawayCode::Normal),
                session: Some(fresh),
                data_since_rx: false,
            },
            &mut Ctx::new(&mut out, &conns, 0),
        );
        assert!(out.is_empty());
        assert_eq!(seen.opened, [conn.to_u64()]);
        assert_eq!(seen.messages, [(conn.to_u64(), b"abc".to_vec())]);
        assert_eq!(seen.send_results, [TETHER_OK, TETHER_ERR_GONE, TETHER_OK]);
        assert_eq!(seen.peer.as_deref(), Some("127.0.0.9:4321"));
        assert_eq!(seen.identity.as_deref(), Some("DNS:device-7.example"));
        assert_eq!(seen.closed, [(conn.to_u64(), 0)]);
    }
}
