//! The center's calendar: the time zone its days, "today" figures and report
//! intervals follow. Supervisors read "today" in their own time: in Beijing a
//! UTC day would start at 08:00, and an agent's "calls today" would never
//! start again without a midnight to reset at.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A report's bucket length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interval {
    Min15,
    Hour,
    Day,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "15m" | "15min" => Some(Interval::Min15),
            "1h" | "hour" => Some(Interval::Hour),
            "1d" | "day" => Some(Interval::Day),
            _ => None,
        }
    }

    /// Nominal length; a local day across a daylight-saving change is an
    /// hour shorter or longer (see [`Calendar::end_of`]).
    pub fn ms(self) -> u64 {
        match self {
            Interval::Min15 => 15 * 60_000,
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {name:?}: use an IANA name such as \"Asia/Shanghai\" or \"UTC\"")]
pub struct UnknownZone {
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
}

impl Default for Calendar {
    fn default() -> Self {
        Self::utc()
    }
}

impl Calendar {
    pub fn utc() -> Self {
        Self { tz: TimeZone::UTC }
    }

    /// The machine's zone (TZ, else /etc/localtime), UTC when it has none.
    pub fn system() -> Self {
        Self {
            tz: TimeZone::system(),
        }
    }

    /// An IANA zone by name (the database is built into the binary, so a
    /// machine without tzdata still knows every zone).
    pub fn named(name: &str) -> Result<Self, UnknownZone> {
        TimeZone::get(name)
            .map(|tz| Self { tz })
            .map_err(|_| UnknownZone {
                name: name.to_owned(),
            })
    }

    /// The zone's IANA name, or its current offset when it has none.
    pub fn name(&self) -> String {
        match self.tz.iana_name() {
            Some(n) => n.to_owned(),
            None => self.tz.to_offset(Timestamp::now()).to_string(),
        }
    }

    /// Start (ms since the epoch) of the local interval holding `at_ms`.
    pub fn start_of(&self, interval: Interval, at_ms: u64) -> u64 {
        let Some(at) = timestamp(at_ms) else {
            return at_ms - at_ms % interval.ms();
        };
        match interval {
            Interval::Day => at
                .to_zoned_datetime(self.tz.clone())
                .start_of_day()
                .map(|z| millis(z.timestamp()))
                .unwrap_or(at_ms - at_ms % interval.ms()),
            Interval::Min15 | Interval::Hour => {
                // Aligned to local clock marks, which matters for zones a
                // half or quarter hour off UTC (India, Nepal).
                let offset_ms = i64::from(self.tz.to_offset(at).seconds()) * 1000;
                let local = at_ms as i64 + offset_ms;
                (local - local.rem_euclid(interval.ms() as i64) - offset_ms).max(0) as u64
            }
        }
    }

    /// Start of the interval after the one starting at `start_ms`.
    pub fn end_of(&self, interval: Interval, start_ms: u64) -> u64 {
        let nominal = start_ms + interval.ms();
        if interval != Interval::Day {
            return nominal;
        }
        timestamp(start_ms)
            .and_then(|t| {
                t.to_zoned_datetime(self.tz.clone())
                    .tomorrow()
                    .and_then(|z| z.start_of_day())
                    .ok()
            })
            .map(|z| millis(z.timestamp()))
            .unwrap_or(nominal)
    }

    /// Local date and time with its offset, to the second
    /// ("2026-11-30T08:00:00+08:00").
    pub fn format(&self, at_ms: u64) -> String {
        match timestamp(at_ms) {
            Some(t) => t
                .to_zoned_datetime(self.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            None => at_ms.to_string(),
        }
    }
}

fn timestamp(ms: u64) -> Option<Timestamp> {
    Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()
}

fn millis(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30 01:30 in Beijing = 2026-11-29 17:30 UTC.
    const AT: u64 = 1_795_973_400_000;

    #[test]
    fn days_start_at_local_midnight() {
        let bj = Calendar::named("Asia/Shanghai").unwrap();
        let start = bj.start_of(Interval::Day, AT);
        assert_eq!(bj.format(start), "2026-11-30T00:00:00+08:00");
        assert_eq!(
            bj.format(bj.end_of(Interval::Day, start)),
            "2026-12-01T00:00:00+08:00"
        );
        let utc = Calendar::utc();
        assert_eq!(
            utc.format(utc.start_of(Interval::Day, AT)),
            "2026-11-29T00:00:00+00:00"
        );
    }

    #[test]
    fn a_daylight_saving_day_is_23_hours_long() {
        let ny = Calendar::named("America/New_York").unwrap();
        // 2026-03-08, the spring change in New York, at noon local (16:00 UTC).
        let noon = 1_772_985_600_000;
        let start = ny.start_of(Interval::Day, noon);
        assert_eq!(ny.format(start), "2026-03-08T00:00:00-05:00");
        assert_eq!(ny.end_of(Interval::Day, start) - start, 23 * 3_600_000);
    }

    #[test]
    fn hours_follow_local_clock_marks() {
        let kolkata = Calendar::named("Asia/Kolkata").unwrap();
        let h = kolkata.start_of(Interval::Hour, AT);
        assert!(
            kolkata.format(h).ends_with(":00:00+05:30"),
            "{}",
            kolkata.format(h)
        );
        // 23:00 local in Kolkata; 23:20 is in the 23:15 quarter.
        let q = kolkata.start_of(Interval::Min15, AT + 20 * 60_000);
        assert_eq!(kolkata.format(q), "2026-11-29T23:15:00+05:30");
    }

    #[test]
    fn unknown_zones_are_named() {
        let e = Calendar::named("Mars/Olympus").unwrap_err();
        assert!(e.to_string().contains("\"Mars/Olympus\""), "{e}");
    }
}
