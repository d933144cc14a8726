//! The Redis engine's core on a three-master Redis Cluster started by the
//! test (tests/common/redis.rs): the slot map, and sharded pub/sub
//! (SSUBSCRIBE, SPUBLISH from the publish script) following MOVED.

mod common;

use bytes::Bytes;
use common::redis::{
    at, entries, epoch, int, open, publish, read, streams, RedisCluster, REPLY_TIMEOUT,
};
use tether::engine::redis::{
    decide, slot_of, Command, ErrorKind, PubsubKind, RedisError, RedisEvent, RedisStreams, SlotMap,
};

#[test]
fn a_cluster_round_trips_sharded_pubsub_following_moved() {
    let cluster = RedisCluster::start();
    let s = RedisStreams {
        pubsub: PubsubKind::Sharded,
        ..streams(256, 300_000)
    };
    let seed = &cluster.nodes[0];
    let mut at_seed = open(seed);
    // The slot map agrees with the cluster's.
    for key in [
        &b"foo"[..],
        b"{user1000}.following",
        b"\x00\xff{}",
        &s.keys.keys(b"news").stream,
    ] {
        let slot = int(
            &mut at_seed,
            Command::new("CLUSTER")
                .arg("KEYSLOT")
                .arg(Bytes::copy_from_slice(key)),
        );
        assert_eq!(i64::from(slot_of(key)), slot, "{key:?}");
    }
    // A channel another node serves: the seed answers SSUBSCRIBE with MOVED.
    let (channel, owner, subscribe) = (0..100)
        .find_map(|i| {
            let channel = format!("chan-{i}").into_bytes();
            let token = at_seed.send(s.subscribe([&channel[..]]));
            match at_seed.wait_event(REPLY_TIMEOUT, |e| matches!(e, RedisEvent::Reply { token: t, .. } | RedisEvent::Failed { token: t, .. } if *t == token)) {
                Some(RedisEvent::Failed { error, command, .. }) => match error.kind() {
                    Some(ErrorKind::Moved { slot, addr }) => {
                        assert_eq!(*slot, s.keys.slot(&channel));
                        Some((channel, addr.clone(), command))
                    }
                    other => panic!("SSUBSCRIBE failed: {other:?}"),
                },
                Some(_) => {
                    at_seed.request(s.unsubscribe([&channel[..]])).expect("unsubscribed");
                    None
                }
                None => panic!("no answer to SSUBSCRIBE"),
            }
        })
        .expect("some channel lives on another node");
    // CLUSTER SLOTS says the same.
    let slots = at_seed
        .request(Command::new("CLUSTER").arg("SLOTS"))
        .expect("CLUSTER SLOTS");
    let map = SlotMap::from_cluster_slots(&slots, "127.0.0.1").expect("a slot map");
    assert_eq!(map.node_for(s.keys.slot(&channel)), Some(owner.as_str()));
    assert_eq!(map.nodes().len(), 3);
    // Follow it: the command that came back, sent to the named node.
    let mut sub = open(cluster.node(&owner));
    sub.request(subscribe).expect("subscribed at the owner");
    // The publish meets the same MOVED at the seed, and lands at the owner.
    let token = at_seed.send(s.publish(&channel, Bytes::from_static(b"first"), epoch()));
    let Err(RedisError::Server(moved)) = at_seed.result_of(token) else {
        panic!("the seed ran a publish for another node's slot");
    };
    assert!(
        matches!(&moved.kind, ErrorKind::Moved { addr, .. } if *addr == owner),
        "{moved}"
    );
    let mut at_owner = open(cluster.node(&owner));
    let (e, o) = publish(&mut at_owner, &s, &channel, b"first");
    assert_eq!(o, 1);
    for i in 2..=11 {
        publish(&mut at_owner, &s, &channel, format!("m{i}").as_bytes());
    }
    for want in 1..=11 {
        let Some(RedisEvent::Message {
            kind,
            channel: name,
            payload,
        }) = sub.wait_event(REPLY_TIMEOUT, |e| matches!(e, RedisEvent::Message { .. }))
        else {
            panic!("smessage {want} did not arrive");
        };
        assert_eq!(kind, PubsubKind::Sharded);
        let p = s.publication(&name, &payload).expect("a publication");
        assert_eq!((p.epoch, p.offset, &p.channel[..]), (e, want, &channel[..]));
    }
    let d = decide(at(e, 5), read(&mut at_owner, &s, &channel, at(e, 5)));
    assert_eq!(
        entries(&d.replay)
            .iter()
            .map(|(o, _)| *o)
            .collect::<Vec<_>>(),
        (6..=11).collect::<Vec<_>>()
    );
}
