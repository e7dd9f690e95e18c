//! Rule tests for the whole model, one file per concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod addresses;
mod describe;
mod faults;
mod lifecycle;
mod visibility;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::*;

/// A sim on a clock the test steps by hand, with one VPC and one subnet.
pub(super) struct World {
    pub sim: SimVpc,
    pub clock: Arc<AtomicU64>,
    pub vpc: Vpc,
    pub subnet: Subnet,
}

pub(super) const T0: u64 = 1_700_000_000_000;

impl World {
    pub fn new(subnet_cidr: &str) -> World {
        let sim = SimVpc::with_seed(7);
        let clock = Arc::new(AtomicU64::new(T0));
        let c = clock.clone();
        sim.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
        let subnet = sim
            .create_subnet(&vpc.id, subnet_cidr, "us-west-2a")
            .unwrap();
        World {
            sim,
            clock,
            vpc,
            subnet,
        }
    }

    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn instance(&self, ty: &str) -> Instance {
        self.sim.run_instance(&self.subnet.id, ty, "node").unwrap()
    }

    pub fn eni(&self) -> Eni {
        self.sim
            .create_network_interface(CreateEni {
                subnet_id: self.subnet.id.clone(),
                ..CreateEni::default()
            })
            .unwrap()
    }

    pub fn eni_by_id(&self, id: &str) -> Eni {
        let f = EniFilter {
            ids: vec![id.to_string()],
            ..EniFilter::default()
        };
        let mut page = self
            .sim
            .describe_network_interfaces(&f, None, None)
            .unwrap();
        assert_eq!(page.items.len(), 1);
        page.items.remove(0)
    }
}

pub(super) fn count(n: u32) -> AssignIps {
    AssignIps {
        count: n,
        ..AssignIps::default()
    }
}

pub(super) fn prefixes(n: u32) -> AssignIps {
    AssignIps {
        prefix_count: n,
        ..AssignIps::default()
    }
}

pub(super) fn code<T: std::fmt::Debug>(r: Result<T, SimError>) -> ErrorCode {
    r.expect_err("expected an error").code
}
