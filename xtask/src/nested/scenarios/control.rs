//! `linux-control`: the host's requests reach the Debian guest's PV control
//! driver through xenstore, sent over QMP with `xenkvm qmp` (the seeds' libxl
//! form: `-chardev socket,... -mon chardev=..,mode=control`).
//!
//! Run 1: `xen-shutdown suspend` is acknowledged (xenkvm cancels the suspend,
//! as it cannot save a guest) and the guest's shell still answers;
//! `xen-shutdown reboot` brings the guest back; the guest kexecs into the same
//! kernel (read from a PV disk), which soft-resets the domain, and comes up
//! again as a Xen guest; `system_powerdown` makes it
//! run its `/sbin/poweroff` (which logs through `/dev/kmsg`, as it runs
//! without a terminal) and xenkvm exits 0. Run 2: `xen-shutdown crash`
//! (`control/sysrq` = `c`, which the guest must allow: `sysrq_always_enabled`
//! here, `kernel.sysrq` on a distribution) panics the guest; with
//! `xen_legacy_crash` a Linux HVM guest reports SHUTDOWN_crash (without it,
//! it resets itself on panic) and xenkvm exits 2 saying the guest crashed.

use anyhow::{ensure, Result};

use super::{report_status, Console};

/// A shell on hvc0 with a distribution-like `/sbin/poweroff` (Linux's
/// orderly poweroff runs that path).
pub const LINUX_CONTROL_INIT: &str = qmp_shell_init!();

/// Drives both runs (functions from [`qmp_driver`]).
pub const LINUX_CONTROL_SCRIPT: &str = concat!(
    qmp_driver!(),
    r#"WATCHDOG=500
( sleep $WATCHDOG; echo "XENKVM-L1: watchdog"; killall -9 xenkvm ) &
WD=$!
tar cf /tmp/kx.tar -C /l2 vmlinuz initrd.gz
echo "XENKVM-L1: run 1"
EXTRA="-drive file=/tmp/kx.tar,if=xen,format=raw,readonly=on"
start "$APPEND" 320
await "XENKVM-L2: shell" 1
qmp query-status
qmp xen-shutdown '{"reason":"suspend"}'
await "suspend cancelled" 1
sleep 2
echo 'echo XENKVM-L2: alive after suspend' >&3
await "XENKVM-L2: alive after suspend" 1
qmp xen-shutdown '{"reason":"reboot"}'
await "XENKVM-L2: shell" 2
echo 'echo XENKVM-L2: second boot' >&3
await "XENKVM-L2: second boot" 1
echo 'i=0; while [ ! -b /dev/xvda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; mkdir -p /tmp/kx; tar xf /dev/xvda -C /tmp/kx && kexec -l /tmp/kx/vmlinuz --initrd=/tmp/kx/initrd.gz --append="$(cat /proc/cmdline)" && echo XENKVM-L2: kexec loaded && kexec -e; echo XENKVM-L2: kexec failed rc=$?' >&3
await "XENKVM-L2: shell" 3
echo 'echo XENKVM-L2: after kexec $(cat /sys/hypervisor/type) $(grep -c xen /proc/interrupts)' >&3
await "XENKVM-L2: after kexec" 1
qmp system_powerdown
finish; rc1=$RC
echo "XENKVM-L1: run 1 rc=$rc1"

echo "XENKVM-L1: run 2"
EXTRA=""
start "$APPEND xen_legacy_crash sysrq_always_enabled" 170
await "XENKVM-L2: shell" 1
qmp xen-shutdown '{"reason":"crash"}'
finish; rc2=$RC
echo "XENKVM-L1: run 2 rc=$rc2"
kill $WD 2>/dev/null
[ "$rc1" = 0 ] && [ "$rc2" = 2 ]"#
);

pub fn check_linux_control(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    let wanted = ["XENKVM-L1:", "XENKVM-L2:", "QMP:", "suspend", "sysrq", "crashed", "powered off", "restarting"];
    report.extend(c.output.iter().filter(|l| wanted.iter().any(|w| l.contains(w))).cloned());
    report_status(c, report);
    if text.contains("ENTRY_TRAMPOLINE") {
        report.push("the known ENTRY_TRAMPOLINE stack guard page crash hit this run".into());
    }
    ensure!(text.contains("XENKVM-L2: up"), "the L2 kernel did not reach its /init");
    ensure!(text.contains(r#"qmp query-status -> {"running":true,"status":"running"}"#), "query-status did not say running");
    ensure!(text.contains("suspend cancelled"), "the guest never asked to suspend");
    ensure!(text.contains("XENKVM-L2: alive after suspend"), "the guest's shell did not answer after the suspend");
    ensure!(text.contains("guest reset (Shutdown(Reboot))"), "the host's reboot request did not reboot the guest");
    ensure!(text.contains("XENKVM-L2: second boot"), "the guest did not come back after the reboot");
    ensure!(text.contains("XENKVM-L2: kexec loaded"), "the guest could not load a kernel for kexec");
    ensure!(text.contains("domain soft reset"), "kexec did not soft-reset the domain");
    ensure!(text.contains("XENKVM-L2: after kexec xen"), "the guest did not come back as a Xen guest after kexec");
    ensure!(text.contains("XENKVM-L2: orderly poweroff"), "system_powerdown did not reach the guest's poweroff");
    ensure!(text.contains("XENKVM-L1: run 1 rc=0"), "run 1 did not end with status 0");
    ensure!(text.contains("sysrq: Trigger a crash"), "the crash request did not reach the guest's sysrq");
    ensure!(text.contains("xenkvm: guest crashed"), "xenkvm did not report the crash");
    ensure!(text.contains("XENKVM-L1: run 2 rc=2"), "run 2 did not end with status 2");
    ensure!(c.rc == Some(0), "the scenario ended with {:?}", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "XENKVM-NESTED: L1 up\nXENKVM-L2: up\n\
        XENKVM-L1: qmp query-status -> {\"running\":true,\"status\":\"running\"}\n\
        WARN guest asked to suspend; not supported, resuming it at once (suspend cancelled)\n\
        XENKVM-L2: alive after suspend\nINFO guest reset (Shutdown(Reboot)): restarting it\n\
        XENKVM-L2: second boot\nXENKVM-L2: kexec loaded\nINFO domain soft reset: ...\nXENKVM-L2: after kexec xen 4\nXENKVM-L2: orderly poweroff\nXENKVM-L1: run 1 rc=0\n\
        sysrq: Trigger a crash\nxenkvm: guest crashed\nXENKVM-L1: run 2 rc=2\nXENKVM-NESTED: rc=0";

    fn console(text: &str) -> Console {
        Console::parse(&text.lines().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn a_good_run_passes_and_each_missing_step_fails() {
        check_linux_control(&console(GOOD), &mut Vec::new()).unwrap();
        for (gone, why) in [("orderly poweroff", "poweroff"), ("second boot", "come back"), ("Trigger a crash", "sysrq")] {
            let bad = GOOD.replace(gone, "something else");
            let e = check_linux_control(&console(&bad), &mut Vec::new()).unwrap_err().to_string();
            assert!(e.contains(why), "{gone}: {e}");
        }
    }
}
