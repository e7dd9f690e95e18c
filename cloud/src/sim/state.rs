//! The model's state behind the lock, and the helpers every rule uses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use super::alloc::Pool;
use super::errors::{err, ErrorCode, SimError};
use super::faults::{Buckets, Faults};
use super::types::{Eni, Instance, SecurityGroup, Subnet, Vpc};
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};
use vpc_cni_proto::time::Clock;

pub(crate) struct VpcRec {
    pub vpc: Vpc,
    /// The associated blocks as parsed, index for index with `vpc.cidr_blocks`.
    pub blocks: Vec<Ipv4Cidr>,
}

impl VpcRec {
    /// Every associated block as text, the primary first.
    pub fn cidr_texts(&self) -> Vec<String> {
        self.vpc
            .cidr_blocks
            .iter()
            .map(|b| b.cidr.clone())
            .collect()
    }
}

pub(crate) struct SubnetRec {
    pub subnet: Subnet,
    pub cidr: Ipv4Cidr,
    pub pool: Pool,
}

impl SubnetRec {
    /// The public view with the live free count.
    pub fn view(&self) -> Subnet {
        let mut s = self.subnet.clone();
        s.available_ip_count = self.pool.free_count();
        s
    }
}

pub(crate) struct EniRec {
    pub eni: Eni,
    /// When each secondary address / prefix was added; the primary address
    /// is visible with the ENI itself and has no entry.
    pub ip_added_ms: HashMap<Ipv4Addr, u64>,
    pub prefix_added_ms: HashMap<String, u64>,
    /// When the current attachment became visible-pending; 0 for instance
    /// primaries, which exist from launch.
    pub attach_added_ms: u64,
}

pub(crate) struct State {
    pub clock: Clock,
    pub rng: fastrand::Rng,
    pub ids: HashSet<String>,
    pub macs: HashSet<String>,
    pub vpcs: BTreeMap<String, VpcRec>,
    pub groups: BTreeMap<String, SecurityGroup>,
    pub subnets: BTreeMap<String, SubnetRec>,
    pub instances: BTreeMap<String, Instance>,
    pub enis: BTreeMap<String, EniRec>,
    /// attachment id -> ENI id
    pub attachments: HashMap<String, String>,
    /// Every individually assigned address (primary or secondary) -> ENI id.
    pub addr_owner: HashMap<Ipv4Addr, String>,
    /// Every delegated prefix's base -> ENI id.
    pub prefix_owner: HashMap<Ipv4Addr, String>,
    pub faults: Faults,
    pub buckets: Buckets,
    pub counts: BTreeMap<String, u64>,
    /// The same counts per calling instance, for requests whose caller is known.
    pub counts_by_instance: BTreeMap<String, BTreeMap<String, u64>>,
    pub iam_role: String,
}

impl State {
    pub fn new(clock: Clock, rng: fastrand::Rng) -> State {
        State {
            clock,
            rng,
            ids: HashSet::new(),
            macs: HashSet::new(),
            vpcs: BTreeMap::new(),
            groups: BTreeMap::new(),
            subnets: BTreeMap::new(),
            instances: BTreeMap::new(),
            enis: BTreeMap::new(),
            attachments: HashMap::new(),
            addr_owner: HashMap::new(),
            prefix_owner: HashMap::new(),
            faults: Faults::default(),
            buckets: Buckets::default(),
            counts: BTreeMap::new(),
            counts_by_instance: BTreeMap::new(),
            iam_role: "vpc-sim-node".to_string(),
        }
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// `prefix-` + 17 lowercase hex digits, never issued before.
    pub fn new_id(&mut self, prefix: &str) -> String {
        loop {
            let hex: String = (0..17)
                .map(|_| char::from_digit(self.rng.u32(0..16), 16).unwrap_or('0'))
                .collect();
            let id = format!("{prefix}-{hex}");
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// A locally administered unicast MAC ("02:…"), unique in the sim.
    pub fn new_mac(&mut self) -> String {
        loop {
            let mut bytes = [0x02, 0, 0, 0, 0, 0];
            for b in &mut bytes[1..] {
                *b = self.rng.u8(..);
            }
            let mac = MacAddr(bytes).to_string();
            if self.macs.insert(mac.clone()) {
                return mac;
            }
        }
    }

    pub fn subnet(&self, id: &str) -> Result<&SubnetRec, SimError> {
        self.subnets.get(id).ok_or_else(|| no_such_subnet(id))
    }

    pub fn subnet_mut(&mut self, id: &str) -> Result<&mut SubnetRec, SimError> {
        self.subnets.get_mut(id).ok_or_else(|| no_such_subnet(id))
    }

    pub fn eni(&self, id: &str) -> Result<&EniRec, SimError> {
        match self.enis.get(id) {
            Some(e) => Ok(e),
            None => err(
                ErrorCode::InvalidNetworkInterfaceIdNotFound,
                format!("The networkInterface ID '{id}' does not exist"),
            ),
        }
    }

    pub fn eni_mut(&mut self, id: &str) -> Result<&mut EniRec, SimError> {
        match self.enis.get_mut(id) {
            Some(e) => Ok(e),
            None => err(
                ErrorCode::InvalidNetworkInterfaceIdNotFound,
                format!("The networkInterface ID '{id}' does not exist"),
            ),
        }
    }

    pub fn instance(&self, id: &str) -> Result<&Instance, SimError> {
        match self.instances.get(id) {
            Some(i) => Ok(i),
            None => err(
                ErrorCode::InvalidInstanceIdNotFound,
                format!("The instance ID '{id}' does not exist"),
            ),
        }
    }

    fn visible(&self, added_ms: u64, now: u64) -> bool {
        added_ms.saturating_add(self.faults.visibility_delay_ms) <= now
    }

    /// The ENI as Describe and IMDS see it now: an attachment or secondary
    /// address younger than the visibility delay is not shown yet.
    pub fn visible_eni(&self, rec: &EniRec, now: u64) -> Eni {
        let mut eni = rec.eni.clone();
        if eni.attachment.is_some() && !self.visible(rec.attach_added_ms, now) {
            eni.attachment = None;
            eni.status = "available".to_string();
        }
        eni.private_ips.retain(|p| {
            p.primary
                || rec
                    .ip_added_ms
                    .get(&p.address)
                    .is_none_or(|&t| self.visible(t, now))
        });
        eni.prefixes.retain(|p| {
            rec.prefix_added_ms
                .get(p)
                .is_none_or(|&t| self.visible(t, now))
        });
        eni
    }

    /// The instance an ENI is attached to, when that instance is running.
    pub fn attached_running_instance(&self, eni: &Eni) -> Option<&Instance> {
        let att = eni.attachment.as_ref()?;
        self.instances
            .get(&att.instance_id)
            .filter(|i| i.state == "running")
    }
}

fn no_such_subnet(id: &str) -> SimError {
    SimError::new(
        ErrorCode::InvalidSubnetIdNotFound,
        format!("The subnet ID '{id}' does not exist"),
    )
}
