//! `tether-cli pub`: acknowledged publishes, pipelined up to [`WINDOW`] in
//! flight, from the MESSAGE argument, stdin's lines or a numbered sequence.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc::{self, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tether::client::pubsub::{
    PublishId, PubsubClient, PubsubClientError, PubsubConfig, PubsubEvent,
};

use crate::args::{PubArgs, Source};
use crate::connect::Target;
use crate::output::{epoch_hex, Out};
use crate::Fail;

/// Acknowledged publishes in flight at most.
const WINDOW: usize = 64;
/// How long to wait for a connection or for the next acknowledgement before
/// giving up on the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to serve the connection between looks at stdin.
const STDIN_POLL: Duration = Duration::from_millis(20);

/// Publishes everything, waits for every acknowledgement, and fails if any
/// publish was refused or its outcome is unknown.
pub fn run(args: &PubArgs, target: Target) -> Result<(), Fail> {
    let mut client =
        PubsubClient::connect(&target.addrs[..], target.config, PubsubConfig::default())
            .map_err(|e| Fail::Runtime(format!("cannot connect to {}: {e}", target.shown)))?;
    client.set_request_timeout(REQUEST_TIMEOUT);
    let mut publisher = Publisher {
        client,
        channel: args.channel.clone(),
        json: args.common.json,
        in_flight: HashMap::new(),
        sent: 0,
        failures: 0,
        out: Out::stdout(),
    };
    let result = publisher.publish_all(&args.source);
    let _ = publisher.client.close();
    result?;
    match publisher.failures {
        0 => Ok(()),
        n => Err(Fail::Runtime(format!(
            "{n} of {} publishes failed",
            publisher.sent
        ))),
    }
}

struct Publisher {
    client: PubsubClient,
    channel: String,
    json: bool,
    /// Publish id to its number (1 for the first publish).
    in_flight: HashMap<PublishId, u64>,
    sent: u64,
    failures: u64,
    out: Out,
}

impl Publisher {
    fn publish_all(&mut self, source: &Source) -> Result<(), Fail> {
        match source {
            Source::One(message) => self.publish(message.as_bytes())?,
            Source::Numbered { count, rate } => {
                let start = Instant::now();
                for k in 1..=*count {
                    if let Some(rate) = rate {
                        let due = start + Duration::from_secs_f64((k - 1) as f64 / rate);
                        while let Some(left) = due.checked_duration_since(Instant::now()) {
                            if left.is_zero() {
                                break;
                            }
                            self.next_event(left)?;
                        }
                    }
                    self.publish(format!("seq:{k}").as_bytes())?;
                }
            }
            Source::Lines => self.publish_stdin()?,
        }
        self.drain()
    }

    /// Each line of stdin, read by a thread so the connection is served
    /// (heartbeats, acknowledgements) while stdin is quiet.
    fn publish_stdin(&mut self) -> Result<(), Fail> {
        let (lines, from_stdin) = mpsc::sync_channel::<Result<Vec<u8>, String>>(WINDOW);
        thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut line = Vec::new();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    Ok(_) => {
                        if line.ends_with(b"\n") {
                            line.pop();
                            if line.ends_with(b"\r") {
                                line.pop();
                            }
                        }
                        if lines.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = lines.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        loop {
            match from_stdin.try_recv() {
                Ok(Ok(line)) => self.publish(&line)?,
                Ok(Err(e)) => return Err(Fail::Runtime(format!("reading stdin: {e}"))),
                Err(TryRecvError::Empty) => {
                    self.next_event(STDIN_POLL)?;
                }
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Starts one acknowledged publish, after waiting for room in the window.
    fn publish(&mut self, body: &[u8]) -> Result<(), Fail> {
        while self.in_flight.len() >= WINDOW {
            if !self.next_event(REQUEST_TIMEOUT)? {
                return Err(Fail::Runtime(format!(
                    "no acknowledgement within {} s",
                    REQUEST_TIMEOUT.as_secs()
                )));
            }
        }
        self.sent += 1;
        let number = self.sent;
        match self.client.begin_publish(self.channel.as_bytes(), body) {
            Ok(id) => {
                self.in_flight.insert(id, number);
                Ok(())
            }
            Err(PubsubClientError::Closed(e)) => {
                Err(Fail::Runtime(format!("connection closed for good: {e}")))
            }
            Err(PubsubClientError::TimedOut) => Err(Fail::Runtime(format!(
                "no connection within {} s",
                REQUEST_TIMEOUT.as_secs()
            ))),
            Err(e) => {
                self.fail(number, &e.to_string());
                Ok(())
            }
        }
    }

    /// Waits for the outcome of every publish in flight.
    fn drain(&mut self) -> Result<(), Fail> {
        while !self.in_flight.is_empty() {
            if !self.next_event(REQUEST_TIMEOUT)? {
                let waiting = self.in_flight.len() as u64;
                self.failures += waiting;
                eprintln!(
                    "tether-cli: {waiting} publishes got no acknowledgement within {} s",
                    REQUEST_TIMEOUT.as_secs()
                );
                return Ok(());
            }
        }
        Ok(())
    }

    /// Handles one event (waiting up to `wait`); false when none came.
    fn next_event(&mut self, wait: Duration) -> Result<bool, Fail> {
        let event = match self.client.next_event(wait) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(false),
            Err(e) => return Err(Fail::Runtime(format!("connection closed for good: {e}"))),
        };
        match event {
            PubsubEvent::PublishAcked {
                id, epoch, offset, ..
            } => {
                self.in_flight.remove(&id);
                if self.json {
                    let line = json!({
                        "channel": self.channel,
                        "epoch": epoch_hex(epoch),
                        "offset": offset,
                    });
                    self.out.json(&line).map_err(Fail::stdout)?;
                }
            }
            PubsubEvent::PublishFailed { id, status, .. } => {
                if let Some(number) = self.in_flight.remove(&id) {
                    self.fail(number, &format!("refused: {status}"));
                }
            }
            PubsubEvent::PublishUnknown { id, .. } => {
                if let Some(number) = self.in_flight.remove(&id) {
                    self.fail(
                        number,
                        "outcome unknown: the connection or the server's engine lost it before the acknowledgement (not resent)",
                    );
                }
            }
            PubsubEvent::Disconnected { reason } => log::info!("disconnected: {reason}"),
            _ => {}
        }
        Ok(true)
    }

    fn fail(&mut self, number: u64, why: &str) {
        self.failures += 1;
        eprintln!("tether-cli: publish #{number} on {:?}: {why}", self.channel);
    }
}
