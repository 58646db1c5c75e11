//! IVR, music on hold and recording through the real binary. Callers are
//! SIPp playing the pcaps that ship with sip-tester (RFC 4733 keys, G.711
//! A-law speech) or sending SIP INFO; agents are SIPp phones whose audio is a
//! UDP socket of this test; recordings are read back as WAV files and
//! through the admin API.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ctihost::media::g711::Law;
use serde_json::Value;
use support::server::{self, Server, free_port};
use support::sipp::{finished, phone, phone_with, sipp_cmd, target};

/// What a generated caller does after the answer.
enum Step {
    /// An RFC 4733 key from sip-tester's pcaps.
    Key(char),
    /// A key sent by SIP INFO (application/dtmf-relay).
    Info(char),
    /// Start playing the A-law speech pcap (4.7 s; it plays on meanwhile).
    Speech,
    Pause(u32),
    /// Given first: the INVITE carries no SDP (late offer); the caller
    /// answers the host's offer in its ACK.
    LateOffer,
    /// re-INVITE putting the call on hold (a=sendonly) with audio moved to
    /// `[$rtp2]`; the answer must say recvonly.
    Hold,
}

/// A caller scenario (dialing `-s`) whose SDP offers PCMA and telephone-event
/// at `[$rtp]` when `own_rtp` (a test socket), else at SIPp's media port.
fn caller_scenario(dir: &Path, name: &str, own_rtp: bool, steps: &[Step]) -> PathBuf {
    let head = |method: &str, cseq: u32| {
        format!(
            "{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
             From: <sip:+8613800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
             To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
             Call-ID: [call_id]\nCSeq: {cseq} {method}\n\
             Contact: <sip:caller@[local_ip]:[local_port]>\nMax-Forwards: 70\n"
        )
    };
    let sdp = |port: &str, extra: &str| {
        format!(
            "v=0\no=caller 1 1 IN IP4 [local_ip]\ns=-\nc=IN IP4 [media_ip]\nt=0 0\n\
             m=audio {port} RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\n{extra}"
        )
    };
    let port = if own_rtp { "[$rtp]" } else { "[media_port]" };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"generated caller\">\n",
    );
    let mut globals = vec![];
    if own_rtp {
        globals.push("rtp");
    }
    if steps.iter().any(|s| matches!(s, Step::Hold)) {
        globals.push("rtp2");
    }
    if !globals.is_empty() {
        xml.push_str(&format!("<Global variables=\"{}\"/>\n", globals.join(",")));
    }
    // ACKs get no answer: only other requests are repeated until one comes.
    let send = |xml: &mut String, body: String| {
        xml.push_str(if body.starts_with("ACK") {
            "<send><![CDATA[\n"
        } else {
            "<send retrans=\"500\"><![CDATA[\n"
        });
        xml.push_str(&body);
        xml.push_str("\n]]></send>\n");
    };
    let late = matches!(steps.first(), Some(Step::LateOffer));
    let with_sdp = |head: String| {
        format!(
            "{head}Content-Type: application/sdp\nContent-Length: [len]\n\n{}",
            sdp(port, "")
        )
    };
    let invite = head("INVITE", 1).replace("[peer_tag_param]", "");
    send(
        &mut xml,
        if late {
            format!("{invite}Content-Length: 0\n")
        } else {
            with_sdp(invite)
        },
    );
    xml.push_str(
        "<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n\
         <recv response=\"200\" rtd=\"true\"/>\n",
    );
    send(
        &mut xml,
        if late {
            with_sdp(head("ACK", 1))
        } else {
            format!("{}Content-Length: 0\n", head("ACK", 1))
        },
    );
    let mut cseq = 2;
    for step in steps {
        match step {
            Step::Key(k) => {
                let file = match k {
                    '#' => "pound".to_owned(),
                    '*' => "star".to_owned(),
                    d => d.to_string(),
                };
                xml.push_str(&format!(
                    "<nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/dtmf_2833_{file}.pcap\"/></action></nop>\n<pause milliseconds=\"400\"/>\n"
                ));
            }
            Step::Info(k) => {
                send(
                    &mut xml,
                    format!(
                        "{}Content-Type: application/dtmf-relay\nContent-Length: [len]\n\nSignal={k}\nDuration=160\n",
                        head("INFO", cseq)
                    ),
                );
                xml.push_str("<recv response=\"200\"/>\n");
                cseq += 1;
            }
            Step::Speech => xml.push_str(
                "<nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/g711a.pcap\"/></action></nop>\n",
            ),
            Step::Pause(ms) => xml.push_str(&format!("<pause milliseconds=\"{ms}\"/>\n")),
            Step::LateOffer => {}
            Step::Hold => {
                send(
                    &mut xml,
                    format!(
                        "{}Content-Type: application/sdp\nContent-Length: [len]\n\n{}",
                        head("INVITE", cseq),
                        sdp("[$rtp2]", "a=sendonly\n")
                    ),
                );
                xml.push_str(
                    "<recv response=\"100\" optional=\"true\"/>\n<recv response=\"200\">\n\
                     <action><ereg regexp=\"a=recvonly\" search_in=\"body\" check_it=\"true\" assign_to=\"dir\"/></action>\n</recv>\n",
                );
                send(
                    &mut xml,
                    format!("{}Content-Length: 0\n", head("ACK", cseq)),
                );
                xml.push_str("<Reference variables=\"dir\"/>\n");
                cseq += 1;
            }
        }
    }
    send(
        &mut xml,
        format!("{}Content-Length: 0\n", head("BYE", cseq)),
    );
    xml.push_str("<recv response=\"200\"/>\n</scenario>\n");
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

/// A center with queues `qa` (agent 1001) and `qb` (agent 1002); `router`
/// and `policy` name the plugins; `plugins` is the plugin directory.
fn center(dir: &Path, plugins: &Path, router: &str, policy: &str, queue_extra: &str) -> Server {
    let config = dir.join("ctihost.toml");
    let agent = |id: &str, q: &str| {
        format!(
            "[[agents]]\nid = \"{id}\"\nname = \"Agent {id}\"\nsip_user = \"{id}\"\npassword = \"pw-{id}\"\n\
             desktop_password = \"desk-{id}\"\nqueues = {{ {q} = 1 }}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n\
             [plugins]\nwatch = false\ndir = \"{}\"\nrouter = \"{router}\"\nrecording_policy = \"{policy}\"\n\
             [sip]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\ndigest_algorithms = [\"MD5\"]\n\
             [[trunks]]\nname = \"pstn\"\naddresses = [\"127.0.0.1\"]\n\
             [[queues]]\nname = \"qa\"\n{queue_extra}\n[[queues]]\nname = \"qb\"\n{}{}",
            plugins.display(),
            agent("1001", "qa"),
            agent("1002", "qb"),
        ),
    )
    .unwrap();
    server::start_logging(
        &config,
        "debug,sled=info,wasmtime=info,cranelift=info,hyper=info,reqwest=info",
    )
}

/// A plugin directory: the stock router with a 95588 menu (1 -> qa, 2 -> qb),
/// the test router and the test recording policy (`policy_mode`).
fn plugins(dir: &Path, router_mode: &str, policy_mode: &str) -> PathBuf {
    let p = dir.join("plugins");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::copy(support::wasm("skills_router"), p.join("skills_router.wasm")).unwrap();
    std::fs::write(
        p.join("menu-router.toml"),
        "name = \"menu-router\"\nkind = \"router\"\nfile = \"skills_router.wasm\"\n\
         [config]\ndefault_queue = \"qa\"\ncrm_lookup = false\n\
         [[config.services]]\nnumber = \"95588\"\n\
         [config.services.menu]\nname = \"main-menu\"\nprompt = \"main-menu\"\nmax_digits = 1\ntimeout_ms = 4000\nretries = 0\n\
         [config.services.menu.options]\n\"1\" = \"qa\"\n\"2\" = \"qb\"\n",
    )
    .unwrap();
    std::fs::copy(support::wasm("test_router"), p.join("test_router.wasm")).unwrap();
    std::fs::write(
        p.join("test-router.toml"),
        format!(
            "name = \"test-router\"\nkind = \"router\"\nfile = \"test_router.wasm\"\n\
             [config]\nmode = \"{router_mode}\"\nqueue = \"qa\"\n"
        ),
    )
    .unwrap();
    std::fs::copy(support::wasm("test_policy"), p.join("test_policy.wasm")).unwrap();
    std::fs::write(
        p.join("test-policy.toml"),
        format!(
            "name = \"test-policy\"\nkind = \"recording-policy\"\nfile = \"test_policy.wasm\"\n\
             [config]\nmode = \"{policy_mode}\"\nretention_days = \"1\"\n"
        ),
    )
    .unwrap();
    p
}

/// The recording's index entry once it is closed.
fn recording(s: &Server, call_id: &str) -> Value {
    s.recording_closed(call_id, "t0k")
}

fn caller(scenario: &Path, s: &Server, extra: &[&str]) -> std::process::Child {
    let mut args = vec!["-s", "95588"];
    args.extend_from_slice(extra);
    sipp_cmd(
        scenario.to_str().unwrap(),
        target(s, &[]),
        free_port(),
        &args,
    )
    .spawn()
    .unwrap()
}

/// Root mean square of a stretch of samples.
fn rms(s: &[i16]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    (s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_keys_by_rfc4733_by_info_and_after_a_late_offer_pick_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugins(dir.path(), "ok", "ok");
    let s = center(dir.path(), &p, "menu-router", "test-policy", "");
    let a1 = phone(&s, "1001", "agent_answer.xml");
    let a2 = phone(&s, "1002", "agent_answer.xml");
    // Key 1 as RFC 4733 one second into the 8-second menu prompt (barge-in),
    // key 2 by SIP INFO.
    let by_rtp = caller_scenario(
        dir.path(),
        "by_rtp.xml",
        false,
        &[Step::Pause(1000), Step::Key('1'), Step::Pause(3000)],
    );
    let by_info = caller_scenario(
        dir.path(),
        "by_info.xml",
        false,
        &[Step::Pause(1000), Step::Info('2'), Step::Pause(3000)],
    );
    let c1 = caller(&by_rtp, &s, &[]);
    let c2 = caller(&by_info, &s, &[]);
    let ok = tokio::task::spawn_blocking(move || {
        [finished(c1), finished(c2), finished(a1), finished(a2)]
    })
    .await
    .unwrap();
    assert_eq!(ok, [true; 4]);
    // A late offer (no SDP in the INVITE): the host offers in its 200, the
    // caller answers in the ACK, and its keys are heard all the same.
    let a1 = phone(&s, "1001", "agent_answer.xml");
    let late = caller_scenario(
        dir.path(),
        "late.xml",
        false,
        &[
            Step::LateOffer,
            Step::Pause(1000),
            Step::Key('1'),
            Step::Pause(3000),
        ],
    );
    let c3 = caller(&late, &s, &[]);
    let ok = tokio::task::spawn_blocking(move || [finished(c3), finished(a1)])
        .await
        .unwrap();
    assert_eq!(ok, [true; 2], "late offer");
    let recs = s.records(3);
    let mut by_queue: Vec<(String, String, u64)> = recs
        .iter()
        .map(|r| {
            (
                r["queue"].as_str().unwrap_or("-").to_owned(),
                r["agent"].as_str().unwrap_or("-").to_owned(),
                r["answered_ms"].as_u64().unwrap_or(u64::MAX) - r["arrived_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    by_queue.sort();
    assert_eq!(
        by_queue
            .iter()
            .map(|(q, a, _)| (q.as_str(), a.as_str()))
            .collect::<Vec<_>>(),
        [("qa", "1001"), ("qa", "1001"), ("qb", "1002")],
        "{recs:?}"
    );
    // The key stopped the prompt: the agent answered long before the menu's
    // 8 s would have played out (plus its 4 s digit timeout).
    let menu = ctihost::media::prompts::Prompts::load(None)
        .unwrap()
        .get("main-menu")
        .unwrap()
        .samples
        .len() as u64
        / 8;
    for (q, _, connect_ms) in &by_queue {
        assert!(
            *connect_ms < menu,
            "{q}: connected after {connect_ms} ms, menu is {menu} ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_is_stereo_true_to_length_silent_when_paused_and_holds_no_card_digits() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugins(dir.path(), "card", "ok");
    let s = center(dir.path(), &p, "test-router", "test-policy", "");
    let agent_audio = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent_audio
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let rtp = agent_audio.local_addr().unwrap().port().to_string();
    let phone = phone_with(&s, "1001", "agent_answer_at.xml", &["-set", "rtp", &rtp]);
    // Card number 4009127, then '#'; then the caller speaks.
    let scenario = caller_scenario(
        dir.path(),
        "card.xml",
        false,
        &[
            Step::Pause(800),
            Step::Key('4'),
            Step::Key('0'),
            Step::Key('0'),
            Step::Key('9'),
            Step::Key('1'),
            Step::Key('2'),
            Step::Key('7'),
            Step::Key('#'),
            Step::Pause(1500),
            Step::Speech,
            Step::Pause(9000),
        ],
    );
    let c = caller(&scenario, &s, &[]);

    // The agent's side: wait for the bridged caller's audio, then speak (a
    // 1 kHz tone), pause the recording from the desktop, speak on, resume.
    let mut buf = [0u8; 2048];
    let relay = loop {
        if let Ok((_, from)) = agent_audio.recv_from(&mut buf) {
            break from;
        }
    };
    let api = support::desk::Api::new(&s);
    let http = api.http.clone();
    let token = api.login("1001", "desk-1001").await;
    let (_, calls) = api.call("GET", "/api/calls", Some(&token), None).await;
    let call_id = calls[0]["call_id"].as_str().unwrap().to_owned();
    let mut seq = 0u16;
    let tone = |socket: &UdpSocket, seq: &mut u16, ms: u64| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(ms) {
            let mut pkt = vec![0x80, 8];
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&(*seq as u32 * 160).to_be_bytes());
            pkt.extend_from_slice(&[0, 0, 0, 42]);
            for i in 0..160u64 {
                let t = (n * 160 + i) as f64 / 8000.0;
                pkt.push(
                    Law::A
                        .encode((8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16),
                );
            }
            socket.send_to(&pkt, relay).unwrap();
            *seq = seq.wrapping_add(1);
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let set = |action: &'static str| {
        let (api, token) = (&api, token.clone());
        let path = format!("/api/calls/{call_id}/recording");
        async move {
            let (st, r) = api
                .call(
                    "POST",
                    &path,
                    Some(&token),
                    Some(serde_json::json!({"action": action})),
                )
                .await;
            assert_eq!(
                (st, &r["paused"]),
                (200, &Value::Bool(action == "pause")),
                "{r}"
            );
        }
    };
    tone(&agent_audio, &mut seq, 1000);
    set("pause").await;
    tone(&agent_audio, &mut seq, 1500);
    set("resume").await;
    tone(&agent_audio, &mut seq, 1000);

    let (caller_ok, phone_ok) = tokio::task::spawn_blocking(move || (finished(c), finished(phone)))
        .await
        .unwrap();
    assert!(caller_ok && phone_ok);
    let cdr = s.records(1);
    let rec = &cdr[0];
    assert_eq!(rec["disposition"], "answered", "{rec}");
    let entry = recording(&s, &call_id);
    assert_eq!(entry["legs"], "both", "{entry}");
    assert_eq!(entry["policy"], "test-policy");
    assert_eq!(
        entry["policy_version"].as_str().unwrap().len(),
        64,
        "{entry}"
    );

    // Length: the call's, from the host's answer to the hang-up.
    let call_ms = rec["ended_ms"].as_u64().unwrap() - rec["arrived_ms"].as_u64().unwrap();
    let duration = entry["duration_ms"].as_u64().unwrap();
    assert!(
        call_ms.abs_diff(duration) < 1000,
        "recording {duration} ms, call {call_ms} ms"
    );
    let file = PathBuf::from(entry["file"].as_str().unwrap());
    let reader = s.recording_wav(&call_id, "t0k");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = reader.into_samples().collect::<Result<_, _>>().unwrap();
    let (left, right): (Vec<i16>, Vec<i16>) = samples.chunks(2).map(|f| (f[0], f[1])).unzip();
    assert_eq!(left.len() as u64 / 8, duration);
    let at = |ms: u64| (ms * 8) as usize;

    // The spans: the card step (caller silent) and the agent's pause (all silent).
    let spans = entry["silent_spans"].as_array().unwrap();
    let span = |reason: &str| {
        let s = spans
            .iter()
            .find(|s| s["reason"] == reason)
            .unwrap_or_else(|| panic!("{reason} span in {entry}"));
        (
            s["start_ms"].as_u64().unwrap(),
            s["end_ms"].as_u64().unwrap(),
        )
    };
    let (card_start, card_end) = span("sensitive-step");
    let (pause_start, pause_end) = span("paused");
    assert!(
        card_end > card_start + 1000,
        "the card step lasted: {card_start}..{card_end}"
    );
    assert!(
        pause_end >= pause_start + 1200,
        "paused {pause_start}..{pause_end}"
    );
    assert!(
        left[at(card_start)..at(card_end)].iter().all(|&x| x == 0),
        "no caller audio during the card step"
    );
    let inner = at(pause_start + 40)..at(pause_end - 40);
    assert!(left[inner.clone()].iter().all(|&x| x == 0) && right[inner].iter().all(|&x| x == 0));
    // Energy: the agent's tone right before the pause and after it; the caller's speech.
    assert!(
        rms(&right[at(pause_start - 700)..at(pause_start - 100)]) > 2000.0,
        "agent tone before the pause"
    );
    assert!(
        rms(&right[at(pause_end + 100)..at(pause_end + 700)]) > 2000.0,
        "agent tone after the pause"
    );
    let loudest_caller_second = (card_end / 1000..duration / 1000)
        .map(|sec| rms(&left[at(sec * 1000)..at((sec + 1) * 1000).min(left.len())]))
        .fold(0.0, f64::max);
    assert!(
        loudest_caller_second > 500.0,
        "caller speech recorded: {loudest_caller_second}"
    );

    // The file is the one indexed, byte for byte.
    let audio = http
        .get(format!("{}/admin/recordings/{call_id}/audio", s.url))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap();
    assert_eq!(audio.status(), 200);
    let bytes = audio.bytes().await.unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        entry["sha256"].as_str().unwrap()
    );

    // The card number reached the router (its counter) and nowhere else.
    let plugins = s.admin_json("/admin/plugins", "t0k");
    let router = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "test-router")
        .unwrap();
    assert_eq!(
        router["counters"]["card_digits_7"], 1,
        "the router got 7 digits: {router}"
    );
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("recording finished"), "debug log captured");
    for text in [
        &log,
        &serde_json::to_string(&cdr).unwrap(),
        &entry.to_string(),
    ] {
        // As a whole token: hashes and timestamps hold digit runs of their own.
        let leaked = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|token| token == "4009127");
        assert!(!leaked, "card digits leaked");
    }

    // Retention: a purge as of two days later deletes the file and says so.
    let started = entry["started_ms"].as_u64().unwrap();
    let (_, purge) = api
        .call(
            "POST",
            &format!(
                "/admin/recordings/purge?as_of_ms={}",
                started + 2 * 86_400_000
            ),
            Some("t0k"),
            None,
        )
        .await;
    assert_eq!(purge["purged"], serde_json::json!([call_id]), "{purge}");
    assert!(!file.exists());
    assert!(recording(&s, &call_id)["purged_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_recording_policy_falls_back_to_recording_both_legs() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugins(dir.path(), "ok", "trap");
    let s = center(dir.path(), &p, "test-router", "test-policy", "");
    let phone = phone(&s, "1001", "agent_answer.xml");
    let scenario = caller_scenario(
        dir.path(),
        "speak.xml",
        false,
        &[Step::Speech, Step::Pause(3000)],
    );
    let c = caller(&scenario, &s, &[]);
    let (caller_ok, phone_ok) = tokio::task::spawn_blocking(move || (finished(c), finished(phone)))
        .await
        .unwrap();
    assert!(caller_ok && phone_ok, "the call goes on");
    let rec = &s.records(1)[0];
    assert_eq!(rec["disposition"], "answered", "{rec}");
    let entry = recording(&s, rec["call_id"].as_str().unwrap());
    assert_eq!(entry["legs"], "both", "{entry}");
    assert!(
        entry["reason"].as_str().unwrap().contains("fallback"),
        "{entry}"
    );
    let left: Vec<i16> = s
        .recording_wav(rec["call_id"].as_str().unwrap(), "t0k")
        .into_samples::<i16>()
        .step_by(2)
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rms(&left) > 100.0, "the caller was recorded");
}

/// Waits for a host packet carrying exactly the first 20 ms of `prompt`
/// (A-law) on `socket`; how long it took.
fn hear(socket: &UdpSocket, prompt: &str, within: Duration) -> Option<Duration> {
    let prompts = ctihost::media::prompts::Prompts::load(None).unwrap();
    let first: Vec<u8> = prompts.get(prompt).unwrap().samples[..160]
        .iter()
        .map(|&s| Law::A.encode(s))
        .collect();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while start.elapsed() < within {
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && n == 172
            && buf[12..n] == first[..]
        {
            return Some(start.elapsed());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_callers_hear_music_and_their_position_and_hold_keeps_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugins(dir.path(), "ok", "ok");
    // No agent logs in: the caller waits in qa.
    let s = center(
        dir.path(),
        &p,
        "test-router",
        "test-policy",
        "music_on_hold = \"music-on-hold\"\nannounce_every_secs = 3\n",
    );
    let ear = UdpSocket::bind("127.0.0.1:0").unwrap();
    ear.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    held.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (rtp, rtp2) = (
        ear.local_addr().unwrap().port().to_string(),
        held.local_addr().unwrap().port().to_string(),
    );
    let scenario = caller_scenario(
        dir.path(),
        "wait.xml",
        true,
        &[Step::Pause(5000), Step::Hold, Step::Pause(1500)],
    );
    let c = caller(&scenario, &s, &["-set", "rtp", &rtp, "-set", "rtp2", &rtp2]);
    let music = hear(&ear, "music-on-hold", Duration::from_secs(3));
    assert!(music.is_some(), "music on hold starts at once");
    let announced =
        hear(&ear, "you-are-number", Duration::from_secs(5)).map(|d| d + music.unwrap());
    assert!(
        announced.is_some_and(|d| d >= Duration::from_secs(2)),
        "announcement after announce_every_secs: {announced:?}"
    );
    // After the re-INVITE the host's audio goes to the new address.
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(8);
    let mut moved = 0;
    while Instant::now() < until && moved < 20 {
        if held.recv_from(&mut buf).is_ok() {
            moved += 1;
        }
    }
    assert_eq!(moved, 20, "music follows the caller's re-INVITE");
    assert!(
        tokio::task::spawn_blocking(move || finished(c))
            .await
            .unwrap(),
        "re-INVITE answered recvonly"
    );
    let rec = &s.records(1)[0];
    assert_eq!(rec["disposition"], "abandoned-in-queue", "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_phone_holding_the_call_is_answered_by_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugins(dir.path(), "ok", "ok");
    let s = center(dir.path(), &p, "test-router", "test-policy", "");
    let phone = phone(&s, "1001", "agent_answer_hold.xml");
    let scenario = caller_scenario(dir.path(), "talk.xml", false, &[Step::Pause(3000)]);
    let c = caller(&scenario, &s, &[]);
    let (caller_ok, phone_ok) = tokio::task::spawn_blocking(move || (finished(c), finished(phone)))
        .await
        .unwrap();
    assert!(phone_ok, "the phone's re-INVITE got 200 with recvonly");
    assert!(caller_ok, "the caller's call went on");
    assert_eq!(s.records(1)[0]["disposition"], "answered");
}
