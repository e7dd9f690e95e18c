//! The venv's tools and the rendered overlays (the harness's `deploy` module, panicking on
//! failure as a test should).

use std::path::PathBuf;

use serde_json::Value;
use vpc_cni_integration::deploy;

pub use vpc_cni_integration::deploy::repo;

/// The Kubernetes release the objects are validated against.
pub const KUBERNETES_VERSION: &str = "1.37.0";

/// The overlays an operator applies.
pub const OVERLAYS: [&str; 2] = ["vpc", "overlay"];

/// A program of the project's venv.
pub fn venv_bin(name: &str) -> PathBuf {
    deploy::venv_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `program` with `args`, `stdin` on its standard input; its standard output, or a panic
/// with what it said.
pub fn run(program: PathBuf, args: &[&str], stdin: &[u8]) -> String {
    deploy::run_tool(&program, args, stdin).unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl kustomize deploy/overlays/<overlay>`: the YAML an operator applies.
pub fn render_yaml(overlay: &str) -> String {
    deploy::render_yaml(overlay).unwrap_or_else(|e| panic!("{e}"))
}

/// The objects of a YAML stream, as JSON.
pub fn yaml_objects(yaml: &str) -> Vec<Value> {
    deploy::yaml_objects(yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// The rendered objects of an overlay.
pub fn render(overlay: &str) -> Vec<Value> {
    deploy::render(overlay).unwrap_or_else(|e| panic!("{e}"))
}

/// The one object of `kind` named `name`.
pub fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    deploy::object(objects, kind, name).unwrap_or_else(|e| panic!("{e}"))
}

/// The one object of `kind` (whatever its name).
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    deploy::only(objects, kind).unwrap_or_else(|e| panic!("{e}"))
}

/// ipamd run with a ConfigMap's settings (and what Kubernetes adds: the downward API's node
/// name, the API's address) gets past every setting: settings are parsed and checked before
/// ipamd touches anything, and the first thing it then does is take its state directory,
/// made unusable here on purpose (a file), so the run stops there, naming it, with nothing
/// changed on this machine.
pub fn assert_ipamd_accepts(label: &str, data: &std::collections::BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("state");
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = std::process::Command::new(vpc_cni_testkit::bins::ipamd())
        .env_clear()
        .envs(data)
        .env("MY_NODE_NAME", "node-1")
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .env("IPAMD_STATE_DIR", &not_a_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{label}: {stderr}");
    assert!(
        stderr.contains(&format!("creating {}", not_a_dir.display())),
        "{label}: ipamd stopped before its state directory, on a setting:\n{stderr}"
    );
}
