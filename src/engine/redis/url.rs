//! The engine URL (`--engine`, issue 12): `redis://HOST:PORT[?password=...]`
//! for one Redis, `redis-cluster://HOST:PORT,HOST:PORT,...[?password=...]`
//! for a Redis Cluster's seed nodes (the slot map is found from them).
//! `user:password@` before the host is accepted too, and `user=` for an ACL
//! user. Host names are resolved by the reactor, not here.

use std::fmt;

use super::command::PubsubKind;
use super::conn::RedisConfig;

/// Redis's port when the URL names none.
pub const DEFAULT_PORT: u16 = 6379;

/// A parsed engine URL.
#[derive(Clone, PartialEq, Eq)]
pub struct EngineUrl {
    /// `redis-cluster://`: a Redis Cluster (sharded pub/sub, MOVED/ASK).
    pub cluster: bool,
    /// `(host, port)` of the server, or of the cluster's seed nodes, in order.
    pub seeds: Vec<(String, u16)>,
    /// ACL user, if given.
    pub username: Option<String>,
    /// Password, if given.
    pub password: Option<String>,
}

impl EngineUrl {
    /// Parses `url`; the error names what is wrong and shows the expected form.
    pub fn parse(url: &str) -> Result<EngineUrl, String> {
        parse(url).map_err(|why| {
            format!(
                "engine URL {:?}: {why} (expected redis://HOST:PORT[?password=...] or \
                 redis-cluster://HOST:PORT,HOST:PORT,...[?password=...])",
                redacted(url)
            )
        })
    }

    /// Which pub/sub the engine uses: sharded on a cluster.
    pub fn pubsub(&self) -> PubsubKind {
        if self.cluster {
            PubsubKind::Sharded
        } else {
            PubsubKind::Global
        }
    }

    /// Connection settings with this URL's credentials over `base`.
    pub fn config(&self, base: RedisConfig) -> RedisConfig {
        RedisConfig {
            username: self.username.clone(),
            password: self.password.clone(),
            ..base
        }
    }
}

/// Shows the URL without its password, for logs and errors.
impl fmt::Display for EngineUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.cluster {
            "redis-cluster"
        } else {
            "redis"
        };
        let hosts: Vec<String> = self
            .seeds
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        write!(f, "{scheme}://{}", hosts.join(","))?;
        match (&self.username, &self.password) {
            (Some(u), Some(_)) => write!(f, "?user={u}&password=***"),
            (Some(u), None) => write!(f, "?user={u}"),
            (None, Some(_)) => write!(f, "?password=***"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Debug for EngineUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn parse(url: &str) -> Result<EngineUrl, String> {
    let (cluster, rest) = if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("redis-cluster://") {
        (true, rest)
    } else {
        return Err("unknown scheme".into());
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("no path is supported (database numbers do not exist in a cluster)".into());
    }
    let mut parsed = EngineUrl {
        cluster,
        seeds: Vec::new(),
        username: None,
        password: None,
    };
    let hosts = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            parsed.username = Some(decode(user)?).filter(|u| !u.is_empty());
            parsed.password = password.map(decode).transpose()?;
            hosts
        }
        None => rest,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("password", v)) => parsed.password = Some(decode(v)?),
            Some(("user", v)) => parsed.username = Some(decode(v)?),
            _ => {
                let name = pair.split('=').next().unwrap_or(pair);
                return Err(format!(
                    "unknown parameter {name:?} (known: password, user)"
                ));
            }
        }
    }
    for host in hosts.split(',') {
        parsed.seeds.push(host_port(host)?);
    }
    if !cluster && parsed.seeds.len() > 1 {
        return Err("several hosts need redis-cluster://".into());
    }
    Ok(parsed)
}

/// `HOST[:PORT]` or `[V6][:PORT]`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(format!("unclosed '[' in {s:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("missing host in {s:?}"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(format!("bad port {p:?} (1..=65535)"))?,
    };
    Ok((host.to_owned(), port))
}

/// Percent-decoding of a user or password (`%40` for `@`, ...).
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or("a '%' not followed by two hex digits in the credentials")?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials are not UTF-8 once decoded".to_owned())
}

/// `url` with anything after `password=` or before `@` masked.
fn redacted(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(at) = shown.find("password=") {
        let end = shown[at..].find('&').map_or(shown.len(), |e| at + e);
        shown.replace_range(at + 9..end, "***");
    }
    if let (Some(start), Some(at)) = (shown.find("://"), shown.rfind('@')) {
        if start + 3 <= at {
            shown.replace_range(start + 3..at, "***");
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> EngineUrl {
        EngineUrl::parse(s).unwrap()
    }

    #[test]
    fn standalone_forms() {
        let u = url("redis://127.0.0.1:6380?password=s%40cret");
        assert!(!u.cluster);
        assert_eq!(u.seeds, [("127.0.0.1".to_owned(), 6380)]);
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.pubsub(), PubsubKind::Global);
        assert_eq!(u.to_string(), "redis://127.0.0.1:6380?password=***");
        assert_eq!(
            url("redis://localhost").seeds,
            [("localhost".to_owned(), 6379)]
        );
        assert_eq!(url("redis://[::1]:7000/").seeds, [("::1".to_owned(), 7000)]);
        let u = url("redis://app:pw@redis.internal:6379?user=other");
        assert_eq!(
            (u.username.as_deref(), u.password.as_deref()),
            (Some("other"), Some("pw"))
        );
        let u = url("redis://:pw@h:1");
        assert_eq!((u.username, u.password.as_deref()), (None, Some("pw")));
        let config = url("redis://h?password=x").config(RedisConfig::default());
        assert_eq!(config.password.as_deref(), Some("x"));
    }

    #[test]
    fn cluster_seeds() {
        let u = url("redis-cluster://10.0.0.1:7000,10.0.0.2:7001,[fe80::1]:7002?password=p");
        assert!(u.cluster);
        assert_eq!(u.seeds.len(), 3);
        assert_eq!(u.seeds[2], ("fe80::1".to_owned(), 7002));
        assert_eq!(u.pubsub(), PubsubKind::Sharded);
        assert_eq!(
            u.to_string(),
            "redis-cluster://10.0.0.1:7000,10.0.0.2:7001,[fe80::1]:7002?password=***"
        );
    }

    #[test]
    fn errors_name_the_problem_and_hide_the_password() {
        for (bad, what) in [
            ("http://h:1", "unknown scheme"),
            ("redis://", "missing host"),
            ("redis://h:0", "bad port \"0\""),
            ("redis://h:70000", "bad port"),
            ("redis://h:1/3", "no path"),
            ("redis://h:1?db=2", "unknown parameter \"db\""),
            ("redis://a:1,b:2", "several hosts need redis-cluster://"),
            ("redis-cluster://a:1,", "missing host"),
            ("redis://[::1:7000", "unclosed '['"),
            ("redis://h?password=%zz", "two hex digits"),
        ] {
            let err = EngineUrl::parse(bad).unwrap_err();
            assert!(err.contains(what), "{bad}: {err}");
            assert!(err.contains("expected redis://HOST:PORT"), "{err}");
        }
        let err = EngineUrl::parse("redis://u:topsecret@h:1?password=topsecret&x=1").unwrap_err();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
