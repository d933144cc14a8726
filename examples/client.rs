//! Connects to a tether server, sends a few messages, prints the echoes and
//! the client's status events, then closes politely.
//!
//! ```text
//! cargo run --example client -- [ADDR] [COUNT]     # default 127.0.0.1:7600, 3
//! ```

use std::time::Duration;

use tether::client::{AdaptiveConfig, Client, ClientConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7600".to_owned());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);

    let config = ClientConfig {
        heartbeat_ms: 10_000,
        adaptive: Some(AdaptiveConfig {
            floor: Duration::from_secs(5),
            step: Duration::from_secs(5),
            ..AdaptiveConfig::default()
        }),
        ..ClientConfig::default()
    };
    let mut client = Client::connect(addr.as_str(), config)?;
    print_events(&mut client);
    println!(
        "connected to {addr}, session {}",
        client
            .session()
            .map_or_else(|| "-".to_owned(), |s| s.to_string())
    );

    for i in 0..count {
        let message = format!("hello #{i} from the tether example client");
        client.send(message.as_bytes())?;
        match client.recv_timeout(Duration::from_secs(5))? {
            Some(echo) => println!("echo: {}", String::from_utf8_lossy(&echo)),
            None => println!("no echo within 5 s"),
        }
        print_events(&mut client);
    }
    if let Some(rtt) = client.machine().rtt() {
        println!("last ping rtt: {rtt:?}");
    }

    client.close()?;
    print_events(&mut client);
    println!("closed");
    Ok(())
}

fn print_events(client: &mut Client) {
    for event in client.events() {
        println!("event: {event:?}");
    }
}
