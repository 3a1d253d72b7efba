//! The crate layering of ARCHITECTURE.md, checked on the manifests: only the KVM
//! adapter may use kvm-ioctls/kvm-bindings, and no lower crate may depend on a
//! higher one.

use std::path::Path;

fn deps(krate: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates").join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some(name) = line.split(['.', '=', ' ']).next().filter(|n| !n.is_empty()) {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn only_the_kvm_adapter_uses_kvm_ioctls() {
    for krate in ["xen-abi", "xen-core", "boot", "devices", "vmm", "xenkvm", "test-guest"] {
        let d = deps(krate);
        assert!(!d.iter().any(|n| n == "kvm-ioctls"), "{krate} must not use kvm-ioctls");
    }
    assert!(deps("kvm").iter().any(|n| n == "kvm-ioctls"));
}

#[test]
fn edges_point_down() {
    let forbidden: &[(&str, &[&str])] = &[
        ("xen-abi", &["xenkvm-xen-core", "xenkvm-kvm", "xenkvm-vmm", "xenkvm-devices", "xenkvm-boot"]),
        ("xen-core", &["xenkvm-kvm", "xenkvm-vmm", "xenkvm-devices", "xenkvm-boot", "kvm-bindings"]),
        ("devices", &["xenkvm-kvm", "xenkvm-vmm", "xenkvm-xen-core"]),
        ("boot", &["xenkvm-kvm", "xenkvm-vmm", "xenkvm-xen-core"]),
        ("kvm", &["xenkvm-vmm"]),
    ];
    for (krate, bad) in forbidden {
        let d = deps(krate);
        for b in *bad {
            assert!(!d.iter().any(|n| n == b), "{krate} must not depend on {b}");
        }
    }
}
