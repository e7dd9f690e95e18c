//! Paths of the workspace binaries under test.

use std::path::PathBuf;

/// The cargo target profile directory (`target/debug`) this test binary runs
/// from: tests live in `target/debug/deps`, the demo in `target/debug`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(PathBuf::from).unwrap_or(dir)
    } else {
        dir
    }
}

/// Path of a workspace binary, which must have been built (`make test` builds
/// them before the tests run).
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

#[must_use]
pub fn ipamd() -> PathBuf {
    binary("ipamd")
}

#[must_use]
pub fn plugin() -> PathBuf {
    binary("vpc-cni")
}
