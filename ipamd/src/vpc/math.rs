//! Pool math, pure: from a snapshot of the node's ENIs and the targets, the
//! next thing the pool controller should do. No cloud, no clock, no I/O, so
//! every rule of DESIGN.md "Pool math" is unit-tested here.
//!
//! One decision at a time: the controller executes it, takes a fresh
//! snapshot and asks again until the answer is `Idle`. That keeps each rule
//! simple and lets a partial failure (a subnet filling up mid-way) leave the
//! pool in a state the next pass reads as it is.

use std::net::Ipv4Addr;

use vpc_cni_cloud::EniId;
use vpc_cni_proto::net::Ipv4Cidr;

/// Addresses in a delegated /28.
pub const PREFIX_SIZE: u32 = 16;

/// Where one pod address stands, as the datastore sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Free,
    Assigned,
    /// Released, within IP_COOLDOWN_PERIOD: neither available nor releasable.
    Cooling,
    /// Out of cooldown less than POOL_SHRINK_INTERVAL ago: free for pods, but not given back
    /// yet. Under churn the pool's need rises and falls between passes; giving back what is
    /// spare at one moment only makes the next ADDs ask EC2 for it again.
    Resting,
}

impl SlotState {
    /// A pod may get it.
    fn available(self) -> bool {
        matches!(self, SlotState::Free | SlotState::Resting)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub ip: Ipv4Addr,
    pub state: SlotState,
}

/// One delegated /28 and the state of its 16 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixView {
    /// "a.b.c.d/28", as EC2 names it.
    pub prefix: Ipv4Cidr,
    pub slots: Vec<Slot>,
}

impl PrefixView {
    fn used(&self) -> usize {
        used(&self.slots)
    }

    /// Every address unused for a whole shrink interval: the prefix may go back.
    fn idle(&self) -> bool {
        self.slots.iter().all(|s| s.state == SlotState::Free)
    }
}

/// One attached ENI as the pool math needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniView {
    pub id: EniId,
    pub device_index: u32,
    /// Device 0: carries pod addresses, never released whole.
    pub primary: bool,
    /// Tagged `node.k8s.amazonaws.com/no_manage=true`: counted against the
    /// ENI limit, otherwise left alone.
    pub no_manage: bool,
    /// Secondary addresses (the ENI's own primary address excluded).
    pub secondary: Vec<Slot>,
    pub prefixes: Vec<PrefixView>,
    /// EC2 recently called its subnet full (subnet discovery): nothing more can be added to
    /// it, so growth goes to a new ENI in another subnet.
    pub subnet_full: bool,
}

fn used(slots: &[Slot]) -> usize {
    slots.iter().filter(|s| !s.state.available()).count()
}

/// Targets and caps (AWS VPC CNI names; 0 means unset, as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    pub warm_eni_target: u32,
    pub warm_ip_target: u32,
    pub minimum_ip_target: u32,
    pub warm_prefix_target: u32,
    pub prefix_delegation: bool,
    /// MAX_ENI; 0 = the instance type's limit.
    pub max_eni: u32,
    /// Overrides the computed max pods; 0 = computed.
    pub max_pods: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            warm_eni_target: 1,
            warm_ip_target: 0,
            minimum_ip_target: 0,
            warm_prefix_target: 0,
            prefix_delegation: false,
            max_eni: 0,
            max_pods: 0,
        }
    }
}

/// The instance type's limits (DescribeInstanceTypes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_enis: u32,
    /// IPv4 addresses per ENI, the ENI's own primary included.
    pub ipv4_per_eni: u32,
    pub nitro: bool,
    pub vcpus: u32,
}

/// What the controller should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolDecision {
    /// Targets met, or nothing more may be done (limits reached).
    Idle,
    /// Add `count` addresses (prefixes in prefix mode) to an attached ENI.
    AssignToExisting { eni: EniId, count: u32 },
    /// Create and attach an ENI carrying `count` addresses (prefixes).
    CreateEni { count: u32 },
    /// Give back free (not cooling) addresses or wholly free prefixes.
    Release {
        eni: EniId,
        addresses: Vec<Ipv4Addr>,
        prefixes: Vec<Ipv4Cidr>,
    },
    /// Detach and delete a non-primary ENI with nothing assigned or cooling.
    FreeEni { eni: EniId },
}

impl PoolConfig {
    /// Prefix delegation needs a Nitro instance; elsewhere it falls back to
    /// secondary addresses, as the AWS VPC CNI does.
    #[must_use]
    pub fn prefix_mode(&self, limits: &Limits) -> bool {
        self.prefix_delegation && limits.nitro
    }

    /// ENIs the node may have: MAX_ENI, capped at the type's limit.
    #[must_use]
    pub fn max_enis(&self, limits: &Limits) -> u32 {
        if self.max_eni == 0 {
            limits.max_enis
        } else {
            self.max_eni.min(limits.max_enis)
        }
    }

    fn ip_targets(&self) -> bool {
        self.warm_ip_target > 0 || self.minimum_ip_target > 0
    }
}

/// Pod addresses (or prefixes) one ENI can hold: its limit minus its own primary.
#[must_use]
pub fn per_eni(limits: &Limits) -> u32 {
    limits.ipv4_per_eni.saturating_sub(1)
}

/// Max pods as DESIGN.md computes it: `ENIs × (IPv4 per ENI − 1) + 2`; in
/// prefix mode the addresses are ×16, capped at 110 below 30 vCPUs, else 250.
/// A configured value wins.
#[must_use]
pub fn max_pods(config: &PoolConfig, limits: &Limits) -> u32 {
    if config.max_pods > 0 {
        return config.max_pods;
    }
    let enis = config.max_enis(limits);
    if config.prefix_mode(limits) {
        let raw = enis
            .saturating_mul(per_eni(limits).saturating_mul(PREFIX_SIZE))
            .saturating_add(2);
        let cap = if limits.vcpus < 30 { 110 } else { 250 };
        raw.min(cap)
    } else {
        enis.saturating_mul(per_eni(limits)).saturating_add(2)
    }
}

/// Counts in the AWS VPC CNI's terms over the managed ENIs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub total: u32,
    pub assigned: u32,
    pub cooling: u32,
    pub available: u32,
    /// Available and unused for a whole shrink interval: what may go back to EC2.
    pub idle: u32,
    /// Prefixes held and prefixes with no assigned or cooling address.
    pub prefixes: u32,
    pub free_prefixes: u32,
    /// Prefixes whose every address is idle.
    pub idle_prefixes: u32,
}

fn slots_of<'a>(e: &'a EniView, prefix_mode: bool) -> Box<dyn Iterator<Item = &'a Slot> + 'a> {
    if prefix_mode {
        Box::new(e.prefixes.iter().flat_map(|p| p.slots.iter()))
    } else {
        Box::new(e.secondary.iter())
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[must_use]
pub fn tally(enis: &[EniView], prefix_mode: bool) -> Tally {
    let mut t = Tally::default();
    for e in enis.iter().filter(|e| !e.no_manage) {
        for s in slots_of(e, prefix_mode) {
            t.total += 1;
            match s.state {
                SlotState::Free => t.idle += 1,
                SlotState::Resting => {}
                SlotState::Assigned => t.assigned += 1,
                SlotState::Cooling => t.cooling += 1,
            }
        }
        if prefix_mode {
            t.prefixes += count(e.prefixes.len());
            t.free_prefixes += count(e.prefixes.iter().filter(|p| p.used() == 0).count());
            t.idle_prefixes += count(e.prefixes.iter().filter(|p| p.idle()).count());
        }
    }
    t.available = t.total.saturating_sub(t.assigned + t.cooling);
    t
}

/// The next step toward the targets.
#[must_use]
pub fn decide(enis: &[EniView], config: &PoolConfig, limits: &Limits) -> PoolDecision {
    let prefix_mode = config.prefix_mode(limits);
    let ctx = Ctx {
        enis,
        limits,
        prefix_mode,
        tally: tally(enis, prefix_mode),
        max_pods: max_pods(config, limits),
        eni_slots: config.max_enis(limits).saturating_sub(count(enis.len())),
    };
    match (prefix_mode, config.ip_targets()) {
        (_, true) => ctx.ip_targets(config),
        (false, false) => ctx.warm_eni(config.warm_eni_target),
        (true, false) => {
            let warm = if config.warm_prefix_target > 0 {
                config.warm_prefix_target
            } else {
                config.warm_eni_target.saturating_mul(per_eni(limits))
            };
            ctx.warm_prefixes(warm)
        }
    }
}

struct Ctx<'a> {
    enis: &'a [EniView],
    limits: &'a Limits,
    prefix_mode: bool,
    tally: Tally,
    max_pods: u32,
    /// ENIs that may still be attached (no_manage ones take slots too).
    eni_slots: u32,
}

impl Ctx<'_> {
    /// Units (addresses, or prefixes) an ENI holds.
    fn held(&self, e: &EniView) -> u32 {
        count(if self.prefix_mode {
            e.prefixes.len()
        } else {
            e.secondary.len()
        })
    }

    /// Units the pool may still grow by without passing max pods.
    fn headroom(&self) -> u32 {
        if self.prefix_mode {
            self.max_pods
                .div_ceil(PREFIX_SIZE)
                .saturating_sub(self.tally.prefixes)
        } else {
            self.max_pods.saturating_sub(self.tally.total)
        }
    }

    fn managed(&self) -> impl Iterator<Item = &EniView> {
        self.enis.iter().filter(|e| !e.no_manage)
    }

    /// Grows by up to `want` units: onto an attached ENI with room (the
    /// primary first, then by device index), else onto a new ENI. `fill`
    /// tops the chosen ENI up completely (WARM_ENI_TARGET's whole ENIs).
    fn grow(&self, want: u32, fill: bool) -> PoolDecision {
        let cap = per_eni(self.limits);
        let want = want.min(self.headroom());
        if want == 0 {
            return PoolDecision::Idle;
        }
        let mut with_room: Vec<&EniView> = self
            .managed()
            .filter(|e| !e.subnet_full && self.held(e) < cap)
            .collect();
        with_room.sort_by_key(|e| (!e.primary, e.device_index));
        if let Some(e) = with_room.first() {
            let room = cap - self.held(e);
            let n = if fill { room } else { want.min(room) };
            return PoolDecision::AssignToExisting {
                eni: e.id.clone(),
                count: n.min(self.headroom()),
            };
        }
        if self.eni_slots == 0 || cap == 0 {
            return PoolDecision::Idle;
        }
        let n = if fill { cap } else { want.min(cap) };
        PoolDecision::CreateEni {
            count: n.min(self.headroom()),
        }
    }

    /// Non-primary managed ENIs with nothing assigned or cooling, highest
    /// device index first (the newest go first).
    fn idle_enis(&self) -> Vec<&EniView> {
        let mut v: Vec<&EniView> = self
            .managed()
            .filter(|e| {
                !e.primary && slots_of(e, self.prefix_mode).all(|s| s.state == SlotState::Free)
            })
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.device_index));
        v
    }

    /// Managed ENIs in release order: non-primary first, newest first.
    fn release_order(&self) -> Vec<&EniView> {
        let mut v: Vec<&EniView> = self.managed().collect();
        v.sort_by_key(|e| (e.primary, std::cmp::Reverse(e.device_index)));
        v
    }

    fn ip_targets(&self, c: &PoolConfig) -> PoolDecision {
        let t = self.tally;
        let (warm, min) = (i64::from(c.warm_ip_target), i64::from(c.minimum_ip_target));
        let (total, available) = (i64::from(t.total), i64::from(t.available));
        let short = (warm - available).max(min - total).max(0);
        if short > 0 {
            let short = u32::try_from(short).unwrap_or(u32::MAX);
            let want = if self.prefix_mode {
                short.div_ceil(PREFIX_SIZE)
            } else {
                short
            };
            let d = self.grow(want, false);
            if d != PoolDecision::Idle {
                return d;
            }
        }
        // Only idle addresses count as spare (a subset of the available ones): what a moment
        // shows spare is not spare when pods come and go (see `SlotState::Resting`).
        let idle = i64::from(t.idle);
        // Freeing a whole ENI first saves the unassign call, when the
        // targets hold without its addresses.
        for e in self.idle_enis() {
            let n = i64::from(count(slots_of(e, self.prefix_mode).count()));
            if idle - n >= warm && total - n >= min {
                return PoolDecision::FreeEni { eni: e.id.clone() };
            }
        }
        let over = (idle - warm).min(total - min).max(0);
        let over = u32::try_from(over).unwrap_or(0);
        if self.prefix_mode {
            // Only whole prefixes go back; rounding down keeps the targets.
            self.release_prefixes(over / PREFIX_SIZE)
        } else {
            self.release_addresses(over)
        }
    }

    fn warm_eni(&self, warm_eni_target: u32) -> PoolDecision {
        let per = per_eni(self.limits);
        let target = warm_eni_target.saturating_mul(per);
        let available = self.tally.available;
        if available < target {
            let d = self.grow(target - available, true);
            if d != PoolDecision::Idle {
                return d;
            }
        }
        // Idle addresses are the available ones no pod used within the shrink interval.
        let idle = i64::from(self.tally.idle);
        for e in self.idle_enis() {
            if idle - i64::from(per) >= i64::from(target) {
                return PoolDecision::FreeEni { eni: e.id.clone() };
            }
        }
        PoolDecision::Idle
    }

    fn warm_prefixes(&self, warm: u32) -> PoolDecision {
        let free = self.tally.free_prefixes;
        if free < warm {
            let d = self.grow(warm - free, false);
            if d != PoolDecision::Idle {
                return d;
            }
        }
        // Idle prefixes are the free ones no pod used within the shrink interval.
        let idle = self.tally.idle_prefixes;
        for e in self.idle_enis() {
            if idle.saturating_sub(self.held(e)) >= warm {
                return PoolDecision::FreeEni { eni: e.id.clone() };
            }
        }
        self.release_prefixes(idle.saturating_sub(warm))
    }

    fn release_addresses(&self, n: u32) -> PoolDecision {
        if n == 0 {
            return PoolDecision::Idle;
        }
        for e in self.release_order() {
            let addresses: Vec<Ipv4Addr> = e
                .secondary
                .iter()
                .filter(|s| s.state == SlotState::Free)
                .map(|s| s.ip)
                .take(n as usize)
                .collect();
            if !addresses.is_empty() {
                return PoolDecision::Release {
                    eni: e.id.clone(),
                    addresses,
                    prefixes: Vec::new(),
                };
            }
        }
        PoolDecision::Idle
    }

    fn release_prefixes(&self, n: u32) -> PoolDecision {
        if n == 0 {
            return PoolDecision::Idle;
        }
        for e in self.release_order() {
            let prefixes: Vec<Ipv4Cidr> = e
                .prefixes
                .iter()
                .filter(|p| p.idle())
                .map(|p| p.prefix)
                .take(n as usize)
                .collect();
            if !prefixes.is_empty() {
                return PoolDecision::Release {
                    eni: e.id.clone(),
                    addresses: Vec::new(),
                    prefixes,
                };
            }
        }
        PoolDecision::Idle
    }
}

/// The address a new pod should get: a free one in the fullest ENI (prefix
/// mode: the fullest /28), ties to the lowest device index, then the lowest
/// address. Packing keeps the other ENIs and prefixes emptiable.
#[must_use]
pub fn choose_address(enis: &[EniView], prefix_mode: bool) -> Option<Ipv4Addr> {
    let mut groups: Vec<(usize, u32, &[Slot])> = Vec::new();
    for e in enis.iter().filter(|e| !e.no_manage) {
        if prefix_mode {
            for p in &e.prefixes {
                groups.push((p.used(), e.device_index, &p.slots));
            }
        } else {
            groups.push((used(&e.secondary), e.device_index, &e.secondary));
        }
    }
    groups
        .into_iter()
        .filter_map(|(used, dev, slots)| {
            let ip = slots
                .iter()
                .filter(|s| s.state.available())
                .map(|s| s.ip)
                .min()?;
            Some((std::cmp::Reverse(used), dev, ip))
        })
        .min()
        .map(|(_, _, ip)| ip)
}
