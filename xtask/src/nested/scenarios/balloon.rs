//! `linux-balloon`: the host lowers the Debian guest's `memory/target` by
//! 256 MiB over QMP (`balloon`); the guest's balloon driver hands the pages
//! back (XENMEM_decrease_reservation), so its MemTotal and xenkvm's RSS fall;
//! raising the target gives the memory back (XENMEM_populate_physmap).
//! The guest first touches most of its RAM so that the pages it returns are
//! really backed on the host.

use anyhow::{ensure, Result};

use super::{report_status, Console};

pub const LINUX_BALLOON_INIT: &str = qmp_shell_init!();

/// `rss` prints xenkvm's resident set in KiB (the VMM is the only xenkvm
/// process besides `xenkvm qmp`, which has ended by then).
pub const LINUX_BALLOON_SCRIPT: &str = concat!(
    qmp_driver!(),
    r#"WATCHDOG=400
( sleep $WATCHDOG; echo "XENKVM-L1: watchdog"; killall -9 xenkvm ) &
WD=$!
rss() { for p in $(pidof xenkvm); do awk '/^VmRSS/ {print $2}' /proc/$p/status; done | sort -n | tail -n 1; }
memtotal() { echo 'echo "XENKVM-L2: memtotal-'$1' $(awk "/^MemTotal/ {print \$2}" /proc/meminfo)"' >&3; await "XENKVM-L2: memtotal-$1" 1; }
MEM=1024
start "$APPEND" 380
await "XENKVM-L2: shell" 1
echo 'dd if=/dev/zero of=/tmp/fill bs=1048576 count=600 2>/dev/null; rm /tmp/fill; echo XENKVM-L2: touched' >&3
await "XENKVM-L2: touched" 1
memtotal before
echo "XENKVM-L1: rss-before $(rss)"
qmp balloon '{"value":805306368}'
sleep 15
memtotal lowered
echo "XENKVM-L1: rss-lowered $(rss)"
qmp query-balloon
qmp balloon '{"value":1073741824}'
sleep 15
memtotal raised
echo "XENKVM-L1: rss-raised $(rss)"
qmp query-balloon
echo 'poweroff -f' >&3
finish
kill $WD 2>/dev/null
echo "XENKVM-L1: xenkvm rc=$RC"
exit $RC"#
);

fn number(c: &Console, tag: &str) -> Option<i64> {
    c.line_with(tag).and_then(|l| l[tag.len()..].split_whitespace().next()?.parse().ok())
}

pub fn check_linux_balloon(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let wanted = ["XENKVM-L1:", "XENKVM-L2:", "balloon", "reservation"];
    report.extend(c.output.iter().filter(|l| wanted.iter().any(|w| l.contains(w))).cloned());
    report_status(c, report);
    let mem = |w: &str| number(c, &format!("XENKVM-L2: memtotal-{w} "));
    let rss = |w: &str| number(c, &format!("XENKVM-L1: rss-{w} "));
    let (before, lowered, raised) = (mem("before"), mem("lowered"), mem("raised"));
    let (rss_before, rss_lowered) = (rss("before"), rss("lowered"));
    report.push(format!("MemTotal KiB: {before:?} -> {lowered:?} -> {raised:?}; xenkvm RSS KiB: {rss_before:?} -> {rss_lowered:?} -> {:?}", rss("raised")));
    let (Some(before), Some(lowered), Some(raised)) = (before, lowered, raised) else {
        anyhow::bail!("the guest did not report MemTotal three times");
    };
    // 256 MiB = 262144 KiB, give or take the driver's rounding.
    ensure!((before - lowered - 262_144).abs() <= 4096, "MemTotal fell by {} KiB, not 256 MiB", before - lowered);
    ensure!((raised - before).abs() <= 4096, "MemTotal came back to {raised} KiB, not {before}");
    let (Some(rb), Some(rl)) = (rss_before, rss_lowered) else { anyhow::bail!("no RSS figures") };
    ensure!(rb - rl >= 200_000, "xenkvm's RSS fell by only {} KiB", rb - rl);
    ensure!(c.rc == Some(0), "xenkvm ended with {:?}, not 0", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balloon_must_move_memtotal_and_rss() {
        let good = "XENKVM-NESTED: L1 up\nXENKVM-L2: memtotal-before 1000000\nXENKVM-L1: rss-before 700000\n\
            XENKVM-L2: memtotal-lowered 737856\nXENKVM-L1: rss-lowered 450000\nXENKVM-L2: memtotal-raised 1000000\n\
            XENKVM-L1: rss-raised 460000\nXENKVM-NESTED: rc=0";
        let c = |t: &str| Console::parse(&t.lines().map(str::to_string).collect::<Vec<_>>());
        check_linux_balloon(&c(good), &mut Vec::new()).unwrap();
        let bad = good.replace("rss-lowered 450000", "rss-lowered 690000");
        assert!(check_linux_balloon(&c(&bad), &mut Vec::new()).unwrap_err().to_string().contains("RSS"));
        let bad = good.replace("memtotal-lowered 737856", "memtotal-lowered 1000000");
        assert!(check_linux_balloon(&c(&bad), &mut Vec::new()).is_err());
    }
}
