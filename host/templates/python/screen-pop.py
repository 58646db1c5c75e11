"""A screen-pop: the customer's name and segment from the CRM, the masked
account, the line dialed."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import crm, types


def mask(account: str) -> str:
    chars = [c for c in account if c.isalnum()]
    return "****" if len(chars) <= 4 else "**** " + "".join(chars[-4:])


class WitWorld(wit_world.WitWorld):
    def build_card(self, call: types.CallInfo, agent: types.AgentInfo) -> types.Card:
        customer = call.customer
        if customer is None:
            try:
                customer = crm.lookup(crm.LookupKey_Phone(call.caller))
            except Err:
                customer = None
        fields = [types.CardField("Line", call.dialed)]
        if customer is None:
            return types.Card(f"Caller {call.caller}", fields, [], [])
        fields.append(types.CardField("Segment", customer.segment))
        if customer.accounts:
            fields.append(types.CardField("Account", mask(customer.accounts[0])))
        return types.Card(customer.name, fields, [], [])
