//! The guest's benchmark line and its report, shared by `cargo xtask bench
//! hypercall` (host KVM) and the nested `bench-hypercall` scenario.

/// `bench hypercall: iters=N bare_ns=B hcall_ns=H [stub_no_exit_ns=S stub_exit_ns=E]`,
/// all times totals over `iters` iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchLine {
    pub iters: u64,
    pub bare_ns: u64,
    pub hcall_ns: u64,
    pub stub_no_exit_ns: Option<u64>,
    pub stub_exit_ns: Option<u64>,
}

const TAG: &str = "bench hypercall:";

/// Finds the guest's benchmark line in `out` (anywhere in a line, so console
/// prefixes do not matter) and parses its fields.
pub fn parse(out: &str) -> Option<BenchLine> {
    let line = out.lines().find_map(|l| l.find(TAG).map(|i| &l[i + TAG.len()..]))?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    Some(BenchLine {
        iters: field("iters").filter(|n| *n > 0)?,
        bare_ns: field("bare_ns")?,
        hcall_ns: field("hcall_ns")?,
        stub_no_exit_ns: field("stub_no_exit_ns"),
        stub_exit_ns: field("stub_exit_ns"),
    })
}

fn verdict(ratio: f64) -> &'static str {
    if ratio <= 1.10 {
        "met"
    } else {
        "missed"
    }
}

/// The report lines: per-iteration times and the ratios with the goal verdicts.
pub fn report(b: &BenchLine) -> Vec<String> {
    let per = |total: u64| total as f64 / b.iters as f64;
    let ratio = b.hcall_ns as f64 / b.bare_ns.max(1) as f64;
    let mut out = vec![
        format!("bench hypercall ({} iterations each, interleaved, one guest run)", b.iters),
        format!("  bare port-I/O exit round trip : {:8.0} ns", per(b.bare_ns)),
        format!("  xen_version(XENVER_version)   : {:8.0} ns", per(b.hcall_ns)),
        format!("  ratio hypercall / bare exit   : {ratio:.3} (goal <= 1.10: {})", verdict(ratio)),
    ];
    if let (Some(no_exit), Some(stub)) = (b.stub_no_exit_ns, b.stub_exit_ns) {
        let like = b.hcall_ns as f64 / stub.max(1) as f64;
        out.push(format!(
            "  stub instructions, no exit    : {:8.0} ns (what the host charges for the stub's guest instructions)",
            per(no_exit)
        ));
        out.push(format!("  same-shape stub, no-op exit   : {:8.0} ns", per(stub)));
        out.push(format!(
            "  ratio hypercall / same-shape  : {like:.3} (Xen dispatch alone; goal <= 1.10: {})",
            verdict(like)
        ));
        if no_exit > b.bare_ns / 2 {
            out.push(
                "  note: this KVM emulates guest instructions (they cost as much as an exit); \
                 measure on a hardware KVM: cargo xtask bench hypercall --nested"
                    .to_string(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guest_bench_line() {
        let out = "boot\nbench hypercall: iters=1000 bare_ns=5300000 hcall_ns=5600000\n";
        let b = parse(out).unwrap();
        assert_eq!((b.iters, b.bare_ns, b.hcall_ns), (1000, 5_300_000, 5_600_000));
        assert_eq!((b.stub_no_exit_ns, b.stub_exit_ns), (None, None));
        assert_eq!(parse("nothing"), None);
        assert_eq!(parse("bench hypercall: FAIL: no hypercall page"), None);
    }

    #[test]
    fn parses_the_full_line_behind_a_prefix() {
        let out = "[L1] bench hypercall: iters=4 bare_ns=400 hcall_ns=440 stub_no_exit_ns=40 stub_exit_ns=420\r";
        let b = parse(out).unwrap();
        assert_eq!(
            b,
            BenchLine { iters: 4, bare_ns: 400, hcall_ns: 440, stub_no_exit_ns: Some(40), stub_exit_ns: Some(420) }
        );
    }

    #[test]
    fn reports_per_iteration_times_and_verdicts() {
        let b = BenchLine { iters: 4, bare_ns: 400, hcall_ns: 440, stub_no_exit_ns: Some(40), stub_exit_ns: Some(420) };
        let r = report(&b);
        assert_eq!(r.len(), 7);
        assert_eq!(r[0], "bench hypercall (4 iterations each, interleaved, one guest run)");
        assert_eq!(r[1], "  bare port-I/O exit round trip :      100 ns");
        assert_eq!(r[3], "  ratio hypercall / bare exit   : 1.100 (goal <= 1.10: met)");
        assert_eq!(r[6], "  ratio hypercall / same-shape  : 1.048 (Xen dispatch alone; goal <= 1.10: met)");
        let slow = BenchLine { hcall_ns: 800, stub_no_exit_ns: None, ..b };
        let r = report(&slow);
        assert_eq!(r.len(), 4);
        assert!(r[3].ends_with("2.000 (goal <= 1.10: missed)"), "{}", r[3]);
    }
}
