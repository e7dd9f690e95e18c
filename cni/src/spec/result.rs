//! The ADD result, rendered in the caller's CNI version.
//!
//! The result is built as a `serde_json::Value` rather than through serde
//! structs because its shape differs per version and, when chaining, it must
//! carry the previous plugin's entries verbatim (including fields we do not
//! model).

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::version::CniVersion;

/// An interface the plugin created or configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Lowercase, colon-separated (`MacAddr`'s `Display`).
    pub mac: String,
    /// The netns path for container-side interfaces, `None` for host-side ones.
    pub sandbox: Option<String>,
    /// Only rendered for 1.1.0 and later.
    pub mtu: Option<u32>,
}

/// An address assigned to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Index into this result's own `interfaces` (shifted when chaining).
    pub interface: Option<usize>,
}

/// A route the plugin installed in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub gw: Option<Ipv4Addr>,
}

/// What this plugin contributes to an ADD result; DNS is left to others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
}

/// Renders the spec's result object for `version`.
///
/// With a `prev_result` (chaining), the previous plugin's interfaces, ips,
/// routes and dns come first, unchanged except for `ips[].version`, which is
/// added or removed to match `version`; our entries follow, with our
/// interface indices shifted past the previous interfaces.
#[must_use]
pub fn render(result: &AddResult, version: CniVersion, prev_result: Option<&Value>) -> Value {
    let prev = prev_result.and_then(Value::as_object);
    let prev_array = |key: &str| {
        prev.and_then(|p| p.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };

    let mut interfaces = prev_array("interfaces");
    let offset = interfaces.len();
    interfaces.extend(
        result
            .interfaces
            .iter()
            .map(|i| render_interface(i, version)),
    );

    let mut ips: Vec<Value> = prev_array("ips")
        .into_iter()
        .map(|ip| convert_prev_ip(ip, version))
        .collect();
    ips.extend(result.ips.iter().map(|ip| render_ip(ip, version, offset)));

    let mut routes = prev_array("routes");
    routes.extend(result.routes.iter().map(render_route));

    let dns = prev
        .and_then(|p| p.get("dns"))
        .filter(|d| d.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));

    json!({
        "cniVersion": version.as_str(),
        "interfaces": interfaces,
        "ips": ips,
        "routes": routes,
        "dns": dns,
    })
}

fn render_interface(iface: &Interface, version: CniVersion) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(iface.name));
    obj.insert("mac".into(), json!(iface.mac.to_ascii_lowercase()));
    if let Some(sandbox) = &iface.sandbox {
        obj.insert("sandbox".into(), json!(sandbox));
    }
    if let (Some(mtu), true) = (iface.mtu, version.interface_has_mtu()) {
        obj.insert("mtu".into(), json!(mtu));
    }
    Value::Object(obj)
}

fn render_ip(ip: &IpConfig, version: CniVersion, offset: usize) -> Value {
    let mut obj = Map::new();
    if version.ip_has_version_field() {
        obj.insert("version".into(), json!("4"));
    }
    obj.insert(
        "address".into(),
        json!(format!("{}/{}", ip.address, ip.prefix_len)),
    );
    if let Some(gw) = ip.gateway {
        obj.insert("gateway".into(), json!(gw.to_string()));
    }
    if let Some(index) = ip.interface {
        obj.insert("interface".into(), json!(index + offset));
    }
    Value::Object(obj)
}

fn render_route(route: &Route) -> Value {
    let mut obj = Map::new();
    obj.insert(
        "dst".into(),
        json!(format!("{}/{}", route.dst, route.prefix_len)),
    );
    if let Some(gw) = route.gw {
        obj.insert("gw".into(), json!(gw.to_string()));
    }
    Value::Object(obj)
}

/// Adds or strips `version` on a previous plugin's ip entry for `version`.
fn convert_prev_ip(mut ip: Value, version: CniVersion) -> Value {
    if let Some(obj) = ip.as_object_mut() {
        if version.ip_has_version_field() {
            if !obj.contains_key("version") {
                let is_v6 = obj
                    .get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.contains(':'));
                obj.insert("version".into(), json!(if is_v6 { "6" } else { "4" }));
            }
        } else {
            obj.remove("version");
        }
    }
    ip
}

/// The first IPv4 `ips[].address` of a result of any supported version.
///
/// Also reads a 0.1/0.2-style `ip4.ip`, so a DEL carrying a result written
/// by an old chained plugin still finds its address.
#[must_use]
pub fn first_ipv4(prev_result: &Value) -> Option<(Ipv4Addr, u8)> {
    let from_ips = prev_result
        .get("ips")
        .and_then(Value::as_array)
        .and_then(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address").and_then(Value::as_str))
                .find_map(parse_ipv4_with_prefix)
        });
    from_ips.or_else(|| {
        prev_result
            .get("ip4")
            .and_then(|ip4| ip4.get("ip"))
            .and_then(Value::as_str)
            .and_then(parse_ipv4_with_prefix)
    })
}

/// An IPv4 `address/len` of a result; anything else (IPv6 included) is `None`.
fn parse_ipv4_with_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    vpc_cni_proto::net::parse_address_with_prefix(s).ok()
}

#[cfg(test)]
#[path = "result_tests.rs"]
mod tests;
