//! A router for the host's tests. Its behaviour is chosen by the manifest's
//! `mode`; hostile modes act only on real calls (not on the host's self-test
//! call), like a plugin that passes its checks and misbehaves in production.

use ctihost_sdk::host;
use ctihost_sdk::router::*;

struct TestRouter;

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn mode() -> String {
    host::config_get("mode").unwrap_or_else(|| "ok".into())
}

fn ok_decision() -> RouteDecision {
    let q = host::config_get("queue").unwrap_or_else(|| "general".into());
    queue(&q).into()
}

impl Guest for TestRouter {
    fn route(call: CallInfo) -> RouteDecision {
        if call.call_id.starts_with("selftest") {
            if host::config_get("fail_selftest").as_deref() == Some("true") {
                panic!("this version fails its self-test");
            }
            return ok_decision();
        }
        match mode().as_str() {
            "loop" => loop {
                std::hint::black_box(0);
            },
            "memory-bomb" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            "trap" => panic!("test router told to trap"),
            // A card-number step (sensitive), then the queue.
            "card" => match call.ivr.iter().find(|e| e.step == "card") {
                None => RouteDecision::Ivr(IvrStep {
                    name: "card".into(),
                    prompt: "enter-card".into(),
                    max_digits: 8,
                    terminator: Some("#".into()),
                    inter_digit_timeout_ms: 3000,
                    sensitive: true,
                }),
                Some(e) => {
                    host::counter_add(&format!("card_digits_{}", e.digits.len()), 1);
                    ok_decision()
                }
            },
            "huge-output" => RouteDecision::Forward("9".repeat(8 << 20)),
            // Whatever the manifest says, as a hostile or careless author
            // would return it: a forward target, an agent, a queue.
            "forward" => RouteDecision::Forward(host::config_get("target").unwrap_or_default()),
            "agent" => RouteDecision::Agent(host::config_get("agent").unwrap_or_default()),
            // Passes its self-test on `queue`, then names `live_queue`.
            "live-queue" => queue(&host::config_get("live_queue").unwrap_or_default()).into(),
            // An IVR step as configured, then the queue once it was answered.
            "ivr" => match call.ivr.iter().find(|e| e.step == "step") {
                None => RouteDecision::Ivr(IvrStep {
                    name: "step".into(),
                    prompt: host::config_get("prompt").unwrap_or_else(|| "main-menu".into()),
                    max_digits: 1,
                    terminator: None,
                    inter_digit_timeout_ms: host::config_get("timeout_ms")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(3000),
                    sensitive: false,
                }),
                Some(_) => ok_decision(),
            },
            // Grows its key-value namespace by `kv_chunks` x 64 KiB a call.
            "kv-hog" => {
                let n: u32 = host::config_get("kv_chunks")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(16);
                let at = host::now_ms();
                let mut refused = 0;
                for i in 0..n {
                    if host::kv_set(&format!("{}-{at}-{i}", call.call_id), &vec![1u8; 64 * 1024])
                        .is_err()
                    {
                        refused += 1;
                    }
                }
                host::counter_add("kv_refused", refused);
                ok_decision()
            }
            "bad-decision" => reject(200, "OK is not a rejection"),
            "reject" => {
                let code = host::config_get("code")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(603);
                reject(
                    code,
                    &host::config_get("reason").unwrap_or_else(|| "Decline".into()),
                )
            }
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => RouteDecision::Forward(format!("leaked:{}", text.len())),
                Err(e) => panic!("file system closed: {e}"),
            },
            "env" => match std::env::vars().next() {
                Some((k, _)) => RouteDecision::Forward(format!("leaked-env:{k}")),
                None => ok_decision(),
            },
            "slow" => {
                host::counter_add("slow_started", 1);
                // Busy work (not a sleep): holds the version for a while.
                let ms: u64 = host::config_get("slow_ms")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(200);
                let until = host::now_ms() + ms;
                while host::now_ms() < until {
                    std::hint::black_box(0);
                }
                ok_decision()
            }
            "print" => {
                for i in 0..1000 {
                    println!("hello from the test router, line {i}");
                }
                ok_decision()
            }
            "kv" => {
                let n = host::kv_get("count")
                    .and_then(|v| v.try_into().ok())
                    .map(u64::from_le_bytes)
                    .unwrap_or(0)
                    + 1;
                let _ = host::kv_set("count", &n.to_le_bytes());
                queue(&format!("count-{n}")).into()
            }
            "static-count" => {
                // Memory that survives between calls only when the host reuses the instance.
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if host::config_get("trap_at").and_then(|s| s.parse::<u32>().ok()) == Some(n) {
                    panic!("trap at call {n}");
                }
                queue(&format!("n-{n}")).into()
            }
            _ => ok_decision(),
        }
    }

    fn rank_agents(
        _call: CallInfo,
        _queue: String,
        candidates: Vec<AgentCandidate>,
    ) -> Vec<String> {
        candidates.into_iter().rev().map(|c| c.id).collect()
    }
}

ctihost_sdk::export_router!(TestRouter);
