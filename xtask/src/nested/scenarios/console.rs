//! `linux-console`: two xen-consoles. hvc0 and the serial port share a muxed
//! stdio chardev (with `-mon` on it: the `-serial mon:stdio` equivalent);
//! hvc1 is a xenbus console on a unix socket that `xenkvm console` attaches
//! to in L1. The guest writes a line to hvc1, L1 answers one, the guest
//! echoes it back: text both ways through the socket.

use anyhow::{ensure, Result};

use super::{report_status, Console};

/// L1 starts the socket client once xenkvm made the socket (its input is a
/// FIFO held open), answers once the guest's hello arrived, and prints what
/// the client received when xenkvm has ended.
pub const LINUX_CONSOLE_SCRIPT: &str = r#"rm -f /tmp/hvc1.sock /tmp/hvc1-in /tmp/hvc1-out; mkfifo /tmp/hvc1-in; : > /tmp/hvc1-out
exec 3<>/tmp/hvc1-in
( i=0; while [ ! -S /tmp/hvc1.sock ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  /xenkvm console /tmp/hvc1.sock < /tmp/hvc1-in > /tmp/hvc1-out 2>&1; echo "XENKVM-L1: console client rc=$?" ) &
( i=0; while ! grep -q "hello from the guest" /tmp/hvc1-out && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done
  echo "XENKVM-L1: answering on hvc1"; echo "ping-from-l1" >&3 ) &
XENKVM_LOG=info /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 512 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "console=ttyS0 console=hvc0 no_timer_check panic=-1 loglevel=7" -no-reboot -chardev stdio,id=con,mux=on,signal=off -serial chardev:con -device xen-console,chardev=con -mon con -chardev socket,id=c1,path=/tmp/hvc1.sock,server=on,wait=off -device xen-console,chardev=c1 --timeout 400 </dev/null
rc=$?
sleep 1
sed 's/^/XENKVM-L1: hvc1: /' /tmp/hvc1-out
echo "XENKVM-L1: xenkvm rc=$rc"
exit $rc"#;

/// The guest waits for its xenbus console, then talks on /dev/hvc1 (raw, no
/// echo) through one open descriptor.
pub const LINUX_CONSOLE_INIT: &str = r#"echo XENKVM-L2: up
i=0
while ! grep -q -i connected /sys/bus/xen/devices/console-1/state 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "XENKVM-L2: console-1 $(cat /sys/bus/xen/devices/console-1/state 2>&1)"
ls /sys/bus/xen/devices/ | sed 's/^/XENKVM-L2: xen device /'
exec 4<>/dev/hvc1
stty -F /dev/hvc1 raw -echo 2>&1
echo "hello from the guest on hvc1" >&4
line=$(timeout 120 head -n 1 <&4)
echo "XENKVM-L2: hvc1 got: $line"
echo "guest echoes: $line" >&4
sleep 2
poweroff -f"#;

pub fn check_linux_console(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L2:") || l.contains("XENKVM-L1:") || l.contains("backend/console")).cloned());
    report_status(c, report);
    if text.contains("ENTRY_TRAMPOLINE") {
        report.push("the known ENTRY_TRAMPOLINE stack guard page crash hit this run".into());
    }
    for bad in ["BUG:", "Oops", "Kernel panic"] {
        ensure!(!text.contains(bad), "the guest log has {bad:?}");
    }
    ensure!(text.contains("XENKVM-L2: up"), "the L2 kernel did not reach its /init");
    ensure!(text.contains("XENKVM-L2: console-1 Connected"), "the guest's second console did not connect");
    ensure!(text.contains("XENKVM-L1: hvc1: hello from the guest on hvc1"), "the guest's line on hvc1 did not reach the socket");
    ensure!(text.contains("XENKVM-L2: hvc1 got: ping-from-l1"), "L1's line on the socket did not reach the guest's hvc1");
    ensure!(text.contains("XENKVM-L1: hvc1: guest echoes: ping-from-l1"), "the guest's echo did not reach the socket");
    ensure!(c.rc == Some(0), "xenkvm exited with {:?}, not 0", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_run_passes_and_a_missing_echo_fails() {
        let good = "XENKVM-NESTED: L1 up\nXENKVM-L2: up\nXENKVM-L2: console-1 Connected\n\
                    XENKVM-L2: hvc1 got: ping-from-l1\nXENKVM-L1: hvc1: hello from the guest on hvc1\n\
                    XENKVM-L1: hvc1: guest echoes: ping-from-l1\nXENKVM-L1: xenkvm rc=0\nXENKVM-NESTED: rc=0";
        let c = Console::parse(&good.lines().map(str::to_string).collect::<Vec<_>>());
        check_linux_console(&c, &mut Vec::new()).unwrap();
        let bad = good.replace("guest echoes", "guest said");
        let c = Console::parse(&bad.lines().map(str::to_string).collect::<Vec<_>>());
        assert!(check_linux_console(&c, &mut Vec::new()).unwrap_err().to_string().contains("echo"));
    }
}
