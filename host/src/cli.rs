//! Command-line interface (clap). The only place that reads the environment.

mod admin_client;
mod plugin_new;
mod plugin_offline;
mod plugin_tables;
mod recording;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ctihost::config::Config;

#[derive(Parser)]
#[command(
    name = "ctihost",
    version,
    about = "CTI platform for bank call centers, with WebAssembly plugins"
)]
pub struct Cli {
    /// Log as JSON lines (for log shippers).
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the call center (embedded defaults when no config is given).
    Run {
        /// Configuration file (TOML).
        #[arg(long, short, env = "CTIHOST_CONFIG")]
        config: Option<PathBuf>,
        /// Serve the API, desktop and wallboard over clear HTTP instead of
        /// HTTPS (`[admin] insecure_http`): loopback only, for development.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Develop, test and manage plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Call records of a running host.
    Cdr {
        #[command(subcommand)]
        command: CdrCommand,
    },
    /// Queue and agent report per interval (offered, answered, abandoned, SL,
    /// SL2, ASA, AHT, abandon rate) from a running host's call records.
    Report {
        /// Calls since: a duration back from now ("24h"), an RFC 3339 time, or ms.
        #[arg(long, default_value = "24h")]
        since: String,
        /// One queue only.
        #[arg(long)]
        queue: Option<String>,
        /// 15m, 1h or 1d.
        #[arg(long, default_value = "1h")]
        interval: String,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
    /// Stop a running host without losing a call: it refuses new calls
    /// (503 with Retry-After, also to OPTIONS probes) while live calls
    /// finish, ends those left after --within with BYE both ways, writes
    /// every record and recording index, and exits.
    Drain {
        /// Longest time live calls get to finish ("300", "5m", "1h").
        #[arg(long, default_value = "0")]
        within: String,
        /// Wait until the host has stopped.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
    /// Recordings: export one decrypted, decrypt a sealed file offline,
    /// make a new master key.
    Recording {
        #[command(subcommand)]
        command: recording::RecordingCommand,
    },
    /// Hash a desktop password for the config (`desktop_password_hash`):
    /// reads the password from standard input, prints its argon2id PHC string.
    HashPassword,
}

#[derive(Subcommand)]
pub enum CdrCommand {
    /// Show call records (table by default).
    List {
        #[command(flatten)]
        query: admin_client::CdrArgs,
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
    /// Export call records as JSON or CSV.
    Export {
        #[command(flatten)]
        query: admin_client::CdrArgs,
        #[arg(long, default_value = "csv")]
        format: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Validate a component: which world it implements, imports, exports, size, compile time.
    Check {
        file: PathBuf,
        /// Expected kind: router, screen-pop, crm-connector, recording-policy.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Run one hook in the real sandbox and print the decision as JSON.
    Invoke {
        /// A component (.wasm, default limits) or a plugin manifest (.toml).
        file: PathBuf,
        /// route, rank-agents, build-card, lookup, on-connect, on-event.
        #[arg(long)]
        hook: String,
        /// JSON input file ("-" for stdin); omit to use the built-in sample call.
        #[arg(long)]
        input: Option<PathBuf>,
        /// A crm-connector manifest to link for CRM lookups.
        #[arg(long)]
        crm: Option<PathBuf>,
        /// Compiled-artifact cache directory.
        #[arg(long, env = "CTIHOST_CACHE_DIR")]
        cache: Option<PathBuf>,
    },
    /// Create a ready-to-build plugin project (source, manifest, sample input,
    /// build.sh, test.sh and the WIT contract) from the templates in this binary.
    New {
        /// Plugin name: lowercase letters, digits and '-'.
        name: String,
        /// router, screen-pop, crm-connector or recording-policy.
        #[arg(long)]
        kind: String,
        /// rust, python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a sample JSON input for a hook (edit it, then `plugin invoke --input`).
    SampleInput {
        #[arg(long)]
        hook: String,
    },
    /// Write the embedded stock plugins (manifest + component) into a directory,
    /// to start a plugin directory from.
    ExportStock { dir: PathBuf },
    /// List plugins of a running host.
    List {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
    /// Reload a plugin of a running host from its source.
    Reload {
        name: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
    /// Put a plugin's previous version back on a running host.
    Rollback {
        name: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
    /// Version history of one plugin (or all) on a running host, newest
    /// last.
    History {
        name: Option<String>,
        /// Only these outcomes, comma-separated: loaded, rejected,
        /// rolled-back, unloaded, unchanged (e.g. `--outcome loaded,rolled-back`).
        #[arg(long)]
        outcome: Option<String>,
        /// How many entries (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Entries before this time (a duration back from now, an RFC 3339
        /// time or ms): the page before the one shown.
        #[arg(long)]
        before: Option<String>,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        admin: admin_client::AdminArgs,
    },
}

impl Cli {
    /// A server logs its life; a one-shot command only what went wrong.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Run { .. } => "info,cranelift=warn,wasmtime=warn",
            Command::Plugin { .. }
            | Command::Cdr { .. }
            | Command::Report { .. }
            | Command::Drain { .. }
            | Command::Recording { .. }
            | Command::HashPassword => "error",
        }
    }
}

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: cannot read the password from standard input: {e}");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: empty password (give it on standard input)");
        return ExitCode::from(2);
    }
    match ctihost::api::password::hash(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only for a person at a terminal: a log file or a
    // journal gets plain text (and NO_COLOR is honoured).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

pub async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run {
            config,
            insecure_http,
        } => run(config, insecure_http).await,
        Command::HashPassword => hash_password(),
        Command::Drain {
            within,
            wait,
            admin,
        } => admin_client::drain(&admin, &within, wait).await,
        Command::Report {
            since,
            queue,
            interval,
            format,
            admin,
        } => admin_client::report(&admin, &since, queue.as_deref(), &interval, &format).await,
        Command::Recording { command } => recording::run(command).await,
        Command::Cdr { command } => match command {
            CdrCommand::List {
                query,
                format,
                admin,
            }
            | CdrCommand::Export {
                query,
                format,
                admin,
            } => admin_client::cdr(&admin, &query, &format).await,
        },
        Command::Plugin { command } => match command {
            PluginCommand::Check { file, kind } => {
                plugin_offline::check(&file, kind.as_deref()).await
            }
            PluginCommand::Invoke {
                file,
                hook,
                input,
                crm,
                cache,
            } => {
                plugin_offline::invoke(&file, &hook, input.as_deref(), crm.as_deref(), cache).await
            }
            PluginCommand::SampleInput { hook } => plugin_offline::sample_input(&hook),
            PluginCommand::New {
                name,
                kind,
                lang,
                dir,
            } => {
                let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
                match plugin_new::create(&dir, &name, &kind, &lang) {
                    Ok(files) => {
                        println!(
                            "created {} ({} files): cd {} && ./build.sh && ./test.sh",
                            dir.display(),
                            files.len(),
                            dir.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            PluginCommand::ExportStock { dir } => plugin_offline::export_stock(&dir),
            PluginCommand::List { format, admin } => {
                admin_client::table(&admin, "/admin/plugins", &format, plugin_tables::plugins).await
            }
            PluginCommand::Reload { name, admin } => {
                admin_client::call(
                    &admin,
                    reqwest::Method::POST,
                    &format!("/admin/plugins/{name}/reload?by=cli"),
                )
                .await
            }
            PluginCommand::Rollback { name, admin } => {
                admin_client::call(
                    &admin,
                    reqwest::Method::POST,
                    &format!("/admin/plugins/{name}/rollback?by=cli"),
                )
                .await
            }
            PluginCommand::History {
                name,
                outcome,
                limit,
                before,
                format,
                admin,
            } => {
                let mut path = match name {
                    Some(n) => format!("/admin/plugins/{}/history", admin_client::encode(&n)),
                    None => "/admin/plugins/history".to_owned(),
                };
                path.push_str(&format!("?limit={limit}"));
                if let Some(o) = outcome {
                    path.push_str(&format!("&outcome={}", admin_client::encode(&o)));
                }
                if let Some(b) = before {
                    match admin_client::since_ms(&b, ctihost::clock::now_ms()) {
                        Ok(ms) => path.push_str(&format!("&before_ms={ms}")),
                        Err(e) => {
                            eprintln!("error: {}", e.to_string().replace("--since", "--before"));
                            return ExitCode::from(2);
                        }
                    }
                }
                admin_client::table(&admin, &path, &format, plugin_tables::history).await
            }
        },
    }
}

#[cfg(unix)]
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        let from = l.current;
        l.current = l.maximum;
        match setrlimit(Resource::Nofile, l) {
            Ok(()) => tracing::info!(from = ?from, to = ?l.maximum, "descriptor limit raised"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
        }
    }
}

async fn run(config_path: Option<PathBuf>, insecure_http: bool) -> ExitCode {
    // Call records, registrations, sessions and call audio are the bank's:
    // every file the host creates is readable by its own user only (0600,
    // directories 0700), whatever the caller's umask.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // A default systemd unit gives 1,024 descriptors: a thousand idle TCP
    // connections left no sockets for media. Take what the hard limit allows.
    #[cfg(unix)]
    raise_nofile();
    let config = match &config_path {
        Some(p) => match Config::from_file(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => match Config::default_center() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut config = config;
    if insecure_http {
        if !config.admin.listen.ip().is_loopback() {
            eprintln!(
                "error: --insecure-http only on a loopback address ([admin] listen = {}): \
                 tokens and passwords would cross the network in clear",
                config.admin.listen
            );
            return ExitCode::from(2);
        }
        if config.admin.tls_cert.is_some() {
            eprintln!("error: --insecure-http and [admin] tls_cert contradict each other");
            return ExitCode::from(2);
        }
        config.admin.insecure_http = true;
    }
    // Every SIGTERM and SIGINT reaches the server: the first starts the
    // stop (a drain of `[shutdown] drain_secs`), a second ends the drain.
    let (signals_tx, signals) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                eprintln!("error: cannot listen for SIGTERM/SIGINT");
                return;
            };
            loop {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                if signals_tx.send(()).is_err() {
                    return;
                }
            }
        }
        #[cfg(not(unix))]
        while tokio::signal::ctrl_c().await.is_ok() {
            if signals_tx.send(()).is_err() {
                return;
            }
        }
    });
    match ctihost::server::run(config, signals).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
