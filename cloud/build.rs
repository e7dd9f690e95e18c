//! Compiles `data/instance-types.txt` into a static table, so that a malformed line fails
//! the build instead of surprising a node at run time.

use std::fmt::Write as _;
use std::path::PathBuf;

const TABLE: &str = "data/instance-types.txt";

fn main() -> Result<(), String> {
    println!("cargo:rerun-if-changed={TABLE}");
    let text = std::fs::read_to_string(TABLE).map_err(|e| format!("{TABLE}: {e}"))?;
    let mut code = String::from("&[\n");
    let mut names = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{TABLE}:{}", n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, enis, ipv4, hypervisor, vcpus] = fields[..] else {
            return Err(format!("{}: want 5 columns, got {line:?}", at()));
        };
        let number = |what: &str, v: &str| -> Result<u32, String> {
            match v.parse::<u32>() {
                Ok(x) if x > 0 => Ok(x),
                _ => Err(format!("{}: {what} {v:?} is not a positive number", at())),
            }
        };
        let (enis, ipv4, vcpus) = (
            number("enis", enis)?,
            number("ipv4", ipv4)?,
            number("vcpus", vcpus)?,
        );
        // DescribeInstanceTypes names no hypervisor for bare metal: not Nitro, as the EC2
        // path reads it, so both sources agree.
        let nitro = match hypervisor {
            "nitro" => true,
            "xen" | "metal" => false,
            other => return Err(format!("{}: unknown hypervisor {other:?}", at())),
        };
        if !names.insert(name.to_owned()) {
            return Err(format!("{}: {name} listed twice", at()));
        }
        writeln!(
            code,
            "    InstanceType {{ name: {name:?}, max_enis: {enis}, ipv4_per_eni: {ipv4}, \
             nitro: {nitro}, vcpus: {vcpus} }},"
        )
        .map_err(|e| e.to_string())?;
    }
    code.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    std::fs::write(out.join("instance_types.rs"), code).map_err(|e| e.to_string())
}
