//! Skills router, configured by a table in its manifest:
//! service number -> IVR menu -> queue by digit; VIP customers to a priority
//! queue; an after-hours rule. See `plugin.toml` for the table's shape.

use std::collections::BTreeMap;

use ctihost_sdk::crm::{LookupKey, lookup};
use ctihost_sdk::host;
use ctihost_sdk::router::*;
use serde::Deserialize;

/// The routing table (the manifest's `[config]`).
#[derive(Deserialize)]
pub struct Config {
    #[serde(default = "default_offset")]
    utc_offset_minutes: i32,
    #[serde(default = "default_queue")]
    default_queue: String,
    #[serde(default = "yes")]
    crm_lookup: bool,
    vip: Option<Vip>,
    /// Callers the CRM does not know by their number are asked for an
    /// account or card number (a sensitive step) and looked up by it.
    identify: Option<Identify>,
    hours: Option<Hours>,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Deserialize)]
struct Vip {
    queue: String,
    #[serde(default = "ten")]
    priority: i32,
    /// VIPs are served outside business hours too.
    #[serde(default)]
    always_open: bool,
}

#[derive(Deserialize)]
struct Identify {
    #[serde(default = "identify_step")]
    step: String,
    #[serde(default = "identify_prompt")]
    prompt: String,
    #[serde(default = "nineteen")]
    max_digits: u8,
    #[serde(default = "timeout")]
    timeout_ms: u32,
}

fn identify_step() -> String {
    "identify".into()
}
fn identify_prompt() -> String {
    "enter-card".into()
}
fn nineteen() -> u8 {
    19
}

#[derive(Deserialize)]
struct Hours {
    /// Open days, 0 = Monday ... 6 = Sunday.
    days: Vec<u8>,
    open: String,
    close: String,
    after_hours: Target,
}

#[derive(Deserialize)]
struct Service {
    number: String,
    menu: Option<Menu>,
    /// Where calls go when the service has no menu.
    route: Option<Target>,
}

#[derive(Deserialize)]
struct Menu {
    name: String,
    prompt: String,
    #[serde(default = "one")]
    max_digits: u8,
    #[serde(default = "timeout")]
    timeout_ms: u32,
    /// Times the menu is repeated after an invalid choice.
    #[serde(default = "one")]
    retries: u8,
    options: BTreeMap<String, Target>,
}

/// A destination: `"cards"` is a queue; a table says more.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Target {
    Queue(String),
    Full {
        queue: Option<String>,
        #[serde(default)]
        priority: i32,
        #[serde(default)]
        skills: Vec<String>,
        max_wait_secs: Option<u32>,
        overflow: Option<String>,
        forward: Option<String>,
        agent: Option<String>,
        reject: Option<u16>,
        reason: Option<String>,
    },
}

fn default_offset() -> i32 {
    480
}
fn default_queue() -> String {
    "general".into()
}
fn yes() -> bool {
    true
}
fn ten() -> i32 {
    10
}
fn one() -> u8 {
    1
}
fn timeout() -> u32 {
    5000
}

impl Target {
    fn decision(&self) -> RouteDecision {
        match self {
            Target::Queue(q) => queue(q).into(),
            Target::Full {
                queue: q,
                priority,
                skills,
                max_wait_secs,
                overflow,
                forward,
                agent,
                reject: code,
                reason,
            } => {
                if let Some(code) = code {
                    return reject(*code, reason.as_deref().unwrap_or("Unavailable"));
                }
                if let Some(f) = forward {
                    return RouteDecision::Forward(f.clone());
                }
                if let Some(a) = agent {
                    return RouteDecision::Agent(a.clone());
                }
                RouteDecision::Queue(QueueTarget {
                    queue: q.clone().unwrap_or_else(default_queue),
                    priority: *priority,
                    skills: skills.clone(),
                    max_wait_secs: *max_wait_secs,
                    overflow: overflow.clone(),
                })
            }
        }
    }
}

struct SkillsRouter;

/// What happened, for the plugin's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    AfterHours,
    Vip,
    Menu,
}

/// The routing decision from the table alone: no host calls, so the same code
/// runs natively (the benchmarks' baseline) and in the sandbox.
pub fn decide(cfg: &Config, call: &CallInfo) -> (RouteDecision, Option<Outcome>) {
    let vip = cfg.vip.as_ref().filter(|_| call.is_vip());
    if let Some(h) = &cfg.hours
        && !open_now(h, call.arrived_at_ms, cfg.utc_offset_minutes)
        && !vip.is_some_and(|v| v.always_open)
    {
        return (h.after_hours.decision(), Some(Outcome::AfterHours));
    }
    if let Some(v) = vip {
        let mut q = queue(&v.queue).priority(v.priority);
        if let Some(lang) = call.customer.as_ref().and_then(|c| c.language.as_deref()) {
            q = q.skill(&format!("lang:{lang}"));
        }
        return (q.into(), Some(Outcome::Vip));
    }
    let Some(service) = cfg.services.iter().find(|s| s.number == call.dialed) else {
        return (queue(&cfg.default_queue).into(), None);
    };
    let Some(menu) = &service.menu else {
        let decision = service
            .route
            .as_ref()
            .map(Target::decision)
            .unwrap_or_else(|| queue(&cfg.default_queue).into());
        return (decision, None);
    };
    let attempts = call.ivr.iter().filter(|e| e.step == menu.name).count();
    let choice = call.digits(&menu.name).and_then(|d| menu.options.get(d));
    match choice {
        Some(target) => (target.decision(), Some(Outcome::Menu)),
        None if attempts <= menu.retries as usize => {
            let mut step = ivr(&menu.name, &menu.prompt, menu.max_digits);
            step.inter_digit_timeout_ms = menu.timeout_ms;
            if attempts > 0 {
                step.prompt = format!("{}-invalid", menu.prompt);
            }
            (step.into(), None)
        }
        None => (queue(&cfg.default_queue).into(), None),
    }
}

/// Parse the table from JSON, then [`decide`].
pub fn route_with_config(
    config_json: &str,
    call: &CallInfo,
) -> Result<(RouteDecision, Option<Outcome>), String> {
    let cfg: Config =
        serde_json::from_str(config_json).map_err(|e| format!("router config: {e}"))?;
    Ok(decide(&cfg, call))
}

impl Guest for SkillsRouter {
    fn route(mut call: CallInfo) -> RouteDecision {
        let cfg: Config = match serde_json::from_str(&host::config_json()) {
            Ok(c) => c,
            Err(e) => {
                host::log(
                    host::LogLevel::Error,
                    "bad router config",
                    &[("error", &e.to_string())],
                );
                return queue("general").into();
            }
        };
        let mut unknown_number = false;
        if call.customer.is_none() && cfg.crm_lookup {
            match lookup(&LookupKey::Phone(call.caller.clone())) {
                Ok(Some(c)) => call.customer = Some(c),
                Ok(None) => unknown_number = true,
                Err(e) => host::log(
                    host::LogLevel::Warn,
                    "CRM lookup failed; routing without customer",
                    &[("error", &format!("{e:?}"))],
                ),
            }
        }
        if unknown_number && let Some(id) = &cfg.identify {
            match call.digits(&id.step) {
                // Asked once: the caller's answer (or silence) comes back here.
                None => {
                    host::counter_add("identify_asked", 1);
                    let mut step = ivr(&id.step, &id.prompt, id.max_digits).sensitive();
                    step.inter_digit_timeout_ms = id.timeout_ms;
                    return step.into();
                }
                Some(digits) if !digits.is_empty() => {
                    match lookup(&LookupKey::Account(digits.to_owned())) {
                        Ok(Some(c)) => {
                            host::counter_add("identified_by_account", 1);
                            call.customer = Some(c);
                        }
                        Ok(None) => host::counter_add("account_not_found", 1),
                        // The digits are sensitive: never in a log line.
                        Err(e) => host::log(
                            host::LogLevel::Warn,
                            "CRM lookup by account failed; routing without customer",
                            &[("error", &format!("{e:?}"))],
                        ),
                    }
                }
                Some(_) => {}
            }
        }
        let (decision, outcome) = decide(&cfg, &call);
        match outcome {
            Some(Outcome::AfterHours) => host::counter_add("after_hours", 1),
            Some(Outcome::Vip) => host::counter_add("vip", 1),
            Some(Outcome::Menu) => host::counter_add("menu_choice", 1),
            None => {}
        }
        decision
    }

    fn rank_agents(
        call: CallInfo,
        queue: String,
        mut candidates: Vec<AgentCandidate>,
    ) -> Vec<String> {
        // Rank by the skills this router asks of the call (the menu choice);
        // with none, by a skill named like the queue.
        let skills = match host::config().map(|cfg: Config| decide(&cfg, &call).0) {
            Ok(RouteDecision::Queue(q)) if !q.skills.is_empty() => q.skills,
            _ => vec![queue],
        };
        let level = |c: &AgentCandidate| -> u32 {
            skills
                .iter()
                .map(|s| {
                    c.skills
                        .iter()
                        .find(|(k, _)| k == s)
                        .map(|(_, l)| *l as u32)
                        .unwrap_or(0)
                })
                .sum()
        };
        // Best level first; among equals, the longest idle.
        candidates.sort_by(|a, b| level(b).cmp(&level(a)).then(b.idle_secs.cmp(&a.idle_secs)));
        if !call.is_vip() && candidates.iter().all(|c| level(c) == level(&candidates[0])) {
            return vec![]; // nothing to add to the queue's own strategy
        }
        candidates.into_iter().map(|c| c.id).collect()
    }
}

fn open_now(h: &Hours, at_ms: u64, offset: i32) -> bool {
    let t = LocalTime::at(at_ms, offset);
    let (Some(open), Some(close)) = (parse_hhmm(&h.open), parse_hhmm(&h.close)) else {
        return true;
    };
    h.days.contains(&t.weekday) && t.minutes() >= open && t.minutes() < close
}

ctihost_sdk::export_router!(SkillsRouter);
