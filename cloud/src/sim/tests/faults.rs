//! admit(): request counts, scripted failures, throttling; reset and dump.

use super::*;

#[test]
fn error_codes_have_ec2_strings_and_statuses() {
    assert_eq!(
        ErrorCode::InvalidNetworkInterfaceInUse.as_str(),
        "InvalidNetworkInterface.InUse"
    );
    assert_eq!(
        ErrorCode::InvalidNetworkInterfaceIdNotFound.as_str(),
        "InvalidNetworkInterfaceID.NotFound"
    );
    assert_eq!(
        ErrorCode::InvalidAttachmentIdNotFound.as_str(),
        "InvalidAttachmentID.NotFound"
    );
    assert_eq!(ErrorCode::RequestLimitExceeded.http_status(), 503);
    assert_eq!(ErrorCode::InternalError.http_status(), 500);
    assert_eq!(ErrorCode::PrivateIpAddressLimitExceeded.http_status(), 400);
    for c in ErrorCode::ALL {
        assert_eq!(c.as_str().parse::<ErrorCode>().unwrap(), c);
    }
    assert!("NoSuchCode".parse::<ErrorCode>().is_err());
    let e = SimError::new(ErrorCode::AttachmentLimitExceeded, "too many");
    assert_eq!(e.to_string(), "AttachmentLimitExceeded: too many");
}

#[test]
fn requests_are_counted_per_action_even_when_refused() {
    let w = World::new("10.0.0.0/24");
    for _ in 0..3 {
        w.sim.admit("DescribeNetworkInterfaces").unwrap();
    }
    w.sim.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    assert!(w.sim.admit("CreateNetworkInterface").is_err());
    let counts = w.sim.request_counts();
    assert_eq!(counts.get("DescribeNetworkInterfaces"), Some(&3));
    assert_eq!(counts.get("CreateNetworkInterface"), Some(&1));
    assert_eq!(counts.len(), 2);
}

#[test]
fn throttle_rate_one_always_refuses_and_zero_never() {
    let w = World::new("10.0.0.0/24");
    w.sim.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..1000 {
        let e = w.sim.admit("AssignPrivateIpAddresses").unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestLimitExceeded);
        assert_eq!(e.code.http_status(), 503);
    }
    w.sim.set_faults(Faults::default());
    for _ in 0..1000 {
        w.sim.admit("AssignPrivateIpAddresses").unwrap();
    }
}

#[test]
fn throttle_rate_half_refuses_some_and_admits_some() {
    let w = World::new("10.0.0.0/24");
    w.sim.set_faults(Faults {
        throttle_rate: 0.5,
        ..Faults::default()
    });
    let refused = (0..1000)
        .filter(|_| w.sim.admit("DescribeInstances").is_err())
        .count();
    // Seeded dice: far from both ends, whatever the exact number.
    assert!((300..700).contains(&refused), "{refused}");
}

#[test]
fn fail_next_n_times_then_succeeds() {
    let w = World::new("10.0.0.0/24");
    w.sim.set_faults(Faults {
        fail_next: vec![FailNext {
            action: "DeleteNetworkInterface".into(),
            times: 2,
            code: "InvalidNetworkInterface.InUse".into(),
        }],
        ..Faults::default()
    });
    // Other actions are untouched.
    w.sim.admit("DetachNetworkInterface").unwrap();
    for left in [1, 0] {
        let e = w.sim.admit("DeleteNetworkInterface").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkInterfaceInUse);
        let pending: u32 = w.sim.faults().fail_next.iter().map(|f| f.times).sum();
        assert_eq!(pending, left);
    }
    w.sim.admit("DeleteNetworkInterface").unwrap();
    assert!(w.sim.faults().fail_next.is_empty());
    assert_eq!(w.sim.request_counts()["DeleteNetworkInterface"], 3);
}

#[test]
fn fail_next_with_unknown_code_is_an_internal_error() {
    let w = World::new("10.0.0.0/24");
    w.sim.set_faults(Faults {
        fail_next: vec![FailNext {
            action: "CreateTags".into(),
            times: 1,
            code: "Bogus".into(),
        }],
        ..Faults::default()
    });
    let e = w.sim.admit("CreateTags").unwrap_err();
    assert_eq!(e.code, ErrorCode::InternalError);
    assert!(e.message.contains("Bogus"));
}

#[test]
fn token_buckets_per_action_class_refill_with_the_clock() {
    let w = World::new("10.0.0.0/24");
    w.sim.set_faults(Faults {
        buckets: Some(BucketConfig {
            mutating_capacity: 2,
            mutating_refill_per_sec: 1,
            describe_capacity: 3,
            describe_refill_per_sec: 10,
        }),
        ..Faults::default()
    });
    w.sim.admit("AttachNetworkInterface").unwrap();
    w.sim.admit("CreateNetworkInterface").unwrap();
    assert_eq!(
        w.sim.admit("CreateNetworkInterface").unwrap_err().code,
        ErrorCode::RequestLimitExceeded
    );
    // The describe bucket is separate.
    for _ in 0..3 {
        w.sim.admit("DescribeNetworkInterfaces").unwrap();
    }
    assert!(w.sim.admit("DescribeInstances").is_err());
    w.advance(100);
    w.sim.admit("DescribeInstances").unwrap();
    assert!(w.sim.admit("CreateNetworkInterface").is_err());
    w.advance(900);
    w.sim.admit("CreateNetworkInterface").unwrap();
    assert!(w.sim.admit("CreateNetworkInterface").is_err());
    assert_eq!(ActionClass::of("DescribeSubnets"), ActionClass::Describe);
    assert_eq!(ActionClass::of("CreateTags"), ActionClass::Mutating);
}

#[test]
fn latency_is_stored_and_faults_round_trip_through_json() {
    let w = World::new("10.0.0.0/24");
    let f = Faults {
        throttle_rate: 0.25,
        latency_ms: 40,
        visibility_delay_ms: 700,
        fail_next: vec![FailNext {
            action: "DeleteNetworkInterface".into(),
            times: 3,
            code: "RequestLimitExceeded".into(),
        }],
        buckets: None,
    };
    w.sim.set_faults(f.clone());
    assert_eq!(w.sim.faults(), f);
    let json = serde_json::to_string(&f).unwrap();
    let back: Faults = serde_json::from_str(&json).unwrap();
    assert_eq!(back, f);
    // Missing fields default, so the admin API can take partial updates.
    let partial: Faults = serde_json::from_str(r#"{"latency_ms": 5}"#).unwrap();
    assert_eq!(partial.latency_ms, 5);
    assert_eq!(partial.throttle_rate, 0.0);
}

#[test]
fn leaked_eni_recipe() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m5.large");
    let e = w.eni();
    let a = w.sim.attach_network_interface(&e.id, &i.id, 1).unwrap();
    w.sim.set_faults(Faults {
        fail_next: vec![FailNext {
            action: "DeleteNetworkInterface".into(),
            times: 1,
            code: "RequestLimitExceeded".into(),
        }],
        ..Faults::default()
    });
    // What the server does per request: admit, then the action.
    w.sim.admit("DetachNetworkInterface").unwrap();
    w.sim.detach_network_interface(&a.id, false).unwrap();
    assert!(w.sim.admit("DeleteNetworkInterface").is_err());
    let leaked = w.eni_by_id(&e.id);
    assert_eq!(leaked.status, "available");
    assert!(leaked.attachment.is_none());
}

#[test]
fn reset_empties_the_world_and_clears_faults_and_counters() {
    let w = World::new("10.0.0.0/24");
    w.instance("m5.large");
    w.sim.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    assert!(w.sim.admit("DescribeInstances").is_err());
    w.sim.reset();
    assert!(w.sim.describe_instances(&[]).unwrap().is_empty());
    assert!(w.sim.describe_subnets(&[]).unwrap().is_empty());
    assert!(w.sim.request_counts().is_empty());
    assert_eq!(w.sim.faults(), Faults::default());
    w.sim.admit("DescribeInstances").unwrap();
    // The injected clock survives a reset.
    assert_eq!(w.sim.now_ms(), T0);
}

#[test]
fn dump_shows_the_whole_state() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m5.large");
    w.sim.admit("DescribeInstances").unwrap();
    let d = w.sim.dump();
    assert_eq!(d["instances"][0]["id"], i.id);
    assert_eq!(d["vpcs"][0]["id"], w.vpc.id);
    assert_eq!(d["subnets"][0]["available_ip_count"], 250);
    assert_eq!(d["enis"][0]["private_ips"][0]["address"], "10.0.0.4");
    assert_eq!(d["request_counts"]["DescribeInstances"], 1);
    assert_eq!(d["now_ms"], T0);
    assert!(d["faults"].is_object());
}

#[test]
fn handle_is_shared_across_clones_and_threads() {
    let w = World::new("10.0.0.0/24");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let sim = w.sim.clone();
            let subnet = w.subnet.id.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        sim.create_network_interface(CreateEni {
                            subnet_id: subnet.clone(),
                            ..CreateEni::default()
                        })
                        .unwrap()
                        .primary_ip()
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100);
}

#[test]
fn requests_are_counted_per_calling_instance_too() {
    let w = World::new("10.0.0.0/24");
    w.sim.admit_from(Some("i-a"), "DescribeInstances").unwrap();
    w.sim.admit_from(Some("i-a"), "DescribeInstances").unwrap();
    w.sim.admit_from(Some("i-b"), "CreateTags").unwrap();
    w.sim.admit_from(None, "CreateTags").unwrap();
    assert_eq!(
        w.sim.request_counts_of("i-a"),
        std::collections::BTreeMap::from([("DescribeInstances".to_owned(), 2)])
    );
    assert_eq!(w.sim.request_counts_of("i-b")["CreateTags"], 1);
    assert!(w.sim.request_counts_of("i-c").is_empty());
    assert_eq!(
        w.sim.request_counts()["CreateTags"],
        2,
        "totals count every caller"
    );
    assert_eq!(w.sim.request_counts_by_instance().len(), 2);
    w.sim.reset();
    assert!(w.sim.request_counts_by_instance().is_empty());
}
