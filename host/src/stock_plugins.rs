//! The stock plugins compiled into the binary (built by `host/build.rs` from
//! `plugins/`), so `ctihost run` works with no plugin directory. The binary
//! holds them, not the plugin runtime: the runtime loads any component.

use crate::plugins::PluginSource;

pub struct EmbeddedPlugin {
    pub name: &'static str,
    pub manifest: &'static str,
    pub component: &'static [u8],
}

impl EmbeddedPlugin {
    pub fn source(&self) -> PluginSource {
        PluginSource::Embedded {
            manifest: self.manifest,
            component: self.component,
        }
    }
}

macro_rules! stock {
    ($name:literal, $dir:literal, $wasm:literal) => {
        EmbeddedPlugin {
            name: $name,
            manifest: include_str!(concat!("../../plugins/", $dir, "/plugin.toml")),
            component: include_bytes!(concat!(env!("OUT_DIR"), "/", $wasm)),
        }
    };
}

/// Connector first: routers and screen-pops link to it.
pub const STOCK: &[EmbeddedPlugin] = &[
    stock!("crm-http", "crm-http", "crm_http.wasm"),
    stock!("skills-router", "skills-router", "skills_router.wasm"),
    stock!("crm-screen-pop", "crm-screen-pop", "crm_screen_pop.wasm"),
    stock!("pci-recording", "pci-recording", "pci_recording.wasm"),
];
