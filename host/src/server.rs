//! `ctihost run`: wires store, plugins and API together and waits for shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::acd::{Acd, AcdSettings};
use crate::api::auth::AdminToken;
use crate::center::CenterHandle;
use crate::config::Config;
use crate::media::sealed::KeyRing;
use crate::metrics::Metrics;
use crate::plugins::engine::EngineSettings;
use crate::plugins::{HostSettings, PluginHost, Trigger, watcher};
use crate::shutdown::{Loops, Shutdown};
use crate::sip::b2bua::{B2bua, Trunks};
use crate::sip::digest::{Authenticator, Credential};
use crate::sip::endpoint::SipEndpoint;
use crate::sip::registrar::Registrar;
use crate::stock_plugins::STOCK;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("plugin runtime: {0}")]
    Plugins(#[from] crate::plugins::registry::HostError),
    #[error("embedded plugin {name} failed to load: {message}")]
    Embedded { name: String, message: String },
    #[error("admin token: {0}")]
    Token(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server: {0}")]
    Serve(std::io::Error),
    #[error("HTTPS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen for SIP on {transport} {addr}: {source}")]
    SipListen {
        transport: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("at most 256 UDP listen addresses")]
    TooManyListeners,
    #[error(transparent)]
    Prompts(#[from] crate::media::prompts::PromptError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error(
        "plugin directory {path} ([plugins] dir): {source}; create it, set [plugins] create_dir = true, or remove [plugins] dir to run on the embedded stock plugins"
    )]
    PluginDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "[plugins] {role} = {name:?}: {problem} (loaded: {loaded}; looked in {places}). Put {name}.toml and its component into the plugin directory, correct the name, or set [plugins] allow_missing = true to start anyway"
    )]
    MissingPlugin {
        role: &'static str,
        name: String,
        problem: String,
        loaded: String,
        places: String,
    },
    #[error("[recording] keys: {0}")]
    RecordingKeys(String),
    #[error("queue {queue}: music_on_hold {prompt:?} is not a prompt (known: {known})")]
    UnknownMusic {
        queue: String,
        prompt: String,
        known: String,
    },
}

/// The running call center: SIP endpoint, the driver's handle, media relay (if on).
pub type SipParts = (
    Arc<SipEndpoint>,
    CenterHandle,
    Option<Arc<crate::media::Media>>,
);

/// The call center, built room by room: the prompts it names, the driver
/// running the core, the RTP relay, then SIP (transports, registrar, the
/// B2BUA handing calls to the driver); `None` when no SIP address is
/// configured.
pub async fn start_center(
    config: &Config,
    plugins: &PluginHost,
    store: &Store,
    recording_keys: Option<Arc<KeyRing>>,
    metrics: Arc<Metrics>,
    shutdown: &Loops,
) -> Result<Option<SipParts>, ServerError> {
    if config.sip.udp.is_empty() && config.sip.tcp.is_empty() {
        return Ok(None);
    }
    let prompts = crate::media::prompts::Prompts::load(config.media.prompts.as_deref())?;
    for q in &config.queues {
        if let Some(m) = &q.music_on_hold
            && prompts.get(m).is_none()
        {
            return Err(ServerError::UnknownMusic {
                queue: q.name.clone(),
                prompt: m.clone(),
                known: prompts.names().join(", "),
            });
        }
    }
    let (center, calls) = start_driver(config, plugins, store, metrics.clone(), shutdown);
    let media = start_media(config, store, prompts, recording_keys);
    let ep = start_sip(
        config,
        &center,
        calls,
        media.clone(),
        store,
        metrics,
        shutdown,
    )
    .await?;
    Ok(Some((ep, center, media)))
}

/// The driver running the core with the configured queues and agents; the
/// receiver carries the core's commands for the SIP room.
fn start_driver(
    config: &Config,
    plugins: &PluginHost,
    store: &Store,
    metrics: Arc<Metrics>,
    shutdown: &Loops,
) -> (
    CenterHandle,
    tokio::sync::mpsc::UnboundedReceiver<crate::acd::Command>,
) {
    let acd = Acd::new(
        AcdSettings {
            ivr_supported: config.media.relay,
            // The policy is asked (and its pauses audited) even where nothing
            // is written: no relay, or recording off.
            recording: config.plugins.recording_policy.is_some(),
            calendar: config.calendar(),
            ..AcdSettings::default()
        },
        config.queues.clone(),
        config.agents.iter().map(|a| a.acd()).collect(),
    );
    let (calls_tx, calls_rx) = tokio::sync::mpsc::unbounded_channel();
    let center = crate::center::spawn(
        acd,
        plugins.clone(),
        store.clone(),
        crate::center::CenterPlugins {
            router: config.plugins.router.clone(),
            screen_pop: config.plugins.screen_pop.clone(),
            recording_policy: config.plugins.recording_policy.clone(),
        },
        calls_tx,
        metrics,
        shutdown.subscribe(),
    );
    (center, calls_rx)
}

/// The RTP relay (if `[media] relay` is on), indexing its recordings in
/// the store.
fn start_media(
    config: &Config,
    store: &Store,
    prompts: crate::media::prompts::Prompts,
    recording_keys: Option<Arc<KeyRing>>,
) -> Option<Arc<crate::media::Media>> {
    let recording_dir = config.recording_dir();
    config.media.relay.then(|| {
        let address = config.media.address.unwrap_or_else(|| {
            config
                .sip
                .udp
                .first()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
        });
        let [first, last] = config.media.rtp_ports;
        tracing::info!(%address, first, last, "RTP relay");
        let store = store.clone();
        let sink: crate::media::relay::RecordingSink = Arc::new(move |entry| {
            if let Err(e) = store.put_recording(&entry) {
                tracing::error!(call_id = entry.call_id, error = %e, "cannot index the recording");
            }
        });
        Arc::new(crate::media::Media::new(
            first,
            last,
            crate::media::MediaSettings {
                address,
                rtp_timeout: Duration::from_secs(config.media.rtp_timeout_secs),
                prompts,
                recording_dir,
                recording_keys,
                recordings: Some(sink),
            },
        ))
    })
}

/// The driver as the SIP room reaches it (the room names no driver).
struct DriverDoor(CenterHandle);

impl crate::sip::b2bua::CallSink for DriverDoor {
    fn arrive(&self, event: crate::acd::CallEvent) -> bool {
        self.0.arrive(event)
    }
    fn send(&self, event: crate::acd::CallEvent) {
        self.0.send(event);
    }
}

/// A SIP TCP or TLS listener on `addr`, said in the log ("SIP listening
/// on TCP local=...", which tests and operators read).
async fn sip_listener(
    addr: std::net::SocketAddr,
    transport: &'static str,
) -> Result<tokio::net::TcpListener, ServerError> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::SipListen {
            transport,
            addr,
            source,
        })?;
    let local = l.local_addr().map_err(ServerError::Serve)?;
    tracing::info!(%local, "SIP listening on {}", transport.to_ascii_uppercase());
    Ok(l)
}

/// SIP over TLS as configured: its listeners, their acceptor, the client
/// side for connections the host opens.
struct SipTls {
    listeners: Vec<tokio::net::TcpListener>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    client: Option<tokio_rustls::TlsConnector>,
}

async fn sip_tls(config: &Config) -> Result<SipTls, ServerError> {
    let mut out = SipTls {
        listeners: Vec::new(),
        acceptor: None,
        client: None,
    };
    if let Some(ca) = &config.sip.tls_ca {
        out.client = Some(tokio_rustls::TlsConnector::from(crate::tls::client(ca)?));
    }
    if config.sip.tls.is_empty() {
        return Ok(out);
    }
    // Validation made sure both are set when `tls` is.
    let (Some(cert), Some(key)) = (&config.sip.tls_cert, &config.sip.tls_key) else {
        return Ok(out);
    };
    let identity = match &config.sip.tls_client_ca {
        Some(clients) => crate::tls::load_verifying_clients(cert, key, clients)?,
        None => crate::tls::load(cert, key, false, &[])?,
    };
    tracing::info!(cert = %identity.cert_path.display(), sha256 = %identity.fingerprint, "SIP TLS certificate");
    out.acceptor = Some(tokio_rustls::TlsAcceptor::from(identity.config));
    for addr in &config.sip.tls {
        out.listeners.push(sip_listener(*addr, "tls").await?);
    }
    Ok(out)
}

/// Bind the SIP transports, serve the registrar and the B2BUA that hands
/// calls to the driver and carries out its `calls`.
async fn start_sip(
    config: &Config,
    center: &CenterHandle,
    mut calls_rx: tokio::sync::mpsc::UnboundedReceiver<crate::acd::Command>,
    media: Option<Arc<crate::media::Media>>,
    store: &Store,
    metrics: Arc<Metrics>,
    shutdown: &Loops,
) -> Result<Arc<SipEndpoint>, ServerError> {
    let mut creds = HashMap::new();
    for a in &config.agents {
        let cred = match (&a.password, &a.ha1_md5, &a.ha1_sha256) {
            (_, Some(md5), Some(sha)) => Credential {
                ha1_md5: md5.to_ascii_lowercase(),
                ha1_sha256: sha.to_ascii_lowercase(),
            },
            (Some(pw), _, _) => Credential::from_password(&a.sip_user, &config.sip.realm, pw),
            _ => continue, // config validation already refused this
        };
        creds.insert(a.sip_user.clone(), cred);
    }
    let secret =
        crate::random::bytes::<32>().map_err(|e| ServerError::Token(format!("SIP nonces: {e}")))?;
    let sink = store.clone();
    let registrar = Arc::new(Registrar::new(
        config.sip.realm.clone(),
        config.sip.digest_algorithms.clone(),
        creds,
        secret,
        Box::new(move |user, bindings| {
            if let Err(e) = sink.put_bindings(user, bindings) {
                tracing::warn!(user, error = %e, "cannot store a registration");
            }
        }),
    ));
    let mut udp = Vec::new();
    for addr in &config.sip.udp {
        let sock = crate::sip::transport::bind_udp(*addr, config.sip.udp_buffer_bytes).map_err(
            |source| ServerError::SipListen {
                transport: "udp",
                addr: *addr,
                source,
            },
        )?;
        let local = sock.local_addr().map_err(ServerError::Serve)?;
        tracing::info!(%local, "SIP listening on UDP");
        udp.push((Arc::new(sock), local));
    }
    let mut tcp = Vec::new();
    for addr in &config.sip.tcp {
        tcp.push(sip_listener(*addr, "tcp").await?);
    }
    let sip_tls = sip_tls(config).await?;
    let trunk_addresses: Vec<std::net::IpAddr> = config
        .trunks
        .iter()
        .flat_map(|t| t.addresses.iter().copied())
        .collect();
    let mut trunk_users = HashMap::new();
    let mut trunk_creds = HashMap::new();
    for t in &config.trunks {
        if let (Some(user), Some(pw)) = (&t.username, &t.password) {
            trunk_users.insert(user.clone(), t.name.clone());
            trunk_creds.insert(
                user.clone(),
                Credential::from_password(user, &config.sip.realm, pw),
            );
        }
    }
    let secret =
        crate::random::bytes::<32>().map_err(|e| ServerError::Token(format!("SIP nonces: {e}")))?;
    let trunks = Trunks {
        by_address: config
            .trunks
            .iter()
            .map(|t| (t.name.clone(), t.addresses.clone()))
            .collect(),
        by_user: trunk_users,
        auth: Authenticator::new(
            config.sip.realm.clone(),
            config.sip.digest_algorithms.clone(),
            trunk_creds,
            secret,
        ),
        unknown_sources: config.sip.unknown_sources,
        srtp_required: config
            .trunks
            .iter()
            .filter(|t| t.srtp == crate::config::SrtpPolicy::Required)
            .map(|t| t.name.clone())
            .collect(),
        tls_required: config
            .trunks
            .iter()
            .filter(|t| t.require_tls)
            .map(|t| t.name.clone())
            .collect(),
        by_certificate: config
            .trunks
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.tls_client_name.clone()?)))
            .collect(),
    };
    let agents = config
        .agents
        .iter()
        .map(|a| (a.sip_user.clone(), a.id.clone()))
        .collect();
    let srtp_phones = config
        .agents
        .iter()
        .filter(|a| a.srtp == crate::config::SrtpPolicy::Required)
        .map(|a| a.sip_user.clone())
        .collect();
    let b2bua = Arc::new(
        B2bua::new(
            registrar.clone(),
            Arc::new(DriverDoor(center.clone())),
            trunks,
            agents,
            media.clone(),
        )
        .with_srtp_phones(srtp_phones),
    );
    let ep = Arc::new(
        SipEndpoint::new(
            registrar.clone(),
            config.sip.max_message_bytes,
            udp.clone(),
            tcp.first().and_then(|l| l.local_addr().ok()),
            metrics.clone(),
            Some(b2bua.clone()),
        )
        .with_request_limit(config.sip.max_requests_per_source, trunk_addresses)
        .with_tls(
            sip_tls.listeners.first().and_then(|l| l.local_addr().ok()),
            sip_tls.client,
        ),
    );
    for (i, (sock, _)) in udp.into_iter().enumerate() {
        let index = u8::try_from(i).map_err(|_| ServerError::TooManyListeners)?;
        tokio::spawn(crate::sip::transport::serve_udp(
            sock,
            index,
            ep.clone(),
            shutdown.subscribe(),
        ));
    }
    let limits = tcp_limits(config);
    for l in tcp {
        tokio::spawn(crate::sip::transport::serve_tcp(
            l,
            ep.clone(),
            limits,
            None,
            shutdown.subscribe(),
        ));
    }
    for l in sip_tls.listeners {
        tokio::spawn(crate::sip::transport::serve_tcp(
            l,
            ep.clone(),
            limits,
            sip_tls.acceptor.clone(),
            shutdown.subscribe(),
        ));
    }
    tokio::spawn(ep.clone().run_timers(shutdown.subscribe()));
    {
        let (b2bua, ep) = (b2bua.clone(), ep.clone());
        let mut stopping = shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                // Commands already sent (the drain's BYEs) go out before the stop.
                tokio::select! {
                    biased;
                    cmd = calls_rx.recv() => match cmd {
                        Some(cmd) => b2bua.execute(&ep, cmd),
                        None => return,
                    },
                    () = stopping.recv() => return,
                }
            }
        });
    }
    // Phones registered with the last run are reachable at once: their
    // agents log in as if the phones had just registered.
    let saved = store.bindings();
    match saved {
        Ok(saved) => {
            let users = registrar.restore(saved, crate::clock::now_ms());
            tracing::info!(phones = users.len(), "registrations restored");
            // An agent who had logged out (from the desktop, phone still on)
            // stays out: the restart must not put them back in the queues.
            let agent_of: HashMap<&str, &str> = config
                .agents
                .iter()
                .map(|a| (a.sip_user.as_str(), a.id.as_str()))
                .collect();
            let restored: std::collections::HashSet<&str> = users
                .iter()
                .filter_map(|u| agent_of.get(u.as_str()).copied())
                .collect();
            let last = store
                .last_agent_states(&restored, 200_000)
                .unwrap_or_default();
            for user in users {
                if let Some(agent) = agent_of.get(user.as_str())
                    && last.get(*agent).map(String::as_str) == Some("logged-out")
                {
                    tracing::info!(agent, "logged out before the restart; stays out");
                    continue;
                }
                b2bua.registration_changed(&user);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read stored registrations; phones register again")
        }
    }
    // A phone that stops refreshing its registration logs its agent out.
    let mut stopping = shutdown.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stopping.recv() => return,
            }
            for user in registrar.expire(crate::clock::now_ms()) {
                tracing::info!(user, "registration expired");
                b2bua.registration_changed(&user);
            }
        }
    });
    Ok(ep)
}

/// The configured TCP bounds, the connection cap kept within half of the
/// process's descriptor limit (the relay's RTP sockets, the store and the API
/// need the rest: a TCP flood must never leave calls without media ports).
fn tcp_limits(config: &Config) -> crate::sip::transport::TcpLimits {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let room = usize::try_from(nofile / 2).unwrap_or(usize::MAX);
    let max = config.sip.tcp_max_connections.min(room);
    if max < config.sip.tcp_max_connections {
        tracing::warn!(
            configured = config.sip.tcp_max_connections,
            allowed = max,
            nofile,
            "SIP TCP connections capped at half the descriptor limit (raise LimitNOFILE)"
        );
    }
    crate::sip::transport::TcpLimits {
        max_connections: max,
        max_per_source: config.sip.tcp_max_per_source,
        idle: Duration::from_secs(config.sip.tcp_idle_secs.max(1)),
    }
}

/// Agent ids by queue, from the agents' `queues`.
fn queue_members(config: &Config) -> HashMap<String, std::collections::BTreeSet<String>> {
    let mut m: HashMap<String, std::collections::BTreeSet<String>> = HashMap::new();
    for a in &config.agents {
        for q in a.queues.keys() {
            m.entry(q.clone()).or_default().insert(a.id.clone());
        }
    }
    m
}

/// What the configured center has, for checking plugins' decisions: a
/// queue, agent, prompt or skill it lacks makes a decision a plugin failure.
struct CenterScope {
    queues: std::collections::HashSet<String>,
    agents: std::collections::HashSet<String>,
    prompts: std::collections::HashSet<String>,
    skills: std::collections::HashSet<String>,
}

impl CenterScope {
    fn new(config: &Config, prompts: &crate::media::prompts::Prompts) -> Self {
        Self {
            queues: config.queues.iter().map(|q| q.name.clone()).collect(),
            agents: config.agents.iter().map(|a| a.id.clone()).collect(),
            prompts: prompts.names().into_iter().collect(),
            skills: config
                .agents
                .iter()
                .flat_map(|a| a.skills.keys().cloned())
                .collect(),
        }
    }
}

impl crate::plugins::DecisionScope for CenterScope {
    fn has_queue(&self, name: &str) -> bool {
        self.queues.contains(name)
    }
    fn has_agent(&self, id: &str) -> bool {
        self.agents.contains(id)
    }
    fn has_prompt(&self, name: &str) -> bool {
        self.prompts.contains(name)
    }
    fn has_skill(&self, skill: &str) -> bool {
        self.skills.contains(skill)
    }
}

/// Make the data directory (private) and open the store in it.
pub fn open_store(config: &Config) -> Result<Store, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    // A data directory made by an earlier version (or by hand) may be open
    // to every local user: it holds call records, sessions and recordings.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) =
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
        {
            tracing::warn!(dir = %config.data_dir.display(), error = %e, "cannot make the data directory private (0700)");
        }
    }
    let cache_bytes = config.store.cache_mb.max(8) << 20;
    let store = Store::open_with_cache(&config.data_dir.join("db"), cache_bytes)?;
    tracing::info!(cache_mb = cache_bytes >> 20, "store opened");
    Ok(store)
}

/// Build the plugin host from the config, keeping its data in `store`, and
/// load embedded and directory plugins.
pub async fn start_plugins(config: &Config, store: &Store) -> Result<PluginHost, ServerError> {
    let host = PluginHost::new(
        HostSettings {
            engine: EngineSettings {
                pooling: config.plugins.pooling,
                max_memory_mb: config.plugins.max_memory_mb,
                max_instances: config.plugins.max_instances,
                parallel_compilation: false,
                perf_map: config.plugins.perf_map,
            },
            cache_dir: Some(config.data_dir.join("artifacts")),
            crm_connector: config.plugins.crm_connector.clone(),
        },
        store.clone(),
    )
    .map_err(ServerError::Plugins)?;
    // With a center to serve, decisions (and the self-tests of every load)
    // must name what it has.
    if !config.sip.udp.is_empty() || !config.sip.tcp.is_empty() {
        let prompts = crate::media::prompts::Prompts::load(config.media.prompts.as_deref())?;
        host.set_scope(Arc::new(CenterScope::new(config, &prompts)));
    }
    if config.plugins.embedded {
        for p in STOCK {
            host.load(p.source(), Trigger::Startup)
                .await
                .map_err(|e| ServerError::Embedded {
                    name: p.name.to_owned(),
                    message: e.to_string(),
                })?;
        }
    }
    if let Some(dir) = &config.plugins.dir {
        open_plugin_dir(config, dir)?;
        for (path, r) in host.load_dir(dir, Trigger::Startup).await {
            // A broken plugin in the directory must not keep the center down:
            // the embedded version (if any) serves and the error is logged.
            if let Err(e) = r {
                tracing::error!(manifest = %path.display(), error = %e, "plugin not loaded at start-up");
            }
        }
    }
    Ok(host)
}

/// A configured plugin directory must be there: a missing one would leave
/// the stock plugins serving in place of the bank's. The demo center creates
/// (and seeds) its own.
fn open_plugin_dir(config: &Config, dir: &Path) -> Result<(), ServerError> {
    let err = |source| ServerError::PluginDir {
        path: dir.to_owned(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.plugins.create_dir => {
            std::fs::create_dir_all(dir).map_err(err)?;
            if config.demo.seed_plugins {
                crate::demo::seed_plugins(dir)?;
            } else {
                tracing::info!(dir = %dir.display(), "plugin directory created");
            }
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

/// The plugins the config names for each role, and the kind each must be.
fn configured_plugins(config: &Config) -> Vec<(&'static str, String, crate::plugins::PluginKind)> {
    use crate::plugins::PluginKind;
    let p = &config.plugins;
    let mut v = vec![("router", p.router.clone(), PluginKind::Router)];
    if let Some(n) = &p.screen_pop {
        v.push(("screen_pop", n.clone(), PluginKind::ScreenPop));
    }
    if let Some(n) = &p.recording_policy {
        v.push(("recording_policy", n.clone(), PluginKind::RecordingPolicy));
    }
    if let Some(n) = &p.crm_connector {
        v.push(("crm_connector", n.clone(), PluginKind::CrmConnector));
    }
    v
}

/// Every plugin the config names is loaded and of the right kind, or
/// start-up stops naming it (unless `allow_missing`, then it says so).
fn check_configured_plugins(
    config: &Config,
    host: &PluginHost,
    metrics: &Metrics,
) -> Result<(), ServerError> {
    let loaded = host.list();
    let configured = configured_plugins(config);
    metrics.set_configured_plugins(
        configured
            .iter()
            .map(|(role, name, kind)| (*role, name.clone(), *kind))
            .collect(),
    );
    for (role, name, kind) in configured {
        let problem = match loaded.iter().find(|p| p.name == name) {
            None => "no plugin of that name is loaded".to_owned(),
            Some(p) if p.kind != kind => format!("it is a {}, not a {kind}", p.kind),
            Some(_) => continue,
        };
        let mut places = Vec::new();
        if config.plugins.embedded {
            places.push("the embedded stock plugins".to_owned());
        }
        match &config.plugins.dir {
            Some(d) => places.push(format!("the plugin directory {}", d.display())),
            None => places.push("no plugin directory ([plugins] dir is not set)".to_owned()),
        }
        let e = ServerError::MissingPlugin {
            role,
            name,
            problem,
            loaded: loaded
                .iter()
                .map(|p| format!("{} ({})", p.name, p.kind))
                .collect::<Vec<_>>()
                .join(", "),
            places: places.join(" and "),
        };
        if !config.plugins.allow_missing {
            return Err(e);
        }
        tracing::error!(error = %e, "starting without a configured plugin ([plugins] allow_missing = true)");
    }
    Ok(())
}

/// With `allow_missing`, a configured plugin that is not loaded is named in
/// the log every minute until it is there.
fn spawn_missing_plugin_reminder(config: &Config, host: PluginHost, mut shutdown: Shutdown) {
    let configured = configured_plugins(config);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.recv() => return,
            }
            let loaded = host.list();
            for (role, name, kind) in &configured {
                if !loaded.iter().any(|p| &p.name == name && p.kind == *kind) {
                    tracing::error!(role, plugin = %name, "a configured plugin is still not loaded; calls use the host's fallback");
                }
            }
        }
    });
}

pub fn admin_token(config: &Config) -> Result<String, ServerError> {
    if let Some(t) = &config.admin.token {
        return Ok(t.clone());
    }
    let path = config
        .admin
        .token_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("admin.token"));
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let token = random_token().map_err(|e| ServerError::Token(e.to_string()))?;
    write_private(&path, &token)
        .map_err(|e| ServerError::Token(format!("{}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated admin token");
    Ok(token)
}

fn random_token() -> Result<String, crate::random::NoRandomness> {
    crate::random::bytes::<24>().map(hex::encode)
}

/// Write a file only its owner can read (a token, a key, decrypted audio).
pub fn write_private(path: &Path, content: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path)?.write_all(content.as_ref())
}

/// Desktop accounts from the agents and supervisors of the config; clear
/// passwords are hashed here and dropped.
fn desktop_sessions(
    config: &Config,
    admin: AdminToken,
) -> Result<crate::api::session::Sessions, ServerError> {
    use crate::api::session::{Account, Role};
    let hash =
        |clear: &Option<String>, phc: &Option<String>| -> Result<Option<String>, ServerError> {
            match (phc, clear) {
                (Some(h), _) => Ok(Some(h.clone())),
                (None, Some(pw)) => crate::api::password::hash(pw)
                    .map(Some)
                    .map_err(|e| ServerError::Token(format!("desktop password: {e}"))),
                (None, None) => Ok(None),
            }
        };
    let agents = config.agents.iter().map(|a| {
        (
            &a.id,
            &a.name,
            Role::Agent,
            &a.desktop_password,
            &a.desktop_password_hash,
        )
    });
    let supervisors = config.supervisors.iter().map(|s| {
        (
            &s.id,
            &s.name,
            Role::Supervisor,
            &s.desktop_password,
            &s.desktop_password_hash,
        )
    });
    let mut accounts = Vec::new();
    for (id, name, role, clear, phc) in agents.chain(supervisors) {
        accounts.push(Account {
            id: id.clone(),
            name: name.clone(),
            role,
            password_hash: hash(clear, phc)?,
        });
    }
    crate::api::session::Sessions::new(accounts, config.admin.session_idle_secs, admin)
        .map_err(|e| ServerError::Token(format!("desktop sessions: {e}")))
}

/// Deletes call records and logs past their retention, now and then every
/// `every`.
fn spawn_log_purge(
    store: Store,
    retention: crate::store::Retention,
    every: Duration,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    // Said at every start: an upgrade from a host without retention deletes
    // what is older than it at once.
    tracing::info!(
        retention_days = retention.records_days,
        audit_retention_days = retention.audit_days,
        "store retention: call records, queue and agent-state logs older than retention_days are deleted (0 keeps them for ever; export first with `ctihost cdr export`)"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.recv() => return,
            }
            let purging = store.clone();
            let now = crate::clock::now_ms();
            match tokio::task::spawn_blocking(move || purging.purge_logs(now, retention)).await {
                Ok(Ok(r)) => {
                    for (log, n) in r.by_log() {
                        metrics.store_purged(log, n);
                    }
                    if r.total() > 0 {
                        tracing::info!(
                            calls = r.calls,
                            queue_log = r.queue_log,
                            agent_log = r.agent_log,
                            audit = r.audit,
                            recording_index = r.recording_entries,
                            retention_days = retention.records_days,
                            audit_retention_days = retention.audit_days,
                            disk_bytes = store.disk_bytes(),
                            "store retention purge"
                        );
                    }
                }
                Ok(Err(e)) => {
                    metrics.store_purge_failed();
                    tracing::error!(error = %e, "store retention purge failed");
                }
                Err(e) => tracing::error!(error = %e, "store retention purge stopped"),
            }
        }
    });
}

/// How often the store's small chunks are merged, and how old a chunk must
/// be (the writer's batches of the last seconds are left alone).
const COMPACT_EVERY: Duration = Duration::from_secs(2);
const COMPACT_AFTER_MS: u64 = 10_000;

/// Merges the record writer's small chunks into big ones, every
/// [`COMPACT_EVERY`]: without it the host's memory grows with every call
/// the store holds (see `store/compact.rs`).
fn spawn_compaction(store: Store, metrics: Arc<Metrics>, mut shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COMPACT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.recv() => return,
            }
            let compacting = store.clone();
            let before = crate::clock::now_ms().saturating_sub(COMPACT_AFTER_MS);
            match tokio::task::spawn_blocking(move || compacting.compact_logs(before)).await {
                Ok(Ok(r)) => {
                    metrics.store_compacted(r.keys_merged);
                    tracing::debug!(
                        merged = r.keys_merged,
                        written = r.keys_written,
                        "store compaction"
                    );
                }
                Ok(Err(e)) => {
                    metrics.store_compaction_failed();
                    tracing::error!(error = %e, "store compaction failed (retried in 2 s)");
                }
                Err(e) => tracing::error!(error = %e, "store compaction stopped"),
            }
        }
    });
}

/// Deletes recordings past their retention, now and then every `every`.
fn spawn_purge(store: Store, every: Duration, mut shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.recv() => return,
            }
            let store = store.clone();
            let now = crate::clock::now_ms();
            match tokio::task::spawn_blocking(move || store.purge_recordings(now)).await {
                Ok(Ok(r)) if !r.purged.is_empty() || !r.failed.is_empty() => {
                    tracing::info!(
                        purged = r.purged.len(),
                        failed = r.failed.len(),
                        "recording retention purge"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "recording retention purge failed"),
                Err(e) => tracing::error!(error = %e, "recording retention purge stopped"),
            }
        }
    });
}

/// The recordings' master keys when recordings are sealed: from
/// `key_command`'s output, else `key_file` (generated on first start, 0600).
pub fn recording_keys(config: &Config) -> Result<Option<Arc<KeyRing>>, ServerError> {
    let r = &config.recording;
    if !r.encrypt || config.recording_dir().is_none() {
        if config.recording_dir().is_some() {
            tracing::warn!(
                "recordings are written in clear ([recording] encrypt = false): card data \
                 spoken on a call lies on disk unencrypted"
            );
        }
        return Ok(None);
    }
    let bad = |from: String, e: &dyn std::fmt::Display| {
        ServerError::RecordingKeys(format!("{from}: {e}"))
    };
    let (text, from) = match &r.key_command {
        Some(cmd) => {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| bad(format!("key_command {cmd:?}"), &e))?;
            if !out.status.success() {
                return Err(bad(format!("key_command {cmd:?}"), &out.status));
            }
            let text = String::from_utf8(out.stdout)
                .map_err(|e| bad(format!("key_command {cmd:?}"), &e))?;
            (text, format!("key_command {cmd:?}"))
        }
        None => {
            let path = r
                .key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("recording-keys.toml"));
            if r.key_file.is_none() && !path.exists() {
                let text = KeyRing::generate(&format!("k{}", crate::clock::now_ms() / 1000))
                    .map_err(|e| bad(path.display().to_string(), &e))?;
                write_private(&path, &text).map_err(|e| bad(path.display().to_string(), &e))?;
                tracing::warn!(
                    path = %path.display(),
                    "generated a recording master key: recordings are sealed with it; keep a \
                     copy apart from the recordings, or name the bank's own in [recording] \
                     key_file or key_command"
                );
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| bad(path.display().to_string(), &e))?;
            (text, path.display().to_string())
        }
    };
    let keys = KeyRing::parse(&text).map_err(|e| bad(from.clone(), &e))?;
    tracing::info!(
        from,
        current = keys.current_id(),
        keys = keys.ids().count(),
        "recordings are sealed (AES-256-GCM)"
    );
    Ok(Some(Arc::new(keys)))
}

/// Recordings still being written when the host last died: their WAV
/// header is repaired to the audio on disk, then they are hashed and
/// indexed as `interrupted` (before any new call starts recording).
fn recover_recordings(store: &Store, keys: Option<&KeyRing>) {
    use crate::media::recorder::{RecordingState, recover};
    let entries = match store.list_recordings() {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the recording index");
            return;
        }
    };
    let mut repaired = 0;
    for mut e in entries
        .into_iter()
        .filter(|e| e.state == RecordingState::Recording)
    {
        match recover(&e.file, keys) {
            Ok((ms, sha256)) => {
                e.duration_ms = ms;
                e.sha256 = sha256;
                repaired += 1;
            }
            Err(err) => {
                tracing::error!(call_id = e.call_id, file = %e.file.display(), error = %err, "a recording cut off by the last stop cannot be read")
            }
        }
        e.state = RecordingState::Interrupted;
        if let Err(err) = store.put_recording(&e) {
            tracing::error!(call_id = e.call_id, error = %err, "cannot index a recording cut off by the last stop");
        }
    }
    if repaired > 0 {
        tracing::warn!(
            recordings = repaired,
            "recordings cut off by the last stop repaired and indexed as interrupted"
        );
    }
}

/// How long the API's open connections get to finish at the stop.
const API_STOP_LIMIT: Duration = Duration::from_secs(5);

/// `Strict-Transport-Security` on every HTTPS answer (a year, RFC 6797).
async fn hsts(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// How long the stop waits for the host's loops once the calls are done
/// (the record writer's last batch is one fsync).
const LOOPS_STOP_LIMIT: Duration = Duration::from_secs(10);

/// Serve until a stop is asked for, by `signals` (each item one signal:
/// the first drains for `[shutdown] drain_secs`, a later one ends the drain
/// at once) or by the admin API, then stop as [`crate::stop`] says.
pub async fn run(
    config: Config,
    mut signals: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> Result<(), ServerError> {
    let store = open_store(&config)?;
    let host = start_plugins(&config, &store).await?;
    let _watch = match (&config.plugins.dir, config.plugins.watch) {
        (Some(dir), true) => match watcher::watch_dir(
            host.clone(),
            dir.clone(),
            Duration::from_millis(config.plugins.debounce_ms),
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "hot reload on file change disabled");
                None
            }
        },
        _ => None,
    };
    let metrics = Arc::new(Metrics::default());
    check_configured_plugins(&config, &host, &metrics)?;
    // Calls that were live when the host last died get their records now.
    match store.close_interrupted_calls() {
        Ok(closed) if !closed.is_empty() => {
            tracing::warn!(
                calls = closed.len(),
                "calls cut off by the last stop recorded as interrupted"
            );
            for r in &closed {
                metrics.call_ended(r.disposition.as_str());
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot record the calls the last stop cut off"),
    }
    let recording_keys = recording_keys(&config)?;
    recover_recordings(&store, recording_keys.as_deref());
    // Every long-lived loop below ends when this fires (after the drain).
    let loops = Loops::new();
    if config.plugins.allow_missing {
        spawn_missing_plugin_reminder(&config, host.clone(), loops.subscribe());
    }
    let _demo_crm = match config.demo.crm {
        Some(addr) => {
            let mut shutdown = loops.subscribe();
            Some(crate::demo::serve_crm(addr, async move { shutdown.recv().await }).await?)
        }
        None => None,
    };
    let sip = start_center(
        &config,
        &host,
        &store,
        recording_keys.clone(),
        metrics.clone(),
        &loops,
    )
    .await?;
    spawn_compaction(store.clone(), metrics.clone(), loops.subscribe());
    spawn_log_purge(
        store.clone(),
        config.store.retention(),
        Duration::from_secs(config.store.purge_interval_secs.max(1)),
        metrics.clone(),
        loops.subscribe(),
    );
    if config.recording_dir().is_some() {
        spawn_purge(
            store.clone(),
            Duration::from_secs(config.recording.purge_interval_secs.max(1)),
            loops.subscribe(),
        );
    }
    let token = AdminToken::new(&admin_token(&config)?);
    let (stopper, mut stop_control) = crate::stop::channel(config.shutdown.retry_after_secs);
    {
        let stopper = stopper.clone();
        let drain = Duration::from_secs(config.shutdown.drain_secs);
        tokio::spawn(async move {
            let mut first = true;
            while signals.recv().await.is_some() {
                let drain = if first { drain } else { Duration::ZERO };
                first = false;
                if stopper.request(drain).is_err() {
                    tracing::warn!("stop already asked for several times");
                }
            }
        });
    }
    let center = sip.as_ref().map(|(_, c, _)| c.clone());
    let thresholds: HashMap<String, u32> = config
        .queues
        .iter()
        .map(|q| (q.name.clone(), q.service_level_secs))
        .collect();
    let calendar = config.calendar();
    let sessions = Arc::new(
        desktop_sessions(&config, token.clone())?.with_store(store.clone(), crate::clock::now_ms()),
    );
    {
        let sessions = sessions.clone();
        let mut shutdown = loops.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => sessions.sweep(crate::clock::now_ms()),
                    () = shutdown.recv() => return,
                }
            }
        });
    }
    let cti = crate::api::cti::ApiState {
        sessions,
        center: center.clone(),
        plugins: host.clone(),
        store: store.clone(),
        recording_policy: config.plugins.recording_policy.clone(),
        wallboard: crate::api::wallboard::spawn(
            center.clone(),
            store.clone(),
            thresholds.clone(),
            calendar.clone(),
            loops.subscribe(),
        ),
        logins: Arc::new(
            crate::api::login_pool::LoginPool::new()
                .map_err(|e| ServerError::Token(format!("password check threads: {e}")))?,
        ),
        audit_budget: Arc::default(),
        metrics: metrics.clone(),
        recording_keys: recording_keys.clone(),
    };
    let app = crate::api::admin_router(
        crate::api::admin::AdminState {
            plugins: host.clone(),
            store: store.clone(),
            sip: sip.as_ref().map(|(ep, _, _)| ep.clone()),
            media: sip.as_ref().and_then(|(_, _, m)| m.clone()),
            center,
            metrics,
            thresholds,
            calendar,
            members: queue_members(&config),
            plugin_dir: config.plugins.dir.clone(),
            stop: stopper,
            recording_keys,
        },
        token,
    )
    .merge(crate::api::cti::router(cti))
    .merge(crate::api::pages::router());
    let listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .and_then(|l| l.into_std())
        .map_err(|source| ServerError::Listen {
            addr: config.admin.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    // The API keeps serving while the host drains: agents finish their
    // calls and wrap-up, the operator watches /admin/drain and /metrics.
    let handle = axum_server::Handle::new();
    let mut api = if config.admin.insecure_http {
        tracing::warn!(
            %addr,
            "serving the API, desktop and wallboard over clear HTTP (insecure_http): loopback development only"
        );
        tracing::info!(%addr, url = %format!("http://{addr}"), plugins = host.list().len(), pooling = host.pooling(), "ctihost ready; admin API listening");
        let server = axum_server::from_tcp(listener)
            .map_err(ServerError::Serve)?
            .handle(handle.clone());
        tokio::spawn(
            server.serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>()),
        )
    } else {
        let identity = crate::tls::api_identity(
            config.admin.tls_cert.as_deref(),
            config.admin.tls_key.as_deref(),
            &config.data_dir,
            config.admin.listen,
        )?;
        if identity.generated {
            tracing::warn!(
                cert = %identity.cert_path.display(),
                sha256 = %identity.fingerprint,
                "generated a self-signed HTTPS certificate for the API, desktop and wallboard; \
                 browsers warn until it is trusted; set [admin] tls_cert and tls_key for the bank's own"
            );
        }
        tracing::info!(
            cert = %identity.cert_path.display(),
            sha256 = %identity.fingerprint,
            "HTTPS certificate"
        );
        tracing::info!(%addr, url = %format!("https://{addr}"), plugins = host.list().len(), pooling = host.pooling(), "ctihost ready; admin API listening");
        // Every answer tells the browser to come back over HTTPS only.
        let app = app.layer(axum::middleware::map_response(hsts));
        let server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(identity.config),
        )
        .map_err(ServerError::Serve)?
        .handle(handle.clone());
        tokio::spawn(
            server.serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>()),
        )
    };
    let parts = sip
        .as_ref()
        .map(|(endpoint, center, media)| crate::stop::Parts {
            endpoint: endpoint.clone(),
            center: center.clone(),
            media: media.clone(),
        });
    tokio::select! {
        served = &mut api => {
            // The API ended by itself: an error, nothing to drain for.
            return match served {
                Ok(r) => r.map_err(ServerError::Serve),
                Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
            };
        }
        request = stop_control.requested() => {
            let request = request.unwrap_or(crate::stop::StopRequest { drain: Duration::ZERO });
            let summary = stop_control.stop(request, parts.as_ref()).await;
            tracing::info!(
                drained = summary.drained,
                ended = summary.ended,
                unsettled = summary.unsettled,
                "calls done; stopping"
            );
        }
    }
    // Open event streams and keep-alive connections get a bounded time
    // to finish; the API does not hold the stop up.
    handle.graceful_shutdown(Some(API_STOP_LIMIT));
    match api.await {
        Ok(r) => r.map_err(ServerError::Serve)?,
        Err(e) => return Err(ServerError::Serve(std::io::Error::other(e))),
    }
    // The SIP listeners, the center and its record writer (drained), the
    // periodic tasks: each ends and is waited for.
    if !loops.stop(LOOPS_STOP_LIMIT).await {
        tracing::warn!(
            limit_secs = LOOPS_STOP_LIMIT.as_secs(),
            "some of the host's loops did not end in time; stopping anyway"
        );
    }
    // Sessions and registrations written since the store's last periodic
    // flush must survive this restart.
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "cannot flush the store at shutdown");
    }
    tracing::info!("ctihost stopped");
    Ok(())
}
