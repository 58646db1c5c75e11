// A recording policy: record both legs and keep them 90 days; pause while a
// sensitive IVR step (card number, PIN) runs, resume after it.
export function onConnect(call) {
  return { mode: "both", retentionDays: 90, reason: "default policy" };
}

export function onEvent(call, event, paused) {
  if (event.tag === "ivr-step-entered" && event.val.sensitive && !paused) return "pause";
  if (event.tag === "ivr-step-left" && paused) return "resume";
  return "keep";
}
