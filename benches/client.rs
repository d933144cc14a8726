//! Client state machine throughput: receiving a read buffer of small echoed
//! messages (decode, reassembly, events), a fragmented 256 KiB message, and
//! sending small messages (split + encode). No sockets: bytes and a fixed clock.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Instant;
use tether::client::{ClientConfig, ClientEvent, ClientMachine, SplitMix64};
use tether::protocol::{encode_message, SessionId, Welcome};

/// A machine past its handshake, with the server's `max_frame`.
fn open_machine(now: Instant, max_frame: u16) -> ClientMachine {
    let mut m = ClientMachine::new(ClientConfig::default(), Box::new(SplitMix64::new(1)), now);
    m.handle_connected(now);
    while m.poll_transmit().is_some() {}
    let welcome = Welcome {
        version: tether::protocol::PROTOCOL_V1,
        resumed: false,
        lost: false,
        heartbeat_ms: 30_000,
        idle_timeout_ms: 90_000,
        max_frame,
        max_message: 1 << 20,
        session: SessionId([1; 16]),
    };
    m.handle_bytes(&welcome.encode_frame(), now);
    while m.poll_event().is_some() {}
    m
}

fn drain_messages(m: &mut ClientMachine) -> usize {
    let mut n = 0;
    while let Some(event) = m.poll_event() {
        if matches!(event, ClientEvent::Message(_)) {
            n += 1;
        }
    }
    n
}

fn client(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("client");
    group.sample_size(20);

    // 64 KiB of back-to-back 56-byte messages, as one read returns them.
    let one = encode_message(&[0x5a; 56], 65_535);
    let count = 65_536 / one.len();
    let stream: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * count)
        .collect();
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("recv/64KiB_of_small_messages", |b| {
        let mut m = open_machine(now, 65_535);
        b.iter(|| {
            m.handle_bytes(black_box(&stream), now);
            drain_messages(&mut m)
        })
    });

    // One 256 KiB message in 1 KiB fragments: the reassembly path.
    let big = encode_message(&vec![0x5a; 256 * 1024], 1024);
    group.throughput(Throughput::Bytes(256 * 1024));
    group.bench_function("recv/256KiB_in_1KiB_fragments", |b| {
        let mut m = open_machine(now, 65_535);
        b.iter(|| {
            m.handle_bytes(black_box(&big), now);
            drain_messages(&mut m)
        })
    });

    // Sending 1000 small messages at a 16 KiB max_frame.
    group.throughput(Throughput::Elements(1000));
    group.bench_function("send/1000_small_messages", |b| {
        let mut m = open_machine(now, 16 * 1024);
        let payload = [0x5a; 56];
        b.iter(|| {
            for _ in 0..1000 {
                let _ = m.send(black_box(&payload), now);
            }
            let mut bytes = 0;
            while let Some(out) = m.poll_transmit() {
                bytes += out.len();
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);
