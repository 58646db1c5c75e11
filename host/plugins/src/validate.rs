//! What a plugin returns is data. Every string of a hook's answer is checked
//! here before the host uses it: reason phrases and forward targets end up in
//! SIP messages, prompt names in file lookups, card text on agents' pages,
//! CRM text in logs. A string that could carry a second header, a path or
//! markup is refused, and so is a decision that names a queue, agent, prompt
//! or skill the center does not have, or an IVR step that cannot collect
//! digits: each is a plugin failure (fallback used, counted, towards rollback).

use super::bindings::*;

/// What exists in the center a plugin's decisions may name. The center
/// (which owns queues, agents and prompts) provides it; the plugin runtime
/// only asks.
pub trait DecisionScope: Send + Sync {
    fn has_queue(&self, name: &str) -> bool;
    fn has_agent(&self, id: &str) -> bool;
    fn has_prompt(&self, name: &str) -> bool;
    /// Some agent has this skill (a call asking for a skill nobody has
    /// could never be offered).
    fn has_skill(&self, skill: &str) -> bool;
}

/// Longest reason phrase sent in a SIP status line.
pub const MAX_REASON: usize = 128;
/// Longest name (queue, agent, skill, IVR step, prompt).
pub const MAX_NAME: usize = 64;
/// Longest forward target or overflow target.
pub const MAX_TARGET: usize = 256;
/// The shortest inter-digit timeout that lets a caller press a key.
pub const MIN_DIGIT_TIMEOUT_MS: u32 = 500;
pub const MAX_DIGIT_TIMEOUT_MS: u32 = 120_000;

/// Why a hook's answer was refused; the message names the field and what
/// is wrong with it (it reaches the host's log and the plugin's history,
/// never the plugin's text itself unescaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOutput {
    #[error("output of {size} bytes exceeds the {max}-byte cap")]
    TooLarge { size: usize, max: usize },
    #[error("answer does not fit hook {0}")]
    WrongHook(&'static str),
    #[error("{0}")]
    Field(String),
}

type Check = Result<(), InvalidOutput>;

fn bad(message: String) -> InvalidOutput {
    InvalidOutput::Field(message)
}

/// Printable text of at most `max` bytes: no control characters except
/// (where `lines`) newlines and tabs in free text.
fn text(what: &str, s: &str, max: usize, lines: bool) -> Check {
    if s.len() > max {
        return Err(bad(format!("{what} is {} bytes; at most {max}", s.len())));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !(lines && (*c == '\n' || *c == '\t')))
    {
        return Err(bad(format!(
            "{what} holds the control character {:?}",
            c.escape_default().to_string()
        )));
    }
    Ok(())
}

fn name(what: &str, s: &str) -> Check {
    if s.trim().is_empty() {
        return Err(bad(format!("{what} is empty")));
    }
    text(what, s, MAX_NAME, false)
}

/// A prompt is a file name in the prompt set: no path, no dots in front.
fn prompt(s: &str) -> Check {
    name("prompt name", s)?;
    if s.starts_with('.')
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad(format!(
            "prompt name {:?} is not a plain name (letters, digits, '-', '_', '.')",
            s.escape_default().to_string()
        )));
    }
    Ok(())
}

/// Characters a URI may hold as text: letters, digits and `-._~:/[]@!$&()*+;=%`
/// plus `extra`; never quotes, angle brackets, commas, spaces or controls,
/// which would let a value leave its header (or add a second Contact).
fn uri_chars(s: &str, extra: &[u8]) -> bool {
    s.bytes().all(|b| {
        b.is_ascii_alphanumeric() || b"-._~:/[]@!$&()*+;=%".contains(&b) || extra.contains(&b)
    })
}

/// A forward or overflow target: a phone number (`+`, digits, `*`, `#`) or
/// a `sip:`/`sips:`/`tel:` URI that parses.
pub fn sip_target(what: &str, s: &str) -> Check {
    let bad = |why: &str| {
        Err(bad(format!(
            "{what} {:?} {why}",
            s.escape_default().to_string()
        )))
    };
    if s.is_empty() || s.len() > MAX_TARGET {
        return bad("must be 1-256 characters");
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    if !digits.is_empty()
        && digits.len() <= 32
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Ok(());
    }
    // No `?`: headers embedded in a SIP URI would reach the caller's next request.
    if !uri_chars(s, b"#") {
        return bad("is neither a number nor a URI (it holds characters a URI cannot)");
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("tel:") {
        let number = &s[4..];
        let n = number.split(';').next().unwrap_or("");
        let n = n.strip_prefix('+').unwrap_or(n);
        if !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_digit() || b"-.()".contains(&b))
        {
            return Ok(());
        }
        return bad("is not a tel: number");
    }
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return match rsip::Uri::try_from(s) {
            Ok(u) if !u.host_with_port.to_string().is_empty() => Ok(()),
            _ => bad("is not a SIP URI"),
        };
    }
    bad("is neither a number nor a sip:, sips: or tel: URI")
}

fn http_url(s: &str) -> Check {
    let lower = s.to_ascii_lowercase();
    if s.len() > 2048
        || !uri_chars(s, b"?#,")
        || !(lower.starts_with("https://") || lower.starts_with("http://"))
    {
        return Err(bad(format!(
            "card link {:?} is not an http(s) URL",
            s.escape_default().to_string()
        )));
    }
    Ok(())
}

fn exists(what: &str, s: &str, found: bool) -> Check {
    if found {
        Ok(())
    } else {
        Err(bad(format!("{what} {s:?} does not exist in this center")))
    }
}

pub fn route(d: &RouteDecision, scope: Option<&dyn DecisionScope>) -> Check {
    match d {
        RouteDecision::Reject(r) => {
            if !(400..=699).contains(&r.code) {
                return Err(bad(format!(
                    "reject code {} is not a SIP error status (400-699)",
                    r.code
                )));
            }
            text("reject reason", &r.reason, MAX_REASON, false)
        }
        RouteDecision::Queue(q) => queue_target(q, scope),
        RouteDecision::Agent(a) => {
            name("agent id", a)?;
            match scope {
                Some(s) => exists("agent", a, s.has_agent(a)),
                None => Ok(()),
            }
        }
        RouteDecision::Forward(f) => sip_target("forward target", f),
        RouteDecision::Ivr(s) => ivr_step(s, scope),
    }
}

fn queue_target(q: &QueueTarget, scope: Option<&dyn DecisionScope>) -> Check {
    name("queue", &q.queue).map_err(|_| bad("queue decision names no queue".to_owned()))?;
    text("queue", &q.queue, MAX_NAME, false)?;
    if q.skills.len() > 32 {
        return Err(bad(format!("{} skills asked; at most 32", q.skills.len())));
    }
    for skill in &q.skills {
        name("skill", skill)?;
    }
    let overflow_queue = match q.overflow.as_deref() {
        Some(o) => match o.strip_prefix("queue:") {
            Some(next) => {
                name("overflow queue", next)?;
                Some(next)
            }
            None => {
                sip_target("overflow target", o)?;
                None
            }
        },
        None => None,
    };
    if let Some(s) = scope {
        exists("queue", &q.queue, s.has_queue(&q.queue))?;
        if let Some(next) = overflow_queue {
            exists("overflow queue", next, s.has_queue(next))?;
        }
        for skill in &q.skills {
            exists("skill (no agent has it)", skill, s.has_skill(skill))?;
        }
    }
    Ok(())
}

pub fn ivr_step(s: &IvrStep, scope: Option<&dyn DecisionScope>) -> Check {
    name("IVR step name", &s.name)
        .map_err(|_| bad("IVR step needs a name and a prompt".to_owned()))?;
    if s.prompt.is_empty() {
        return Err(bad("IVR step needs a name and a prompt".into()));
    }
    prompt(&s.prompt)?;
    if s.max_digits > 64 {
        return Err(bad("IVR step asks for more than 64 digits".into()));
    }
    if let Some(t) = &s.terminator
        && !(t.len() == 1 && "0123456789*#ABCD".contains(t.as_str()))
    {
        return Err(bad(format!(
            "IVR terminator {:?} is not one key (0-9, *, #, A-D)",
            t.escape_default().to_string()
        )));
    }
    if s.max_digits > 0
        && !(MIN_DIGIT_TIMEOUT_MS..=MAX_DIGIT_TIMEOUT_MS).contains(&s.inter_digit_timeout_ms)
    {
        return Err(bad(format!(
            "IVR step {:?} collects digits with an inter-digit timeout of {} ms: callers cannot enter digits ({MIN_DIGIT_TIMEOUT_MS}-{MAX_DIGIT_TIMEOUT_MS} ms)",
            s.name, s.inter_digit_timeout_ms
        )));
    }
    if let Some(scope) = scope {
        exists("prompt", &s.prompt, scope.has_prompt(&s.prompt))?;
    }
    Ok(())
}

pub fn card(c: &Card) -> Check {
    if c.title.is_empty() {
        return Err(bad("card has an empty title".into()));
    }
    text("card title", &c.title, 200, false)?;
    if c.fields.len() > 64 || c.links.len() > 16 || c.notes.len() > 32 {
        return Err(bad(
            "card has more than 64 fields, 16 links or 32 notes".into()
        ));
    }
    for f in &c.fields {
        text("card field label", &f.label, MAX_NAME, false)?;
        text("card field value", &f.value, 1024, true)?;
    }
    for l in &c.links {
        text("card link label", &l.label, MAX_NAME, false)?;
        http_url(&l.url)?;
    }
    for n in &c.notes {
        text("card note", n, 2048, true)?;
    }
    Ok(())
}

pub fn lookup(r: &Result<Option<Customer>, CrmError>) -> Check {
    match r {
        Ok(None) => Ok(()),
        Ok(Some(c)) => {
            text("customer id", &c.id, 128, false)?;
            text("customer name", &c.name, 256, false)?;
            text("customer segment", &c.segment, MAX_NAME, false)?;
            if let Some(l) = &c.language {
                text("customer language", l, 35, false)?;
            }
            if c.accounts.len() > 64 || c.notes.len() > 64 || c.attributes.len() > 64 {
                return Err(bad(
                    "customer has more than 64 accounts, notes or attributes".into(),
                ));
            }
            for a in &c.accounts {
                text("account", a, 64, false)?;
            }
            if let Some(l) = &c.last_contact {
                text("last contact", l, 64, false)?;
            }
            for n in &c.notes {
                text("customer note", n, 2048, true)?;
            }
            for (k, v) in &c.attributes {
                text("attribute name", k, MAX_NAME, false)?;
                text("attribute value", v, 1024, true)?;
            }
            Ok(())
        }
        Err(CrmError::Unavailable(s) | CrmError::Denied(s)) => text("CRM error", s, 512, false),
    }
}

pub fn recording(d: &RecordingDecision) -> Check {
    text("recording reason", &d.reason, 256, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_numbers_or_uris_and_nothing_that_leaves_a_header() {
        for ok in [
            "+8613800000001",
            "95588",
            "*99#",
            "sip:agent@10.1.2.3:5060",
            "sips:help@bank.example;transport=tls",
            "tel:+86-10-95588",
        ] {
            assert!(sip_target("t", ok).is_ok(), "{ok}");
        }
        for bad in [
            "sip:x@h>\r\nRecord-Route: <sip:evil",
            "sip:a@b\nX-Injected: 1",
            "<sip:a@b>",
            "sip:a@b, <sip:c@d>",
            "sip:a@b,sip:c@d",
            "sip:a@b?X-Injected=1",
            "javascript:alert(1)",
            "",
            "12 34",
            "sip:",
        ] {
            assert!(sip_target("t", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reasons_prompts_and_steps() {
        let rej = |reason: &str| {
            route(
                &RouteDecision::Reject(Rejection {
                    code: 486,
                    reason: reason.into(),
                }),
                None,
            )
        };
        assert!(rej("Busy Here").is_ok());
        assert!(rej("Busy Here\r\nX-Injected: from-plugin").is_err());
        assert!(rej(&"x".repeat(129)).is_err());
        let step = |prompt: &str, timeout: u32| IvrStep {
            name: "menu".into(),
            prompt: prompt.into(),
            max_digits: 1,
            terminator: Some("#".into()),
            inter_digit_timeout_ms: timeout,
            sensitive: false,
        };
        assert!(ivr_step(&step("main-menu", 5000), None).is_ok());
        assert!(ivr_step(&step("../../etc/passwd", 5000), None).is_err());
        assert!(ivr_step(&step("main-menu\r\nX-Injected: 1", 5000), None).is_err());
        let e = ivr_step(&step("main-menu", 0), None).unwrap_err();
        assert!(e.to_string().contains("cannot enter digits"), "{e}");
        let mut play_only = step("welcome", 0);
        play_only.max_digits = 0;
        assert!(
            ivr_step(&play_only, None).is_ok(),
            "a prompt-only step needs no timeout"
        );
    }

    struct Center;
    impl DecisionScope for Center {
        fn has_queue(&self, n: &str) -> bool {
            n == "general"
        }
        fn has_agent(&self, id: &str) -> bool {
            id == "1001"
        }
        fn has_prompt(&self, n: &str) -> bool {
            n == "main-menu"
        }
        fn has_skill(&self, s: &str) -> bool {
            s == "cards"
        }
    }

    #[test]
    fn decisions_name_what_the_center_has() {
        let q = |queue: &str, skill: &str, overflow: Option<&str>| {
            RouteDecision::Queue(QueueTarget {
                queue: queue.into(),
                priority: 0,
                skills: vec![skill.into()],
                max_wait_secs: None,
                overflow: overflow.map(str::to_owned),
            })
        };
        assert!(route(&q("general", "cards", None), Some(&Center)).is_ok());
        let e = route(&q("genral", "cards", None), Some(&Center)).unwrap_err();
        assert!(e.to_string().contains("\"genral\" does not exist"), "{e}");
        assert!(route(&q("general", "flying", None), Some(&Center)).is_err());
        assert!(route(&q("general", "cards", Some("queue:nope")), Some(&Center)).is_err());
        assert!(route(&q("general", "cards", Some("+8610")), Some(&Center)).is_ok());
        assert!(route(&RouteDecision::Agent("9999".into()), Some(&Center)).is_err());
        assert!(route(&RouteDecision::Agent("1001".into()), Some(&Center)).is_ok());
    }

    #[test]
    fn cards_hold_text_and_http_links_only() {
        let mut c = Card {
            title: "Liu Yang".into(),
            fields: vec![CardField {
                label: "Segment".into(),
                value: "RETAIL".into(),
            }],
            links: vec![CardLink {
                label: "Open".into(),
                url: "https://crm.bank.example/c/1".into(),
            }],
            notes: vec!["line one\nline two".into()],
        };
        assert!(card(&c).is_ok());
        c.links[0].url = "javascript:alert(document.cookie)".into();
        assert!(card(&c).is_err());
        c.links[0].url = "https://x/\"><script>".into();
        assert!(card(&c).is_err());
    }
}
