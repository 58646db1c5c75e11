//! ctihost's plugin runtime: WIT worlds, sandbox, limits, fallbacks,
//! versions and hot reload.
//!
//! It knows nothing of SIP or calls beyond the plugin contract; the core is
//! asked and answered in the words both share (crate `ctihost-vocabulary`),
//! converted to and from the WIT bindings at this edge (`convert.rs`). It
//! never imports the core, the store or the web.
//!
//! # Map
//!
//! * [`PluginHost`] (`registry`) - the loaded plugins by name: load with a
//!   self-test, swap, roll back (by hand or after failures), invoke; each
//!   name a slot holding its current and previous versions.
//! * [`decisions`] - the typed calls the driver makes (route, rank agents,
//!   build a card, ask the recording policy on connect and on events),
//!   answered in the vocabulary with the deciding version; [`hook`] - the
//!   untyped call under them.
//! * [`bindings`] - the `wasmtime::component::bindgen!` worlds of `wit/`;
//!   [`kind`] - which world a plugin is; [`manifest`] - its `plugin.toml`.
//! * [`engine`] - the one shared `Engine` (epochs, pooling allocator);
//!   [`artifact_cache`] - compiled components on disk by content hash.
//! * [`version`] - one loaded version: its `InstancePre`, warm instances,
//!   deadlines, failure counts; [`sandbox`] - what an invocation can reach
//!   (limits, key-value quota, counters, CRM link, HTTP grant).
//! * [`validate`] - a plugin's output checked before it reaches SIP, a
//!   page or a log line; [`outbound_http`] - the manifest's allowed hosts.
//! * [`storage`] - the storage this runtime needs (key-value namespaces,
//!   version history) as traits that the host's store implements.
//! * [`watcher`] - the plugin directory watched for hot reload.

pub mod artifact_cache;
pub mod bindings;
mod convert;
pub mod decisions;
pub mod engine;
pub mod hook;
mod host_impls;
pub mod kind;
pub mod manifest;
pub mod outbound_http;
pub mod registry;
pub mod sandbox;
mod stdio;
pub mod storage;
pub mod validate;
pub mod version;
pub mod watcher;

pub use hook::{HookCall, HookOutput};
pub use kind::PluginKind;
pub use manifest::Manifest;
pub use registry::{
    HostSettings, Invocation, LoadError, LoadReport, PluginHost, PluginSource, PluginStatus,
};
pub use storage::{HistoryEntry, HistoryFilter, KeyValue, PluginStorage, StorageError};
pub use validate::DecisionScope;
pub use version::{Failure, FailureKind, Trigger};
