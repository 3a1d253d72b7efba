//! `linux-net`: the Debian guest's eth0 (xen-netfront) on a tap in L1, with
//! two vCPUs so that netfront takes two queues.
//! The guest pings L1 and L1 pings the guest; 100 MiB of random bytes go
//! each way over TCP with busybox `nc` (through GSO and checksum offload on
//! both sides), and both ends print MD5 sums the check compares.

use anyhow::{ensure, Result};

use super::{report_status, Console};

/// MiB sent each way.
pub const MIB: u32 = 100;

/// L1 makes a persistent tap, serves a random file on port 5001, receives
/// the guest's on port 5002 (a FIFO held open keeps its `nc` from closing
/// early), pings the guest once it answers, and prints the sums when xenkvm
/// has ended.
pub const LINUX_NET_SCRIPT: &str = r#"tunctl -t xk0 >/dev/null || echo "XENKVM-L1: tunctl failed"
ip link set lo up
ip addr add 10.99.0.1/24 dev xk0
ip link set xk0 up
dd if=/dev/urandom of=/tmp/to-guest bs=1048576 count=100 2>/dev/null
echo "XENKVM-L1: to-guest $(md5sum < /tmp/to-guest | cut -d' ' -f1)"
nc -l -p 5001 < /tmp/to-guest &
mkfifo /tmp/hold; exec 3<>/tmp/hold
nc -l -p 5002 <&3 > /tmp/from-guest &
( i=0; while [ $i -lt 300 ]; do if ping -c 1 -W 1 10.99.0.2 >/dev/null 2>&1; then ping -c 3 10.99.0.2 > /tmp/ping.out 2>&1; echo "XENKVM-L1: ping guest rc=$?"; sed 's/^/XENKVM-L1: ping: /' /tmp/ping.out | tail -n 2; break; fi; i=$((i+1)); done ) &
XENKVM_LOG=info /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 768 -smp 2 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "console=ttyS0 console=hvc0 no_timer_check panic=-1 loglevel=7" -no-reboot -netdev tap,id=n0,ifname=xk0,script=no,downscript=no -device xen-net-device,netdev=n0,mac=52:54:00:12:34:56 --timeout 400
rc=$?
echo "XENKVM-L1: from-guest $(md5sum < /tmp/from-guest | cut -d' ' -f1) bytes $(wc -c < /tmp/from-guest)"
ip -s link show xk0 | sed 's/^/XENKVM-L1: link: /'
echo "XENKVM-L1: xenkvm rc=$rc"
exit $rc"#;

/// The guest brings eth0 up, pings L1, fetches L1's file, sends its own,
/// and stays up a few seconds for L1's ping.
pub const LINUX_NET_INIT: &str = r#"echo XENKVM-L2: up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo XENKVM-L2: eth0 $(cat /sys/class/net/eth0/address 2>&1)
echo XENKVM-L2: eth0 queues $(ls /sys/class/net/eth0/queues | tr '\n' ' ')
ip link set lo up
ip addr add 10.99.0.2/24 dev eth0
ip link set eth0 up
sleep 1
ping -c 3 -W 2 10.99.0.1 > /tmp/ping.out 2>&1
echo XENKVM-L2: ping rc=$?
sed 's/^/XENKVM-L2: ping: /' /tmp/ping.out | tail -n 2
mkfifo /tmp/hold; exec 3<>/tmp/hold
read t0 rest < /proc/uptime
nc 10.99.0.1 5001 <&3 > /tmp/got
read t1 rest < /proc/uptime
echo XENKVM-L2: got $(md5sum < /tmp/got | cut -d' ' -f1) bytes $(wc -c < /tmp/got) in $t0 $t1
dd if=/dev/urandom of=/tmp/send bs=1048576 count=100 2>/dev/null
echo XENKVM-L2: sent $(md5sum < /tmp/send | cut -d' ' -f1)
read t0 rest < /proc/uptime
nc 10.99.0.1 5002 < /tmp/send
echo XENKVM-L2: send rc=$? in $t0 $(cut -d' ' -f1 /proc/uptime)
cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets | tr '\n' ' ' | sed 's/^/XENKVM-L2: eth0 rx,tx packets /'; echo
sleep 8
poweroff -f"#;

/// Seconds between two `/proc/uptime` stamps on a `... in T0 T1` line, as MiB/s.
fn rate(line: &str) -> Option<f64> {
    let mut it = line.split(" in ").nth(1)?.split_whitespace();
    let (t0, t1): (f64, f64) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    (t1 > t0).then(|| f64::from(MIB) / (t1 - t0))
}

pub fn check_linux_net(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L2:") || l.contains("XENKVM-L1:") || l.contains("backend/vif")).cloned());
    report_status(c, report);
    if let Some(r) = c.line_with("XENKVM-L2: got ").and_then(rate) {
        report.push(format!("L1 -> guest: {r:.1} MiB/s"));
    }
    if let Some(r) = c.line_with("XENKVM-L2: send rc=").and_then(rate) {
        report.push(format!("guest -> L1: {r:.1} MiB/s (until the guest's nc returned)"));
    }
    let word = |tag: &str| c.line_with(tag).and_then(|l| l[tag.len()..].split_whitespace().next()).map(str::to_string);
    if text.contains("ENTRY_TRAMPOLINE") {
        report.push("the known ENTRY_TRAMPOLINE stack guard page crash hit this run".into());
    }
    for bad in ["BUG:", "Oops", "Kernel panic"] {
        ensure!(!text.contains(bad), "the guest log has {bad:?}");
    }
    ensure!(text.contains("XENKVM-L2: up"), "the L2 kernel did not reach its /init");
    ensure!(text.contains("XENKVM-L2: eth0 52:54:00:12:34:56"), "the guest has no eth0 with the configured MAC");
    ensure!(text.contains("XENKVM-L2: eth0 queues rx-0 rx-1 tx-0 tx-1"), "netfront did not take two queues on two vCPUs");
    ensure!(text.contains("XENKVM-L2: ping rc=0"), "the guest's ping of L1 failed");
    ensure!(text.contains("XENKVM-L1: ping guest rc=0"), "L1's ping of the guest failed");
    let bytes = (MIB << 20).to_string();
    let (sent, got) = (word("XENKVM-L1: to-guest "), word("XENKVM-L2: got "));
    ensure!(sent.is_some() && sent == got, "the guest received {got:?}, L1 sent {sent:?}");
    ensure!(c.line_with("XENKVM-L2: got ").is_some_and(|l| l.contains(&format!("bytes {bytes} "))), "the guest did not receive {bytes} bytes");
    let (sent, got) = (word("XENKVM-L2: sent "), word("XENKVM-L1: from-guest "));
    ensure!(sent.is_some() && sent == got, "L1 received {got:?}, the guest sent {sent:?}");
    ensure!(c.line_with("XENKVM-L1: from-guest ").is_some_and(|l| l.trim_end().ends_with(&format!("bytes {bytes}"))), "L1 did not receive {bytes} bytes");
    ensure!(c.rc == Some(0), "xenkvm exited with {:?}, not 0", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_run_passes_and_a_corrupt_transfer_fails() {
        let good = "XENKVM-NESTED: L1 up\nXENKVM-L1: to-guest aa\nXENKVM-L2: up\nXENKVM-L2: eth0 52:54:00:12:34:56\nXENKVM-L2: eth0 queues rx-0 rx-1 tx-0 tx-1 \n\
                    XENKVM-L2: ping rc=0\nXENKVM-L2: got aa bytes 104857600 in 10.0 11.0\nXENKVM-L2: sent bb\n\
                    XENKVM-L2: send rc=0 in 20.0 24.0\nXENKVM-L1: ping guest rc=0\nXENKVM-L1: from-guest bb bytes 104857600\nXENKVM-NESTED: rc=0";
        let c = Console::parse(&good.lines().map(str::to_string).collect::<Vec<_>>());
        let mut r = Vec::new();
        check_linux_net(&c, &mut r).unwrap();
        assert!(r.contains(&"L1 -> guest: 100.0 MiB/s".to_string()), "{r:?}");
        let bad = good.replace("from-guest bb", "from-guest cc");
        let c = Console::parse(&bad.lines().map(str::to_string).collect::<Vec<_>>());
        assert!(check_linux_net(&c, &mut Vec::new()).unwrap_err().to_string().contains("L1 received"));
    }
}
