//! The VPC fabric: the network the simulated EC2 instances live on, built
//! from network namespaces and kept in step with `cloud::sim`.
//!
//! Each running instance is a namespace whose ENIs are veths named
//! `eth<device-index>` (with the ENI's MAC); their other ends sit in one
//! fabric namespace that plays the VPC router: it holds every subnet's
//! gateway address on every ENI link, answers ARP for the VPC by proxy,
//! routes each assigned address and prefix to its ENI, drops packets whose
//! source the sending ENI does not own (EC2's source/dest check), serves
//! IMDS and the EC2 endpoint from its own addresses, and leads to an
//! "internet" namespace that only instances' primary addresses may use. An
//! on-prem site may join it through a link of its own (see `site`).
//! Nothing routes to the machine's real interfaces: the fabric has no link
//! out of the namespaces it made, and it drops them all on drop.

mod apply;
pub mod nft;
mod services;
mod site;
pub mod spec;
mod sync;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};

use vpc_cni_cloud::sim::FabricView;

pub use services::{ec2_url, imds_url, FabricServices};
pub use site::{SiteSpec, SITE_LINK, SITE_LINK_SITE, SITE_LINK_VPC, SITE_NAT_ADDR};
pub use spec::{parse_net, FabricSpec, NodeSpec, PortSpec};
pub use sync::Follower;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::unique_name;

/// Where each node finds IMDS, as on EC2.
pub const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// Where each node finds the EC2 API. Link-local, so it can never collide
/// with an address the model hands out in any VPC CIDR; nodes reach it
/// through their default route, like an interface endpoint.
pub const EC2_ENDPOINT: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 250);
/// A host "on the internet" (documentation range).
pub const INTERNET_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// EC2's jumbo-frame MTU inside a VPC.
pub const MTU: u32 = 9001;
/// The gateway plain hosts (see [`Fabric::attach_host`]) route through.
pub const HOST_GW: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

/// Next hop of every route to an ENI, with a permanent neighbour entry per
/// ENI link holding the ENI's MAC: like the VPC, the fabric delivers to the
/// ENI without ARPing for the destination, which a node would not answer
/// for its pods' addresses.
const ENI_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 2);

/// The fabric's end of the internet link, and the uplink's addresses
/// (documentation range, a /30 of its own).
const INTERNET_LINK: &str = "inet0";
const UPLINK_FABRIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const UPLINK_INTERNET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// Runs `f` on a fresh thread inside `ns`; sockets it opens stay in `ns`,
/// so a test can connect from a node or listen in a host.
pub fn in_namespace<T, F>(ns: &Netns, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    ns.in_thread(f)
}

/// The fabric and every namespace it made; dropping it deletes them all.
pub struct Fabric {
    prefix: String,
    // Field order is drop order: nodes and hosts go before the fabric.
    state: Mutex<Applied>,
    internet: Netns,
    fabric: Netns,
}

/// What the kernel holds now, as far as this fabric put it there.
#[derive(Default)]
struct Applied {
    spec: FabricSpec,
    nodes: BTreeMap<String, Arc<Netns>>,
    hosts: BTreeMap<String, Host>,
    site: Option<site::Site>,
    rules: String,
}

struct Host {
    ns: Arc<Netns>,
    link: String,
    ip: Ipv4Addr,
}

impl Fabric {
    /// Creates the fabric and internet namespaces (named from `prefix` plus
    /// this process's id and a counter), the services' addresses and the
    /// nftables table, with no instances yet.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let prefix = unique_name(prefix);
        let fabric = Netns::try_new(&format!("{prefix}_fab"))?;
        let internet = Netns::try_new(&format!("{prefix}_inet"))?;
        // Links created after this inherit proxy ARP (the proxy reply delay
        // has no namespace default: it is cleared per link).
        fabric.write_sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.conf.default.proxy_arp", "1"),
        ])?;
        let up = format!("{UPLINK_FABRIC}/30");
        fabric.ip_batch(
            &[
                format!("addr add {IMDS_ADDR}/32 dev lo"),
                format!("addr add {EC2_ENDPOINT}/32 dev lo"),
                format!(
                    "link add {INTERNET_LINK} type veth peer name eth0 netns {}",
                    internet.name()
                ),
                format!("addr add {up} dev {INTERNET_LINK}"),
                format!("link set {INTERNET_LINK} up"),
                format!("route add default via {UPLINK_INTERNET} dev {INTERNET_LINK}"),
            ],
            false,
        )?;
        internet.ip_batch(
            &[
                format!("addr add {INTERNET_ADDR}/32 dev lo"),
                format!("addr add {UPLINK_INTERNET}/30 dev eth0"),
                "link set eth0 up".to_string(),
                format!("route add default via {UPLINK_FABRIC} dev eth0"),
            ],
            false,
        )?;
        fabric.nft_load(&nft::table_script())?;
        let this = Self {
            prefix,
            state: Mutex::new(Applied::default()),
            internet,
            fabric,
        };
        this.reconcile_spec(FabricSpec::default())?;
        Ok(this)
    }

    /// Makes the kernel match the model's view: namespaces for new
    /// instances, veths for new attachments, routes and source checks for
    /// the addresses and prefixes the view shows (the model already leaves
    /// out what its visibility delay hides), and removes what is gone.
    /// Idempotent; safe to call from several threads.
    pub fn reconcile(&self, view: &FabricView) -> io::Result<()> {
        self.reconcile_spec(FabricSpec::from_view(view)?)
    }

    fn reconcile_spec(&self, desired: FabricSpec) -> io::Result<()> {
        let mut applied = self.lock();
        apply::apply(self, &mut applied, desired)
    }

    /// The namespace of the instance with this name (or id), if it runs.
    /// The namespace lives while either the fabric or a caller holds it.
    #[must_use]
    pub fn node(&self, name_or_id: &str) -> Option<Arc<Netns>> {
        let applied = self.lock();
        let id = applied
            .spec
            .nodes
            .values()
            .find(|n| n.name == name_or_id || n.instance_id == name_or_id)
            .map(|n| n.instance_id.clone())?;
        applied.nodes.get(&id).cloned()
    }

    /// What the fabric last applied.
    #[must_use]
    pub fn spec(&self) -> FabricSpec {
        self.lock().spec.clone()
    }

    /// The router namespace (for inspection; the servers bind via
    /// [`Fabric::bind_tcp`]).
    #[must_use]
    pub fn router(&self) -> &Netns {
        &self.fabric
    }

    /// The namespace holding [`INTERNET_ADDR`].
    #[must_use]
    pub fn internet(&self) -> &Netns {
        &self.internet
    }

    /// A listening socket inside the fabric namespace, e.g. on
    /// `IMDS_ADDR:80` or `EC2_ENDPOINT:<port>`. Blocking, as std makes it;
    /// set it non-blocking before handing it to tokio.
    pub fn bind_tcp(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.fabric.in_thread(move || {
            TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("bind {addr} in the fabric: {e}")))
        })
    }

    /// Attaches a plain VPC host (e.g. a load balancer) with address `ip`:
    /// a namespace with `ip/32` on `eth0` and a default route into the
    /// fabric, source-checked like an ENI. The caller picks an address the
    /// model will not hand out (e.g. reserve it with an unattached ENI).
    pub fn attach_host(&self, name: &str, ip: Ipv4Addr) -> io::Result<Arc<Netns>> {
        let mut applied = self.lock();
        if applied.hosts.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("host {name:?} is already attached"),
            ));
        }
        let ns = Arc::new(Netns::try_new(&format!(
            "{}_h_{}",
            self.prefix,
            applied.hosts.len()
        ))?);
        let link = format!("h{}", applied.hosts.len());
        self.fabric.ip_batch(
            &[
                format!(
                    "link add {link} mtu {MTU} type veth peer name eth0 netns {} mtu {MTU}",
                    ns.name()
                ),
                format!("addr add {HOST_GW}/32 dev {link}"),
                format!("link set {link} up"),
                format!("route replace {ip}/32 dev {link}"),
            ],
            false,
        )?;
        ns.try_ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
        ns.try_ip(&["link", "set", "eth0", "up"])?;
        ns.try_ip(&[
            "route",
            "add",
            &format!("{HOST_GW}/32"),
            "dev",
            "eth0",
            "scope",
            "link",
        ])?;
        ns.try_ip(&[
            "route",
            "add",
            "default",
            "via",
            &HOST_GW.to_string(),
            "dev",
            "eth0",
        ])?;
        applied.hosts.insert(
            name.to_string(),
            Host {
                ns: Arc::clone(&ns),
                link,
                ip,
            },
        );
        apply::load_rules(self, &mut applied)?;
        Ok(ns)
    }

    /// Packets the source/dest check has dropped so far.
    pub fn spoofed_drops(&self) -> io::Result<u64> {
        self.counter(nft::SPOOFED)
    }

    /// Packets dropped on the way to or from the internet because their
    /// VPC address has no public mapping.
    pub fn not_public_drops(&self) -> io::Result<u64> {
        self.counter(nft::NOT_PUBLIC)
    }

    fn counter(&self, name: &str) -> io::Result<u64> {
        let listing = self
            .fabric
            .nft(&["list", "counter", "ip", nft::TABLE, name])?;
        nft::parse_packets(&listing)
            .ok_or_else(|| io::Error::other(format!("no packet count in {listing:?}")))
    }

    /// Names of every namespace this fabric made and still holds.
    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        let applied = self.lock();
        let mut names = vec![
            self.fabric.name().to_string(),
            self.internet.name().to_string(),
        ];
        names.extend(applied.nodes.values().map(|n| n.name().to_string()));
        names.extend(applied.hosts.values().map(|h| h.ns.name().to_string()));
        names.extend(applied.site.iter().map(|s| s.router.name().to_string()));
        names
    }

    fn lock(&self) -> MutexGuard<'_, Applied> {
        // A panic mid-apply leaves the kernel ahead of the record at worst;
        // the next reconcile re-adds with `replace`, so keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
