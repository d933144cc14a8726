//! `tether-cli sub`: subscribe and print every publication once, in order,
//! across reconnects.

use std::time::{Duration, Instant};

use tether::client::pubsub::{PubsubClient, PubsubConfig, PubsubEvent};

use crate::args::SubArgs;
use crate::connect::Target;
use crate::output::{channel_text, event_json, position_text, Out};
use crate::Fail;

/// How long one wait lasts without `--timeout-s` (it just loops).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Runs until `--count` messages arrived, `--timeout-s` passed, or the
/// client is closed for good.
pub fn run(args: &SubArgs, target: Target) -> Result<(), Fail> {
    let mut client =
        PubsubClient::connect(&target.addrs[..], target.config, PubsubConfig::default())
            .map_err(|e| Fail::Runtime(format!("cannot connect to {}: {e}", target.shown)))?;
    for channel in &args.channels {
        client
            .subscribe(channel.as_bytes(), args.from)
            .map_err(|e| Fail::Usage(format!("CHANNEL {channel:?}: {e}")))?;
    }
    let deadline = args
        .timeout_s
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut out = Out::stdout();
    let mut received: u64 = 0;
    let result = loop {
        if args.count.is_some_and(|count| received >= count) {
            break Ok(());
        }
        let wait = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => break timed_out(args.count, received),
            },
            None => IDLE_WAIT,
        };
        let event = match client.next_event(wait) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(e) => break Err(Fail::Runtime(format!("connection closed for good: {e}"))),
        };
        if matches!(event, PubsubEvent::Message { .. }) {
            received += 1;
        }
        match print(&mut out, &event, args.common.json) {
            Ok(()) => {}
            // The reader went away (`| head`): nothing more to do.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break Ok(()),
            Err(e) => break Err(Fail::stdout(e)),
        }
        if let PubsubEvent::SubscribeFailed { channel, status } = &event {
            eprintln!(
                "tether-cli: subscription to {:?} refused: {status}",
                channel_text(channel)
            );
            if client.machine().wanted().next().is_none() {
                break Err(Fail::Runtime("no subscription left".into()));
            }
        }
    };
    let _ = client.close();
    result
}

/// `--timeout-s` passed: fine without `--count`, a failure with it.
fn timed_out(count: Option<u64>, received: u64) -> Result<(), Fail> {
    match count {
        None => Ok(()),
        Some(count) => Err(Fail::Runtime(format!(
            "timeout: {received} of {count} messages arrived"
        ))),
    }
}

/// Prints one event: with `json` every event as its line; otherwise the
/// payloads on stdout and the recovery failures on stderr.
fn print(out: &mut Out, event: &PubsubEvent, json: bool) -> std::io::Result<()> {
    if json {
        return match event_json(event) {
            Some(line) => out.json(&line),
            None => Ok(()),
        };
    }
    match event {
        PubsubEvent::Message { payload, .. } => out.line(payload),
        PubsubEvent::RecoveryFailed {
            channel,
            reason,
            old,
            new,
        } => {
            eprintln!(
                "tether-cli: {:?}: not recovered ({reason}): publications after {} up to {} may be missing",
                channel_text(channel),
                position_text(*old),
                position_text(*new),
            );
            Ok(())
        }
        PubsubEvent::Disconnected { reason } => {
            log::info!("disconnected: {reason}");
            Ok(())
        }
        _ => Ok(()),
    }
}
