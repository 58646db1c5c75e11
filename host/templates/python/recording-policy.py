"""A recording policy: record both legs and keep them 90 days; pause while a
sensitive IVR step (card number, PIN) runs, resume after it."""

import wit_world
from wit_world.imports import types


class WitWorld(wit_world.WitWorld):
    def on_connect(self, call: types.CallInfo) -> types.RecordingDecision:
        return types.RecordingDecision(types.RecordMode.BOTH, 90, "default policy")

    def on_event(self, call: types.CallInfo, event: types.CallEvent,
                 paused: bool) -> types.RecordingAction:
        if isinstance(event, types.CallEvent_IvrStepEntered) and event.value.sensitive and not paused:
            return types.RecordingAction.PAUSE
        if isinstance(event, types.CallEvent_IvrStepLeft) and paused:
            return types.RecordingAction.RESUME
        return types.RecordingAction.KEEP
