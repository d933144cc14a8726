//! A middlebox for the client's end-to-end test: a TCP proxy that, like a
//! NAT whose mapping timed out, silently blackholes a connection once it has
//! been idle (no bytes either way) for longer than its timeout. Both of its
//! sockets stay open; nothing is forwarded any more, not even a FIN.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One proxied connection's NAT mapping.
struct Mapping {
    last_packet: Instant,
    blackholed: bool,
}

/// The blackholing proxy. Stops its threads (closing every socket) on drop.
pub struct Proxy {
    /// Where clients connect to reach the upstream through it.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections whose mapping has been dropped.
    blackholed: Arc<AtomicUsize>,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to
    /// `upstream` until it has been idle for longer than `idle`.
    pub fn start(upstream: SocketAddr, idle: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let stop = Arc::new(AtomicBool::new(false));
        let blackholed = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        {
            let (stop, blackholed, accepted) = (
                Arc::clone(&stop),
                Arc::clone(&blackholed),
                Arc::clone(&accepted),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            let Ok(server) = TcpStream::connect(upstream) else {
                                continue; // dropping `client` closes it
                            };
                            let _ = client.set_nonblocking(false);
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            let mapping = Arc::new(Mutex::new(Mapping {
                                last_packet: Instant::now(),
                                blackholed: false,
                            }));
                            for (from, to) in [
                                (client.try_clone(), server.try_clone()),
                                (server.try_clone(), client.try_clone()),
                            ] {
                                let (Ok(from), Ok(to)) = (from, to) else {
                                    continue;
                                };
                                let mapping = Arc::clone(&mapping);
                                let stop = Arc::clone(&stop);
                                let blackholed = Arc::clone(&blackholed);
                                thread::spawn(move || {
                                    pump(from, to, &mapping, idle, &stop, &blackholed)
                                });
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Proxy {
            addr,
            stop,
            blackholed,
            accepted,
        }
    }

    /// How many connections' mappings have been dropped.
    pub fn blackholed(&self) -> usize {
        self.blackholed.load(Ordering::Relaxed)
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to` while the mapping lives. A packet arriving after
/// more than `idle` of silence (either direction) kills the mapping: it and
/// everything after it are dropped, and the sockets are held open, silent.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    mapping: &Mutex<Mapping>,
    idle: Duration,
    stop: &AtomicBool,
    blackholed: &AtomicUsize,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = vec![0u8; 64 * 1024];
    let hold = |stop: &AtomicBool| {
        // A dead mapping: keep the sockets (no FIN, no RST) until the test ends.
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(20));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => {
                if mapping.lock().expect("mapping").blackholed {
                    return hold(stop);
                }
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                let now = Instant::now();
                let forward = {
                    let mut m = mapping.lock().expect("mapping");
                    if !m.blackholed && now.duration_since(m.last_packet) > idle {
                        m.blackholed = true;
                        blackholed.fetch_add(1, Ordering::Relaxed);
                    }
                    if !m.blackholed {
                        m.last_packet = now;
                    }
                    !m.blackholed
                };
                if forward && to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                if mapping.lock().expect("mapping").blackholed {
                    return hold(stop);
                }
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}
