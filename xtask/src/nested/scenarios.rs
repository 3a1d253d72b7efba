//! The nested scenarios, in one table: what runs in L1 and how its console
//! output is judged.

use anyhow::{bail, ensure, Result};

use super::initramfs::{MARK_RC, MARK_UP};

/// Shell functions for scenarios that drive xenkvm over QMP and type into
/// the guest's shell on hvc0: `start APPEND SECONDS` runs xenkvm (extra
/// options in `$EXTRA`) with its stdin on a FIFO held as fd 3 and its output
/// in /tmp/out.log (`$MEM` MiB of RAM, default 512); `await PATTERN N` waits for the Nth matching line (or
/// xenkvm's end); `qmp CMD [ARGS]` runs one QMP command with `xenkvm qmp`;
/// `finish` waits for xenkvm's end and sets `$RC`. The kernel logs to hvc0
/// only, so its lines do not interleave with a serial copy.
#[macro_export]
macro_rules! qmp_driver {
    () => {
        r#"trap '' PIPE
Q=/tmp/qmp.sock
APPEND="console=hvc0 no_timer_check panic=-1 loglevel=7"
QMP_OPTS="-chardev socket,id=libxl-cmd,path=$Q,server=on,wait=off -mon chardev=libxl-cmd,mode=control"
start() {
  rm -f /tmp/in /tmp/out.log; mkfifo /tmp/in; : > /tmp/out.log
  (XENKVM_LOG=info /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m ${MEM:-512} -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "$1" $QMP_OPTS $EXTRA --timeout "$2" < /tmp/in; echo "XENKVM-L1: xenkvm rc=$?") 2>&1 | tee /tmp/out.log &
  RUN=$!
  exec 3>/tmp/in
}
await() { i=0; while [ "$(grep -c "$1" /tmp/out.log)" -lt "$2" ] && [ $i -lt 900 ] && ! grep -q "XENKVM-L1: xenkvm rc" /tmp/out.log; do sleep 0.5; i=$((i+1)); done; }
qmp() { echo "XENKVM-L1: qmp $* -> $(/xenkvm qmp $Q "$@" 2>&1)"; }
finish() { await "XENKVM-L1: xenkvm rc" 1; exec 3>&-; wait $RUN; RC=$(sed -n 's/.*XENKVM-L1: xenkvm rc=//p' /tmp/out.log | tail -n 1); }
"#
    };
}

/// `run NAME EXTRA-APPEND VMM-COMMAND...` for the benchmarks: starts the VMM
/// with `-append "$APPEND EXTRA-APPEND"` and its output in /tmp/NAME.log; a
/// guest that does not reach its /init within 120 s (the early-boot hang of
/// docs/nested.md) is killed and started again, and a run whose guest gave no
/// `BENCH-` line (the post-/init crash there) is run again, up to three times
/// in all. Prints the run's `BENCH-`, `XENKVM-L2` and crash lines and
/// `XENKVM-L1: NAME tries=N`.
#[macro_export]
macro_rules! retry_runner {
    () => {
        r#"APPEND="console=ttyS0 no_timer_check panic=-1 loglevel=4"
run() {
  name=$1; extra=$2; shift 2
  tries=0
  while [ $tries -lt 3 ]; do
    tries=$((tries+1))
    # A scenario's per-attempt set-up (e.g. fresh listening sockets).
    if type before_try >/dev/null 2>&1; then before_try; fi
    : > /tmp/$name.log
    "$@" -append "$APPEND $extra" > /tmp/$name.log 2>&1 &
    pid=$!
    booted() { tr -cd '\11\12\15\40-\176' < /tmp/$name.log | grep -q "XENKVM-L2: up"; }
    i=0; while ! booted && kill -0 $pid 2>/dev/null && [ $i -lt 240 ]; do sleep 0.5; i=$((i+1)); done
    if booted; then
      wait $pid
      tr -cd '\11\12\15\40-\176' < /tmp/$name.log | grep -E "BENCH-|XENKVM-L2|BUG:|Kernel panic|Oops|xenkvm: |fio: |dd: " | head -n 40
      if grep -q "BENCH-" /tmp/$name.log || [ $tries -ge 3 ]; then
        echo "XENKVM-L1: $name tries=$tries"
        return
      fi
      echo "XENKVM-L1: $name run $tries gave no result (a guest crash above?); retrying"
      continue
    fi
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    echo "XENKVM-L1: $name boot $tries hung in early boot; retrying"
  done
  echo "XENKVM-L1: $name never booted"
}
"#
    };
}

/// The L2 /init of QMP-driven scenarios: a distribution-like `/sbin/poweroff`
/// (Linux's orderly poweroff runs that path, without a terminal, so it logs
/// through /dev/kmsg), no echo, a shell on hvc0.
#[macro_export]
macro_rules! qmp_shell_init {
    () => {
        r#"echo XENKVM-L2: up
printf '#!/bin/sh
echo XENKVM-L2: orderly poweroff > /dev/kmsg
exec /bin/poweroff -f
' > /sbin/poweroff
chmod +x /sbin/poweroff
stty -echo 2>/dev/null
echo XENKVM-L2: shell
exec sh"#
    };
}

mod balloon;
mod benchblock;
mod benchnet;
mod block;
mod console;
mod control;
mod hotplug;
mod matrix;
mod net;
use crate::bench;

/// A Linux (L2) guest image for scenarios that boot one: the L2 kernel goes to
/// `/l2/vmlinuz` and this image, built by `initramfs::build_l2_initramfs`, to
/// `/l2/initrd.gz` in L1.
#[derive(Debug, Clone, Copy)]
pub struct L2Spec {
    /// The body of L2's `/init`, after the mounts and the module loads.
    pub init: &'static str,
    /// Modules of `l2/modules`, without `.ko`, in load order.
    pub modules: &'static [&'static str],
    /// Host programs (names on `PATH` or absolute paths) the image carries at
    /// their host paths, with their shared libraries.
    pub extra_programs: &'static [&'static str],
}

/// Judges a run: pushes report lines, fails with the reason.
pub type Check = fn(&Console, &mut Vec<String>) -> Result<()>;

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// The shell command line run in L1 (the VMM is `/xenkvm`).
    pub command: &'static str,
    /// L1's own limit for the command (`timeout` in `/init`).
    pub l1_timeout_secs: u64,
    pub l2: Option<L2Spec>,
    /// L1 also gets the anchor QEMU at `/anchor` (ANCHORS.md).
    pub anchor: bool,
    /// Host programs L1 carries at their host paths, with their shared libraries.
    pub extra_programs: &'static [&'static str],
    pub check: Check,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "probe",
        about: "L1 boots, xenkvm starts on the real KVM and reports its capabilities",
        command: "XENKVM_LOG=info /xenkvm --timeout 60",
        l1_timeout_secs: 120,
        l2: None,
        anchor: false,
        extra_programs: &[],
        check: check_probe,
    },
    Scenario {
        name: "selftest",
        about: "the embedded test guest's selftest on the real KVM, hypercalls through the kernel (KVM_EXIT_XEN)",
        command: "/xenkvm -accel kvm,xen-version=0x40011,x-xen-hypercalls=kernel --timeout 120",
        l1_timeout_secs: 180,
        l2: None,
        anchor: false,
        extra_programs: &[],
        check: check_selftest,
    },
    Scenario {
        name: "selftest-userspace",
        about: "the same selftest with the userspace hypercall page (port-I/O stubs)",
        command: "/xenkvm -accel kvm,xen-version=0x40011,x-xen-hypercalls=userspace --timeout 120",
        l1_timeout_secs: 180,
        l2: None,
        anchor: false,
        extra_programs: &[],
        check: check_selftest,
    },
    Scenario {
        name: "bench-hypercall",
        about: "userspace-page hypercall round trip against port-I/O exits on the real KVM (cargo xtask bench hypercall --nested)",
        command: "/xenkvm -accel kvm,xen-version=0x40011,x-xen-hypercalls=userspace -append \"bench=hypercall iters=40000\" --timeout 300",
        l1_timeout_secs: 360,
        l2: None,
        anchor: false,
        extra_programs: &[],
        check: check_bench,
    },
    Scenario {
        name: "bench-hypercall-kernel",
        about: "the same with hypercalls through the kernel (vmmcall, KVM_EXIT_XEN) against port-I/O exits",
        command: "/xenkvm -accel kvm,xen-version=0x40011,x-xen-hypercalls=kernel -append \"bench=hypercall iters=40000\" --timeout 300",
        l1_timeout_secs: 360,
        l2: None,
        anchor: false,
        extra_programs: &[],
        check: check_bench,
    },
    Scenario {
        name: "linux-boot",
        about: "the stock Debian 6.1 kernel (l2/vmlinuz) as a Xen HVM guest of xenkvm; a harness-driven shell on hvc0 checks it, reboots it (xenkvm restarts the guest) and powers it off",
        command: LINUX_BOOT_CMD,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: LINUX_SHELL_INIT, modules: &[], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: check_linux_boot,
    },
    Scenario {
        name: "linux-boot-smp",
        about: "the same with -smp 2: both vCPUs online, IPIs by event channels",
        command: LINUX_BOOT_SMP_CMD,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: LINUX_SHELL_INIT, modules: &[], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: check_linux_boot_smp,
    },
    Scenario {
        name: "linux-boot-410",
        about: "the same as Xen 4.10: no per-vCPU upcall vector flag, so Linux uses the global callback vector",
        command: LINUX_BOOT_410_CMD,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: LINUX_SHELL_INIT, modules: &[], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: check_linux_boot_410,
    },
    Scenario {
        name: "linux-boot-qemu",
        about: "the same Debian guest and image under the anchor QEMU 10.2's Xen emulation (ANCHORS.md), for comparison",
        command: "timeout -s KILL 400 /anchor/qemu-system-x86_64 -L /anchor/pc-bios -accel kvm,xen-version=0x40011,kernel-irqchip=split -cpu host -m 512 -smp 1 -nographic -nodefaults -serial stdio -nic none -no-reboot -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append \"console=ttyS0 earlyprintk=ttyS0 no_timer_check panic=-1 loglevel=7\"",
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: LINUX_BOOT_INIT, modules: &[], extra_programs: &[] }),
        anchor: true,
        extra_programs: &[],
        check: check_linux_boot_qemu,
    },
    Scenario {
        name: "linux-xenstore",
        about: "the Debian guest lists its XenStore tree with xenstore-ls over its xenbus device; its write fires a watch set on the host socket",
        command: LINUX_XENSTORE_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: LINUX_XENSTORE_INIT, modules: XENSTORE_MODULES, extra_programs: XENSTORE_PROGRAMS }),
        anchor: false,
        extra_programs: XENSTORE_PROGRAMS,
        check: check_linux_xenstore,
    },
    Scenario {
        name: "linux-pv",
        about: "the Debian guest on three PV disks: raw xvda read and written with fsync; ext4 on raw xvdb and qcow2 xvdc, a file written to each; L1 checks the checksums, e2fsck and debugfs both filesystems and runs qemu-img check",
        command: block::LINUX_PV_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: block::LINUX_PV_INIT, modules: block::FS_MODULES, extra_programs: &[] }),
        anchor: false,
        extra_programs: block::FS_PROGRAMS,
        check: block::check_linux_pv,
    },
    Scenario {
        name: "linux-pv-qemu",
        about: "the same disk workload under the anchor QEMU 10.2's xen-block (ANCHORS.md), for comparison",
        command: block::LINUX_PV_QEMU_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: block::LINUX_PV_INIT, modules: block::FS_MODULES, extra_programs: &[] }),
        anchor: true,
        extra_programs: block::FS_PROGRAMS,
        check: block::check_linux_pv,
    },
    Scenario {
        name: "linux-net",
        about: "the Debian guest's eth0 (xen-netfront) on a tap in L1: ping both ways and 100 MiB over TCP each way with checksums",
        command: net::LINUX_NET_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: net::LINUX_NET_INIT, modules: &["xen-netfront"], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: net::check_linux_net,
    },
    Scenario {
        name: "linux-matrix",
        about: "QEMU's seven Xen interrupt-routing cases (MSI, INTx and the callback as PIRQs, vectors, I/O APIC and PIC lines), each an -smp 2 boot with a virtio-net-pci NIC and a PV disk: grant table, interrupts, ping, poweroff",
        command: matrix::SCRIPT,
        l1_timeout_secs: 2700,
        l2: Some(L2Spec { init: matrix::INIT, modules: matrix::MODULES, extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: matrix::check_linux_matrix,
    },
    Scenario {
        name: "linux-console",
        about: "two xen-consoles: hvc0 with the serial port on muxed stdio (-mon on it), hvc1 on a unix socket that `xenkvm console` attaches to; text both ways on hvc1",
        command: console::LINUX_CONSOLE_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: console::LINUX_CONSOLE_INIT, modules: &[], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: console::check_linux_console,
    },
    Scenario {
        name: "linux-control",
        about: "host requests over QMP reach the guest through xenstore: suspend (acknowledged, cancelled), reboot, system_powerdown (exit 0), and crash via sysrq (exit 2); kexec soft-resets the domain and the new kernel runs",
        command: control::LINUX_CONTROL_SCRIPT,
        l1_timeout_secs: 540,
        l2: Some(L2Spec { init: control::LINUX_CONTROL_INIT, modules: &["xen-blkfront"], extra_programs: &["/usr/sbin/kexec"] }),
        anchor: false,
        extra_programs: &[],
        check: control::check_linux_control,
    },
    Scenario {
        name: "linux-hotplug",
        about: "two disks (-drive if=none and blockdev-add) and a NIC plugged into the running guest over QMP, used (checksum, write, ping both ways) and unplugged; the guest keeps running",
        command: hotplug::LINUX_HOTPLUG_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: hotplug::LINUX_HOTPLUG_INIT, modules: &["xen-blkfront", "xen-netfront"], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: hotplug::check_linux_hotplug,
    },
    Scenario {
        name: "linux-balloon",
        about: "the host lowers memory/target by 256 MiB over QMP: the guest's MemTotal and xenkvm's RSS fall; raising it gives the memory back",
        command: balloon::LINUX_BALLOON_SCRIPT,
        l1_timeout_secs: 480,
        l2: Some(L2Spec { init: balloon::LINUX_BALLOON_INIT, modules: &[], extra_programs: &[] }),
        anchor: false,
        extra_programs: &[],
        check: balloon::check_linux_balloon,
    },
    Scenario {
        name: "bench-block",
        about: "the same raw image read and written by L1, by xenkvm's guest (xvda), the anchor QEMU's xen-block and its virtio-blk: sequential MiB/s (dd O_DIRECT) and 4 KiB random IOPS (fio), with ratios (cargo xtask bench block)",
        command: benchblock::SCRIPT,
        l1_timeout_secs: 540,
        l2: Some(L2Spec { init: benchblock::INIT, modules: benchblock::MODULES, extra_programs: benchblock::PROGRAMS }),
        anchor: true,
        extra_programs: &[],
        check: benchblock::check,
    },
    Scenario {
        name: "bench-net",
        about: "TCP throughput L1 <-> guest eth0 on a tap: xenkvm's xen-net-device, the anchor QEMU's xen-net-device and its virtio-net, 64 MiB each way with nc, with ratios (cargo xtask bench net)",
        command: benchnet::SCRIPT,
        l1_timeout_secs: 540,
        l2: Some(L2Spec { init: benchnet::INIT, modules: benchnet::MODULES, extra_programs: &[] }),
        anchor: true,
        extra_programs: &[],
        check: benchnet::check,
    },
    Scenario {
        name: "bench-boot",
        about: "xenkvm and the anchor QEMU boot the same Debian guest in turn, twice each: start to /init and peak RSS (cargo xtask bench boot)",
        command: BENCH_BOOT_SCRIPT,
        l1_timeout_secs: 540,
        l2: Some(L2Spec { init: LINUX_BOOT_INIT, modules: &[], extra_programs: &[] }),
        anchor: true,
        extra_programs: &[],
        check: check_bench_boot,
    },
];

/// Runs each VMM in the background with its output through a FIFO; awk stamps
/// L1's uptime when the guest's `/init` marker passes, and a loop samples the
/// VMM's VmHWM until it exits. WATCHDOG bounds each run.
const BENCH_BOOT_SCRIPT: &str = r#"WATCHDOG=300
APPEND="console=ttyS0 quiet no_timer_check panic=-1"
run() {
  name=$1; shift
  rm -f /tmp/$name.fifo /tmp/$name.init; mkfifo /tmp/$name.fifo
  awk -v f=/tmp/$name.init '/XENKVM-L2: up/ && !t { getline u < "/proc/uptime"; split(u, a, " "); print a[1] > f; close(f); t = 1 } { print; fflush() }' < /tmp/$name.fifo &
  reader=$!
  read start rest < /proc/uptime
  "$@" > /tmp/$name.fifo 2>&1 &
  pid=$!
  ( sleep $WATCHDOG; kill -9 $pid 2>/dev/null ) &
  dog=$!
  hwm=0
  while kill -0 $pid 2>/dev/null; do
    h=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null)
    [ -n "$h" ] && hwm=$h
    sleep 0.2
  done
  wait $pid; rc=$?
  kill $dog 2>/dev/null
  wait $reader
  echo "BOOT-RESULT vmm=$name start=$start init=$(cat /tmp/$name.init 2>/dev/null) hwm_kib=$hwm rc=$rc"
}
for round in 1 2; do
  run xenkvm /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 512 -smp 1 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "$APPEND" --timeout 280
  run qemu /anchor/qemu-system-x86_64 -L /anchor/pc-bios -accel kvm,xen-version=0x40011,kernel-irqchip=split -cpu host -m 512 -smp 1 -nographic -nodefaults -serial stdio -nic none -no-reboot -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "$APPEND"
done"#;

fn check_bench_boot(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let runs = crate::bootbench::parse(&c.text());
    match crate::bootbench::report(&runs) {
        Ok(lines) => {
            report.extend(lines);
            report.extend(crate::bootbench::log_report(&c.text()));
            Ok(())
        }
        Err(e) => {
            report.extend(c.output.iter().filter(|l| l.contains("BOOT-RESULT")).cloned());
            report.extend(crate::bootbench::log_report(&c.text()));
            bail!("{e}")
        }
    }
}

/// Drives a shell on the guest's hvc0 through xenkvm's stdin (a FIFO the
/// script holds open): once the guest's /init announces its shell, the script
/// types the checks, then `reboot -f`; xenkvm restarts the guest, and on the
/// second boot's shell it types `poweroff -f`. xenkvm runs with the extra
/// arguments given; the script exits with xenkvm's status (SIGPIPE is ignored,
/// so typing into a guest that already stopped cannot kill the script first).
macro_rules! shell_driver {
    ($args:literal) => {
        concat!(
            r#"trap '' PIPE
rm -f /tmp/in /tmp/out.log; mkfifo /tmp/in; : > /tmp/out.log
(XENKVM_LOG=info /xenkvm -accel kvm,"#,
            $args,
            r#" -m 512 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "console=ttyS0 console=hvc0 no_timer_check panic=-1 loglevel=7" --timeout 400 < /tmp/in; echo "XENKVM-L1: xenkvm rc=$?") 2>&1 | tee /tmp/out.log &
exec 3>/tmp/in
await() { i=0; while [ "$(grep -c "$1" /tmp/out.log)" -lt "$2" ] && [ $i -lt 900 ] && ! grep -q "XENKVM-L1: xenkvm rc" /tmp/out.log; do sleep 0.5; i=$((i+1)); done; }
await "XENKVM-L2: shell" 1
cat >&3 <<'CMDS'
echo XENKVM-L2: hypervisor=$(cat /sys/hypervisor/type 2>/dev/null)
echo XENKVM-L2: version=$(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)
echo XENKVM-L2: cpus=$(grep -c ^processor /proc/cpuinfo)
echo XENKVM-L2: timer-before $(grep -E 'timer0$' /proc/interrupts)
sleep 1
echo XENKVM-L2: timer-after $(grep -E 'timer0$' /proc/interrupts)
grep -i xen /proc/interrupts
dmesg | grep -i -E 'xen|grant|evtchn'
echo XENKVM-L2: rebooting
reboot -f
CMDS
await "XENKVM-L2: shell" 2
echo 'echo XENKVM-L2: second-boot; poweroff -f' >&3
await "XENKVM-L1: xenkvm rc" 1
exec 3>&-
wait
rc=$(sed -n 's/.*XENKVM-L1: xenkvm rc=//p' /tmp/out.log | tail -n 1)
exit ${rc:-1}"#
        )
    };
}

/// xenkvm booting the Debian kernel; the kernel logs to ttyS0 and hvc0, its
/// /init offers a shell on hvc0 (the last console), driven by [`shell_driver`].
const LINUX_BOOT_CMD: &str = shell_driver!("xen-version=0x40011,kernel-irqchip=split");
const LINUX_BOOT_SMP_CMD: &str = shell_driver!("xen-version=0x40011,kernel-irqchip=split -smp 2");
const LINUX_BOOT_410_CMD: &str = shell_driver!("xen-version=0x4000a,kernel-irqchip=split");

/// The L2 /init of the shell-driven scenarios: no echo (the driver's typing
/// stays out of the log), then a shell on the console.
const LINUX_SHELL_INIT: &str = "echo XENKVM-L2: up
stty -echo 2>/dev/null
echo XENKVM-L2: shell
exec sh";

/// What the L2 guest does once its /init runs: report where it is and stop.
const LINUX_BOOT_INIT: &str = "echo XENKVM-L2: up
echo XENKVM-L2: hypervisor=$(cat /sys/hypervisor/type 2>/dev/null)
echo XENKVM-L2: version=$(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)
echo XENKVM-L2: cpus=$(grep -c ^processor /proc/cpuinfo)
echo XENKVM-L2: timer-before $(grep -E 'timer0$' /proc/interrupts)
sleep 1
echo XENKVM-L2: timer-after $(grep -E 'timer0$' /proc/interrupts)
grep -i xen /proc/interrupts
dmesg | grep -i -E 'xen|grant|evtchn'
poweroff -f";

/// Debian's xenstore-utils (hard links to one binary, dispatching on its name).
const XENSTORE_PROGRAMS: &[&str] = &["xenstore-ls", "xenstore-read", "xenstore-write", "xenstore-watch"];
/// xenfs (`/proc/xen`, needs xen-privcmd); the Debian 6.1 kernel has the xenbus
/// device `/dev/xen/xenbus` built in, xenfs gives `/proc/xen/xenbus` as well.
const XENSTORE_MODULES: &[&str] = &["xen-privcmd", "xenfs"];

/// xenkvm in the background with a fixed host socket; once the socket is
/// there a host `xenstore-watch` on the guest's `data` logs every event to a
/// file, printed after xenkvm ends as `HOST-WATCH: <path>`. The script exits
/// with xenkvm's status.
const LINUX_XENSTORE_SCRIPT: &str = r#"rm -f /tmp/xs.sock /tmp/watch.log
XENKVM_LOG=info /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 512 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "console=ttyS0 console=hvc0 no_timer_check panic=-1 loglevel=7" --xenstore-socket /tmp/xs.sock --timeout 400 &
vmm=$!
i=0
while [ ! -S /tmp/xs.sock ] && [ $i -lt 600 ] && kill -0 $vmm 2>/dev/null; do sleep 0.1; i=$((i+1)); done
echo "XENKVM-L1: socket $(ls -l /tmp/xs.sock 2>&1)"
XENSTORED_PATH=/tmp/xs.sock xenstore-watch /local/domain/1/data > /tmp/watch.log 2>&1 &
watch=$!
wait $vmm
rc=$?
kill $watch 2>/dev/null
sed 's/^/HOST-WATCH: /' /tmp/watch.log
echo "XENKVM-L1: xenkvm rc=$rc"
exit $rc"#;

/// The guest lists its home with xenstore-ls over its xenbus device, writes
/// `data/test` (relative to its home) and reads it back.
const LINUX_XENSTORE_INIT: &str = "echo XENKVM-L2: up
mkdir -p /proc/xen
mount -t xenfs xenfs /proc/xen
echo XENKVM-L2: dev-xen $(ls /dev/xen 2>&1) proc-xen $(ls /proc/xen 2>&1)
echo XENKVM-L2: domain $(xenstore-read domid 2>&1) name $(xenstore-read name 2>&1)
xenstore-ls /local/domain/1 > /tmp/ls.out 2>&1
rc=$?
sed 's/^/XS-LS: /' /tmp/ls.out
echo XENKVM-L2: xenstore-ls rc=$rc
xenstore-write data/test hello-from-guest
echo XENKVM-L2: xenstore-write rc=$?
echo XENKVM-L2: read-back $(xenstore-read /local/domain/1/data/test 2>&1)
sleep 2
poweroff -f";

/// L1 makes an 8 MiB image of random bytes, runs the guest with it as xvda,
/// and prints the checksums of its first half (which the guest reads) and of
/// its second half (which the guest overwrites) after xenkvm ends.
/// Nodes the toolstack creates under the domain's home (default_tree.rs).
const XENSTORE_HOME_NODES: &[&str] = &["name", "domid", "memory", "device", "control", "data"];

fn check_linux_xenstore(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L2:") || l.contains("XENKVM-L1:")).cloned());
    // The top level of the listing: lines without xenstore-ls's indentation.
    let listed: Vec<&str> = c
        .output
        .iter()
        .filter_map(|l| l.find("XS-LS: ").map(|i| &l[i + "XS-LS: ".len()..]))
        .filter(|l| !l.starts_with(' '))
        .collect();
    report.push(format!("guest xenstore-ls /local/domain/1, top level: {}", listed.join(" | ")));
    let watch: Vec<&str> = c.output.iter().filter_map(|l| l.find("HOST-WATCH: ").map(|i| &l[i..])).collect();
    report.extend(watch.iter().map(|l| l.to_string()));
    report_status(c, report);
    for bad in ["BUG:", "Oops", "Kernel panic"] {
        ensure!(!text.contains(bad), "the guest log has {bad:?}");
    }
    ensure!(text.contains("XENKVM-L2: up"), "the L2 kernel did not reach its /init");
    ensure!(text.contains("XENKVM-L2: xenstore-ls rc=0"), "xenstore-ls failed in the guest");
    let missing: Vec<&str> = XENSTORE_HOME_NODES
        .iter()
        .copied()
        .filter(|n| !listed.iter().any(|l| l.split(" = ").next() == Some(*n)))
        .collect();
    ensure!(missing.is_empty(), "the guest's xenstore-ls does not list {missing:?}");
    ensure!(text.contains("XENKVM-L2: xenstore-write rc=0"), "the guest's xenstore-write failed");
    ensure!(
        watch.iter().any(|l| l.trim_end() == "HOST-WATCH: /local/domain/1/data/test"),
        "the host's watch on /local/domain/1/data did not fire for data/test"
    );
    ensure!(c.rc == Some(0), "xenkvm exited with {:?}, not 0", c.rc);
    Ok(())
}

/// The first number after `label` on the guest's `XENKVM-L2: <label>` line:
/// the interrupt count of the line `grep` printed.
fn interrupt_count(c: &Console, label: &str) -> Option<u64> {
    let line = c.line_with(&format!("XENKVM-L2: {label} "))?;
    line.split_once(label)?.1.split_whitespace().nth(1)?.parse().ok()
}

/// What the scenario's command line asks for: the Xen version and vCPUs.
fn expected(command: &str) -> (&'static str, u32) {
    let version = if command.contains("xen-version=0x4000a") { "4.10" } else { "4.17" };
    let cpus = if command.contains("-smp 2") { 2 } else { 1 };
    (version, cpus)
}

fn check_linux_boot_of(c: &Console, report: &mut Vec<String>, command: &str) -> Result<()> {
    let text = c.text();
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L2:")).cloned());
    report.extend(c.output.iter().filter(|l| l.contains("xen-percpu") || l.contains("xen-dyn")).cloned());
    report_status(c, report);
    let (version, cpus) = expected(command);
    for bad in ["BUG:", "Oops", "Kernel panic", "Cannot get hvm parameter"] {
        ensure!(!text.contains(bad), "the guest log has {bad:?}");
    }
    ensure!(text.contains("XENKVM-L2: up"), "the L2 kernel did not reach its /init");
    ensure!(text.contains("XENKVM-L2: hypervisor=xen"), "/sys/hypervisor/type is not xen");
    ensure!(text.contains(&format!("XENKVM-L2: version={version}")), "/sys/hypervisor/version is not {version}");
    ensure!(text.contains(&format!("XENKVM-L2: cpus={cpus}")), "the guest does not see {cpus} vCPUs");
    let (before, after) = (interrupt_count(c, "timer-before"), interrupt_count(c, "timer-after"));
    ensure!(matches!((before, after), (Some(b), Some(a)) if a > b), "the Xen timer interrupt did not count up: {before:?} -> {after:?}");
    ensure!(c.rc == Some(0), "xenkvm exited with {:?}, not 0", c.rc);
    if command.contains("XENKVM-L2: shell") {
        ensure!(text.contains("restarting it"), "xenkvm did not restart the guest after reboot -f");
        ensure!(text.contains("XENKVM-L2: second-boot"), "the guest's shell did not come back after reboot -f");
    }
    Ok(())
}

fn check_linux_boot(c: &Console, report: &mut Vec<String>) -> Result<()> {
    check_linux_boot_of(c, report, LINUX_BOOT_CMD)
}

fn check_linux_boot_smp(c: &Console, report: &mut Vec<String>) -> Result<()> {
    check_linux_boot_of(c, report, LINUX_BOOT_SMP_CMD)
}

fn check_linux_boot_410(c: &Console, report: &mut Vec<String>) -> Result<()> {
    check_linux_boot_of(c, report, LINUX_BOOT_410_CMD)
}

fn check_linux_boot_qemu(c: &Console, report: &mut Vec<String>) -> Result<()> {
    check_linux_boot_of(c, report, "")
}

pub fn find(name: &str) -> Result<&'static Scenario> {
    match SCENARIOS.iter().find(|s| s.name == name) {
        Some(s) => Ok(s),
        None => bail!("unknown nested scenario {name:?}; known: {}", names().join(", ")),
    }
}

pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

/// What L1 printed, split at the markers of its `/init`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Console {
    /// `XENKVM-NESTED: L1 up` was seen.
    pub l1_up: bool,
    /// The scenario's exit status from `XENKVM-NESTED: rc=N`.
    pub rc: Option<i32>,
    /// The lines between the two markers: the scenario's own output.
    pub output: Vec<String>,
}

impl Console {
    pub fn parse(lines: &[String]) -> Self {
        let mut c = Console::default();
        for line in lines {
            if !c.l1_up {
                c.l1_up = line.contains(MARK_UP);
            } else if let Some(i) = line.find(MARK_RC) {
                let digits: String = line[i + MARK_RC.len()..].chars().take_while(char::is_ascii_digit).collect();
                c.rc = digits.parse().ok();
                break;
            } else {
                c.output.push(line.clone());
            }
        }
        c
    }

    /// Both markers are there: L1 ran the scenario to its end.
    pub fn require_markers(&self) -> Result<i32> {
        ensure!(self.l1_up, "L1 never reached its /init (no `{MARK_UP}` line)");
        match self.rc {
            Some(rc) => Ok(rc),
            None => bail!("no `{MARK_RC}N` line: L1 died or was stopped before the scenario ended"),
        }
    }

    fn text(&self) -> String {
        self.output.join("\n")
    }

    /// The rest of the first output line containing `tag`, from `tag` on.
    fn line_with(&self, tag: &str) -> Option<&str> {
        self.output.iter().find_map(|l| l.find(tag).map(|i| &l[i..]))
    }

    /// xenkvm's own error lines (`xenkvm: ...`), for the report.
    fn errors(&self) -> impl Iterator<Item = &str> {
        self.output.iter().filter_map(|l| l.find("xenkvm: ").map(|i| &l[i..]))
    }
}

/// What an exit status of xenkvm means (README, "Exit status"); 137 is L1's
/// `timeout -s KILL`.
pub fn status_meaning(rc: i32) -> &'static str {
    match rc {
        0 => "guest powered off",
        1 => "xenkvm failed",
        2 => "guest crashed",
        3 => "guest watchdog",
        4 => "soft reset or unknown shutdown code",
        5 => "guest triple-faulted",
        6 => "guest halted with interrupts disabled",
        124 => "xenkvm's --timeout reached",
        137 => "killed by L1's timeout",
        _ => "unknown",
    }
}

/// `guest selftest: N passed, M failed`.
pub fn parse_summary(out: &str) -> Option<(u32, u32)> {
    const TAG: &str = "guest selftest:";
    let line = out.lines().find_map(|l| l.find(TAG).map(|i| &l[i + TAG.len()..]))?;
    let mut nums = line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(str::parse::<u32>);
    match (nums.next(), nums.next()) {
        (Some(Ok(p)), Some(Ok(f))) => Some((p, f)),
        _ => None,
    }
}

fn report_status(c: &Console, report: &mut Vec<String>) {
    if let Some(rc) = c.rc {
        report.push(format!("xenkvm exit status {rc} ({})", status_meaning(rc)));
    }
    if c.rc != Some(0) {
        report.extend(c.errors().map(str::to_string));
    }
}

fn check_probe(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let caps = c.line_with("host KVM:");
    if let Some(caps) = caps {
        report.push(caps.to_string());
    }
    // Which hypercall path the VMM chose for this KVM (logged at info level).
    if let Some(path) = c.line_with("hypercalls:") {
        report.push(path.to_string());
    }
    match parse_summary(&c.text()) {
        Some((p, f)) => report.push(format!("guest selftest: {p} passed, {f} failed")),
        None => report.push("guest: no selftest summary".to_string()),
    }
    report_status(c, report);
    ensure!(caps.is_some(), "xenkvm did not log its `host KVM:` capabilities line");
    Ok(())
}

fn check_selftest(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let summary = parse_summary(&c.text());
    if let Some((p, f)) = summary {
        report.push(format!("guest selftest: {p} passed, {f} failed"));
    }
    report.extend(c.output.iter().filter(|l| l.contains("FAIL")).cloned());
    report_status(c, report);
    let Some((passed, failed)) = summary else { bail!("no `guest selftest:` summary line") };
    ensure!(failed == 0, "{failed} guest checks failed");
    ensure!(passed >= 40, "only {passed} guest checks ran (at least 40 expected)");
    ensure!(c.rc == Some(0), "xenkvm exited with {:?}, not 0", c.rc);
    Ok(())
}

fn check_bench(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let line = bench::parse(&c.text());
    if let Some(b) = &line {
        report.extend(bench::report(b));
    } else if let Some(raw) = c.line_with("bench hypercall:") {
        report.push(raw.to_string());
    }
    report_status(c, report);
    ensure!(line.is_some(), "no complete `bench hypercall:` line in the guest output");
    ensure!(c.rc == Some(0), "xenkvm exited with {:?}, not 0", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    /// Symbols a module defines (`T`/`D`/...) or needs (`U`), from `nm`.
    fn module_symbols(path: &std::path::Path) -> Option<(Vec<String>, Vec<String>)> {
        let out = std::process::Command::new("nm").arg(path).output().ok()?;
        let (mut defined, mut needed) = (Vec::new(), Vec::new());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["U", sym] => needed.push(sym.to_string()),
                [_, kind, sym] if kind.chars().all(|c| c.is_ascii_uppercase()) => defined.push(sym.to_string()),
                _ => {}
            }
        }
        Some((defined, needed))
    }

    #[test]
    fn l2_modules_load_after_the_modules_they_need() {
        // insmod has no dependency resolution: a scenario must list a module
        // after every listed module whose symbols it takes.
        let Ok(settings) = crate::nested::Settings::from_env() else { return };
        let dir = settings.l2_modules();
        if !dir.is_dir() {
            return eprintln!("SKIP: no {}", dir.display());
        }
        for sc in SCENARIOS {
            let Some(l2) = sc.l2 else { continue };
            let syms: Vec<_> = l2.modules.iter().map(|m| module_symbols(&dir.join(format!("{m}.ko")))).collect();
            if syms.iter().any(Option::is_none) {
                return eprintln!("SKIP: nm is not usable here");
            }
            let syms: Vec<_> = syms.into_iter().flatten().collect();
            for (i, (_, needed)) in syms.iter().enumerate() {
                for (j, (defined, _)) in syms.iter().enumerate().skip(i + 1) {
                    let late = needed.iter().find(|n| defined.contains(n));
                    assert!(late.is_none(), "{}: {} needs {:?} from {}, listed after it", sc.name, l2.modules[i], late, l2.modules[j]);
                }
            }
        }
    }

    #[test]
    fn every_l1_script_parses_as_shell() {
        // busybox ash runs them in L1; a POSIX `sh -n` catches syntax errors
        // (a function named after a keyword, say) before a 10-minute run does.
        for s in SCENARIOS {
            let out = std::process::Command::new("sh").arg("-n").arg("-c").arg(s.command).output();
            let Ok(out) = out else { return eprintln!("SKIP: no sh here") };
            assert!(out.status.success(), "{}: {}", s.name, String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn table_has_unique_names_and_sane_limits() {
        assert_eq!(
            names(),
            [
                "probe",
                "selftest",
                "selftest-userspace",
                "bench-hypercall",
                "bench-hypercall-kernel",
                "linux-boot",
                "linux-boot-smp",
                "linux-boot-410",
                "linux-boot-qemu",
                "linux-xenstore",
                "linux-pv",
                "linux-pv-qemu",
                "linux-net",
                "linux-matrix",
                "linux-console",
                "linux-control",
                "linux-hotplug",
                "linux-balloon",
                "bench-block",
                "bench-net",
                "bench-boot"
            ]
        );
        for s in SCENARIOS {
            assert_eq!(SCENARIOS.iter().filter(|t| t.name == s.name).count(), 1);
            assert!(s.command.contains("/xenkvm") || s.anchor, "{}", s.name);
            // The VMM's own limit: a script's watchdog, busybox timeout around the anchor, or xenkvm's --timeout.
            let flag = ["WATCHDOG=", "timeout -s KILL ", "--timeout "].into_iter().find(|f| s.command.contains(f)).unwrap();
            let vmm: u64 =
                s.command.split(flag).nth(1).and_then(|t| t.split_whitespace().next()?.parse().ok()).unwrap();
            assert!(vmm < s.l1_timeout_secs, "{}: L1 must outlast xenkvm's own limit", s.name);
            let long = ["linux-matrix"].contains(&s.name);
            assert!(s.l1_timeout_secs + 60 <= 600 || long, "{}: only the known long scenarios outlast the default limit", s.name);
        }
        assert!(find("bench-hypercall").unwrap().command.contains("bench=hypercall iters=40000"));
        let err = find("nope").unwrap_err().to_string();
        assert!(err.contains("probe, selftest, selftest-userspace, bench-hypercall"), "{err}");
    }

    #[test]
    fn markers_split_the_console() {
        let c = Console::parse(&console("boot noise\nXENKVM-NESTED: L1 up\na\nb\nXENKVM-NESTED: rc=2\n[ 3.1] reboot"));
        assert_eq!(c, Console { l1_up: true, rc: Some(2), output: vec!["a".into(), "b".into()] });
        assert_eq!(c.require_markers().unwrap(), 2);
        let cut = Console::parse(&console("XENKVM-NESTED: L1 up\nrunning"));
        assert!(cut.require_markers().unwrap_err().to_string().contains("no `XENKVM-NESTED: rc=N` line"));
        let none = Console::parse(&console("Kernel panic"));
        assert!(!none.l1_up);
        assert!(none.require_markers().unwrap_err().to_string().contains("never reached"));
    }

    #[test]
    fn probe_reports_caps_and_passes_whatever_the_guest_did() {
        let c = Console::parse(&console(
            "XENKVM-NESTED: L1 up\n2026 INFO xenkvm_vmm::builder: host KVM: xen_hvm=0x3f sync_regs=0x7\n\
             2026 INFO xenkvm_vmm::builder: hypercalls: kernel-assisted (KVM_EXIT_XEN)\n\
             xenkvm: KVM_RUN failed\nXENKVM-NESTED: rc=1",
        ));
        let mut r = Vec::new();
        check_probe(&c, &mut r).unwrap();
        assert_eq!(r[0], "host KVM: xen_hvm=0x3f sync_regs=0x7");
        assert_eq!(r[1], "hypercalls: kernel-assisted (KVM_EXIT_XEN)");
        assert!(r.contains(&"xenkvm exit status 1 (xenkvm failed)".to_string()), "{r:?}");
        assert!(r.contains(&"xenkvm: KVM_RUN failed".to_string()), "{r:?}");
        let without = Console::parse(&console("XENKVM-NESTED: L1 up\nXENKVM-NESTED: rc=0"));
        assert!(check_probe(&without, &mut Vec::new()).is_err());
    }

    #[test]
    fn selftest_needs_forty_checks_none_failed_and_status_zero() {
        assert_eq!(parse_summary("x\nguest selftest: 80 passed, 0 failed\n"), Some((80, 0)));
        assert_eq!(parse_summary("guest selftest: 7 passed"), None);
        let run = |text: &str| check_selftest(&Console::parse(&console(text)), &mut Vec::new());
        run("XENKVM-NESTED: L1 up\nguest selftest: 80 passed, 0 failed\nXENKVM-NESTED: rc=0").unwrap();
        assert!(run("XENKVM-NESTED: L1 up\nguest selftest: 39 passed, 0 failed\nXENKVM-NESTED: rc=0").is_err());
        assert!(
            run("XENKVM-NESTED: L1 up\nFAIL 3 - x\nguest selftest: 79 passed, 1 failed\nXENKVM-NESTED: rc=2").is_err()
        );
        assert!(run("XENKVM-NESTED: L1 up\nguest selftest: 80 passed, 0 failed\nXENKVM-NESTED: rc=124").is_err());
        assert!(run("XENKVM-NESTED: L1 up\nXENKVM-NESTED: rc=0").is_err());
    }

    #[test]
    fn bench_reports_like_the_host_bench() {
        let c = Console::parse(&console(
            "XENKVM-NESTED: L1 up\nbench hypercall: iters=4 bare_ns=400 hcall_ns=440 stub_no_exit_ns=40 stub_exit_ns=420\n\
             XENKVM-NESTED: rc=0",
        ));
        let mut r = Vec::new();
        check_bench(&c, &mut r).unwrap();
        assert_eq!(r[..7], bench::report(&bench::parse(&c.text()).unwrap())[..]);
        let failed = Console::parse(&console("XENKVM-NESTED: L1 up\nbench hypercall: FAIL: x\nXENKVM-NESTED: rc=2"));
        let mut r = Vec::new();
        assert!(check_bench(&failed, &mut r).is_err());
        assert_eq!(r[0], "bench hypercall: FAIL: x");
    }
    #[test]
    fn linux_boot_checks_version_cpus_timer_and_bad_lines() {
        let good = "XENKVM-NESTED: L1 up\nXENKVM-L2: up\nXENKVM-L2: hypervisor=xen\nXENKVM-L2: version=4.17\n\
                    XENKVM-L2: cpus=1\nXENKVM-L2: timer-before 24: 10 xen-percpu -virq timer0\n\
                    XENKVM-L2: timer-after 24: 250 xen-percpu -virq timer0\nXENKVM-L2: rebooting\n\
                    INFO xenkvm_vmm: guest reset (Shutdown(Reboot)): restarting it\nXENKVM-L2: up\n\
                    XENKVM-L2: second-boot\nXENKVM-NESTED: rc=0\n";
        let c = Console::parse(&console(good));
        assert!(check_linux_boot(&c, &mut Vec::new()).is_ok());
        let no_restart = good.replace("XENKVM-L2: second-boot", "");
        assert!(check_linux_boot(&Console::parse(&console(&no_restart)), &mut Vec::new()).unwrap_err().to_string().contains("reboot"));
        assert!(check_linux_boot_smp(&c, &mut Vec::new()).unwrap_err().to_string().contains("2 vCPUs"));
        assert!(check_linux_boot_410(&c, &mut Vec::new()).unwrap_err().to_string().contains("4.10"));
        let stuck = good.replace("timer-after 24: 250", "timer-after 24: 10");
        assert!(check_linux_boot(&Console::parse(&console(&stuck)), &mut Vec::new()).is_err());
        let oops = good.replace("XENKVM-L2: up", "XENKVM-L2: up\n[ 1.0] BUG: kernel NULL pointer dereference");
        assert!(check_linux_boot(&Console::parse(&console(&oops)), &mut Vec::new()).unwrap_err().to_string().contains("BUG:"));
    }

    #[test]
    fn linux_xenstore_needs_the_tree_the_write_the_watch_and_status_zero() {
        let good = "XENKVM-NESTED: L1 up\nxenkvm: xenstore for host tools at /tmp/xs.sock (XENSTORED_PATH)\n\
                    XENKVM-L1: socket srwxr-xr-x 1 root root 0 /tmp/xs.sock\nXENKVM-L2: up\n\
                    XS-LS: vm = \"\"\nXS-LS: name = \"xenkvm-guest\"\nXS-LS: domid = \"1\"\nXS-LS: memory = \"\"\n\
                    XS-LS:  static-max = \"524288\"\nXS-LS: device = \"\"\nXS-LS:  suspend = \"\"\n\
                    XS-LS: control = \"\"\nXS-LS:  shutdown = \"\"\nXS-LS: data = \"\"\nXENKVM-L2: xenstore-ls rc=0\n\
                    XENKVM-L2: xenstore-write rc=0\nXENKVM-L2: read-back hello-from-guest\n\
                    HOST-WATCH: /local/domain/1/data\nHOST-WATCH: /local/domain/1/data/test\n\
                    XENKVM-L1: xenkvm rc=0\nXENKVM-NESTED: rc=0\n";
        let run = |t: &str| {
            let mut r = Vec::new();
            check_linux_xenstore(&Console::parse(&console(t)), &mut r).map(|()| r)
        };
        let r = run(good).unwrap();
        assert!(r.contains(&"HOST-WATCH: /local/domain/1/data/test".to_string()), "{r:?}");
        assert!(r.iter().any(|l| l.starts_with("guest xenstore-ls") && l.contains("device = \"\"")), "{r:?}");
        assert!(r.contains(&"xenkvm exit status 0 (guest powered off)".to_string()), "{r:?}");
        let err = |t: &str| run(t).unwrap_err().to_string();
        assert!(err(&good.replace("XS-LS: control", "XS-LS:  control")).contains("\"control\""));
        assert!(err(&good.replace("xenstore-ls rc=0", "xenstore-ls rc=1")).contains("xenstore-ls failed"));
        assert!(err(&good.replace("xenstore-write rc=0", "xenstore-write rc=1")).contains("xenstore-write"));
        assert!(err(&good.replace("HOST-WATCH: /local/domain/1/data/test\n", "")).contains("watch"));
        assert!(err(&good.replace("NESTED: rc=0", "NESTED: rc=124")).contains("124"));
        assert!(err(&good.replace("XENKVM-L2: up", "XENKVM-L2: up\nOops: 0000")).contains("Oops"));
        let s = find("linux-xenstore").unwrap();
        assert_eq!(s.l2.unwrap().extra_programs, s.extra_programs);
        assert!(s.command.contains("--xenstore-socket /tmp/xs.sock") && s.command.contains("exit $rc"));
    }

}
