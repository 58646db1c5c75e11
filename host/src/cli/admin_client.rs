//! Talks to a running host's admin API.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "CTIHOST_ADMIN_URL",
        default_value = "https://127.0.0.1:8089"
    )]
    url: String,
    /// Certificate (PEM) to trust for an https URL, besides the public
    /// roots: the host's generated one by default.
    #[arg(long, env = "CTIHOST_ADMIN_CA")]
    ca_file: Option<PathBuf>,
    /// Admin token (default: read from --token-file).
    #[arg(long, env = "CTIHOST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, default_value = "ctihost-data/admin.token")]
    token_file: PathBuf,
}

#[derive(clap::Args)]
pub struct CdrArgs {
    /// Calls that ended since: a duration back from now ("24h", "7d", "90m"),
    /// an RFC 3339 time ("2026-11-29T00:00:00Z"), or ms since the epoch.
    #[arg(long, default_value = "24h")]
    since: String,
    /// At most this many records (default: all of them, fetched page by page).
    #[arg(long)]
    limit: Option<usize>,
}

/// Parse `--since` into ms since the epoch.
pub fn since_ms(s: &str, now_ms: u64) -> anyhow::Result<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now_ms.saturating_sub(d.as_millis() as u64));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|_| {
            anyhow::anyhow!(
                "--since {s:?}: expected a duration (24h), an RFC 3339 time or ms since the epoch"
            )
        })
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
}

pub async fn cdr(args: &AdminArgs, q: &CdrArgs, format: &str) -> ExitCode {
    let since = match since_ms(&q.since, ctihost::clock::now_ms()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !["table", "json", "csv"].contains(&format) {
        eprintln!("error: --format {format:?}: expected table, json or csv");
        return ExitCode::from(2);
    }
    // Page through every record (the API answers 10,000 at most a call):
    // an export must never stop short without saying so.
    let wanted = q.limit.unwrap_or(usize::MAX);
    let mut records: Vec<ctihost::acd::CallRecord> = Vec::new();
    let mut after: Option<(u64, String)> = None;
    while records.len() < wanted {
        let page = PAGE.min(wanted - records.len());
        let path = match &after {
            None => format!("/admin/cdr?since_ms={since}&limit={page}"),
            Some((ms, id)) => format!("/admin/cdr?since_ms={ms}&after={}&limit={page}", encode(id)),
        };
        let (status, body) = match fetch(args, reqwest::Method::GET, &path).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        if !status.is_success() {
            return refused(status, &body);
        }
        let got: Vec<ctihost::acd::CallRecord> = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: unexpected answer: {e}");
                return ExitCode::from(1);
            }
        };
        let full = got.len() == page;
        if let Some(last) = got.last() {
            after = Some((last.ended_ms, last.call_id.clone()));
        }
        records.extend(got);
        if !full {
            break;
        }
    }
    match format {
        "csv" => match ctihost::store::export::to_csv(&records) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        "json" => match serde_json::to_string(&records) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        _ => print!("{}", ctihost::store::export::to_table(&records)),
    }
    ExitCode::SUCCESS
}

/// Records fetched a call.
const PAGE: usize = 5000;

pub async fn report(
    args: &AdminArgs,
    since: &str,
    queue: Option<&str>,
    interval: &str,
    format: &str,
) -> ExitCode {
    let since = match since_ms(since, ctihost::clock::now_ms()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !["table", "json", "csv"].contains(&format) {
        eprintln!("error: --format {format:?}: expected table, json or csv");
        return ExitCode::from(2);
    }
    let wire = if format == "csv" { "csv" } else { "json" };
    let mut path = format!("/admin/reports?since_ms={since}&interval={interval}&format={wire}");
    if let Some(q) = queue {
        path.push_str(&format!("&queue={}", encode(q)));
    }
    let (status, body) = match fetch(args, reqwest::Method::GET, &path).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !status.is_success() {
        eprintln!("error: {status}: {body}");
        return ExitCode::from(if status.is_client_error() { 2 } else { 1 });
    }
    match format {
        "table" => match serde_json::from_str::<ctihost::reports::Report>(&body) {
            Ok(r) => print!("{}", ctihost::reports::to_table(&r)),
            Err(e) => {
                eprintln!("error: unexpected answer: {e}");
                return ExitCode::from(1);
            }
        },
        "csv" => print!("{body}"),
        _ => println!("{body}"),
    }
    ExitCode::SUCCESS
}

fn token(args: &AdminArgs) -> Result<String, ExitCode> {
    match &args.token {
        Some(t) => Ok(t.clone()),
        None => match std::fs::read_to_string(&args.token_file) {
            Ok(t) => Ok(t.trim().to_owned()),
            Err(e) => {
                eprintln!(
                    "error: no --token and cannot read {}: {e}\n\
                     hint: `ctihost run` writes its admin token into <data_dir>/admin.token \
                     (the default center's data_dir is ./ctihost-data, in the directory it was \
                     started from). Run this command from there, or pass --token-file PATH \
                     or --token TOKEN (or set CTIHOST_ADMIN_TOKEN).",
                    args.token_file.display()
                );
                Err(ExitCode::from(2))
            }
        },
    }
}

/// Where `ctihost run` in this directory keeps its generated certificate.
const DEFAULT_CA: &str = "ctihost-data/admin-cert.pem";

/// An HTTP client trusting the public roots and the host's certificate:
/// `--ca-file`, or the default center's generated one when it is there.
pub fn client(args: &AdminArgs) -> Result<reqwest::Client, ExitCode> {
    let (path, named) = match &args.ca_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CA), false),
    };
    let mut builder = reqwest::Client::builder();
    match std::fs::read(&path) {
        Ok(pem) => match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => {
                for c in certs {
                    builder = builder.add_root_certificate(c);
                }
            }
            Ok(_) | Err(_) => {
                eprintln!("error: {}: no PEM certificate in it", path.display());
                return Err(ExitCode::from(2));
            }
        },
        Err(e) if named => {
            eprintln!("error: --ca-file {}: {e}", path.display());
            return Err(ExitCode::from(2));
        }
        Err(_) => {}
    }
    builder.build().map_err(|e| {
        eprintln!("error: HTTP client: {e}");
        ExitCode::from(2)
    })
}

async fn fetch(
    args: &AdminArgs,
    method: reqwest::Method,
    path: &str,
) -> Result<(reqwest::StatusCode, String), ExitCode> {
    let (status, body) = fetch_bytes(args, method, path).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub async fn fetch_bytes(
    args: &AdminArgs,
    method: reqwest::Method,
    path: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>), ExitCode> {
    let token = token(args)?;
    let url = format!("{}{}", args.url.trim_end_matches('/'), path);
    match client(args)?
        .request(method, &url)
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status();
            Ok((
                status,
                r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            ))
        }
        Err(e) => {
            let e = causes(&e);
            eprintln!(
                "error: cannot reach {url}: {e}\n\
                 hint: is `ctihost run` serving there? Start it with `make run`, or point at \
                 another host with --url URL (or CTIHOST_ADMIN_URL); its address is the \
                 `[admin] listen` of its config. An HTTPS host with its own certificate \
                 (the generated <data_dir>/admin-cert.pem is trusted from ./ctihost-data by \
                 default): pass --ca-file PATH."
            );
            Err(ExitCode::from(2))
        }
    }
}

/// An error and its causes, outermost first: reqwest's own message leaves
/// out why (a refused connection, an unknown certificate issuer).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        out.push_str(": ");
        out.push_str(&c.to_string());
        next = c.source();
    }
    out
}

/// Percent-encode a path segment or query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A refused answer, with what to do about the usual ones.
pub fn refused(status: reqwest::StatusCode, body: &str) -> ExitCode {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    eprintln!("error: {status}: {message}");
    if status == reqwest::StatusCode::UNAUTHORIZED {
        eprintln!(
            "hint: the host refused the admin token: use the token of the host at --url \
             (its <data_dir>/admin.token, or `[admin] token` of its config)."
        );
    }
    ExitCode::from(1)
}

/// GET `path` and print it as a table (or the JSON as it came).
pub async fn table(
    args: &AdminArgs,
    path: &str,
    format: &str,
    render: fn(&serde_json::Value, &ctihost::calendar::Calendar) -> String,
) -> ExitCode {
    if !["table", "json"].contains(&format) {
        eprintln!("error: --format {format:?}: expected table or json");
        return ExitCode::from(2);
    }
    let (status, body) = match fetch(args, reqwest::Method::GET, path).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !status.is_success() {
        return refused(status, &body);
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        eprintln!("error: unexpected answer (not JSON): {body}");
        return ExitCode::from(1);
    };
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body)),
        _ => print!("{}", render(&v, &ctihost::calendar::Calendar::system())),
    }
    ExitCode::SUCCESS
}

pub async fn call(args: &AdminArgs, method: reqwest::Method, path: &str) -> ExitCode {
    let (status, body) = match fetch(args, method, path).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !status.is_success() {
        return refused(status, &body);
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    println!("{pretty}");
    ExitCode::SUCCESS
}

/// `ctihost drain`: ask the host to stop after its live calls, say what it
/// does, and with `wait` follow it until it is gone.
pub async fn drain(args: &AdminArgs, within: &str, wait: bool) -> ExitCode {
    let secs = match within.parse::<u64>() {
        Ok(s) => s,
        Err(_) => match humantime::parse_duration(within) {
            Ok(d) => d.as_secs(),
            Err(_) => {
                eprintln!("error: --within {within:?}: expected seconds (300) or a duration (5m)");
                return ExitCode::from(2);
            }
        },
    };
    let (status, body) = match fetch(
        args,
        reqwest::Method::POST,
        &format!("/admin/drain?within_secs={secs}"),
    )
    .await
    {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !status.is_success() {
        return refused(status, &body);
    }
    let state = serde_json::from_str::<serde_json::Value>(&body).ok();
    let live = state
        .as_ref()
        .and_then(|v| v["live_calls"].as_u64())
        .unwrap_or(0);
    let retry = state
        .as_ref()
        .and_then(|v| v["retry_after_secs"].as_u64())
        .unwrap_or(0);
    println!(
        "draining: new calls and OPTIONS get 503 (Retry-After: {retry} s); {live} live call(s) may finish within {secs} s, then the ones left are ended with BYE both ways and the host exits"
    );
    if !wait {
        return ExitCode::SUCCESS;
    }
    let Ok(token) = token(args) else {
        return ExitCode::from(2);
    };
    let url = format!("{}/admin/drain", args.url.trim_end_matches('/'));
    let Ok(client) = client(args) else {
        return ExitCode::from(2);
    };
    let mut last_live = live;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let answer = client.get(&url).bearer_auth(&token).send().await;
        let Ok(r) = answer else {
            println!("stopped");
            return ExitCode::SUCCESS;
        };
        let v: serde_json::Value =
            serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
        let live = v["live_calls"].as_u64().unwrap_or(0);
        if live != last_live {
            println!(
                "{live} live call(s), phase {}",
                v["phase"].as_str().unwrap_or("?")
            );
            last_live = live;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::since_ms;

    #[test]
    fn since_accepts_durations_times_and_ms() {
        let now = 1_800_000_000_000;
        assert_eq!(since_ms("24h", now).ok(), Some(now - 86_400_000));
        assert_eq!(since_ms("1700000000000", now).ok(), Some(1_700_000_000_000));
        assert_eq!(
            since_ms("2026-11-29T00:00:00Z", now).ok(),
            Some(1_795_910_400_000)
        );
        assert!(
            since_ms("yesterday-ish", now)
                .unwrap_err()
                .to_string()
                .contains("--since")
        );
    }
}
