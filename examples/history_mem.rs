//! What a channel stream's history costs in memory (protocol v2, §7.3).
//!
//! Fills a [`Streams`] with `channels` streams of `entries` held publications
//! of `bytes` bytes each (defaults: 10,000 × 256 × 64 B, the figure),
//! with no limit reached, and reports per held publication and in total:
//! - Rust heap bytes, seen by a counting global allocator: the publication
//!   buffers, their shared-ownership headers, the history entries and the
//!   indexes;
//! - malloc's in-use bytes (adds malloc's per-chunk overhead);
//! - the process's resident set growth;
//! - what the server counts against `--history-memory` (held bytes plus
//!   `ENTRY_OVERHEAD` per held publication, plus channel length + 64 per
//!   stream), for comparison: it should be close to the resident growth.
//!
//! Each publication is encoded into its own `Vec` and frozen into `Bytes`, as
//! the server's encoder would, and held by reference count (the history keeps
//! one clone, fan-out another).
//!
//! Run: `cargo run --release --example history_mem [channels] [entries] [bytes]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tether::app::pubsub::streams::{HistoryLimits, Streams};
use tether::time::Span;

/// Counts the bytes currently allocated through Rust's global allocator
/// (`realloc` goes through `alloc` and `dealloc` by default).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Rust heap bytes, malloc in-use bytes and resident set bytes, right now.
fn usage() -> (usize, usize, usize) {
    // SAFETY: mallinfo2 only reads glibc's allocator statistics.
    let malloc = unsafe { libc::mallinfo2() }.uordblks;
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .unwrap_or(0);
    (LIVE.load(Ordering::Relaxed), malloc, rss_kb * 1024)
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("a whole number"))
        .unwrap_or(default)
}

fn main() {
    let channels = arg(1, 10_000);
    let entries = arg(2, 256);
    let bytes = arg(3, 64);
    let limits = HistoryLimits {
        size: entries,
        ttl: Span::from_ticks(u64::MAX / 4),
        memory: usize::MAX,
    };
    let mut epoch = 0;
    let mut streams = Streams::new(
        limits,
        Box::new(move || {
            epoch += 1;
            epoch
        }),
    );
    let names: Vec<String> = (0..channels).map(|c| format!("channel-{c:05}")).collect();
    let before = usage();
    for round in 0..entries {
        for name in &names {
            let published = streams.publish(name.as_bytes(), round as u64, |epoch, offset| {
                let mut v = Vec::with_capacity(bytes);
                v.extend_from_slice(&epoch.to_be_bytes());
                v.extend_from_slice(&offset.to_be_bytes());
                v.resize(bytes, 0);
                Bytes::from(v)
            });
            // Fan-out's clone, dropped once sent.
            drop(published.publication.clone());
        }
    }
    let after = usage();
    let stats = streams.stats();
    assert_eq!(stats.held, channels * entries, "nothing trimmed");
    let held = stats.held as f64;
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "{channels} channels x {entries} entries x {bytes} B = {} held publications, {:.1} MiB of payload",
        stats.held,
        mib(stats.held_bytes)
    );
    for (what, b, a) in [
        ("Rust heap", before.0, after.0),
        ("malloc in use", before.1, after.1),
        ("resident set", before.2, after.2),
    ] {
        let grew = a.saturating_sub(b);
        println!(
            "{what:>14}: {:8.1} MiB, {:6.1} B per entry ({:5.1} B beyond the payload)",
            mib(grew),
            grew as f64 / held,
            grew as f64 / held - bytes as f64
        );
    }
    println!(
        "counted against --history-memory: {:.1} MiB, {:.1} B per entry",
        mib(stats.memory),
        stats.memory as f64 / held
    );
}
