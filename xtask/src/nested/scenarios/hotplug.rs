//! `linux-hotplug`: disks and a NIC plugged into the running Debian guest
//! over QMP, used, and unplugged while it keeps running.
//!
//! One disk comes from `-drive if=none` at start, the other from QMP
//! `blockdev-add`; the NIC's tap from `-netdev`. The guest checksums the first
//! disk, writes a known block to the second and syncs, pings L1 over the new
//! NIC (and L1 pings it), and sees all three vanish on `device_del`; L1
//! checks the written block after xenkvm ended.

use anyhow::{ensure, Result};

use super::{report_status, Console};

pub const LINUX_HOTPLUG_INIT: &str = qmp_shell_init!();

/// `wait_for COND` in the guest's shell: polls a test for up to 30 s.
pub const LINUX_HOTPLUG_SCRIPT: &str = concat!(
    qmp_driver!(),
    r#"WATCHDOG=400
( sleep $WATCHDOG; echo "XENKVM-L1: watchdog"; killall -9 xenkvm ) &
WD=$!
tunctl -t xk1 >/dev/null || echo "XENKVM-L1: tunctl failed"
ip addr add 10.99.1.1/24 dev xk1
ip link set xk1 up
dd if=/dev/urandom of=/tmp/hot0.img bs=1048576 count=8 2>/dev/null
dd if=/dev/zero of=/tmp/hot1.img bs=1048576 count=8 2>/dev/null
echo "XENKVM-L1: hot0 $(md5sum < /tmp/hot0.img | cut -d' ' -f1)"
EXTRA="-drive file=/tmp/hot0.img,if=none,id=hot0,format=raw -netdev tap,id=n1,ifname=xk1,script=no,downscript=no"
start "$APPEND" 380
await "XENKVM-L2: shell" 1
echo 'w() { i=0; while ! eval "$1" && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; }' >&3
qmp device_add '{"driver":"xen-disk","id":"disk1","drive":"hot0"}'
qmp blockdev-add '{"driver":"raw","node-name":"hot1","file":{"driver":"file","filename":"/tmp/hot1.img"}}'
qmp device_add '{"driver":"xen-disk","id":"disk2","drive":"hot1","vdev":"xvdc"}'
qmp device_add '{"driver":"xen-net-device","id":"nic1","netdev":"n1","mac":"52:54:00:12:34:99"}'
cat >&3 <<'CMDS'
w '[ -b /dev/xvda ]'; echo "XENKVM-L2: xvda $(md5sum < /dev/xvda | cut -d' ' -f1)"
w '[ -b /dev/xvdc ]'; echo hotplugged-block-ok | dd of=/dev/xvdc bs=512 conv=sync,fsync 2>/dev/null; echo "XENKVM-L2: xvdc written rc=$?"
w '[ -e /sys/class/net/eth0 ]'; echo "XENKVM-L2: eth0 $(cat /sys/class/net/eth0/address)"
ip addr add 10.99.1.2/24 dev eth0; ip link set eth0 up; sleep 1
ping -c 3 -W 2 10.99.1.1 > /tmp/ping.out 2>&1; echo "XENKVM-L2: ping rc=$?"
echo XENKVM-L2: used
CMDS
await "XENKVM-L2: used" 1
ping -c 3 -W 2 10.99.1.2 > /tmp/ping.out 2>&1; echo "XENKVM-L1: ping guest rc=$?"
qmp device_del '{"id":"disk1"}'
qmp device_del '{"id":"disk2"}'
qmp device_del '{"id":"nic1"}'
cat >&3 <<'CMDS'
w '[ ! -b /dev/xvda ] && [ ! -b /dev/xvdc ]'; echo "XENKVM-L2: disks after unplug: $(ls /sys/block | grep xvd | tr '\n' ' ')."
w '[ ! -e /sys/class/net/eth0 ]'; echo "XENKVM-L2: nics after unplug: $(ls /sys/class/net | tr '\n' ' ')."
echo XENKVM-L2: still running; poweroff -f
CMDS
finish
echo "XENKVM-L1: hot1 block $(dd if=/tmp/hot1.img bs=512 count=1 2>/dev/null | tr -d '\000')"
kill $WD 2>/dev/null
echo "XENKVM-L1: xenkvm rc=$RC"
exit $RC"#
);

pub fn check_linux_hotplug(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    let wanted = ["XENKVM-L1:", "XENKVM-L2:", "hotplug", "unplugged", "frontend did not close"];
    report.extend(c.output.iter().filter(|l| wanted.iter().any(|w| l.contains(w))).cloned());
    report_status(c, report);
    if text.contains("ENTRY_TRAMPOLINE") {
        report.push("the known ENTRY_TRAMPOLINE stack guard page crash hit this run".into());
    }
    let sum = |tag: &str| c.line_with(tag).and_then(|l| l[tag.len()..].split_whitespace().next()).map(str::to_string);
    ensure!(text.contains("XENKVM-L2: shell"), "the guest's shell never came up");
    for id in ["disk1", "disk2", "nic1"] {
        ensure!(text.contains(&format!("\"id\":\"{id}\"") ) && !text.contains("QMP error"), "a QMP command for {id} failed");
    }
    let (l1, l2) = (sum("XENKVM-L1: hot0 "), sum("XENKVM-L2: xvda "));
    ensure!(l1.is_some() && l1 == l2, "the hotplugged xvda's checksum {l2:?} is not the image's {l1:?}");
    ensure!(text.contains("XENKVM-L2: xvdc written rc=0"), "writing the blockdev-add disk failed");
    ensure!(text.contains("XENKVM-L1: hot1 block hotplugged-block-ok"), "the guest's block did not reach the blockdev-add image");
    ensure!(text.contains("XENKVM-L2: eth0 52:54:00:12:34:99"), "the hotplugged NIC did not appear with its MAC");
    ensure!(text.contains("XENKVM-L2: ping rc=0"), "the guest could not ping L1 over the hotplugged NIC");
    ensure!(text.contains("XENKVM-L1: ping guest rc=0"), "L1 could not ping the guest");
    let disks = c.line_with("XENKVM-L2: disks after unplug:").unwrap_or("xvd?");
    ensure!(!disks.contains("xvd"), "the disks did not go away in the guest: {disks}");
    let nics = c.line_with("XENKVM-L2: nics after unplug:").unwrap_or("eth0?");
    ensure!(!nics.contains("eth0"), "the NIC did not go away in the guest: {nics}");
    ensure!(text.matches("unplugged").count() >= 3, "xenkvm did not finish all three unplugs");
    ensure!(text.contains("XENKVM-L2: still running"), "the guest did not keep running");
    ensure!(c.rc == Some(0), "xenkvm ended with {:?}, not 0", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_run_passes_and_a_disk_left_behind_fails() {
        let good = "XENKVM-NESTED: L1 up\nXENKVM-L2: shell\nXENKVM-L1: hot0 abc\n\
            XENKVM-L1: qmp device_add {\"driver\":\"xen-disk\",\"id\":\"disk1\"} -> {}\n\
            XENKVM-L1: qmp device_add {\"id\":\"disk2\"} -> {}\nXENKVM-L1: qmp device_add {\"id\":\"nic1\"} -> {}\n\
            XENKVM-L2: xvda abc\nXENKVM-L2: xvdc written rc=0\nXENKVM-L2: eth0 52:54:00:12:34:99\nXENKVM-L2: ping rc=0\n\
            XENKVM-L1: ping guest rc=0\nINFO device disk1 unplugged\nINFO device disk2 unplugged\nINFO device nic1 unplugged\n\
            XENKVM-L2: disks after unplug: .\nXENKVM-L2: nics after unplug: lo .\nXENKVM-L2: still running\n\
            XENKVM-L1: hot1 block hotplugged-block-ok\nXENKVM-NESTED: rc=0";
        let c = |t: &str| Console::parse(&t.lines().map(str::to_string).collect::<Vec<_>>());
        check_linux_hotplug(&c(good), &mut Vec::new()).unwrap();
        let bad = good.replace("disks after unplug: .", "disks after unplug: xvdc .");
        assert!(check_linux_hotplug(&c(&bad), &mut Vec::new()).unwrap_err().to_string().contains("disks"));
    }
}
