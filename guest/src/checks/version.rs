//! Sections 2 and 3: HYPERVISOR_xen_version, including guest-virtual buffer
//! translation (an unmapped address and the alias mapping).

use super::{c_strlen, contains, note, Report};
use crate::abi::*;
use crate::entry::{ALIAS_BASE, ALIAS_SIZE, UNMAPPED_VA};
use crate::hypercall::{va, xen_version, XenCpuid};
use crate::print::{hex, print, CStr};
use crate::shared::{fill, read8, SCRATCH_PAGE};

/// Byte that fills output buffers before a call, so that "untouched" is visible.
const POISON: u8 = 0xAA;

/// Whether `buf` starts with a non-empty NUL-terminated string.
fn non_empty_c_string(buf: &[u8]) -> bool {
    matches!(c_strlen(buf), Some(n) if n > 0)
}

/// Checks a string sub-op that fills a `LEN`-byte buffer with a non-empty
/// NUL-terminated string; returns the buffer.
fn string_op<const LEN: usize>(r: &mut Report, name: &str, cmd: u64) -> [u8; LEN] {
    let mut buf = [POISON; LEN];
    let rc = xen_version(cmd, buf.as_mut_ptr() as u64);
    r.check(name, rc == 0 && non_empty_c_string(&buf), || {
        print!("returned ", rc, ", string length ", c_strlen(&buf), " (none: no NUL)")
    });
    buf
}

pub fn run(r: &mut Report, xen: &XenCpuid) {
    r.section("xen_version");
    let v = xen_version(XENVER_VERSION, 0);
    r.check("xen_version: XENVER_version matches cpuid base+1", v == i64::from(xen.version), || {
        print!("returned ", v, ", cpuid base+1 eax is ", hex(xen.version))
    });

    let extra: [u8; XEN_EXTRAVERSION_LEN] =
        string_op(r, "xen_version: XENVER_extraversion is a non-empty string", XENVER_EXTRAVERSION);
    note!("extraversion \"", CStr(&extra), "\"");

    let mut info = [POISON; XEN_COMPILE_INFO_LEN];
    let rc = xen_version(XENVER_COMPILE_INFO, info.as_mut_ptr() as u64);
    let compiler = &info[..64];
    r.check("xen_version: XENVER_compile_info has a compiler", rc == 0 && non_empty_c_string(compiler), || {
        print!("returned ", rc, ", compiler length ", c_strlen(compiler))
    });
    note!("compiler \"", CStr(compiler), "\"");

    let caps: [u8; XEN_CAPABILITIES_INFO_LEN] =
        string_op(r, "xen_version: XENVER_capabilities is a non-empty string", XENVER_CAPABILITIES);
    let caps_len = c_strlen(&caps).unwrap_or(0);
    r.check(
        "xen_version: capabilities include hvm-3.0-x86_64",
        contains(&caps[..caps_len], b"hvm-3.0-x86_64"),
        || print!("capabilities \"", CStr(&caps), "\""),
    );

    let changeset: [u8; XEN_CHANGESET_INFO_LEN] =
        string_op(r, "xen_version: XENVER_changeset is a non-empty string", XENVER_CHANGESET);
    note!("changeset \"", CStr(&changeset), "\"");

    let mut virt_start: u64 = 0;
    let rc = xen_version(XENVER_PLATFORM_PARAMETERS, va(&mut virt_start));
    r.rc("xen_version: XENVER_platform_parameters", rc, 0);
    note!("virt_start ", hex(virt_start));

    features(r);

    let rc = xen_version(XENVER_PAGESIZE, 0);
    r.rc("xen_version: XENVER_pagesize is 4096", rc, XEN_PAGE_SIZE as i64);

    let mut handle = [POISON; XEN_DOMAIN_HANDLE_LEN];
    let rc = xen_version(XENVER_GUEST_HANDLE, handle.as_mut_ptr() as u64);
    r.rc("xen_version: XENVER_guest_handle", rc, 0);

    // Privileged sub-ops: refused to a domU. The buffer is large enough anyway.
    let rc = xen_version(XENVER_COMMANDLINE, SCRATCH_PAGE.addr());
    r.rc("xen_version: XENVER_commandline is -EPERM", rc, -EPERM);
    let rc = xen_version(XENVER_BUILD_ID, SCRATCH_PAGE.addr());
    r.rc("xen_version: XENVER_build_id is -EPERM", rc, -EPERM);

    let rc = xen_version(99, 0);
    r.rc("xen_version: unknown sub-op 99 is -ENOSYS", rc, -ENOSYS);

    let rc = xen_version(XENVER_EXTRAVERSION, UNMAPPED_VA);
    r.rc("xen_version: extraversion to an unmapped address is -EFAULT", rc, -EFAULT);

    alias(r, &extra);
}

/// XENVER_get_features: submap 0 has the HVM bits, submap 1 does not exist.
fn features(r: &mut Report) {
    let mut fi = XenFeatureInfo { submap_idx: 0, submap: 0 };
    let rc = xen_version(XENVER_GET_FEATURES, va(&mut fi));
    r.rc("xen_version: XENVER_get_features submap 0", rc, 0);
    let want: u32 =
        (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP) | (1 << XENFEAT_HVM_CALLBACK_VECTOR) | (1 << XENFEAT_HVM_SAFE_PVCLOCK);
    let submap = fi.submap;
    r.check(
        "xen_version: features auto_translated_physmap, hvm_callback_vector, hvm_safe_pvclock",
        submap & want == want,
        || print!("submap ", hex(submap), ", missing ", hex(want & !submap)),
    );
    r.check("xen_version: feature dom0 clear", submap & (1 << XENFEAT_DOM0) == 0, || {
        print!("submap ", hex(submap))
    });

    let mut fi = XenFeatureInfo { submap_idx: 1, submap: 0 };
    let rc = xen_version(XENVER_GET_FEATURES, va(&mut fi));
    r.rc("xen_version: XENVER_get_features submap 1 is -EINVAL", rc, -EINVAL);
}

/// XENVER_extraversion into a buffer named by its alias-mapping address: the
/// hypervisor must walk the guest page tables to find the physical page.
fn alias(r: &mut Report, extra: &[u8; XEN_EXTRAVERSION_LEN]) {
    const NAME: &str = "xen_version: extraversion through the alias mapping lands in the physical page";
    let phys = SCRATCH_PAGE.addr() + 0x100;
    if phys + XEN_EXTRAVERSION_LEN as u64 > ALIAS_SIZE {
        r.fail(NAME, || print!("buffer at ", hex(phys), " is above the alias window"));
        return;
    }
    // SAFETY: the scratch page is ours; 16 bytes at offset 0x100 fit.
    unsafe { fill(phys, XEN_EXTRAVERSION_LEN, POISON) };
    let rc = xen_version(XENVER_EXTRAVERSION, ALIAS_BASE + phys);
    let mut seen = [0u8; XEN_EXTRAVERSION_LEN];
    for (i, b) in seen.iter_mut().enumerate() {
        // SAFETY: as above; read through the identity mapping.
        *b = unsafe { read8(phys + i as u64) };
    }
    let same = match (c_strlen(&seen), c_strlen(extra)) {
        (Some(a), Some(b)) => a > 0 && seen[..a] == extra[..b],
        _ => false,
    };
    r.check(NAME, rc == 0 && same, || {
        print!(
            "returned ", rc, " for va ", hex(ALIAS_BASE + phys), "; physical ", hex(phys), " holds \"",
            CStr(&seen), "\", expected \"", CStr(extra), "\""
        )
    });
}
