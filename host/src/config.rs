//! The host's configuration file (TOML). Every key has a default, so no file
//! at all gives a working center on the embedded plugins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store, compiled-plugin cache and generated admin token live.
    pub data_dir: PathBuf,
    pub admin: AdminConfig,
    pub plugins: PluginsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token for admin endpoints. When neither this nor `token_file`
    /// is set, a random token is generated into `<data_dir>/admin.token`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory of plugin manifests; plugins there override embedded ones by name.
    pub dir: Option<PathBuf>,
    /// Load the stock plugins compiled into the binary.
    pub embedded: bool,
    /// Reload on file changes in `dir`.
    pub watch: bool,
    pub debounce_ms: u64,
    /// crm-connector plugin linked to routers and screen-pops.
    pub crm_connector: Option<String>,
    pub pooling: bool,
    /// Largest memory any plugin may be granted (pool slot size), MiB.
    pub max_memory_mb: u32,
    /// Plugin instances alive at once (pool capacity).
    pub max_instances: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ctihost-data"),
            admin: AdminConfig::default(),
            plugins: PluginsConfig::default(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            token: None,
            token_file: None,
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            embedded: true,
            watch: true,
            debounce_ms: 300,
            crm_connector: None,
            pooling: true,
            max_memory_mb: 256,
            max_instances: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c = Self::parse(&text, path)?;
        // Relative paths in a config file are relative to that file.
        let base = path.parent().unwrap_or(Path::new("."));
        c.data_dir = base.join(&c.data_dir);
        if let Some(d) = &c.plugins.dir {
            c.plugins.dir = Some(base.join(d));
        }
        if let Some(t) = &c.admin.token_file {
            c.admin.token_file = Some(base.join(t));
        }
        Ok(c)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        // toml's messages name the line, column and key.
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_line() {
        let err = Config::parse(
            "[admin]\nlisten = \"127.0.0.1:1\"\ntokn = \"x\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("tokn"), "{err}");
    }

    #[test]
    fn bad_address_names_line() {
        let err = Config::parse("[admin]\nlisten = \"nowhere\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn empty_file_is_the_default_center() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert!(c.plugins.embedded);
        assert_eq!(c.admin.listen.port(), 8089);
    }
}
