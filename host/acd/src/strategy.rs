//! How a queue picks among the agents free to take a call.

use serde::{Deserialize, Serialize};

use super::agent::Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The agent free the longest.
    #[default]
    LongestIdle,
    /// Members in turn, after the last one offered a call.
    RoundRobin,
    /// Every free member at once; the first to answer takes it.
    RingAll,
    /// The agent with the fewest calls today.
    FewestCalls,
    /// Highest level in the call's skills, then queue weight, then longest idle.
    SkillsWeighted,
}

/// Order `candidates` (indices into `agents`, all free members with the
/// skills) best first. `last_offered` is the round-robin cursor.
pub fn order(
    strategy: Strategy,
    queue: &str,
    skills: &[String],
    agents: &[&Agent],
    last_offered: Option<&str>,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..agents.len()).collect();
    // Ties are broken by agent id so the order is stable and testable.
    match strategy {
        Strategy::LongestIdle | Strategy::RingAll => idx.sort_by(|&a, &b| {
            agents[a]
                .idle_since_ms
                .cmp(&agents[b].idle_since_ms)
                .then(agents[a].config.id.cmp(&agents[b].config.id))
        }),
        Strategy::FewestCalls => idx.sort_by(|&a, &b| {
            agents[a]
                .calls_today
                .cmp(&agents[b].calls_today)
                .then(agents[a].idle_since_ms.cmp(&agents[b].idle_since_ms))
                .then(agents[a].config.id.cmp(&agents[b].config.id))
        }),
        Strategy::SkillsWeighted => {
            let score = |a: &Agent| -> u32 {
                let level: u32 = skills
                    .iter()
                    .map(|s| a.config.skills.get(s).copied().unwrap_or(0) as u32)
                    .sum();
                level * 1000 + a.weight(queue)
            };
            idx.sort_by(|&a, &b| {
                score(agents[b])
                    .cmp(&score(agents[a]))
                    .then(agents[a].idle_since_ms.cmp(&agents[b].idle_since_ms))
                    .then(agents[a].config.id.cmp(&agents[b].config.id))
            })
        }
        Strategy::RoundRobin => {
            idx.sort_by(|&a, &b| agents[a].config.id.cmp(&agents[b].config.id));
            if let Some(last) = last_offered {
                let start = idx
                    .iter()
                    .position(|&i| agents[i].config.id.as_str() > last)
                    .unwrap_or(0);
                idx.rotate_left(start);
            }
        }
    }
    idx
}
