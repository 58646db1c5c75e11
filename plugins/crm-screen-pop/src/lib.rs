//! Screen-pop: the card an agent sees when a call is offered, built from the
//! CRM record (name, segment, masked account, last contact, notes).

use ctihost_sdk::crm::{LookupKey, lookup};
use ctihost_sdk::host;
use ctihost_sdk::screen_pop::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    /// Link to the customer in the bank's CRM; `{id}` is replaced.
    customer_url: Option<String>,
    /// The router's IVR step where unknown callers enter an account number.
    #[serde(default = "identify_step")]
    identify_step: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            customer_url: None,
            identify_step: identify_step(),
        }
    }
}

fn identify_step() -> String {
    "identify".into()
}

/// How the customer on the card was found.
#[derive(Clone, Copy)]
enum Identified {
    ByNumber,
    ByAccount,
    No,
}

impl Identified {
    fn text(self) -> &'static str {
        match self {
            Identified::ByNumber => "by calling number",
            Identified::ByAccount => "by entered account",
            Identified::No => "not identified",
        }
    }
}

struct CrmScreenPop;

impl Guest for CrmScreenPop {
    fn build_card(call: CallInfo, agent: AgentInfo) -> Card {
        let cfg: Config = host::config().unwrap_or_default();
        let mut notes = Vec::new();
        let mut how = Identified::ByNumber;
        let mut customer = match call.customer.clone() {
            Some(c) => Some(c),
            None => match lookup(&LookupKey::Phone(call.caller.clone())) {
                Ok(c) => c,
                Err(e) => {
                    notes.push(crm_error_note(&e));
                    None
                }
            },
        };
        // Unknown by number: the account the caller entered in the router's
        // step (sensitive digits: used for the lookup, never shown).
        if customer.is_none()
            && notes.is_empty()
            && let Some(account) = call.digits(&cfg.identify_step).filter(|d| !d.is_empty())
        {
            match lookup(&LookupKey::Account(account.to_owned())) {
                Ok(Some(c)) => {
                    customer = Some(c);
                    how = Identified::ByAccount;
                }
                Ok(None) => {
                    notes.push("The account number the caller entered is not in the CRM".into())
                }
                Err(e) => notes.push(crm_error_note(&e)),
            }
        }
        let mut fields = vec![field("Caller", &call.caller), field("Line", &call.dialed)];
        // Only non-sensitive IVR answers are shown to the agent.
        for e in call.ivr.iter().filter(|e| !e.sensitive) {
            fields.push(field(&format!("IVR {}", e.step), &e.digits));
        }
        let Some(c) = customer else {
            if notes.is_empty() {
                notes.push("Caller not found in CRM".into());
            }
            fields.insert(0, field("Identified", Identified::No.text()));
            return Card {
                title: format!("Unknown caller {}", call.caller),
                fields,
                links: vec![],
                notes,
            };
        };
        let mut head = vec![
            field("Name", &c.name),
            field("Segment", &c.segment.to_uppercase()),
            field("Identified", how.text()),
        ];
        if let Some(acct) = c.accounts.first() {
            head.push(field("Account", &mask_account(acct)));
        }
        if let Some(lang) = &c.language {
            head.push(field("Language", lang));
        }
        if let Some(last) = &c.last_contact {
            head.push(field("Last contact", last));
        }
        head.extend(fields);
        notes.extend(c.notes.iter().cloned());
        let links = cfg
            .customer_url
            .map(|u| {
                vec![CardLink {
                    label: "Open in CRM".into(),
                    url: u.replace("{id}", &c.id),
                }]
            })
            .unwrap_or_default();
        host::counter_add("cards", 1);
        let title = if c.segment.eq_ignore_ascii_case("vip") {
            format!("VIP - {}", c.name)
        } else {
            c.name.clone()
        };
        let _ = agent;
        Card {
            title,
            fields: head,
            links,
            notes,
        }
    }
}

fn field(label: &str, value: &str) -> CardField {
    CardField {
        label: label.to_owned(),
        value: value.to_owned(),
    }
}

/// What the agent reads when the CRM gave no answer: a short reason such as
/// "CRM answered HTTP 503"; a connector's long text (URLs, socket errors) goes
/// to the log, not onto the card.
fn crm_error_note(e: &ctihost_sdk::crm::CrmError) -> String {
    let (what, detail) = match e {
        ctihost_sdk::crm::CrmError::Unavailable(s) => ("CRM unavailable", s),
        ctihost_sdk::crm::CrmError::Denied(s) => ("CRM lookup refused", s),
    };
    host::log(
        host::LogLevel::Warn,
        "CRM lookup failed",
        &[("error", detail)],
    );
    let printable = detail.chars().all(|c| !c.is_control());
    if detail.len() <= 60 && printable && !detail.contains("://") {
        format!("{what}: {detail}")
    } else {
        format!("{what}: customer details could not be loaded")
    }
}

ctihost_sdk::export_screen_pop!(CrmScreenPop);
