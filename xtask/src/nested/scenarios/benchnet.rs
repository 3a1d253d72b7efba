//! `bench-net` (`cargo xtask bench net`): TCP throughput between L1 and the
//! guest's eth0 on a tap, under xenkvm (xen-net-device), the anchor QEMU's
//! xen-net-device and the same QEMU's virtio-net, same kernel, same L1 run.
//! The guest fetches 64 MiB from L1 and sends 64 MiB to L1 with busybox
//! `nc`, timing each with its own clock. Early-boot hangs are retried
//! ([`retry_runner`]).

use anyhow::{ensure, Result};

use super::{report_status, Console};

/// Modules in load order: xen-netfront, and virtio-net for QEMU's virtio run.
pub const MODULES: &[&str] =
    &["xen-netfront", "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net"];

/// MiB each way.
pub const MIB: u32 = 64;

pub const SCRIPT: &str = concat!(
    r#"WATCHDOG=520
( sleep $WATCHDOG; echo "XENKVM-L1: watchdog"; killall -9 xenkvm qemu-system-x86_64 ) &
WD=$!
tunctl -t xk0 >/dev/null || echo "XENKVM-L1: tunctl failed"
ip link set lo up
ip addr add 10.99.0.1/24 dev xk0
ip link set xk0 up
dd if=/dev/zero of=/tmp/to-guest bs=1048576 count=64 2>/dev/null
mkfifo /tmp/hold; exec 3<>/tmp/hold
before_try() {
  killall nc 2>/dev/null
  nc -l -p 5001 < /tmp/to-guest &
  nc -l -p 5002 <&3 > /tmp/from-guest &
  sleep 1
}
"#,
    retry_runner!(),
    r#"NET="-netdev tap,id=n0,ifname=xk0,script=no,downscript=no"
Q="/anchor/qemu-system-x86_64 -L /anchor/pc-bios -accel kvm,xen-version=0x40011,kernel-irqchip=split -cpu host -m 512 -smp 1 -nographic -nodefaults -serial stdio -no-reboot -kernel /l2/vmlinuz -initrd /l2/initrd.gz $NET"
run xenkvm bench_net=1 /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 512 -kernel /l2/vmlinuz -initrd /l2/initrd.gz $NET -device xen-net-device,netdev=n0 -no-reboot --timeout 200
echo "XENKVM-L1: xenkvm received $(wc -c < /tmp/from-guest) bytes"
run qemu-xen bench_net=1 timeout -s KILL 200 $Q -device xen-net-device,netdev=n0
echo "XENKVM-L1: qemu-xen received $(wc -c < /tmp/from-guest) bytes"
run qemu-virtio bench_net=1 timeout -s KILL 200 $Q -device virtio-net-pci,netdev=n0
echo "XENKVM-L1: qemu-virtio received $(wc -c < /tmp/from-guest) bytes"
killall nc 2>/dev/null
kill $WD 2>/dev/null
exit 0"#
);

pub const INIT: &str = r#"echo XENKVM-L2: up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip addr add 10.99.0.2/24 dev eth0
ip link set eth0 up
i=0; while ! ping -c 1 -W 2 10.99.0.1 > /dev/null 2>&1 && [ $i -lt 15 ]; do i=$((i+1)); done
echo "XENKVM-L2: L1 answers after $i failed pings"
mkfifo /tmp/hold; exec 3<>/tmp/hold
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up); nc 10.99.0.1 5001 <&3 > /tmp/got; t1=$(up)
got=$(wc -c < /tmp/got); rm -f /tmp/got
dd if=/dev/zero bs=1048576 count=64 2>/dev/null | nc 10.99.0.1 5002; t2=$(up)
echo "BENCH-NET vmm=guest rx_s=$(awk "BEGIN {print $t1 - $t0}") rx_bytes=$got tx_s=$(awk "BEGIN {print $t2 - $t1}")"
# Let the serial console drain before the power goes.
sleep 3
poweroff -f"#;

/// One measured run: seconds for each direction and bytes received.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetRun {
    pub rx_s: f64,
    pub rx_bytes: u64,
    pub tx_s: f64,
}

fn field<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Each VMM's result (the line before its `XENKVM-L1: NAME tries=N`).
pub fn parse(c: &Console) -> Vec<(String, NetRun)> {
    let mut out = Vec::new();
    let mut pending = None;
    for l in &c.output {
        if let Some(i) = l.find("BENCH-NET ") {
            let l = &l[i..];
            pending = Some(NetRun { rx_s: field(l, "rx_s").unwrap_or(0.0), rx_bytes: field(l, "rx_bytes").unwrap_or(0), tx_s: field(l, "tx_s").unwrap_or(0.0) });
        } else if let Some((name, _)) = l.find("XENKVM-L1: ").and_then(|i| l[i + 11..].split_once(" tries=")) {
            if let Some(run) = pending.take() {
                out.push((name.to_string(), run));
            }
        }
    }
    out
}

fn mbs(s: f64) -> f64 {
    if s > 0.0 {
        f64::from(MIB) / s
    } else {
        f64::INFINITY
    }
}

pub fn check(c: &Console, report: &mut Vec<String>) -> Result<()> {
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L1:") || l.contains("BENCH-NET")).cloned());
    report_status(c, report);
    let runs = parse(c);
    let get = |n: &str| runs.iter().find(|(name, _)| name == n).map(|(_, r)| r.clone());
    let Some(ours) = get("xenkvm") else { anyhow::bail!("no result from xenkvm's guest") };
    report.push(format!("xenkvm: L1 -> guest {:.1} MiB/s, guest -> L1 {:.1} MiB/s", mbs(ours.rx_s), mbs(ours.tx_s)));
    for (name, goal) in [("qemu-xen", 2.0), ("qemu-virtio", 1.0)] {
        match get(name) {
            Some(q) => report.push(format!(
                "xenkvm / {name}: L1 -> guest {:.3}, guest -> L1 {:.3} (goal >= {goal}; {name} {:.1} and {:.1} MiB/s)",
                mbs(ours.rx_s) / mbs(q.rx_s),
                mbs(ours.tx_s) / mbs(q.tx_s),
                mbs(q.rx_s),
                mbs(q.tx_s)
            )),
            None => report.push(format!("{name}: no result")),
        }
    }
    ensure!(ours.rx_bytes == u64::from(MIB) << 20, "xenkvm's guest received {} bytes, not {} MiB", ours.rx_bytes, MIB);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_pair_with_their_vmm() {
        let text = "XENKVM-NESTED: L1 up\nBENCH-NET vmm=guest rx_s=4 rx_bytes=67108864 tx_s=8\nXENKVM-L1: xenkvm tries=1\n\
            BENCH-NET vmm=guest rx_s=8 rx_bytes=67108864 tx_s=8\nXENKVM-L1: qemu-xen tries=1\nXENKVM-NESTED: rc=0";
        let c = Console::parse(&text.lines().map(str::to_string).collect::<Vec<_>>());
        let mut report = Vec::new();
        check(&c, &mut report).unwrap();
        assert!(report.iter().any(|l| l.contains("xenkvm / qemu-xen: L1 -> guest 2.000, guest -> L1 1.000")), "{report:?}");
        assert!(report.iter().any(|l| l == "qemu-virtio: no result"));
    }
}
