//! Reading the kernel's neighbour table without losing entries to other tests.
//!
//! The IPv4 neighbour table is one hash table shared by every network namespace. When its
//! entries outnumber its buckets the kernel doubles it and moves every entry to its new
//! bucket; a dump (or even a lookup) that walks the table at that moment can step from a
//! moved entry into its new chain and skip the rest of the old one, in any namespace. On a
//! freshly booted machine the table starts at 8 buckets, so the first thousand-odd entries
//! that tests create (a 1,000-peer overlay, pods' gateway entries, ARP) grow it about ten
//! times, each time under whatever test happens to be reading its own namespace's entries.
//! Measured on this kind of machine (kernel 6.18): a namespace's three permanent entries were
//! missing from 41 of 57,188 dumps taken while another namespace added 65,536 entries (13
//! grows), and from none of 1.7 million dumps while nothing grew, nor of 15,329 while another
//! namespace added 200,000 entries without a grow.
//!
//! So readers here first make sure the table is large enough that no test can make it grow
//! ([`presize_once`]); the table never shrinks, so this happens once per boot. A read then
//! checks the kernel's grow counter around itself and fails loudly if the premise broke.

use std::process::Command;
use std::sync::Once;

use crate::netns::Netns;
use crate::process::run_checked;

/// Buckets the IPv4 neighbour table is grown to before any test reads it: well above the
/// entries all tests of one run hold at once (the largest, a 1,000-peer overlay, holds about
/// 1,000), so no test can make it grow again.
pub const PRESIZED_BUCKETS: u64 = 8192;

static PRESIZE: Once = Once::new();

/// Grows the kernel's IPv4 neighbour table to [`PRESIZED_BUCKETS`] unless it is that large
/// already: adds just enough permanent entries in a scratch namespace of its own, then
/// deletes the namespace (and the entries with it). Once per process; a no-op after the
/// first run since boot.
pub fn presize_once() {
    PRESIZE.call_once(|| {
        let (buckets, _) = table_stats();
        if buckets >= PRESIZED_BUCKETS {
            return;
        }
        let scratch = Netns::unique("nbsize");
        scratch.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        scratch.ip(&["link", "set", "v0", "up"]);
        // The table doubles whenever its entries outnumber its buckets.
        let entries = PRESIZED_BUCKETS / 2 + 1;
        let commands: Vec<String> = (0..entries)
            .map(|i| {
                format!(
                    "neigh add 10.{}.{}.{} lladdr 02:00:00:00:{:02x}:{:02x} dev v0 nud permanent",
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff
                )
            })
            .collect();
        scratch
            .ip_batch(&commands, false)
            .unwrap_or_else(|e| panic!("presizing the neighbour table: {e}"));
        drop(scratch);
        let (buckets, _) = table_stats();
        assert!(
            buckets >= PRESIZED_BUCKETS,
            "the IPv4 neighbour table has {buckets} buckets after presizing, want {PRESIZED_BUCKETS}"
        );
    });
}

/// `(buckets, grows since boot)` of the IPv4 neighbour table, from `ip -s ntable`.
#[must_use]
pub fn table_stats() -> (u64, u64) {
    let out = run_checked(Command::new("ip").args(["-s", "ntable", "show", "name", "arp_cache"]))
        .unwrap_or_else(|e| panic!("reading the neighbour table's stats: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        let mut words = text.split_whitespace();
        words.find(|w| *w == name)?;
        words.next().map(str::to_owned)
    };
    let mask = field("hash_mask")
        .and_then(|m| u64::from_str_radix(&m, 16).ok())
        .unwrap_or_else(|| panic!("no hash_mask in `ip -s ntable`:\n{text}"));
    let grows = field("hash_grows")
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("no hash_grows in `ip -s ntable`:\n{text}"));
    (mask + 1, grows)
}

/// Runs `read` (a read of a namespace's neighbours) on a presized table, and panics if the
/// table grew meanwhile: then entries may be missing from what it read, through no fault of
/// the code under test.
pub fn read_stable<T>(read: impl FnOnce() -> T) -> T {
    presize_once();
    let (_, before) = table_stats();
    let value = read();
    let (buckets, after) = table_stats();
    assert_eq!(
        before, after,
        "the kernel's neighbour table grew (to {buckets} buckets) while a test read it, so the \
         read may have missed entries: raise PRESIZED_BUCKETS above what the tests hold at once"
    );
    value
}

impl Netns {
    /// `ip -4 neigh show <args>` in this namespace, read on a presized table (see the
    /// module comment).
    pub fn try_neighbours(&self, args: &[&str]) -> std::io::Result<String> {
        let mut full = vec!["-4", "neigh", "show"];
        full.extend_from_slice(args);
        read_stable(|| self.try_ip(&full))
    }

    /// [`Netns::try_neighbours`], which must succeed.
    #[must_use]
    pub fn neighbours(&self, args: &[&str]) -> String {
        self.try_neighbours(args)
            .unwrap_or_else(|e| panic!("in netns {}: {e}", self.name()))
    }

    /// The neighbour `ip` on `dev`, looked up directly (`ip neigh get`); `None` when the
    /// kernel has none.
    #[must_use]
    pub fn neighbour(&self, ip: &str, dev: &str) -> Option<String> {
        read_stable(|| self.try_ip(&["neigh", "get", ip, "dev", dev]).ok())
    }

    /// The neighbours among `ips` that `dev` has, one `ip neigh get` line each, looked up
    /// one by one: exact for a namespace with more entries than one dump message holds, whose
    /// dump resumes at a position that other namespaces' changes can shift.
    #[must_use]
    pub fn neighbours_among(&self, dev: &str, ips: &[std::net::Ipv4Addr]) -> Vec<String> {
        let commands: Vec<String> = ips
            .iter()
            .map(|ip| format!("neigh get {ip} dev {dev}"))
            .collect();
        read_stable(|| {
            let out = crate::netns::feed(
                Command::new("ip").args(["-n", self.name(), "-force", "-batch", "-"]),
                commands.join("\n").as_bytes(),
            )
            .unwrap_or_else(|e| panic!("ip neigh get in netns {}: {e}", self.name()));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}
