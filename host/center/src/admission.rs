//! The bound on calls the network can queue at the driver's door. Every
//! INVITE a trunk sends becomes an `Arrived` event; when the driver falls
//! behind (a flood from a trunk address, which the per-source rate exempts)
//! those would pile up in its channel without end. New calls beyond the
//! bound are refused at the door (the SIP room answers 503); every other
//! event is always taken, so that no hang-up is ever lost and the events
//! of one call keep their order (one channel, with a count beside it).

use std::sync::atomic::{AtomicUsize, Ordering};

/// New calls sent to the driver and not yet read by it, at most.
pub const MAX_UNREAD_ARRIVALS: usize = 2048;

/// The count of unread arrivals (refusals are counted by the metrics).
#[derive(Debug)]
pub struct Admission {
    unread: AtomicUsize,
    limit: usize,
}

impl Default for Admission {
    fn default() -> Self {
        Self::with_limit(MAX_UNREAD_ARRIVALS)
    }
}

impl Admission {
    pub fn with_limit(limit: usize) -> Self {
        Self {
            unread: AtomicUsize::new(0),
            limit,
        }
    }

    /// Take one more new call if fewer than the limit wait unread.
    pub fn try_enter(&self) -> bool {
        self.unread
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// A new call that bypasses the door (the API, tests): counted, never refused.
    pub fn enter(&self) {
        self.unread.fetch_add(1, Ordering::AcqRel);
    }

    /// The driver has read one new call.
    pub fn leave(&self) {
        let _ = self
            .unread
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    #[cfg(test)]
    fn unread(&self) -> usize {
        self.unread.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_calls_beyond_the_limit_are_refused_until_the_driver_reads() {
        let a = Admission::with_limit(3);
        assert!(a.try_enter() && a.try_enter() && a.try_enter());
        assert!(!a.try_enter(), "the fourth waits for the driver");
        assert_eq!(a.unread(), 3);
        a.leave();
        assert!(a.try_enter(), "one read, one more taken");
        assert!(!a.try_enter());
        assert_eq!(a.unread(), 3);
    }

    #[test]
    fn reading_more_than_was_counted_never_wraps() {
        let a = Admission::with_limit(2);
        a.leave();
        assert_eq!(a.unread(), 0);
        a.enter();
        a.enter();
        a.enter();
        assert!(!a.try_enter(), "calls let in past the door still count");
    }
}
