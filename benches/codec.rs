//! Frame codec throughput: encode and decode of an 8-byte PING and a 64 KiB
//! DATA frame, encoding a 64 KiB message in 4 KiB frames, and decoding a read
//! buffer full of small frames. `decode/*` is the owned decode (the server's
//! `FrameDecoder::next_frame`), `decode_ref/*` the borrowed one (`decode_frame_ref`
//! and `FrameDecoder::feed_ref`, the load generator's).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tether::protocol::{
    decode_frame_ref, encode_frame, encode_message, FrameDecoder, FrameType, Status,
};

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.sample_size(20);
    for (name, kind, len) in [
        ("ping_8B", FrameType::Ping, 0usize),
        ("data_64KiB", FrameType::Data, 65_535),
    ] {
        let payload = vec![0x5au8; len];
        let wire = encode_frame(kind, false, &payload);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode_frame(black_box(kind), false, black_box(&payload)))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            let mut decoder = FrameDecoder::new(65_535);
            b.iter(|| {
                let mut input: &[u8] = black_box(&wire);
                decoder.next_frame(&mut input).expect("valid")
            })
        });
        group.bench_function(format!("decode_ref/{name}"), |b| {
            b.iter(|| match decode_frame_ref(black_box(&wire), 65_535) {
                Ok(Status::Complete((frame, used))) => (frame.payload.len(), used),
                _ => panic!("valid"),
            })
        });
    }
    let message = vec![0x5au8; 65_536];
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("encode/message_64KiB_in_4KiB_frames", |b| {
        b.iter(|| encode_message(black_box(&message), 4096))
    });
    // A 64 KiB read buffer of back-to-back PINGs, as the reactor sees a busy peer.
    let ping = encode_frame(FrameType::Ping, false, &[]);
    let stream: Vec<u8> = ping.iter().copied().cycle().take(8 * 8192).collect();
    group.throughput(Throughput::Elements(8192));
    group.bench_function("decode/8192_pings_in_one_read", |b| {
        let mut decoder = FrameDecoder::new(65_535);
        b.iter(|| {
            let mut input: &[u8] = black_box(&stream);
            let mut n = 0;
            while let Ok(Some(_)) = decoder.next_frame(&mut input) {
                n += 1;
            }
            n
        })
    });
    group.bench_function("decode_ref/8192_pings_in_one_read", |b| {
        let mut decoder = FrameDecoder::new(65_535);
        b.iter(|| {
            let mut n = 0;
            decoder
                .feed_ref(black_box(&stream), |frame| {
                    n += frame.payload.len() + 1;
                    true
                })
                .expect("valid");
            n
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
