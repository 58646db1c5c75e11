// A screen-pop in JavaScript, built with `jco componentize` against ../../wit
// (world cti:plugin/screen-pop). Like the stock Rust crm-screen-pop: the card
// shows who calls (name, segment, masked account, language, last contact),
// the line and the caller's non-sensitive IVR answers, and a link to the CRM;
// a caller unknown by number is looked up by the account entered in the
// router's "identify" step, and the card says how the customer was found.
import { lookup } from "cti:plugin/crm@0.1.0";
import { configGet, counterAdd, log } from "cti:plugin/host@0.1.0";

const field = (label, value) => ({ label, value });

// Only the last four digits: "6222 0000 1234 5678" -> "**** 5678".
export function maskAccount(account) {
  const digits = [...account].filter((c) => /[0-9A-Za-z]/.test(c));
  if (digits.length <= 4) return "****";
  return "**** " + digits.slice(-4).join("");
}

// A short reason for the agent; the connector's long text goes to the log.
function crmNote(err) {
  const what = err.tag === "denied" ? "CRM lookup refused" : "CRM unavailable";
  const text = err.val ?? String(err);
  log("warn", "CRM lookup failed", [["error", text]]);
  const short = text.length <= 60 && !text.includes("://") && !/[\x00-\x1f]/.test(text);
  return short ? `${what}: ${text}` : `${what}: customer details could not be loaded`;
}

function find(key, notes) {
  try {
    return lookup(key) ?? null;
  } catch (e) {
    // result<_, crm-error> errors arrive as an exception carrying the variant.
    notes.push(crmNote(e.payload ?? e));
    return null;
  }
}

function customerOf(call, notes) {
  if (call.customer) return [call.customer, "by calling number"];
  const byPhone = find({ tag: "phone", val: call.caller }, notes);
  if (byPhone || notes.length > 0) return [byPhone, "by calling number"];
  const step = configGet("identify_step") ?? "identify";
  const entered = [...call.ivr].reverse().find((e) => e.step === step)?.digits;
  if (!entered) return [null, null];
  const byAccount = find({ tag: "account", val: entered }, notes);
  if (!byAccount && notes.length === 0) {
    notes.push("The account number the caller entered is not in the CRM");
  }
  return [byAccount, "by entered account"];
}

export function buildCard(call, agent) {
  const notes = [];
  const [customer, how] = customerOf(call, notes);
  const fields = [field("Caller", call.caller), field("Line", call.dialed)];
  for (const e of call.ivr) {
    if (!e.sensitive) fields.push(field(`IVR ${e.step}`, e.digits));
  }
  if (!customer) {
    if (notes.length === 0) notes.push("Caller not found in CRM");
    fields.unshift(field("Identified", "not identified"));
    return { title: `Unknown caller ${call.caller}`, fields, links: [], notes };
  }
  const head = [
    field("Name", customer.name),
    field("Segment", customer.segment.toUpperCase()),
    field("Identified", how),
  ];
  if (customer.accounts.length > 0) head.push(field("Account", maskAccount(customer.accounts[0])));
  if (customer.language) head.push(field("Language", customer.language));
  if (customer.lastContact) head.push(field("Last contact", customer.lastContact));
  const url = configGet("customer_url");
  const links = url ? [{ label: "Open in CRM", url: url.replaceAll("{id}", customer.id) }] : [];
  counterAdd("cards", 1n);
  const vip = customer.segment.toLowerCase() === "vip";
  return {
    title: vip ? `VIP - ${customer.name}` : customer.name,
    fields: head.concat(fields),
    links,
    notes: notes.concat(customer.notes),
  };
}
