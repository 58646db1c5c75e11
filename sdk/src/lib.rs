//! # ctihost SDK
//!
//! Write ctihost plugins in Rust. A plugin is a `cdylib` crate built with
//! `cargo build --target wasm32-wasip2 --release`; the output `.wasm` is a
//! WebAssembly component the host loads.
//!
//! ```ignore
//! use ctihost_sdk::router::*;
//!
//! struct MyRouter;
//!
//! impl Guest for MyRouter {
//!     fn route(call: CallInfo) -> RouteDecision {
//!         if call.is_vip() {
//!             return queue("vip").priority(10).into();
//!         }
//!         queue("general").into()
//!     }
//!     fn rank_agents(_: CallInfo, _: String, _: Vec<AgentCandidate>) -> Vec<String> {
//!         vec![] // leave ranking to the queue's strategy
//!     }
//! }
//!
//! ctihost_sdk::export_router!(MyRouter);
//! ```
//!
//! Each world has a module ([`router`], [`screen_pop`], [`crm_connector`],
//! [`recording_policy`]) holding its `Guest` trait, the shared types and the
//! helpers of this crate; its export macro (`export_router!`, ...) registers
//! your type. The host interface (log, config, key-value store, clock,
//! counters) is in [`host`].

#[doc(hidden)]
pub mod bindings;
pub mod helpers;
pub mod host;

/// Shared data types of the contract (`cti:plugin/types`).
pub mod types {
    pub use crate::bindings::router::cti::plugin::types::*;
}

/// Customer lookup through the host-linked CRM connector (`cti:plugin/crm`).
pub mod crm {
    pub use crate::bindings::router::cti::plugin::crm::*;
}

/// Everything a router needs: `use ctihost_sdk::router::*;`.
pub mod router {
    pub use crate::bindings::router::Guest;
    pub use crate::helpers::*;
    pub use crate::types::*;
}

/// Everything a screen-pop needs: `use ctihost_sdk::screen_pop::*;`.
pub mod screen_pop {
    pub use crate::bindings::screen_pop::Guest;
    pub use crate::helpers::*;
    pub use crate::types::*;
}

/// Everything a CRM connector needs: `use ctihost_sdk::crm_connector::*;`.
pub mod crm_connector {
    pub use crate::bindings::crm_connector::cti::plugin::http;
    pub use crate::bindings::crm_connector::exports::cti::plugin::crm::{
        CrmError, Guest, LookupKey,
    };
    pub use crate::helpers::*;
    pub use crate::types::*;
}

/// Everything a recording policy needs: `use ctihost_sdk::recording_policy::*;`.
pub mod recording_policy {
    pub use crate::bindings::recording_policy::Guest;
    pub use crate::helpers::*;
    pub use crate::types::*;
}

pub use bindings::crm_connector::export_crm_connector;
pub use bindings::recording_policy::export_recording_policy;
pub use bindings::router::export_router;
pub use bindings::screen_pop::export_screen_pop;
