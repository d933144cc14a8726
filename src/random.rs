//! Session ids and stream epochs from the operating system's random source.
//!
//! Both must be unguessable (a guessed session id would let a stranger resume
//! someone else's session; a guessed epoch would let a position from another
//! numbering pass as this one's) and not reused across restarts, so they come
//! from `/dev/urandom`, read 4 KiB at a time to keep the syscalls off the
//! per-connection path.

use std::fs::File;
use std::io::{self, Read};

use crate::protocol::SessionId;

const POOL_BYTES: usize = 4096;

/// A buffer of OS randomness handed out 16 bytes at a time.
pub struct RandomPool {
    source: File,
    pool: Box<[u8; POOL_BYTES]>,
    used: usize,
}

impl RandomPool {
    /// Opens the OS random source.
    pub fn open() -> io::Result<RandomPool> {
        Ok(RandomPool {
            source: File::open("/dev/urandom")?,
            pool: Box::new([0; POOL_BYTES]),
            used: POOL_BYTES,
        })
    }

    /// A fresh random session id.
    pub fn session_id(&mut self) -> io::Result<SessionId> {
        self.take().map(SessionId)
    }

    /// A fresh random stream epoch: never 0 (docs/protocol.md §7.3).
    pub fn epoch(&mut self) -> io::Result<u64> {
        loop {
            let epoch = u64::from_be_bytes(self.take()?);
            if epoch != 0 {
                return Ok(epoch);
            }
        }
    }

    /// The next `N` bytes of the pool, refilled when short.
    fn take<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        if self.used + N > POOL_BYTES {
            self.source.read_exact(&mut self.pool[..])?;
            self.used = 0;
        }
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(&self.pool[self.used..self.used + N]);
        // Never hand the same bytes out twice.
        self.pool[self.used..self.used + N].fill(0);
        self.used += N;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_across_refills() {
        let mut pool = RandomPool::open().expect("urandom");
        let ids: std::collections::HashSet<_> =
            (0..600).map(|_| pool.session_id().expect("id")).collect();
        assert_eq!(ids.len(), 600);
    }

    #[test]
    fn epochs_differ_and_are_never_zero() {
        let mut pool = RandomPool::open().expect("urandom");
        let epochs: std::collections::HashSet<_> =
            (0..1200).map(|_| pool.epoch().expect("epoch")).collect();
        assert_eq!(epochs.len(), 1200);
        assert!(!epochs.contains(&0));
    }
}
