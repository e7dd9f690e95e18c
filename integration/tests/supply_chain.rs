//! Licences and bans over the resolved dependency graph (issue 12, security), offline, from
//! `cargo metadata`: every package's licence expression must be satisfiable with licences
//! compatible with shipping vpc-cni under Apache-2.0, and the plugin binary must never pull
//! in the AWS SDK or the Kubernetes client (it runs once per pod; DESIGN.md). No root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Licences we may ship alongside Apache-2.0 code (permissive ones).
const ALLOWED: &[&str] = &[
    "Apache-2.0",
    "MIT",
    "MIT-0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Unicode-3.0",
    "Zlib",
    "Unlicense",
    "CC0-1.0",
    "BSL-1.0",
    "CDLA-Permissive-2.0",
];
const ALLOWED_EXCEPTIONS: &[&str] = &["LLVM-exception"];

/// Crates the plugin binary must not depend on, by name prefix.
const BANNED_IN_PLUGIN: &[&str] = &[
    "aws-sdk-",
    "aws-config",
    "aws-smithy-",
    "kube",
    "k8s-openapi",
    "openssl",
];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A licence expression's tokens; the old `A/B` form means `A OR B`.
fn tokens(expr: &str) -> Vec<String> {
    expr.replace('/', " OR ")
        .replace('(', " ( ")
        .replace(')', " ) ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Whether the expression can be met with `ALLOWED` licences: OR is any, AND is all,
/// `X WITH e` needs X and an allowed exception. An unparsable expression is not met.
fn satisfiable(expr: &str) -> bool {
    fn or(t: &[String], i: &mut usize) -> Option<bool> {
        let mut ok = and(t, i)?;
        while t.get(*i).is_some_and(|w| w == "OR") {
            *i += 1;
            ok |= and(t, i)?;
        }
        Some(ok)
    }
    fn and(t: &[String], i: &mut usize) -> Option<bool> {
        let mut ok = term(t, i)?;
        while t.get(*i).is_some_and(|w| w == "AND") {
            *i += 1;
            ok &= term(t, i)?;
        }
        Some(ok)
    }
    fn term(t: &[String], i: &mut usize) -> Option<bool> {
        let word = t.get(*i)?.clone();
        *i += 1;
        let mut ok = if word == "(" {
            let inner = or(t, i)?;
            (t.get(*i)? == ")").then_some(())?;
            *i += 1;
            inner
        } else {
            ALLOWED.contains(&word.as_str())
        };
        if t.get(*i).is_some_and(|w| w == "WITH") {
            ok &= ALLOWED_EXCEPTIONS.contains(&t.get(*i + 1)?.as_str());
            *i += 2;
        }
        Some(ok)
    }
    let t = tokens(expr);
    let mut i = 0;
    or(&t, &mut i).is_some_and(|ok| ok && i == t.len())
}

#[test]
fn the_licence_check_itself_tells_good_from_bad() {
    assert!(satisfiable("MIT OR Apache-2.0"));
    assert!(satisfiable("MIT/Apache-2.0"));
    assert!(satisfiable("(Apache-2.0 OR MIT) AND BSD-3-Clause"));
    assert!(satisfiable("Apache-2.0 WITH LLVM-exception"));
    assert!(satisfiable("MIT OR Apache-2.0 OR LGPL-2.1-or-later"));
    assert!(!satisfiable("GPL-3.0-only"));
    assert!(!satisfiable("MIT AND GPL-2.0"));
    assert!(!satisfiable("Apache-2.0 WITH Classpath-exception-2.0"));
    assert!(!satisfiable("(MIT"));
    assert!(!satisfiable(""));
}

#[test]
fn every_dependency_has_a_licence_we_may_ship() {
    let meta = metadata();
    let bad: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["license"].as_str().is_some_and(satisfiable))
        .map(|p| {
            format!(
                "{} {}: {:?}",
                p["name"],
                p["version"],
                p["license"].as_str()
            )
        })
        .collect();
    assert!(bad.is_empty(), "licences we may not ship: {bad:#?}");
}

#[test]
fn the_plugin_never_links_the_aws_sdk_or_the_kubernetes_client() {
    let meta = metadata();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let plugin = names
        .iter()
        .find(|(_, name)| **name == "vpc-cni")
        .map(|(id, _)| *id)
        .expect("the vpc-cni package");
    // Normal (non-dev, non-build) dependencies, transitively: what the binary links.
    let mut seen = BTreeSet::new();
    let mut todo = vec![plugin];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let banned: Vec<&str> = seen
        .iter()
        .map(|id| names[id])
        .filter(|name| BANNED_IN_PLUGIN.iter().any(|b| name.starts_with(b)))
        .collect();
    assert!(banned.is_empty(), "the plugin links {banned:?}");
    assert!(
        seen.len() > 10,
        "the walk found only {} packages",
        seen.len()
    );
}
