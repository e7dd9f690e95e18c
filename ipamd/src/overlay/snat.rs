//! Overlay mode's content of our nftables table, `ip vpc-cni`: pod traffic to anywhere outside
//! the cluster's pod CIDRs is masqueraded to the node's address, because nothing outside the
//! overlay has a route back to a pod CIDR.

use nftables::schema::{NfListObject, Nftables};
use vpc_cni_proto::net::{normalize, Ipv4Cidr};

use crate::kernel::nft::{add_pod_snat, cidr_set, replace_table, PodSnat};

/// Destinations pods reach with their own address: every pod CIDR of the cluster.
const CLUSTER_SET: &str = "cluster";

/// What the table expresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySnat {
    /// Sorted, without CIDRs another one covers.
    pub cluster: Vec<Ipv4Cidr>,
}

impl OverlaySnat {
    #[must_use]
    pub fn new(cluster: impl IntoIterator<Item = Ipv4Cidr>) -> Self {
        Self {
            cluster: normalize(cluster),
        }
    }

    /// The transaction that makes the table exactly this.
    #[must_use]
    pub fn replace_batch(&self) -> Nftables<'static> {
        replace_table(|batch| {
            batch.add(NfListObject::Set(Box::new(cidr_set(
                CLUSTER_SET,
                &self.cluster,
            ))));
            add_pod_snat(batch, CLUSTER_SET, PodSnat::Masquerade);
        })
    }
}
