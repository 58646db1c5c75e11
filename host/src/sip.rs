//! SIP adapter: wire format around `rsip`, transports, transactions,
//! registrar. (The B2BUA that turns INVITEs into ACD calls joins here.)

pub mod b2bua;
pub mod digest;
pub mod endpoint;
pub mod flow;
pub mod registrar;
pub mod transaction;
pub mod transport;
pub mod wire;
