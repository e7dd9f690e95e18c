//! An overlay node learning 1,000 peers from the peers file and forgetting them again: from
//! the file's write until the kernel holds a neighbour, an FDB entry and a route for each
//! (and, on removal, none), against the same 1,000 entries of each kind programmed and
//! removed by iproute2's batch mode (`ip -batch`, `bridge -batch`) in a namespace of its
//! own, alternating.
//!
//! Both are timed until the same reading of the kernel (`ip`/`bridge`/`nft` dumps) shows the
//! entries; ours also includes up to one poll of the file (PEERS_FILE_POLL_INTERVAL=50ms
//! here) and up to one extra reading while ipamd is still at work.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vpc_cni_integration::overlay_cluster::{
    write_peers_file, OverlayCluster, OverlayNode, OverlaySnapshot, PeerEntry, DEVICE,
};
use vpc_cni_testkit::netns::{feed, Netns};
use vpc_cni_testkit::unique_name;

use crate::report::say;
use crate::stats::{median, ms, spread_ms};

const PEERS: u32 = 1_000;
const ROUNDS: usize = 3;
/// Harness bound on one convergence (not a measurement).
const LIMIT: Duration = Duration::from_secs(120);
/// ipamd's overlay routes carry this protocol number.
const ROUTE_PROTOCOL: &str = "0x56";
/// The baseline's devices.
const UNDERLAY: &str = "under0";
/// Named as ipamd's, in a namespace of its own, so the same reading of the kernel counts both.
const VXLAN: &str = DEVICE;

/// Peers on an underlay subnet of their own, pod CIDRs /24s of 10.128.0.0/14 (as the
/// 1,000-peer test of the overlay).
fn fake_peer(i: u32) -> anyhow::Result<PeerEntry> {
    Ok(PeerEntry {
        name: format!("rack-{i}"),
        underlay_ip: Ipv4Addr::new(172, 24, u8::try_from(i / 250)?, u8::try_from(i % 250 + 1)?),
        pod_cidr: format!("10.{}.{}.0/24", 128 + i / 256, i % 256),
    })
}

/// The MAC ipamd gives a peer's VTEP (0e:56 and its underlay address).
fn vtep_mac(underlay: Ipv4Addr) -> String {
    let [a, b, c, d] = underlay.octets();
    format!("0e:56:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Neighbour, FDB and route entries the snapshot shows.
fn counts(s: &OverlaySnapshot) -> [usize; 3] {
    [
        s.section("neigh").len(),
        s.section("fdb").len(),
        s.section("route").len(),
    ]
}

pub fn run() -> anyhow::Result<()> {
    let cluster =
        OverlayCluster::with_env("bpeers", 1, 1500, &[("PEERS_FILE_POLL_INTERVAL", "50ms")])
            .context("starting the overlay node")?;
    let node = cluster
        .nodes()
        .first()
        .context("the overlay cluster has no node")?;
    let own = PeerEntry {
        name: node.name.clone(),
        underlay_ip: node.underlay_ip,
        pod_cidr: node.pod_cidr.clone(),
    };
    let peers: Vec<PeerEntry> = (0..PEERS).map(fake_peer).collect::<anyhow::Result<_>>()?;
    wait_counts(node, 0, Instant::now()).context("the node did not settle alone")?;
    let baseline = Baseline::new()?;

    let (mut ours_add, mut ours_del, mut theirs_add, mut theirs_del) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for use_ours in if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            if use_ours {
                let mut all = peers.clone();
                all.push(own.clone());
                let started = Instant::now();
                write_peers_file(&cluster.peers_file(), &all)?;
                ours_add.push(wait_counts(node, PEERS as usize, started)?);
                let started = Instant::now();
                write_peers_file(&cluster.peers_file(), std::slice::from_ref(&own))?;
                ours_del.push(wait_counts(node, 0, started)?);
            } else {
                let (add, del) = baseline.round(&peers)?;
                theirs_add.push(add);
                theirs_del.push(del);
            }
        }
    }
    say!(
        "\nOverlay: {PEERS} peers programmed and removed (neighbour, FDB entry and route each), \
         {ROUNDS} alternating rounds, median [min-max]:"
    );
    for (what, ours, theirs) in [
        ("program", &mut ours_add, &mut theirs_add),
        ("remove", &mut ours_del, &mut theirs_del),
    ] {
        let (m_ours, m_theirs) = (median(ours), median(theirs));
        let (o_lo, o_hi) = spread_ms(ours);
        let (t_lo, t_hi) = spread_ms(theirs);
        say!(
            "  {what:<8} ipamd (peers file)            {:>8.1} ms [{o_lo:.1}-{o_hi:.1}]",
            ms(m_ours)
        );
        say!(
            "  {what:<8} ip/bridge -batch (baseline)   {:>8.1} ms [{t_lo:.1}-{t_hi:.1}]",
            ms(m_theirs)
        );
        say!(
            "  {what:<8} ratio ipamd / baseline        {:>8.2}",
            ms(m_ours) / ms(m_theirs)
        );
    }
    Ok(())
}

/// Polls until the node holds `n` of each entry; the time from `started`.
fn wait_counts(node: &OverlayNode, n: usize, started: Instant) -> anyhow::Result<Duration> {
    loop {
        let snapshot = node.snapshot()?;
        if counts(&snapshot) == [n; 3] {
            return Ok(started.elapsed());
        }
        if started.elapsed() > LIMIT {
            bail!(
                "{} did not reach {n} peer entries: {:?}\n{}",
                node.name,
                counts(&snapshot),
                node.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A namespace with a VXLAN device like ipamd's, for iproute2 to program.
struct Baseline {
    netns: Netns,
}

impl Baseline {
    fn new() -> anyhow::Result<Self> {
        let netns = Netns::try_new(&unique_name("bpbase"))?;
        netns.ip_batch(
            &[
                format!("link add {UNDERLAY} type veth peer name {UNDERLAY}p"),
                format!("addr add 172.20.0.2/24 dev {UNDERLAY}"),
                format!("link set {UNDERLAY} up"),
                format!("link set {UNDERLAY}p up"),
                format!(
                    "link add {VXLAN} type vxlan id 1 dstport 4789 local 172.20.0.2 \
                     dev {UNDERLAY} nolearning"
                ),
                format!("link set {VXLAN} up"),
            ],
            false,
        )?;
        Ok(Self { netns })
    }

    /// Programs then removes the entries; the time of each, checked against the kernel.
    fn round(&self, peers: &[PeerEntry]) -> anyhow::Result<(Duration, Duration)> {
        let (mut ip_add, mut ip_del, mut fdb_add, mut fdb_del) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in peers {
            let mac = vtep_mac(p.underlay_ip);
            let gateway = p.pod_cidr.trim_end_matches("/24");
            ip_add.push(format!(
                "neigh replace {gateway} lladdr {mac} dev {VXLAN} nud permanent"
            ));
            ip_add.push(format!(
                "route replace {} via {gateway} dev {VXLAN} onlink proto {ROUTE_PROTOCOL}",
                p.pod_cidr
            ));
            ip_del.push(format!("neigh del {gateway} dev {VXLAN}"));
            ip_del.push(format!("route del {} dev {VXLAN}", p.pod_cidr));
            fdb_add.push(format!(
                "fdb append {mac} dev {VXLAN} dst {} self permanent",
                p.underlay_ip
            ));
            fdb_del.push(format!(
                "fdb del {mac} dev {VXLAN} dst {} self",
                p.underlay_ip
            ));
        }
        let started = Instant::now();
        self.netns.ip_batch(&ip_add, false)?;
        self.bridge_batch(&fdb_add)?;
        self.expect(peers.len())?;
        let add = started.elapsed();
        let started = Instant::now();
        self.netns.ip_batch(&ip_del, false)?;
        self.bridge_batch(&fdb_del)?;
        self.expect(0)?;
        let del = started.elapsed();
        Ok((add, del))
    }

    fn bridge_batch(&self, commands: &[String]) -> anyhow::Result<()> {
        let mut cmd: Command = self.netns.command("bridge");
        cmd.args(["-batch", "-"]);
        let out = feed(&mut cmd, commands.join("\n").as_bytes())?;
        if !out.status.success() {
            bail!(
                "bridge -batch failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Until the same reading of the kernel as ours shows `n` of each entry.
    fn expect(&self, n: usize) -> anyhow::Result<()> {
        let found = counts(&OverlaySnapshot::read(&self.netns)?);
        if found != [n; 3] {
            bail!("the baseline holds {found:?} neighbours, FDB entries and routes, not {n} each");
        }
        Ok(())
    }
}
