//! Session ids from the operating system's random source.
//!
//! Ids must be unguessable (a guessed id would let a stranger resume someone
//! else's session), so they come from `/dev/urandom`, read 4 KiB at a time to
//! keep the syscalls off the per-connection path.

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
        if self.used + 16 > POOL_BYTES {
            self.source.read_exact(&mut self.pool[..])?;
            self.used = 0;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.pool[self.used..self.used + 16]);
        // Never hand the same bytes out twice.
        self.pool[self.used..self.used + 16].fill(0);
        self.used += 16;
        Ok(SessionId(id))
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
}
