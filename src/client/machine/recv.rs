//! The receive side of the client machine: what each frame means in each state.

use std::time::{Duration, Instant};

use super::{ClientMachine, State, MIN_HEARTBEAT, PING_SEQ_LEN};
use crate::app::pubsub::ops_v2::PUBLICATION_GROWTH_OVER_V1;
use crate::client::ClientEvent;
use crate::client::DisconnectReason;
use crate::protocol::{
    encode_message, Frame, FrameType, Goaway, ProtocolError, Welcome, PROTOCOL_V2,
};

impl ClientMachine {
    pub(super) fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtocolError> {
        match &self.state {
            State::Handshaking { .. } => match frame.kind {
                FrameType::Welcome => self.on_welcome(&frame.payload, now),
                FrameType::Goaway => self.on_goaway(&frame.payload, now),
                FrameType::Ping => {
                    self.queue_pong(&frame.payload, now);
                    Ok(())
                }
                FrameType::Hello | FrameType::Pong | FrameType::Data => {
                    Err(ProtocolError::Unexpected(frame.kind))
                }
            },
            State::Open => match frame.kind {
                FrameType::Ping => {
                    self.queue_pong(&frame.payload, now);
                    Ok(())
                }
                FrameType::Pong => {
                    self.on_pong(&frame.payload, now);
                    Ok(())
                }
                FrameType::Data => self.on_data(frame),
                FrameType::Goaway => self.on_goaway(&frame.payload, now),
                FrameType::Hello | FrameType::Welcome => Err(ProtocolError::Unexpected(frame.kind)),
            },
            // Our own close: deliver answers, report a GOAWAY, send nothing more.
            State::Closing { .. } => match frame.kind {
                FrameType::Data => self.on_data(frame),
                FrameType::Goaway => {
                    let goaway = Goaway::decode(&frame.payload)?;
                    self.events.push_back(ClientEvent::Goaway(goaway));
                    Ok(())
                }
                FrameType::Hello | FrameType::Welcome | FrameType::Ping | FrameType::Pong => Ok(()),
            },
            State::Connecting | State::Waiting { .. } | State::Closed => Ok(()),
        }
    }

    fn on_welcome(&mut self, payload: &[u8], now: Instant) -> Result<(), ProtocolError> {
        let welcome = Welcome::decode(payload)?;
        // §7.1: the connection speaks the version we asked for, or none.
        if welcome.version != self.config.version {
            return Err(ProtocolError::UnsupportedVersion(welcome.version));
        }
        self.negotiated = Duration::from_millis(u64::from(welcome.heartbeat_ms)).max(MIN_HEARTBEAT);
        if let Some(a) = self.adaptive.as_mut() {
            a.set_max(self.negotiated);
        }
        self.session = Some(welcome.session);
        self.welcome = Some(welcome);
        self.link.opened_at = Some(now);
        self.set_state(State::Open);
        self.events.push_back(ClientEvent::Connected {
            resumed: welcome.resumed,
            lost: welcome.lost,
            session: welcome.session,
            heartbeat: self.heartbeat_interval(),
        });
        let (max_frame, max_message) = self.server_limits();
        while let Some(message) = self.pending.pop_front() {
            self.pending_bytes -= message.len();
            if message.len() > max_message {
                self.events.push_back(ClientEvent::Undeliverable(message));
            } else {
                self.transmit.push_back(encode_message(&message, max_frame));
                self.link.last_tx = now;
            }
        }
        Ok(())
    }

    fn on_pong(&mut self, payload: &[u8], now: Instant) {
        let Ok(seq) = <[u8; PING_SEQ_LEN]>::try_from(payload).map(u64::from_be_bytes) else {
            return; // not one of ours; it still counted as a sign of life
        };
        if let Some((last, sent)) = self.link.last_ping {
            if seq == last {
                self.rtt = Some(now.saturating_duration_since(sent));
            }
        }
        if seq <= self.ping_seq {
            self.pong_seq = self.pong_seq.max(seq);
        }
        if self.link.probe.is_some_and(|probe| seq >= probe) {
            self.link.probe = None;
            if let Some(a) = self.adaptive.as_mut() {
                if let Some(interval) = a.on_success(now) {
                    self.events
                        .push_back(ClientEvent::HeartbeatChanged { interval });
                }
            }
        }
    }

    fn on_data(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        let len = self.message.len() + frame.payload.len();
        let max = self.max_receive();
        if len > max {
            return Err(ProtocolError::MessageTooLarge { len, max });
        }
        if !self.in_message && !frame.more {
            self.events.push_back(ClientEvent::Message(frame.payload));
            return Ok(());
        }
        self.message.extend_from_slice(&frame.payload);
        self.in_message = frame.more;
        if !frame.more {
            let whole = std::mem::take(&mut self.message).freeze();
            self.events.push_back(ClientEvent::Message(whole));
        }
        Ok(())
    }

    /// The largest message accepted: `max_message`, plus the 16 bytes a v2
    /// PUBLICATION adds to the publish it carries (§7.2, last common rule).
    fn max_receive(&self) -> usize {
        if self.config.version == PROTOCOL_V2 {
            self.config
                .max_message
                .saturating_add(PUBLICATION_GROWTH_OVER_V1)
        } else {
            self.config.max_message
        }
    }

    /// The peer is closing: report it, send nothing more, drain to its EOF.
    fn on_goaway(&mut self, payload: &[u8], now: Instant) -> Result<(), ProtocolError> {
        let goaway = Goaway::decode(payload)?;
        self.events.push_back(ClientEvent::Goaway(goaway.clone()));
        self.start_closing(DisconnectReason::Goaway(goaway), false, now);
        Ok(())
    }
}
