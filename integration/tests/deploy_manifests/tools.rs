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
