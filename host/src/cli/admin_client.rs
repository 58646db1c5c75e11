//! Talks to a running host's admin API.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "CTIHOST_ADMIN_URL",
        default_value = "http://127.0.0.1:8089"
    )]
    url: String,
    /// Admin token (default: read from --token-file).
    #[arg(long, env = "CTIHOST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, default_value = "ctihost-data/admin.token")]
    token_file: PathBuf,
}

pub async fn call(args: &AdminArgs, method: reqwest::Method, path: &str) -> ExitCode {
    let token = match &args.token {
        Some(t) => t.clone(),
        None => match std::fs::read_to_string(&args.token_file) {
            Ok(t) => t.trim().to_owned(),
            Err(e) => {
                eprintln!(
                    "error: no --token and cannot read {}: {e}",
                    args.token_file.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    let url = format!("{}{}", args.url.trim_end_matches('/'), path);
    let resp = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token)
        .send()
        .await;
    match resp {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            let pretty = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(body);
            if status.is_success() {
                println!("{pretty}");
                ExitCode::SUCCESS
            } else {
                eprintln!("error: {status}: {pretty}");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: cannot reach {url}: {e}");
            ExitCode::from(2)
        }
    }
}
