//! How many audit rows one principal (an agent, a supervisor, the admin
//! token) may add a minute. A client in a loop (hang-ups of calls that do
//! not exist, say) would otherwise grow the store at its own rate. Beyond
//! the budget one row says that rows were held back, then nothing until
//! the next minute; the log line and the metric say how many. Principals
//! are configured accounts, so the table is as small as the config.
//! (Login rows are bounded before this: a source with too many failures
//! is refused unchecked and writes none.)

use std::collections::HashMap;

use parking_lot::Mutex;

/// Rows a principal may add a minute.
pub const ROWS_PER_MINUTE: u32 = 120;

/// What to do with one more row.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Write,
    /// Write one row saying that the rest of this minute's are held back.
    WriteSuppressedNotice,
    Drop,
}

#[derive(Default)]
pub struct AuditBudget {
    used: Mutex<HashMap<String, (u64, u32)>>,
}

impl AuditBudget {
    pub fn admit(&self, who: &str, now_ms: u64) -> Admit {
        let minute = now_ms / 60_000;
        let mut used = self.used.lock();
        let e = used.entry(who.to_owned()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 = e.1.saturating_add(1);
        match e.1 {
            n if n <= ROWS_PER_MINUTE => Admit::Write,
            n if n == ROWS_PER_MINUTE + 1 => Admit::WriteSuppressedNotice,
            _ => Admit::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_holds_the_budget_then_one_notice() {
        let b = AuditBudget::default();
        assert!((0..ROWS_PER_MINUTE).all(|i| b.admit("agent:1001", u64::from(i)) == Admit::Write));
        assert_eq!(b.admit("agent:1001", 200), Admit::WriteSuppressedNotice);
        assert_eq!(b.admit("agent:1001", 300), Admit::Drop);
        assert_eq!(b.admit("agent:1002", 300), Admit::Write, "per principal");
        assert_eq!(b.admit("agent:1001", 60_000), Admit::Write, "next minute");
    }
}
