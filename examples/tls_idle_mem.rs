//! How much an idle TLS connection costs the server, and how much CPU a full
//! handshake costs it.
//!
//! Memory: builds 10,000 server sessions, each handshaked with an in-memory
//! rustls client and then used for one message each way, drops the clients,
//! and reports what the server sessions still hold, per session: heap bytes
//! seen by a counting global allocator (Rust allocations) and malloc's
//! in-use bytes (also the crypto library's own C allocations, plus malloc's
//! per-chunk overhead). The same for rustls's buffered `ServerConnection`,
//! for comparison.
//!
//! CPU: server thread CPU time per full handshake (ECDSA P-256 certificate,
//! TLS 1.3 and 1.2), over an in-memory loop, counting only the server's calls.
//!
//! Run: `cargo run --release --example tls_idle_mem [sessions] [handshakes]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection};
// `support` reaches tether's TLS module as `super::tls`.
use tether::tls;
use tether::tls::{policy, ServerSession};

#[path = "../src/tls/tests/support.rs"]
mod support;

use support::{KeyKind, Pair, Pki};

/// Counts the bytes currently allocated through Rust's global allocator.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What is allocated right now: Rust bytes and blocks, and malloc's in-use bytes.
#[derive(Clone, Copy)]
struct Usage {
    rust_bytes: isize,
    rust_blocks: isize,
    malloc_bytes: isize,
}

fn usage() -> Usage {
    // SAFETY: mallinfo2 only reads glibc's allocator statistics.
    let info = unsafe { libc::mallinfo2() };
    Usage {
        rust_bytes: LIVE_BYTES.load(Ordering::Relaxed),
        rust_blocks: LIVE_BLOCKS.load(Ordering::Relaxed),
        malloc_bytes: info.uordblks as isize,
    }
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Builds `n` idle server connections with `make` and prints what they hold.
fn measure_idle<T>(label: &str, n: usize, mut make: impl FnMut() -> T) -> Vec<T> {
    let mut kept = Vec::with_capacity(n);
    // Warm up lazily initialised state (provider tables, ticket keys...).
    drop(make());
    let before = usage();
    for _ in 0..n {
        kept.push(make());
    }
    let after = usage();
    let per = |a: isize, b: isize| (a - b) as f64 / n as f64;
    println!(
        "{label:<44} {:>8.0} B Rust heap ({:>5.1} blocks)  {:>8.0} B malloc in use",
        per(after.rust_bytes, before.rust_bytes),
        per(after.rust_blocks, before.rust_blocks),
        per(after.malloc_bytes, before.malloc_bytes),
    );
    kept
}

/// One ServerSession, handshaked and used once each way; the client is dropped.
fn idle_session(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Box<ServerSession> {
    let mut pair = Pair::new(client, server);
    pair.run().expect("handshake");
    pair.client_sends(b"HELLO").expect("client to server");
    assert_eq!(pair.server_sends(b"WELCOME"), b"WELCOME");
    Box::new(pair.server)
}

/// Moves everything `from` has to send into `to`, and lets `to` process it.
fn pipe<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write to a Vec");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read from a slice");
        to.process_new_packets().expect("process");
    }
}

/// The same with rustls's buffered ServerConnection.
fn idle_buffered(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Box<ServerConnection> {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client.clone(), name).expect("client");
    let mut server = Box::new(ServerConnection::new(server.clone()).expect("server"));
    let round = |client: &mut ClientConnection, server: &mut ServerConnection| {
        pipe(client, server);
        pipe(server, client);
    };
    while client.is_handshaking() || server.is_handshaking() {
        round(&mut client, &mut server);
    }
    client.writer().write_all(b"HELLO").expect("client data");
    round(&mut client, &mut server);
    let mut got = [0u8; 5];
    server.reader().read_exact(&mut got).expect("server reads");
    server.writer().write_all(b"WELCOME").expect("server data");
    round(&mut client, &mut server);
    server
}

/// Mean server CPU per full handshake over `n` handshakes.
fn handshake_cpu(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>, n: usize) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let mut pair = Pair::new(client, server);
        loop {
            let client_had = pair.client.wants_write();
            let start = thread_cpu();
            pair.client_to_server().expect("server side");
            total += thread_cpu() - start;
            let server_had = !pair.server_out.is_empty();
            pair.server_to_client().expect("client side");
            if !client_had && !server_had {
                break;
            }
        }
        assert!(pair.server.can_send());
    }
    total / n as u32
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().map_or(10_000, |a| a.parse().expect("sessions"));
    let handshakes: usize = args
        .next()
        .map_or(2_000, |a| a.parse().expect("handshakes"));

    let pki = Pki::new(KeyKind::EcdsaP256);
    let server = pki.server_config();
    let client13 = pki.client_config(None);
    let provider = (*policy::crypto_provider()).clone();
    let client12 = pki.rustls_client(provider.clone(), &[&rustls::version::TLS12]);
    let mut mtls = Pki::new(KeyKind::EcdsaP256);
    mtls.server_files.client_ca = Some(mtls.ca_file.clone());
    let device = mtls.ca.client(KeyKind::EcdsaP256, "device-1", Vec::new());
    let mtls_client = mtls.client_config(Some(("device", &device)));
    let mtls_server = mtls.server_config();

    println!(
        "size_of::<ServerSession>() = {} B (the Box below includes it); \
         size_of::<ServerConnection>() = {} B",
        std::mem::size_of::<ServerSession>(),
        std::mem::size_of::<ServerConnection>()
    );
    println!("Idle server connections, per connection ({sessions} of each):");
    let a = measure_idle("ServerSession (unbuffered), TLS 1.3", sessions, || {
        idle_session(&client13, &server)
    });
    let b = measure_idle("ServerSession (unbuffered), TLS 1.2", sessions, || {
        idle_session(&client12, &server)
    });
    let c = measure_idle(
        "ServerSession (unbuffered), TLS 1.3 + mTLS",
        sessions,
        || idle_session(&mtls_client, &mtls_server),
    );
    let d = measure_idle(
        "rustls ServerConnection (buffered), TLS 1.3",
        sessions,
        || idle_buffered(&client13, &server),
    );
    let e = measure_idle(
        "rustls ServerConnection (buffered), TLS 1.2",
        sessions,
        || idle_buffered(&client12, &server),
    );
    assert!(a.iter().chain(&b).chain(&c).all(|s| s.pending_input() == 0));
    drop((a, b, c, d, e));

    let x25519 = {
        let mut p = provider.clone();
        p.kx_groups
            .retain(|g| g.name() == rustls::NamedGroup::X25519);
        p
    };
    let client13_x25519 = pki.rustls_client(x25519.clone(), &[&rustls::version::TLS13]);
    let client12_x25519 = pki.rustls_client(x25519, &[&rustls::version::TLS12]);
    println!("Server CPU per full handshake, ECDSA P-256 certificate ({handshakes} each):");
    for (label, client) in [
        (
            "TLS 1.3, X25519MLKEM768 (tether's client default)",
            &client13,
        ),
        ("TLS 1.3, X25519", &client13_x25519),
        ("TLS 1.2, X25519", &client12_x25519),
    ] {
        handshake_cpu(client, &server, handshakes / 10 + 1); // warm-up
        let cpu = handshake_cpu(client, &server, handshakes);
        println!("{label:<52} {:>7.1} µs", cpu.as_secs_f64() * 1e6);
    }
}
