//! Listening from C: plain and TLS listeners, and reloading the TLS files.

use std::ffi::{c_char, c_int, CStr};
use std::net::SocketAddr;

use super::types::*;
use super::{guard, io_error_code, tether_t, with_reactor, CallbackApp};
use crate::reactor::Reactor;

/// Starts listening on `addr`, an `"IP:PORT"` string (`"127.0.0.1:0"`,
/// `"[::1]:7700"`; port 0 picks a free port), and stores the bound port in
/// `*bound_port` unless it is NULL. May be called more than once.
///
/// Returns `TETHER_OK`; `TETHER_ERR_NULL`; `TETHER_ERR_INVALID` for an
/// unparsable address; `TETHER_ERR_IO` (with `errno`, e.g. EADDRINUSE);
/// `TETHER_ERR_BUSY` from inside a callback.
///
/// # Safety
/// `t` is NULL or a live handle; `addr` is NULL or NUL-terminated;
/// `bound_port` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tether_listen(
    t: *mut tether_t,
    addr: *const c_char,
    bound_port: *mut u16,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { listen_on(t, addr, bound_port, false) }
}

/// Like `tether_listen`, for a TLS listener: connections accepted there
/// handshake with the certificate and key of the configuration
/// (`tls_cert_file`, `tls_key_file`; mutual TLS with `tls_client_ca_file`).
///
/// Returns as `tether_listen`, and `TETHER_ERR_INVALID` if the handle was
/// created without a TLS certificate.
///
/// # Safety
/// As `tether_listen`.
#[no_mangle]
pub unsafe extern "C" fn tether_listen_tls(
    t: *mut tether_t,
    addr: *const c_char,
    bound_port: *mut u16,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    unsafe { listen_on(t, addr, bound_port, true) }
}

/// Re-reads the TLS certificate, key and client CA files named in the
/// configuration (what a server does on SIGHUP): new handshakes use them,
/// open connections are untouched. On a bad file the old ones stay and the
/// reason is logged.
///
/// Returns `TETHER_OK`; `TETHER_ERR_INVALID` if a file is bad or the handle
/// has no TLS; `TETHER_ERR_NULL`; `TETHER_ERR_BUSY` from inside a callback.
///
/// # Safety
/// `t` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn tether_reload_tls(t: *mut tether_t) -> c_int {
    let reload = |r: &mut Reactor<CallbackApp>| match r.reload_tls() {
        Ok(true) => TETHER_OK,
        Ok(false) => TETHER_ERR_INVALID,
        Err(e) => {
            log::error!("tether_reload_tls: keeping the old certificate: {e}");
            TETHER_ERR_INVALID
        }
    };
    // SAFETY: `t` is NULL or live (the caller's contract).
    guard(|| unsafe { with_reactor(t, reload) })
}

/// The body of `tether_listen` and `tether_listen_tls`.
///
/// # Safety
/// As `tether_listen`.
unsafe fn listen_on(
    t: *mut tether_t,
    addr: *const c_char,
    bound_port: *mut u16,
    tls: bool,
) -> c_int {
    guard(|| {
        if addr.is_null() {
            return TETHER_ERR_NULL;
        }
        // SAFETY: non-null and NUL-terminated (the caller's contract).
        let addr = unsafe { CStr::from_ptr(addr) };
        let Some(addr) = addr
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<SocketAddr>().ok())
        else {
            return TETHER_ERR_INVALID;
        };
        let listen = |r: &mut Reactor<CallbackApp>| {
            let bound = if tls {
                r.listen_tls(addr)
            } else {
                r.listen(addr)
            };
            match bound {
                Ok(bound) => {
                    // SAFETY: NULL or writable (the caller's contract).
                    if let Some(port) = unsafe { bound_port.as_mut() } {
                        *port = bound.port();
                    }
                    TETHER_OK
                }
                Err(e) => io_error_code(&e),
            }
        };
        // SAFETY: `t` is NULL or live (the caller's contract).
        unsafe { with_reactor(t, listen) }
    })
}
