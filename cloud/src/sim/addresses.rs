//! Private addresses and /28 prefixes on ENIs: allocation from the subnet,
//! the per-ENI limit, and the Assign/Unassign actions.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::alloc::PREFIX_SIZE;
use vpc_cni_proto::net::Ipv4Cidr;

use super::cidr::{base, block_at, parse_cidr};
use super::errors::{err, ErrorCode, SimError};
use super::instance_types::{instance_type, InstanceType};
use super::state::State;
use super::types::{AssignIps, Assigned, PrivateIp};
use super::SimVpc;

/// What one allocation step took from a subnet, so a failing later step can
/// give it all back (EC2 calls are all-or-nothing).
#[derive(Default)]
pub(crate) struct Taken {
    pub addresses: Vec<Ipv4Addr>,
    pub prefixes: Vec<Ipv4Cidr>,
}

impl State {
    /// `count` lowest free addresses of the subnet.
    pub(crate) fn take_addresses(
        &mut self,
        subnet_id: &str,
        count: u32,
        taken: &mut Taken,
    ) -> Result<Vec<Ipv4Addr>, SimError> {
        let rec = self.subnet_mut(subnet_id)?;
        let base = base(&rec.cidr);
        let Some(offs) = rec.pool.take_many(count) else {
            return err(
                ErrorCode::InsufficientFreeAddressesInSubnet,
                format!(
                    "{count} addresses requested but subnet {subnet_id} has only {} free",
                    rec.pool.free_count()
                ),
            );
        };
        let ips: Vec<Ipv4Addr> = offs.iter().map(|&o| Ipv4Addr::from(base + o)).collect();
        taken.addresses.extend(&ips);
        Ok(ips)
    }

    /// Specific addresses; each must lie in the subnet, not be reserved and be
    /// free (or, with `allow_reassignment`, be another ENI's secondary address).
    pub(crate) fn take_specific_addresses(
        &mut self,
        subnet_id: &str,
        eni_id: &str,
        addrs: &[Ipv4Addr],
        allow_reassignment: bool,
        taken: &mut Taken,
    ) -> Result<(), SimError> {
        let rec = self.subnet(subnet_id)?;
        let cidr = rec.cidr;
        let mut seen = HashSet::new();
        let mut moves = Vec::new();
        for &ip in addrs {
            let n = u32::from(ip);
            if !seen.insert(ip) {
                return bad_value(format!("address {ip} is listed twice"));
            }
            if !cidr.contains(ip) {
                return bad_value(format!(
                    "address {ip} is not in subnet {subnet_id} ({cidr})"
                ));
            }
            let off = n - base(&cidr);
            if off < 4 || ip == cidr.last() {
                return bad_value(format!("address {ip} is reserved in subnet {subnet_id}"));
            }
            if rec.pool.is_free(off) {
                continue;
            }
            match self.addr_owner.get(&ip) {
                Some(owner) if owner == eni_id => {
                    return bad_value(format!("address {ip} is already assigned to {eni_id}"));
                }
                Some(owner) if allow_reassignment && !self.is_primary_of(owner, ip) => {
                    moves.push((ip, owner.clone()));
                }
                _ => return bad_value(format!("address {ip} is already in use")),
            }
        }
        for (ip, owner) in moves {
            if let Some(o) = self.enis.get_mut(&owner) {
                o.eni.private_ips.retain(|p| p.address != ip);
                o.ip_added_ms.remove(&ip);
            }
            self.addr_owner.remove(&ip);
            // The pool bit stays set: the address changes owner, not state.
            // Nothing below can fail once validation passed, so no rollback
            // ever has to hand it back to the old owner.
            taken.addresses.push(ip);
        }
        let rec = self.subnet_mut(subnet_id)?;
        for &ip in addrs {
            let off = u32::from(ip) - base(&cidr);
            if rec.pool.take(off) {
                taken.addresses.push(ip);
            }
        }
        Ok(())
    }

    fn is_primary_of(&self, eni_id: &str, ip: Ipv4Addr) -> bool {
        self.enis
            .get(eni_id)
            .is_some_and(|e| e.eni.primary_ip() == Some(ip))
    }

    /// `count` free aligned /28 blocks of the subnet.
    pub(crate) fn take_prefixes(
        &mut self,
        subnet_id: &str,
        count: u32,
        taken: &mut Taken,
    ) -> Result<Vec<Ipv4Cidr>, SimError> {
        let rec = self.subnet_mut(subnet_id)?;
        let subnet = rec.cidr;
        let Some(starts) = rec.pool.take_blocks(count) else {
            return err(
                ErrorCode::InsufficientCidrBlocks,
                format!("subnet {subnet_id} has fewer than {count} free aligned /28 blocks"),
            );
        };
        let got: Vec<Ipv4Cidr> = starts.iter().map(|&s| block_at(&subnet, s)).collect();
        taken.prefixes.extend(&got);
        Ok(got)
    }

    /// Specific "a.b.c.d/28" prefixes, each wholly free in the subnet.
    pub(crate) fn take_specific_prefixes(
        &mut self,
        subnet_id: &str,
        prefixes: &[String],
        taken: &mut Taken,
    ) -> Result<Vec<Ipv4Cidr>, SimError> {
        let cidr = self.subnet(subnet_id)?.cidr;
        let mut parsed = Vec::new();
        for p in prefixes {
            let c = parse_cidr(p)?;
            if c.prefix_len != 28 {
                return bad_value(format!("prefix {p} is not a /28"));
            }
            if !cidr.contains_cidr(&c) {
                return bad_value(format!("prefix {p} is not in subnet {subnet_id} ({cidr})"));
            }
            if parsed.contains(&c) {
                return bad_value(format!("prefix {p} is listed twice"));
            }
            parsed.push(c);
        }
        let rec = self.subnet_mut(subnet_id)?;
        for c in &parsed {
            if !rec.pool.take_block(base(c) - base(&cidr)) {
                return bad_value(format!("prefix {c} overlaps addresses in use"));
            }
            taken.prefixes.push(*c);
        }
        Ok(parsed)
    }

    /// Gives back everything in `taken` (rollback of a failed call).
    pub(crate) fn give_back(&mut self, subnet_id: &str, taken: &Taken) {
        for &ip in &taken.addresses {
            self.release_address(subnet_id, ip);
        }
        for &c in &taken.prefixes {
            self.release_prefix(subnet_id, c);
        }
    }

    pub(crate) fn release_address(&mut self, subnet_id: &str, ip: Ipv4Addr) {
        self.addr_owner.remove(&ip);
        if let Some(rec) = self.subnets.get_mut(subnet_id) {
            let off = u32::from(ip).wrapping_sub(base(&rec.cidr));
            rec.pool.release(off);
        }
    }

    pub(crate) fn release_prefix(&mut self, subnet_id: &str, c: Ipv4Cidr) {
        self.prefix_owner.remove(&c.network);
        if let Some(rec) = self.subnets.get_mut(subnet_id) {
            rec.pool
                .release_block(base(&c).wrapping_sub(base(&rec.cidr)));
        }
    }

    /// The type limiting an ENI: that of the instance it is attached to.
    pub(crate) fn eni_type(&self, eni_id: &str) -> Option<&'static InstanceType> {
        let att = self.enis.get(eni_id)?.eni.attachment.as_ref()?;
        let inst = self.instances.get(&att.instance_id)?;
        instance_type(&inst.instance_type)
    }

    fn assign(&mut self, eni_id: &str, req: &AssignIps) -> Result<Assigned, SimError> {
        let (subnet_id, have) = {
            let e = &self.eni(eni_id)?.eni;
            (e.subnet_id.clone(), e.private_ips.len() + e.prefixes.len())
        };
        let wants_ips = req.count > 0 || !req.addresses.is_empty();
        let wants_prefixes = req.prefix_count > 0 || !req.prefixes.is_empty();
        if req.count > 0 && !req.addresses.is_empty() {
            return combination("SecondaryPrivateIpAddressCount and PrivateIpAddress");
        }
        if req.prefix_count > 0 && !req.prefixes.is_empty() {
            return combination("Ipv4PrefixCount and Ipv4Prefix");
        }
        if wants_ips && wants_prefixes {
            return combination("addresses and prefixes");
        }
        if !wants_ips && !wants_prefixes {
            return err(
                ErrorCode::MissingParameter,
                "one of SecondaryPrivateIpAddressCount, PrivateIpAddress, Ipv4PrefixCount or Ipv4Prefix is required",
            );
        }
        let adding = if wants_ips {
            req.count as usize + req.addresses.len()
        } else {
            req.prefix_count as usize + req.prefixes.len()
        };
        if let Some(it) = self.eni_type(eni_id) {
            if wants_prefixes && !it.nitro {
                return bad_value(format!(
                    "{} is not a Nitro instance type: prefix delegation is not supported",
                    it.name
                ));
            }
            if have + adding > it.ipv4_per_eni as usize {
                return err(
                    ErrorCode::PrivateIpAddressLimitExceeded,
                    format!(
                        "Number of private addresses will exceed limit of {} for {eni_id} ({}): it has {have} (addresses + prefixes) and {adding} were requested",
                        it.ipv4_per_eni, it.name
                    ),
                );
            }
        }
        let mut taken = Taken::default();
        let res = if wants_ips {
            if req.count > 0 {
                self.take_addresses(&subnet_id, req.count, &mut taken)
                    .map(|_| ())
            } else {
                self.take_specific_addresses(
                    &subnet_id,
                    eni_id,
                    &req.addresses,
                    req.allow_reassignment,
                    &mut taken,
                )
            }
        } else if req.prefix_count > 0 {
            self.take_prefixes(&subnet_id, req.prefix_count, &mut taken)
                .map(|_| ())
        } else {
            self.take_specific_prefixes(&subnet_id, &req.prefixes, &mut taken)
                .map(|_| ())
        };
        if let Err(e) = res {
            self.give_back(&subnet_id, &taken);
            return Err(e);
        }
        let now = self.now();
        let mut out = Assigned::default();
        // Reassigned addresses appear in `taken` once for the move and may
        // appear again for the take; keep each once.
        let mut added = HashSet::new();
        for ip in taken
            .addresses
            .iter()
            .copied()
            .filter(|ip| added.insert(*ip))
        {
            out.addresses.push(ip);
        }
        out.prefixes = taken.prefixes.iter().map(|c| c.to_string()).collect();
        self.record(eni_id, &out, now);
        Ok(out)
    }

    /// Puts allocated addresses and prefixes on the ENI and in the owner maps.
    pub(crate) fn record(&mut self, eni_id: &str, what: &Assigned, now: u64) {
        for ip in &what.addresses {
            self.addr_owner.insert(*ip, eni_id.to_string());
        }
        for p in &what.prefixes {
            if let Ok(c) = parse_cidr(p) {
                self.prefix_owner.insert(c.network, eni_id.to_string());
            }
        }
        if let Some(rec) = self.enis.get_mut(eni_id) {
            for ip in &what.addresses {
                rec.eni.private_ips.push(PrivateIp {
                    address: *ip,
                    primary: false,
                });
                rec.ip_added_ms.insert(*ip, now);
            }
            for p in &what.prefixes {
                rec.eni.prefixes.push(p.clone());
                rec.prefix_added_ms.insert(p.clone(), now);
            }
        }
    }

    fn unassign(
        &mut self,
        eni_id: &str,
        addresses: &[Ipv4Addr],
        prefixes: &[String],
    ) -> Result<(), SimError> {
        let e = &self.eni(eni_id)?.eni;
        if addresses.is_empty() && prefixes.is_empty() {
            return err(
                ErrorCode::MissingParameter,
                "PrivateIpAddress or Ipv4Prefix is required",
            );
        }
        for ip in addresses {
            match e.private_ips.iter().find(|p| p.address == *ip) {
                None => return bad_value(format!("address {ip} is not assigned to {eni_id}")),
                Some(p) if p.primary => {
                    return bad_value(format!(
                        "address {ip} is the primary address of {eni_id} and cannot be unassigned"
                    ))
                }
                Some(_) => {}
            }
        }
        let mut cidrs = Vec::new();
        for p in prefixes {
            let c = parse_cidr(p)?;
            if !e.prefixes.contains(&c.to_string()) {
                return bad_value(format!("prefix {p} is not assigned to {eni_id}"));
            }
            cidrs.push(c);
        }
        let subnet_id = e.subnet_id.clone();
        for &ip in addresses {
            self.release_address(&subnet_id, ip);
        }
        for &c in &cidrs {
            self.release_prefix(&subnet_id, c);
        }
        let rec = self.eni_mut(eni_id)?;
        rec.eni
            .private_ips
            .retain(|p| !addresses.contains(&p.address));
        for ip in addresses {
            rec.ip_added_ms.remove(ip);
        }
        let gone: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        rec.eni.prefixes.retain(|p| !gone.contains(p));
        for p in &gone {
            rec.prefix_added_ms.remove(p);
        }
        Ok(())
    }
}

pub(crate) fn bad_value<T>(message: String) -> Result<T, SimError> {
    err(ErrorCode::InvalidParameterValue, message)
}

fn combination<T>(what: &str) -> Result<T, SimError> {
    err(
        ErrorCode::InvalidParameterCombination,
        format!("{what} cannot be specified together"),
    )
}

/// Addresses a prefix covers, for tests and the fabric.
pub fn prefix_addresses(prefix: &str) -> Result<Vec<Ipv4Addr>, SimError> {
    let take = usize::try_from(PREFIX_SIZE).unwrap_or(usize::MAX);
    Ok(parse_cidr(prefix)?.addresses().take(take).collect())
}

impl SimVpc {
    /// AssignPrivateIpAddresses. The per-ENI limit (addresses, primary
    /// included, plus prefixes) applies while the ENI is attached.
    pub fn assign_private_ip_addresses(
        &self,
        eni_id: &str,
        req: AssignIps,
    ) -> Result<Assigned, SimError> {
        self.with(|s| s.assign(eni_id, &req))
    }

    /// UnassignPrivateIpAddresses (addresses and/or prefixes).
    pub fn unassign_private_ip_addresses(
        &self,
        eni_id: &str,
        addresses: &[Ipv4Addr],
        prefixes: &[String],
    ) -> Result<(), SimError> {
        self.with(|s| s.unassign(eni_id, addresses, prefixes))
    }
}
