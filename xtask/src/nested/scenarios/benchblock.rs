//! `bench-block` (`cargo xtask bench block`): the same 128 MiB raw image
//! read and written by L1 directly, then as the guest's disk under xenkvm
//! (PV xvda), the anchor QEMU's xen-block (xvda) and the same QEMU's
//! virtio-blk (vda), same kernel, same L1 run. The guest times sequential
//! reads and writes with `dd` (O_DIRECT) and 4 KiB random reads and writes
//! with `fio` (psync, 10 s each). A VMM whose guest hangs in early boot (the
//! L1 fault of docs/nested.md) is killed after 120 s and started again, up
//! to three times; the retries are reported.

use anyhow::{ensure, Result};

use super::{report_status, Console};

/// Modules in load order: virtio for QEMU's virtio-blk, blkfront for the others.
pub const MODULES: &[&str] = &["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk", "xen-blkfront"];
pub const PROGRAMS: &[&str] = &["fio"];

pub const SCRIPT: &str = concat!(
    r#"WATCHDOG=520
( sleep $WATCHDOG; echo "XENKVM-L1: watchdog"; killall -9 xenkvm qemu-system-x86_64 ) &
WD=$!
MIB=128
dd if=/dev/zero of=/tmp/bench.img bs=1048576 count=$MIB 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up); dd if=/tmp/bench.img of=/dev/null bs=1048576 2>/dev/null; t1=$(up)
dd if=/dev/zero of=/tmp/bench.img bs=1048576 count=$MIB conv=notrunc,fsync 2>/dev/null; t2=$(up)
echo "BENCH-BLOCK vmm=l1 seqread_s=$(awk "BEGIN {print $t1 - $t0}") seqwrite_s=$(awk "BEGIN {print $t2 - $t1}") mib=$MIB"
"#,
    retry_runner!(),
    r#"Q="/anchor/qemu-system-x86_64 -L /anchor/pc-bios -accel kvm,xen-version=0x40011,kernel-irqchip=split -cpu host -m 512 -smp 1 -nographic -nodefaults -serial stdio -nic none -no-reboot -kernel /l2/vmlinuz -initrd /l2/initrd.gz"
run xenkvm bench_dev=xvda /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 512 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -drive file=/tmp/bench.img,if=xen,format=raw -no-reboot --timeout 200
run qemu-xen bench_dev=xvda timeout -s KILL 200 $Q -drive file=/tmp/bench.img,if=xen,format=raw
run qemu-virtio bench_dev=vda timeout -s KILL 200 $Q -drive file=/tmp/bench.img,if=virtio,format=raw
kill $WD 2>/dev/null
exit 0"#
);

/// The guest: the disk named by `bench_dev=`, then the four measurements.
pub const INIT: &str = r#"echo XENKVM-L2: up
dev=$(sed -n 's/.*bench_dev=\([a-z]*\).*/\1/p' /proc/cmdline)
i=0; while [ ! -b /dev/$dev ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up); dd if=/dev/$dev of=/dev/null bs=1048576 iflag=direct 2>/dev/null; t1=$(up)
dd if=/dev/zero of=/dev/$dev bs=1048576 count=128 oflag=direct conv=fsync 2>/dev/null; t2=$(up)
rr=$(fio --name=rr --filename=/dev/$dev --rw=randread --bs=4k --direct=1 --ioengine=psync --runtime=10 --time_based --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $8}')
rw=$(fio --name=rw --filename=/dev/$dev --rw=randwrite --bs=4k --direct=1 --ioengine=psync --runtime=10 --time_based --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $49}')
echo "BENCH-BLOCK vmm=guest dev=$dev seqread_s=$(awk "BEGIN {print $t1 - $t0}") seqwrite_s=$(awk "BEGIN {print $t2 - $t1}") randread_iops=$rr randwrite_iops=$rw"
# Let the serial console drain before the power goes.
sleep 3
poweroff -f"#;

/// One measured run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BlockRun {
    pub seqread_s: f64,
    pub seqwrite_s: f64,
    pub randread_iops: Option<f64>,
    pub randwrite_iops: Option<f64>,
}

fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// The result line after the `XENKVM-L1: NAME tries=` line's run, by VMM.
pub fn parse(c: &Console) -> Vec<(String, BlockRun)> {
    let mut out = Vec::new();
    let mut pending: Option<BlockRun> = None;
    for l in &c.output {
        if let Some(i) = l.find("BENCH-BLOCK ") {
            let l = &l[i..];
            let run = BlockRun {
                seqread_s: field(l, "seqread_s").unwrap_or(0.0),
                seqwrite_s: field(l, "seqwrite_s").unwrap_or(0.0),
                randread_iops: field(l, "randread_iops"),
                randwrite_iops: field(l, "randwrite_iops"),
            };
            if l.contains("vmm=l1") {
                out.push(("l1".to_string(), run));
            } else {
                pending = Some(run);
            }
        } else if let Some((name, _)) = l.find("XENKVM-L1: ").and_then(|i| l[i + 11..].split_once(" tries=")) {
            if let Some(run) = pending.take() {
                out.push((name.to_string(), run));
            }
        }
    }
    out
}

fn mbs(mib: f64, s: f64) -> f64 {
    if s > 0.0 {
        mib / s
    } else {
        f64::INFINITY
    }
}

pub fn check(c: &Console, report: &mut Vec<String>) -> Result<()> {
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L1:") || l.contains("BENCH-BLOCK")).cloned());
    report_status(c, report);
    let runs = parse(c);
    let get = |n: &str| runs.iter().find(|(name, _)| name == n).map(|(_, r)| r.clone());
    let (Some(l1), Some(ours)) = (get("l1"), get("xenkvm")) else {
        anyhow::bail!("no result from L1 or from xenkvm's guest");
    };
    let seq = |r: &BlockRun| (mbs(128.0, r.seqread_s), mbs(128.0, r.seqwrite_s));
    let (or, ow) = seq(&ours);
    let (lr, lw) = seq(&l1);
    report.push(format!("xenkvm: seq read {or:.1} MiB/s, seq write {ow:.1} MiB/s, 4K rand read {:?} IOPS, rand write {:?} IOPS", ours.randread_iops, ours.randwrite_iops));
    report.push(format!("xenkvm / L1 direct: seq read {:.3}, seq write {:.3} (goal >= 0.9)", or / lr, ow / lw));
    for (name, goal) in [("qemu-xen", 2.0), ("qemu-virtio", 1.0)] {
        let Some(q) = get(name) else {
            report.push(format!("{name}: no result"));
            continue;
        };
        let (qr, qw) = seq(&q);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "n/a".into(),
        };
        report.push(format!(
            "xenkvm / {name}: seq read {:.3}, seq write {:.3}, rand read {}, rand write {} (goal >= {goal})",
            or / qr,
            ow / qw,
            ratio(ours.randread_iops, q.randread_iops),
            ratio(ours.randwrite_iops, q.randwrite_iops)
        ));
    }
    ensure!(ours.randread_iops.is_some() && ours.randwrite_iops.is_some(), "fio gave no IOPS in xenkvm's guest");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_pair_with_their_vmm() {
        let text = "XENKVM-NESTED: L1 up\nBENCH-BLOCK vmm=l1 seqread_s=0.5 seqwrite_s=1 mib=128\n\
            BENCH-BLOCK vmm=guest dev=xvda seqread_s=4 seqwrite_s=8 randread_iops=1000 randwrite_iops=500\n\
            XENKVM-L1: xenkvm tries=1\nXENKVM-L1: qemu-xen boot 1 hung in early boot; retrying\n\
            BENCH-BLOCK vmm=guest dev=xvda seqread_s=8 seqwrite_s=16 randread_iops=400 randwrite_iops=200\n\
            XENKVM-L1: qemu-xen tries=2\nXENKVM-NESTED: rc=0";
        let c = Console::parse(&text.lines().map(str::to_string).collect::<Vec<_>>());
        let runs = parse(&c);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1].0, "xenkvm");
        assert_eq!(runs[2].1.randread_iops, Some(400.0));
        let mut report = Vec::new();
        check(&c, &mut report).unwrap();
        assert!(report.iter().any(|l| l.contains("xenkvm / qemu-xen: seq read 2.000, seq write 2.000, rand read 2.500")), "{report:?}");
    }
}
