//! Host-side bindings of the four worlds in `wit/`.
//!
//! The first world generates the shared interfaces (`types`, `host`, `crm`); the
//! others reuse them through `with`, so a `CallInfo` is one Rust type whatever
//! world it is passed to. Generated types derive serde so that the CLI, the
//! manifests' fallbacks and the admin API speak JSON/TOML with no copies.

pub mod router {
    wasmtime::component::bindgen!({
        world: "router",
        path: "../../wit",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub mod screen_pop {
    wasmtime::component::bindgen!({
        world: "screen-pop",
        path: "../../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cti:plugin/types": super::router::cti::plugin::types,
            "cti:plugin/host": super::router::cti::plugin::host,
            "cti:plugin/crm": super::router::cti::plugin::crm,
        },
    });
}

pub mod crm_connector {
    wasmtime::component::bindgen!({
        world: "crm-connector",
        path: "../../wit",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        with: {
            "cti:plugin/types": super::router::cti::plugin::types,
            "cti:plugin/host": super::router::cti::plugin::host,
        },
    });
}

pub mod recording_policy {
    wasmtime::component::bindgen!({
        world: "recording-policy",
        path: "../../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cti:plugin/types": super::router::cti::plugin::types,
            "cti:plugin/host": super::router::cti::plugin::host,
        },
    });
}

pub use router::cti::plugin::crm::{CrmError, LookupKey};
pub use router::cti::plugin::host::LogLevel;
pub use router::cti::plugin::types::*;

/// The connector side of `crm` is a distinct generated type; both are the same WIT type.
pub type ConnectorLookupKey = crm_connector::exports::cti::plugin::crm::LookupKey;
pub type ConnectorCrmError = crm_connector::exports::cti::plugin::crm::CrmError;

impl From<LookupKey> for ConnectorLookupKey {
    fn from(key: LookupKey) -> Self {
        match key {
            LookupKey::Phone(p) => Self::Phone(p),
            LookupKey::Account(a) => Self::Account(a),
            LookupKey::CustomerId(c) => Self::CustomerId(c),
        }
    }
}

impl From<ConnectorCrmError> for CrmError {
    fn from(e: ConnectorCrmError) -> Self {
        match e {
            ConnectorCrmError::Unavailable(s) => Self::Unavailable(s),
            ConnectorCrmError::Denied(s) => Self::Denied(s),
        }
    }
}
