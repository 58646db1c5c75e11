//! A router: VIP customers (found through the CRM connector) to the vip
//! queue with priority, everyone else to the configured queue.

use ctihost_sdk::crm::{LookupKey, lookup};
use ctihost_sdk::host;
use ctihost_sdk::router::*;

struct Plugin;

impl Guest for Plugin {
    fn route(mut call: CallInfo) -> RouteDecision {
        if call.customer.is_none() {
            match lookup(&LookupKey::Phone(call.caller.clone())) {
                Ok(c) => call.customer = c,
                Err(e) => host::log(host::LogLevel::Warn, "CRM lookup failed", &[("error", &format!("{e:?}"))]),
            }
        }
        if call.is_vip() {
            host::counter_add("vip", 1);
            return queue("vip").priority(10).into();
        }
        let default = host::config_get("default_queue").unwrap_or_else(|| "general".into());
        queue(&default).into()
    }

    fn rank_agents(_call: CallInfo, _queue: String, _candidates: Vec<AgentCandidate>) -> Vec<String> {
        vec![] // the queue's own strategy decides
    }
}

ctihost_sdk::export_router!(Plugin);
