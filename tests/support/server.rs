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
    /// Admin API base URL (`https://` unless the config says insecure_http).
    pub url: String,
    /// The API's certificate (PEM) when it serves HTTPS: what clients trust.
    pub ca: String,
    pub sip_udp: Option<SocketAddr>,
    pub sip_tcp: Option<SocketAddr>,
    pub sip_tls: Option<SocketAddr>,
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
        let mut buf = self.raw_get(path, Some(token));
        let at = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(buf.len(), |i| i + 4);
        buf.split_off(at)
    }

    /// The whole answer (head and body) to a GET of `path`, over HTTPS
    /// (trusting [`Server::ca`] alone) or clear HTTP as the host serves.
    pub fn raw_get(&self, path: &str, token: Option<&str>) -> Vec<u8> {
        use std::io::{Read, Write};
        let (tls, host) = match self.url.strip_prefix("https://") {
            Some(h) => (true, h),
            None => (false, self.url.strip_prefix("http://").unwrap()),
        };
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
        let tcp = std::net::TcpStream::connect(host).unwrap();
        let mut buf = Vec::new();
        if tls {
            let name = host.rsplit_once(':').unwrap().0.trim_matches(['[', ']']);
            let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
            let conn = rustls::ClientConnection::new(super::tls_client(&self.ca), name).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(request.as_bytes()).unwrap();
            // A server closing without close_notify is an error to rustls;
            // what was read so far is the answer.
            let _ = s.read_to_end(&mut buf);
        } else {
            let mut s = tcp;
            s.write_all(request.as_bytes()).unwrap();
            s.read_to_end(&mut buf).unwrap();
        }
        buf
    }

    /// A call's recording index entry once it is closed (20 s at most): the
    /// entry exists from the recording's start (state `recording`, no hash
    /// yet) and is closed on a blocking thread after the call ends, so only
    /// its state says it is done.
    pub fn recording_closed(&self, call_id: &str, token: &str) -> serde_json::Value {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.admin_json(&format!("/admin/recordings/{call_id}"), token);
            if v["state"].is_string() && v["state"] != "recording" {
                return v;
            }
            assert!(
                std::time::Instant::now() < until,
                "the recording of {call_id} is not closed after 20 s: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

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
        String::from_utf8_lossy(&self.admin_bytes(path, token)).into_owned()
    }

    /// A client of the API trusting its certificate.
    pub fn http(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder();
        if !self.ca.is_empty() {
            let pem = std::fs::read(&self.ca).unwrap();
            b = b
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .tls_built_in_root_certs(false);
        }
        b.build().unwrap()
    }

    /// `--url URL --ca-file CERT` for a CLI command against this host.
    pub fn url_args(&self) -> Vec<&str> {
        let mut a = vec!["--url", self.url.as_str()];
        if !self.ca.is_empty() {
            a.extend(["--ca-file", self.ca.as_str()]);
        }
        a
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
        serde_json::from_slice(&self.admin_bytes(path, token)).unwrap()
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

/// `ctihost run --config CONFIG` with `extra` arguments after it.
pub fn start_with_args(config: &Path, extra: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctihost"));
    cmd.args(["run", "--config", config.to_str().unwrap()])
        .args(extra)
        .env("RUST_LOG", "info");
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
        let (mut udp, mut tcp, mut tls, mut ca) = (None, None, None, String::new());
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
            if line.contains("SIP listening on TLS") {
                tls = field(&line, "local=");
            }
            if line.contains("HTTPS certificate") {
                ca = field(&line, "cert=").unwrap_or_default();
            }
            if line.contains("ctihost ready") {
                let url = field(&line, "url=").unwrap();
                let _ = tx.send((url, udp.clone(), tcp.clone(), tls.clone(), ca.clone()));
            }
            if line.contains("ERROR") || line.contains("error:") {
                eprintln!("server: {line}");
            }
        }
    });
    let (url, udp, tcp, tls, ca) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server became ready");
    Server {
        child,
        log,
        url,
        ca,
        sip_udp: udp.map(|a| a.parse().unwrap()),
        sip_tcp: tcp.map(|a| a.parse().unwrap()),
        sip_tls: tls.map(|a| a.parse().unwrap()),
    }
}
