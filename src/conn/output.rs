//! A connection's queue of bytes to send, with its limits.
//!
//! Whole frames (or whole encoded messages) are queued as `Bytes`, so a
//! fan-out buffer is shared, not copied. The front buffer may be partly
//! written; it is never dropped, so whatever follows it stays frame-aligned.
//! Like Redis's client-output-buffer-limit there are two limits: a hard one
//! (`max_output`, enforced at once by the connection) and a soft one that
//! may be exceeded for a grace period; this type tracks since when.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;

use crate::time::{Span, Tick};

/// Bytes waiting for the socket.
#[derive(Debug)]
pub struct OutputQueue {
    bufs: VecDeque<Bytes>,
    /// Sum of `bufs` lengths.
    len: usize,
    /// The front buffer has been partly written: it must be finished.
    front_started: bool,
    /// Since when the queue has been continuously above the soft limit;
    /// [`NOT_OVER`] when it is not (a sentinel, not an `Option`: 8 bytes
    /// less on every connection).
    over_soft_since: Tick,
}

/// `over_soft_since` when the queue is not above the soft limit.
const NOT_OVER: Tick = Tick::MAX;

impl Default for OutputQueue {
    fn default() -> Self {
        OutputQueue {
            bufs: VecDeque::new(),
            len: 0,
            front_started: false,
            over_soft_since: NOT_OVER,
        }
    }
}

impl OutputQueue {
    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The buffers, front first, for a vectored write.
    pub fn bufs(&self) -> &VecDeque<Bytes> {
        &self.bufs
    }

    /// Appends a buffer; starts the soft-limit clock when it crosses `soft_limit` (0 = off).
    pub fn push(&mut self, bytes: Bytes, now: Tick, soft_limit: usize) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        self.bufs.push_back(bytes);
        self.start_soft_clock(now, soft_limit);
    }

    /// Starts the soft-limit clock at `now` if the queue is above `soft_limit`
    /// (0 = off) and the clock is not running yet.
    pub fn start_soft_clock(&mut self, now: Tick, soft_limit: usize) {
        if soft_limit > 0 && self.len > soft_limit && self.over_soft_since == NOT_OVER {
            self.over_soft_since = now;
        }
    }

    /// Records that the socket took `n` bytes from the front.
    pub fn consume(&mut self, mut n: usize, soft_limit: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.bufs.pop_front();
                self.front_started = false;
            } else {
                front.advance(n);
                self.front_started = true;
                n = 0;
            }
        }
        if soft_limit == 0 || self.len <= soft_limit {
            self.over_soft_since = NOT_OVER;
        }
        if self.bufs.is_empty() {
            // Give back the queue's memory: idle connections hold none.
            self.bufs = VecDeque::new();
        }
    }

    /// Drops every buffer not yet started (the peer is not reading); keeps the
    /// one in flight so a GOAWAY queued next stays frame-aligned.
    pub fn drop_unstarted(&mut self) {
        self.bufs.truncate(usize::from(self.front_started));
        self.len = self.bufs.iter().map(Bytes::len).sum();
        self.over_soft_since = NOT_OVER;
    }

    /// Forgets everything queued, even a partly written front buffer: for a
    /// transport that can no longer carry it.
    pub fn drop_all(&mut self) {
        *self = OutputQueue::default();
    }

    /// When the soft limit's grace period ends, if the queue is above it now.
    pub fn soft_deadline(&self, grace: Span) -> Option<Tick> {
        (self.over_soft_since != NOT_OVER).then(|| grace.deadline_from(self.over_soft_since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_clock_starts_above_and_stops_at_or_below_the_limit() {
        let mut q = OutputQueue::default();
        q.push(Bytes::from(vec![0; 100]), 5, 150);
        assert_eq!(q.soft_deadline(Span::from_ticks(10)), None);
        q.push(Bytes::from(vec![0; 100]), 7, 150);
        assert_eq!(q.soft_deadline(Span::from_ticks(10)), Some(18));
        q.push(Bytes::from(vec![0; 100]), 9, 150);
        assert_eq!(
            q.soft_deadline(Span::from_ticks(10)),
            Some(18),
            "the clock keeps its start"
        );
        q.consume(150, 150);
        assert_eq!(q.len(), 150);
        assert_eq!(q.soft_deadline(Span::from_ticks(10)), None);
    }

    #[test]
    fn partial_front_survives_drop_unstarted() {
        let mut q = OutputQueue::default();
        q.push(Bytes::from_static(b"abcdef"), 0, 0);
        q.push(Bytes::from_static(b"ghi"), 0, 0);
        q.consume(2, 0);
        q.drop_unstarted();
        assert_eq!(q.len(), 4);
        assert_eq!(&q.bufs()[0][..], b"cdef");
        q.consume(4, 0);
        q.drop_unstarted();
        assert!(q.is_empty());
        assert_eq!(q.bufs().capacity(), 0);
    }
}
