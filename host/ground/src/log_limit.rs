//! Log lines that the network can cause at its own rate (a refused message,
//! a bad login) are written at most once a second per cause, with how many
//! were suppressed since, so an attacker cannot grow the log at wire speed.
//! Causes are static names: the table cannot grow with input.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use parking_lot::Mutex;

/// Whether a line of `cause` may be written now (at `now_ms`), and how many
/// were held back since the last one.
pub fn allow(cause: &'static str, now_ms: u64) -> Option<u64> {
    allow_keyed(cause, "", 1, now_ms)
}

/// Keys of [`allow_keyed`] tracked per cause at most; beyond them every
/// new key of that cause shares one entry (the table cannot grow with
/// input: causes are static names).
const MAX_KEYS: usize = 1024;

struct Window {
    start_ms: u64,
    written: u64,
    suppressed: u64,
}

type Windows = BTreeMap<&'static str, BTreeMap<String, Window>>;

static KEYED: LazyLock<Mutex<Windows>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Whether a line of `cause` about `key` (a plugin's name, say) may be
/// written now: up to `per_second` lines a second per key, so the first
/// failures of a burst are all seen and the rest counted. Returns how many
/// were held back since the last written one.
pub fn allow_keyed(cause: &'static str, key: &str, per_second: u64, now_ms: u64) -> Option<u64> {
    let mut t = KEYED.lock();
    let keys = t.entry(cause).or_default();
    let key = if keys.contains_key(key) || keys.len() < MAX_KEYS {
        key
    } else {
        ""
    };
    let w = keys.entry(key.to_owned()).or_insert(Window {
        start_ms: now_ms,
        written: 0,
        suppressed: 0,
    });
    if now_ms.saturating_sub(w.start_ms) >= 1000 {
        w.start_ms = now_ms;
        w.written = 0;
    }
    if w.written < per_second {
        w.written += 1;
        Some(std::mem::take(&mut w.suppressed))
    } else {
        w.suppressed += 1;
        None
    }
}

/// A WARN line of `cause`, at most once a second.
pub fn warn_every_second(cause: &'static str, message: &str) {
    if let Some(suppressed) = allow(cause, crate::clock::now_ms()) {
        tracing::warn!(cause, suppressed, "{message}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_a_second_per_cause_and_the_count_of_the_rest() {
        assert_eq!(super::allow("test-a", 10_000), Some(0));
        for i in 1..=500 {
            assert_eq!(super::allow("test-a", 10_000 + i), None);
        }
        assert_eq!(super::allow("test-b", 10_100), Some(0), "causes are apart");
        assert_eq!(super::allow("test-a", 11_000), Some(500));
    }

    #[test]
    fn a_burst_per_key_then_counted() {
        for _ in 0..3 {
            assert_eq!(super::allow_keyed("test-k", "p1", 3, 5_000), Some(0));
        }
        for _ in 0..10 {
            assert_eq!(super::allow_keyed("test-k", "p1", 3, 5_500), None);
        }
        assert_eq!(
            super::allow_keyed("test-k", "p2", 3, 5_500),
            Some(0),
            "keys are apart"
        );
        assert_eq!(super::allow_keyed("test-k", "p1", 3, 6_000), Some(10));
        assert_eq!(super::allow_keyed("test-k", "p1", 3, 6_001), Some(0));
    }

    #[test]
    fn keys_beyond_the_table_share_one_entry() {
        for i in 0..super::MAX_KEYS + 50 {
            super::allow_keyed("test-many", &i.to_string(), 1, 7_000);
        }
        assert!(super::KEYED.lock()["test-many"].len() <= super::MAX_KEYS + 1);
    }
}
