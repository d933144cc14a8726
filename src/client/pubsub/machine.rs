//! The sans-io v2 pub/sub client: docs/protocol.md §7.6, and nothing else.
//!
//! Inputs: [`PubsubMachine::handle_connected`] after each WELCOME,
//! [`PubsubMachine::handle_message`] for each whole DATA message,
//! [`PubsubMachine::handle_disconnected`] when the connection ends,
//! [`PubsubMachine::handle_timeout`] for UNAVAILABLE retries, and the
//! application's calls (subscribe, unsubscribe, publish). Outputs: DATA
//! payloads ([`PubsubMachine::poll_transmit`], to send on the connection
//! open now and no other), events ([`PubsubMachine::poll_event`]) and the
//! next retry time ([`PubsubMachine::poll_timeout`]). No socket, no clock.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use super::{
    check_channel, Position, PublishId, PubsubError, PubsubEvent, PubsubProtocolError, Status,
};
use crate::app::pubsub::ops_v2::{
    encode_publish, encode_subscribe, encode_unsubscribe, parse_server_msg, Publication, ServerMsg,
    SubscribeReply,
};
use crate::client::backoff::{Backoff, BackoffConfig, RandomSource, SplitMix64};
use crate::client::DisconnectReason;

/// A PUBLISH without channel and body: op, request_id, chan_len (§7.2).
const PUBLISH_HEAD: usize = 6;

/// The knobs of [`PubsubMachine`].
#[derive(Debug, Clone, PartialEq)]
pub struct PubsubConfig {
    /// When a SUBSCRIBE is answered UNAVAILABLE, retry on this schedule
    /// (§7.6.4: the §4.4 one by default); giving up (`max_attempts`) reports
    /// the channel as failed.
    pub retry: BackoffConfig,
    /// The most requests awaiting their replies on one connection; beyond
    /// it [`PubsubMachine::publish_acked`] refuses, so a publisher faster
    /// than its server cannot grow the table without bound. (SUBSCRIBE and
    /// UNSUBSCRIBE, one per channel wanted or dropped, are never refused.)
    pub max_requests: usize,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            retry: BackoffConfig::default(),
            max_requests: 65_536,
        }
    }
}

/// What we know of one channel the application wants.
#[derive(Debug)]
struct Wanted {
    /// (epoch, last delivered), once a SUBSCRIBED gave an epoch (or the
    /// application started from a position).
    position: Option<Position>,
    /// The request id of the SUBSCRIBE awaiting its reply on this connection.
    pending: Option<u32>,
    /// UNAVAILABLE answers in a row, and when to try again.
    retry: Option<Retry>,
}

#[derive(Debug)]
struct Retry {
    backoff: Backoff,
    /// When to send the next SUBSCRIBE; `None` once sent (or a WELCOME resubscribed).
    at: Option<Instant>,
}

/// A request awaiting its reply on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    /// `with_position`: it carried one, so RECOVERED may answer it.
    Subscribe {
        channel: Bytes,
        with_position: bool,
    },
    Unsubscribe,
    Publish {
        id: PublishId,
        channel: Bytes,
    },
}

/// The open connection, as far as pub/sub cares.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// The server's `max_message`, from WELCOME: the longest PUBLISH it takes.
    max_message: usize,
    /// A protocol error was found: nothing more is read or sent on it.
    broken: bool,
}

/// The v2 pub/sub state of one client across its connections.
pub struct PubsubMachine {
    config: PubsubConfig,
    /// Seeds each channel's retry schedule.
    rng: Box<dyn RandomSource + Send>,
    /// Ordered, so resubscribes go out in a stable order.
    channels: BTreeMap<Bytes, Wanted>,
    requests: HashMap<u32, Request>,
    next_request: u32,
    next_publish: u64,
    link: Option<Link>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<PubsubEvent>,
}

impl std::fmt::Debug for PubsubMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubsubMachine")
            .field("channels", &self.channels)
            .field("requests", &self.requests.len())
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl PubsubMachine {
    /// A machine with no channel wanted and no connection, drawing retry
    /// jitter from `rng`.
    pub fn new(config: PubsubConfig, rng: Box<dyn RandomSource + Send>) -> Self {
        PubsubMachine {
            config,
            rng,
            channels: BTreeMap::new(),
            requests: HashMap::new(),
            next_request: 1,
            next_publish: 1,
            link: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ----- the connection's events -----

    /// A WELCOME opened a connection whose server takes messages up to
    /// `max_message`: request ids start again at 1 and every wanted channel
    /// is resubscribed, with its position when it has one (§7.6.1).
    pub fn handle_connected(&mut self, max_message: usize, resumed: bool) {
        self.requests.clear();
        self.transmit.clear();
        self.next_request = 1;
        self.link = Some(Link {
            max_message,
            broken: false,
        });
        self.events.push_back(PubsubEvent::Connected { resumed });
        let wanted: Vec<Bytes> = self.channels.keys().cloned().collect();
        for channel in wanted {
            self.send_subscribe(&channel);
        }
    }

    /// The connection ended: what was pending on it is void, and each
    /// acknowledged publish still waiting is reported unknown (§7.6.5).
    pub fn handle_disconnected(&mut self, reason: DisconnectReason) {
        self.link = None;
        self.transmit.clear();
        for wanted in self.channels.values_mut() {
            wanted.pending = None;
            if let Some(retry) = &mut wanted.retry {
                retry.at = None; // the next WELCOME resubscribes anyway
            }
        }
        self.events.push_back(PubsubEvent::Disconnected { reason });
        let mut unknown: Vec<(PublishId, Bytes)> = self
            .requests
            .drain()
            .filter_map(|(_, request)| match request {
                Request::Publish { id, channel } => Some((id, channel)),
                Request::Subscribe { .. } | Request::Unsubscribe => None,
            })
            .collect();
        unknown.sort();
        for (id, channel) in unknown {
            self.events
                .push_back(PubsubEvent::PublishUnknown { id, channel });
        }
    }

    /// One whole DATA message from the server. An error is a PROTOCOL_ERROR
    /// (§7.2): close the connection with that GOAWAY; until the next
    /// [`PubsubMachine::handle_connected`] nothing more is read or sent.
    pub fn handle_message(
        &mut self,
        message: &Bytes,
        now: Instant,
    ) -> Result<(), PubsubProtocolError> {
        if !self.is_connected() {
            return Ok(()); // left over from a connection already given up
        }
        let result = self.on_message(message, now);
        if result.is_err() {
            if let Some(link) = &mut self.link {
                link.broken = true;
            }
            self.transmit.clear();
        }
        result
    }

    /// Time passed: resend the SUBSCRIBEs whose UNAVAILABLE retry is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_connected() {
            return;
        }
        let due: Vec<Bytes> = self
            .channels
            .iter()
            .filter(|(_, w)| {
                w.pending.is_none()
                    && w.retry
                        .as_ref()
                        .and_then(|r| r.at)
                        .is_some_and(|at| at <= now)
            })
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in due {
            self.send_subscribe(&channel);
        }
    }

    // ----- the application's calls -----

    /// Wants `channel`, starting after `from` when given (a position kept
    /// from an earlier run; the server replays what follows it or says why
    /// not), else from the stream's top. Sent now when connected, else after
    /// the next WELCOME. A channel already wanted is left as it is.
    pub fn subscribe(&mut self, channel: &[u8], from: Option<Position>) -> Result<(), PubsubError> {
        check_channel(channel)?;
        if from.is_some_and(|p| p.epoch == 0) {
            return Err(PubsubError::ZeroEpoch);
        }
        if self.channels.contains_key(channel) {
            return Ok(());
        }
        let channel = Bytes::copy_from_slice(channel);
        self.channels.insert(
            channel.clone(),
            Wanted {
                position: from,
                pending: None,
                retry: None,
            },
        );
        if self.is_connected() {
            self.send_subscribe(&channel);
        }
        Ok(())
    }

    /// Forgets `channel` and its position (§7.6.6), telling the server when
    /// connected. Returns whether it was wanted.
    pub fn unsubscribe(&mut self, channel: &[u8]) -> bool {
        if self.channels.remove(channel).is_none() {
            return false;
        }
        if self.is_connected() {
            let id = self.next_request_id();
            self.requests.insert(id, Request::Unsubscribe);
            self.transmit.push_back(encode_unsubscribe(id, channel));
        }
        true
    }

    /// Publishes without acknowledgement (request id 0): the server says
    /// nothing, whether it succeeds or not. Only on an open connection.
    pub fn publish(&mut self, channel: &[u8], body: &[u8]) -> Result<(), PubsubError> {
        self.check_publish(channel, body)?;
        self.transmit.push_back(encode_publish(0, channel, body));
        Ok(())
    }

    /// Publishes with acknowledgement; its outcome comes as an event naming
    /// the returned id: [`PubsubEvent::PublishAcked`],
    /// [`PubsubEvent::PublishFailed`], or [`PubsubEvent::PublishUnknown`] if
    /// the connection ends first. Only on an open connection.
    pub fn publish_acked(&mut self, channel: &[u8], body: &[u8]) -> Result<PublishId, PubsubError> {
        self.check_publish(channel, body)?;
        if self.requests.len() >= self.config.max_requests {
            return Err(PubsubError::TooManyRequests {
                max: self.config.max_requests,
            });
        }
        let id = PublishId(self.next_publish);
        self.next_publish += 1;
        let request_id = self.next_request_id();
        let channel = Bytes::copy_from_slice(channel);
        self.transmit
            .push_back(encode_publish(request_id, &channel, body));
        self.requests
            .insert(request_id, Request::Publish { id, channel });
        Ok(id)
    }

    // ----- outputs and state -----

    /// The next DATA payload to send on the open connection.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PubsubEvent> {
        self.events.pop_front()
    }

    /// When [`PubsubMachine::handle_timeout`] must next be called: the
    /// earliest UNAVAILABLE retry, while connected.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.is_connected() {
            return None;
        }
        self.channels
            .values()
            .filter(|w| w.pending.is_none())
            .filter_map(|w| w.retry.as_ref().and_then(|r| r.at))
            .min()
    }

    /// Whether a connection is open and usable for requests.
    pub fn is_connected(&self) -> bool {
        self.link.is_some_and(|l| !l.broken)
    }

    /// Whether the application wants `channel`.
    pub fn is_wanted(&self, channel: &[u8]) -> bool {
        self.channels.contains_key(channel)
    }

    /// The channels wanted, in byte order.
    pub fn wanted(&self) -> impl Iterator<Item = &Bytes> {
        self.channels.keys()
    }

    /// `channel`'s position: its epoch and the last offset delivered.
    pub fn position(&self, channel: &[u8]) -> Option<Position> {
        self.channels.get(channel).and_then(|w| w.position)
    }

    /// Acknowledged publishes awaiting their answer on this connection.
    pub fn publishes_pending(&self) -> usize {
        self.requests
            .values()
            .filter(|r| matches!(r, Request::Publish { .. }))
            .count()
    }

    /// Test hook: where request ids continue, to test the wrap.
    #[cfg(test)]
    pub(super) fn set_next_request_id(&mut self, id: u32) {
        self.next_request = id;
    }

    // ----- internals -----

    /// The next request id on this connection: from 1, skipping 0 on wrap
    /// and any id still pending (§7.2).
    fn next_request_id(&mut self) -> u32 {
        loop {
            let id = self.next_request;
            self.next_request = self.next_request.wrapping_add(1);
            if id != 0 && !self.requests.contains_key(&id) {
                return id;
            }
        }
    }

    fn check_publish(&self, channel: &[u8], body: &[u8]) -> Result<(), PubsubError> {
        check_channel(channel)?;
        let link = self
            .link
            .filter(|l| !l.broken)
            .ok_or(PubsubError::NotConnected)?;
        let len = PUBLISH_HEAD + channel.len() + body.len();
        if len > link.max_message {
            return Err(PubsubError::TooLarge {
                len,
                max: link.max_message,
            });
        }
        Ok(())
    }

    /// Sends a SUBSCRIBE for a wanted channel, with its position if any.
    fn send_subscribe(&mut self, channel: &Bytes) {
        let id = self.next_request_id();
        let Some(wanted) = self.channels.get_mut(channel) else {
            return;
        };
        wanted.pending = Some(id);
        let with_position = wanted.position.is_some();
        if let Some(retry) = &mut wanted.retry {
            retry.at = None;
        }
        self.transmit
            .push_back(encode_subscribe(id, channel, wanted.position));
        self.requests.insert(
            id,
            Request::Subscribe {
                channel: channel.clone(),
                with_position,
            },
        );
    }

    fn on_message(&mut self, message: &Bytes, now: Instant) -> Result<(), PubsubProtocolError> {
        match parse_server_msg(message).map_err(PubsubProtocolError::Malformed)? {
            ServerMsg::SubscribeReply(reply) => {
                let (channel, with_position) =
                    self.take_request(reply.request_id, "SUBSCRIBE_REPLY", |r| match r {
                        Request::Subscribe {
                            channel,
                            with_position,
                        } => Some((channel.clone(), *with_position)),
                        _ => None,
                    })?;
                if reply.status.is_ok() {
                    check_subscribed(&reply, with_position)?;
                }
                self.on_subscribe_reply(channel, reply, now);
            }
            ServerMsg::UnsubscribeReply(reply) => {
                // Nothing to do: the channel was forgotten when it was sent.
                self.take_request(reply.request_id, "UNSUBSCRIBE_REPLY", |r| {
                    (*r == Request::Unsubscribe).then_some(())
                })?;
            }
            ServerMsg::PublishAck(ack) => {
                let (id, channel) =
                    self.take_request(ack.request_id, "PUBLISH_ACK", |r| match r {
                        Request::Publish { id, channel } => Some((*id, channel.clone())),
                        _ => None,
                    })?;
                if ack.status.is_ok() && (ack.epoch == 0 || ack.offset == 0) {
                    return Err(PubsubProtocolError::BadAck {
                        request_id: ack.request_id,
                    });
                }
                self.events.push_back(if ack.status.is_ok() {
                    PubsubEvent::PublishAcked {
                        id,
                        channel,
                        epoch: ack.epoch,
                        offset: ack.offset,
                    }
                } else if ack.status == Status::OutcomeUnknown {
                    PubsubEvent::PublishUnknown { id, channel }
                } else {
                    PubsubEvent::PublishFailed {
                        id,
                        channel,
                        status: ack.status,
                    }
                });
            }
            ServerMsg::Publication(publication) => {
                if publication.epoch == 0 || publication.offset == 0 {
                    return Err(PubsubProtocolError::BadPublication {
                        epoch: publication.epoch,
                        offset: publication.offset,
                    });
                }
                self.on_publication(publication)
            }
        }
        Ok(())
    }

    /// Removes the pending request `id` when `of_kind` accepts it (it is the
    /// request `reply` answers), returning what `of_kind` took from it.
    fn take_request<T>(
        &mut self,
        id: u32,
        reply: &'static str,
        of_kind: impl Fn(&Request) -> Option<T>,
    ) -> Result<T, PubsubProtocolError> {
        let taken = self.requests.get(&id).and_then(of_kind);
        match taken {
            Some(taken) => {
                self.requests.remove(&id);
                Ok(taken)
            }
            None => Err(PubsubProtocolError::Unmatched {
                reply,
                request_id: id,
            }),
        }
    }

    /// §7.6.2 and §7.6.4.
    fn on_subscribe_reply(&mut self, channel: Bytes, reply: SubscribeReply, now: Instant) {
        let Some(wanted) = self.channels.get_mut(&channel) else {
            return; // unsubscribed since: the UNSUBSCRIBE follows it
        };
        if wanted.pending != Some(reply.request_id) {
            return; // an older SUBSCRIBE, replaced since (unsubscribed and subscribed again)
        }
        wanted.pending = None;
        if !reply.status.is_ok() {
            self.on_subscribe_refused(channel, reply.status, now);
            return;
        }
        wanted.retry = None;
        let old = wanted.position;
        let recovered = reply.recovered && old.is_some_and(|p| p.epoch == reply.epoch);
        if !recovered {
            wanted.position = Some(Position {
                epoch: reply.epoch,
                offset: reply.top,
            });
        }
        self.events.push_back(PubsubEvent::Subscribed {
            channel: channel.clone(),
            epoch: reply.epoch,
            top: reply.top,
            recovered,
            replayed: if recovered { reply.replay } else { 0 },
        });
        if let (false, Some(old)) = (recovered, old) {
            self.events.push_back(PubsubEvent::RecoveryFailed {
                channel,
                reason: reply.reason,
                old,
                new: Position {
                    epoch: reply.epoch,
                    offset: reply.top,
                },
            });
        }
    }

    /// UNAVAILABLE is retried on the backoff schedule; any other refusal
    /// (or giving up) is reported and the channel is no longer wanted.
    fn on_subscribe_refused(&mut self, channel: Bytes, status: Status, now: Instant) {
        if status == Status::Unavailable {
            let seed = self.rng.next_u64();
            let config = &self.config.retry;
            if let Some(wanted) = self.channels.get_mut(&channel) {
                let retry = wanted.retry.get_or_insert_with(|| Retry {
                    backoff: Backoff::new(config.clone(), Box::new(SplitMix64::new(seed))),
                    at: None,
                });
                if let Some(delay) = retry.backoff.next_delay() {
                    retry.at = Some(now.checked_add(delay).unwrap_or(now));
                    return;
                }
            }
        }
        self.channels.remove(&channel);
        self.events
            .push_back(PubsubEvent::SubscribeFailed { channel, status });
    }

    /// §7.6.3: duplicates dropped, `last + 1` delivered, a gap resubscribed.
    fn on_publication(&mut self, p: Publication) {
        let Some(wanted) = self.channels.get_mut(&p.channel) else {
            return; // not wanted (an UNSUBSCRIBE may be on its way)
        };
        let Some(position) = &mut wanted.position else {
            return; // from a subscription replaced before its SUBSCRIBED
        };
        if p.epoch == position.epoch {
            if p.offset <= position.offset {
                return; // a duplicate, e.g. replayed after it came live
            }
            if position.offset.checked_add(1) == Some(p.offset) {
                position.offset = p.offset;
                self.events.push_back(PubsubEvent::Message {
                    channel: p.channel,
                    epoch: p.epoch,
                    offset: p.offset,
                    payload: p.body,
                });
                return;
            }
        }
        // A gap: another epoch, or offsets skipped.
        if wanted.pending.is_none() {
            self.send_subscribe(&p.channel);
        }
    }
}

/// What no correct server puts in a SUBSCRIBED (§7.2, common rules).
fn check_subscribed(
    reply: &SubscribeReply,
    with_position: bool,
) -> Result<(), PubsubProtocolError> {
    let why = if reply.epoch == 0 {
        "epoch 0"
    } else if reply.recovered && !with_position {
        "RECOVERED for a SUBSCRIBE without a position"
    } else if reply.replay > 0 && !reply.recovered {
        "a replay without RECOVERED"
    } else {
        return Ok(());
    };
    Err(PubsubProtocolError::BadSubscribed {
        request_id: reply.request_id,
        why,
    })
}
