// A screen-pop: the customer's name and segment from the CRM, the masked
// account, the line dialed.
import { lookup } from "cti:plugin/crm@0.1.0";

const mask = (a) => {
  const c = [...a].filter((x) => /[0-9A-Za-z]/.test(x));
  return c.length <= 4 ? "****" : "**** " + c.slice(-4).join("");
};

export function buildCard(call, agent) {
  let customer = call.customer;
  if (!customer) {
    try {
      customer = lookup({ tag: "phone", val: call.caller });
    } catch (e) {
      customer = null; // no CRM answer: the card shows the caller only
    }
  }
  const fields = [{ label: "Line", value: call.dialed }];
  if (!customer) return { title: `Caller ${call.caller}`, fields, links: [], notes: [] };
  fields.push({ label: "Segment", value: customer.segment });
  if (customer.accounts.length) fields.push({ label: "Account", value: mask(customer.accounts[0]) });
  return { title: customer.name, fields, links: [], notes: [] };
}
