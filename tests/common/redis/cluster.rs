//! A three-master Redis Cluster of real `redis-server` processes for the
//! engine tests, and what the tests do to it: replicas, slot migrations,
//! commands on one master.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether::engine::redis::{Command as RedisCommand, KeySpace, RedisConfig, Value};

use super::{BlockingRedis, RedisOptions, RedisServer, STARTUP_TIMEOUT};

/// Three masters of a Redis Cluster with every slot assigned, killed on drop.
pub struct RedisCluster {
    /// The masters, in the order `redis-cli --cluster create` got them.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli
    /// --cluster create ... --cluster-yes` and waits for `cluster_state:ok`
    /// on each. Panics (the test fails) when that does not happen.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(RedisOptions {
                    cluster: true,
                    ..Default::default()
                })
            })
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(RedisServer::host_port))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): it comes with redis-server"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for node in &cluster.nodes {
            let mut conn = BlockingRedis::open(node.addr(), RedisConfig::default());
            loop {
                let info = conn
                    .request(RedisCommand::new("CLUSTER").arg("INFO"))
                    .expect("CLUSTER INFO");
                let info = info
                    .as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                if info.unwrap_or_default().contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster not ok on {}",
                    node.host_port()
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// `redis-cluster://HOST:PORT,...` naming every master as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(RedisServer::host_port).collect();
        format!("redis-cluster://{}", seeds.join(","))
    }

    /// `count` tether channel names (`{stem}-N`) per master, in master
    /// order: `redis-cli --cluster create` gives three masters equal slot
    /// ranges in the order they were named, 0..=5460, 5461..=10922 and
    /// 10923..=16383.
    pub fn channels_per_master(&self, stem: &str, count: usize) -> Vec<Vec<u8>> {
        let keys = KeySpace::new("tether").expect("a key space");
        let ranges = [0..=5460u16, 5461..=10922, 10923..=16383];
        let mut names = Vec::new();
        for range in ranges {
            names.extend(
                (0..)
                    .map(|i| format!("{stem}-{i}").into_bytes())
                    .filter(|c| range.contains(&keys.slot(c)))
                    .take(count),
            );
        }
        names
    }

    /// A replica of master `master`, joined with `redis-cli --cluster
    /// add-node --cluster-slave`, returned once its replication link is up.
    pub fn add_replica(&self, master: usize) -> RedisServer {
        let replica = RedisServer::start_with(RedisOptions {
            cluster: true,
            ..Default::default()
        });
        let id = self.id(master);
        let output = Command::new("redis-cli")
            .args(["--cluster", "add-node", &replica.host_port()])
            .arg(self.nodes[master].host_port())
            .args(["--cluster-slave", "--cluster-master-id"])
            .arg(String::from_utf8_lossy(&id).into_owned())
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster add-node failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let mut conn = BlockingRedis::open(replica.addr(), RedisConfig::default());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let info = conn
                .request(RedisCommand::new("INFO").arg("replication"))
                .expect("INFO");
            let info = info.as_bytes().cloned().unwrap_or_default();
            if String::from_utf8_lossy(&info).contains("master_link_status:up") {
                return replica;
            }
            assert!(Instant::now() < deadline, "the replica never synced");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `name args...` on master `node`; the reply (panics on an error).
    pub fn run(&self, node: usize, name: &'static str, args: &[&[u8]]) -> Value {
        let mut command = RedisCommand::new(name);
        for arg in args {
            command = command.arg(Bytes::copy_from_slice(arg));
        }
        let mut conn = BlockingRedis::open(self.nodes[node].addr(), RedisConfig::default());
        conn.request(command)
            .unwrap_or_else(|e| panic!("{name} {args:?} on master {node}: {e}"))
    }

    /// Master `node`'s cluster node id.
    pub fn id(&self, node: usize) -> Bytes {
        self.run(node, "CLUSTER", &[b"MYID"])
            .as_bytes()
            .cloned()
            .expect("CLUSTER MYID")
    }

    /// Starts moving `slot` from master `from` to master `to`, as `redis-cli
    /// --cluster reshard` does: IMPORTING at `to`, MIGRATING at `from`, its
    /// keys MIGRATEd. Commands for the slot at `from` are answered ASK.
    pub fn migrate_slot(&self, slot: u16, from: usize, to: usize) {
        let slot = slot.to_string();
        let port = self.nodes[to].port.to_string();
        let (from_id, to_id) = (self.id(from), self.id(to));
        self.run(
            to,
            "CLUSTER",
            &[b"SETSLOT", slot.as_bytes(), b"IMPORTING", &from_id],
        );
        self.run(
            from,
            "CLUSTER",
            &[b"SETSLOT", slot.as_bytes(), b"MIGRATING", &to_id],
        );
        let keys = self.run(
            from,
            "CLUSTER",
            &[b"GETKEYSINSLOT", slot.as_bytes(), b"1000"],
        );
        let keys: Vec<&[u8]> = keys
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k.as_bytes().map(|b| &b[..]))
            .collect();
        if !keys.is_empty() {
            let mut args: Vec<&[u8]> =
                vec![b"127.0.0.1", port.as_bytes(), b"", b"0", b"5000", b"KEYS"];
            args.extend(keys);
            self.run(from, "MIGRATE", &args);
        }
    }

    /// Ends [`RedisCluster::migrate_slot`]: `slot` belongs to master `to`,
    /// told to every master (`from` then pushes `sunsubscribe` to its shard
    /// channel subscribers, and answers MOVED).
    pub fn assign_slot(&self, slot: u16, to: usize) {
        let slot = slot.to_string();
        let to_id = self.id(to);
        for node in 0..self.nodes.len() {
            self.run(
                node,
                "CLUSTER",
                &[b"SETSLOT", slot.as_bytes(), b"NODE", &to_id],
            );
        }
    }

    /// The node serving `addr` (`HOST:PORT`, as a MOVED names it).
    pub fn node(&self, addr: &str) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.host_port() == addr)
            .unwrap_or_else(|| panic!("no node at {addr}"))
    }
}
