//! `tether-cli ping`: one PING's round trip on an open connection.

use std::time::Duration;

use serde_json::json;
use tether::client::Client;

use crate::args::Common;
use crate::connect::Target;
use crate::output::Out;
use crate::Fail;

/// How long to wait for the PONG.
const PONG_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects, pings once, prints the round trip and closes.
pub fn run(common: &Common, target: Target) -> Result<(), Fail> {
    let mut client = Client::connect(&target.addrs[..], target.config)
        .map_err(|e| Fail::Runtime(format!("cannot connect to {}: {e}", target.shown)))?;
    let rtt = client
        .ping(PONG_TIMEOUT)
        .map_err(|e| Fail::Runtime(format!("ping {}: {e}", target.shown)))?;
    let mut out = Out::stdout();
    let written = if common.json {
        out.json(&json!({"event": "pong", "rtt_us": rtt.as_micros() as u64}))
    } else {
        out.line(format!("rtt {:.3} ms", rtt.as_secs_f64() * 1000.0).as_bytes())
    };
    let _ = client.close();
    written.map_err(Fail::stdout)
}
