//! A record-routing proxy (Debian's Kamailio) between the trunk and the
//! host: the call's ACK, the caller's re-INVITE and the host's BYE all pass
//! through it, in both directions, by the route set each side keeps.
#![allow(clippy::unwrap_used)]

mod support;

use support::Crm;
use support::desk::{self, Api};
use support::kamailio::Kamailio;
use support::server::free_port;
use support::sipp::{finished_async, sipp_cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dialog_requests_follow_the_route_set_through_a_record_routing_proxy() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = desk::center(dir.path(), crm.addr, "");
    let host = s.sip_udp.unwrap();
    let proxy = Kamailio::start(dir.path(), host);
    let api = Api::new(&s);
    let (agent, phone) = desk::ready_agent(&api, &s, "1001", "agent_answer.xml").await;
    let caller_port = free_port();
    let caller = sipp_cmd(
        "caller_via_proxy.xml",
        proxy.addr,
        caller_port,
        &["-s", "95566"],
    )
    .spawn()
    .unwrap();
    let sipp = format!("127.0.0.1:{caller_port}");
    let host_addr = host.to_string();
    // The ACK of the answer, the re-INVITE and its ACK: from the caller,
    // each routed by the proxy (a request without the route set would be
    // UNROUTED: the host's 200 must carry the Record-Route back).
    proxy.wait_for("the caller's ACK, re-INVITE and ACK routed", |r| {
        let routed = |m: &str| {
            r.iter()
                .filter(|(k, meth, from)| k == "ROUTED" && meth == m && *from == sipp)
                .count()
        };
        routed("ACK") == 2 && routed("INVITE") == 1
    });
    let (_, calls) = api.call("GET", "/api/calls", Some(&agent), None).await;
    let call_id = calls[0]["call_id"].as_str().unwrap().to_owned();
    assert_eq!(calls[0]["state"], "connected", "{calls}");
    // The agent hangs up: the host's BYE to the caller takes the route set.
    assert_eq!(api.hang_up(&agent, &call_id).await, 202);
    proxy.wait_for("the host's BYE routed", |r| {
        r.iter()
            .any(|(k, m, from)| k == "ROUTED" && m == "BYE" && *from == host_addr)
    });
    assert!(
        finished_async(caller).await,
        "the caller got the BYE through the proxy"
    );
    assert!(finished_async(phone).await, "the agent's phone got its BYE");
    let unrouted: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|(k, _, _)| k == "UNROUTED")
        .collect();
    assert!(unrouted.is_empty(), "{unrouted:?}\n{}", proxy.log());
    let record = desk::record_of(&s, &call_id).await;
    assert_eq!(record["disposition"], "answered", "{record}");
}
