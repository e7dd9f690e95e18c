//! Installing the plugin binary: mode, atomic replacement, no leftovers, and errors that name
//! the path. No root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use vpc_cni_testkit::files::entry_names;

use super::{install_plugin, place_atomically, PLUGIN_NAME};
use crate::error::IpamdError;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_plugin_is_copied_with_mode_0755_over_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("image-vpc-cni");
    fs::write(&source, b"#!new plugin\n").unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    // The old plugin, read-only as a runtime might leave it, and a dead install's temp file.
    let old = bin.join(PLUGIN_NAME);
    fs::write(&old, b"#!old plugin\n").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o500)).unwrap();
    fs::write(bin.join(".vpc-cni.tmp.1"), b"half").unwrap();
    fs::write(bin.join("portmap"), b"another plugin").unwrap();

    let installed = install_plugin(&source, &bin).unwrap();

    assert_eq!(installed, old);
    assert_eq!(fs::read(&installed).unwrap(), b"#!new plugin\n");
    assert_eq!(mode(&installed), 0o755);
    assert_eq!(
        entry_names(&bin),
        ["portmap", "vpc-cni"],
        "no temp file is left"
    );
}

#[test]
fn the_mode_does_not_depend_on_the_umask_or_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("10-vpc-cni.conflist");
    place_atomically(&dest, 0o644, |f| std::io::Write::write_all(f, b"{}")).unwrap();
    assert_eq!(mode(&dest), 0o644);
    place_atomically(&dest, 0o640, |f| std::io::Write::write_all(f, b"{ }")).unwrap();
    assert_eq!(mode(&dest), 0o640);
    assert_eq!(fs::read(&dest).unwrap(), b"{ }");
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("vpc-cni");
    fs::write(&dest, b"old").unwrap();
    let err = place_atomically(&dest, 0o755, |f| {
        std::io::Write::write_all(f, b"partial")?;
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    match err {
        IpamdError::Install { path, step, .. } => {
            assert_eq!(path, dest);
            assert_eq!(step, "writing the temp file");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(&dest).unwrap(), b"old");
    assert_eq!(entry_names(dir.path()), ["vpc-cni"]);
}

#[test]
fn a_missing_source_or_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-plugin");
    let err = install_plugin(&missing, dir.path()).unwrap_err();
    let text = crate::daemon::supervise::error_chain(&err);
    assert!(text.contains("no-such-plugin"), "{text}");
    assert!(!dir.path().join(PLUGIN_NAME).exists());

    let source = dir.path().join("plugin");
    fs::write(&source, b"x").unwrap();
    let err = install_plugin(&source, &dir.path().join("no-such-dir")).unwrap_err();
    let text = crate::daemon::supervise::error_chain(&err);
    assert!(
        text.contains("no-such-dir") && text.contains("creating the temp file"),
        "{text}"
    );
}
