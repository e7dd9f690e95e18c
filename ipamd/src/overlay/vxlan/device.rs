//! The `vxlan.vpc` device: created, or reused when the kernel's copy already has our settings,
//! or recreated when it does not (a VNI, port, local address or underlay cannot be changed in
//! place).

use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkVxlan};
use vpc_cni::netlink as nl;

use super::core::{OverlaySpec, DEVICE_NAME};
use crate::error::IpamdError;

/// What [`ensure_device`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChange {
    /// The device was there with our settings, up, with its address.
    Unchanged,
    /// The device was there with compatible settings; MTU, MAC, state or address were fixed.
    Updated,
    Created,
    /// The device had settings that cannot change in place and was replaced.
    Recreated,
}

/// Link index of the device and what was done to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub index: u32,
    pub underlay_index: u32,
    pub change: DeviceChange,
}

/// The VXLAN settings of a link, or `None` when it is not a VXLAN device.
fn vxlan_info(link: &LinkMessage) -> Option<&[InfoVxlan]> {
    let infos = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => Some(infos),
        _ => None,
    })?;
    let is_vxlan = infos
        .iter()
        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)));
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(data)) => Some(data.as_slice()),
        _ => None,
    });
    if is_vxlan {
        data
    } else {
        None
    }
}

/// Whether the device's immutable settings are ours.
fn is_compatible(info: &[InfoVxlan], spec: &OverlaySpec, underlay_index: u32) -> bool {
    let has = |want: &InfoVxlan| info.iter().any(|i| i == want);
    has(&InfoVxlan::Id(spec.vni))
        && has(&InfoVxlan::Port(spec.port))
        && has(&InfoVxlan::Local(spec.underlay_ip))
        && has(&InfoVxlan::Link(underlay_index))
        && has(&InfoVxlan::Learning(false))
        // A remote or group would flood unknown destinations to it.
        && !info.iter().any(|i| matches!(i, InfoVxlan::Group(_) | InfoVxlan::Group6(_)))
        && !info.iter().any(|i| matches!(i, InfoVxlan::CollectMetadata(true)))
}

async fn link_named(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, IpamdError> {
    nl::link_by_name(handle, name)
        .await
        .map_err(IpamdError::netlink(format!("looking up link {name}")))
}

async fn create(handle: &Handle, spec: &OverlaySpec, underlay: u32) -> Result<(), IpamdError> {
    let msg = LinkVxlan::new(DEVICE_NAME, spec.vni)
        .dev(underlay)
        .local(spec.underlay_ip)
        .port(spec.port)
        .learning(false)
        .mtu(spec.device_mtu())
        .address(spec.own_vtep_mac().0.to_vec())
        .up()
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(IpamdError::netlink(format!(
            "creating {DEVICE_NAME} (VNI {}, port {}, local {} on {})",
            spec.vni, spec.port, spec.underlay_ip, spec.underlay_iface
        )))
}

/// Makes `vxlan.vpc` in the calling thread's netns match `spec`: settings, MAC, MTU, up, and
/// the own pod CIDR's network address as its only IPv4 address.
pub async fn ensure_device(handle: &Handle, spec: &OverlaySpec) -> Result<Device, IpamdError> {
    spec.validate()?;
    let underlay = link_named(handle, &spec.underlay_iface)
        .await?
        .map(|l| l.header.index)
        .ok_or_else(|| IpamdError::Config {
            variable: "VXLAN_UNDERLAY_IFACE",
            reason: format!("no interface named {:?}", spec.underlay_iface),
        })?;

    let existing = link_named(handle, DEVICE_NAME).await?;
    let mut change = match existing {
        Some(ref link) if vxlan_info(link).is_some_and(|i| is_compatible(i, spec, underlay)) => {
            DeviceChange::Unchanged
        }
        Some(link) => {
            tracing::info!(
                device = DEVICE_NAME,
                "existing device has other VXLAN settings; recreating it"
            );
            nl::gone_is_ok(handle.link().del(link.header.index).execute().await)
                .map_err(IpamdError::netlink(format!("deleting stale {DEVICE_NAME}")))?;
            create(handle, spec, underlay).await?;
            DeviceChange::Recreated
        }
        None => {
            create(handle, spec, underlay).await?;
            DeviceChange::Created
        }
    };

    let link = link_named(handle, DEVICE_NAME).await?.ok_or_else(|| {
        IpamdError::Internal(format!("{DEVICE_NAME} vanished right after being set up"))
    })?;
    let index = link.header.index;
    let mac = spec.own_vtep_mac();
    let set = nl::ensure_link_up(handle, index, Some(&link), spec.device_mtu(), Some(mac))
        .await
        .map_err(IpamdError::netlink(format!(
            "setting {DEVICE_NAME} up with MTU {} and MAC {mac}",
            spec.device_mtu(),
        )))?;
    if set && change == DeviceChange::Unchanged {
        change = DeviceChange::Updated;
    }
    if sync_address(handle, index, spec.own_pod_cidr.map(|c| c.network)).await?
        && change == DeviceChange::Unchanged
    {
        change = DeviceChange::Updated;
    }
    Ok(Device {
        index,
        underlay_index: underlay,
        change,
    })
}

/// Leaves `address/32` as the device's only IPv4 address (none at all without one); a /32
/// adds no subnet route, so nothing but our per-peer routes points at the device. Returns
/// whether anything changed.
async fn sync_address(
    handle: &Handle,
    index: u32,
    address: Option<Ipv4Addr>,
) -> Result<bool, IpamdError> {
    let current = nl::ipv4_address_messages(handle, index)
        .await
        .map_err(IpamdError::netlink(format!(
            "listing addresses of {DEVICE_NAME}"
        )))?;
    let mut present = false;
    let mut changed = false;
    for msg in current {
        let local = nl::address_local(&msg);
        if address.is_some() && local == address && msg.header.prefix_len == 32 {
            present = true;
            continue;
        }
        let what = format!("removing stale address {local:?} from {DEVICE_NAME}");
        nl::gone_is_ok(handle.address().del(msg).execute().await)
            .map_err(IpamdError::netlink(what))?;
        changed = true;
    }
    if let Some(address) = address.filter(|_| !present) {
        handle
            .address()
            .add(index, IpAddr::V4(address), 32)
            .execute()
            .await
            .map_err(IpamdError::netlink(format!(
                "adding {address}/32 to {DEVICE_NAME}"
            )))?;
        changed = true;
    }
    Ok(changed)
}
