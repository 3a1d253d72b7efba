//! `cargo xtask bench boot`: xenkvm and the anchor QEMU 10.2 (ANCHORS.md) boot
//! the same Debian kernel and image with the same memory and vCPUs, in turn, in
//! one L1 of the nested harness. L1's script times each VMM from its start to
//! the guest's `/init` marker (L1's `/proc/uptime`) and samples its peak RSS
//! (`VmHWM`); this module parses those lines and prints times, RSS and ratios.

/// One VMM run as the L1 script reports it:
/// `BOOT-RESULT vmm=NAME start=S init=T hwm_kib=K rc=R` (seconds of L1 uptime).
#[derive(Debug, Clone, PartialEq)]
pub struct BootRun {
    pub vmm: String,
    /// Start to guest `/init`, seconds; `None` when the marker never came.
    pub to_init_s: Option<f64>,
    pub hwm_kib: u64,
    pub rc: i32,
}

const TAG: &str = "BOOT-RESULT ";

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// Every result line in `out`, in order.
pub fn parse(out: &str) -> Vec<BootRun> {
    out.lines()
        .filter_map(|l| l.find(TAG).map(|i| &l[i + TAG.len()..]))
        .filter_map(|l| {
            let start: f64 = field(l, "start")?.parse().ok()?;
            let init = field(l, "init").and_then(|t| t.parse::<f64>().ok());
            Some(BootRun {
                vmm: field(l, "vmm")?.to_string(),
                to_init_s: init.map(|t| t - start).filter(|d| *d >= 0.0),
                hwm_kib: field(l, "hwm_kib")?.parse().ok()?,
                rc: field(l, "rc")?.parse().ok()?,
            })
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

/// Report lines; `Err` when a VMM never reached `/init` or is missing.
pub fn report(runs: &[BootRun]) -> Result<Vec<String>, String> {
    let mut out = vec!["bench boot (same kernel, image, -m and -smp; one L1; start -> guest /init, peak RSS)".to_string()];
    for r in runs {
        let t = r.to_init_s.map_or("never".to_string(), |t| format!("{t:6.2} s"));
        out.push(format!("  {:<8} to /init {t}  peak RSS {:7} KiB  exit {}", r.vmm, r.hwm_kib, r.rc));
    }
    let stats = |name: &str| -> Result<(f64, f64), String> {
        let mine: Vec<&BootRun> = runs.iter().filter(|r| r.vmm == name).collect();
        if mine.is_empty() {
            return Err(format!("no {name} run in the output"));
        }
        let times: Option<Vec<f64>> = mine.iter().map(|r| r.to_init_s).collect();
        let times = times.ok_or_else(|| format!("a {name} guest never reached /init"))?;
        let rss = median(mine.iter().map(|r| r.hwm_kib as f64).collect()).unwrap_or(0.0);
        Ok((median(times).unwrap_or(0.0), rss))
    };
    let (xt, xr) = stats("xenkvm")?;
    let (qt, qr) = stats("qemu")?;
    let time_ratio = xt / qt.max(1e-9);
    let rss_ratio = xr / qr.max(1.0);
    out.push(format!("  medians: xenkvm {xt:.2} s {xr:.0} KiB, qemu {qt:.2} s {qr:.0} KiB"));
    out.push(format!("  ratio time xenkvm/qemu : {time_ratio:.3} (goal <= 0.5: {})", verdict(time_ratio <= 0.5)));
    out.push(format!("  ratio RSS  xenkvm/qemu : {rss_ratio:.3} (goal <= 0.25: {})", verdict(rss_ratio <= 0.25)));
    Ok(out)
}

/// A kernel log line with its time stamp, addresses and numbers blanked, so
/// runs compare by what they say.
fn normalise(line: &str) -> String {
    let body = match (line.find('['), line.find(']')) {
        (Some(a), Some(b)) if a < b && line[..a].trim().is_empty() => &line[b + 1..],
        _ => line,
    };
    let mut out = String::new();
    let mut in_number = false;
    for word in body.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            let starts = !in_number && c.is_ascii_digit();
            let continues = in_number && (c.is_ascii_hexdigit() || c == 'x');
            if starts {
                out.push('#');
            }
            in_number = starts || continues;
            if !in_number {
                out.push(c);
            }
        }
        in_number = false;
    }
    out
}

fn xen_related(line: &str) -> bool {
    // Our ACPI tables' OEM id says XENKVM; that is not about Xen.
    let l = line.to_ascii_lowercase().replace("xenkvm", "");
    line.trim_start().starts_with('[') && ["xen", "grant", "evtchn"].iter().any(|k| l.contains(k))
}

/// The guest's Xen-related kernel log lines that appear in some xenkvm run
/// and in no QEMU run (each run's output precedes its result line).
pub fn xen_lines_only_in_xenkvm(out: &str) -> Vec<String> {
    use std::collections::BTreeSet;
    let (mut ours, mut theirs) = (BTreeSet::new(), BTreeSet::new());
    let mut run = Vec::new();
    for line in out.lines() {
        if let Some(i) = line.find(TAG) {
            let target = match field(&line[i + TAG.len()..], "vmm") {
                Some("xenkvm") => &mut ours,
                _ => &mut theirs,
            };
            target.extend(run.drain(..));
        } else if xen_related(line) {
            run.push(normalise(line));
        }
    }
    ours.difference(&theirs).cloned().collect()
}

/// Report lines for the log comparison.
pub fn log_report(out: &str) -> Vec<String> {
    let only = xen_lines_only_in_xenkvm(out);
    let mut lines = vec![format!("  Xen-related guest log lines in xenkvm's runs and in none of QEMU's: {}", only.len())];
    lines.extend(only.iter().take(20).map(|l| format!("    {l}")));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_and_reports_medians_and_ratios() {
        let out = "[L1] noise\nBOOT-RESULT vmm=xenkvm start=10.00 init=14.00 hwm_kib=30000 rc=0\n\
                   BOOT-RESULT vmm=qemu start=20.00 init=30.00 hwm_kib=200000 rc=0\n\
                   BOOT-RESULT vmm=xenkvm start=40.00 init=45.00 hwm_kib=32000 rc=0\n\
                   BOOT-RESULT vmm=qemu start=50.00 init=58.00 hwm_kib=210000 rc=0\n";
        let runs = parse(out);
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[0], BootRun { vmm: "xenkvm".into(), to_init_s: Some(4.0), hwm_kib: 30000, rc: 0 });
        let r = report(&runs).unwrap().join("\n");
        assert!(r.contains("medians: xenkvm 4.50 s 31000 KiB, qemu 9.00 s 205000 KiB"), "{r}");
        assert!(r.contains("ratio time xenkvm/qemu : 0.500 (goal <= 0.5: met)"), "{r}");
        assert!(r.contains("ratio RSS  xenkvm/qemu : 0.151 (goal <= 0.25: met)"), "{r}");
    }

    #[test]
    fn xen_log_lines_compare_without_times_and_numbers() {
        assert_eq!(normalise("[   12.5] xen: mask: 0xffff max 881590591483 ns"), "xen: mask: # max # ns");
        let out = "[ 0.10] Xen version 4.17.\n[ 0.20] Grant table initialized\n[ 0.30] xen: extra 0x10\n\
                   [ 0.01] ACPI: XSDT 0x00000000000E0960 000034 (v01 XENKVM XENKVM   00000001 RVAT 01000000)\n\
                   BOOT-RESULT vmm=xenkvm start=1 init=2 hwm_kib=1 rc=0\n\
                   [ 0.11] Xen version 4.17.\n[ 0.21] Grant table initialized\n[ 0.31] Cannot get hvm parameter CONSOLE_EVTCHN\n\
                   BOOT-RESULT vmm=qemu start=3 init=4 hwm_kib=1 rc=0\n";
        assert_eq!(xen_lines_only_in_xenkvm(out), ["xen: extra #"]);
        assert_eq!(log_report(out)[0], "  Xen-related guest log lines in xenkvm's runs and in none of QEMU's: 1");
    }

    #[test]
    fn a_guest_that_never_reaches_init_fails_the_report() {
        let out = "BOOT-RESULT vmm=xenkvm start=1 init= hwm_kib=5 rc=137\nBOOT-RESULT vmm=qemu start=1 init=3 hwm_kib=9 rc=0\n";
        let runs = parse(out);
        assert_eq!(runs[0].to_init_s, None);
        assert!(report(&runs).unwrap_err().contains("xenkvm guest never reached /init"));
        assert!(report(&parse("")).is_err());
    }
}
