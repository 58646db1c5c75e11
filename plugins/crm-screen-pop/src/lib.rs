//! Screen-pop: the card an agent sees when a call is offered, built from the
//! CRM record (name, segment, masked account, last contact, notes).

use ctihost_sdk::crm::{LookupKey, lookup};
use ctihost_sdk::host;
use ctihost_sdk::screen_pop::*;
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct Config {
    /// Link to the customer in the bank's CRM; `{id}` is replaced.
    customer_url: Option<String>,
}

struct CrmScreenPop;

impl Guest for CrmScreenPop {
    fn build_card(call: CallInfo, agent: AgentInfo) -> Card {
        let cfg: Config = host::config().unwrap_or_default();
        let mut notes = Vec::new();
        let customer = match call.customer.clone() {
            Some(c) => Some(c),
            None => match lookup(&LookupKey::Phone(call.caller.clone())) {
                Ok(c) => c,
                Err(e) => {
                    notes.push(format!("CRM unavailable: {}", crm_error_text(&e)));
                    None
                }
            },
        };
        let mut fields = vec![field("Caller", &call.caller), field("Line", &call.dialed)];
        // Only non-sensitive IVR answers are shown to the agent.
        for e in call.ivr.iter().filter(|e| !e.sensitive) {
            fields.push(field(&format!("IVR {}", e.step), &e.digits));
        }
        let Some(c) = customer else {
            if notes.is_empty() {
                notes.push("Caller not found in CRM".into());
            }
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

fn crm_error_text(e: &ctihost_sdk::crm::CrmError) -> String {
    match e {
        ctihost_sdk::crm::CrmError::Unavailable(s) | ctihost_sdk::crm::CrmError::Denied(s) => {
            s.clone()
        }
    }
}

ctihost_sdk::export_screen_pop!(CrmScreenPop);
