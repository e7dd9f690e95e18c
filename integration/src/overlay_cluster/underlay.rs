//! The plain L2 underlay of an overlay cluster: one switch namespace holding a
//! bridge, an "outside" host on it standing for the datacenter beyond the
//! nodes, and a veth from the bridge into each node. No IMDS anywhere, so an
//! ipamd in `auto` mode must choose overlay on its own.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::unique_name;

/// The underlay subnet; node `n` (1-based) sits at `.(10 + n)`.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// The outside host and the nodes' default gateway.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 1);
/// The range every node's pod CIDR comes from (`10.244.<n>.0/24`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The bridge inside the switch namespace.
const BRIDGE: &str = "br0";

/// Underlay address of node `number` (1-based).
#[must_use]
pub fn underlay_ip(number: u8) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, 0, 10 + number)
}

/// Pod CIDR of node `number` (1-based).
#[must_use]
pub fn pod_cidr(number: u8) -> String {
    format!("10.244.{number}.0/24")
}

/// The switch and the outside host. Dropping it deletes both namespaces; the
/// nodes' veths into the bridge go with whichever end goes first.
pub struct Underlay {
    pub mtu: u32,
    // The outside host goes before the switch it hangs on.
    outside: Netns,
    switch: Netns,
}

impl Underlay {
    /// The switch with its bridge up and the outside host at [`OUTSIDE_IP`].
    /// The outside host gets no route beyond the underlay subnet: pod traffic
    /// reaching it with a pod source address could never be answered, which is
    /// what shows that nodes SNAT.
    pub fn new(prefix: &str, mtu: u32) -> io::Result<Self> {
        let switch = Netns::try_new(&unique_name(&format!("{prefix}sw")))?;
        switch.try_ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        switch.try_ip(&["link", "set", BRIDGE, "up"])?;
        let outside = Netns::try_new(&unique_name(&format!("{prefix}out")))?;
        let underlay = Self {
            mtu,
            outside,
            switch,
        };
        underlay.plug(&underlay.outside, "pout", OUTSIDE_IP)?;
        Ok(underlay)
    }

    #[must_use]
    pub fn outside(&self) -> &Netns {
        &self.outside
    }

    #[must_use]
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Wires a node namespace: `eth0` at `ip`/24 into the bridge, default
    /// route via the outside host (the way out of a datacenter rack).
    pub fn attach_node(&self, node: &Netns, port: &str, ip: Ipv4Addr) -> io::Result<()> {
        self.plug(node, port, ip)?;
        node.try_ip(&["route", "add", "default", "via", &OUTSIDE_IP.to_string()])?;
        Ok(())
    }

    /// A veth pair made from inside the switch namespace with its far end
    /// placed straight into `ns` as `eth0`: nothing passes through the
    /// machine's own namespace.
    fn plug(&self, ns: &Netns, port: &str, ip: Ipv4Addr) -> io::Result<()> {
        let mtu = self.mtu.to_string();
        self.switch.try_ip(&[
            "link",
            "add",
            port,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "mtu",
            &mtu,
            "netns",
            ns.name(),
        ])?;
        self.switch
            .try_ip(&["link", "set", port, "master", BRIDGE, "up"])?;
        ns.try_ip(&[
            "addr",
            "add",
            &format!("{ip}/{UNDERLAY_PREFIX_LEN}"),
            "dev",
            "eth0",
        ])?;
        ns.try_ip(&["link", "set", "eth0", "up"])?;
        Ok(())
    }
}

/// One entry of the peers file.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    pub name: String,
    pub underlay_ip: Ipv4Addr,
    pub pod_cidr: String,
}

/// Writes the peers file as ipamd reads it, atomically (temp file, then
/// rename), so a poll never sees half a file.
pub fn write_peers_file(path: &Path, peers: &[PeerEntry]) -> io::Result<()> {
    let entries: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "underlayIP": p.underlay_ip.to_string(),
                "podCIDR": p.pod_cidr,
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&serde_json::json!({ "peers": entries }))
        .map_err(io::Error::other)?;
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)
}
