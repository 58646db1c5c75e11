// A router that misbehaves on purpose for calls to 666, by its manifest's
// `mode`: throw, loop forever, or eat memory. Other calls (the host's
// self-test among them) route to "general".
import { configGet } from "cti:plugin/host@0.1.0";

export function route(call) {
  const mode = call.dialed === "666" ? configGet("mode") : "ok";
  if (mode === "raise") throw new Error("the bank's rule table is broken");
  if (mode === "loop") {
    let n = 0;
    for (;;) n++;
  }
  if (mode === "memory") {
    const hog = [];
    for (;;) hog.push(new Uint8Array(1024 * 1024).fill(1));
  }
  return { tag: "queue", val: { queue: "general", priority: 0, skills: [], maxWaitSecs: undefined, overflow: undefined } };
}

export function rankAgents(call, queue, candidates) {
  return [];
}
