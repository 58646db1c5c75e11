"""A router that misbehaves on purpose for calls to 666, by its manifest's
`mode`: raise an exception, loop forever, or eat memory. Other calls (the
host's self-test among them) route to "general"."""

from typing import List

import wit_world
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    def route(self, call: types.CallInfo) -> types.RouteDecision:
        mode = host.config_get("mode") if call.dialed == "666" else "ok"
        if mode == "raise":
            raise ValueError("the bank's rule table is broken")
        if mode == "loop":
            n = 0
            while True:
                n += 1
        if mode == "memory":
            hog = []
            while True:
                hog.append(bytearray(1024 * 1024))
        return types.RouteDecision_Queue(types.QueueTarget("general", 0, [], None, None))

    def rank_agents(self, call: types.CallInfo, queue: str,
                    candidates: List[types.AgentCandidate]) -> List[str]:
        return []
