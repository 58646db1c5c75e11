//! The host's configuration file (TOML). Every key has a default, so no file
//! at all gives a working center on the embedded plugins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::acd::{AgentConfig, QueueConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store, compiled-plugin cache and generated admin token live.
    pub data_dir: PathBuf,
    pub admin: AdminConfig,
    pub plugins: PluginsConfig,
    pub sip: SipConfig,
    pub trunks: Vec<TrunkConfig>,
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentEntry>,
    /// People who watch the wallboard and may act on any call.
    pub supervisors: Vec<SupervisorEntry>,
    pub media: MediaConfig,
    pub recording: RecordingConfig,
    /// How the host stops (SIGTERM, SIGINT, `ctihost drain`).
    pub shutdown: ShutdownConfig,
    /// The embedded store.
    pub store: StoreConfig,
    /// The demo center's extras (a built-in CRM on loopback).
    pub demo: DemoConfig,
    /// IANA time zone of the center ("Asia/Shanghai"): where "today" on the
    /// wallboard, agents' calls today and report days begin. Default: the
    /// machine's zone (TZ, /etc/localtime), else UTC.
    pub timezone: Option<String>,
}

/// What the demo center adds so that a first call shows a real card.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Serve the built-in demo CRM (a few customers, by phone and by
    /// account) on this address; the stock `crm-http` connector points at
    /// 127.0.0.1:8090.
    pub crm: Option<SocketAddr>,
    /// When the plugin directory is created at start-up, put the stock
    /// router into it with its business hours commented out (the demo takes
    /// calls at any hour, and the newcomer has a live plugin to edit).
    pub seed_plugins: bool,
}

/// The embedded store (sled) under `data_dir/db`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The store's page cache, MiB: the bulk of the host's memory under
    /// load (sled's default, 1 GiB, fills within minutes at 1,000 calls/s).
    pub cache_mb: u64,
    /// Days call records, the queue log and the agent-state log are kept
    /// (0: for ever). A bound on the disk: every call adds keys.
    pub retention_days: u32,
    /// Days the audit log is kept (0: for ever).
    pub audit_retention_days: u32,
    /// How often what is past its retention is deleted, seconds.
    pub purge_interval_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_mb: crate::store::Store::DEFAULT_CACHE_BYTES >> 20,
            retention_days: 400,
            audit_retention_days: 2557,
            purge_interval_secs: 3600,
        }
    }
}

impl StoreConfig {
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            records_days: self.retention_days,
            audit_days: self.audit_retention_days,
        }
    }
}

/// How the host stops: it drains first (new calls get 503 with
/// Retry-After while live calls finish), then ends the calls left with BYE
/// both ways, and writes every record and recording index before it exits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long a signal's stop lets live calls finish (0: end them at
    /// once). `ctihost drain --within` sets its own; a second signal ends
    /// the drain at once. Keep it below the service manager's stop timeout.
    pub drain_secs: u64,
    /// The Retry-After of the 503 new calls and OPTIONS get while draining.
    pub retry_after_secs: u32,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_secs: 0,
            retry_after_secs: 30,
        }
    }
}

/// Call recording (what to record is the recording-policy plugin's call).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record calls the policy asks for (needs the media relay).
    pub enabled: bool,
    /// Where WAV files go; default `<data_dir>/recordings`.
    pub dir: Option<PathBuf>,
    /// How often recordings past their retention are deleted, seconds.
    pub purge_interval_secs: u64,
    /// Seal recordings (AES-256-GCM) with the bank's master keys; false
    /// writes plain WAV files (stated at every start).
    pub encrypt: bool,
    /// The master keys (TOML: `current` and `[keys]`); default
    /// `<data_dir>/recording-keys.toml`, generated on first start.
    pub key_file: Option<PathBuf>,
    /// A command whose standard output is the key file (the bank's HSM or
    /// KMS client); run through `sh -c` at start-up, instead of `key_file`.
    pub key_command: Option<String>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            purge_interval_secs: 3600,
            encrypt: true,
            key_file: None,
            key_command: None,
        }
    }
}

impl Config {
    /// The directory recordings are written to, when recording is on.
    pub fn recording_dir(&self) -> Option<PathBuf> {
        (self.recording.enabled && self.media.relay).then(|| {
            self.recording
                .dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("recordings"))
        })
    }
}

/// The RTP relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Anchor every call's audio at the host (off: SDP passes through).
    pub relay: bool,
    /// The address relay ports bind and SDP announces; default: the first
    /// SIP UDP address (127.0.0.1 when that is a wildcard).
    pub address: Option<std::net::IpAddr>,
    /// First and last RTP port (even ports are used; RTCP is not relayed).
    pub rtp_ports: [u16; 2],
    /// A connected caller who sends no RTP for this long is hung up.
    pub rtp_timeout_secs: u64,
    /// A directory of 8 kHz mono 16-bit WAV prompts, by file name; they add
    /// to (or replace) the embedded default set.
    pub prompts: Option<PathBuf>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            relay: true,
            address: None,
            rtp_ports: [20000, 29999],
            rtp_timeout_secs: 60,
            prompts: None,
        }
    }
}

/// A supervisor's desktop login.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SupervisorEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Desktop password in clear (hashed with argon2 at start, not kept).
    pub desktop_password: Option<String>,
    /// Or its argon2 hash (PHC string, from `ctihost hash-password`).
    pub desktop_password_hash: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// SIP over TLS listen addresses (port 5061 by convention); needs
    /// `tls_cert` and `tls_key`. Phones register with `transport=tls` and
    /// are reached over the connection they registered on.
    pub tls: Vec<SocketAddr>,
    /// The SIP TLS certificate chain and its key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) trusted for TLS connections the host opens itself
    /// (a trunk reached over TLS with no connection open); without it the
    /// host reaches TLS peers only over connections they opened.
    pub tls_ca: Option<PathBuf>,
    /// CA bundle (PEM) that TLS clients' certificates are checked against;
    /// a client may still connect without one (phones), a trunk with
    /// `tls_client_name` is known by a certificate it signed.
    pub tls_client_ca: Option<PathBuf>,
    /// Digest realm of the registrar.
    pub realm: String,
    /// Larger requests get 513 Message Too Large.
    pub max_message_bytes: usize,
    /// Digest challenges offered, most preferred first (RFC 8760). Phones take
    /// the first they support; many (and SIPp) support only MD5 and give up if
    /// it is not first.
    pub digest_algorithms: Vec<crate::sip::digest::Algorithm>,
    /// Kernel buffer of each UDP socket, each way (capped by the kernel's
    /// net.core.rmem_max / wmem_max; a warning says so at start-up).
    pub udp_buffer_bytes: usize,
    /// What an INVITE from an address that is no trunk gets (with no
    /// digest trunk configured): one stateless 403, or nothing.
    pub unknown_sources: UnknownSources,
    /// TCP connections open at once (capped at half the process's
    /// descriptor limit: the rest is kept for media and the store).
    pub tcp_max_connections: usize,
    /// TCP connections at once from one address.
    pub tcp_max_per_source: usize,
    /// A TCP connection that sends nothing (not even a CRLF keep-alive) for
    /// this long is closed.
    pub tcp_idle_secs: u64,
    /// Requests a second from one address beyond which the rest of that
    /// second's are dropped unanswered (trunk addresses exempt; 0: none).
    pub max_requests_per_source: u32,
}

// The answer to a source that is no trunk: the SIP room's own setting.
pub use crate::sip::b2bua::UnknownSources;

impl Default for SipConfig {
    fn default() -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 5060));
        Self {
            udp: vec![local],
            tcp: vec![local],
            tls: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_client_ca: None,
            realm: "ctihost".into(),
            max_message_bytes: 16 * 1024,
            digest_algorithms: vec![
                crate::sip::digest::Algorithm::Sha256,
                crate::sip::digest::Algorithm::Md5,
            ],
            udp_buffer_bytes: 4 << 20,
            unknown_sources: UnknownSources::Refuse,
            tcp_max_connections: 4096,
            tcp_max_per_source: 32,
            tcp_idle_secs: 600,
            max_requests_per_source: 50,
        }
    }
}

/// Where calls come in from: by source address (and optionally a credential).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// Source IP addresses this trunk's INVITEs come from.
    #[serde(default)]
    pub addresses: Vec<std::net::IpAddr>,
    /// A trunk that authenticates instead (digest), by user name.
    pub username: Option<String>,
    pub password: Option<String>,
    /// "optional" (default): an SRTP offer (RTP/SAVP with SDES keys) gets
    /// SRTP on this leg, a plain one plain RTP; "required": a plain offer
    /// gets 488.
    #[serde(default = "SrtpPolicy::optional")]
    pub srtp: SrtpPolicy,
    /// Its INVITEs must come over TLS (`[sip] tls`); over UDP or TCP they
    /// get 403.
    #[serde(default)]
    pub require_tls: bool,
    /// Known by its TLS client certificate instead: a certificate signed
    /// by `[sip] tls_client_ca` and valid for this DNS name (mutual TLS).
    pub tls_client_name: Option<String>,
}

/// Whether a leg's audio must be SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Plain RTP offered (agents' phones).
    Off,
    /// SRTP when the peer offers it (trunks).
    Optional,
    /// SRTP only: a trunk's plain offer gets 488; a phone is offered SRTP
    /// alone and a plain answer ends the offer.
    Required,
}

impl SrtpPolicy {
    fn optional() -> Self {
        SrtpPolicy::Optional
    }
}

/// An agent as configured: the ACD's view plus the phone's SIP credential.
/// The password is hashed at load (HA1, MD5 and SHA-256) and not kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub sip_user: String,
    pub password: Option<String>,
    /// Precomputed HA1 = MD5(user:realm:password), hex, instead of `password`.
    pub ha1_md5: Option<String>,
    /// Precomputed HA1 = SHA-256(user:realm:password), hex (RFC 8760).
    pub ha1_sha256: Option<String>,
    /// Desktop password in clear (hashed with argon2 at start, not kept);
    /// without it or its hash the agent cannot log into the desktop.
    pub desktop_password: Option<String>,
    /// Or its argon2 hash (PHC string, from `ctihost hash-password`).
    pub desktop_password_hash: Option<String>,
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, u8>,
    #[serde(default)]
    pub queues: std::collections::BTreeMap<String, u32>,
    /// "required": the phone is offered SRTP only (SDES keys in its SDP:
    /// register it over TLS); "off" (default): plain RTP.
    #[serde(default = "SrtpPolicy::off")]
    pub srtp: SrtpPolicy,
}

impl SrtpPolicy {
    fn off() -> Self {
        SrtpPolicy::Off
    }
}

impl AgentEntry {
    pub fn acd(&self) -> AgentConfig {
        AgentConfig {
            id: self.id.clone(),
            name: self.name.clone(),
            sip_user: self.sip_user.clone(),
            skills: self.skills.clone(),
            queues: self.queues.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token for admin endpoints. When neither this nor `token_file`
    /// is set, a random token is generated into `<data_dir>/admin.token`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// A desktop session ends after this long without a request.
    pub session_idle_secs: u64,
    /// HTTPS certificate chain (PEM) for the admin API, the CTI API, its
    /// event stream (WSS), the desktop and the wallboard. With neither
    /// this nor `tls_key`, a self-signed certificate for the listen
    /// address, `localhost` and loopback is generated into
    /// `<data_dir>/admin-cert.pem` on first start and kept.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Serve clear HTTP instead (tokens and passwords then cross the wire
    /// in clear): only on a loopback listen address, for development or
    /// behind a TLS proxy on the same machine. `ctihost run --insecure-http`
    /// sets it.
    pub insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory of plugin manifests; plugins there override embedded ones by name.
    pub dir: Option<PathBuf>,
    /// Load the stock plugins compiled into the binary.
    pub embedded: bool,
    /// Create `dir` at start-up when it does not exist (otherwise a missing
    /// directory stops start-up: the bank's plugins would silently be
    /// replaced by the stock ones).
    pub create_dir: bool,
    /// Start even when a plugin named here (router, screen_pop,
    /// recording_policy, crm_connector) is not loaded; the log says so every
    /// minute and /metrics shows `ctihost_plugin_configured_missing`.
    pub allow_missing: bool,
    /// Reload on file changes in `dir`.
    pub watch: bool,
    pub debounce_ms: u64,
    /// crm-connector plugin linked to routers and screen-pops.
    pub crm_connector: Option<String>,
    /// The router plugin that decides every call.
    pub router: String,
    /// The screen-pop plugin that builds agents' cards (none: the host's
    /// provisional card only).
    pub screen_pop: Option<String>,
    /// The recording-policy plugin asked on the agent's secure pause.
    pub recording_policy: Option<String>,
    pub pooling: bool,
    /// Largest memory any plugin may be granted (pool slot size), MiB.
    pub max_memory_mb: u32,
    /// Plugin instances alive at once (pool capacity). A call that finds
    /// none free waits for one within its deadline; a shortfall is the
    /// host's, never counted towards the plugin's rollback.
    pub max_instances: u32,
    /// Write /tmp/perf-PID.map so `perf` names plugin functions (profiling).
    pub perf_map: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ctihost-data"),
            admin: AdminConfig::default(),
            plugins: PluginsConfig::default(),
            sip: SipConfig::default(),
            trunks: vec![],
            queues: vec![],
            agents: vec![],
            supervisors: vec![],
            media: MediaConfig::default(),
            recording: RecordingConfig::default(),
            shutdown: ShutdownConfig::default(),
            store: StoreConfig::default(),
            demo: DemoConfig::default(),
            timezone: None,
        }
    }
}

/// The center `ctihost run` serves with no config file: a loopback trunk, two
/// queues (skills decide within them) and three demo agents.
pub const DEFAULT_CENTER: &str = include_str!("default_center.toml");

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            token: None,
            token_file: None,
            session_idle_secs: 8 * 3600,
            tls_cert: None,
            tls_key: None,
            insecure_http: false,
        }
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            embedded: true,
            create_dir: false,
            allow_missing: false,
            watch: true,
            debounce_ms: 300,
            crm_connector: None,
            router: "skills-router".into(),
            screen_pop: Some("crm-screen-pop".into()),
            recording_policy: Some("pci-recording".into()),
            pooling: true,
            max_memory_mb: 256,
            max_instances: 256,
            perf_map: false,
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
    #[error("config {path} line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
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
        for f in [
            &mut c.admin.tls_cert,
            &mut c.admin.tls_key,
            &mut c.sip.tls_cert,
            &mut c.sip.tls_key,
            &mut c.sip.tls_ca,
            &mut c.sip.tls_client_ca,
        ] {
            if let Some(p) = f {
                *f = Some(base.join(&*p));
            }
        }
        if let Some(d) = &c.media.prompts {
            c.media.prompts = Some(base.join(d));
        }
        if let Some(d) = &c.recording.dir {
            c.recording.dir = Some(base.join(d));
        }
        Ok(c)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        // toml's messages name the line, column and key.
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        c.validate(text, origin)?;
        Ok(c)
    }

    /// The default center.
    pub fn default_center() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CENTER, Path::new("<default center>"))
    }

    /// The center's calendar (its `timezone`, checked at parse time).
    pub fn calendar(&self) -> crate::calendar::Calendar {
        match &self.timezone {
            Some(name) => crate::calendar::Calendar::named(name).unwrap_or_default(),
            None => crate::calendar::Calendar::system(),
        }
    }

    /// Checks across sections; errors name the line of the offending value.
    fn validate(&self, text: &str, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |needle: &str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            line: line_of(text, needle),
            message,
        };
        if let Some(name) = &self.timezone
            && let Err(e) = crate::calendar::Calendar::named(name)
        {
            return Err(invalid("timezone", e.to_string()));
        }
        if self.admin.tls_cert.is_some() != self.admin.tls_key.is_some() {
            return Err(invalid(
                if self.admin.tls_cert.is_some() {
                    "tls_cert"
                } else {
                    "tls_key"
                },
                "[admin] needs both tls_cert and tls_key, or neither (a generated certificate)"
                    .into(),
            ));
        }
        if !self.sip.tls.is_empty() && (self.sip.tls_cert.is_none() || self.sip.tls_key.is_none()) {
            return Err(invalid(
                "tls =",
                "[sip] tls needs tls_cert and tls_key (PEM files)".into(),
            ));
        }
        if self.admin.insecure_http && self.admin.tls_cert.is_some() {
            return Err(invalid(
                "insecure_http",
                "[admin] insecure_http and tls_cert contradict each other".into(),
            ));
        }
        if self.admin.insecure_http && !self.admin.listen.ip().is_loopback() {
            return Err(invalid(
                "insecure_http",
                format!(
                    "[admin] insecure_http only on a loopback address ({} is not): tokens and \
                     passwords would cross the network in clear",
                    self.admin.listen
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for q in &self.queues {
            if !seen.insert(q.name.as_str()) {
                return Err(invalid(
                    &format!("\"{}\"", q.name),
                    format!("queue {:?} is defined twice", q.name),
                ));
            }
            if let Some(next) = q.overflow.as_deref().and_then(|o| o.strip_prefix("queue:"))
                && !self.queues.iter().any(|o| o.name == next)
            {
                return Err(invalid(
                    &format!("queue:{next}"),
                    format!("queue {:?} overflows to unknown queue {next:?}", q.name),
                ));
            }
        }
        for t in &self.trunks {
            let named = format!("\"{}\"", t.name);
            match (&t.username, &t.password) {
                (Some(_), None) | (None, Some(_)) => {
                    return Err(invalid(
                        &named,
                        format!("trunk {:?} needs both username and password", t.name),
                    ));
                }
                (None, None) if t.addresses.is_empty() && t.tls_client_name.is_none() => {
                    return Err(invalid(
                        &named,
                        format!(
                            "trunk {:?} needs addresses, a username and password, or a tls_client_name",
                            t.name
                        ),
                    ));
                }
                _ => {}
            }
        }
        for t in &self.trunks {
            if let Some(name) = &t.tls_client_name {
                if self.sip.tls.is_empty() || self.sip.tls_client_ca.is_none() {
                    return Err(invalid(
                        "tls_client_name",
                        format!(
                            "trunk {:?} is known by its TLS client certificate: [sip] needs tls listeners and tls_client_ca",
                            t.name
                        ),
                    ));
                }
                if rustls::pki_types::DnsName::try_from(name.as_str()).is_err() {
                    return Err(invalid(
                        "tls_client_name",
                        format!(
                            "trunk {:?}: tls_client_name {name:?} is no DNS name",
                            t.name
                        ),
                    ));
                }
            }
            if t.require_tls && self.sip.tls.is_empty() {
                return Err(invalid(
                    "require_tls",
                    format!(
                        "trunk {:?} requires TLS but [sip] tls listens nowhere",
                        t.name
                    ),
                ));
            }
            if t.srtp == SrtpPolicy::Off {
                return Err(invalid(
                    &format!("\"{}\"", t.name),
                    format!(
                        "trunk {:?}: srtp is \"optional\" or \"required\" (a trunk's SRTP offer is always answered with SRTP)",
                        t.name
                    ),
                ));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut users = std::collections::BTreeSet::new();
        for a in &self.agents {
            if a.srtp == SrtpPolicy::Optional {
                return Err(invalid(
                    &format!("\"{}\"", a.id),
                    format!(
                        "agent {:?}: srtp is \"off\" or \"required\" (the host offers one or the other to a phone)",
                        a.id
                    ),
                ));
            }
            if !ids.insert(a.id.as_str()) {
                return Err(invalid(
                    &format!("\"{}\"", a.id),
                    format!("agent id {:?} is used twice", a.id),
                ));
            }
            if !users.insert(a.sip_user.as_str()) {
                return Err(invalid(
                    &format!("\"{}\"", a.sip_user),
                    format!("sip_user {:?} is used twice", a.sip_user),
                ));
            }
            if a.password.is_none() && (a.ha1_md5.is_none() || a.ha1_sha256.is_none()) {
                return Err(invalid(
                    &format!("\"{}\"", a.id),
                    format!(
                        "agent {:?} needs password, or both ha1_md5 and ha1_sha256",
                        a.id
                    ),
                ));
            }
            if let Some(h) = &a.desktop_password_hash
                && crate::api::password::check_phc(h).is_err()
            {
                return Err(invalid(
                    h,
                    format!(
                        "agent {:?}: desktop_password_hash is no argon2 PHC string",
                        a.id
                    ),
                ));
            }
            for q in a.queues.keys() {
                if !self.queues.iter().any(|c| &c.name == q) {
                    return Err(invalid(
                        q,
                        format!("agent {:?} is in unknown queue {q:?}", a.id),
                    ));
                }
            }
        }
        let [first, last] = self.media.rtp_ports;
        if first == 0 || first >= last || last - first < 3 {
            return Err(invalid(
                "rtp_ports",
                format!(
                    "media.rtp_ports [{first}, {last}] must be a range of at least two even ports"
                ),
            ));
        }
        for s in &self.supervisors {
            if !ids.insert(s.id.as_str()) {
                return Err(invalid(
                    &format!("\"{}\"", s.id),
                    format!(
                        "id {:?} is used twice (agents and supervisors share ids)",
                        s.id
                    ),
                ));
            }
            match &s.desktop_password_hash {
                Some(h) if crate::api::password::check_phc(h).is_err() => {
                    return Err(invalid(
                        h,
                        format!(
                            "supervisor {:?}: desktop_password_hash is no argon2 PHC string",
                            s.id
                        ),
                    ));
                }
                None if s.desktop_password.is_none() => {
                    return Err(invalid(
                        &format!("\"{}\"", s.id),
                        format!(
                            "supervisor {:?} needs desktop_password or desktop_password_hash",
                            s.id
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// 1-based line of the first occurrence of `needle` (1 when absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|i| text[..i].matches('\n').count() + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod trunk_tests {
    use super::*;

    #[test]
    fn a_trunk_needs_an_address_or_a_full_credential() {
        let e = Config::parse(
            "[sip]\n\n[[trunks]]\nname = \"carrier\"\nusername = \"c1\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 4") && e.contains("both username and password"),
            "{e}"
        );
        let e = Config::parse("[[trunks]]\nname = \"x\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs addresses"), "{e}");
        assert!(
            Config::parse(
                "[[trunks]]\nname = \"x\"\nusername = \"u\"\npassword = \"p\"\n",
                Path::new("c.toml")
            )
            .is_ok()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_center_is_valid() {
        let c = Config::default_center().unwrap();
        assert_eq!(c.queues.len(), 2);
        assert!(c.agents.len() >= 3);
        assert_eq!(
            c.trunks[0].addresses,
            vec![std::net::IpAddr::from([127, 0, 0, 1])]
        );
    }

    #[test]
    fn unknown_queue_of_an_agent_names_its_line() {
        let text = "[[queues]]\nname = \"general\"\n\n[[agents]]\nid = \"1001\"\nsip_user = \"1001\"\npassword = \"x\"\nqueues = { cardz = 1 }\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config c.toml line 8: agent \"1001\" is in unknown queue \"cardz\""
        );
    }

    #[test]
    fn unknown_time_zone_names_its_line() {
        let err = Config::parse(
            "data_dir = \"d\"\ntimezone = \"Asia/Shangai\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("config c.toml line 2: unknown time zone \"Asia/Shangai\""),
            "{err}"
        );
        let ok = Config::parse("timezone = \"Asia/Shanghai\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(ok.calendar().name(), "Asia/Shanghai");
    }

    /// Encryption settings that cannot work stop start-up at their line.
    #[test]
    fn encryption_settings_that_cannot_work_name_their_line() {
        let err = |text: &str| {
            Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[sip]\nudp = []\ntls = [\"127.0.0.1:5061\"]\n");
        assert!(
            e.contains("line 3") && e.contains("tls_cert and tls_key"),
            "{e}"
        );
        let e = err("[[trunks]]\nname = \"c\"\ntls_client_name = \"carrier.example\"\n");
        assert!(e.contains("line 3") && e.contains("tls_client_ca"), "{e}");
        let e = err(
            "[sip]\ntls = [\"127.0.0.1:5061\"]\ntls_cert = \"c\"\ntls_key = \"k\"\ntls_client_ca = \"ca\"\n\
             [[trunks]]\nname = \"c\"\ntls_client_name = \"not a name\"\n",
        );
        assert!(e.contains("line 8") && e.contains("no DNS name"), "{e}");
        let e = err("[[trunks]]\nname = \"t\"\naddresses = [\"10.0.0.1\"]\nrequire_tls = true\n");
        assert!(
            e.contains("line 4") && e.contains("[sip] tls listens nowhere"),
            "{e}"
        );
        let e = err("[[trunks]]\nname = \"t\"\naddresses = [\"10.0.0.1\"]\nsrtp = \"off\"\n");
        assert!(
            e.contains("line 2") && e.contains("\"optional\" or \"required\""),
            "{e}"
        );
        let e = err("[[trunks]]\nname = \"t\"\naddresses = [\"10.0.0.1\"]\nsrtp = \"sometimes\"\n");
        assert!(e.contains("line 4"), "{e}");
        let e = err(
            "[[queues]]\nname = \"general\"\n[[agents]]\nid = \"1001\"\nsip_user = \"1001\"\npassword = \"x\"\nsrtp = \"optional\"\n",
        );
        assert!(
            e.contains("line 4") && e.contains("\"off\" or \"required\""),
            "{e}"
        );
        let e = err("[admin]\nlisten = \"0.0.0.0:8089\"\ninsecure_http = true\n");
        assert!(e.contains("line 3") && e.contains("loopback"), "{e}");
    }

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
