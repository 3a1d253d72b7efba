//! Project tasks, the one entry point beyond cargo:
//!
//! - `cargo xtask test`: everything CI runs (unit, component and KVM tests;
//!   clippy when installed). The KVM tests skip themselves where /dev/kvm is absent.
//! - `cargo xtask bench hypercall`: guest-observed hypercall round trip against a
//!   bare port-I/O exit, measured side by side in one guest run; with `--nested`
//!   the same on the real KVM of the nested harness.
//! - `cargo xtask bench boot`: xenkvm and the anchor QEMU 10.2 boot the same
//!   Debian guest in one nested L1: start to `/init` and peak RSS, with ratios.
//! - `cargo xtask bench xenstore`: one client workload against our xenstored and
//!   Debian's C xenstored in the dom0 of a real Xen under QEMU TCG, with ratios.
//! - `cargo xtask nested <scenario>`: xenkvm on a real KVM with Xen support, in
//!   an L1 Linux under QEMU TCG (docs/nested.md).

mod bench;
mod bootbench;
#[cfg(test)]
mod layering;
mod nested;
mod xenstorebench;

use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn test() -> Result<()> {
    let has_clippy = cargo().args(["clippy", "--version"]).output().is_ok_and(|o| o.status.success());
    if has_clippy {
        let mut c = cargo();
        c.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
        run(c)?;
    } else {
        eprintln!("xtask: clippy is not installed; skipping lints");
    }
    let mut c = cargo();
    c.args(["test", "--workspace", "--all-targets"]);
    run(c)
}

/// The hypercall benchmark on this machine's /dev/kvm.
fn bench_host() -> Result<()> {
    let mut b = cargo();
    b.args(["build", "--release", "--package", "xenkvm"]);
    run(b)?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = root.join("target/release/xenkvm");
    let iters = 200_000;
    let out = Command::new(&exe)
        .args(["-append", &format!("bench=hypercall iters={iters}"), "--timeout", "300"])
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = bench::parse(&stdout) else {
        bail!(
            "no benchmark line in the guest output ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for l in bench::report(&line) {
        println!("{l}");
    }
    Ok(())
}

const USAGE: &str = "usage: cargo xtask test | bench hypercall [--nested] | bench boot | bench block | bench net | bench xenstore | nested <scenario>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["test"] => test(),
        ["bench", "hypercall"] => bench_host(),
        ["bench", "hypercall", "--nested"] | ["bench", "--nested", "hypercall"] => nested::run("bench-hypercall"),
        ["bench", "boot"] => nested::run("bench-boot"),
        ["bench", "block"] => nested::run("bench-block"),
        ["bench", "net"] => nested::run("bench-net"),
        ["bench", "xenstore"] => xenstorebench::run(),
        ["bench", ..] => Err(anyhow::anyhow!("usage: cargo xtask bench hypercall [--nested] | bench boot | bench block | bench net | bench xenstore")),
        ["nested", scenario] => nested::run(scenario),
        ["nested", ..] => Err(anyhow::anyhow!("{}", nested::usage())),
        _ => Err(anyhow::anyhow!("{USAGE}\n{}", nested::usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
