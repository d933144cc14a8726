//! The C ABI: the reactor for programs written in C (or anything that can
//! call C), generated into `include/tether.h` by cbindgen.
//!
//! A C host creates a `tether_t` with a plain configuration struct and a
//! table of callbacks carrying a `void *user` pointer. It then either gives
//! the thread to tether (`tether_run`) or nests tether in its own event loop:
//! it polls `tether_fd` (the epoll descriptor, readable when tether has
//! events) with at most `tether_timeout_ms`, and calls `tether_step`, one
//! non-blocking turn, whenever that poll returns.
//!
//! The bridge is `CallbackApp` (in `callback`), an `App` that forwards open, message and
//! close events to the C callbacks. Inside a callback the host answers through
//! the `tether_ctx_t` it was given; outside callbacks through the `tether_t`.
//!
//! Rules kept at every entry point, because a C caller cannot see Rust's:
//!
//! - **No panic crosses the boundary.** Every function runs inside
//!   `catch_unwind` and returns an integer code. A panic inside the reactor
//!   poisons the handle: every later call but `tether_free` and `tether_stop`
//!   returns `TETHER_ERR_POISONED`, since its state can no longer be trusted.
//! - **Null pointers are checked**, never dereferenced.
//! - **No aliasing through re-entry.** A callback that calls back into the
//!   `tether_t` it runs under (say `tether_step` or `tether_free` from
//!   `on_message`) gets `TETHER_ERR_BUSY` instead of a second mutable borrow
//!   of the reactor.
//! - **Ownership is stated per function**: sends copy the bytes before they
//!   return, pointers handed to callbacks live only during the callback, and
//!   the only thing a caller ever frees is the handle, with `tether_free`.
//!
//! This is the only module with `unsafe` code; each block says why it holds.
#![allow(non_camel_case_types)]

// Explicit paths: cbindgen reads this file as a standalone root and would
// otherwise look for the submodules beside it instead of in src/ffi/.
#[path = "ffi/callback.rs"]
mod callback;
#[path = "ffi/listen.rs"]
mod listen;
#[path = "ffi/types.rs"]
mod types;

pub use callback::*;
pub use listen::*;
pub use types::*;

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::app::ConnId;
use crate::config::Config;
use crate::protocol::GoawayCode;
use crate::reactor::{Reactor, StopHandle};

use callback::{send_message, CallbackApp};

/// One embedded server: the reactor with its listeners, connections, timers
/// and callbacks. Create with `tether_new`, destroy with `tether_free`.
pub struct tether_t {
    /// Borrowed mutably only by the entry point that holds `busy`.
    reactor: UnsafeCell<Reactor<CallbackApp>>,
    /// Kept outside the reactor so a stop works from a callback, another
    /// thread or a signal handler while the reactor is borrowed.
    stop: StopHandle,
    /// The epoll descriptor (fixed for the handle's life).
    fd: c_int,
    /// An entry point holds the reactor (re-entry and concurrent use are refused).
    busy: AtomicBool,
    /// A panic left the reactor in an unknown state.
    poisoned: AtomicBool,
    /// Whether the reactor had stopped, as of the end of the last call into it.
    stopped: AtomicBool,
    /// Connections held, as of the end of the last call into the reactor.
    connections: AtomicUsize,
}

/// `f` under `catch_unwind`, a panic turned into [`TETHER_ERR_PANIC`].
pub(crate) fn guard(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(TETHER_ERR_PANIC)
}

/// Runs `f` on the reactor behind `t` with every guard a handle needs: null,
/// poisoned and busy checks, `catch_unwind` (a panic poisons the handle), and
/// the stopped/connection mirrors refreshed afterwards.
///
/// # Safety
/// `t` is NULL or a live handle from `tether_new`.
unsafe fn with_reactor(
    t: *const tether_t,
    f: impl FnOnce(&mut Reactor<CallbackApp>) -> c_int,
) -> c_int {
    // SAFETY: the caller passes NULL or a live handle; only a shared
    // reference is made, and every field it reads is atomic or an UnsafeCell.
    let Some(handle) = (unsafe { t.as_ref() }) else {
        return TETHER_ERR_NULL;
    };
    if handle.poisoned.load(Ordering::Acquire) {
        return TETHER_ERR_POISONED;
    }
    if handle
        .busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return TETHER_ERR_BUSY;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `busy` was false and we set it, so no other reference to
        // the reactor exists until we clear it below.
        let reactor = unsafe { &mut *handle.reactor.get() };
        let rc = f(reactor);
        handle
            .stopped
            .store(reactor.is_stopped(), Ordering::Release);
        handle
            .connections
            .store(reactor.connection_count(), Ordering::Release);
        rc
    }));
    let rc = result.unwrap_or_else(|_| {
        handle.poisoned.store(true, Ordering::Release);
        TETHER_ERR_PANIC
    });
    handle.busy.store(false, Ordering::Release);
    rc
}

/// The bytes `data[..len]`, or None for a NULL `data` with a non-zero `len`.
///
/// # Safety
/// Unless NULL, `data` points to `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if data.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes.
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A GOAWAY reason from a C string (NULL = empty; invalid UTF-8 replaced).
///
/// # Safety
/// `reason` is NULL or a NUL-terminated string.
pub(crate) unsafe fn reason_arg(reason: *const c_char) -> String {
    if reason.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated (the caller's contract).
    unsafe { CStr::from_ptr(reason) }
        .to_string_lossy()
        .into_owned()
}

/// The error code for an I/O error, setting `errno` when the OS gave one.
fn io_error_code(e: &io::Error) -> c_int {
    if e.kind() == io::ErrorKind::InvalidInput && e.raw_os_error().is_none() {
        return TETHER_ERR_INVALID;
    }
    if let Some(code) = e.raw_os_error() {
        // SAFETY: __errno_location returns this thread's errno slot, always valid.
        unsafe { *libc::__errno_location() = code };
    }
    TETHER_ERR_IO
}

/// Fills `*config` with the defaults.
///
/// Returns `TETHER_OK`, or `TETHER_ERR_NULL` if `config` is NULL.
///
/// # Safety
/// `config` is NULL or points to a writable `tether_config_t`.
#[no_mangle]
pub unsafe extern "C" fn tether_config_default(config: *mut tether_config_t) -> c_int {
    guard(|| {
        if config.is_null() {
            return TETHER_ERR_NULL;
        }
        // SAFETY: non-null and writable (the caller's contract); the struct is plain data.
        unsafe { config.write(tether_config_t::from_config(&Config::default())) };
        TETHER_OK
    })
}

/// Creates a server with no listener yet and stores its handle in `*out`.
///
/// `config` may be NULL for the defaults; it is copied, as is `*callbacks`
/// (NULL = no callbacks), so neither needs to outlive the call. `user` is
/// passed, untouched, to every callback; tether never dereferences or frees it.
/// Nothing happens on the network until `tether_listen`.
///
/// Returns `TETHER_OK`; `TETHER_ERR_NULL` if `out` is NULL; `TETHER_ERR_INVALID`
/// if the configuration fails validation; `TETHER_ERR_IO` (with `errno`) if
/// the epoll or eventfd descriptors cannot be made. On error `*out` is NULL.
///
/// # Safety
/// Each pointer is NULL or valid for its type; callback pointers, when set,
/// are functions with the documented signatures.
#[no_mangle]
pub unsafe extern "C" fn tether_new(
    config: *const tether_config_t,
    callbacks: *const tether_callbacks_t,
    user: *mut c_void,
    out: *mut *mut tether_t,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return TETHER_ERR_NULL;
        }
        // SAFETY: `out` is non-null and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NULL or a valid config whose path fields are NULL or
        // NUL-terminated (the caller's contract); copied out.
        let config = match unsafe { config.as_ref() } {
            None => Config::default(),
            Some(c) => match unsafe { c.to_config() } {
                Some(config) => config,
                None => {
                    log::error!("tether_new: tls_cert_file and tls_key_file go together");
                    return TETHER_ERR_INVALID;
                }
            },
        };
        // SAFETY: NULL or valid callbacks (the caller's contract); copied out.
        let callbacks = unsafe { callbacks.as_ref() }.copied().unwrap_or_default();
        let reactor = match Reactor::new(config, CallbackApp { callbacks, user }) {
            Ok(r) => r,
            Err(e) => {
                log::error!("tether_new: {e}");
                return io_error_code(&e);
            }
        };
        let handle = Box::new(tether_t {
            stop: reactor.stop_handle(),
            fd: reactor.as_raw_fd(),
            reactor: UnsafeCell::new(reactor),
            busy: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        // SAFETY: as above; the handle is owned by the caller until tether_free.
        unsafe { out.write(Box::into_raw(handle)) };
        TETHER_OK
    })
}

/// Runs the loop on the calling thread until a graceful stop has finished
/// (`tether_stop` from a callback, another thread or a signal handler).
///
/// Returns `TETHER_OK` once stopped; `TETHER_ERR_IO` (with `errno`) if
/// polling failed; `TETHER_ERR_NULL`, `TETHER_ERR_BUSY`, `TETHER_ERR_PANIC`.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_run(t: *mut tether_t) -> c_int {
    // SAFETY: `t` is NULL or live (the caller's contract).
    guard(|| unsafe {
        with_reactor(t, |r| match r.run() {
            Ok(_) => TETHER_OK,
            Err(e) => io_error_code(&e),
        })
    })
}

/// The epoll descriptor to nest tether in a host event loop: it becomes
/// readable when tether has events to handle. Poll it for reading (poll,
/// select, epoll, libuv, …), then call `tether_step`. It is owned by tether:
/// do not read, close or modify it; it is closed by `tether_free`. Works
/// anywhere, even inside callbacks.
///
/// Returns the descriptor, or `TETHER_ERR_NULL`.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_fd(t: *const tether_t) -> c_int {
    guard(|| {
        // SAFETY: NULL or live (the caller's contract); `fd` is never written after creation.
        unsafe { t.as_ref() }.map_or(TETHER_ERR_NULL, |h| h.fd)
    })
}

/// How long the host loop may sleep before it must call `tether_step`, in
/// milliseconds rounded up: -1 = no deadline (wait for `tether_fd` alone),
/// 0 = tether has work now. Ask again after every step.
///
/// Misuse (NULL, inside a callback, poisoned) returns 0, so a host loop does
/// not sleep forever and its next `tether_step` reports the error.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_timeout_ms(t: *mut tether_t) -> c_int {
    let mut ms = 0;
    // SAFETY: `t` is NULL or live (the caller's contract).
    let rc = guard(|| unsafe {
        with_reactor(t, |r| {
            ms = r.timeout().map_or(-1, duration_to_ms_ceil);
            TETHER_OK
        })
    });
    if rc == TETHER_OK {
        ms
    } else {
        0
    }
}

/// Whole milliseconds in `d`, rounded up (a host never wakes just before a
/// deadline and spins), capped at `c_int::MAX`.
fn duration_to_ms_ceil(d: Duration) -> c_int {
    let ms = d.as_nanos().div_ceil(1_000_000);
    c_int::try_from(ms).unwrap_or(c_int::MAX)
}

/// One non-blocking turn: handles every ready event and due timer, calling
/// callbacks, then returns. Call it whenever the host's poll returns (fd
/// readable or timeout reached); a spurious call is harmless.
///
/// Returns `TETHER_OK`; `TETHER_ERR_IO` (with `errno`) if polling failed;
/// `TETHER_ERR_NULL`, `TETHER_ERR_BUSY` (from inside a callback),
/// `TETHER_ERR_PANIC`, `TETHER_ERR_POISONED`.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_step(t: *mut tether_t) -> c_int {
    // SAFETY: `t` is NULL or live (the caller's contract).
    guard(|| unsafe {
        with_reactor(t, |r| match r.step() {
            Ok(()) => TETHER_OK,
            Err(e) => io_error_code(&e),
        })
    })
}

/// Starts a graceful stop: no more accepts, GOAWAY SHUTTING_DOWN to every
/// connection, each closed politely; `tether_is_stopped` turns 1 when all
/// are gone or the linger time has run out (the loop must keep stepping
/// until then). It only sets a flag and writes to an eventfd, so it is
/// **async-signal-safe**, thread-safe, and allowed inside callbacks; calling
/// it twice is harmless. Works on a poisoned handle too.
///
/// Returns `TETHER_OK` or `TETHER_ERR_NULL`.
///
/// # Safety
/// `t` is NULL or a live handle (not one being freed).
#[no_mangle]
pub unsafe extern "C" fn tether_stop(t: *const tether_t) -> c_int {
    guard(|| {
        if t.is_null() {
            return TETHER_ERR_NULL;
        }
        // SAFETY: non-null and live (the caller's contract); only the
        // `stop` field is borrowed, which nothing ever mutates.
        let stop = unsafe { &(*t).stop };
        stop.stop();
        TETHER_OK
    })
}

/// 1 once a graceful stop has finished (the host loop may exit and call
/// `tether_free`), 0 while running or stopping, `TETHER_ERR_NULL` for NULL.
/// Reflects the state at the end of the last call into tether.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_is_stopped(t: *const tether_t) -> c_int {
    guard(|| {
        // SAFETY: NULL or live (the caller's contract); an atomic is read.
        unsafe { t.as_ref() }.map_or(TETHER_ERR_NULL, |h| {
            c_int::from(h.stopped.load(Ordering::Acquire))
        })
    })
}

/// Connections held (open, handshaking or closing) as of the end of the last
/// call into tether; 0 for NULL. For logs and metrics.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_connection_count(t: *const tether_t) -> usize {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: NULL or live (the caller's contract); an atomic is read.
        unsafe { t.as_ref() }.map_or(0, |h| h.connections.load(Ordering::Acquire))
    }))
    .unwrap_or(0)
}

/// Sends one message to `conn` from outside a callback (a host timer, another
/// event source). The `len` bytes at `data` are copied before it returns;
/// the caller keeps ownership of `data`. `data` may be NULL when `len` is 0.
/// The bytes are written at once as far as the socket takes them; an
/// `on_close` may run inside this call if the write finds the peer gone.
///
/// Returns `TETHER_OK` if queued; `TETHER_ERR_GONE` if `conn` is not open;
/// `TETHER_ERR_NULL`; `TETHER_ERR_BUSY` from inside a callback (use
/// `tether_ctx_send` there).
///
/// # Safety
/// `t` is NULL or a live handle; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tether_send(
    t: *mut tether_t,
    conn: u64,
    data: *const u8,
    len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or `len` readable bytes (the caller's contract).
        let Some(message) = (unsafe { bytes_arg(data, len) }) else {
            return TETHER_ERR_NULL;
        };
        // SAFETY: `t` is NULL or live (the caller's contract).
        unsafe {
            with_reactor(t, |r| {
                r.with_ctx(|_, ctx| send_message(ctx, ConnId::from_u64(conn), message))
            })
        }
    })
}

/// Closes `conn` politely from outside a callback: GOAWAY `code` with
/// `reason` (NULL = none; copied; cut to 256 bytes), flush, then close; its
/// `on_close` follows once it is gone.
///
/// Returns `TETHER_OK` (also when `conn` is already gone or closing: the
/// first close stands); `TETHER_ERR_NULL`; `TETHER_ERR_BUSY` from inside a
/// callback (use `tether_ctx_close` there).
///
/// # Safety
/// `t` is NULL or a live handle; `reason` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn tether_close_conn(
    t: *mut tether_t,
    conn: u64,
    code: u16,
    reason: *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or NUL-terminated (the caller's contract).
        let reason = unsafe { reason_arg(reason) };
        // SAFETY: `t` is NULL or live (the caller's contract).
        unsafe {
            with_reactor(t, |r| {
                r.with_ctx(|_, ctx| {
                    ctx.close(ConnId::from_u64(conn), GoawayCode::from_u16(code), reason)
                });
                TETHER_OK
            })
        }
    })
}

/// Destroys the server: every socket and descriptor is closed at once (no
/// GOAWAY, no callbacks; call `tether_stop` and step until
/// `tether_is_stopped` first for a graceful end). NULL is a no-op. The handle
/// is invalid afterwards.
///
/// Returns `TETHER_OK`, or `TETHER_ERR_BUSY` (nothing freed) when called
/// from inside one of this handle's callbacks or while another thread is in it.
///
/// # Safety
/// `t` is NULL or a live handle, not used again after `TETHER_OK`.
#[no_mangle]
pub unsafe extern "C" fn tether_free(t: *mut tether_t) -> c_int {
    guard(|| {
        // SAFETY: NULL or live (the caller's contract).
        let Some(handle) = (unsafe { t.as_ref() }) else {
            return TETHER_OK;
        };
        if handle.busy.swap(true, Ordering::Acquire) {
            return TETHER_ERR_BUSY;
        }
        // SAFETY: from Box::into_raw in tether_new, not freed before (the
        // caller's contract), and `busy` shows nobody is inside it.
        drop(unsafe { Box::from_raw(t) });
        TETHER_OK
    })
}
/// A static, NUL-terminated English description of a result code (unknown
/// codes included). Never NULL; never free it.
#[no_mangle]
pub extern "C" fn tether_strerror(code: c_int) -> *const c_char {
    let text: &'static CStr = match code {
        TETHER_OK => c"success",
        TETHER_ERR_NULL => c"a required pointer argument was NULL",
        TETHER_ERR_INVALID => c"invalid argument",
        TETHER_ERR_IO => c"operating system error (see errno)",
        TETHER_ERR_GONE => c"connection is gone or not open",
        TETHER_ERR_BUSY => {
            c"handle is busy: called from inside its own callback (use tether_ctx_*) or from two threads"
        }
        TETHER_ERR_PANIC => c"internal error: tether panicked (the handle is poisoned)",
        TETHER_ERR_POISONED => c"handle is poisoned by an earlier internal error",
        _ => c"unknown tether error code",
    };
    text.as_ptr()
}

#[cfg(test)]
#[path = "ffi/tests.rs"]
mod tests;
