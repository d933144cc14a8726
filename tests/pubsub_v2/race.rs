//! Publications racing recoveries (docs/protocol.md §7.5, §7.6): one publisher
//! publishes a bounded run without pause while followers keep leaving and
//! resubscribing from their positions, on new connections (after a reset or
//! with the old one still open), or on the same one by a replacing SUBSCRIBE
//! or after an UNSUBSCRIBE.
//!
//! Each follower applies the client rule of §7.6 (an offset at or below the
//! last one seen is a duplicate and dropped; last + 1 is delivered; anything
//! else is a gap) and checks §7.5 strictly on top of it: on one subscription
//! the offsets go up by exactly one, the replay is exactly position + 1..=top,
//! and the only duplicates are the ones §7.5 allows, the publications of a
//! replaced subscription that arrived before the replacing SUBSCRIBE's reply
//! and that its replay repeats. In the end every follower has had every
//! offset once, in order.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use tether::app::pubsub::ops_v2::{Publication, ServerMsg, Status, SubscribeReply};

use crate::common::{describe_publication as describe, numbered_body, Client, Server};
use crate::{at, recovered, subscribed, CH};

/// The publications of the run.
const PUBLICATIONS: u64 = 3000;
/// The followers resubscribing during it.
const FOLLOWERS: usize = 4;
/// At most this many publications are read between two resubscriptions.
const MAX_BURST: u64 = 40;

/// What a follower did, for the log.
#[derive(Debug, Default)]
struct FollowerStats {
    /// Resubscriptions on a new connection.
    reconnects: u64,
    /// Replacing SUBSCRIBEs on the same connection.
    replacements: u64,
    /// UNSUBSCRIBEs followed by a SUBSCRIBE on the same connection.
    returns: u64,
    /// Replayed publications received.
    replayed: u64,
    /// Duplicates dropped (all of them ones §7.5 allows).
    duplicates: u64,
}

/// A follower's current connection and subscription.
struct Subscription {
    client: Client,
    /// The offset its next PUBLICATION must have.
    next: u64,
    /// The last request id used on this connection.
    request_id: u32,
}

/// One client of the race, holding its position like the library does.
struct Follower {
    name: String,
    addr: SocketAddr,
    epoch: u64,
    /// The application's position: offsets 1..=last were delivered, each
    /// once and in order.
    last: u64,
    /// xorshift state: how many to read, how to resubscribe.
    rng: u64,
    stats: FollowerStats,
}

impl Follower {
    fn new(index: usize, addr: SocketAddr, epoch: u64) -> Follower {
        Follower {
            name: format!("follower {index}"),
            addr,
            epoch,
            last: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1),
            stats: FollowerStats::default(),
        }
    }

    /// A number in 0..n from a fixed sequence per follower.
    fn below(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    /// Reads and resubscribes until every publication has been delivered;
    /// then nothing more may arrive.
    fn run(mut self) -> FollowerStats {
        let mut sub = self.subscribe_on_new_connection();
        while self.last < PUBLICATIONS {
            let burst = 1 + self.below(MAX_BURST);
            for _ in 0..burst {
                if self.last == PUBLICATIONS {
                    break;
                }
                let p = self.read(&mut sub);
                assert!(
                    self.deliver(&p),
                    "{}: offset {} again, outside a replacing SUBSCRIBE's window",
                    self.name,
                    p.offset
                );
            }
            if self.last == PUBLICATIONS {
                break;
            }
            match self.below(4) {
                0 => {
                    sub.client.abort();
                    sub = self.subscribe_on_new_connection();
                }
                1 => {
                    // The old connection stays subscribed meanwhile.
                    let old = std::mem::replace(&mut sub, self.subscribe_on_new_connection());
                    drop(old);
                }
                2 => self.replace(&mut sub),
                _ => self.leave_and_return(&mut sub),
            }
        }
        sub.client.sync();
        self.stats
    }

    /// A new connection and a SUBSCRIBE from the position.
    fn subscribe_on_new_connection(&mut self) -> Subscription {
        let mut client = Client::connect(self.addr);
        client.handshake_v2(0);
        let position = self.last;
        let reply = client.subscribe_v2(1, CH, at(self.epoch, position));
        self.check_recovered(&reply, position);
        self.stats.reconnects += 1;
        Subscription {
            client,
            next: position + 1,
            request_id: 1,
        }
    }

    /// A replacing SUBSCRIBE from the position on the same connection. The
    /// old subscription's publications may come until the reply; the replay
    /// then starts after the position, repeating exactly those.
    fn replace(&mut self, sub: &mut Subscription) {
        let position = self.last;
        sub.request_id += 1;
        sub.client
            .send_subscribe_v2(sub.request_id, CH, at(self.epoch, position));
        let reply = loop {
            match sub.client.recv_v2() {
                ServerMsg::Publication(p) => {
                    self.check_next(sub, &p);
                    assert!(
                        self.deliver(&p),
                        "{}: the old subscription repeated offset {}",
                        self.name,
                        p.offset
                    );
                }
                ServerMsg::SubscribeReply(r) if r.request_id == sub.request_id => break r,
                other => panic!(
                    "{}: expected a PUBLICATION or SUBSCRIBE_REPLY {}, got {other:?}",
                    self.name, sub.request_id
                ),
            }
        };
        self.check_recovered(&reply, position);
        assert!(
            reply.top >= self.last,
            "{}: top {} below offset {} already delivered",
            self.name,
            reply.top,
            self.last
        );
        self.stats.replacements += 1;
        sub.next = position + 1;
        for _ in position..self.last {
            let p = self.read(sub);
            assert!(
                !self.deliver(&p),
                "{}: the replay of a replacing SUBSCRIBE skipped offset {}",
                self.name,
                p.offset
            );
            self.stats.duplicates += 1;
        }
    }

    /// An UNSUBSCRIBE, then a SUBSCRIBE from the position on the same
    /// connection. Publications may come until the UNSUBSCRIBE_REPLY, none
    /// after it (§7.4): the SUBSCRIBE's reply must be the next message.
    fn leave_and_return(&mut self, sub: &mut Subscription) {
        sub.request_id += 1;
        sub.client.send_unsubscribe_v2(sub.request_id, CH);
        loop {
            match sub.client.recv_v2() {
                ServerMsg::Publication(p) => {
                    self.check_next(sub, &p);
                    assert!(
                        self.deliver(&p),
                        "{}: offset {} again before the UNSUBSCRIBE_REPLY",
                        self.name,
                        p.offset
                    );
                }
                ServerMsg::UnsubscribeReply(r) if r.request_id == sub.request_id => {
                    assert_eq!(r.status, Status::Ok, "{}: {r:?}", self.name);
                    break;
                }
                other => panic!(
                    "{}: expected a PUBLICATION or UNSUBSCRIBE_REPLY {}, got {other:?}",
                    self.name, sub.request_id
                ),
            }
        }
        sub.request_id += 1;
        let position = self.last;
        let reply = sub
            .client
            .subscribe_v2(sub.request_id, CH, at(self.epoch, position));
        self.check_recovered(&reply, position);
        self.stats.returns += 1;
        sub.next = position + 1;
    }

    /// A SUBSCRIBE from `position` must be recovered, with the replay of
    /// exactly what followed it (the history holds the whole run).
    fn check_recovered(&mut self, reply: &SubscribeReply, position: u64) {
        assert!(
            reply.status == Status::Ok && reply.top >= position,
            "{}: SUBSCRIBE from ({:#x}, {position}): {reply:?}",
            self.name,
            self.epoch
        );
        let replay = u32::try_from(reply.top - position).expect("replay fits u32");
        assert_eq!(
            *reply,
            recovered(reply.request_id, self.epoch, reply.top, replay),
            "{}: SUBSCRIBE from ({:#x}, {position})",
            self.name,
            self.epoch
        );
        self.stats.replayed += u64::from(replay);
    }

    /// The subscription's next PUBLICATION, which must be the one after the
    /// previous (§7.5 on one subscription: no gap, no repeat).
    fn read(&mut self, sub: &mut Subscription) -> Publication {
        let p = sub.client.expect_publication();
        self.check_next(sub, &p);
        p
    }

    fn check_next(&self, sub: &mut Subscription, p: &Publication) {
        assert_eq!(
            describe(p),
            describe(&Publication {
                epoch: self.epoch,
                offset: sub.next,
                channel: CH.into(),
                body: numbered_body(sub.next).into(),
            }),
            "{}: the subscription's next PUBLICATION",
            self.name
        );
        sub.next += 1;
    }

    /// The §7.6 rule: false for a duplicate (dropped), true when delivered.
    fn deliver(&mut self, p: &Publication) -> bool {
        if p.offset <= self.last {
            return false;
        }
        assert_eq!(p.offset, self.last + 1, "{}: a gap", self.name);
        self.last = p.offset;
        true
    }
}

#[test]
fn publications_racing_resubscriptions_reach_every_follower_once_in_order() {
    let history = PUBLICATIONS.to_string();
    let server = Server::start(&["--app", "pubsub", "--history-size", &history]);
    let addr = server.addr;
    // A subscriber that never leaves makes the stream and gives the epoch.
    let mut anchor = server.open_v2(0);
    let reply = anchor.subscribe_v2(1, CH, None);
    let epoch = reply.epoch;
    assert_eq!(reply, subscribed(1, epoch, 0));

    let start = Arc::new(Barrier::new(FOLLOWERS + 1));
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|i| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                Follower::new(i, addr, epoch).run()
            })
        })
        .collect();

    let mut publisher = server.open_v2(0);
    start.wait();
    for o in 1..=PUBLICATIONS {
        publisher.publish_v2(o as u32, CH, &numbered_body(o));
        // Spread over many loop turns, so publications land between, and in
        // the same turn as, the followers' SUBSCRIBEs.
        if o % 4 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    for o in 1..=PUBLICATIONS {
        let ack = publisher.expect_publish_ack(o as u32);
        assert_eq!(
            (ack.status, ack.epoch, ack.offset),
            (Status::Ok, epoch, o),
            "PUBLISH_ACK {o}"
        );
    }
    publisher.sync();

    for (i, f) in followers.into_iter().enumerate() {
        let stats = f
            .join()
            .unwrap_or_else(|_| panic!("follower {i} failed (its panic is above)"));
        eprintln!("follower {i}: {stats:?}");
    }
    for o in 1..=PUBLICATIONS {
        anchor.expect_numbered(CH, epoch, o);
    }
    anchor.sync();
}
