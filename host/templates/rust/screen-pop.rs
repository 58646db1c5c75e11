//! A screen-pop: the customer's name and segment from the CRM, the masked
//! account, the line dialed.

use ctihost_sdk::crm::{LookupKey, lookup};
use ctihost_sdk::screen_pop::*;

struct Plugin;

fn field(label: &str, value: &str) -> CardField {
    CardField { label: label.into(), value: value.into() }
}

impl Guest for Plugin {
    fn build_card(call: CallInfo, _agent: AgentInfo) -> Card {
        let customer = call
            .customer
            .clone()
            .or_else(|| lookup(&LookupKey::Phone(call.caller.clone())).ok().flatten());
        let mut fields = vec![field("Line", &call.dialed)];
        let title = match &customer {
            Some(c) => {
                fields.push(field("Segment", &c.segment));
                if let Some(a) = c.accounts.first() {
                    fields.push(field("Account", &mask_account(a)));
                }
                c.name.clone()
            }
            None => format!("Caller {}", call.caller),
        };
        Card { title, fields, links: vec![], notes: vec![] }
    }
}

ctihost_sdk::export_screen_pop!(Plugin);
