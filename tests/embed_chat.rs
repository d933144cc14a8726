//! The chat example's `App`, embedded in-process: a reactor on its own
//! thread (port 0, stopped through its `StopHandle`), driven by the blocking
//! client. Shows the Rust embedding API end to end: `Reactor::new` +
//! `listen`, `run` on a thread, `StopHandle::stop` from another one.

#[allow(dead_code)]
#[path = "../examples/chat.rs"]
mod chat;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tether::client::{Client, ClientConfig, ClientEvent};
use tether::config::Config;
use tether::protocol::GoawayCode;
use tether::reactor::{Reactor, StopHandle, StopKind};

const WAIT: Duration = Duration::from_secs(5);

/// Starts the chat on a thread; returns its address, its stop handle and the thread.
fn start_chat() -> (
    SocketAddr,
    StopHandle,
    thread::JoinHandle<std::io::Result<StopKind>>,
) {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut reactor = Reactor::new(Config::default(), chat::Chat::default())?;
        let addr = reactor.listen("127.0.0.1:0".parse().expect("address"))?;
        tx.send((addr, reactor.stop_handle()))
            .expect("test is waiting");
        reactor.run()
    });
    let (addr, stop) = rx.recv_timeout(WAIT).expect("chat started");
    (addr, stop, thread)
}

fn connect(addr: SocketAddr) -> Client {
    let config = ClientConfig {
        reconnect: false,
        ..ClientConfig::default()
    };
    Client::connect(addr, config).expect("handshake with the chat")
}

/// The next line `client` receives, as text.
fn line(client: &mut Client) -> String {
    let message = client
        .recv_timeout(WAIT)
        .expect("connection open")
        .expect("a line within 5 s");
    String::from_utf8(message.to_vec()).expect("UTF-8 line")
}

#[test]
fn two_members_chat_then_the_room_stops() {
    let (addr, stop, thread) = start_chat();

    let mut alice = connect(addr);
    assert_eq!(line(&mut alice), "* guest1 joined");
    alice.send(b"/nick alice").expect("send");
    assert_eq!(line(&mut alice), "* guest1 is now known as alice");

    let mut bob = connect(addr);
    assert_eq!(line(&mut bob), "* guest2 joined");
    assert_eq!(line(&mut alice), "* guest2 joined");
    bob.send(b"/nick alice").expect("send");
    assert_eq!(line(&mut bob), "! alice is taken");
    bob.send(b"/nick bob").expect("send");
    assert_eq!(line(&mut bob), "* guest2 is now known as bob");
    assert_eq!(line(&mut alice), "* guest2 is now known as bob");

    // One broadcast reaches both members, the sender included.
    alice.send(b"hi bob").expect("send");
    assert_eq!(line(&mut alice), "alice: hi bob");
    assert_eq!(line(&mut bob), "alice: hi bob");
    bob.send("héllo, ünïcode".as_bytes()).expect("send");
    assert_eq!(line(&mut bob), "bob: héllo, ünïcode");
    assert_eq!(line(&mut alice), "bob: héllo, ünïcode");

    // A leave is announced to those still in the room.
    bob.close().expect("close");
    assert_eq!(line(&mut alice), "* bob left");

    // A graceful stop from this thread: GOAWAY SHUTTING_DOWN, then run() returns.
    stop.stop();
    assert!(
        alice.recv_timeout(WAIT).is_err(),
        "connection should end with the stop"
    );
    let goaway = alice.events().find_map(|e| match e {
        ClientEvent::Goaway(g) => Some(g.code),
        _ => None,
    });
    assert_eq!(goaway, Some(GoawayCode::ShuttingDown));
    let ended = thread.join().expect("reactor thread");
    assert_eq!(ended.expect("run"), StopKind::Graceful);
}
