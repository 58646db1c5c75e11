//! The four plugin kinds, one per WIT world.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Router,
    ScreenPop,
    CrmConnector,
    RecordingPolicy,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::Router,
        PluginKind::ScreenPop,
        PluginKind::CrmConnector,
        PluginKind::RecordingPolicy,
    ];

    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Router => "router",
            PluginKind::ScreenPop => "screen-pop",
            PluginKind::CrmConnector => "crm-connector",
            PluginKind::RecordingPolicy => "recording-policy",
        }
    }

    /// Hooks the world exports, by the names the CLI and logs use.
    pub fn hooks(self) -> &'static [&'static str] {
        match self {
            PluginKind::Router => &["route", "rank-agents"],
            PluginKind::ScreenPop => &["build-card"],
            PluginKind::CrmConnector => &["lookup"],
            PluginKind::RecordingPolicy => &["on-connect", "on-event"],
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

/// A kind name that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown plugin kind {0:?}; expected router, screen-pop, crm-connector or recording-policy"
)]
pub struct UnknownKind(pub String);

impl std::str::FromStr for PluginKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.world() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}
