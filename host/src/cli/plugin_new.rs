//! `ctihost plugin new`: a ready-to-build plugin project from templates
//! embedded in the binary (source, manifest, sample input, build and test
//! scripts, and the WIT contract), so a bank's developer needs nothing else
//! from this repository.

use std::path::{Path, PathBuf};

/// (path in the project, contents)
type File = (String, String);

const WIT: [(&str, &str); 3] = [
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

const SDK: [(&str, &str); 4] = [
    ("lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("bindings.rs", include_str!("../../../sdk/src/bindings.rs")),
    ("helpers.rs", include_str!("../../../sdk/src/helpers.rs")),
    ("host.rs", include_str!("../../../sdk/src/host.rs")),
];

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("../../templates/", $path))
    };
}

struct KindInfo {
    world: &'static str,
    hook: &'static str,
    /// What the template's test finds in the hook's answer to the sample input.
    expect: &'static str,
    deadline_ms: u32,
    extra_manifest: &'static str,
}

fn kind_info(kind: &str) -> Option<KindInfo> {
    Some(match kind {
        "router" => KindInfo {
            world: "router",
            hook: "route",
            expect: "\"queue\": \"general\"",
            deadline_ms: 200,
            extra_manifest: "\n[config]\ndefault_queue = \"general\"\n",
        },
        "screen-pop" => KindInfo {
            world: "screen-pop",
            hook: "build-card",
            expect: "\"title\": \"Caller ",
            deadline_ms: 1500,
            extra_manifest: "",
        },
        // Its test runs with no CRM listening: the lookup must fail cleanly.
        "crm-connector" => KindInfo {
            world: "crm-connector",
            hook: "lookup",
            expect: "Unavailable",
            deadline_ms: 1000,
            extra_manifest: "\n[capabilities]\nhttp_hosts = [\"127.0.0.1:8090\"]\nhttp_timeout_ms = 800\n\n[config]\nbase_url = \"http://127.0.0.1:8090\"\n",
        },
        "recording-policy" => KindInfo {
            world: "recording-policy",
            hook: "on-connect",
            expect: "\"retention_days\": 90",
            deadline_ms: 100,
            extra_manifest: "",
        },
        _ => return None,
    })
}

fn source(lang: &str, kind: &str) -> Option<&'static str> {
    Some(match (lang, kind) {
        ("rust", "router") => template!("rust/router.rs"),
        ("rust", "screen-pop") => template!("rust/screen-pop.rs"),
        ("rust", "crm-connector") => template!("rust/crm-connector.rs"),
        ("rust", "recording-policy") => template!("rust/recording-policy.rs"),
        ("python", "router") => template!("python/router.py"),
        ("python", "screen-pop") => template!("python/screen-pop.py"),
        ("python", "crm-connector") => template!("python/crm-connector.py"),
        ("python", "recording-policy") => template!("python/recording-policy.py"),
        ("js", "router") => template!("js/router.js"),
        ("js", "screen-pop") => template!("js/screen-pop.js"),
        ("js", "crm-connector") => template!("js/crm-connector.js"),
        ("js", "recording-policy") => template!("js/recording-policy.js"),
        _ => return None,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64
}

/// The files of a new project.
fn project(name: &str, kind: &str, lang: &str, sample: &str) -> anyhow::Result<Vec<File>> {
    if !valid_name(name) {
        return Err(anyhow::anyhow!(
            "plugin name {name:?}: use lowercase letters, digits and '-', starting with a letter"
        ));
    }
    let info = kind_info(kind).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown kind {kind:?}: router, screen-pop, crm-connector or recording-policy"
        )
    })?;
    let code = source(lang, kind)
        .ok_or_else(|| anyhow::anyhow!("unknown language {lang:?}: rust, python or js"))?;
    let krate = name.replace('-', "_");
    let file = format!("{krate}.wasm");
    let (lang_name, memory_mb) = match lang {
        "rust" => ("Rust", 16),
        "python" => ("Python", 64),
        _ => ("JavaScript", 64),
    };
    // An interpreter's fresh instance costs 0.1-1 ms (its heap and bindings
    // set up again), ten times its decision; a Rust one costs ~15 us.
    let reuse = match lang {
        "rust" => "",
        _ => {
            "# A warm instance serves up to 100 calls (0 = a fresh one per call).\ninstance_reuse = 100\n"
        }
    };
    // test.sh finds the binary that made the project without PATH set up.
    let ctihost = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .map(|p| p.display().to_string().replace('\'', "'\\''"))
        .unwrap_or_else(|| "ctihost".to_owned());
    let fill = |t: &str| {
        t.replace("{{ctihost}}", &ctihost)
            .replace("{{name}}", name)
            .replace("{{crate}}", &krate)
            .replace("{{file}}", &file)
            .replace("{{kind}}", kind)
            .replace("{{world}}", info.world)
            .replace("{{hook}}", info.hook)
            .replace("{{expect}}", info.expect)
            .replace("{{lang}}", lang_name)
            .replace("{{memory_mb}}", &memory_mb.to_string())
            .replace("{{deadline_ms}}", &info.deadline_ms.to_string())
            .replace("{{reuse}}", reuse)
            .replace("{{extra_manifest}}", info.extra_manifest)
    };
    let mut files: Vec<File> = vec![
        ("plugin.toml".into(), fill(template!("common/plugin.toml"))),
        ("test.sh".into(), fill(template!("common/test.sh"))),
        ("README.md".into(), fill(template!("common/README.md"))),
        ("sample-input.json".into(), format!("{sample}\n")),
    ];
    for (f, text) in WIT {
        files.push((format!("wit/{f}"), text.to_owned()));
    }
    match lang {
        "rust" => {
            files.push(("Cargo.toml".into(), fill(template!("rust/Cargo.toml"))));
            files.push(("build.sh".into(), fill(template!("rust/build.sh"))));
            files.push(("src/lib.rs".into(), code.to_owned()));
            files.push((".gitignore".into(), format!("/target\n/{file}\n")));
            files.push((
                "vendor/ctihost-sdk/Cargo.toml".into(),
                template!("rust/sdk-Cargo.toml").to_owned(),
            ));
            for (f, text) in SDK {
                // The vendored SDK reads the project's own copy of the contract.
                let text = text.replace("path: \"../wit\"", "path: \"../../wit\"");
                files.push((format!("vendor/ctihost-sdk/src/{f}"), text));
            }
        }
        "python" => {
            files.push(("app.py".into(), code.to_owned()));
            files.push(("build.sh".into(), fill(template!("python/build.sh"))));
            files.push((
                "requirements.txt".into(),
                template!("python/requirements.txt").to_owned(),
            ));
            files.push((".gitignore".into(), format!("/.venv\n/{file}\n")));
        }
        _ => {
            files.push(("app.js".into(), code.to_owned()));
            files.push(("build.sh".into(), fill(template!("js/build.sh"))));
            files.push(("package.json".into(), fill(template!("js/package.json"))));
            files.push((".gitignore".into(), format!("/node_modules\n/{file}\n")));
        }
    }
    Ok(files)
}

/// Write a new project into `dir` (which must not exist or be empty).
pub fn create(dir: &Path, name: &str, kind: &str, lang: &str) -> anyhow::Result<Vec<PathBuf>> {
    let hook = kind_info(kind).map(|k| k.hook).unwrap_or("route");
    let sample = super::plugin_offline::sample_input_value(hook)
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| "{}".into());
    let files = project(name, kind, lang, &sample)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(anyhow::anyhow!(
            "{} exists and is not empty; choose another directory",
            dir.display()
        ));
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if rel.ends_with(".sh") {
            make_executable(&path)?;
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_language_has_a_template_with_no_placeholder_left() {
        for kind in ["router", "screen-pop", "crm-connector", "recording-policy"] {
            for lang in ["rust", "python", "js"] {
                let files = project("my-plugin", kind, lang, "{}").unwrap();
                for (path, text) in &files {
                    assert!(
                        !text.contains("{{"),
                        "{kind}/{lang}: {path} keeps a placeholder"
                    );
                }
                assert!(files.iter().any(|(p, _)| p == "build.sh"));
            }
        }
    }

    #[test]
    fn bad_names_kinds_and_languages_are_refused_with_the_choices() {
        assert!(
            project("My Plugin", "router", "rust", "{}")
                .unwrap_err()
                .to_string()
                .contains("lowercase")
        );
        assert!(
            project("p", "dialer", "rust", "{}")
                .unwrap_err()
                .to_string()
                .contains("screen-pop")
        );
        assert!(
            project("p", "router", "cobol", "{}")
                .unwrap_err()
                .to_string()
                .contains("python")
        );
    }
}
