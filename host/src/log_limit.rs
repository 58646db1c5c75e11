//! Log lines that the network can cause at its own rate (a refused message,
//! a bad login) are written at most once a second per cause, with how many
//! were suppressed since, so an attacker cannot grow the log at wire speed.
//! Causes are static names: the table cannot grow with input.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use parking_lot::Mutex;

static LAST: LazyLock<Mutex<BTreeMap<&'static str, (u64, u64)>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Whether a line of `cause` may be written now (at `now_ms`), and how many
/// were held back since the last one.
pub fn allow(cause: &'static str, now_ms: u64) -> Option<u64> {
    let mut t = LAST.lock();
    let e = t.entry(cause).or_insert((0, 0));
    if e.0 == 0 || now_ms.saturating_sub(e.0) >= 1000 {
        let suppressed = e.1;
        *e = (now_ms, 0);
        Some(suppressed)
    } else {
        e.1 += 1;
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
}
