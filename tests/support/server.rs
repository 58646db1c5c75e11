//! The real `ctihost` binary as a server process, with the addresses it
//! reports in its log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    /// Every line the server logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
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

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop as an operator's restart does (SIGTERM) and wait for the exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(15))
            .expect("ctihost did not stop on SIGTERM")
    }

    /// Send the server a signal ("TERM", "INT").
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Wait for the server to exit by itself (None: still running after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().ok().flatten() {
                return Some(st);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET an admin endpoint with `token`; the body as bytes.
    pub fn admin_bytes(&self, path: &str, token: &str) -> Vec<u8> {
        use std::io::{Read, Write};
        let host = self.url.strip_prefix("http://").unwrap();
        let mut c = std::net::TcpStream::connect(host).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        let at = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(buf.len(), |i| i + 4);
        buf.split_off(at)
    }

    /// GET an admin endpoint with `token`; the body as text.
    /// A call's recording as the host serves it (decrypted when sealed;
    /// checked against its index hash), read as a WAV.
    pub fn recording_wav(
        &self,
        call_id: &str,
        token: &str,
    ) -> hound::WavReader<std::io::Cursor<Vec<u8>>> {
        let bytes = self.admin_bytes(&format!("/admin/recordings/{call_id}/audio"), token);
        hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap()
    }

    pub fn admin_text(&self, path: &str, token: &str) -> String {
        use std::io::{Read, Write};
        let host = self.url.strip_prefix("http://").unwrap();
        let mut c = std::net::TcpStream::connect(host).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = String::new();
        c.read_to_string(&mut buf).unwrap();
        buf.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// The call records (admin token `t0k`), once there are `n` of them or
    /// after 20 s.
    pub fn records(&self, n: usize) -> Vec<serde_json::Value> {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .admin_json("/admin/cdr?limit=5000", "t0k")
                .as_array()
                .cloned()
                .unwrap_or_default();
            if v.len() >= n || std::time::Instant::now() > until {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (20 s at most) until each of `users` has a registered phone.
    pub fn wait_registered(&self, token: &str, users: &[&str]) {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let regs = self.admin_json("/admin/sip/registrations", token);
            let missing: Vec<&&str> = users
                .iter()
                .filter(|u| regs[**u].as_array().is_none_or(|b| b.is_empty()))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "not registered within 20 s: {missing:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET an admin endpoint with `token` and parse the JSON body.
    pub fn admin_json(&self, path: &str, token: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let host = self.url.strip_prefix("http://").unwrap();
        let mut c = std::net::TcpStream::connect(host).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = String::new();
        c.read_to_string(&mut buf).unwrap();
        serde_json::from_str(buf.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap()
    }
}

/// A port free on loopback right now (for a SIPp peer's local port).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn field(line: &str, key: &str) -> Option<String> {
    line.split(key)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.trim_matches('"').to_owned())
}

/// Start `ctihost run --config CONFIG` and wait for its "ready" log line.
pub fn start(config: &Path) -> Server {
    start_logging(config, "info")
}

/// The same with `RUST_LOG` set to `filter`.
pub fn start_logging(config: &Path, filter: &str) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctihost"));
    cmd.args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", filter);
    start_command(cmd)
}

/// The same with extra environment for the host alone (a profiler's
/// preload, say), not for the harness or its peers.
pub fn start_with_env(config: &Path, env: &[(String, String)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctihost"));
    cmd.args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)));
    start_command(cmd)
}

/// `ctihost run` with no config, as a newcomer starts it (the default
/// center, on its fixed loopback ports), in `cwd`.
pub fn start_default_center(cwd: &Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctihost"));
    cmd.arg("run")
        .current_dir(cwd)
        .env_remove("CTIHOST_CONFIG")
        .env("RUST_LOG", "info");
    start_command(cmd)
}

fn start_command(mut cmd: Command) -> Server {
    let mut child = cmd
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        let (mut udp, mut tcp) = (None, None);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut l) = kept.lock() {
                l.push(line.clone());
            }
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
        log,
        url: format!("http://{addr}"),
        sip_udp: udp.map(|a| a.parse().unwrap()),
        sip_tcp: tcp.map(|a| a.parse().unwrap()),
    }
}
