//! SIP requests per source address per second. A source over the limit
//! has its requests dropped unanswered for the rest of that second (an
//! answer would cost the host and reflect traffic); trunks, which carry
//! every caller, are exempt. The table of sources is bounded: beyond
//! [`MAX_SOURCES`] addresses in one second, the newcomers share one count.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// Sources counted apart in one second.
pub const MAX_SOURCES: usize = 65_536;

pub struct SourceRate {
    per_second: u32,
    exempt: Vec<IpAddr>,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    second: u64,
    counts: HashMap<IpAddr, u32>,
    /// Requests of the sources beyond MAX_SOURCES this second.
    overflow: u32,
}

impl SourceRate {
    /// `per_second` 0: no limit.
    pub fn new(per_second: u32, exempt: Vec<IpAddr>) -> Self {
        Self {
            per_second,
            exempt,
            window: Mutex::new(Window::default()),
        }
    }

    /// Count one request of `source` at `now_ms`; false when it is over
    /// the limit and must be dropped.
    pub fn allow(&self, source: IpAddr, now_ms: u64) -> bool {
        if self.per_second == 0 || self.exempt.contains(&source) {
            return true;
        }
        let second = now_ms / 1000;
        let mut w = self.window.lock();
        if w.second != second {
            w.second = second;
            w.counts.clear();
            w.overflow = 0;
        }
        let full = w.counts.len() >= MAX_SOURCES;
        let n = match w.counts.get_mut(&source) {
            Some(n) => n,
            None if full => &mut w.overflow,
            None => w.counts.entry(source).or_insert(0),
        };
        *n = n.saturating_add(1);
        *n <= self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_its_second_is_dropped_until_the_next_and_trunks_never() {
        let trunk: IpAddr = "10.0.0.1".parse().unwrap();
        let r = SourceRate::new(3, vec![trunk]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let at = 5_000;
        assert!((0..3).all(|i| r.allow(a, at + i)));
        assert!(!r.allow(a, at + 10));
        assert!(r.allow(b, at + 10), "another source has its own count");
        assert!((0..100).all(|i| r.allow(trunk, at + i)));
        assert!(r.allow(a, at + 1000), "a new second");
        assert!(SourceRate::new(0, vec![]).allow(a, at));
    }

    #[test]
    fn sources_beyond_the_table_share_one_count() {
        let r = SourceRate::new(2, vec![]);
        for i in 0..MAX_SOURCES as u32 {
            assert!(r.allow(IpAddr::from(i.to_be_bytes()), 0));
        }
        let late = |n: u32| IpAddr::from((0xff00_0000u32 + n).to_be_bytes());
        assert!(r.allow(late(1), 1) && r.allow(late(2), 2));
        assert!(!r.allow(late(3), 3), "the newcomers' shared count is spent");
        assert_eq!(r.window.lock().counts.len(), MAX_SOURCES);
    }
}
