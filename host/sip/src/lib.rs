//! SIP adapter: wire format (framing, the grammar of what the host reads),
//! transports, transactions, digest, registrar, and the B2BUA that turns
//! trunk INVITEs into ACD calls.

pub mod b2bua;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod flow;
pub mod info_dtmf;
pub mod registrar;
pub mod source_rate;
pub mod syntax;
pub mod transaction;
pub mod transport;
pub mod wire;
