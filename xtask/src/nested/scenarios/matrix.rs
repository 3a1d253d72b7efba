//! `linux-matrix`: QEMU's seven Xen guest interrupt-routing cases
//! (tests/functional/x86_64/test_kvm_xen.py), each a fresh `-smp 2` boot of
//! the Debian guest with a virtio-net-pci NIC on a tap and a PV disk. The
//! guest's `/init` does the work itself: it brings eth0 up and pings L1,
//! prints `/proc/interrupts` lines and whether the grant table came up, and
//! powers off. L1 runs each case up to twice (the nested environment's own
//! guest crashes, docs/nested.md, can take a run), and the check reads each
//! case's lines by their `[case]` prefix.

use anyhow::{bail, Result};

use super::{report_status, Console};

/// Modules in load order: the PV disk and the virtio NIC.
pub const MODULES: &[&str] = &[
    "xen-blkfront",
    // virtio takes virtio_break_device from virtio_ring.
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

/// One case: its name, the kernel parameters added to the base line, the
/// xenkvm options added, and the `/proc/interrupts` lines it must show (each
/// a set of words that one line must contain together).
pub struct Case {
    pub name: &'static str,
    pub append: &'static str,
    pub options: &'static str,
    pub irq_lines: &'static [&'static [&'static str]],
}

impl Case {
    /// What the case adds, for the report.
    fn describe(&self) -> String {
        let parts: Vec<&str> = [self.append, self.options].into_iter().filter(|p| !p.is_empty()).collect();
        if parts.is_empty() { "nothing added".into() } else { parts.join("; ") }
    }
}

pub const CASES: [Case; 7] = [
    Case { name: "msi", append: "", options: "", irq_lines: &[&["xen-pirq", "msi", "virtio0-output"]] },
    Case { name: "nomsi", append: "pci=nomsi", options: "", irq_lines: &[&["xen-pirq", "virtio0"]] },
    Case { name: "noapic-nomsi", append: "noapic pci=nomsi", options: "", irq_lines: &[&["xen-pirq", "virtio0"]] },
    Case {
        name: "vapic",
        append: "",
        options: "-cpu host,+xen-vapic",
        irq_lines: &[&["xen-pirq", "acpi"], &["PCI-MSI", "virtio0-output"]],
    },
    Case { name: "novector", append: "xen_no_vector_callback", options: "", irq_lines: &[&["xen-platform-pci", "fasteoi"]] },
    Case {
        name: "novector-nomsi",
        append: "xen_no_vector_callback pci=nomsi",
        options: "",
        irq_lines: &[&["xen-platform-pci", "IO-APIC"]],
    },
    Case {
        name: "novector-noapic",
        append: "xen_no_vector_callback noapic",
        options: "",
        irq_lines: &[&["xen-platform-pci", "XT-PIC"]],
    },
];

/// L1: a tap at 10.98.0.1, a blank 16 MiB PV disk, then `run_case NAME
/// APPEND OPTIONS` for each of [`CASES`] (a test holds the two lists together).
pub const SCRIPT: &str = r#"tunctl -t xk0 >/dev/null || echo "XENKVM-L1: tunctl failed"
ip link set lo up
ip addr add 10.98.0.1/24 dev xk0
ip link set xk0 up
dd if=/dev/zero of=/tmp/xvda.img bs=1048576 count=16 2>/dev/null
BASE="printk.time=0 root=/dev/xvda console=hvc0 xen_emul_unplug=ide-disks no_timer_check panic=-1 loglevel=4"
run_case() {
  name=$1; extra=$2; shift 2
  tries=0
  while [ $tries -lt 2 ]; do
    tries=$((tries+1))
    XENKVM_LOG=info timeout -s KILL 180 /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split "$@" -m 512 -smp 2 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "$BASE $extra" -no-reboot -drive file=/tmp/xvda.img,if=xen,format=raw -netdev tap,id=n0,ifname=xk0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:57 --timeout 160 > /tmp/$name.log 2>&1
    rc=$?
    if grep -q "XENKVM-L2: done" /tmp/$name.log; then break; fi
    tr -cd '\11\12\15\40-\176' < /tmp/$name.log | grep -E "BUG:|Oops|Kernel panic|xenkvm: " | head -n 5 | sed "s/^/[$name] try $tries: /"
  done
  tr -cd '\11\12\15\40-\176' < /tmp/$name.log | grep -E "XENKVM-L2|BUG:|Oops|xenkvm: " | sed "s/^/[$name] /"
  echo "XENKVM-L1: case $name rc=$rc tries=$tries"
}
run_case msi ""
run_case nomsi "pci=nomsi"
run_case noapic-nomsi "noapic pci=nomsi"
run_case vapic "" -cpu host,+xen-vapic
run_case novector "xen_no_vector_callback"
run_case novector-nomsi "xen_no_vector_callback pci=nomsi"
run_case novector-noapic "xen_no_vector_callback noapic"
echo "XENKVM-L1: matrix done""#;

/// The guest: eth0 up, a ping to L1, the lines the check reads, power off.
pub const INIT: &str = r#"echo XENKVM-L2: up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo XENKVM-L2: eth0 $(cat /sys/class/net/eth0/address 2>&1) driver $(basename $(readlink /sys/class/net/eth0/device/driver) 2>&1)
ip link set lo up
ip addr add 10.98.0.2/24 dev eth0
ip link set eth0 up
sleep 1
ping -c 3 -W 2 10.98.0.1 > /tmp/ping.out 2>&1
echo XENKVM-L2: ping rc=$?
i=0
while [ ! -b /dev/xvda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/xvda ] && echo XENKVM-L2: xvda present
dmesg | grep -q "Grant table initialized" && echo XENKVM-L2: grant table initialized
grep -E "virtio|acpi|xen-platform|xen-pirq|PCI-MSI" /proc/interrupts | tr -s ' ' | sed 's/^/XENKVM-L2: irq /'
echo XENKVM-L2: done
poweroff -f"#;

/// Why `case` failed, if it did.
fn case_failure(c: &Case, lines: &[&str]) -> Option<String> {
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    if !has("XENKVM-L2: up") {
        return Some("the guest did not reach its /init".into());
    }
    for (want, why) in [
        ("XENKVM-L2: grant table initialized", "no \"Grant table initialized\""),
        ("XENKVM-L2: ping rc=0", "no ping over the virtio NIC"),
        ("XENKVM-L2: xvda present", "no PV disk"),
    ] {
        if !has(want) {
            return Some(why.into());
        }
    }
    let irqs: Vec<&&str> = lines.iter().filter(|l| l.contains("XENKVM-L2: irq ")).collect();
    for words in c.irq_lines {
        if !irqs.iter().any(|l| words.iter().all(|w| l.contains(w))) {
            return Some(format!("no /proc/interrupts line with {}", words.join(" + ")));
        }
    }
    if !has(&format!("XENKVM-L1: case {} rc=0", c.name)) {
        return Some("no clean poweroff (xenkvm's status was not 0)".into());
    }
    None
}

pub fn check_linux_matrix(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L1:") || l.contains(" try ")).cloned());
    report_status(c, report);
    let mut failed = Vec::new();
    for case in &CASES {
        let prefix = format!("[{}] ", case.name);
        let mut lines: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(&prefix)).collect();
        let status = format!("XENKVM-L1: case {} rc=", case.name);
        lines.extend(text.lines().filter(|l| l.contains(&status)));
        report.extend(lines.iter().filter(|l| l.contains("irq ") || l.contains("eth0")).map(|l| format!("{prefix}{l}")));
        match case_failure(case, &lines) {
            None => report.push(format!("case {}: PASS ({})", case.name, case.describe())),
            Some(why) => {
                report.push(format!("case {}: FAIL: {why}", case.name));
                failed.push(case.name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} of 7 cases failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_case(name: &str, irqs: &[&str]) -> String {
        let mut s = format!(
            "[{name}] XENKVM-L2: up\n[{name}] XENKVM-L2: ping rc=0\n[{name}] XENKVM-L2: xvda present\n\
             [{name}] XENKVM-L2: grant table initialized\n"
        );
        for i in irqs {
            s.push_str(&format!("[{name}] XENKVM-L2: irq {i}\n"));
        }
        s.push_str(&format!("XENKVM-L1: case {name} rc=0 tries=1\n"));
        s
    }

    fn all_good() -> String {
        let mut s = "XENKVM-NESTED: L1 up\n".to_string();
        s += &good_case("msi", &["24: 1 0 xen-pirq -msi-x virtio0-output.0"]);
        s += &good_case("nomsi", &["11: 9 0 xen-pirq -ioapic-level virtio0"]);
        s += &good_case("noapic-nomsi", &["11: 9 0 xen-pirq -ioapic-level virtio0"]);
        s += &good_case("vapic", &["9: 0 0 xen-pirq -ioapic-level acpi", "25: 3 0 PCI-MSI 49153-edge virtio0-output.0"]);
        s += &good_case("novector", &["28: 40 0 IO-APIC 16-fasteoi xen-platform-pci"]);
        s += &good_case("novector-nomsi", &["28: 40 0 IO-APIC 16-fasteoi xen-platform-pci"]);
        s += &good_case("novector-noapic", &["10: 40 0 XT-PIC xen-platform-pci"]);
        s + "XENKVM-NESTED: rc=0"
    }

    fn console(text: &str) -> Console {
        Console::parse(&text.lines().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn all_seven_cases_pass_and_a_wrong_route_fails_its_case() {
        check_linux_matrix(&console(&all_good()), &mut Vec::new()).unwrap();
        let bad = all_good().replace("xen-pirq -msi-x virtio0-output", "PCI-MSI virtio0-output");
        let mut report = Vec::new();
        let e = check_linux_matrix(&console(&bad), &mut report).unwrap_err().to_string();
        assert!(e.contains("1 of 7") && e.contains("msi"), "{e}");
        assert!(report.iter().any(|l| l.contains("case msi: FAIL: no /proc/interrupts line with xen-pirq + msi")), "{report:?}");
        let bad = all_good().replace("XENKVM-L1: case vapic rc=0", "XENKVM-L1: case vapic rc=137");
        assert!(check_linux_matrix(&console(&bad), &mut Vec::new()).unwrap_err().to_string().contains("vapic"));
    }

    #[test]
    fn the_script_runs_every_case_with_its_options() {
        for c in &CASES {
            let line = format!("\nrun_case {} \"{}\"{}{}\n", c.name, c.append, if c.options.is_empty() { "" } else { " " }, c.options);
            assert!(SCRIPT.contains(&line), "{line}");
        }
        assert_eq!(SCRIPT.matches("\nrun_case ").count(), 7);
    }
}
