// A router: VIP customers (found through the CRM connector) to the vip queue
// with priority, everyone else to the configured queue.
import { lookup } from "cti:plugin/crm@0.1.0";
import { configGet, counterAdd, log } from "cti:plugin/host@0.1.0";

const queue = (name, priority = 0) => ({
  tag: "queue",
  val: { queue: name, priority, skills: [], maxWaitSecs: null, overflow: null },
});

export function route(call) {
  let customer = call.customer;
  if (!customer) {
    try {
      customer = lookup({ tag: "phone", val: call.caller });
    } catch (e) {
      // A failed import throws an Error whose payload is the WIT error.
      log("warn", "CRM lookup failed", [["error", String(e.payload?.val ?? e)]]);
    }
  }
  if (customer && customer.segment.toLowerCase() === "vip") {
    // s64 is a plain number in QuickJS (a BigInt would trap).
    counterAdd("vip", 1);
    return queue("vip", 10);
  }
  return queue(configGet("default_queue") ?? "general");
}

export function rankAgents(call, queueName, candidates) {
  return []; // the queue's own strategy decides
}
