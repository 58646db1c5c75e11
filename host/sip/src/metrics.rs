//! What the SIP room reports for `/metrics`, as a trait it owns: the host's
//! metrics implement it, so this crate renders nothing and knows no
//! exporter.

/// Counters the endpoint bumps as messages and refusals happen.
pub trait SipMetrics: Send + Sync {
    /// A message went `"in"` or `"out"`; `first_line` is its start line
    /// (request method or status, as the wire had it: the implementation
    /// bounds the label values).
    fn sip_message(&self, direction: &'static str, first_line: &[u8]);
    /// A bound of the host (by its static name) refused something.
    fn bound_hit(&self, bound: &'static str);
    /// The host is draining (new calls get 503) or no longer is.
    fn set_draining(&self, on: bool);
    /// A new call was refused because the host is draining.
    fn drain_refused(&self);
}
