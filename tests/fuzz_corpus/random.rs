//! Random command scripts for the pub/sub state harness, for a bounded run
//! on stable where `cargo fuzz` is not at hand:
//! `TETHER_FUZZ_RUNS=100000 cargo test --release --test fuzz_corpus -- --ignored random_`
//! (`TETHER_FUZZ_SEED` picks the sequence). Every failing input is printed in
//! hex with its panic, distinct panics once each, and the test fails;
//! `TETHER_FUZZ_INPUT=<hex>` with `random_shrink_input` shrinks one, with
//! `random_replay_input` shows its whole panic. With cargo-fuzz and nightly,
//! `cargo +nightly fuzz run pubsub_state /tmp/corpus fuzz/corpus/pubsub_state`
//! writes what it finds to the scratch directory, not to the committed seeds.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic;

use tether::fuzzing;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A script of `pubsub_state` commands (see its doc for the language),
/// weighted towards the paths that matter: several connections of both
/// versions, subscriptions with positions, short publications, turns.
fn pubsub_state_script(rng: &mut Rng) -> Vec<u8> {
    let mut s = vec![rng.byte()];
    let commands = 4 + rng.below(60);
    for _ in 0..commands {
        let roll = rng.below(100);
        let op = match roll {
            0..=11 => 0,
            12..=31 => 1,
            32..=38 => 2,
            39..=62 => 3,
            63..=64 => 4,
            65..=67 => 5,
            68..=73 => 6,
            74..=77 => 7,
            78..=93 => 8,
            _ => 9,
        };
        s.push(op);
        match op {
            0 => {
                // v1 or v2; resume a granted session half the time.
                let mode = [0, 1, 1, 2][rng.below(4) as usize];
                s.push(rng.byte() & 0xfc | mode);
            }
            1 => s.extend((0..6).map(|_| rng.byte())),
            2 => s.extend((0..3).map(|_| rng.byte())),
            3 => {
                // Body length (pick >> 3) × 3: mostly short.
                let pick = rng.byte() & if rng.below(4) == 0 { 0xff } else { 0x1f };
                s.push(pick);
                s.extend((0..2).map(|_| rng.byte()));
                s.extend((0..usize::from(pick >> 3) * 3).map(|_| rng.byte()));
            }
            4 => {
                let n = rng.below(40) as u8;
                s.extend([rng.byte(), n]);
                s.extend((0..n).map(|_| rng.byte()));
            }
            5 => s.extend((0..3).map(|_| rng.byte())),
            6 => s.extend((0..2).map(|_| rng.byte())),
            9 => s.push(rng.below(8) as u8),
            _ => {}
        }
    }
    s
}

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
#[ignore = "a long random run; set TETHER_FUZZ_RUNS"]
fn random_pubsub_state_scripts() {
    let runs: u64 = std::env::var("TETHER_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("TETHER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = format!("{} {msg}", at.unwrap_or_default()));
    }));
    // Distinct panics (by location and first line): the shortest input.
    let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for _ in 0..runs {
        let script = pubsub_state_script(&mut rng);
        if panic::catch_unwind(|| fuzzing::pubsub_state(&script)).is_err() {
            let what = LAST_PANIC.with(|p| p.borrow().lines().next().unwrap_or("").to_string());
            let kept = found.entry(what).or_insert_with(|| script.clone());
            if script.len() < kept.len() {
                *kept = script;
            }
        }
    }
    panic::set_hook(hook);
    for (what, script) in &found {
        eprintln!("{what}\n  input: {}", hex(script));
    }
    assert!(found.is_empty(), "{} distinct failures", found.len());
}

/// The panic `input` causes (location and first line), if any.
fn failure(input: &[u8]) -> Option<String> {
    let run = panic::catch_unwind(|| fuzzing::pubsub_state(input));
    run.is_err()
        .then(|| LAST_PANIC.with(|p| p.borrow().lines().next().unwrap_or("").to_string()))
}

/// Shrinks a failing input (`TETHER_FUZZ_INPUT`, hex) by dropping chunks
/// while it fails the same way, and prints the result.
#[test]
#[ignore = "shrinks TETHER_FUZZ_INPUT"]
fn random_shrink_input() {
    let Ok(text) = std::env::var("TETHER_FUZZ_INPUT") else {
        return;
    };
    let mut input: Vec<u8> = (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = format!("{} {msg}", at.unwrap_or_default()));
    }));
    let target = failure(&input).expect("the input fails");
    let at = |s: &str| s.split(' ').next().unwrap_or("").to_string();
    let mut chunk = input.len() / 2;
    while chunk > 0 {
        let mut i = 1;
        while i < input.len() {
            let mut shorter = input.clone();
            shorter.drain(i..(i + chunk).min(input.len()));
            if failure(&shorter).is_some_and(|f| at(&f) == at(&target)) {
                input = shorter;
            } else {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    panic::set_hook(hook);
    eprintln!(
        "{}\n  shrunk: {}",
        failure(&input).unwrap_or_default(),
        hex(&input)
    );
}

/// Runs `TETHER_FUZZ_INPUT` (hex) once, for its whole panic message.
#[test]
#[ignore = "replays TETHER_FUZZ_INPUT"]
fn random_replay_input() {
    let Ok(text) = std::env::var("TETHER_FUZZ_INPUT") else {
        return;
    };
    let input: Vec<u8> = (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    fuzzing::pubsub_state(&input);
}
