//! The deployment as an operator renders it: `kubectl kustomize deploy/overlays/<overlay>`
//! with the project venv's kubectl, parsed into JSON objects. Shared by the manifest checks
//! and the kubelet-path test, which runs what the rendered DaemonSet says.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The repository's root.
#[must_use]
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A program of the project's venv; an error naming the install step when it is missing.
pub fn venv_bin(name: &str) -> io::Result<PathBuf> {
    let program = repo().join(".venv/bin").join(name);
    if program.exists() {
        Ok(program)
    } else {
        Err(io::Error::other(format!(
            "{} is missing: `make test` installs it into the project's venv \
             (scripts/install-deps.sh)",
            program.display()
        )))
    }
}

/// Runs `program` with `args` and `stdin` on its standard input; its standard output, or an
/// error with what it said on both.
pub fn run_tool(program: &Path, args: &[&str], stdin: &[u8]) -> io::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::other(format!("running {}: {e}", program.display())))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin)?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(io::Error::other(format!(
            "{} {args:?} failed ({}):\n{stdout}\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// `kubectl kustomize deploy/overlays/<overlay>`: the YAML an operator applies.
pub fn render_yaml(overlay: &str) -> io::Result<String> {
    let dir = repo().join("deploy/overlays").join(overlay);
    run_tool(
        &venv_bin("kubectl")?,
        &["kustomize", &dir.display().to_string()],
        b"",
    )
}

/// The objects of a YAML stream, as JSON.
pub fn yaml_objects(yaml: &str) -> io::Result<Vec<Value>> {
    let json = run_tool(
        &venv_bin("python")?,
        &[
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ],
        yaml.as_bytes(),
    )?;
    serde_json::from_str(&json).map_err(|e| io::Error::other(format!("parsing the objects: {e}")))
}

/// The rendered objects of an overlay.
pub fn render(overlay: &str) -> io::Result<Vec<Value>> {
    yaml_objects(&render_yaml(overlay)?)
}

/// The one object of `kind` named `name` among `objects`.
pub fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> io::Result<&'a Value> {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => Err(io::Error::other(format!(
            "expected one {kind} {name}, found {}",
            found.len()
        ))),
    }
}

/// The one object of `kind` (whatever its name).
pub fn only<'a>(objects: &'a [Value], kind: &str) -> io::Result<&'a Value> {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => Err(io::Error::other(format!(
            "expected one {kind}, found {}",
            found.len()
        ))),
    }
}
