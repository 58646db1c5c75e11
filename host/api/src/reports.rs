//! Call-center reports computed from the call records: per queue and per
//! agent, per interval (15 minutes, hour, day, aligned to the center's local
//! time: see [`crate::calendar`]).
//!
//! Definitions (thresholds per queue: `service_level_secs`):
//! - offered: calls whose record names the queue (the last queue they waited in);
//! - answered / abandoned (in queue or while ringing) among them;
//! - SL  = answered within threshold / answered;
//! - SL2 = (answered within threshold + abandoned within threshold) / (answered + abandoned);
//! - ASA = mean wait of answered calls; AHT = mean talk time of answered calls;
//! - abandon rate = abandoned / offered.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::acd::{CallRecord, Disposition};
pub use crate::calendar::{Calendar, Interval};
use crate::store::AgentStateEntry;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    pub queue: String,
    pub interval_start_ms: u64,
    pub threshold_secs: u32,
    pub offered: u32,
    pub answered: u32,
    pub abandoned: u32,
    pub answered_within: u32,
    pub abandoned_within: u32,
    /// None when nothing was answered (0/0).
    pub service_level: Option<f64>,
    pub service_level_2: Option<f64>,
    pub asa_secs: Option<f64>,
    pub aht_secs: Option<f64>,
    pub abandon_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    pub agent: String,
    pub interval_start_ms: u64,
    pub answered: u32,
    pub talk_secs: f64,
    pub aht_secs: Option<f64>,
    /// Seconds logged in (any state but logged-out), from the agent state log.
    pub staffed_secs: f64,
    /// Seconds on a call or in wrap-up.
    pub handling_secs: f64,
    /// Seconds ready or ringing.
    pub available_secs: f64,
    /// handling / (handling + available): the share of the time the agent
    /// was open for calls that went to calls. None without such time.
    pub occupancy: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The zone the intervals are aligned to (IANA name).
    #[serde(default)]
    pub time_zone: String,
    pub queues: Vec<QueueRow>,
    pub agents: Vec<AgentRow>,
}

fn ratio(n: u32, d: u32) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The row of `agent` for the interval starting at `start`.
fn agent_row<'a>(
    rows: &'a mut BTreeMap<(String, u64), AgentRow>,
    agent: &str,
    start: u64,
) -> &'a mut AgentRow {
    rows.entry((agent.to_owned(), start))
        .or_insert_with(|| AgentRow {
            agent: agent.to_owned(),
            interval_start_ms: start,
            ..AgentRow::default()
        })
}

/// One queue's figures for one interval, as records come in.
#[derive(Debug, Clone, Default)]
pub struct QueueTally {
    row: QueueRow,
    wait_sum: f64,
    talk_sum: f64,
}

impl QueueTally {
    pub fn new(queue: &str, interval_start_ms: u64, threshold_secs: u32) -> Self {
        Self {
            row: QueueRow {
                queue: queue.to_owned(),
                interval_start_ms,
                threshold_secs,
                ..QueueRow::default()
            },
            ..Self::default()
        }
    }

    /// Count one call that waited in this queue.
    pub fn add(&mut self, r: &CallRecord) {
        let row = &mut self.row;
        let within = r.wait_secs <= row.threshold_secs as f64;
        row.offered += 1;
        match r.disposition {
            Disposition::Answered => {
                row.answered += 1;
                row.answered_within += u32::from(within);
                self.wait_sum += r.wait_secs;
                self.talk_sum += r.talk_secs;
            }
            Disposition::AbandonedInQueue | Disposition::AbandonedRinging => {
                row.abandoned += 1;
                row.abandoned_within += u32::from(within);
            }
            _ => {}
        }
    }

    /// The row with its ratios.
    pub fn row(&self) -> QueueRow {
        let mut row = self.row.clone();
        row.service_level = ratio(row.answered_within, row.answered);
        row.service_level_2 = ratio(
            row.answered_within + row.abandoned_within,
            row.answered + row.abandoned,
        );
        row.asa_secs = (row.answered > 0).then(|| self.wait_sum / row.answered as f64);
        row.aht_secs = (row.answered > 0).then(|| self.talk_sum / row.answered as f64);
        row.abandon_rate = ratio(row.abandoned, row.offered);
        row
    }
}

/// Start of the interval of a record (when it entered a queue).
pub fn interval_of(r: &CallRecord, interval: Interval, calendar: &Calendar) -> u64 {
    calendar.start_of(interval, r.queued_ms.unwrap_or(r.arrived_ms))
}

/// The report of `records`; `thresholds` maps queue -> SL threshold seconds
/// (20 when absent); `queue` keeps one queue only.
pub fn report(
    records: &[CallRecord],
    thresholds: &HashMap<String, u32>,
    interval: Interval,
    queue: Option<&str>,
    calendar: &Calendar,
) -> Report {
    let mut queues: BTreeMap<(String, u64), QueueTally> = BTreeMap::new();
    let mut agents: BTreeMap<(String, u64), AgentRow> = BTreeMap::new();
    for r in records {
        let Some(q) = r.queue.as_deref() else {
            continue;
        };
        if queue.is_some_and(|only| only != q) {
            continue;
        }
        let start = interval_of(r, interval, calendar);
        let threshold = thresholds.get(q).copied().unwrap_or(20);
        queues
            .entry((q.to_owned(), start))
            .or_insert_with(|| QueueTally::new(q, start, threshold))
            .add(r);
        if r.disposition == Disposition::Answered
            && let Some(a) = &r.agent
        {
            let ar = agent_row(&mut agents, a, start);
            ar.answered += 1;
            ar.talk_secs += r.talk_secs;
        }
    }
    Report {
        time_zone: calendar.name(),
        queues: queues.values().map(QueueTally::row).collect(),
        agents: agents
            .into_values()
            .map(|mut a| {
                a.aht_secs = (a.answered > 0).then(|| a.talk_secs / a.answered as f64);
                a
            })
            .collect(),
    }
}

/// Fill the agents' staffed time and occupancy per interval from the agent
/// state log (`log`, oldest first) between `since_ms` and `until_ms`. Time
/// before an agent's first entry in the log is not counted.
pub fn add_occupancy(
    r: &mut Report,
    log: &[AgentStateEntry],
    interval: Interval,
    since_ms: u64,
    until_ms: u64,
    calendar: &Calendar,
) {
    let mut rows: BTreeMap<(String, u64), AgentRow> = r
        .agents
        .drain(..)
        .map(|a| ((a.agent.clone(), a.interval_start_ms), a))
        .collect();
    let mut last: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    let mut spans: Vec<(&str, u64, u64, &str)> = Vec::new();
    for e in log {
        if let Some((from, state)) = last.insert(e.agent.as_str(), (e.at_ms, e.state.as_str())) {
            spans.push((e.agent.as_str(), from, e.at_ms, state));
        }
    }
    for (agent, (from, state)) in last {
        spans.push((agent, from, until_ms.max(from), state));
    }
    for (agent, from, to, state) in spans {
        let (mut a, b) = (from.max(since_ms), to.min(until_ms));
        // Split the span at interval boundaries.
        while a < b {
            let start = calendar.start_of(interval, a);
            let end = calendar.end_of(interval, start).min(b);
            let secs = (end - a) as f64 / 1000.0;
            let row = agent_row(&mut rows, agent, start);
            match state {
                "logged-out" => {}
                "on-call" | "wrap-up" => {
                    row.staffed_secs += secs;
                    row.handling_secs += secs;
                }
                "ready" | "ringing" => {
                    row.staffed_secs += secs;
                    row.available_secs += secs;
                }
                _ => row.staffed_secs += secs,
            }
            a = end;
        }
    }
    r.agents = rows
        .into_values()
        .map(|mut a| {
            let open = a.handling_secs + a.available_secs;
            a.occupancy = (open > 0.0).then(|| a.handling_secs / open);
            a
        })
        .collect();
}

/// A report for one queue keeps the agents of that queue: its members and
/// whoever answered its calls in the period (their occupancy is over all
/// their work, as an agent's time is not split between queues).
pub fn keep_agents_of_queue(r: &mut Report, members: &BTreeSet<String>) {
    let answered: BTreeSet<String> = r
        .agents
        .iter()
        .filter(|a| a.answered > 0)
        .map(|a| a.agent.clone())
        .collect();
    r.agents
        .retain(|a| members.contains(&a.agent) || answered.contains(&a.agent));
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn secs(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// A fixed-width table for people.
pub fn to_table(r: &Report) -> String {
    // The center's zone, so the CLI prints the intervals the server bucketed.
    let calendar = Calendar::named(&r.time_zone).unwrap_or_default();
    let when = |ms: u64| calendar.format(ms);
    let mut s = format!(
        "{:<25} {:<12} {:>7} {:>8} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8}\n",
        "interval",
        "queue",
        "offered",
        "answered",
        "abandoned",
        "SL",
        "SL2",
        "ASA s",
        "AHT s",
        "abandon"
    );
    for q in &r.queues {
        s.push_str(&format!(
            "{:<25} {:<12} {:>7} {:>8} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8}\n",
            when(q.interval_start_ms),
            q.queue,
            q.offered,
            q.answered,
            q.abandoned,
            pct(q.service_level),
            pct(q.service_level_2),
            secs(q.asa_secs),
            secs(q.aht_secs),
            pct(q.abandon_rate)
        ));
    }
    s.push_str(&format!(
        "\n{:<25} {:<12} {:>8} {:>10} {:>8} {:>10} {:>9}\n",
        "interval", "agent", "answered", "talk s", "AHT s", "staffed s", "occupancy"
    ));
    for a in &r.agents {
        s.push_str(&format!(
            "{:<25} {:<12} {:>8} {:>10.1} {:>8} {:>10.0} {:>9}\n",
            when(a.interval_start_ms),
            a.agent,
            a.answered,
            a.talk_secs,
            secs(a.aht_secs),
            a.staffed_secs,
            pct(a.occupancy)
        ));
    }
    s
}

/// CSV of the queue rows (one header line).
pub fn to_csv(r: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for q in &r.queues {
        w.serialize(q)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 1_796_000_000_000 - 1_796_000_000_000 % 86_400_000;

    fn rec(id: &str, at_h: u64, disposition: Disposition, wait: f64, talk: f64) -> CallRecord {
        let at = DAY + at_h * 3_600_000;
        CallRecord {
            call_id: id.into(),
            caller: "+86".into(),
            dialed: "95588".into(),
            trunk: "pstn".into(),
            arrived_ms: at,
            queued_ms: Some(at),
            offered_ms: None,
            answered_ms: None,
            ended_ms: at + ((wait + talk) * 1000.0) as u64,
            queue: Some("general".into()),
            agent: (disposition == Disposition::Answered).then(|| "1001".into()),
            disposition,
            wait_secs: wait,
            talk_secs: talk,
            overflowed_from: vec![],
            plugin_versions: BTreeMap::new(),
            cause: String::new(),
        }
    }

    /// A scripted day, figures computed by hand (threshold 20 s):
    /// 09:00 answered after 5 s (talk 100), answered after 30 s (talk 200),
    ///       abandoned after 10 s, abandoned after 60 s;
    /// 14:00 answered after 15 s (talk 60), rejected (offered, neither).
    #[test]
    fn a_scripted_day_gives_the_hand_computed_figures() {
        use Disposition::*;
        let records = vec![
            rec("a", 9, Answered, 5.0, 100.0),
            rec("b", 9, Answered, 30.0, 200.0),
            rec("c", 9, AbandonedInQueue, 10.0, 0.0),
            rec("d", 9, AbandonedRinging, 60.0, 0.0),
            rec("e", 14, Answered, 15.0, 60.0),
            rec("f", 14, Overflowed, 120.0, 0.0),
        ];
        let t = HashMap::from([("general".to_string(), 20)]);
        let day = report(&records, &t, Interval::Day, None, &Calendar::utc());
        let q = &day.queues[0];
        assert_eq!((q.offered, q.answered, q.abandoned), (6, 3, 2));
        // SL: 2 of 3 answered within 20 s (5 s, 15 s).
        assert_eq!(q.service_level, Some(2.0 / 3.0));
        // SL2: (2 answered + 1 abandoned within 20 s) / (3 + 2).
        assert_eq!(q.service_level_2, Some(3.0 / 5.0));
        // ASA: (5 + 30 + 15) / 3; AHT: (100 + 200 + 60) / 3.
        assert_eq!(q.asa_secs, Some(50.0 / 3.0));
        assert_eq!(q.aht_secs, Some(120.0));
        assert_eq!(q.abandon_rate, Some(2.0 / 6.0));
        assert_eq!(day.agents[0].answered, 3);

        let hourly = report(
            &records,
            &t,
            Interval::Hour,
            Some("general"),
            &Calendar::utc(),
        );
        assert_eq!(hourly.queues.len(), 2);
        let nine = &hourly.queues[0];
        assert_eq!(nine.interval_start_ms, DAY + 9 * 3_600_000);
        assert_eq!(nine.service_level, Some(0.5));
        assert_eq!(nine.service_level_2, Some(2.0 / 4.0));
        assert_eq!(nine.asa_secs, Some(17.5));
        let two = &hourly.queues[1];
        assert_eq!((two.offered, two.answered, two.abandoned), (2, 1, 0));
        assert_eq!(two.service_level_2, Some(1.0));
        assert!(
            report(&records, &t, Interval::Min15, Some("vip"), &Calendar::utc())
                .queues
                .is_empty()
        );
    }

    /// 01:30 and 10:00 on 2026-11-30 in Beijing are one local day (two UTC
    /// days): the day report in Beijing time has one row, starting at local
    /// midnight, and its table prints local times.
    #[test]
    fn days_follow_the_centers_time_zone() {
        use Disposition::*;
        let bj = Calendar::named("Asia/Shanghai").unwrap();
        let at = |ms: u64| CallRecord {
            arrived_ms: ms,
            queued_ms: Some(ms),
            ..rec("x", 0, Answered, 5.0, 10.0)
        };
        let records = vec![at(1_795_973_400_000), at(1_796_004_000_000)];
        let t = HashMap::new();
        let local = report(&records, &t, Interval::Day, None, &bj);
        assert_eq!(local.queues.len(), 1);
        assert_eq!(local.queues[0].offered, 2);
        assert_eq!(local.time_zone, "Asia/Shanghai");
        assert_eq!(
            bj.format(local.queues[0].interval_start_ms),
            "2026-11-30T00:00:00+08:00"
        );
        assert!(
            to_table(&local).contains("2026-11-30T00:00:00+08:00"),
            "{}",
            to_table(&local)
        );
        assert_eq!(
            report(&records, &t, Interval::Day, None, &Calendar::utc())
                .queues
                .len(),
            2
        );
    }

    #[test]
    fn occupancy_is_handling_over_open_time_split_by_interval() {
        let h = 3_600_000u64;
        let e = |m: u64, state: &str| AgentStateEntry {
            at_ms: m,
            agent: "1001".into(),
            state: state.into(),
        };
        // 10:00 ready, 10:30 on a call, 10:50 wrap-up, 11:00 ready,
        // 11:15 not ready (break), 11:45 logged out. Report 10:00..12:00.
        let m = |min: u64| 10 * h + min * 60_000;
        let log = vec![
            e(m(0), "ready"),
            e(m(30), "on-call"),
            e(m(50), "wrap-up"),
            e(m(60), "ready"),
            e(m(75), "not-ready"),
            e(m(105), "logged-out"),
        ];
        let mut r = Report::default();
        add_occupancy(
            &mut r,
            &log,
            Interval::Hour,
            10 * h,
            12 * h,
            &Calendar::utc(),
        );
        let ten = &r.agents[0];
        assert_eq!(ten.interval_start_ms, 10 * h);
        assert_eq!(ten.staffed_secs, 3600.0);
        assert_eq!(ten.handling_secs, 1800.0);
        assert_eq!(ten.occupancy, Some(0.5));
        let eleven = &r.agents[1];
        // 15 min ready + 30 min not ready staffed; nothing handled.
        assert_eq!(eleven.staffed_secs, 45.0 * 60.0);
        assert_eq!(eleven.available_secs, 15.0 * 60.0);
        assert_eq!(eleven.occupancy, Some(0.0));
        let mut day = Report::default();
        add_occupancy(&mut day, &log, Interval::Day, 0, 12 * h, &Calendar::utc());
        assert_eq!(day.agents.len(), 1);
        assert_eq!(day.agents[0].occupancy, Some(1800.0 / 4500.0));
        // For a queue 1001 neither belongs to nor answered: no row.
        let mut other = day.clone();
        keep_agents_of_queue(&mut other, &BTreeSet::from(["1002".to_string()]));
        assert!(other.agents.is_empty());
        keep_agents_of_queue(&mut day, &BTreeSet::from(["1001".to_string()]));
        assert_eq!(day.agents.len(), 1);
    }
}
