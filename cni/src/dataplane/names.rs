//! Deterministic names and hardware addresses for a pod's veth pair.

use sha1::{Digest, Sha1};
use vpc_cni_proto::HOST_VETH_PREFIX;

/// Hex characters of the digest that follow the prefix: `vpc` + 11 = 14, under IFNAMSIZ - 1.
const HASH_CHARS: usize = 11;

/// Host-side veth name: `vpc` + the first 11 hex chars of sha1(`<namespace>.<pod>`), or of the
/// container id when the pod is unknown (a runtime that does not pass `K8S_POD_*` args).
///
/// The name must be derivable from the pod alone so that a re-ADD, a DEL without prevResult and
/// ipamd's veth-presence sweep all arrive at the same link.
#[must_use]
pub fn host_veth_name(
    pod_namespace: Option<&str>,
    pod_name: Option<&str>,
    container_id: &str,
) -> String {
    let digest = match (pod_namespace, pod_name) {
        (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => {
            Sha1::digest(format!("{ns}.{pod}").as_bytes())
        }
        _ => Sha1::digest(container_id.as_bytes()),
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut name = String::with_capacity(HOST_VETH_PREFIX.len() + HASH_CHARS);
    name.push_str(HOST_VETH_PREFIX);
    let nibbles = digest
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0x0f])
        .take(HASH_CHARS);
    for nibble in nibbles {
        name.push(char::from(HEX[usize::from(nibble)]));
    }
    name
}

/// Which end of the pair a MAC is for; part of the hash input so the two ends differ.
#[derive(Clone, Copy)]
pub(super) enum End {
    Host,
    Pod,
}

/// A locally administered unicast MAC derived from the host veth name.
///
/// Both ends get an explicit address because a kernel-chosen one is marked "random", and
/// udev's `MACAddressPolicy=persistent` rewrites random veth addresses on the host after we
/// have already pointed the pod's static neighbour entry at the old one. Uniqueness only
/// matters on the point-to-point link, and a deterministic address survives a re-ADD unchanged.
pub(super) fn veth_mac(host_veth: &str, end: End) -> [u8; 6] {
    let tag: &[u8] = match end {
        End::Host => b"host:",
        End::Pod => b"pod:",
    };
    let mut hasher = Sha1::new();
    hasher.update(tag);
    hasher.update(host_veth.as_bytes());
    let digest = hasher.finalize();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    // Locally administered (bit 1), unicast (bit 0 clear).
    mac[0] = (mac[0] | 0x02) & 0xfe;
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_name_is_deterministic_and_fits_ifnamsiz() {
        let a = host_veth_name(Some("default"), Some("web-0"), "abc");
        let b = host_veth_name(Some("default"), Some("web-0"), "other-container");
        assert_eq!(a, b);
        assert_eq!(a.len(), 14);
        assert!(a.starts_with("vpc"));
        assert!(a[3..].chars().all(|c| c.is_ascii_hexdigit()));
        // sha1("default.web-0") starts with these 11 hex chars.
        let expected = {
            let d = Sha1::digest(b"default.web-0");
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            format!("vpc{}", &hex[..11])
        };
        assert_eq!(a, expected);
    }

    #[test]
    fn host_veth_name_falls_back_to_container_id() {
        let a = host_veth_name(None, None, "c1");
        let b = host_veth_name(None, Some("web-0"), "c1");
        let c = host_veth_name(Some(""), Some(""), "c1");
        let d = host_veth_name(None, None, "c2");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.len(), 14);
        assert_ne!(a, host_veth_name(Some("default"), Some("web-0"), "c1"));
    }

    #[test]
    fn veth_macs_are_local_unicast_and_distinct_per_end() {
        let h = veth_mac("vpc0123456789a", End::Host);
        let p = veth_mac("vpc0123456789a", End::Pod);
        assert_ne!(h, p);
        for mac in [h, p] {
            assert_eq!(mac[0] & 0x01, 0, "unicast");
            assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
        }
        assert_eq!(h, veth_mac("vpc0123456789a", End::Host));
    }
}
