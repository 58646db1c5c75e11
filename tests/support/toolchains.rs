//! Python and JavaScript component toolchains for the tests: componentize-py
//! in a virtualenv under target/, jco and componentize-qjs from the JS
//! example's locked node_modules. Each is set up once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::root;

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The virtualenv holding componentize-py (pinned by examples/python-router/requirements.txt).
pub fn py_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = root().join("target").join("py-venv");
        if !venv.join("bin/componentize-py").exists() {
            run(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv",
            );
            run(
                Command::new(venv.join("bin/pip")).args([
                    "install",
                    "-q",
                    "-r",
                    root()
                        .join("examples/python-router/requirements.txt")
                        .to_str()
                        .unwrap(),
                ]),
                "pip install componentize-py",
            );
        }
        venv
    })
    .clone()
}

/// node_modules with jco, componentize-js and componentize-qjs, as locked by
/// the JS example.
pub fn node_modules() -> PathBuf {
    static MODULES: OnceLock<PathBuf> = OnceLock::new();
    MODULES
        .get_or_init(|| {
            let dir = root().join("examples/js-screenpop");
            if !dir.join("node_modules/.bin/jco").exists() {
                run(
                    Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund"])
                        .current_dir(&dir),
                    "npm ci (jco)",
                );
            }
            dir.join("node_modules")
        })
        .clone()
}

/// Build a Python component from `app_dir/app.py` for `world`.
pub fn build_python(app_dir: &Path, world: &str, out: &Path) {
    run(
        Command::new(py_venv().join("bin/componentize-py"))
            .arg("-d")
            .arg(root().join("wit"))
            .args(["-w", world, "componentize", "app", "-o"])
            .arg(out)
            .current_dir(app_dir),
        "componentize-py",
    );
}

/// Build a JavaScript component from `app_dir/app.js` for `world`.
pub fn build_js(app_dir: &Path, world: &str, out: &Path) {
    run(
        Command::new(node_modules().join(".bin/jco"))
            .arg("componentize")
            .arg(app_dir.join("app.js"))
            .arg("--wit")
            .arg(root().join("wit"))
            .args(["--world-name", world, "--disable", "all", "--out"])
            .arg(out),
        "jco componentize",
    );
}

/// Build a JavaScript component from `app_dir/app.js` for `world` with
/// QuickJS (componentize-qjs), as the `plugin new` templates do.
pub fn build_js_quickjs(app_dir: &Path, world: &str, out: &Path) {
    run(
        Command::new(node_modules().join(".bin/componentize-qjs"))
            .arg("--wit")
            .arg(root().join("wit"))
            .arg("--js")
            .arg(app_dir.join("app.js"))
            .args(["--world", world, "--sync", "-o"])
            .arg(out),
        "componentize-qjs",
    );
}

/// Run an example's own build script (what its README tells users to run).
pub fn build_example(name: &str) -> PathBuf {
    let dir = root().join("examples").join(name);
    // The scripts find the shared venv and node_modules prepared above.
    py_venv();
    node_modules();
    run(
        Command::new(dir.join("build.sh")).env("CTIHOST_PY_VENV", py_venv()),
        &format!("examples/{name}/build.sh"),
    );
    dir
}
