//! The venv's tools and the rendered overlays.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The Kubernetes release the objects are validated against.
pub const KUBERNETES_VERSION: &str = "1.37.0";

/// The overlays an operator applies.
pub const OVERLAYS: [&str; 2] = ["vpc", "overlay"];

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A program of the project's venv.
pub fn venv_bin(name: &str) -> PathBuf {
    let program = repo().join(".venv/bin").join(name);
    assert!(
        program.exists(),
        "{} is missing: `make test` installs it into the project's venv \
         (scripts/install-deps.sh)",
        program.display()
    );
    program
}

/// Runs `program` with `args`, `stdin` on its standard input; its standard output, or a panic
/// with what it said.
pub fn run(program: PathBuf, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `kubectl kustomize deploy/overlays/<overlay>`: the YAML an operator applies.
pub fn render_yaml(overlay: &str) -> String {
    let dir = repo().join("deploy/overlays").join(overlay);
    run(
        venv_bin("kubectl"),
        &["kustomize", dir.to_str().unwrap()],
        b"",
    )
}

/// The objects of a YAML stream, as JSON.
pub fn yaml_objects(yaml: &str) -> Vec<Value> {
    let json = run(
        venv_bin("python"),
        &[
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ],
        yaml.as_bytes(),
    );
    serde_json::from_str(&json).unwrap()
}

/// The rendered objects of an overlay.
pub fn render(overlay: &str) -> Vec<Value> {
    yaml_objects(&render_yaml(overlay))
}

/// The one object of `kind` named `name`.
pub fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name}, found {}", found.len());
    found[0]
}

/// The one object of `kind` (whatever its name).
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}, found {}", found.len());
    found[0]
}
