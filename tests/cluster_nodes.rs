//! Tether nodes joined through one real `redis-server` (`--engine
//! redis://...`, issue 12): subscribers spread over three nodes and a
//! publisher on one get every publication in order with contiguous offsets
//! (also over a three-master Redis Cluster, `--engine redis-cluster://...`,
//! with channels on every master);
//! a subscriber on another node recovers from the shared history; while
//! Redis is gone publishes are refused UNAVAILABLE and connections stay up.
//!
//! Deterministic: a SUBSCRIBED reply means the node's Redis subscription is
//! in place (the node sends the read after it on the same connection), and
//! the waits for a node to reach Redis poll with a deadline.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::redis::{RedisCluster, RedisServer};
use common::{numbered_body, Client, Server};
use tether::app::pubsub::ops_v2::{Position, RecoveryReason, Status, SubscribeReply};

const CHANNEL: &[u8] = b"news";

/// A pub/sub node over the Redis at `redis`.
fn node(redis: &RedisServer) -> Server {
    node_at(&format!("redis://{}", redis.host_port()))
}

/// A pub/sub node over the engine at `url`.
fn node_at(url: &str) -> Server {
    Server::start(&["--app", "pubsub", "--engine", url, "--tick-ms", "10"])
}

/// [`node_at`] serving `/metrics` too.
fn metered_node_at(url: &str) -> Server {
    Server::start(&[
        "--app",
        "pubsub",
        "--engine",
        url,
        "--tick-ms",
        "10",
        "--metrics",
        "127.0.0.1:0",
    ])
}

/// SUBSCRIBE until the node has reached Redis (UNAVAILABLE before), bounded.
fn subscribe_when_ready(client: &mut Client, position: Option<Position>) -> SubscribeReply {
    subscribe_to_when_ready(client, CHANNEL, position)
}

/// [`subscribe_when_ready`] to `channel`.
fn subscribe_to_when_ready(
    client: &mut Client,
    channel: &[u8],
    position: Option<Position>,
) -> SubscribeReply {
    let deadline = Instant::now() + Duration::from_secs(15);
    for request_id in 1.. {
        let reply = client.subscribe_v2(request_id, channel, position);
        if reply.status != Status::Unavailable || Instant::now() > deadline {
            return reply;
        }
        sleep(Duration::from_millis(50));
    }
    unreachable!()
}

#[test]
fn subscribers_on_three_nodes_get_every_publication_in_order() {
    let redis = RedisServer::start();
    fan_out(
        &format!("redis://{}", redis.host_port()),
        &[CHANNEL.to_vec()],
    );
}

/// The same over a three-master Redis Cluster, with channels on every
/// master: each channel's publications are routed to its own master.
#[test]
fn on_a_redis_cluster_subscribers_on_three_nodes_get_every_publication_in_order() {
    let cluster = RedisCluster::start();
    fan_out(&cluster.url(), &cluster.channels_per_master("news", 1));
}

/// Three nodes over the engine at `url`: two subscribers per node and
/// channel, a publisher on the first node publishing to every channel in
/// turn; every subscriber gets every publication of its channel in order,
/// acknowledged with contiguous offsets.
fn fan_out(url: &str, channels: &[Vec<u8>]) {
    let nodes: Vec<Server> = (0..3).map(|_| node_at(url)).collect();
    let mut subscribers: Vec<(usize, Client)> = Vec::new();
    for n in &nodes {
        for (k, channel) in channels.iter().enumerate() {
            for _ in 0..2 {
                let mut c = n.open_v2(0);
                let reply = subscribe_to_when_ready(&mut c, channel, None);
                assert_eq!(reply.status, Status::Ok, "{reply:?}");
                subscribers.push((k, c));
            }
        }
    }
    let tops: Vec<(u64, u64)> = channels
        .iter()
        .map(|channel| {
            let mut c = nodes[2].open_v2(0);
            let r = subscribe_to_when_ready(&mut c, channel, None);
            (r.epoch, r.top)
        })
        .collect();
    let mut publisher = nodes[0].open_v2(0);
    let count = 40;
    for i in 1..=count {
        for (k, channel) in channels.iter().enumerate() {
            let id = (i as usize * channels.len() + k) as u32;
            publisher.publish_v2(id, channel, &numbered_body(i));
            let ack = publisher.expect_publish_ack(id);
            assert_eq!(ack.status, Status::Ok);
            assert_eq!(
                (ack.epoch, ack.offset),
                (tops[k].0, tops[k].1 + i),
                "channel {k}: contiguous offsets"
            );
        }
    }
    for (s, (k, sub)) in subscribers.iter_mut().enumerate() {
        let (epoch, top) = tops[*k];
        for i in 1..=count {
            let p = sub.expect_publication();
            assert_eq!(
                (&p.channel[..], p.epoch, p.offset, p.body.to_vec()),
                (&channels[*k][..], epoch, top + i, numbered_body(i)),
                "subscriber {s}, publication {i}"
            );
        }
    }
}

#[test]
fn a_subscriber_on_another_node_recovers_from_the_shared_history() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut publisher = a.open_v2(0);
    let first = subscribe_when_ready(&mut publisher, None);
    assert_eq!(first.status, Status::Ok);
    for i in 1..=5 {
        publisher.publish_v2(i as u32 + 100, CHANNEL, &numbered_body(i));
        // Its own subscription sees each publication too, after the ack or before.
        let mut got_ack = false;
        let mut got_pub = false;
        while !(got_ack && got_pub) {
            match publisher.recv_v2() {
                tether::app::pubsub::ops_v2::ServerMsg::PublishAck(a) => {
                    assert_eq!(a.status, Status::Ok);
                    got_ack = true;
                }
                tether::app::pubsub::ops_v2::ServerMsg::Publication(p) => {
                    assert_eq!(p.offset, first.top + i);
                    got_pub = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let mut late = b.open_v2(0);
    let position = Position {
        epoch: first.epoch,
        offset: first.top + 2,
    };
    let reply = subscribe_when_ready(&mut late, Some(position));
    assert_eq!(reply.status, Status::Ok);
    assert!(reply.recovered, "{reply:?}");
    assert_eq!(reply.reason, RecoveryReason::None);
    assert_eq!(
        (reply.epoch, reply.top, reply.replay),
        (first.epoch, first.top + 5, 3)
    );
    for i in 3..=5 {
        late.expect_numbered(CHANNEL, first.epoch, first.top + i);
    }
}

#[test]
fn while_redis_is_gone_publishes_are_refused_and_connections_stay() {
    let mut redis = RedisServer::start();
    let url = format!("redis://{}", redis.host_port());
    let a = metered_node_at(&url);
    let mut client = a.open_v2(0);
    assert_eq!(subscribe_when_ready(&mut client, None).status, Status::Ok);
    assert_eq!(a.metric("tether_engine_connected"), 1);
    redis.kill();
    // The node notices at once (EOF) or at its liveness timeout: publishes
    // are refused UNAVAILABLE from then on, never queued.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut request_id = 1;
    loop {
        client.publish_v2(request_id, CHANNEL, b"while down");
        let ack = loop {
            match client.recv_v2() {
                tether::app::pubsub::ops_v2::ServerMsg::PublishAck(a) => break a,
                _ => continue, // its own publication, from before the kill
            }
        };
        if ack.status == Status::Unavailable {
            break;
        }
        assert!(Instant::now() < deadline, "publishes still acknowledged");
        request_id += 1;
        sleep(Duration::from_millis(50));
    }
    client.sync(); // the connection is up and answering
    a.wait_metric("tether_engine_connected", 0);
    assert!(a.metric("tether_engine_publishes_refused_total") >= 1);
    let retried = common::wait_until(Duration::from_secs(10), || {
        a.metric("tether_engine_reconnects_total") >= 2
    });
    assert!(retried, "it keeps trying, with backoff");
}

/// PUBLISH until acknowledged OK (UNAVAILABLE while the node reconnects),
/// skipping the publisher's own publications; the ack.
fn publish_until_ok(client: &mut Client, body: &[u8]) -> tether::app::pubsub::ops_v2::PublishAck {
    publish_to_until_ok(client, CHANNEL, body)
}

/// [`publish_until_ok`] to `channel`.
fn publish_to_until_ok(
    client: &mut Client,
    channel: &[u8],
    body: &[u8],
) -> tether::app::pubsub::ops_v2::PublishAck {
    use tether::app::pubsub::ops_v2::ServerMsg;
    let deadline = Instant::now() + Duration::from_secs(30);
    for request_id in 1000.. {
        client.publish_v2(request_id, channel, body);
        let ack = loop {
            if let ServerMsg::PublishAck(a) = client.recv_v2() {
                break a;
            }
        };
        if ack.status == Status::Ok {
            return ack;
        }
        assert_eq!(ack.status, Status::Unavailable);
        assert!(
            Instant::now() < deadline,
            "the node never reached Redis again"
        );
        sleep(Duration::from_millis(50));
    }
    unreachable!()
}

#[test]
fn after_a_redis_restart_nodes_reconnect_resubscribe_and_deliver_again() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut subscriber = b.open_v2(0);
    let first = subscribe_when_ready(&mut subscriber, None);
    assert_eq!(first.status, Status::Ok);
    let mut publisher = a.open_v2(0);
    let ack = publish_until_ok(&mut publisher, b"before");
    assert_eq!(subscriber.expect_publication().offset, ack.offset);

    redis.restart();
    // B reconnects with backoff and subscribes "news" again on its own (its
    // subscriber stays connected and subscribed) before anything else on
    // the new connection: a SUBSCRIBED to another channel through B says
    // it is back.
    let probe = subscribe_to_when_ready(&mut subscriber, b"probe", None);
    assert_eq!(probe.status, Status::Ok);
    // A publication on A reaches B's subscriber, in a new epoch: the
    // history was lost with Redis.
    let ack = publish_until_ok(&mut publisher, b"after");
    assert_ne!(ack.epoch, first.epoch, "a fresh Redis starts a new epoch");
    let got = subscriber.expect_publication();
    assert_eq!((got.epoch, got.offset), (ack.epoch, ack.offset));
    assert_eq!(&got.body[..], b"after");
}

#[test]
fn v1_clients_publish_and_receive_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut v1_subscriber = b.open(0);
    v1_subscriber.subscribe(CHANNEL);
    v1_subscriber.sync();
    // A v2 SUBSCRIBED through each node says it has reached Redis (and,
    // on B, that the v1 subscription's Redis SUBSCRIBE went before it).
    let mut v2_on_b = b.open_v2(0);
    assert_eq!(subscribe_when_ready(&mut v2_on_b, None).status, Status::Ok);
    let mut v2_on_a = a.open_v2(0);
    let top = subscribe_when_ready(&mut v2_on_a, None);
    assert_eq!(top.status, Status::Ok);

    let mut v1_publisher = a.open(0);
    v1_publisher.publish(CHANNEL, b"hello");
    assert_eq!(
        v1_subscriber.recv_message(),
        common::pubsub::delivery(CHANNEL, b"hello"),
        "an M frame made from the PUBLICATION's body"
    );
    let p = v2_on_b.expect_publication();
    assert_eq!(
        (p.epoch, p.offset, &p.body[..]),
        (top.epoch, top.top + 1, &b"hello"[..])
    );
}

/// Subscribes racing a publisher on another node (§7.5 across nodes): each
/// subscriber, with or without a position, sees contiguous offsets from
/// where its SUBSCRIBED reply (and replay) left it to the last publication.
#[test]
fn subscribes_racing_a_publisher_on_another_node_see_no_gap_and_no_duplicate() {
    use tether::app::pubsub::ops_v2::ServerMsg;
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut first = b.open_v2(0);
    let start = subscribe_when_ready(&mut first, None);
    assert_eq!(start.status, Status::Ok);
    let mut warm = a.open_v2(0);
    assert_eq!(subscribe_when_ready(&mut warm, None).status, Status::Ok);
    drop(warm);

    let count: u64 = 300;
    let publisher_addr = a.addr;
    let publisher = std::thread::spawn(move || {
        let mut p = Client::connect(publisher_addr);
        p.handshake_v2(0);
        for i in 1..=count {
            p.publish_v2(i as u32, CHANNEL, &numbered_body(i));
            let ack = p.expect_publish_ack(i as u32);
            assert_eq!(ack.status, Status::Ok);
            if i % 10 == 0 {
                sleep(Duration::from_millis(1));
            }
        }
    });
    let last = start.top + count;
    // Subscribers come while the publisher runs; each is checked at the end.
    let mut subscribers = Vec::new();
    for round in 0..20u64 {
        let mut c = b.open_v2(0);
        // Half with a position a little behind the first subscriber's start.
        let position = (round % 2 == 0).then_some(Position {
            epoch: start.epoch,
            offset: start.top + round / 2,
        });
        let reply = c.subscribe_v2(1, CHANNEL, position);
        assert_eq!(reply.status, Status::Ok, "{reply:?}");
        let next = match position {
            Some(p) if reply.recovered => p.offset + 1,
            _ => reply.top + 1,
        };
        subscribers.push((round, c, next));
        sleep(Duration::from_millis(2));
    }
    publisher.join().expect("the publisher");
    let mut raced = 0;
    for (round, mut c, mut next) in subscribers {
        raced += u64::from(next <= last);
        while next <= last {
            match c.recv_v2() {
                ServerMsg::Publication(p) => {
                    assert_eq!(
                        (p.epoch, p.offset, p.body.to_vec()),
                        (start.epoch, next, numbered_body(next - start.top)),
                        "round {round}: contiguous"
                    );
                    next += 1;
                }
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        c.sync(); // and nothing more
    }
    for i in 1..=count {
        first.expect_numbered(CHANNEL, start.epoch, start.top + i);
    }
    assert!(raced > 0, "no subscriber came before the last publication");
}

/// A Redis Cluster master killed (no replica takes over): the node refuses
/// publishes to its channels UNAVAILABLE at once while another master's
/// channel goes on; once the master is back the node reconnects, subscribes
/// its channel again and delivers (a new epoch: nothing was persisted).
#[test]
fn on_a_redis_cluster_a_master_down_refuses_only_its_channels_until_it_is_back() {
    let mut cluster = RedisCluster::start();
    let channels = cluster.channels_per_master("shard", 1);
    let url = cluster.url();
    let a = metered_node_at(&url);
    let mut subscriber = a.open_v2(0);
    let mut firsts = Vec::new();
    for channel in &channels {
        let reply = subscribe_to_when_ready(&mut subscriber, channel, None);
        assert_eq!(reply.status, Status::Ok, "{reply:?}");
        firsts.push(reply);
    }
    a.wait_metric("tether_engine_servers_connected", 3);
    let mut publisher = a.open_v2(0);
    cluster.nodes[0].kill();
    // The node sees the close at once: the dead master's channel is
    // refused, never queued.
    let deadline = Instant::now() + Duration::from_secs(10);
    for request_id in 1.. {
        publisher.publish_v2(request_id, &channels[0], b"while down");
        if publisher.expect_publish_ack(request_id).status == Status::Unavailable {
            break;
        }
        assert!(Instant::now() < deadline, "publishes still acknowledged");
        sleep(Duration::from_millis(20));
    }
    // Another master's channel goes on (within the cluster's node timeout,
    // after which the whole cluster refuses writes: full coverage).
    publisher.publish_v2(500, &channels[1], b"other shard");
    let ack = publisher.expect_publish_ack(500);
    assert_eq!(ack.status, Status::Ok, "{ack:?}");
    let got = subscriber.expect_publication();
    assert_eq!(
        (&got.channel[..], got.offset, &got.body[..]),
        (&channels[1][..], firsts[1].top + 1, &b"other shard"[..])
    );
    assert!(a.metric("tether_engine_servers_connected") < 3);
    assert!(a.metric("tether_engine_publishes_refused_total") >= 1);

    cluster.nodes[0].restart();
    let ack = publish_to_until_ok(&mut publisher, &channels[0], b"back");
    // The subscriber's feed of that channel is back too (a new epoch).
    let got = subscriber.expect_publication();
    assert_eq!(&got.channel[..], &channels[0][..]);
    assert_eq!((got.epoch, got.offset), (ack.epoch, ack.offset));
    assert_eq!(&got.body[..], b"back");
    a.wait_metric("tether_engine_servers_connected", 3);
    assert!(a.metric("tether_engine_reconnects_total") >= 1);
    assert!(a.metric("tether_engine_slot_map_refreshes_total") >= 2);
}

/// A Redis Cluster slot moved to another master while a channel in it has
/// subscribers on two nodes: publishes follow ASK during the migration and
/// MOVED after it, the nodes subscribe again at the new master (pushed
/// `sunsubscribe`, or the MOVED) and catch up, so every subscriber gets
/// every publication once, in order.
#[test]
fn on_a_redis_cluster_a_channel_whose_slot_moves_is_followed_without_a_gap() {
    let cluster = RedisCluster::start();
    let channel = cluster.channels_per_master("moving", 1).remove(0);
    let slot = tether::engine::redis::KeySpace::new("tether")
        .expect("a key space")
        .slot(&channel);
    let url = cluster.url();
    let a = metered_node_at(&url);
    let b = node_at(&url);
    let mut subscribers = Vec::new();
    let mut first = None;
    for n in [&a, &b] {
        let mut c = n.open_v2(0);
        let reply = subscribe_to_when_ready(&mut c, &channel, None);
        assert_eq!(reply.status, Status::Ok, "{reply:?}");
        first = Some((reply.epoch, reply.top));
        subscribers.push(c);
    }
    let (epoch, top) = first.expect("subscribed");
    let mut publisher = a.open_v2(0);
    let mut published = 0u64;
    let mut publish = |count: u64| {
        for _ in 0..count {
            published += 1;
            let id = published as u32;
            publisher.publish_v2(id, &channel, &numbered_body(top + published));
            let ack = publisher.expect_publish_ack(id);
            assert_eq!(ack.status, Status::Ok, "publication {published}");
            assert_eq!((ack.epoch, ack.offset), (epoch, top + published));
        }
    };
    publish(5);
    cluster.migrate_slot(slot, 0, 1);
    publish(5); // ASK: run at master 1, the keys are there
    cluster.assign_slot(slot, 1);
    publish(5); // MOVED
    for sub in &mut subscribers {
        for i in 1..=15 {
            sub.expect_numbered(&channel, epoch, top + i);
        }
        sub.sync(); // and nothing more: no duplicate
    }
    assert!(a.metric("tether_engine_redirects_total") >= 2);
}

/// A manual failover (`CLUSTER FAILOVER` on a replica): the nodes follow
/// the channel to the promoted replica (MOVED from the old master, the slot
/// map read again) and its subscribers miss nothing (same epoch: the
/// stream was replicated).
#[test]
fn on_a_redis_cluster_a_failover_to_a_replica_is_followed_without_a_gap() {
    let cluster = RedisCluster::start();
    let replica = cluster.add_replica(0);
    let channel = cluster.channels_per_master("failover", 1).remove(0);
    let url = cluster.url();
    let (a, b) = (node_at(&url), node_at(&url));
    let mut subscriber = b.open_v2(0);
    let first = subscribe_to_when_ready(&mut subscriber, &channel, None);
    assert_eq!(first.status, Status::Ok, "{first:?}");
    let mut publisher = a.open_v2(0);
    let before = publish_to_until_ok(&mut publisher, &channel, b"before");
    expect_body(&mut subscriber, &channel, before.offset, b"before");

    let mut at_replica = common::redis::open(&replica);
    at_replica
        .request(tether::engine::redis::Command::new("CLUSTER").arg("FAILOVER"))
        .expect("CLUSTER FAILOVER");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let role = at_replica
            .request(tether::engine::redis::Command::new("ROLE"))
            .expect("ROLE");
        let promoted = role
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r.as_bytes())
            == Some(&bytes::Bytes::from_static(b"master"));
        if promoted {
            break;
        }
        assert!(Instant::now() < deadline, "the replica was not promoted");
        sleep(Duration::from_millis(50));
    }
    let after = publish_to_until_ok(&mut publisher, &channel, b"after");
    assert_eq!(
        (after.epoch, after.offset),
        (before.epoch, before.offset + 1),
        "the stream was replicated: same epoch, next offset"
    );
    expect_body(&mut subscriber, &channel, after.offset, b"after");
    subscriber.sync();
}

/// The next message is the PUBLICATION at `offset` of `channel` with `body`.
fn expect_body(client: &mut Client, channel: &[u8], offset: u64, body: &[u8]) {
    let p = client.expect_publication();
    assert_eq!(
        (&p.channel[..], p.offset, &p.body[..]),
        (channel, offset, body)
    );
}
