//! Eventual consistency: new attachments and addresses stay hidden from
//! Describe, IMDS and the fabric until the clock passes the delay.

use super::*;

fn delay(w: &World, ms: u64) {
    w.sim.set_faults(Faults {
        visibility_delay_ms: ms,
        ..Faults::default()
    });
}

#[test]
fn new_attachment_is_hidden_until_the_delay_passes() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m5.large");
    delay(&w, 1000);
    // The primary ENI exists from launch and is never hidden.
    let imds = w.sim.imds_instance(&i.id).unwrap();
    assert_eq!(imds.interfaces.len(), 1);
    let e = w.eni();
    w.sim.attach_network_interface(&e.id, &i.id, 1).unwrap();

    let seen = w.eni_by_id(&e.id);
    assert!(seen.attachment.is_none());
    assert_eq!(seen.status, "available");
    let by_instance = EniFilter {
        attachment_instance_id: Some(i.id.clone()),
        ..EniFilter::default()
    };
    let page = w
        .sim
        .describe_network_interfaces(&by_instance, None, None)
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(w.sim.imds_instance(&i.id).unwrap().interfaces.len(), 1);
    assert_eq!(w.sim.fabric_view().enis.len(), 1);
    // The rule still sees the real state: the device index is taken.
    let e2 = w.eni();
    assert_eq!(
        code(w.sim.attach_network_interface(&e2.id, &i.id, 1)),
        ErrorCode::InvalidParameterValue
    );

    w.advance(999);
    assert!(w.eni_by_id(&e.id).attachment.is_none());
    w.advance(1);
    let seen = w.eni_by_id(&e.id);
    assert_eq!(seen.attachment.unwrap().device_index, 1);
    assert_eq!(seen.status, "in-use");
    let imds = w.sim.imds_instance(&i.id).unwrap();
    assert_eq!(imds.interfaces.len(), 2);
    assert_eq!(imds.interfaces[1].interface_id, e.id);
    assert_eq!(imds.interfaces[1].mac, e.mac);
    assert_eq!(w.sim.fabric_view().enis.len(), 2);
}

#[test]
fn new_addresses_and_prefixes_are_hidden_until_the_delay_passes() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m5.large");
    delay(&w, 500);
    let ips = w
        .sim
        .assign_private_ip_addresses(&i.primary_eni, count(2))
        .unwrap();
    w.advance(100);
    let pfx = w
        .sim
        .assign_private_ip_addresses(&i.primary_eni, prefixes(1))
        .unwrap();

    let e = w.eni_by_id(&i.primary_eni);
    assert_eq!(e.private_ips.len(), 1);
    assert!(e.prefixes.is_empty());
    let iface = &w.sim.imds_instance(&i.id).unwrap().interfaces[0];
    assert_eq!(iface.local_ipv4s, vec![i.private_ip]);
    assert!(iface.ipv4_prefixes.is_empty());

    w.advance(400); // addresses are 500 ms old, the prefix 400 ms
    let iface = &w.sim.imds_instance(&i.id).unwrap().interfaces[0];
    let mut want = vec![i.private_ip];
    want.extend(&ips.addresses);
    assert_eq!(iface.local_ipv4s, want);
    assert!(iface.ipv4_prefixes.is_empty());
    assert_eq!(w.eni_by_id(&i.primary_eni).private_ips.len(), 3);

    w.advance(100);
    let iface = &w.sim.imds_instance(&i.id).unwrap().interfaces[0];
    assert_eq!(iface.ipv4_prefixes, pfx.prefixes);
    let fabric = w.sim.fabric_view();
    assert_eq!(fabric.enis[0].prefixes, pfx.prefixes);
}

#[test]
fn without_delay_everything_is_visible_at_once() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m5.large");
    let e = w.eni();
    w.sim.attach_network_interface(&e.id, &i.id, 1).unwrap();
    w.sim.assign_private_ip_addresses(&e.id, count(2)).unwrap();
    let imds = w.sim.imds_instance(&i.id).unwrap();
    assert_eq!(imds.interfaces.len(), 2);
    assert_eq!(imds.interfaces[1].local_ipv4s.len(), 3);
}

#[test]
fn imds_view_fields() {
    let w = World::new("10.0.0.0/24");
    w.sim.set_iam_role("node-role");
    let i = w.instance("t3.medium");
    let v = w.sim.imds_instance(&i.id).unwrap();
    assert_eq!(v.region, "us-west-2");
    assert_eq!(v.availability_zone, "us-west-2a");
    assert_eq!(v.instance_type, "t3.medium");
    assert_eq!(v.local_ipv4, i.private_ip);
    assert_eq!(v.iam_role, "node-role");
    let primary = w.eni_by_id(&i.primary_eni);
    assert_eq!(v.mac, primary.mac);
    let f = &v.interfaces[0];
    assert_eq!(f.device_number, 0);
    assert_eq!(f.network_card, 0);
    assert_eq!(f.subnet_id, w.subnet.id);
    assert_eq!(f.subnet_cidr, "10.0.0.0/24");
    assert_eq!(f.vpc_id, w.vpc.id);
    assert_eq!(f.vpc_cidrs, vec!["10.0.0.0/16".to_string()]);
    assert_eq!(
        f.security_group_ids,
        vec![w.vpc.default_security_group.clone()]
    );
    assert!(w.sim.imds_instance("i-00000000000000000").is_none());
}

#[test]
fn instance_by_private_ip_covers_primary_secondary_and_prefix_addresses() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m5.large");
    let e = w.eni();
    w.sim.attach_network_interface(&e.id, &i.id, 1).unwrap();
    let sec = w
        .sim
        .assign_private_ip_addresses(&e.id, count(1))
        .unwrap()
        .addresses[0];
    let pfx = w
        .sim
        .assign_private_ip_addresses(&i.primary_eni, prefixes(1))
        .unwrap()
        .prefixes;
    let in_prefix = prefix_addresses(&pfx[0]).unwrap()[7];
    for ip in [i.private_ip, sec, e.primary_ip().unwrap(), in_prefix] {
        assert_eq!(w.sim.instance_by_private_ip(ip), Some(i.id.clone()), "{ip}");
    }
    assert_eq!(
        w.sim.instance_by_private_ip("10.0.0.250".parse().unwrap()),
        None
    );
    let loose = w.eni();
    assert_eq!(
        w.sim.instance_by_private_ip(loose.primary_ip().unwrap()),
        None
    );
}

#[test]
fn fabric_view_lists_running_instances_and_attached_enis() {
    let w = World::new("10.0.0.0/24");
    let a = w.instance("m5.large");
    let b = w.instance("m5.large");
    let _loose = w.eni();
    w.sim.terminate_instance(&b.id).unwrap();
    let v = w.sim.fabric_view();
    assert_eq!(v.vpc_cidrs, vec!["10.0.0.0/16".to_string()]);
    assert_eq!(v.subnets.len(), 1);
    assert_eq!(
        v.instances.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![a.id]
    );
    assert_eq!(
        v.enis.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![a.primary_eni]
    );
}
