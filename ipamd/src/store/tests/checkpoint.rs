use std::fs;

use vpc_cni_proto::Mode;
use vpc_cni_testkit::files::entry_names;

use super::{datastore, ip, key, pod};
use crate::error::IpamdError;
use crate::store::{
    AddressState, Checkpoint, CheckpointData, FileCheckpoint, MemoryCheckpoint, CHECKPOINT_VERSION,
};

fn sample() -> CheckpointData {
    let mut ds = datastore(8, 5_000);
    for i in 1..=3 {
        ds.assign(key(i), pod(i), 1_000).unwrap();
    }
    ds.release(&key(2), 2_000).unwrap();
    ds.snapshot()
}

#[test]
fn missing_file_loads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let cp = FileCheckpoint::new(dir.path().join("ipam.json"));
    assert!(cp.load().unwrap().is_none());
}

#[test]
fn file_round_trip_restores_mode_assignments_and_cooling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    let data = sample();
    FileCheckpoint::new(&path).store(&data).unwrap();

    // A new process: fresh checkpoint handle, fresh datastore.
    let loaded = FileCheckpoint::new(&path).load().unwrap().unwrap();
    assert_eq!(loaded, data);
    let mut ds = datastore(8, 5_000);
    let report = ds.restore(loaded, 3_000);
    assert_eq!(report.restored, 2);
    assert_eq!(report.cooling_restored, 1);
    assert_eq!(ds.mode(), Mode::Overlay);
    assert_eq!(ds.get(&key(3)).unwrap().pod, pod(3));
    assert_eq!(
        ds.address_state(ip(2), 3_000),
        Some(AddressState::Cooling { until_ms: 7_000 })
    );
    assert_eq!(ds.snapshot(), data);
}

#[test]
fn file_uses_camel_case_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    FileCheckpoint::new(&path).store(&sample()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["version"], CHECKPOINT_VERSION);
    assert_eq!(v["mode"], "overlay");
    let a = &v["assignments"][0];
    assert_eq!(a["key"]["containerId"], "container-00001");
    assert_eq!(a["pod"]["podNamespace"], "default");
    assert_eq!(a["pod"]["hostVeth"], pod(1).host_veth);
    assert_eq!(a["ip"], "10.1.0.1");
    assert_eq!(a["assignedAtMs"], 1_000);
    assert!(a.get("routeTable").is_some() && a.get("deviceNumber").is_some());
    assert_eq!(v["cooling"][0]["untilMs"], 7_000);
}

#[test]
fn a_checkpoint_an_earlier_ipamd_wrote_still_loads() {
    // Written by ipamd before the mode became a type: the mode is its name, as now.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    for (name, mode) in [("vpc", Mode::Vpc), ("overlay", Mode::Overlay)] {
        let old = format!(
            r#"{{"version":"{CHECKPOINT_VERSION}","mode":"{name}","assignments":[{{
                "key":{{"containerId":"c1","ifname":"eth0"}},
                "pod":{{"networkName":"vpc-cni","netns":"/proc/1/ns/net","podNamespace":"default",
                        "podName":"p1","podUid":"u1","hostVeth":"vpc0123456789a"}},
                "ip":"10.1.0.7","routeTable":2,"deviceNumber":1,"assignedAtMs":5}}],
                "cooling":[{{"ip":"10.1.0.8","untilMs":9}}]}}"#
        );
        fs::write(&path, old).unwrap();
        let loaded = FileCheckpoint::new(&path).load().unwrap().unwrap();
        assert_eq!(loaded.mode, mode);
        assert_eq!(loaded.assignments[0].ip, ip(7));
        assert_eq!(loaded.assignments[0].route_table, 2);
        assert_eq!(loaded.cooling[0].until_ms, 9);
    }
    // A mode no ipamd of this format ever ran in is a damaged file, named as such.
    fs::write(
        &path,
        format!(r#"{{"version":"{CHECKPOINT_VERSION}","mode":"local","assignments":[]}}"#),
    )
    .unwrap();
    let err = FileCheckpoint::new(&path).load().unwrap_err();
    assert!(
        matches!(&err, IpamdError::CheckpointCorrupt { .. }),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("local"), "{err:?}");
}

#[test]
fn other_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    // The AWS VPC CNI's own format: a drop-in must not misread it.
    fs::write(&path, r#"{"version":"vpc-cni-ipam/1","allocations":[]}"#).unwrap();
    let err = FileCheckpoint::new(&path).load().unwrap_err();
    match &err {
        IpamdError::CheckpointVersion {
            path: p,
            found,
            expected,
        } => {
            assert_eq!(p, &path);
            assert_eq!(found, "vpc-cni-ipam/1");
            assert_eq!(expected, CHECKPOINT_VERSION);
        }
        other => panic!("expected CheckpointVersion, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("vpc-cni-ipam/1"), "{msg}");
}

#[test]
fn corrupt_file_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    let mut valid = serde_json::to_string(&sample()).unwrap();
    valid.truncate(valid.len() / 2);
    for contents in ["", "not json", r#"{"mode":"vpc"}"#, valid.as_str()] {
        fs::write(&path, contents).unwrap();
        let err = FileCheckpoint::new(&path).load().unwrap_err();
        assert!(
            matches!(&err, IpamdError::CheckpointCorrupt { path: p, .. } if p == &path),
            "{contents:?}: {err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}

#[test]
fn unreadable_file_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: reading fails with something other than NotFound.
    let path = dir.path().join("ipam.json");
    fs::create_dir(&path).unwrap();
    let err = FileCheckpoint::new(&path).load().unwrap_err();
    assert!(
        matches!(&err, IpamdError::CheckpointRead { path: p, .. } if p == &path),
        "{err:?}"
    );
}

#[test]
fn stores_replace_the_file_and_leave_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    let cp = FileCheckpoint::new(&path);
    let mut ds = datastore(64, 0);
    for i in 0..50 {
        ds.assign(key(i), pod(i), 0).unwrap();
        cp.store(&ds.snapshot()).unwrap();
        assert_eq!(cp.load().unwrap().unwrap(), ds.snapshot());
    }
    assert_eq!(entry_names(dir.path()), vec!["ipam.json".to_owned()]);
}

#[test]
fn failed_store_removes_its_temp_file_and_names_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    // A non-empty directory at the target path makes the rename fail.
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), "x").unwrap();
    let err = FileCheckpoint::new(&path).store(&sample()).unwrap_err();
    match &err {
        IpamdError::CheckpointWrite { path: p, step, .. } => {
            assert_eq!(p, &path);
            assert_eq!(*step, "renaming the temp file");
        }
        other => panic!("expected CheckpointWrite, got {other:?}"),
    }
    assert_eq!(entry_names(dir.path()), vec!["ipam.json".to_owned()]);
}

#[test]
fn stale_temp_files_are_removed_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    fs::write(dir.path().join(".ipam.json.tmp.1.0"), "half").unwrap();
    fs::write(dir.path().join(".ipam.json.tmp.4242.7"), "half").unwrap();
    fs::write(dir.path().join("other.json"), "{}").unwrap();
    let cp = FileCheckpoint::new(&path);
    // Loading alone must not touch them: a CLI may load beside a writing daemon.
    assert!(cp.load().unwrap().is_none());
    assert_eq!(entry_names(dir.path()).len(), 3);
    assert_eq!(cp.remove_stale_temp_files(), 2);
    assert_eq!(entry_names(dir.path()), vec!["other.json".to_owned()]);
}

#[test]
fn store_overwrites_a_leftover_temp_file_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    // What a dead predecessor with our pid would have left for our first write.
    let leftover = dir
        .path()
        .join(format!(".ipam.json.tmp.{}.0", std::process::id()));
    fs::write(&leftover, "garbage that is longer than nothing").unwrap();
    let cp = FileCheckpoint::new(&path);
    cp.store(&sample()).unwrap();
    assert_eq!(cp.load().unwrap().unwrap(), sample());
    assert_eq!(entry_names(dir.path()), vec!["ipam.json".to_owned()]);
}

#[test]
fn memory_checkpoint_fails_on_request() {
    let cp = MemoryCheckpoint::new();
    assert!(cp.load().unwrap().is_none());
    cp.fail_next_stores(2);
    assert!(cp.store(&sample()).is_err());
    assert!(cp.store(&sample()).is_err());
    assert!(cp.load().unwrap().is_none());
    cp.store(&sample()).unwrap();
    assert_eq!(cp.load().unwrap().unwrap(), sample());
    assert_eq!(cp.store_count(), 1);
}

/// Regression: a corrupt checkpoint made ipamd exit at every start (a crash loop). At start
/// it is set aside beside the original name, with the reason, and the start goes on.
#[test]
fn unreadable_files_are_set_aside_at_start() {
    let cases: [(&str, &[u8]); 4] = [
        ("garbage", b"\x00\xffnot json at all"),
        (
            "truncated",
            br#"{"version":"vpc-cni/ipam/v1","mode":"vpc","assignm"#,
        ),
        (
            "older format",
            br#"{"version":"vpc-cni/ipam/v0","entries":[]}"#,
        ),
        ("empty", b""),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.json");
        fs::write(&path, bytes).unwrap();
        let state = FileCheckpoint::new(&path).load_or_set_aside(1_234).unwrap();
        assert!(state.data.is_none(), "{what}");
        let (aside, reason) = state.set_aside.expect(what);
        assert_eq!(
            aside,
            dir.path().join("ipam.json.unreadable.1234"),
            "{what}"
        );
        assert_eq!(fs::read(&aside).unwrap(), bytes, "{what}: kept as it was");
        assert!(
            matches!(
                reason,
                IpamdError::CheckpointCorrupt { .. } | IpamdError::CheckpointVersion { .. }
            ),
            "{what}: {reason}"
        );
        assert!(!path.exists(), "{what}");
    }
}

#[test]
fn a_readable_file_is_loaded_not_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    FileCheckpoint::new(&path).store(&sample()).unwrap();
    let state = FileCheckpoint::new(&path).load_or_set_aside(1).unwrap();
    assert_eq!(state.data, Some(sample()));
    assert!(state.set_aside.is_none());
    let missing = FileCheckpoint::new(dir.path().join("none.json"))
        .load_or_set_aside(1)
        .unwrap();
    assert!(missing.data.is_none() && missing.set_aside.is_none());
}

/// Regression: the checkpoint (pod names, namespaces, addresses) was world-readable.
#[test]
fn the_checkpoint_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    FileCheckpoint::new(&path).store(&sample()).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
}
