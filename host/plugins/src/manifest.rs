//! Plugin manifests: `<name>.toml` beside the component in the plugin directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bindings::{Card, CrmError, RecordingAction, RecordingDecision, RouteDecision};
use super::kind::PluginKind;

/// Parsed manifest. Unknown keys are errors so a typo never silently disables a limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: PluginKind,
    /// Component file, relative to the manifest's directory.
    pub file: PathBuf,
    #[serde(default)]
    pub description: String,
    /// Free-form values handed to the plugin through `host.config-get`.
    #[serde(default = "empty_table")]
    pub config: toml::Table,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub fallback: Fallbacks,
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap per instance, MiB.
    pub memory_mb: u32,
    /// Wall-clock deadline of one hook invocation, milliseconds.
    pub deadline_ms: u64,
    /// Largest accepted hook output (as JSON), KiB.
    pub max_output_kb: u32,
    /// Bytes of stdout/stderr kept per invocation and sent to the log.
    pub max_stdio_bytes: u32,
    /// 0: a fresh instance per invocation. N > 0: keep up to `pool_size` warm
    /// instances and reuse each for up to N invocations. A trapped instance is
    /// never reused. Unset: fresh instances for small components, reuse of 100
    /// for large ones (Python/JS, where instantiation costs about a millisecond).
    pub instance_reuse: Option<u32>,
    pub pool_size: u32,
    /// Consecutive failures of a new version before it is rolled back.
    pub rollback_after_failures: u32,
    /// The plugin's key-value namespace: at most this many KiB (keys and
    /// values) and this many keys; a write past either fails in the plugin.
    pub kv_max_kb: u32,
    pub kv_max_keys: u32,
}

/// Components above this size are "large" (interpreters: Python, JS).
pub const LARGE_COMPONENT_BYTES: usize = 4 * 1024 * 1024;

impl Limits {
    /// How many invocations one instance may serve, for a component of `size` bytes.
    pub fn reuse_for(&self, size: usize) -> u32 {
        self.instance_reuse
            .unwrap_or(if size > LARGE_COMPONENT_BYTES { 100 } else { 0 })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: 64,
            deadline_ms: 100,
            max_output_kb: 64,
            max_stdio_bytes: 4096,
            instance_reuse: None,
            pool_size: 4,
            rollback_after_failures: 5,
            kv_max_kb: 1024,
            kv_max_keys: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// `host` or `host:port` a CRM connector may send HTTP requests to.
    pub http_hosts: Vec<String>,
    /// Per-request timeout of outgoing HTTP, milliseconds.
    pub http_timeout_ms: u64,
    /// Largest HTTP response body accepted, KiB.
    pub http_max_response_kb: u32,
    /// PEM certificates of the CAs a connector's HTTPS peers must chain to
    /// (the bank's internal CA). When set, these alone are trusted: the
    /// public roots are not.
    pub http_ca_pem: Option<String>,
}

/// Decisions used when a hook fails. Missing ones take the built-in defaults
/// of [`super::hook`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Fallbacks {
    pub route: Option<RouteDecision>,
    pub build_card: Option<Card>,
    pub lookup: Option<CrmError>,
    pub on_connect: Option<RecordingDecision>,
    pub on_event: Option<RecordingAction>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// `origin` only names the source in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ManifestError> {
        // toml's message carries the line and column of the offending key.
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    /// A manifest for a bare component file (CLI use): defaults everywhere.
    pub fn for_component(file: &Path, kind: PluginKind) -> Self {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".to_owned());
        Self {
            name,
            kind,
            file: file.to_owned(),
            description: String::new(),
            config: toml::Table::new(),
            limits: Limits::default(),
            capabilities: Capabilities::default(),
            fallback: Fallbacks::default(),
        }
    }

    fn validate(&self, origin: &Path) -> Result<(), ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: origin.to_owned(),
            message,
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(format!(
                "name {:?} must be non-empty ASCII letters, digits, '-' or '_'",
                self.name
            )));
        }
        if self.limits.memory_mb == 0 || self.limits.memory_mb > 4096 {
            return Err(invalid("limits.memory_mb must be 1..=4096".into()));
        }
        if self.limits.deadline_ms == 0 || self.limits.deadline_ms > 60_000 {
            return Err(invalid("limits.deadline_ms must be 1..=60000".into()));
        }
        if self.capabilities.http_ca_pem.is_some() && self.capabilities.http_hosts.is_empty() {
            return Err(invalid(
                "capabilities.http_ca_pem pins the CA of hosts the plugin may reach: grant them in capabilities.http_hosts".into(),
            ));
        }
        if !self.capabilities.http_hosts.is_empty() && self.kind != PluginKind::CrmConnector {
            return Err(invalid(format!(
                "capabilities.http_hosts is only granted to crm-connector plugins, not {}",
                self.kind
            )));
        }
        if let Some(RouteDecision::Reject(r)) = &self.fallback.route
            && !(400..=699).contains(&r.code)
        {
            return Err(invalid(
                "fallback.route reject code must be 400..=699".into(),
            ));
        }
        Ok(())
    }

    /// The `[config]` table as JSON, as `host.config-json` returns it.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Resolve the component path against the manifest's directory.
    pub fn component_path(&self, manifest_dir: &Path) -> PathBuf {
        if self.file.is_absolute() {
            self.file.clone()
        } else {
            manifest_dir.join(&self.file)
        }
    }

    pub fn http_timeout(&self) -> std::time::Duration {
        let ms = match self.capabilities.http_timeout_ms {
            0 => 2000,
            ms => ms,
        };
        std::time::Duration::from_millis(ms)
    }

    pub fn http_max_response_bytes(&self) -> usize {
        match self.capabilities.http_max_response_kb {
            0 => 1024 * 1024,
            kb => kb as usize * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_points_at_the_line() {
        let text = "name = \"r\"\nkind = \"router\"\nfile = \"r.wasm\"\n[limits]\nmemroy_mb = 3\n";
        let err = Manifest::parse(text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("memroy_mb"), "{err}");
    }

    #[test]
    fn fallback_route_parses_from_toml() {
        let text = r#"
name = "r"
kind = "router"
file = "r.wasm"
[fallback.route.Queue]
queue = "general"
priority = 0
skills = []
"#;
        let m = Manifest::parse(text, Path::new("r.toml")).unwrap();
        match m.fallback.route {
            Some(RouteDecision::Queue(q)) => assert_eq!(q.queue, "general"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn large_components_reuse_instances_unless_told_otherwise() {
        let mut l = Limits::default();
        assert_eq!(l.reuse_for(200_000), 0);
        assert_eq!(l.reuse_for(18 << 20), 100);
        l.instance_reuse = Some(0);
        assert_eq!(l.reuse_for(18 << 20), 0);
    }

    #[test]
    fn http_hosts_only_for_connectors() {
        let text = "name = \"r\"\nkind = \"router\"\nfile = \"r.wasm\"\n[capabilities]\nhttp_hosts = [\"evil.example\"]\n";
        let err = Manifest::parse(text, Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only granted to crm-connector"), "{err}");
    }
}
