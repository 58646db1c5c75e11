//! The pool of RTP ports a relay may bind (even ports of the configured range;
//! the odd port above each is left for RTCP, which the relay does not carry).

use std::collections::VecDeque;

use parking_lot::Mutex;

pub struct PortPool {
    free: Mutex<VecDeque<u16>>,
    total: usize,
}

impl PortPool {
    /// Even ports from `first` to `last` (inclusive).
    pub fn new(first: u16, last: u16) -> Self {
        let free: VecDeque<u16> = (first..=last).filter(|p| p % 2 == 0).collect();
        Self {
            total: free.len(),
            free: Mutex::new(free),
        }
    }

    /// The least recently used free port (a port just released is not handed
    /// out again at once, so late packets of an ended call find no one).
    /// Start handing out ports `n` places into the range (hosts or test
    /// servers sharing a range then rarely try the same ports first).
    pub fn rotate(&self, n: usize) {
        let mut free = self.free.lock();
        let len = free.len().max(1);
        free.rotate_left(n % len);
    }

    pub fn take(&self) -> Option<u16> {
        self.free.lock().pop_front()
    }

    pub fn give(&self, port: u16) {
        self.free.lock().push_back(port);
    }

    pub fn in_use(&self) -> usize {
        self.total - self.free.lock().len()
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_only_and_released_ports_go_to_the_back() {
        let p = PortPool::new(20000, 20005);
        assert_eq!(p.total(), 3);
        assert_eq!(p.take(), Some(20000));
        assert_eq!(p.take(), Some(20002));
        p.give(20000);
        assert_eq!(p.take(), Some(20004));
        assert_eq!(p.take(), Some(20000));
        assert_eq!(p.take(), None);
        assert_eq!(p.in_use(), 3);
    }
}
