//! The `rust-version` in Cargo.toml is true for the lockfile: no dependency the library builds
//! with (any feature) needs a newer Rust. Checked from `cargo metadata`, which reports every
//! locked package's own `rust-version`.

use std::collections::{HashMap, HashSet};
use std::process::Command;

use serde_json::Value;

/// `1.89` and `1.89.0` alike, as three numbers.
fn version(text: &str) -> [u64; 3] {
    let mut parts = text.split('.').map(|part| part.parse().unwrap_or(0));
    [(); 3].map(|()| parts.next().unwrap_or(0))
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--all-features",
            "--locked",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let root = metadata["resolve"]["root"]
        .as_str()
        .expect("a root package");
    let claimed = packages[root]["rust_version"]
        .as_str()
        .expect("Cargo.toml states a rust-version");
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // Walk the normal and build dependencies from the library: dev-dependencies build only the
    // tests, benches and examples.
    let mut seen = HashSet::new();
    let mut next = vec![root];
    let mut too_new = Vec::new();
    while let Some(id) = next.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(needed) = packages[id]["rust_version"].as_str() {
            if version(needed) > version(claimed) {
                too_new.push(format!("{} needs {needed}", packages[id]["name"]));
            }
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let kinds = dep["dep_kinds"].as_array().unwrap();
            let not_dev = kinds.iter().any(|k| k["kind"].as_str() != Some("dev"));
            if not_dev {
                next.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    assert!(
        too_new.is_empty(),
        "rust-version {claimed} is below what the lockfile needs: {too_new:?}"
    );
}
