//! Properties of the checkpoint reader on any file: `load` never panics and answers the
//! data, or `CheckpointCorrupt`/`CheckpointVersion` naming the file; whatever it accepts,
//! `restore` takes without panicking and without two holders of one address; and an
//! unreadable file is set aside byte for byte, never lost.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use serde_json::Value;
use vpc_cni_proto::Mode;
use vpc_cni_testkit::prop::json_edit;
use vpc_cni_testkit::prop::{config, gen, scratch_dir};

use super::datastore;
use crate::error::IpamdError;
use crate::store::{
    Assignment, AttachmentKey, Checkpoint, CheckpointData, CoolingAddress, FileCheckpoint,
    PodIdentity, CHECKPOINT_VERSION,
};

/// Addresses near the test pool (10.1.0.1..), so restores meet clashes and addresses
/// outside the pool alike.
fn address() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        4 => (0u32..24).prop_map(|n| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + n)),
        1 => any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn assignment() -> impl Strategy<Value = Assignment> {
    (
        ("[a-f0-9]{1,12}", prop::sample::select(vec!["eth0", "eth1"])),
        ("[a-z0-9-]{0,12}", "[a-z0-9-]{0,12}"),
        address(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |((id, ifname), (ns, name), ip, table, device, at)| Assignment {
                key: AttachmentKey {
                    container_id: id,
                    ifname: ifname.to_owned(),
                },
                pod: PodIdentity {
                    network_name: "vpc-cni".into(),
                    netns: format!("/var/run/netns/{name}"),
                    pod_namespace: ns,
                    pod_name: name,
                    pod_uid: String::new(),
                    host_veth: "vpc0123456789a".into(),
                },
                ip,
                route_table: table,
                device_number: device,
                assigned_at_ms: at,
            },
        )
}

/// A checkpoint as ipamd writes it, with duplicate keys and addresses left possible: a
/// hand-edited or damaged file may hold them.
fn checkpoint() -> impl Strategy<Value = CheckpointData> {
    (
        prop::sample::select(vec![Mode::Vpc, Mode::Overlay]),
        prop::collection::vec(assignment(), 0..12),
        prop::collection::vec(
            (address(), any::<u64>()).prop_map(|(ip, until_ms)| CoolingAddress { ip, until_ms }),
            0..6,
        ),
    )
        .prop_map(|(mode, assignments, cooling)| CheckpointData {
            version: CHECKPOINT_VERSION.to_owned(),
            mode,
            assignments,
            cooling,
        })
}

fn pretty(data: &CheckpointData) -> Vec<u8> {
    serde_json::to_vec_pretty(data).unwrap()
}

/// Writes `bytes` as a checkpoint and loads it, checking the answer's kind and that it
/// names the file.
fn load(bytes: &[u8]) -> Result<Option<CheckpointData>, TestCaseError> {
    let dir = scratch_dir();
    let path = dir.path().join("ipam.json");
    fs::write(&path, bytes).unwrap();
    match FileCheckpoint::new(&path).load() {
        Ok(data) => {
            prop_assert!(data.is_some(), "a present file loaded as absent");
            Ok(data)
        }
        Err(
            err @ (IpamdError::CheckpointCorrupt { .. } | IpamdError::CheckpointVersion { .. }),
        ) => {
            let msg = err.to_string();
            prop_assert!(msg.contains(&path.display().to_string()), "{}", msg);
            Ok(None)
        }
        Err(other) => Err(TestCaseError::fail(format!("untyped answer {other:?}"))),
    }
}

/// Restores `data` into an 8-address pool: no panic, every assignment restored or
/// reported as a conflict, and no key or address held twice.
fn restore_holds_each_address_once(data: CheckpointData) -> Result<(), TestCaseError> {
    let total = data.assignments.len();
    let mut ds = datastore(8, 5_000);
    let report = ds.restore(data, 1_000);
    prop_assert_eq!(report.restored + report.dropped_conflicts.len(), total);
    let held: Vec<&Assignment> = ds.assignments().collect();
    prop_assert_eq!(held.len(), report.restored);
    let ips: BTreeSet<Ipv4Addr> = held.iter().map(|a| a.ip).collect();
    let keys: BTreeSet<&AttachmentKey> = held.iter().map(|a| &a.key).collect();
    prop_assert_eq!(ips.len(), held.len(), "an address held twice");
    prop_assert_eq!(keys.len(), held.len(), "a key held twice");
    // The restored state writes out and reads back as itself.
    let snapshot = ds.snapshot();
    let reread = load(&pretty(&snapshot))?;
    prop_assert_eq!(reread, Some(snapshot));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes, and written checkpoints with bytes flipped, inserted, removed, cut off
    /// (a torn write) or repeated.
    #[test]
    fn prop_checkpoint_any_bytes_load_or_name_the_file(
        bytes in gen::bytes_around(checkpoint().prop_map(|d| pretty(&d)).boxed()),
    ) {
        if let Some(data) = load(&bytes)? {
            restore_holds_each_address_once(data)?;
        }
    }

    /// Written checkpoints with any node (a field, an assignment, an address, the version)
    /// removed or replaced by any value, huge numbers and deep nesting included.
    #[test]
    fn prop_checkpoint_edited_fields_load_or_name_the_file(
        data in checkpoint(),
        edits in json_edit::edits(3),
    ) {
        let doc: Value = serde_json::to_value(&data).unwrap();
        let bytes = json_edit::apply(doc, &edits);
        if let Some(loaded) = load(&bytes)? {
            prop_assert_eq!(&loaded.version, CHECKPOINT_VERSION);
            restore_holds_each_address_once(loaded)?;
        }
    }

    /// Every checkpoint ipamd can write loads back as itself.
    #[test]
    fn prop_checkpoint_round_trips(data in checkpoint()) {
        let dir = scratch_dir();
        let cp = FileCheckpoint::new(dir.path().join("ipam.json"));
        cp.store(&data).unwrap();
        prop_assert_eq!(cp.load().unwrap(), Some(data.clone()));
        restore_holds_each_address_once(data)?;
    }

    /// At start, a file `load` refuses is moved aside with its bytes intact and the start
    /// goes on empty; a file it accepts stays where it is.
    #[test]
    fn prop_checkpoint_unreadable_file_is_set_aside_intact(
        bytes in gen::bytes_around(checkpoint().prop_map(|d| pretty(&d)).boxed()),
        now_ms in any::<u64>(),
    ) {
        let dir = scratch_dir();
        let path = dir.path().join("ipam.json");
        fs::write(&path, &bytes).unwrap();
        let state = FileCheckpoint::new(&path).load_or_set_aside(now_ms).unwrap();
        match (&state.data, &state.set_aside) {
            (Some(_), None) => prop_assert_eq!(fs::read(&path).unwrap(), bytes),
            (None, Some((aside, reason))) => {
                prop_assert!(!path.exists());
                prop_assert_eq!(fs::read(aside).unwrap(), bytes);
                let suffix = format!(".unreadable.{now_ms}");
                prop_assert!(aside.display().to_string().ends_with(&suffix));
                prop_assert!(reason.to_string().contains(&path.display().to_string()));
            }
            other => prop_assert!(false, "unexpected start state {:?}", other),
        }
    }
}
