//! Kamailio (Debian's) as a record-routing proxy in front of the host: the
//! trunk side talks to it, it record-routes the INVITE and relays every
//! in-dialog request by its Route headers. Each request it routes, or
//! cannot route, is a line of its log.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::free_port;

pub struct Kamailio {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:LISTEN
loadpath "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "siputils.so"
loadmodule "textops.so"
modparam("rr", "append_fromtag", 1)

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
            xlog("L_NOTICE", "ROUTED $rm from $si:$sp\n");
            t_relay();
            exit;
        }
        if (is_method("ACK") && t_check_trans()) {
            t_relay();
            exit;
        }
        xlog("L_NOTICE", "UNROUTED $rm from $si:$sp\n");
        if (!is_method("ACK")) {
            sl_send_reply("404", "Not here");
        }
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    record_route();
    xlog("L_NOTICE", "INITIAL $rm from $si:$sp\n");
    $du = "sip:UPSTREAM";
    t_relay();
    exit;
}
"#;

impl Kamailio {
    /// A proxy on a free loopback port relaying new calls to `upstream`.
    pub fn start(dir: &Path, upstream: SocketAddr) -> Self {
        let port = free_port();
        let config = dir.join("kamailio.cfg");
        std::fs::write(
            &config,
            CONFIG
                .replace("LISTEN", &port.to_string())
                .replace("UPSTREAM", &upstream.to_string()),
        )
        .unwrap();
        let log = dir.join("kamailio.log");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&config)
            .args(["-DD", "-E", "-m", "32", "-M", "8", "-w"])
            .arg(dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kamailio runs (tests/install-deps.sh installs it)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let k = Self { child, addr, log };
        // Listening once its port is taken.
        let until = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(addr).is_ok() {
            assert!(
                Instant::now() < until,
                "kamailio did not listen: {}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        k
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The requests it handled, in order: ("ROUTED" | "UNROUTED" | "INITIAL",
    /// method, source address).
    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.log()
            .lines()
            .filter_map(|l| {
                let at = ["INITIAL ", "ROUTED ", "UNROUTED "]
                    .iter()
                    .filter_map(|k| l.find(k))
                    .min()?;
                let mut w = l[at..].split_whitespace();
                let (kind, method, _, from) = (w.next()?, w.next()?, w.next()?, w.next()?);
                Some((kind.to_owned(), method.to_owned(), from.to_owned()))
            })
            .collect()
    }

    /// Wait until `f` holds for what it handled.
    pub fn wait_for(&self, what: &str, f: impl Fn(&[(String, String, String)]) -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.requests();
            if f(&r) {
                return;
            }
            assert!(Instant::now() < until, "kamailio never saw {what}: {r:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
