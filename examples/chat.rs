//! A chat room on tether's Rust API: everyone connected is in one room.
//!
//! - A newcomer is `guestN` until it sends `/nick NAME`; joins, renames and
//!   leaves are announced to the room as `* ...` lines.
//! - Any other message is broadcast to every member (the sender included) as
//!   `nick: text`. The line is encoded into frames **once**
//!   ([`Outbox::encode`](tether::app::Outbox::encode)) and the same `Bytes` is queued to every member
//!   with [`Ctx::send_frames`], so a broadcast costs one allocation, not one
//!   per member.
//! - Replies meant for one member only (a refused nickname) start with `! `.
//!
//! ```text
//! cargo run --example chat -- [ADDR]      # default 127.0.0.1:7700
//! cargo run --example client -- 127.0.0.1:7700
//! ```
//!
//! SIGTERM or SIGINT stops it gracefully: every member gets GOAWAY
//! SHUTTING_DOWN, and the process exits 0 once all are closed.

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use tether::app::{App, CloseEvent, ConnId, Ctx, MessageEvent};
use tether::config::Config;
use tether::protocol::GoawayCode;
use tether::reactor::Reactor;

/// The longest nickname, in characters: keeps every announced line short.
pub const MAX_NICK_CHARS: usize = 32;

/// The room: who is in it and under which name.
#[derive(Debug, Default)]
pub struct Chat {
    /// Every open connection and its nickname.
    nicks: HashMap<ConnId, String>,
    /// The number in the next `guestN` name.
    guests: u64,
}

impl Chat {
    /// Sends `line` to every member, encoded once and shared.
    fn broadcast(&self, ctx: &mut Ctx<'_>, line: &str) {
        let frames: Bytes = ctx.encode(line.as_bytes());
        for member in self.nicks.keys() {
            ctx.send_frames(*member, frames.clone());
        }
    }

    /// Renames `conn` to `wanted` if it is a valid, free nickname.
    fn rename(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, wanted: &str) {
        let wanted = wanted.trim();
        let valid = !wanted.is_empty()
            && wanted.chars().count() <= MAX_NICK_CHARS
            && !wanted.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            let reason = format!("! a nickname is 1 to {MAX_NICK_CHARS} characters, no spaces");
            ctx.send(conn, reason.as_bytes());
            return;
        }
        if self.nicks.values().any(|n| n == wanted) {
            ctx.send(conn, format!("! {wanted} is taken").as_bytes());
            return;
        }
        let Some(nick) = self.nicks.get_mut(&conn) else {
            return;
        };
        let old = std::mem::replace(nick, wanted.to_string());
        self.broadcast(ctx, &format!("* {old} is now known as {wanted}"));
    }
}

impl App for Chat {
    fn on_open(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        self.guests += 1;
        let nick = format!("guest{}", self.guests);
        self.nicks.insert(conn, nick.clone());
        self.broadcast(ctx, &format!("* {nick} joined"));
    }

    fn on_message(&mut self, event: MessageEvent, ctx: &mut Ctx<'_>) {
        let MessageEvent { conn, message, .. } = event;
        let Ok(text) = std::str::from_utf8(&message) else {
            ctx.close(
                conn,
                GoawayCode::ProtocolError,
                "chat messages are UTF-8 text",
            );
            return;
        };
        if let Some(wanted) = text.strip_prefix("/nick ") {
            self.rename(ctx, conn, wanted);
            return;
        }
        let Some(nick) = self.nicks.get(&conn) else {
            return;
        };
        let line = format!("{nick}: {text}");
        self.broadcast(ctx, &line);
    }

    fn on_close(&mut self, close: &CloseEvent, ctx: &mut Ctx<'_>) {
        // Connections that never finished the handshake were never members.
        if let Some(nick) = self.nicks.remove(&close.conn) {
            self.broadcast(ctx, &format!("* {nick} left"));
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7700".to_string());
    let listen: SocketAddr = match arg.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("chat: {arg}: {e} (expected IP:PORT)");
            return ExitCode::from(2);
        }
    };
    let config = Config {
        listen: Some(listen),
        ..Config::default()
    };
    let mut reactor = match Reactor::bind(config, Chat::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chat: listening on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = reactor.handle_signals() {
        eprintln!("chat: installing signal handlers: {e}");
        return ExitCode::from(1);
    }
    println!("listening on {}", reactor.local_addr().unwrap_or(listen));
    match reactor.run() {
        Ok(kind) => {
            log::info!("chat stopped ({kind:?})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::from(1)
        }
    }
}
