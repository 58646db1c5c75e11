//! The plugin runtime: WIT worlds, sandbox, limits, fallbacks, versions and
//! hot reload. It knows nothing of SIP or calls beyond the plugin contract;
//! the core is asked and answered in the words both share (crate
//! `ctihost-vocabulary`; typed calls in [`decisions`]), converted to and
//! from the WIT bindings at this edge (`convert.rs`). It never imports the
//! core itself.

pub mod artifact_cache;
pub mod bindings;
mod convert;
pub mod decisions;
pub mod embedded;
pub mod engine;
pub mod hook;
mod host_impls;
pub mod kind;
pub mod manifest;
pub mod outbound_http;
pub mod registry;
pub mod sandbox;
mod stdio;
pub mod validate;
pub mod version;
pub mod watcher;

pub use hook::{HookCall, HookOutput};
pub use kind::PluginKind;
pub use manifest::Manifest;
pub use registry::{
    HostSettings, Invocation, LoadError, LoadReport, PluginHost, PluginSource, PluginStatus,
};
pub use validate::DecisionScope;
pub use version::{Failure, FailureKind, Trigger};
