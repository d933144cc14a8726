//! The hashed timing wheel that holds every deadline in the server.
//!
//! Time is cut into ticks. The wheel is a ring of `slots` lists (a power of
//! two), and an entry due at tick `d` is linked into slot `d & (slots - 1)`.
//! Entries live in one `Vec` of nodes, reused through a free list and linked
//! into their slot by `u32` index, so insert and cancel are O(1) and nothing
//! allocates once the wheel has grown to its peak. A deadline more than one
//! revolution away shares its slot with nearer ones: each node keeps its
//! absolute deadline, and a visit to the slot fires only the entries that are
//! due and leaves the rest for a later revolution. [`Wheel::advance`] walks the
//! slots between the tick it last reached and `now` (at most one revolution,
//! however far time jumped), skipping empty slots with an occupancy bitmap. It
//! hands back at most `max_expired` values per call, so a burst of expiries
//! cannot stall the event loop; it stops where it is and resumes there on the
//! next call. An entry whose deadline has already passed when it is inserted
//! goes on a separate ready list, which the next `advance` fires first. The
//! wheel never reads a clock: ticks come in as plain numbers, which is what
//! lets the tests drive it with a fake clock.

use std::fmt;

use crate::time::Tick;

#[cfg(test)]
mod tests;

/// End of a list / no node. Node indices stay below it (see `alloc`).
const NIL: u32 = u32::MAX;

/// Fewest slots a wheel has: one bitmap word, so the bitmap is never empty.
const MIN_SLOTS: usize = 64;

/// Most slots a wheel has: 2^20 slots cost 8 MiB of list heads and 128 KiB of
/// bitmap; a larger request is almost certainly a unit mistake, and capping it
/// keeps slot indices well inside `u32`.
const MAX_SLOTS: usize = 1 << 20;

/// Bits per occupancy-bitmap word.
const WORD_BITS: usize = u64::BITS as usize;

/// Handle returned by [`Wheel::insert`], used to cancel the entry.
///
/// It carries the node's generation, so an id kept after its entry fired or
/// was cancelled (and the node reused for another entry) is recognised as
/// stale and ignored instead of cancelling a stranger's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// The head and tail of one slot's doubly linked list (or the ready list).
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// One entry: linked into a list while pending, on the free list otherwise.
#[derive(Debug)]
struct Node<T> {
    /// Absolute deadline; decides which revolution of its slot fires it.
    deadline: Tick,
    prev: u32,
    /// Next node in the list, or the next free node while vacant.
    next: u32,
    /// Bumped each time the node is freed, so old [`TimerId`]s go stale.
    generation: u32,
    /// The list the node is linked into (a slot or the ready list); `NIL` while vacant.
    list: u32,
    /// `Some` exactly while the entry is pending.
    value: Option<T>,
}

/// A hashed timing wheel of values of type `T`, driven by ticks passed in.
///
/// Insert and cancel are O(1); `advance` costs the slots it visits plus the
/// entries in them; `next_expiry` reads the occupancy bitmap a word at a time.
/// Memory grows to the peak number of pending entries and is reused after.
pub struct Wheel<T> {
    nodes: Vec<Node<T>>,
    /// Head of the free list threaded through vacant nodes' `next`.
    free_head: u32,
    free_len: usize,
    /// One list per slot, then the ready list at index `ready`.
    lists: Vec<List>,
    /// Index in `lists` of the ready list: entries already due when inserted.
    ready: u32,
    /// Bit `s` set iff slot `s`'s list is non-empty.
    occupied: Vec<u64>,
    /// `slots - 1`.
    mask: u64,
    /// Every tick up to here has been processed: pending entries in slots are
    /// due after it, entries on the ready list at or before it.
    current: Tick,
    len: usize,
}

impl<T> Wheel<T> {
    /// A wheel of `slots` slots (rounded up to a power of two, at least 64,
    /// at most 2^20) whose time starts at tick `now`.
    pub fn new(slots: usize, now: Tick) -> Self {
        Self::with_capacity(slots, now, 0)
    }

    /// Like [`Wheel::new`], with room for `capacity` pending entries reserved
    /// up front, so that many timers can be inserted without allocating.
    pub fn with_capacity(slots: usize, now: Tick, capacity: usize) -> Self {
        let slots = slots.clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two();
        let mut lists = Vec::with_capacity(slots + 1);
        lists.resize(slots + 1, List::EMPTY);
        Wheel {
            nodes: Vec::with_capacity(capacity),
            free_head: NIL,
            free_len: 0,
            lists,
            ready: slots as u32,
            occupied: vec![0; slots / WORD_BITS],
            mask: slots as u64 - 1,
            current: now,
            len: 0,
        }
    }

    /// Schedules `value` to fire at tick `deadline` and returns its handle.
    ///
    /// A deadline at or before the current tick fires on the next
    /// [`advance`](Wheel::advance), even one that does not move time.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 1` entries would be pending at once (node
    /// indices are `u32`; that many nodes would need well over 100 GiB).
    pub fn insert(&mut self, deadline: Tick, value: T) -> TimerId {
        let list = if deadline <= self.current {
            self.ready
        } else {
            (deadline & self.mask) as u32
        };
        let index = self.alloc(deadline, list, value);
        self.link_back(list, index);
        self.len += 1;
        TimerId {
            index,
            generation: self.nodes[index as usize].generation,
        }
    }

    /// Removes a pending entry and returns its value.
    ///
    /// Returns `None` if `id` is stale: its entry already fired or was
    /// cancelled, even if the node has since been reused for another entry.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let node = self.nodes.get(id.index as usize)?;
        if node.generation != id.generation || node.value.is_none() {
            return None;
        }
        self.unlink(id.index);
        self.release(id.index)
    }

    /// The deadline of a pending entry, or `None` if `id` is stale. Lets a
    /// caller decide whether an existing timer already covers a new deadline.
    pub fn deadline(&self, id: TimerId) -> Option<Tick> {
        let node = self.nodes.get(id.index as usize)?;
        (node.generation == id.generation && node.value.is_some()).then_some(node.deadline)
    }

    /// Moves time forward to `now` and pushes the values of expired entries
    /// (deadline <= `now`) into `out`, at most `max_expired` of them.
    ///
    /// Returns `true` exactly when expired entries remain because the cap was
    /// hit; the caller should call again soon (poll with a zero timeout). The
    /// next call resumes where this one stopped, so nothing is skipped or
    /// fired twice. An entry due after `now` is never returned. A `now` before
    /// the current tick is treated as the current tick: time never goes back.
    #[must_use = "`true` means expired entries are still waiting: call advance again soon"]
    pub fn advance(&mut self, now: Tick, max_expired: usize, out: &mut Vec<T>) -> bool {
        let now = now.max(self.current);
        let mut budget = max_expired;
        if self.drain_list(self.ready, now, &mut budget, out) {
            return true;
        }
        // One revolution from `current + 1` visits every slot, so a longer jump
        // needs no more: each visit fires everything in the slot due by `now`.
        let slots = self.mask + 1;
        let limit = if now - self.current >= slots {
            self.current.saturating_add(slots)
        } else {
            now
        };
        while self.current < limit && self.len > 0 {
            let from = self.current + 1;
            let Some(distance) = self.next_occupied(from) else {
                break;
            };
            // No overflow: every entry in a slot is due within `u64`.
            let Some(tick) = from.checked_add(distance) else {
                break;
            };
            if tick > limit {
                break;
            }
            if self.drain_list((tick & self.mask) as u32, now, &mut budget, out) {
                // Entries left in this slot are due after `tick - 1`, and so are
                // those in slots not visited yet: resume at `tick` next time.
                self.current = tick - 1;
                self.debug_check_counts();
                return true;
            }
            // What is left in this slot is due after `now`, hence after `tick`.
            self.current = tick;
        }
        self.current = now;
        self.debug_check_counts();
        false
    }

    /// The earliest tick at which an entry may be due, or `None` when empty.
    ///
    /// This is the tick of the next occupied slot, found in the occupancy
    /// bitmap a word at a time. It may be earlier than the true earliest
    /// deadline (the slot can hold entries for later revolutions; waking then
    /// costs one slot visit) but never later. If an entry is already overdue
    /// it is the current tick.
    pub fn next_expiry(&self) -> Option<Tick> {
        if self.lists[self.ready as usize].head != NIL {
            return Some(self.current);
        }
        if self.len == 0 {
            return None;
        }
        let from = self.current.checked_add(1)?;
        let distance = self.next_occupied(from);
        debug_assert!(distance.is_some(), "pending entries but no occupied slot");
        from.checked_add(distance?)
    }

    /// The number of pending entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tick the wheel has advanced to. After an `advance` cut short by
    /// its cap this can be behind the `now` that was passed.
    pub fn current_tick(&self) -> Tick {
        self.current
    }

    /// The number of slots, after rounding: one revolution, in ticks.
    pub fn slots(&self) -> usize {
        self.lists.len() - 1
    }

    /// Takes a node off the free list (or pushes a new one) holding `value`.
    fn alloc(&mut self, deadline: Tick, list: u32, value: T) -> u32 {
        if self.free_head != NIL {
            let index = self.free_head;
            let node = &mut self.nodes[index as usize];
            debug_assert!(node.value.is_none() && node.list == NIL);
            self.free_head = node.next;
            self.free_len -= 1;
            node.deadline = deadline;
            node.prev = NIL;
            node.next = NIL;
            node.list = list;
            node.value = Some(value);
            return index;
        }
        let index = self.nodes.len();
        assert!(
            index < NIL as usize,
            "timing wheel full: {index} pending entries"
        );
        self.nodes.push(Node {
            deadline,
            prev: NIL,
            next: NIL,
            generation: 0,
            list,
            value: Some(value),
        });
        index as u32
    }

    /// Appends node `index` to `list` (FIFO, so equal deadlines fire in
    /// insertion order) and marks the slot occupied.
    fn link_back(&mut self, list: u32, index: u32) {
        let tail = self.lists[list as usize].tail;
        let node = &mut self.nodes[index as usize];
        node.prev = tail;
        node.next = NIL;
        if tail == NIL {
            self.lists[list as usize].head = index;
            self.set_occupied(list, true);
        } else {
            self.nodes[tail as usize].next = index;
        }
        self.lists[list as usize].tail = index;
    }

    /// Unlinks node `index` from its list, clearing the slot's bit if it empties.
    fn unlink(&mut self, index: u32) {
        let node = &self.nodes[index as usize];
        let (prev, next, list) = (node.prev, node.next, node.list);
        debug_assert!(list != NIL, "unlinking a vacant node");
        if prev == NIL {
            self.lists[list as usize].head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list as usize].tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        if self.lists[list as usize].head == NIL {
            debug_assert!(self.lists[list as usize].tail == NIL);
            self.set_occupied(list, false);
        }
    }

    /// Puts an unlinked node on the free list, bumping its generation so
    /// outstanding ids go stale, and returns its value.
    fn release(&mut self, index: u32) -> Option<T> {
        let node = &mut self.nodes[index as usize];
        let value = node.value.take();
        debug_assert!(value.is_some(), "releasing a vacant node");
        node.generation = node.generation.wrapping_add(1);
        node.list = NIL;
        node.prev = NIL;
        node.next = self.free_head;
        self.free_head = index;
        self.free_len += 1;
        self.len -= 1;
        value
    }

    /// Fires every entry of `list` due by `now`, in list order, while budget
    /// lasts. Returns `true` if it stopped on a due entry for want of budget.
    fn drain_list(&mut self, list: u32, now: Tick, budget: &mut usize, out: &mut Vec<T>) -> bool {
        let mut index = self.lists[list as usize].head;
        while index != NIL {
            let node = &self.nodes[index as usize];
            let next = node.next;
            if node.deadline <= now {
                if *budget == 0 {
                    return true;
                }
                *budget -= 1;
                self.unlink(index);
                if let Some(value) = self.release(index) {
                    out.push(value);
                }
            }
            index = next;
        }
        false
    }

    /// Sets or clears slot `list`'s occupancy bit (the ready list has none).
    fn set_occupied(&mut self, list: u32, occupied: bool) {
        if list == self.ready {
            return;
        }
        let slot = list as usize;
        let bit = 1u64 << (slot % WORD_BITS);
        let word = &mut self.occupied[slot / WORD_BITS];
        if occupied {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    /// Distance in ticks (0..slots) from tick `from` to the next tick whose
    /// slot is occupied, wrapping once around the ring; `None` if all are empty.
    fn next_occupied(&self, from: Tick) -> Option<u64> {
        let start = (from & self.mask) as usize;
        let words = self.occupied.len();
        let first = start / WORD_BITS;
        let word = self.occupied[first] & (u64::MAX << (start % WORD_BITS));
        if word != 0 {
            let slot = first * WORD_BITS + word.trailing_zeros() as usize;
            return Some((slot - start) as u64);
        }
        // The last step revisits the first word: its bits at or above `start`
        // are known clear, so any bit found there lies below `start`.
        for step in 1..=words {
            let index = (first + step) % words;
            let word = self.occupied[index];
            if word != 0 {
                let slot = (index * WORD_BITS + word.trailing_zeros() as usize) as u64;
                return Some(slot.wrapping_sub(start as u64) & self.mask);
            }
        }
        None
    }

    /// Cheap consistency check run on every advance in debug builds.
    fn debug_check_counts(&self) {
        debug_assert_eq!(self.len + self.free_len, self.nodes.len());
        debug_assert_eq!(
            self.len == 0,
            self.occupied.iter().all(|w| *w == 0) && self.lists[self.ready as usize].head == NIL
        );
    }

    /// Full O(slots + entries) check of every invariant, for tests.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut linked = 0;
        for (list, heads) in self.lists.iter().enumerate() {
            let is_ready = list == self.ready as usize;
            if !is_ready {
                let bit = self.occupied[list / WORD_BITS] >> (list % WORD_BITS) & 1 == 1;
                assert_eq!(
                    bit,
                    heads.head != NIL,
                    "bitmap bit {list} disagrees with its list"
                );
            }
            let mut prev = NIL;
            let mut index = heads.head;
            while index != NIL {
                let node = &self.nodes[index as usize];
                assert_eq!(node.prev, prev);
                assert_eq!(node.list as usize, list);
                assert!(node.value.is_some());
                if is_ready {
                    assert!(node.deadline <= self.current, "ready entry not yet due");
                } else {
                    assert_eq!(
                        (node.deadline & self.mask) as usize,
                        list,
                        "entry in wrong slot"
                    );
                    assert!(node.deadline > self.current, "overdue entry left in a slot");
                }
                linked += 1;
                prev = index;
                index = node.next;
            }
            assert_eq!(heads.tail, prev);
        }
        assert_eq!(linked, self.len);
        let mut free = 0;
        let mut index = self.free_head;
        while index != NIL {
            let node = &self.nodes[index as usize];
            assert!(node.value.is_none() && node.list == NIL);
            free += 1;
            index = node.next;
        }
        assert_eq!(free, self.free_len);
        assert_eq!(linked + free, self.nodes.len());
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("slots", &self.slots())
            .field("current", &self.current)
            .field("len", &self.len)
            .field("next_expiry", &self.next_expiry())
            .finish()
    }
}
