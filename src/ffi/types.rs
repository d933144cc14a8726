//! The plain C data of the ABI: result codes, close reasons, GOAWAY codes,
//! the configuration struct and the callback table. Everything here is
//! `#[repr(C)]` or a constant, copied by value across the boundary.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::callback::tether_ctx_t;
use crate::config::Config;
use crate::tls::{ServerTlsFiles, TlsVersions};

/// Success.
pub const TETHER_OK: c_int = 0;
/// A required pointer argument was NULL.
pub const TETHER_ERR_NULL: c_int = -1;
/// An argument was malformed or out of range (a bad address string, a
/// configuration that fails validation, a buffer too small).
pub const TETHER_ERR_INVALID: c_int = -2;
/// The operating system refused (bind, epoll, eventfd…); `errno` is set.
pub const TETHER_ERR_IO: c_int = -3;
/// The connection is gone or not open (a stale or unknown id). Not a fault:
/// a peer may disconnect at any moment, and its id then simply goes stale.
pub const TETHER_ERR_GONE: c_int = -4;
/// Called from inside a callback on the `tether_t` that is running it
/// (re-entry), or from two threads at once. Inside a callback, use the
/// `tether_ctx_*` functions.
pub const TETHER_ERR_BUSY: c_int = -5;
/// tether panicked (a bug in tether); the handle is now poisoned.
pub const TETHER_ERR_PANIC: c_int = -6;
/// An earlier call panicked; only `tether_stop` and `tether_free` still work.
pub const TETHER_ERR_POISONED: c_int = -7;

/// `on_close` reason: the peer closed its side (EOF) without a GOAWAY.
pub const TETHER_CLOSE_PEER_EOF: c_int = -1;
/// `on_close` reason: the connection was reset or failed at the socket.
pub const TETHER_CLOSE_RESET: c_int = -2;
/// `on_close` reason: TLS failed (not TLS, a refused handshake, a corrupt
/// record); no GOAWAY could be sent.
pub const TETHER_CLOSE_TLS_FAILED: c_int = -3;
/// Added to a GOAWAY code in an `on_close` reason when the *peer* sent the
/// GOAWAY; a bare code (0..=65535) means tether sent it (idle timeout,
/// shutdown, protocol error, `tether_close_conn`…).
pub const TETHER_CLOSE_BY_PEER: c_int = 0x10000;

/// GOAWAY NORMAL: orderly close.
pub const TETHER_GOAWAY_NORMAL: u16 = 0;
/// GOAWAY PROTOCOL_ERROR: the peer broke the protocol (or the application's message format).
pub const TETHER_GOAWAY_PROTOCOL_ERROR: u16 = 1;
/// GOAWAY BAD_CHECKSUM: a frame's CRC did not match.
pub const TETHER_GOAWAY_BAD_CHECKSUM: u16 = 2;
/// GOAWAY FRAME_TOO_LARGE: a frame was above `max_frame`.
pub const TETHER_GOAWAY_FRAME_TOO_LARGE: u16 = 3;
/// GOAWAY MESSAGE_TOO_LARGE: a reassembled message was above `max_message`.
pub const TETHER_GOAWAY_MESSAGE_TOO_LARGE: u16 = 4;
/// GOAWAY UNSUPPORTED_VERSION: the HELLO's protocol version is not 1.
pub const TETHER_GOAWAY_UNSUPPORTED_VERSION: u16 = 5;
/// GOAWAY UNAUTHORIZED: the auth token was missing or wrong.
pub const TETHER_GOAWAY_UNAUTHORIZED: u16 = 6;
/// GOAWAY HANDSHAKE_TIMEOUT: no valid HELLO in time.
pub const TETHER_GOAWAY_HANDSHAKE_TIMEOUT: u16 = 7;
/// GOAWAY IDLE_TIMEOUT: no frame received within the idle timeout.
pub const TETHER_GOAWAY_IDLE_TIMEOUT: u16 = 8;
/// GOAWAY SLOW_CONSUMER: the peer's unsent output passed its limit.
pub const TETHER_GOAWAY_SLOW_CONSUMER: u16 = 9;
/// GOAWAY SERVER_FULL: at the connection limit.
pub const TETHER_GOAWAY_SERVER_FULL: u16 = 10;
/// GOAWAY SHUTTING_DOWN: the server is stopping.
pub const TETHER_GOAWAY_SHUTTING_DOWN: u16 = 11;
/// GOAWAY RATE_LIMITED: the peer sent frames faster than allowed.
pub const TETHER_GOAWAY_RATE_LIMITED: u16 = 12;
/// GOAWAY SESSION_TAKEN_OVER: a newer connection resumed this one's session.
pub const TETHER_GOAWAY_SESSION_TAKEN_OVER: u16 = 13;
/// GOAWAY SERVER_BUSY: not now; the reason carries `retry-after-ms=N` (protocol v2).
pub const TETHER_GOAWAY_SERVER_BUSY: u16 = 14;

/// The main knobs of the server, as a plain struct. Fill it with
/// `tether_config_default` first, then change the fields that matter, so a
/// program keeps working when defaults are tuned. See the protocol document
/// for what each timer means on the wire.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_config_t {
    /// Heartbeat granted to a client that asks for 0 (ms). Default 30000.
    pub heartbeat_ms: u32,
    /// Shortest heartbeat granted (ms): bounds the ping rate a client can ask for. Default 1000.
    pub min_heartbeat_ms: u32,
    /// Longest heartbeat granted (ms): bounds how long a dead peer holds a slot. Default 600000.
    pub max_heartbeat_ms: u32,
    /// Heartbeats without a frame before eviction (idle timeout = heartbeat × miss). Default 3.
    pub miss: u32,
    /// Time allowed for a valid HELLO after connecting (ms). Default 5000.
    pub handshake_timeout_ms: u32,
    /// How long a closing connection may take to flush and see the peer's EOF (ms). Default 2000.
    pub linger_ms: u32,
    /// Timer resolution (ms): every deadline is rounded up to it. Default 100.
    pub tick_ms: u32,
    /// Most open connections; newcomers past it get GOAWAY SERVER_FULL. Default 100000.
    pub max_connections: usize,
    /// Largest frame payload accepted (bytes, 16..=65535). Default 65535.
    pub max_frame: u16,
    /// Largest reassembled message accepted (bytes). Default 1048576.
    pub max_message: u32,
    /// Most unsent output per connection before GOAWAY SLOW_CONSUMER (bytes). Default 4194304.
    pub max_output: usize,
    /// Frames per second a connection may send on average; 0 = no limit (the default).
    pub rate_limit: u32,
    /// Frames a connection may send in a burst above `rate_limit`. Default 100.
    pub rate_burst: u32,
    /// PEM certificate chain (the server's certificate first) for
    /// `tether_listen_tls`; NULL (the default): no TLS. The path is read by
    /// `tether_new`, which loads the file; it need not outlive the call.
    pub tls_cert_file: *const c_char,
    /// PEM private key of that certificate (RSA, ECDSA or Ed25519); needed
    /// with `tls_cert_file`.
    pub tls_key_file: *const c_char,
    /// PEM CA certificates for mutual TLS: when set, TLS clients must present
    /// a certificate one of them signed. NULL (the default): none asked.
    pub tls_client_ca_file: *const c_char,
    /// Nonzero: TLS 1.3 only. 0 (the default): TLS 1.2 and 1.3.
    pub tls13_only: c_int,
}

impl tether_config_t {
    /// The C view of the Rust defaults.
    pub(super) fn from_config(c: &Config) -> tether_config_t {
        tether_config_t {
            heartbeat_ms: c.heartbeat_ms,
            min_heartbeat_ms: c.min_heartbeat_ms,
            max_heartbeat_ms: c.max_heartbeat_ms,
            miss: c.miss,
            handshake_timeout_ms: c.handshake_timeout_ms,
            linger_ms: c.linger_ms,
            tick_ms: c.tick_ms,
            max_connections: c.max_connections,
            max_frame: c.max_frame,
            max_message: c.max_message,
            max_output: c.max_output,
            rate_limit: c.rate_limit,
            rate_burst: c.rate_burst,
            tls_cert_file: std::ptr::null(),
            tls_key_file: std::ptr::null(),
            tls_client_ca_file: std::ptr::null(),
            tls13_only: 0,
        }
    }

    /// The full configuration: these knobs over the Rust defaults; `None`
    /// when the TLS fields do not go together (a certificate without a key,
    /// or a key or CA without a certificate).
    ///
    /// # Safety
    /// Each `tls_*_file` is NULL or NUL-terminated.
    pub(super) unsafe fn to_config(self) -> Option<Config> {
        // SAFETY: NULL or NUL-terminated (the caller's contract).
        let path = |p: *const c_char| unsafe { path_arg(p) };
        let tls = match (path(self.tls_cert_file), path(self.tls_key_file)) {
            (None, None) if self.tls_client_ca_file.is_null() => None,
            (Some(cert_chain), Some(private_key)) => Some(ServerTlsFiles {
                cert_chain,
                private_key,
                client_ca: path(self.tls_client_ca_file),
                versions: if self.tls13_only != 0 {
                    TlsVersions::Tls13Only
                } else {
                    TlsVersions::Tls12And13
                },
            }),
            _ => return None,
        };
        Some(Config {
            tls,
            heartbeat_ms: self.heartbeat_ms,
            min_heartbeat_ms: self.min_heartbeat_ms,
            max_heartbeat_ms: self.max_heartbeat_ms,
            miss: self.miss,
            handshake_timeout_ms: self.handshake_timeout_ms,
            linger_ms: self.linger_ms,
            tick_ms: self.tick_ms,
            max_connections: self.max_connections,
            max_frame: self.max_frame,
            max_message: self.max_message,
            max_output: self.max_output,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            ..Config::default()
        })
    }
}

/// A C path string as a `PathBuf` (its bytes as they are); NULL: `None`.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn path_arg(p: *const c_char) -> Option<PathBuf> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated (the caller's contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// A connection finished its handshake and may be sent to. `conn` names it
/// until its `on_close`.
pub type tether_open_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, ctx: *mut tether_ctx_t, conn: u64)>;

/// A whole message arrived from `conn`. `data` (NULL when `len` is 0) is
/// valid only during the call: copy what must outlive it.
pub type tether_message_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        ctx: *mut tether_ctx_t,
        conn: u64,
        data: *const u8,
        len: usize,
    ),
>;

/// A connection is gone and its id is stale from now on. `reason` is a
/// GOAWAY code tether sent (0..=65535), `TETHER_CLOSE_BY_PEER` + the code
/// the peer sent, `TETHER_CLOSE_PEER_EOF` or `TETHER_CLOSE_RESET`. Called for
/// every accepted connection, including ones that never reached `on_open`
/// (a handshake timeout, a refusal): ignore ids you never saw opened.
pub type tether_close_fn = Option<
    unsafe extern "C" fn(user: *mut c_void, ctx: *mut tether_ctx_t, conn: u64, reason: c_int),
>;

/// What tether calls, each with the `user` pointer given to `tether_new`. Any
/// member may be NULL (that event is then ignored). Callbacks run on the
/// thread calling `tether_run`/`tether_step` (or `tether_send`/`tether_close_conn`,
/// which may report a close), must not block, and must not unwind (no C++
/// exceptions or longjmp out of them).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tether_callbacks_t {
    /// See `tether_open_fn`.
    pub on_open: tether_open_fn,
    /// See `tether_message_fn`.
    pub on_message: tether_message_fn,
    /// See `tether_close_fn`.
    pub on_close: tether_close_fn,
}
