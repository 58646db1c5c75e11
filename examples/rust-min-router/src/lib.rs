//! The smallest useful router: the example of `sdk/README.md`, built by the tests.

use ctihost_sdk::crm::{LookupKey, lookup};
use ctihost_sdk::router::*;

struct MyRouter;

impl Guest for MyRouter {
    fn route(mut call: CallInfo) -> RouteDecision {
        if call.customer.is_none() {
            call.customer = lookup(&LookupKey::Phone(call.caller.clone()))
                .ok()
                .flatten();
        }
        if call.is_vip() {
            return queue("vip").priority(10).into();
        }
        match call.digits("main-menu") {
            None => ivr("main-menu", "main-menu", 1).into(),
            Some("1") => queue("cards").skill("cards").into(),
            Some("9") => reject(486, "Busy Here"),
            Some(_) => queue("general").into(),
        }
    }

    fn rank_agents(_call: CallInfo, _queue: String, _c: Vec<AgentCandidate>) -> Vec<String> {
        vec![] // the queue's own strategy decides
    }
}

ctihost_sdk::export_router!(MyRouter);
