//! The callback side of the ABI: [`CallbackApp`], the [`App`] that turns
//! reactor events into C calls, and the `tether_ctx_*` functions a callback
//! answers through.
//!
//! A callback gets a `tether_ctx_t *` that wraps the app's [`Ctx`] for
//! exactly the duration of the call; tether never hands C a pointer into
//! its own state that outlives a call. Like every app, the bridge only
//! queues actions, so it is unit-tested without a reactor.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::types::*;
use super::{bytes_arg, guard, reason_arg};
use crate::app::{App, CloseEvent, ConnId, Ctx, MessageEvent};
use crate::conn::CloseReason;
use crate::protocol::GoawayCode;

/// The handle a callback answers through (send, close, peer address). It is
/// valid only until the callback returns: never keep it.
pub struct tether_ctx_t {
    /// The app's context for this callback, its lifetime erased for C.
    ctx: *mut Ctx<'static>,
    /// Set when a `tether_ctx_*` call panicked, so the callback's caller
    /// re-raises the panic once C has returned and the handle gets poisoned.
    panicked: Cell<bool>,
}

/// The [`App`] behind a `tether_t`: forwards events to the C callbacks.
pub(super) struct CallbackApp {
    pub(super) callbacks: tether_callbacks_t,
    pub(super) user: *mut c_void,
}

impl CallbackApp {
    /// Calls `f` with the user pointer and a `tether_ctx_t` over `ctx`, then
    /// re-raises a panic of a `tether_ctx_*` call made meanwhile.
    fn call(&mut self, ctx: &mut Ctx<'_>, f: impl FnOnce(*mut c_void, *mut tether_ctx_t)) {
        let mut handle = tether_ctx_t {
            ctx: (ctx as *mut Ctx<'_>).cast(),
            panicked: Cell::new(false),
        };
        f(self.user, &mut handle);
        if handle.panicked.get() {
            panic!("a tether_ctx_* call panicked inside a callback");
        }
    }
}

impl App for CallbackApp {
    fn on_open(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(on_open) = self.callbacks.on_open {
            // SAFETY: the host gave this function pointer and promised it
            // takes these arguments; the ctx pointer is live for the call.
            self.call(ctx, |user, c| unsafe { on_open(user, c, conn.to_u64()) });
        }
    }

    fn on_message(&mut self, event: MessageEvent, ctx: &mut Ctx<'_>) {
        if let Some(on_message) = self.callbacks.on_message {
            let MessageEvent { conn, message, .. } = event;
            let data = if message.is_empty() {
                std::ptr::null()
            } else {
                message.as_ptr()
            };
            // SAFETY: as in on_open; `data` points into `message`, which
            // outlives the call, and `len` is its length.
            self.call(ctx, |user, c| unsafe {
                on_message(user, c, conn.to_u64(), data, message.len())
            });
        }
    }

    fn on_close(&mut self, close: &CloseEvent, ctx: &mut Ctx<'_>) {
        if let Some(on_close) = self.callbacks.on_close {
            let code = close_reason_code(close.reason);
            // SAFETY: as in on_open.
            self.call(ctx, |user, c| unsafe {
                on_close(user, c, close.conn.to_u64(), code)
            });
        }
    }
}

/// The `on_close` reason number for a [`CloseReason`].
pub(super) fn close_reason_code(reason: CloseReason) -> c_int {
    match reason {
        CloseReason::Goaway(code) => c_int::from(code.as_u16()),
        CloseReason::PeerGoaway(code) => TETHER_CLOSE_BY_PEER + c_int::from(code.as_u16()),
        CloseReason::PeerEof => TETHER_CLOSE_PEER_EOF,
        CloseReason::Reset => TETHER_CLOSE_RESET,
        CloseReason::TlsFailed => TETHER_CLOSE_TLS_FAILED,
    }
}

/// Runs `f` on the context behind a callback's `ctx`; a panic is caught,
/// reported as [`TETHER_ERR_PANIC`] and re-raised after the callback.
///
/// # Safety
/// `ctx` is NULL or the handle passed to the callback now running.
unsafe fn with_ctx(ctx: *mut tether_ctx_t, f: impl FnOnce(&mut Ctx<'_>) -> c_int) -> c_int {
    // SAFETY: NULL or the live handle of the running callback (the caller's contract).
    let Some(handle) = (unsafe { ctx.as_ref() }) else {
        return TETHER_ERR_NULL;
    };
    if handle.panicked.get() {
        return TETHER_ERR_POISONED;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `handle.ctx` came from the `&mut Ctx` that CallbackApp::call
        // holds for the duration of the callback and does not touch until the
        // callback returns; this reborrow ends before this function returns.
        let ctx = unsafe { &mut *handle.ctx.cast::<Ctx<'_>>() };
        f(ctx)
    }));
    result.unwrap_or_else(|_| {
        handle.panicked.set(true);
        TETHER_ERR_PANIC
    })
}

/// Inside a callback: sends one message to `conn` (any connection, not just
/// the one the callback is about). The `len` bytes at `data` are copied
/// before it returns; `data` may be NULL when `len` is 0. Sending to
/// another connection's id from its own callback is how broadcasts are built.
///
/// Returns `TETHER_OK` if queued; `TETHER_ERR_GONE` if `conn` is not open;
/// `TETHER_ERR_NULL`.
///
/// # Safety
/// `ctx` is NULL or the handle of the callback now running; `data` is NULL
/// or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tether_ctx_send(
    ctx: *mut tether_ctx_t,
    conn: u64,
    data: *const u8,
    len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or `len` readable bytes (the caller's contract).
        let Some(message) = (unsafe { bytes_arg(data, len) }) else {
            return TETHER_ERR_NULL;
        };
        // SAFETY: `ctx` is NULL or the running callback's handle (the caller's contract).
        unsafe { with_ctx(ctx, |c| send_message(c, ConnId::from_u64(conn), message)) }
    })
}

/// Inside a callback: closes `conn` politely with GOAWAY `code` and `reason`
/// (NULL = none; copied; cut to 256 bytes). Its `on_close` follows later.
///
/// Returns `TETHER_OK` (also for a connection already gone or closing);
/// `TETHER_ERR_NULL`.
///
/// # Safety
/// `ctx` is NULL or the handle of the callback now running; `reason` is NULL
/// or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tether_ctx_close(
    ctx: *mut tether_ctx_t,
    conn: u64,
    code: u16,
    reason: *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated (the caller's contract).
        let reason = unsafe { reason_arg(reason) };
        // SAFETY: `ctx` is NULL or the running callback's handle (the caller's contract).
        unsafe {
            with_ctx(ctx, |c| {
                c.close(ConnId::from_u64(conn), GoawayCode::from_u16(code), reason);
                TETHER_OK
            })
        }
    })
}

/// Inside a callback: writes the peer's address of `conn` as a
/// NUL-terminated `"IP:PORT"` (`"[IPv6]:PORT"`) into `buf` of `buf_len`
/// bytes (64 always suffice). The caller owns `buf`.
///
/// Returns the string's length (without the NUL); `TETHER_ERR_GONE` if
/// `conn` is gone (and in `on_close`, where the socket is already closed);
/// `TETHER_ERR_INVALID` if `buf` is too small (nothing written);
/// `TETHER_ERR_NULL`.
///
/// # Safety
/// `ctx` is NULL or the handle of the callback now running; `buf` is NULL or
/// points to `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn tether_ctx_peer_addr(
    ctx: *mut tether_ctx_t,
    conn: u64,
    buf: *mut c_char,
    buf_len: usize,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        write_answer(ctx, buf, buf_len, |c| {
            c.peer_addr(ConnId::from_u64(conn)).map(|a| a.to_string())
        })
    }
}

/// Inside a callback: the protocol version `conn` speaks, as its HELLO
/// asked and the WELCOME confirmed: 1, or 2 (docs/protocol.md §7.1; the
/// bundled reactor accepts both for every application, framing them alike).
///
/// Returns the version; `TETHER_ERR_GONE` if `conn` is gone or has not
/// completed its handshake; `TETHER_ERR_NULL`.
///
/// # Safety
/// `ctx` is NULL or the handle of the callback now running.
#[no_mangle]
pub unsafe extern "C" fn tether_ctx_version(ctx: *mut tether_ctx_t, conn: u64) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_ctx(ctx, |c| {
            c.version(ConnId::from_u64(conn))
                .map_or(TETHER_ERR_GONE, c_int::from)
        })
    }
}

/// Inside a callback: with mutual TLS, writes who `conn`'s verified client
/// certificate says it is, as a NUL-terminated string into `buf` of
/// `buf_len` bytes: the subject's common name, or when it has none its first
/// subject alternative name (`DNS:host`, `URI:...`, `email:...`, `IP:...`).
/// Call it from `on_open` to authorize the peer (auth tokens still apply).
///
/// Returns the string's length (without the NUL); `TETHER_ERR_GONE` if
/// `conn` is gone, not on a mutual-TLS listener, or its certificate names
/// nobody; `TETHER_ERR_INVALID` if `buf` is too small (nothing written);
/// `TETHER_ERR_NULL`.
///
/// # Safety
/// `ctx` is NULL or the handle of the callback now running; `buf` is NULL or
/// points to `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn tether_ctx_peer_identity(
    ctx: *mut tether_ctx_t,
    conn: u64,
    buf: *mut c_char,
    buf_len: usize,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        write_answer(ctx, buf, buf_len, |c| {
            let identity = c.peer_identity(ConnId::from_u64(conn))?;
            identity
                .common_name
                .or_else(|| identity.sans.into_iter().next())
        })
    }
}

/// The body of the `tether_ctx_*` calls that answer with a string: `answer`
/// runs on the callback's context; its text goes into `buf` (see
/// [`write_c_string`]), `None` is `TETHER_ERR_GONE`.
///
/// # Safety
/// `ctx` is NULL or the handle of the callback now running; `buf` is NULL or
/// points to `buf_len` writable bytes.
unsafe fn write_answer(
    ctx: *mut tether_ctx_t,
    buf: *mut c_char,
    buf_len: usize,
    answer: impl FnOnce(&mut Ctx<'_>) -> Option<String>,
) -> c_int {
    guard(|| {
        if buf.is_null() {
            return TETHER_ERR_NULL;
        }
        let write = |c: &mut Ctx<'_>| match answer(c) {
            // SAFETY: `buf` has `buf_len` writable bytes (the caller's contract).
            Some(text) => unsafe { write_c_string(&text, buf, buf_len) },
            None => TETHER_ERR_GONE,
        };
        // SAFETY: `ctx` is NULL or the running callback's handle (the caller's contract).
        unsafe { with_ctx(ctx, write) }
    })
}

/// Copies `text` and a NUL into `buf`: its length, or `TETHER_ERR_INVALID`
/// (nothing written) when it does not fit or holds a NUL itself.
///
/// # Safety
/// `buf` points to `buf_len` writable bytes.
unsafe fn write_c_string(text: &str, buf: *mut c_char, buf_len: usize) -> c_int {
    if text.len() >= buf_len || text.as_bytes().contains(&0) {
        return TETHER_ERR_INVALID;
    }
    // SAFETY: `buf` has `buf_len` > text.len() writable bytes (the caller's
    // contract), so the text and its NUL fit; the source is not `buf`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    c_int::try_from(text.len()).unwrap_or(TETHER_ERR_INVALID)
}

/// Queues `message` to `conn` if it is open (or opened by this batch):
/// `TETHER_OK`; else nothing is queued and it is `TETHER_ERR_GONE`.
pub(super) fn send_message(ctx: &mut Ctx<'_>, conn: ConnId, message: &[u8]) -> c_int {
    if !ctx.is_open(conn) {
        return TETHER_ERR_GONE;
    }
    ctx.send(conn, message);
    TETHER_OK
}
