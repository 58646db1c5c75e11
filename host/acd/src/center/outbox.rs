//! What one turn of the core answers: commands and events in the order
//! they were decided. The core's other parts hand their outputs here, so a
//! part can emit while another part of the state is borrowed.

use crate::model::{AcdEvent, Output, QueueLogKind};

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    out: Vec<Output>,
}

impl Outbox {
    /// Everything decided since the last drain.
    pub(crate) fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    pub(crate) fn cmd(&mut self, c: impl Into<Output>) {
        self.out.push(c.into());
    }

    pub(crate) fn event(&mut self, e: AcdEvent) {
        self.out.push(Output::Event(e));
    }

    pub(crate) fn warn(&mut self, call_id: Option<&str>, message: String) {
        self.event(AcdEvent::Warning {
            call_id: call_id.map(str::to_owned),
            message,
        });
    }

    pub(crate) fn qlog(
        &mut self,
        now_ms: u64,
        call_id: &str,
        queue: &str,
        agent: Option<&str>,
        kind: QueueLogKind,
    ) {
        self.event(AcdEvent::QueueLog {
            at_ms: now_ms,
            call_id: call_id.to_owned(),
            queue: queue.to_owned(),
            agent: agent.map(str::to_owned),
            kind,
        });
    }
}
