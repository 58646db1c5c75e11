//! The real `ctihost` binary as a server process, with the addresses it
//! reports in its log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    /// Admin API base URL.
    pub url: String,
    pub sip_udp: Option<SocketAddr>,
    pub sip_tcp: Option<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, key: &str) -> Option<String> {
    line.split(key)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.trim_matches('"').to_owned())
}

/// Start `ctihost run --config CONFIG` and wait for its "ready" log line.
pub fn start(config: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ctihost"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut udp, mut tcp) = (None, None);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("SIP listening on UDP") {
                udp = field(&line, "local=");
            }
            if line.contains("SIP listening on TCP") {
                tcp = field(&line, "local=");
            }
            if line.contains("ctihost ready") {
                let _ = tx.send((field(&line, "addr=").unwrap(), udp.clone(), tcp.clone()));
            }
            if line.contains("ERROR") || line.contains("error:") {
                eprintln!("server: {line}");
            }
        }
    });
    let (addr, udp, tcp) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server became ready");
    Server {
        child,
        url: format!("http://{addr}"),
        sip_udp: udp.map(|a| a.parse().unwrap()),
        sip_tcp: tcp.map(|a| a.parse().unwrap()),
    }
}
