//! Builds the stock plugins (`plugins/`) for wasm32-wasip2 and hands the
//! components to `stock_plugins` through OUT_DIR.

use std::path::PathBuf;
use std::process::Command;

const STOCK: &[(&str, &str)] = &[
    ("skills-router", "skills_router.wasm"),
    ("crm-screen-pop", "crm_screen_pop.wasm"),
    ("crm-http", "crm_http.wasm"),
    ("pci-recording", "pci_recording.wasm"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root")
        .to_owned();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // A separate target directory: the outer cargo holds the lock on target/.
    let wasm_target = root.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("plugins"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&wasm_target);
    for (pkg, _) in STOCK {
        cmd.args(["-p", pkg]);
    }
    // The outer build's settings are for the host, not for the guests.
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
            || k == "RUSTDOCFLAGS"
        {
            cmd.env_remove(&k);
        }
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the stock plugins");
    if !status.success() {
        panic!(
            "building the stock plugins failed (cargo's output above says why). If it cannot \
             find the target, run `rustup target add wasm32-wasip2` (rust-toolchain.toml lists it)."
        );
    }
    for (_, file) in STOCK {
        let built = wasm_target.join("wasm32-wasip2").join("release").join(file);
        std::fs::copy(&built, out_dir.join(file))
            .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    }
}
