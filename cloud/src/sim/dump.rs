//! The whole state as JSON for the admin API (not the visible view: the
//! admin sees what the model holds, delays ignored).

use serde_json::{json, Value};

use super::SimVpc;

impl SimVpc {
    pub fn dump(&self) -> Value {
        self.with(|s| {
            let vpcs: Vec<_> = s.vpcs.values().map(|v| &v.vpc).collect();
            let subnets: Vec<_> = s.subnets.values().map(|r| r.view()).collect();
            let instances: Vec<_> = s.instances.values().collect();
            let enis: Vec<_> = s.enis.values().map(|r| &r.eni).collect();
            json!({
                "now_ms": s.now(),
                "vpcs": vpcs,
                "subnets": subnets,
                "instances": instances,
                "enis": enis,
                "faults": s.faults,
                "request_counts": s.counts,
            })
        })
    }
}
