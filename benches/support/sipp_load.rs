//! SIPp as load: its built-in caller and answerer, and many agents registered
//! at one answerer (shared by the benchmarks).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::support::server::{Server, free_port};

const BUFF: &str = "4194304";

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that forks workers (Kamailio): started in its own process group,
/// and the whole group is killed on drop, so no worker outlives the bench.
pub struct KilledGroup(pub Child);

impl KilledGroup {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).spawn().map(KilledGroup)
    }
}

impl Drop for KilledGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn sipp(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new("sipp");
    c.args(["-i", "127.0.0.1", "-buff_size", BUFF, "-nostdin"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

pub fn answerer(port: u16, dir: &Path) -> Killed {
    Killed(
        sipp(&["-sn", "uas", "-p", &port.to_string()], dir)
            .spawn()
            .expect("sipp is installed (Debian sip-tester)"),
    )
}

/// SIPp's built-in caller: `calls` calls at `rate`/s, each talking `talk_ms`
/// (SIPp gives up after 60 s).
pub fn callers(target: SocketAddr, rate: u32, calls: u32, talk_ms: u32, dir: &Path) -> Command {
    callers_for(target, rate, calls, talk_ms, Some(60), dir)
}

/// The same with SIPp's global timeout `timeout_secs` (None: none, for a
/// run as long as the calls take).
pub fn callers_for(
    target: SocketAddr,
    rate: u32,
    calls: u32,
    talk_ms: u32,
    timeout_secs: Option<u32>,
    dir: &Path,
) -> Command {
    let (port, rate, calls, talk) = (
        free_port().to_string(),
        rate.to_string(),
        calls.to_string(),
        talk_ms.to_string(),
    );
    let mut args = vec![
        "-sn", "uac", "-s", "95588-en", "-p", &port, "-r", &rate, "-m", &calls, "-d", &talk,
    ];
    let timeout = timeout_secs.map(|t| t.to_string());
    if let Some(t) = &timeout {
        args.extend(["-timeout", t, "-timeout_error"]);
    }
    let target = target.to_string();
    args.push(&target);
    sipp(&args, dir)
}

/// `[[agents]]` tables for `n` agents (`a0001`.., SIP password `pw`, queue
/// general) and the `users.csv` SIPp registers them from.
pub fn agents_config(n: usize, dir: &Path) -> String {
    let mut cfg = String::new();
    let mut users = String::from("SEQUENTIAL\n");
    for i in 1..=n {
        cfg.push_str(&format!(
            "[[agents]]\nid = \"a{i:04}\"\nsip_user = \"a{i:04}\"\npassword = \"pw\"\nskills = {{ english = 50 }}\nqueues = {{ general = 1 }}\n"
        ));
        users.push_str(&format!(
            "a{i:04};[authentication username=a{i:04} password=pw]\n"
        ));
    }
    std::fs::write(dir.join("users.csv"), users).unwrap();
    cfg
}

/// Register the `n` agents of [`agents_config`] at one SIPp answerer, which
/// then answers every call offered to any of them.
pub fn register_agents(s: &Server, n: usize, dir: &Path) -> Killed {
    answerer(register(s, n, dir), dir)
}

/// Register the `n` agents of [`agents_config`] with one contact port, which
/// is returned (for the phone that will answer their calls).
pub fn register(s: &Server, n: usize, dir: &Path) -> u16 {
    let phones = free_port();
    let registered = sipp(
        &[
            "-sf",
            super::support::root()
                .join("benches/sipp/register_many.xml")
                .to_str()
                .unwrap(),
            "-inf",
            dir.join("users.csv").to_str().unwrap(),
            "-p",
            &phones.to_string(),
            "-m",
            &n.to_string(),
            "-r",
            "500",
            "-timeout",
            "60",
            "-timeout_error",
            &s.sip_udp.unwrap().to_string(),
        ],
        dir,
    )
    .status()
    .unwrap();
    assert!(registered.success(), "{n} agents registered");
    phones
}
