//! Builds the freestanding test guest in `guest/` (at the workspace root) into
//! `$OUT_DIR/xenkvm-test-guest.elf`.
//!
//! The guest is not a Cargo package: it is one `#![no_std]` crate compiled by
//! invoking `rustc` directly (the `RUSTC` cargo hands to build scripts) for the
//! host target `x86_64-unknown-linux-gnu`, which the stable toolchain always
//! has. No nightly, `build-std` or extra target is needed: the guest only uses
//! `core` (whose precompiled copy is fine for a static, freestanding image) and
//! brings its own entry code, `mem*` functions and linker script.
//!
//! The guest is compiled with `-C target-feature=-sse`: the host runs this
//! guest through KVM's instruction emulator (seen as "kvm-pvm: INTERNAL_ERROR
//! in batch emul" in the host log), which cannot execute x87/SSE instructions,
//! so one `pxor` kills the VM. rustc warns that disabling SSE2 on this target
//! is "being phased out" (rust-lang/rust#116344); that single known warning
//! is not forwarded. The guest also avoids `core::fmt`, whose precompiled code
//! uses SSE (see guest/src/print.rs).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the guest is compiled for (the only one installed).
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// Name of the image in `OUT_DIR`, as `include_bytes!` in `src/lib.rs` expects.
const IMAGE_NAME: &str = "xenkvm-test-guest.elf";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let guest_dir = manifest_dir.join("../../guest");
    let guest_dir = guest_dir.canonicalize().unwrap_or_else(|e| {
        fail(&format!("the guest sources are missing: {}: {e}", guest_dir.display()));
    });
    let main_rs = guest_dir.join("src/main.rs");
    let link_ld = guest_dir.join("link.ld");
    let image = out_dir.join(IMAGE_NAME);

    // Cargo rescans a directory given to rerun-if-changed recursively.
    println!("cargo:rerun-if-changed={}", guest_dir.join("src").display());
    println!("cargo:rerun-if-changed={}", link_ld.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(&rustc);
    cmd.arg("--edition=2021")
        .args(["--crate-type", "bin"])
        .args(["--crate-name", "xenkvm_test_guest"])
        .args(["--target", GUEST_TARGET])
        .args(["-C", "opt-level=2"])
        .args(["-C", "panic=abort"])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "code-model=small"])
        .args(["-C", "force-unwind-tables=no"])
        .args(["-C", "strip=debuginfo"])
        .args(["-C", "codegen-units=1"])
        .args(["-C", "target-feature=-sse"])
        .args(["-C", "link-arg=-nostartfiles"])
        .args(["-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static"])
        .arg("-C")
        .arg(link_arg("-Wl,-T,", &link_ld))
        .args(["-C", "link-arg=-Wl,--build-id=none"])
        .arg("-o")
        .arg(&image)
        .arg(&main_rs)
        // Flags meant for the host crates must not leak into the guest.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");

    let output = cmd.output().unwrap_or_else(|e| {
        fail(&format!("cannot run the Rust compiler {:?}: {e}", rustc));
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{stderr}");
        fail(&format!(
            "compiling the test guest failed ({}).\ncommand: {:?}\nThe guest needs only the stable toolchain and its default target {GUEST_TARGET}, plus the system C compiler driver `cc` as linker.",
            output.status, cmd
        ));
    }
    for line in stderr.lines().filter(|l| is_news(l)) {
        println!("cargo:warning=test guest: {line}");
    }
    if !image.is_file() {
        fail(&format!("rustc succeeded but {} is missing", image.display()));
    }
}

/// Whether a line of rustc's output is a warning worth showing: not the known
/// SSE2 ABI warning and not the "N warnings emitted" summary.
fn is_news(line: &str) -> bool {
    line.starts_with("warning")
        && !line.contains("target feature `sse2` must be enabled")
        && !(line.contains(" warning") && line.ends_with(" emitted"))
}

/// `link-arg=<prefix><path>`.
fn link_arg(prefix: &str, path: &Path) -> String {
    format!("link-arg={prefix}{}", path.display())
}

/// Reports a build failure clearly and stops the build.
fn fail(msg: &str) -> ! {
    eprintln!("error: xenkvm-test-guest: {msg}");
    panic!("xenkvm-test-guest: building the test guest failed (see the message above)");
}
