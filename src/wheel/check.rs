//! The full invariant check the wheel tests run after every operation.

use super::*;

impl<T> Wheel<T> {
    /// Full O(slots + entries) check of every invariant.
    pub(super) fn check_invariants(&self) {
        let slots = self.slots();
        // The revolution being walked; none is left once `current` is the last tick.
        let walked = self.current.checked_add(1).map(|tick| tick >> self.shift);
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
                assert_eq!(self.links[index as usize].prev, prev);
                assert_eq!(node.list as usize, list);
                assert!(node.value.is_some());
                let revolution = node.deadline >> self.shift;
                if is_ready {
                    assert!(node.deadline <= self.current, "ready entry not yet due");
                } else if list < slots {
                    assert_eq!(
                        (node.deadline & self.mask) as usize,
                        list,
                        "entry in wrong slot"
                    );
                    assert!(node.deadline > self.current, "overdue entry left in a slot");
                    assert_eq!(
                        Some(revolution),
                        walked,
                        "slot entry not in this revolution"
                    );
                } else {
                    assert_eq!(
                        (revolution & self.mask) as usize,
                        list - slots,
                        "entry in wrong overflow list"
                    );
                    assert!(
                        walked.is_some_and(|walked| revolution > walked),
                        "overflow entry due in the revolution being walked, or before"
                    );
                }
                linked += 1;
                prev = index;
                index = self.links[index as usize].next;
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
            index = self.links[index as usize].next;
        }
        assert_eq!(free, self.free_len);
        assert_eq!(linked + free, self.nodes.len());
        assert_eq!(self.links.len(), self.nodes.len());
    }
}
