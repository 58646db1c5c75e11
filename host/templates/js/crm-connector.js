// A CRM connector: GET {base_url}/customers/by-phone/{phone}, JSON answer.
// The host only lets it reach the hosts listed in [capabilities] http_hosts.
import { configGet } from "cti:plugin/host@0.1.0";
import { send } from "cti:plugin/http@0.1.0";

// An error of a result-returning export is thrown; its payload is the err value.
class CrmFailure extends Error {
  constructor(text) {
    super(text);
    this.payload = { tag: "unavailable", val: text };
  }
}

export const crm = {
  lookup(key) {
    const base = configGet("base_url") ?? "";
    const path = { phone: "by-phone/", account: "by-account/", "customer-id": "" }[key.tag];
    let resp;
    try {
      resp = send({ method: "GET", url: `${base}/customers/${path}${key.val}`, headers: [], body: undefined });
    } catch (e) {
      throw new CrmFailure(`HTTP failed: ${JSON.stringify(e.payload ?? String(e))}`);
    }
    if (resp.status === 404) return undefined;
    if (resp.status !== 200) throw new CrmFailure(`CRM answered ${resp.status}`);
    const v = JSON.parse(new TextDecoder().decode(resp.body));
    return {
      id: String(v.id ?? ""), name: v.name ?? "", segment: v.segment ?? "",
      language: v.language ?? undefined, accounts: [], lastContact: undefined,
      notes: [], attributes: [],
    };
  },
};
