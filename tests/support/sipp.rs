//! SIPp as a real peer: the trunk's caller and the agents' phones, with the
//! scenarios of `tests/sipp`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::{Server, free_port};

pub fn sipp_cmd(scenario: &str, target: SocketAddr, port: u16, extra: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    let path = super::root().join("tests").join("sipp").join(scenario);
    c.args([
        "-sf",
        path.to_str().unwrap(),
        "-i",
        if target.is_ipv6() { "::1" } else { "127.0.0.1" },
        "-p",
        &port.to_string(),
    ])
    .args(if extra.contains(&"-t") {
        &[][..]
    } else {
        &["-t", "u1"][..]
    })
    .args(["-timeout", "30", "-timeout_error", "-nostdin"])
    .args(extra)
    .args(if extra.contains(&"-m") {
        &[][..]
    } else {
        &["-m", "1"][..]
    })
    .arg(target.to_string())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // CTIHOST_SIPP_TRACE=DIR keeps SIPp's message and error logs there.
    match std::env::var_os("CTIHOST_SIPP_TRACE") {
        Some(dir) => c.args(["-trace_err", "-trace_msg"]).current_dir(dir),
        None => c.current_dir(std::env::temp_dir()),
    };
    c
}

/// Register `agent` from `port`, then leave a phone there running `scenario`.
pub fn phone(s: &Server, agent: &str, scenario: &str) -> Child {
    phone_with(s, agent, scenario, &[])
}

/// The host's address for the transport SIPp is told to use (`-t t1`: TCP).
pub fn target(s: &Server, sipp_args: &[&str]) -> SocketAddr {
    if sipp_args.contains(&"t1") {
        s.sip_tcp.unwrap()
    } else {
        s.sip_udp.unwrap()
    }
}

pub fn phone_with(s: &Server, agent: &str, scenario: &str, extra: &[&str]) -> Child {
    let port = free_port();
    let target = target(s, extra);
    let password = format!("pw-{agent}");
    let mut register = vec!["-s", agent, "-au", agent, "-ap", &password];
    if extra.contains(&"t1") {
        register.extend(["-t", "t1"]);
    }
    let ok = sipp_cmd("register_ok.xml", target, port, &register)
        .status()
        .unwrap();
    assert!(ok.success(), "agent {agent} registered");
    let mut args = vec!["-s", agent];
    args.extend_from_slice(extra);
    sipp_cmd(scenario, target, port, &args).spawn().unwrap()
}

/// A trunk caller running `scenario` with `args` against the host (over
/// TCP when `args` says `-t t1`), left running.
pub fn spawn_caller(s: &Server, scenario: &str, args: &[&str]) -> Child {
    sipp_cmd(scenario, target(s, args), free_port(), args)
        .spawn()
        .unwrap()
}

pub fn caller(s: &Server, scenario_args: &[&str]) -> bool {
    sipp_cmd(
        scenario_args[0],
        target(s, scenario_args),
        free_port(),
        &scenario_args[1..],
    )
    .status()
    .unwrap()
    .success()
}

/// [`finished`] from async code (it polls on a blocking thread).
pub async fn finished_async(child: Child) -> bool {
    tokio::task::spawn_blocking(move || finished(child))
        .await
        .unwrap()
}

pub fn finished(mut child: Child) -> bool {
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.success();
        }
        assert!(Instant::now() < until, "phone scenario did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shipped agent phone (`examples/sipp/agent_phone.xml` with
/// `agent_answer.xml` for each offered call): registers `user` with
/// `password` from `port`, answers every call for `secs`, then signs off.
/// Killed when dropped.
pub fn agent_phone(target: SocketAddr, user: &str, password: &str, secs: u64, port: u16) -> Killed {
    let scenario = |f: &str| super::root().join("examples/sipp").join(f);
    Killed(
        Command::new("sipp")
            .arg("-sf")
            .arg(scenario("agent_phone.xml"))
            .arg("-oocsf")
            .arg(scenario("agent_answer.xml"))
            .args(["-s", user, "-au", user, "-ap", password])
            .args(["-d", &(secs * 1000).to_string(), "-m", "1"])
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-nostdin"])
            .arg(target.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
