"""A router: VIP customers (found through the CRM connector) to the vip
queue with priority, everyone else to the configured queue."""

from typing import List

import wit_world
from componentize_py_types import Err
from wit_world.imports import crm, host, types


def queue(name: str, priority: int = 0) -> types.RouteDecision:
    return types.RouteDecision_Queue(types.QueueTarget(name, priority, [], None, None))


class WitWorld(wit_world.WitWorld):
    def route(self, call: types.CallInfo) -> types.RouteDecision:
        if call.customer is None:
            try:
                call.customer = crm.lookup(crm.LookupKey_Phone(call.caller))
            except Err as e:
                host.log(host.LogLevel.WARN, "CRM lookup failed", [("error", repr(e.value))])
        if call.customer is not None and call.customer.segment.lower() == "vip":
            host.counter_add("vip", 1)
            return queue("vip", 10)
        return queue(host.config_get("default_queue") or "general")

    def rank_agents(self, call: types.CallInfo, queue: str,
                    candidates: List[types.AgentCandidate]) -> List[str]:
        return []  # the queue's own strategy decides
