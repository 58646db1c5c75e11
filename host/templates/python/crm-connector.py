"""A CRM connector: GET {base_url}/customers/by-phone/{phone}, JSON answer.
The host only lets it reach the hosts listed in [capabilities] http_hosts."""

import json
from typing import Optional

import wit_world
from componentize_py_types import Err
from wit_world.exports import crm
from wit_world.imports import host, http, types


class Crm(wit_world.exports.Crm):
    def lookup(self, key: crm.LookupKey) -> Optional[types.Customer]:
        base = host.config_get("base_url") or ""
        if isinstance(key, crm.LookupKey_Phone):
            url = f"{base}/customers/by-phone/{key.value}"
        elif isinstance(key, crm.LookupKey_Account):
            url = f"{base}/customers/by-account/{key.value}"
        else:
            url = f"{base}/customers/{key.value}"
        try:
            resp = http.send(http.Request("GET", url, [], None))
        except Err as e:
            raise Err(crm.CrmError_Unavailable(repr(e.value)))
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise Err(crm.CrmError_Unavailable(f"CRM answered {resp.status}"))
        try:
            v = json.loads(resp.body)
        except ValueError as e:
            raise Err(crm.CrmError_Unavailable(f"bad JSON: {e}"))
        accounts = [str(a) for a in v.get("accounts") or []]
        return types.Customer(str(v.get("id", "")), v.get("name", ""), v.get("segment", ""),
                              v.get("language"), accounts, v.get("last_contact"), [], [])
