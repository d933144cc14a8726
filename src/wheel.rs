//! The hierarchical timing wheel that holds every deadline in the server.
//!
//! Time is cut into ticks, and ticks into revolutions of `slots` ticks (a
//! power of two). The wheel has two levels of `slots` lists each. The first
//! holds the entries due in the revolution being walked (the one that holds
//! tick `current + 1`): an entry due at tick `d` is linked into slot
//! `d & (slots - 1)`, so all the entries of a slot share one deadline and a
//! visit fires them all. An entry due in a later revolution waits in the
//! second level, in the overflow list of its revolution `d / slots` (modulo
//! `slots`). When the walk reaches the last tick of a revolution, the
//! overflow list of the next one is cascaded into the slots, moving each
//! entry once. So an entry is touched once when it is cascaded and once when
//! it fires, however many revolutions away it was, instead of once per
//! revolution. A deadline more than `slots` revolutions away shares its
//! overflow list with nearer ones and is left there by the cascade: it is
//! looked at once per `slots` revolutions (every 19 days with 4096 slots of
//! 100 ms).
//!
//! Entries live in one `Vec` of nodes, reused through a free list and linked
//! into their list by `u32` index, so insert and cancel are O(1) wherever the
//! entry sits and nothing allocates once the wheel has grown to its peak. The
//! links are kept apart from the nodes, in a parallel `Vec` a fifth the size:
//! walking a list then chases pointers through that compact array, and the
//! cache misses on the nodes themselves do not wait for one another. An
//! occupancy bitmap (one bit per list of either level) lets
//! [`Wheel::advance`] and [`Wheel::next_expiry`] skip empty slots and empty
//! revolutions a word at a time. A jump across revolutions looks at each
//! overflow list at most once: what is due fires straight from it, the
//! revolution that `now` is in moves into the slots, and only its slots up to
//! `now` are then walked. `advance` hands back at most `max_expired` values
//! per call, so a burst of expiries cannot stall the event loop; it stops
//! where it is and resumes there on the next call. Cascading is not counted
//! against that cap: it moves each entry once, more cheaply than firing it.
//! An entry whose deadline has already passed when it is inserted (or that a
//! capped jump found due but had no budget left to fire) goes on a separate
//! ready list, which the next `advance` fires first. The wheel never reads a
//! clock: ticks come in as plain numbers, which is what lets the tests drive
//! it with a fake clock.

use std::fmt;

use crate::time::Tick;

#[cfg(test)]
mod check;
#[cfg(test)]
mod tests;

/// End of a list / no node. Node indices stay below it (see `alloc`).
const NIL: u32 = u32::MAX;

/// Fewest slots a wheel has: one bitmap word per level, so no level's bitmap
/// is empty.
const MIN_SLOTS: usize = 64;

/// Most slots a wheel has: 2^20 slots cost 16 MiB of list heads (both levels)
/// and 256 KiB of bitmap; a larger request is almost certainly a unit mistake,
/// and capping it keeps list indices well inside `u32`.
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

/// The head and tail of one doubly linked list (a slot, an overflow list or
/// the ready list).
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

/// Node `i`'s neighbours in its list; kept in `Wheel::links`, apart from
/// the node, so that a list walk touches 8 bytes per entry.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    /// Next node in the list, or the next free node while vacant.
    next: u32,
}

/// One entry: linked into a list while pending, on the free list otherwise.
#[derive(Debug)]
struct Node<T> {
    /// Absolute deadline; decides the entry's list and when it fires.
    deadline: Tick,
    /// Bumped each time the node is freed, so old [`TimerId`]s go stale.
    generation: u32,
    /// Index in `lists` of the list the node is linked into; `NIL` while vacant.
    list: u32,
    /// `Some` exactly while the entry is pending.
    value: Option<T>,
}

/// A two-level hashed timing wheel of values of type `T`, driven by ticks
/// passed in.
///
/// Insert and cancel are O(1); `advance` costs the occupied slots it visits,
/// the entries it fires, and the entries it cascades (each at most once per
/// `slots` revolutions); `next_expiry` reads the occupancy bitmap a word at a
/// time. Memory grows to the peak number of pending entries and is reused
/// after.
pub struct Wheel<T> {
    nodes: Vec<Node<T>>,
    /// `links[i]` links `nodes[i]`.
    links: Vec<Link>,
    /// Head of the free list threaded through vacant nodes' `next` links.
    free_head: u32,
    free_len: usize,
    /// `slots` slot lists, then `slots` overflow lists, then the ready list.
    lists: Vec<List>,
    /// Index in `lists` of the ready list: entries already due (inserted
    /// overdue, or left by a capped jump).
    ready: u32,
    /// Bit `l` set iff list `l` (slot or overflow) is non-empty.
    occupied: Vec<u64>,
    /// `slots - 1`.
    mask: u64,
    /// `log2(slots)`: a tick's revolution is `tick >> shift`.
    shift: u32,
    /// Every tick up to here has been processed. Entries on the ready list
    /// are due at or before it; entries in slots are due after it, in the
    /// revolution of `current + 1`; entries in overflow lists are due in a
    /// later revolution.
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
        let mut lists = Vec::with_capacity(2 * slots + 1);
        lists.resize(2 * slots + 1, List::EMPTY);
        Wheel {
            nodes: Vec::with_capacity(capacity),
            links: Vec::with_capacity(capacity),
            free_head: NIL,
            free_len: 0,
            lists,
            ready: 2 * slots as u32,
            occupied: vec![0; 2 * slots / WORD_BITS],
            mask: slots as u64 - 1,
            shift: slots.trailing_zeros(),
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
        let list = self.list_for(deadline);
        let index = self.alloc(deadline, value);
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
        if self.fire_list(self.ready, &mut budget, out) {
            return true;
        }
        // At most two rounds: the rest of the revolution being walked, then
        // (after one cascade, however many revolutions it jumps) the
        // revolution `now` is in.
        while self.current < now && self.len > 0 {
            // No overflow: `current < now <= Tick::MAX`.
            let revolution_end = (self.current + 1) | self.mask;
            let limit = now.min(revolution_end);
            if self.fire_slots(limit, &mut budget, out) {
                self.debug_check_counts();
                return true;
            }
            if limit == revolution_end && limit < Tick::MAX {
                // Stop on the last tick before the revolution that holds
                // `now + 1`: everything earlier is due, that revolution is
                // the next one to walk.
                let to = now
                    .checked_add(1)
                    .map_or(Tick::MAX, |t| (t & !self.mask) - 1);
                self.cascade(to, &mut budget, out);
                if self.lists[self.ready as usize].head != NIL {
                    // Due entries the budget could not fire wait there.
                    self.debug_check_counts();
                    return true;
                }
            }
        }
        self.current = now;
        self.debug_check_counts();
        false
    }

    /// The earliest tick at which an entry may be due, or `None` when empty.
    ///
    /// If an entry is already overdue this is the current tick. Otherwise, if
    /// a slot is occupied, it is the exact earliest deadline: the first
    /// occupied slot after the current tick, found in the bitmap a word at a
    /// time. If only overflow entries remain, it is the first tick of the
    /// first revolution with an occupied overflow list: earlier than the true
    /// deadline (waking then costs one cascade) but never later.
    pub fn next_expiry(&self) -> Option<Tick> {
        if self.lists[self.ready as usize].head != NIL {
            return Some(self.current);
        }
        if self.len == 0 {
            return None;
        }
        let from = self.current.checked_add(1)?;
        if let Some(distance) = next_set(self.slot_bits(), (from & self.mask) as usize) {
            return from.checked_add(distance);
        }
        let revolution = (from >> self.shift) + 1;
        let distance = next_set(self.overflow_bits(), (revolution & self.mask) as usize);
        debug_assert!(distance.is_some(), "pending entries but no occupied list");
        revolution
            .checked_add(distance?)?
            .checked_mul(self.mask + 1)
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
        (self.mask + 1) as usize
    }

    /// The list a pending entry due at `deadline` belongs in, given `current`.
    fn list_for(&self, deadline: Tick) -> u32 {
        if deadline <= self.current {
            return self.ready;
        }
        let revolution = deadline >> self.shift;
        // No overflow: `current < deadline`.
        if revolution == (self.current + 1) >> self.shift {
            (deadline & self.mask) as u32
        } else {
            (self.mask + 1 + (revolution & self.mask)) as u32
        }
    }

    /// Fires the slots of ticks `current + 1 ..= limit`, all in the
    /// revolution being walked, in tick order, and moves `current` to
    /// `limit`. If the budget runs out on a slot, `current` stays just before
    /// it and this returns `true`.
    fn fire_slots(&mut self, limit: Tick, budget: &mut usize, out: &mut Vec<T>) -> bool {
        debug_assert!(limit <= (self.current + 1) | self.mask);
        while self.current < limit {
            let from = self.current + 1;
            let Some(distance) = next_set(self.slot_bits(), (from & self.mask) as usize) else {
                break;
            };
            // Occupied slots lie between `from` and the end of its revolution.
            let tick = from.saturating_add(distance);
            if tick > limit {
                break;
            }
            if self.fire_list((tick & self.mask) as u32, budget, out) {
                self.current = tick - 1;
                return true;
            }
            self.current = tick;
        }
        self.current = limit;
        false
    }

    /// Moves `current` from the last tick of the revolution being walked
    /// (whose slots are empty now) to `to`, the last tick of a later one, and
    /// sorts the overflow entries of the revolutions up to the one after `to`:
    /// due ones fire (or, once the budget is spent, wait on the ready list),
    /// those of the revolution after `to` move into the slots, later ones
    /// stay. Each overflow list is looked at most once, however far `to` is.
    fn cascade(&mut self, to: Tick, budget: &mut usize, out: &mut Vec<T>) {
        debug_assert!(self.current & self.mask == self.mask && to & self.mask == self.mask);
        debug_assert!(to >= self.current && self.slot_bits().iter().all(|w| *w == 0));
        let first = (self.current >> self.shift) + 1;
        // The revolution after `to` (the last one if `to` is the last tick).
        let last = ((to >> self.shift) + 1).min(Tick::MAX >> self.shift);
        self.current = to;
        let mut revolution = first;
        while let Some(distance) = next_set(self.overflow_bits(), (revolution & self.mask) as usize)
        {
            let found = revolution + distance;
            // Past `first + slots - 1` the lists come round again.
            if found > last || found - first > self.mask {
                break;
            }
            self.sort_out((self.mask + 1 + (found & self.mask)) as u32, budget, out);
            revolution = found + 1;
        }
    }

    /// Relinks every entry of overflow list `list` where it now belongs,
    /// firing the due ones while the budget lasts. FIFO order is kept.
    fn sort_out(&mut self, list: u32, budget: &mut usize, out: &mut Vec<T>) {
        let mut index = self.lists[list as usize].head;
        self.lists[list as usize] = List::EMPTY;
        self.set_occupied(list, false);
        while index != NIL {
            let next = self.links[index as usize].next;
            let deadline = self.nodes[index as usize].deadline;
            if deadline <= self.current && *budget > 0 {
                *budget -= 1;
                if let Some(value) = self.release(index) {
                    out.push(value);
                }
            } else {
                self.link_back(self.list_for(deadline), index);
            }
            index = next;
        }
    }

    /// Fires every entry of `list`, all due, in list order, while budget
    /// lasts. Returns `true` if it stopped on an entry for want of budget.
    fn fire_list(&mut self, list: u32, budget: &mut usize, out: &mut Vec<T>) -> bool {
        let List { head, tail } = self.lists[list as usize];
        if head == NIL {
            return false;
        }
        // Detach the whole list instead of unlinking node by node.
        self.lists[list as usize] = List::EMPTY;
        self.set_occupied(list, false);
        let mut index = head;
        while index != NIL {
            if *budget == 0 {
                self.links[index as usize].prev = NIL;
                self.lists[list as usize] = List { head: index, tail };
                self.set_occupied(list, true);
                return true;
            }
            *budget -= 1;
            debug_assert!(
                self.nodes[index as usize].deadline <= self.current.saturating_add(self.mask + 1)
            );
            let next = self.links[index as usize].next;
            if let Some(value) = self.release(index) {
                out.push(value);
            }
            index = next;
        }
        false
    }

    /// Takes a node off the free list (or pushes a new one) holding `value`.
    fn alloc(&mut self, deadline: Tick, value: T) -> u32 {
        if self.free_head != NIL {
            let index = self.free_head;
            let node = &mut self.nodes[index as usize];
            debug_assert!(node.value.is_none() && node.list == NIL);
            self.free_head = self.links[index as usize].next;
            self.free_len -= 1;
            node.deadline = deadline;
            node.value = Some(value);
            return index;
        }
        let index = self.nodes.len();
        assert!(
            index < NIL as usize,
            "timing wheel full: {index} pending entries"
        );
        self.links.push(Link {
            prev: NIL,
            next: NIL,
        });
        self.nodes.push(Node {
            deadline,
            generation: 0,
            list: NIL,
            value: Some(value),
        });
        index as u32
    }

    /// Appends node `index` to `list` (FIFO, so equal deadlines fire in
    /// insertion order) and marks the list occupied.
    fn link_back(&mut self, list: u32, index: u32) {
        let tail = self.lists[list as usize].tail;
        self.links[index as usize] = Link {
            prev: tail,
            next: NIL,
        };
        self.nodes[index as usize].list = list;
        if tail == NIL {
            self.lists[list as usize].head = index;
            self.set_occupied(list, true);
        } else {
            self.links[tail as usize].next = index;
        }
        self.lists[list as usize].tail = index;
    }

    /// Unlinks node `index` from its list, clearing the list's bit if it empties.
    fn unlink(&mut self, index: u32) {
        let Link { prev, next } = self.links[index as usize];
        let list = self.nodes[index as usize].list;
        debug_assert!(list != NIL, "unlinking a vacant node");
        if prev == NIL {
            self.lists[list as usize].head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list as usize].tail = prev;
        } else {
            self.links[next as usize].prev = prev;
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
        self.links[index as usize] = Link {
            prev: NIL,
            next: self.free_head,
        };
        self.free_head = index;
        self.free_len += 1;
        self.len -= 1;
        value
    }

    /// Sets or clears list `list`'s occupancy bit (the ready list has none).
    fn set_occupied(&mut self, list: u32, occupied: bool) {
        if list == self.ready {
            return;
        }
        let list = list as usize;
        let bit = 1u64 << (list % WORD_BITS);
        let word = &mut self.occupied[list / WORD_BITS];
        if occupied {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    /// The occupancy bits of the slots.
    fn slot_bits(&self) -> &[u64] {
        &self.occupied[..self.occupied.len() / 2]
    }

    /// The occupancy bits of the overflow lists.
    fn overflow_bits(&self) -> &[u64] {
        &self.occupied[self.occupied.len() / 2..]
    }

    /// Cheap consistency check run on every advance in debug builds.
    fn debug_check_counts(&self) {
        debug_assert_eq!(self.len + self.free_len, self.nodes.len());
        debug_assert_eq!(self.links.len(), self.nodes.len());
        debug_assert_eq!(
            self.len == 0,
            self.occupied.iter().all(|w| *w == 0) && self.lists[self.ready as usize].head == NIL
        );
    }
}

/// Distance (`0..bits`) from bit `start` of `words` to the next set bit,
/// wrapping once around; `None` if all are clear.
fn next_set(words: &[u64], start: usize) -> Option<u64> {
    let bits = words.len() * WORD_BITS;
    let first = start / WORD_BITS;
    let word = words[first] & (u64::MAX << (start % WORD_BITS));
    if word != 0 {
        let bit = first * WORD_BITS + word.trailing_zeros() as usize;
        return Some((bit - start) as u64);
    }
    // The last step revisits the first word: its bits at or above `start`
    // are known clear, so any bit found there lies below `start`.
    for step in 1..=words.len() {
        let index = (first + step) % words.len();
        let word = words[index];
        if word != 0 {
            let bit = index * WORD_BITS + word.trailing_zeros() as usize;
            return Some(((bit + bits - start) % bits) as u64);
        }
    }
    None
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
