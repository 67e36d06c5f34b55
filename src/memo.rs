//! A bounded memo of a pure function's results by input bytes, for data that repeats
//! itself (an invoice's e-mail, a catalogue line, a browser string): at most so many
//! bytes (a full memo starts again empty), switched off when too few lookups hit, and
//! emptied when the results it holds stop being valid (an epoch the caller moves, see
//! [`Memo::get`]).
//!
//! The anonymizer's column memos, the faker's memos per kind and the PostgreSQL parser's
//! memos of output text are all one of these.

use std::collections::HashMap;

/// How big a memo may grow, and how soon it gives up.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of keys and results (plus 64 an entry, for the map's own) it may hold.
    pub max_bytes: usize,
    /// Keys longer than this are neither looked up nor remembered.
    pub max_key: usize,
    /// Lookups after which a memo that hits less than one time in four turns itself
    /// off, and frees what it holds.
    pub trial: u64,
}

impl Limits {
    /// These limits for one of `ways` memos that share `budget` bytes: each gets its
    /// share, never more than `max_bytes`.
    pub fn shared(self, budget: usize, ways: usize) -> Limits {
        Limits {
            max_bytes: self.max_bytes.min(budget / ways.max(1)),
            ..self
        }
    }
}

/// The limits of one column's memo (the anonymizer's results, the PostgreSQL parser's
/// output text) in a table with `memoized` such columns: up to 8 MiB each and 32 MiB
/// for the table, values up to 256 bytes (free text and JSON documents are not
/// memoized), off after 8 192 lookups if fewer than one in four hit.
pub fn column_limits(memoized: usize) -> Limits {
    const COLUMN: Limits = Limits {
        max_bytes: 8 << 20,
        max_key: 256,
        trial: 8192,
    };
    const TABLE_BUDGET: usize = 32 << 20;
    COLUMN.shared(TABLE_BUDGET, memoized)
}

/// Results by key (hashed with foldhash: SipHash showed at 2 % of an anonymized
/// backup's CPU).
pub struct Memo<V> {
    map: HashMap<Box<[u8]>, V, foldhash::fast::RandomState>,
    limits: Limits,
    bytes: usize,
    lookups: u64,
    hits: u64,
    off: bool,
    /// The epoch the entries were computed in.
    epoch: u64,
}

impl<V> Memo<V> {
    /// An empty memo.
    pub fn new(limits: Limits) -> Self {
        Memo {
            map: HashMap::default(),
            limits,
            bytes: 0,
            lookups: 0,
            hits: 0,
            off: false,
            epoch: 0,
        }
    }

    /// A memo that never remembers anything.
    pub fn disabled() -> Self {
        let mut memo = Memo::new(Limits {
            max_bytes: 0,
            max_key: 0,
            trial: 0,
        });
        memo.off = true;
        memo
    }

    /// Off from the start, or after a trial with too few hits.
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// Lookups answered so far.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The result remembered for `key`. `epoch` is the caller's current one: results
    /// remembered in another epoch are forgotten first.
    #[inline]
    pub fn get(&mut self, key: &[u8], epoch: u64) -> Option<&V> {
        if self.off || key.len() > self.limits.max_key {
            return None;
        }
        if epoch != self.epoch {
            self.map.clear();
            self.bytes = 0;
            self.epoch = epoch;
        }
        self.lookups += 1;
        if self.lookups == self.limits.trial && self.hits * 4 < self.lookups {
            self.off = true;
            self.map = HashMap::default();
            self.bytes = 0;
            return None;
        }
        let found = self.map.get(key);
        if found.is_some() {
            self.hits += 1;
        }
        found
    }

    /// Remembers the result `make` gives (`weight` bytes) for `key`, computed in
    /// `epoch`: nothing is made when the memo is off, when the key is too long, or when
    /// the memo has moved to another epoch since. A full memo starts again empty: dumps
    /// repeat values close together (a client's invoices, its log lines), so the
    /// recent values are worth more than the first ones.
    #[inline]
    pub fn put_with(&mut self, key: &[u8], weight: usize, epoch: u64, make: impl FnOnce() -> V) {
        let size = key.len() + weight + 64;
        if self.off || key.len() > self.limits.max_key || epoch != self.epoch {
            return;
        }
        if self.bytes + size > self.limits.max_bytes {
            if size > self.limits.max_bytes {
                return;
            }
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.map.insert(key.into(), make());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 1000,
        max_key: 8,
        trial: 100,
    };

    #[test]
    fn remembers_within_its_bounds() {
        let mut m: Memo<u32> = Memo::new(LIMITS);
        assert!(m.get(b"a", 0).is_none());
        m.put_with(b"a", 4, 0, || 1);
        assert_eq!(m.get(b"a", 0), Some(&1));
        assert_eq!(m.hits(), 1);
        // Too long a key: never looked up nor kept.
        m.put_with(b"123456789", 4, 0, || 2);
        assert!(m.get(b"123456789", 0).is_none());
        // Full: 1000 bytes hold 14 entries of 2 + 4 + 64 (`k0`…`k9`) or 3 + 4 + 64;
        // the 15th starts the memo again, with the most recent values.
        for i in 0..40u32 {
            m.put_with(format!("k{i}").as_bytes(), 4, 0, || i);
            assert!(m.len() <= 14);
        }
        assert!(m.get(b"k0", 0).is_none(), "the oldest were dropped");
        assert_eq!(m.get(b"k39", 0), Some(&39), "the newest is there");
        m.put_with(b"x", 2000, 0, || 0);
        assert!(
            m.get(b"x", 0).is_none(),
            "bigger than the whole memo: not kept"
        );
    }

    #[test]
    fn another_epoch_forgets_and_old_results_are_not_kept() {
        let mut m: Memo<u32> = Memo::new(LIMITS);
        m.put_with(b"a", 4, 0, || 1);
        assert!(m.get(b"a", 1).is_none(), "epoch 1 forgets epoch 0");
        assert!(m.is_empty());
        // A result computed in epoch 1 while the memo moved on to 2 is dropped.
        assert!(m.get(b"b", 2).is_none());
        m.put_with(b"b", 4, 1, || unreachable!("not made"));
        assert!(m.is_empty());
    }

    #[test]
    fn turns_itself_off_when_few_lookups_hit() {
        let mut m: Memo<u32> = Memo::new(LIMITS);
        for i in 0..LIMITS.trial {
            let key = format!("{i}");
            assert!(m.get(key.as_bytes(), 0).is_none());
            m.put_with(key.as_bytes(), 4, 0, || 0);
        }
        assert!(m.is_off());
        assert!(m.is_empty());
        m.put_with(b"a", 4, 0, || unreachable!("off"));
        assert!(Memo::<u32>::disabled().is_off());
        // Hits often enough: stays on.
        let mut m: Memo<u32> = Memo::new(LIMITS);
        m.put_with(b"x", 4, 0, || 7);
        for _ in 0..LIMITS.trial * 2 {
            assert_eq!(m.get(b"x", 0), Some(&7));
        }
        assert!(!m.is_off());
    }

    #[test]
    fn memos_sharing_a_budget_split_it() {
        let l = Limits {
            max_bytes: 8 << 20,
            max_key: 1,
            trial: 1,
        };
        assert_eq!(
            l.shared(32 << 20, 2).max_bytes,
            8 << 20,
            "never above its own"
        );
        assert_eq!(l.shared(32 << 20, 8).max_bytes, 4 << 20);
        assert_eq!(l.shared(32 << 20, 0).max_bytes, 8 << 20);
    }
}
