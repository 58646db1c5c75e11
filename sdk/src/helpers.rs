//! Helpers for the common shapes of plugin code.

use crate::types::*;

/// Start a queue decision: `queue("cards").priority(5).skill("cards").into()`.
pub fn queue(name: &str) -> QueueTarget {
    QueueTarget {
        queue: name.to_owned(),
        priority: 0,
        skills: vec![],
        max_wait_secs: None,
        overflow: None,
    }
}

impl QueueTarget {
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    pub fn skill(mut self, s: &str) -> Self {
        self.skills.push(s.to_owned());
        self
    }
    pub fn max_wait(mut self, secs: u32) -> Self {
        self.max_wait_secs = Some(secs);
        self
    }
    pub fn overflow(mut self, target: &str) -> Self {
        self.overflow = Some(target.to_owned());
        self
    }
}

impl From<QueueTarget> for RouteDecision {
    fn from(q: QueueTarget) -> Self {
        RouteDecision::Queue(q)
    }
}

/// An IVR step collecting up to `max_digits`, ended early by `#`.
pub fn ivr(name: &str, prompt: &str, max_digits: u8) -> IvrStep {
    IvrStep {
        name: name.to_owned(),
        prompt: prompt.to_owned(),
        max_digits,
        terminator: Some("#".to_owned()),
        inter_digit_timeout_ms: 5000,
        sensitive: false,
    }
}

impl IvrStep {
    /// Card numbers and PINs: never logged, stored or recorded by the host.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

impl From<IvrStep> for RouteDecision {
    fn from(s: IvrStep) -> Self {
        RouteDecision::Ivr(s)
    }
}

/// Refuse the call with a SIP status, e.g. `reject(486, "Busy Here")`.
pub fn reject(code: u16, reason: &str) -> RouteDecision {
    RouteDecision::Reject(Rejection {
        code,
        reason: reason.to_owned(),
    })
}

impl CallInfo {
    /// Digits entered in the named IVR step, most recent answer.
    pub fn digits(&self, step: &str) -> Option<&str> {
        self.ivr
            .iter()
            .rev()
            .find(|e| e.step == step)
            .map(|e| e.digits.as_str())
    }

    /// True once the named IVR step was answered.
    pub fn answered(&self, step: &str) -> bool {
        self.ivr.iter().any(|e| e.step == step)
    }

    pub fn segment(&self) -> Option<&str> {
        self.customer.as_ref().map(|c| c.segment.as_str())
    }

    pub fn is_vip(&self) -> bool {
        self.segment()
            .is_some_and(|s| s.eq_ignore_ascii_case("vip"))
    }

    pub fn queue_stats(&self, name: &str) -> Option<&QueueStats> {
        self.queues.iter().find(|q| q.name == name)
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Show only the last four digits: `6222 0000 1234 5678` -> `**** 5678`.
pub fn mask_account(account: &str) -> String {
    let digits: Vec<char> = account
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if digits.len() <= 4 {
        return "****".to_owned();
    }
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("**** {tail}")
}

/// Local civil time of a Unix-ms instant at a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 = Monday ... 6 = Sunday.
    pub weekday: u8,
    pub hour: u8,
    pub minute: u8,
}

impl LocalTime {
    pub fn at(unix_ms: u64, utc_offset_minutes: i32) -> Self {
        let secs = (unix_ms / 1000) as i64 + utc_offset_minutes as i64 * 60;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as u8;
        Self {
            weekday,
            hour: (rem / 3600) as u8,
            minute: ((rem % 3600) / 60) as u8,
        }
    }

    /// Minutes since local midnight.
    pub fn minutes(&self) -> u16 {
        self.hour as u16 * 60 + self.minute as u16
    }
}

/// Parse "HH:MM" into minutes since midnight.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_last_four() {
        assert_eq!(mask_account("6222 0000 1234 5678"), "**** 5678");
        assert_eq!(mask_account("12"), "****");
    }

    #[test]
    fn local_time_in_beijing() {
        // 2025-11-29T01:00:00Z is a Saturday, 09:00 in UTC+8.
        let t = LocalTime::at(1_764_378_000_000, 480);
        assert_eq!((t.weekday, t.hour, t.minute), (5, 9, 0));
    }

    #[test]
    fn hhmm() {
        assert_eq!(parse_hhmm("08:30"), Some(510));
        assert_eq!(parse_hhmm("24:00"), None);
    }
}
