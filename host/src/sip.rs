//! SIP adapter: wire format around `rsip`, transports, transactions,
//! registrar. (The B2BUA that turns INVITEs into ACD calls joins here.)

pub mod digest;
pub mod wire;
