//! `linux-pv` and `linux-pv-qemu`: the Debian guest's blkfront on three PV
//! disks. xvda is a raw image of random bytes: the guest checksums its head
//! and writes a pattern after it with fsync. xvdb (raw) and xvdc (qcow2) hold
//! ext4 filesystems made in L1: the guest mounts both, writes a file of
//! random bytes to each, syncs and unmounts. After the VMM ended, L1 checks
//! the raw tail, fscks both filesystems, dumps the files with debugfs and
//! runs `qemu-img check` on the qcow2 image.

use anyhow::{ensure, Result};

use super::{report_status, Console};

/// Host programs L1 needs (e2fsprogs, qemu-utils); the scripts call them by
/// their full paths, as busybox has applets of the same names.
pub const FS_PROGRAMS: &[&str] = &["/usr/sbin/mke2fs", "/usr/sbin/e2fsck", "/usr/sbin/debugfs", "qemu-img"];
/// Modules, in load order: ext4 and its dependencies (crc32c_generic comes
/// from the kernel's Debian package, see `l2mods`), then blkfront.
pub const FS_MODULES: &[&str] = &["crc32c_generic", "crc16", "mbcache", "jbd2", "ext4", "xen-blkfront"];

/// The images, before the VMM runs.
macro_rules! prepare {
    () => {
        r#"dd if=/dev/urandom of=/tmp/xvda.img bs=1048576 count=8 2>/dev/null
echo "XENKVM-L1: head $(dd if=/tmp/xvda.img bs=1048576 count=4 2>/dev/null | md5sum | cut -d' ' -f1)"
/usr/sbin/mke2fs -q -t ext4 -F /tmp/fs.img 64M; echo "XENKVM-L1: mke2fs rc=$?"
qemu-img convert -f raw -O qcow2 /tmp/fs.img /tmp/fs.qcow2; echo "XENKVM-L1: qcow2 rc=$?"
DRIVES="-drive file=/tmp/xvda.img,if=xen,format=raw -drive file=/tmp/fs.img,if=xen,format=raw -drive file=/tmp/fs.qcow2,if=xen,format=qcow2"
"#
    };
}

/// The checks after the VMM ended (its status in `$rc`).
macro_rules! verify {
    () => {
        r#"
echo "XENKVM-L1: tail $(dd if=/tmp/xvda.img bs=1048576 skip=4 count=4 2>/dev/null | md5sum | cut -d' ' -f1)"
qemu-img check /tmp/fs.qcow2 > /tmp/check.out 2>&1; echo "XENKVM-L1: qemu-img check rc=$?"; sed 's/^/XENKVM-L1: check: /' /tmp/check.out
qemu-img convert -f qcow2 -O raw /tmp/fs.qcow2 /tmp/fs-q.img
for f in raw:/tmp/fs.img qcow2:/tmp/fs-q.img; do
  n=${f%%:*}; img=${f#*:}
  /usr/sbin/e2fsck -fn $img > /tmp/fsck.out 2>&1; echo "XENKVM-L1: $n fsck rc=$?"
  /usr/sbin/debugfs -R "dump /data.bin /tmp/$n.bin" $img >/dev/null 2>&1
  echo "XENKVM-L1: $n data.bin $(md5sum < /tmp/$n.bin | cut -d' ' -f1)"
done
echo "XENKVM-L1: xenkvm rc=$rc"
exit $rc"#
    };
}

pub const LINUX_PV_SCRIPT: &str = concat!(
    prepare!(),
    r#"XENKVM_LOG=info /xenkvm -accel kvm,xen-version=0x40011,kernel-irqchip=split -m 512 -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "console=ttyS0 console=hvc0 no_timer_check panic=-1 loglevel=7" -no-reboot $DRIVES --timeout 400
rc=$?"#,
    verify!()
);

/// [`LINUX_PV_SCRIPT`] with the anchor QEMU in place of xenkvm (the guest's
/// console is COM1 there: QEMU's PV console is not the kernel's console).
pub const LINUX_PV_QEMU_SCRIPT: &str = concat!(
    prepare!(),
    r#"timeout -s KILL 400 /anchor/qemu-system-x86_64 -L /anchor/pc-bios -accel kvm,xen-version=0x40011,kernel-irqchip=split -cpu host -m 512 -smp 1 -nographic -nodefaults -serial stdio -nic none -no-reboot -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append "console=ttyS0 no_timer_check panic=-1 loglevel=7" $DRIVES
rc=$?"#,
    verify!()
);

/// The guest's part: raw checks on xvda, then ext4 on xvdb and xvdc.
pub const LINUX_PV_INIT: &str = r#"echo XENKVM-L2: up
i=0
while { [ ! -b /dev/xvda ] || [ ! -b /dev/xvdc ]; } && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo XENKVM-L2: xvda sectors $(cat /sys/block/xvda/size 2>&1)
echo XENKVM-L2: head $(dd if=/dev/xvda bs=1048576 count=4 2>/dev/null | md5sum | cut -d' ' -f1)
dd if=/dev/urandom of=/tmp/pattern bs=1048576 count=4 2>/dev/null
echo XENKVM-L2: pattern $(md5sum < /tmp/pattern | cut -d' ' -f1)
dd if=/tmp/pattern of=/dev/xvda bs=1048576 seek=4 conv=fsync 2>/dev/null
echo XENKVM-L2: write rc=$?
sync
echo 3 > /proc/sys/vm/drop_caches
echo XENKVM-L2: readback $(dd if=/dev/xvda bs=1048576 skip=4 count=4 2>/dev/null | md5sum | cut -d' ' -f1)
for d in xvdb:raw xvdc:qcow2; do
  dev=${d%%:*}; n=${d#*:}
  mkdir -p /mnt/$n
  mount -t ext4 /dev/$dev /mnt/$n; echo XENKVM-L2: mount $n rc=$?
  dd if=/dev/urandom of=/mnt/$n/data.bin bs=1048576 count=4 2>/dev/null
  echo XENKVM-L2: $n data.bin $(md5sum < /mnt/$n/data.bin | cut -d' ' -f1)
done
sync
umount /mnt/raw /mnt/qcow2; echo XENKVM-L2: umount rc=$?
poweroff -f"#;

pub fn check_linux_pv(c: &Console, report: &mut Vec<String>) -> Result<()> {
    let text = c.text();
    report.extend(c.output.iter().filter(|l| l.contains("XENKVM-L2:") || l.contains("XENKVM-L1:") || l.contains("pvblock")).cloned());
    report_status(c, report);
    let sum = |tag: &str| c.line_with(tag).and_then(|l| l[tag.len()..].split_whitespace().next()).map(str::to_string);
    for bad in ["BUG:", "Oops", "Kernel panic"] {
        ensure!(!text.contains(bad), "the guest log has {bad:?}");
    }
    ensure!(text.contains("XENKVM-L2: up"), "the L2 kernel did not reach its /init");
    ensure!(text.contains("XENKVM-L2: xvda sectors 16384"), "the guest has no 8 MiB /dev/xvda");
    let (l1_head, l2_head) = (sum("XENKVM-L1: head "), sum("XENKVM-L2: head "));
    ensure!(l1_head.is_some() && l1_head == l2_head, "the guest read {l2_head:?} from xvda, the image holds {l1_head:?}");
    ensure!(text.contains("XENKVM-L2: write rc=0"), "the guest's write to xvda failed");
    let (pattern, readback, tail) = (sum("XENKVM-L2: pattern "), sum("XENKVM-L2: readback "), sum("XENKVM-L1: tail "));
    ensure!(pattern.is_some() && pattern == readback, "the guest read back {readback:?}, wrote {pattern:?}");
    ensure!(pattern == tail, "the image holds {tail:?} where the guest wrote {pattern:?}");
    ensure!(text.contains("XENKVM-L1: mke2fs rc=0") && text.contains("XENKVM-L1: qcow2 rc=0"), "L1 could not make the ext4 images");
    for n in ["raw", "qcow2"] {
        ensure!(text.contains(&format!("XENKVM-L2: mount {n} rc=0")), "the guest could not mount the {n} ext4 disk");
        let (guest, host) = (sum(&format!("XENKVM-L2: {n} data.bin ")), sum(&format!("XENKVM-L1: {n} data.bin ")));
        ensure!(guest.is_some() && guest == host, "{n}: the guest wrote data.bin {guest:?}, the filesystem holds {host:?}");
        ensure!(text.contains(&format!("XENKVM-L1: {n} fsck rc=0")), "{n}: e2fsck found errors");
    }
    ensure!(text.contains("XENKVM-L2: umount rc=0"), "the guest could not unmount its filesystems");
    ensure!(text.contains("XENKVM-L1: qemu-img check rc=0"), "qemu-img check failed on the qcow2 image");
    ensure!(c.rc == Some(0), "the VMM exited with {:?}, not 0", c.rc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_needs_checksums_filesystems_and_a_clean_qcow2() {
        let good = "XENKVM-NESTED: L1 up\nXENKVM-L1: head aa\nXENKVM-L1: mke2fs rc=0\nXENKVM-L1: qcow2 rc=0\nXENKVM-L2: up\n\
            XENKVM-L2: xvda sectors 16384\nXENKVM-L2: head aa\nXENKVM-L2: pattern bb\nXENKVM-L2: write rc=0\n\
            XENKVM-L2: readback bb\nXENKVM-L2: mount raw rc=0\nXENKVM-L2: raw data.bin cc\nXENKVM-L2: mount qcow2 rc=0\n\
            XENKVM-L2: qcow2 data.bin dd\nXENKVM-L2: umount rc=0\nXENKVM-L1: tail bb\nXENKVM-L1: qemu-img check rc=0\n\
            XENKVM-L1: raw fsck rc=0\nXENKVM-L1: raw data.bin cc\nXENKVM-L1: qcow2 fsck rc=0\nXENKVM-L1: qcow2 data.bin dd\n\
            XENKVM-NESTED: rc=0";
        let c = |t: &str| Console::parse(&t.lines().map(str::to_string).collect::<Vec<_>>());
        check_linux_pv(&c(good), &mut Vec::new()).unwrap();
        let bad = good.replace("XENKVM-L1: qcow2 data.bin dd", "XENKVM-L1: qcow2 data.bin ee");
        assert!(check_linux_pv(&c(&bad), &mut Vec::new()).unwrap_err().to_string().contains("qcow2"));
        let bad = good.replace("check rc=0", "check rc=2");
        assert!(check_linux_pv(&c(&bad), &mut Vec::new()).is_err());
    }
}
