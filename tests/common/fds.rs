//! How many file descriptors the server process holds (`/proc/PID/fd`): the
//! scale, churn and attack tests check that every connection gives its
//! descriptor back.

use std::thread;
use std::time::{Duration, Instant};

use super::server::Server;

impl Server {
    /// How many file descriptors the server holds now.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Polls the fd count until it is at most `target` or `timeout` passes;
    /// returns the last count seen.
    pub fn wait_fd_count(&self, target: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.fd_count();
            if n <= target || Instant::now() >= deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The fd count once it has been the same for a few polls: a baseline
    /// taken while nothing is connected.
    pub fn settled_fd_count(&self) -> usize {
        let mut last = self.fd_count();
        let mut same = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while same < 5 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            let n = self.fd_count();
            if n == last {
                same += 1;
            } else {
                same = 0;
                last = n;
            }
        }
        last
    }
}
