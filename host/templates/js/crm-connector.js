// A CRM connector: GET {base_url}/customers/by-phone/{phone}, JSON answer.
// The host only lets it reach the hosts listed in [capabilities] http_hosts.
import { configGet } from "cti:plugin/host@0.1.0";
import { send } from "cti:plugin/http@0.1.0";

// An export's WIT error is thrown as is: here a crm-error variant.
const unavailable = (text) => ({ tag: "unavailable", val: text });

// QuickJS has no TextDecoder; a UTF-8 body decoded by the URI decoder (a
// malformed body throws URIError, reported as unavailable).
const utf8 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
  }
  return decodeURIComponent(escape(s));
};

export const crm = {
  lookup(key) {
    const base = configGet("base_url") ?? "";
    const path = { phone: "by-phone/", account: "by-account/", "customer-id": "" }[key.tag];
    let resp;
    try {
      resp = send({ method: "GET", url: `${base}/customers/${path}${encodeURIComponent(key.val)}`, headers: [], body: null });
    } catch (e) {
      throw unavailable(`HTTP failed: ${JSON.stringify(e.payload ?? String(e))}`);
    }
    if (resp.status === 404) return null;
    if (resp.status !== 200) throw unavailable(`CRM answered ${resp.status}`);
    let v;
    try {
      v = JSON.parse(utf8(Uint8Array.from(resp.body)));
    } catch (e) {
      throw unavailable(`CRM answer is not JSON: ${e}`);
    }
    return {
      id: String(v.id ?? ""), name: v.name ?? "", segment: v.segment ?? "",
      language: v.language ?? null, accounts: (v.accounts ?? []).map(String),
      lastContact: v.last_contact ?? null,
      notes: [], attributes: [],
    };
  },
};
