"""A router in Python, built with componentize-py against ../../wit.

It routes like the stock Rust skills router (plugins/skills-router): service
number -> IVR menu -> queue by digit; VIP customers (found through the CRM
connector) to a priority queue; an after-hours rule. The table is the
manifest's [config], in the same shape as the stock router's.
"""

import json
from typing import List, Optional

import wit_world
from componentize_py_types import Err
from wit_world.imports import crm, host, types


def _queue(name: str, priority: int = 0, skills: Optional[List[str]] = None,
           max_wait_secs: Optional[int] = None,
           overflow: Optional[str] = None) -> types.RouteDecision:
    return types.RouteDecision_Queue(
        types.QueueTarget(name, priority, skills or [], max_wait_secs, overflow))


def _target(t, default_queue: str) -> types.RouteDecision:
    """A table destination: "cards" is a queue; a table says more."""
    if isinstance(t, str):
        return _queue(t)
    if t.get("reject") is not None:
        return types.RouteDecision_Reject(
            types.Rejection(int(t["reject"]), t.get("reason") or "Unavailable"))
    if t.get("forward") is not None:
        return types.RouteDecision_Forward(t["forward"])
    if t.get("agent") is not None:
        return types.RouteDecision_Agent(t["agent"])
    return _queue(t.get("queue") or default_queue, int(t.get("priority", 0)),
                  list(t.get("skills", [])), t.get("max_wait_secs"), t.get("overflow"))


def _hhmm(s: str) -> Optional[int]:
    try:
        h, m = (int(x.strip()) for x in s.split(":", 1))
    except ValueError:
        return None
    return h * 60 + m if 0 <= h < 24 and 0 <= m < 60 else None


def _open_now(hours: dict, at_ms: int, offset_minutes: int) -> bool:
    secs = at_ms // 1000 + offset_minutes * 60
    days, rem = divmod(secs, 86_400)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    minutes = rem // 60
    opens, closes = _hhmm(hours.get("open", "")), _hhmm(hours.get("close", ""))
    if opens is None or closes is None:
        return True
    return weekday in hours.get("days", []) and opens <= minutes < closes


def _is_vip(call: types.CallInfo) -> bool:
    return call.customer is not None and call.customer.segment.lower() == "vip"


def decide(cfg: dict, call: types.CallInfo) -> types.RouteDecision:
    """The decision from the table alone (no host calls)."""
    default_queue = cfg.get("default_queue", "general")
    vip = cfg.get("vip") if _is_vip(call) else None
    hours = cfg.get("hours")
    if (hours is not None
            and not _open_now(hours, call.arrived_at_ms, cfg.get("utc_offset_minutes", 480))
            and not (vip is not None and vip.get("always_open", False))):
        return _target(hours["after_hours"], default_queue)
    if vip is not None:
        skills = []
        if call.customer is not None and call.customer.language:
            skills.append(f"lang:{call.customer.language}")
        return _queue(vip["queue"], int(vip.get("priority", 10)), skills)
    service = next((s for s in cfg.get("services", []) if s.get("number") == call.dialed), None)
    if service is None:
        return _queue(default_queue)
    menu = service.get("menu")
    if menu is None:
        route = service.get("route")
        return _target(route, default_queue) if route is not None else _queue(default_queue)
    name = menu["name"]
    answers = [e for e in call.ivr if e.step == name]
    choice = menu.get("options", {}).get(answers[-1].digits) if answers else None
    if choice is not None:
        return _target(choice, default_queue)
    if len(answers) <= int(menu.get("retries", 1)):
        prompt = menu["prompt"] + ("-invalid" if answers else "")
        return types.RouteDecision_Ivr(types.IvrStep(
            name, prompt, int(menu.get("max_digits", 1)), "#",
            int(menu.get("timeout_ms", 5000)), False))
    return _queue(default_queue)


class WitWorld(wit_world.WitWorld):
    def route(self, call: types.CallInfo) -> types.RouteDecision:
        try:
            cfg = json.loads(host.config_json())
        except ValueError as e:
            host.log(host.LogLevel.ERROR, "bad router config", [("error", str(e))])
            return _queue("general")
        if call.customer is None and cfg.get("crm_lookup", True):
            try:
                call.customer = crm.lookup(crm.LookupKey_Phone(call.caller))
            except Err as e:
                host.log(host.LogLevel.WARN, "CRM lookup failed; routing without customer",
                         [("error", repr(e.value))])
        return decide(cfg, call)

    def rank_agents(self, call: types.CallInfo, queue: str,
                    candidates: List[types.AgentCandidate]) -> List[str]:
        # Leave the queue's own strategy in charge.
        return []
