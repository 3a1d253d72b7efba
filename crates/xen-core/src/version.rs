//! `HYPERVISOR_xen_version` (`public/version.h`).

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::version::*;
use xenkvm_xen_abi::xen::{HYPERVISOR_XEN_VERSION, XEN_PAGE_SIZE};

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;

/// Appended to the version number in `XENVER_extraversion`.
pub const EXTRAVERSION: &str = ".0-xenkvm";
/// What an HVM-only hypervisor reports in `XENVER_capabilities`.
pub const CAPABILITIES: &str = "hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64";

/// Feature bits of submap 0 offered to HVM guests: auto-translated physmap,
/// upcalls through a vector, and a pvclock safe to use as the clocksource.
pub const HVM_FEATURES: u32 = (1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP)
    | (1 << XENFEAT_HVM_CALLBACK_VECTOR)
    | (1 << XENFEAT_HVM_SAFE_PVCLOCK);

/// A NUL-padded fixed-size string field.
fn fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (d, b) in out.iter_mut().zip(s.bytes().take(N.saturating_sub(1))) {
        *d = b;
    }
    out
}

impl Domain {
    pub(crate) fn xen_version(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let (cmd, arg) = (req.arg(0), req.arg(1));
        let view = GuestView::new(&self.mem, req.paging);
        match cmd {
            XENVER_VERSION => Ok(i64::from(self.cfg.xen_version)),
            XENVER_EXTRAVERSION => {
                view.write_bytes(arg, &fixed::<XEN_EXTRAVERSION_LEN>(EXTRAVERSION))?;
                Ok(0)
            }
            XENVER_COMPILE_INFO => {
                let info = XenCompileInfo {
                    compiler: fixed("rustc"),
                    compile_by: fixed("xenkvm"),
                    compile_domain: fixed("xenkvm"),
                    compile_date: fixed(concat!("xenkvm ", env!("CARGO_PKG_VERSION"))),
                };
                view.write_obj(arg, &info)?;
                Ok(0)
            }
            XENVER_CAPABILITIES => {
                view.write_bytes(arg, &fixed::<XEN_CAPABILITIES_INFO_LEN>(CAPABILITIES))?;
                Ok(0)
            }
            XENVER_CHANGESET => {
                let s = concat!("xenkvm ", env!("CARGO_PKG_VERSION"));
                view.write_bytes(arg, &fixed::<XEN_CHANGESET_INFO_LEN>(s))?;
                Ok(0)
            }
            XENVER_PLATFORM_PARAMETERS => {
                // HVM guests have no hypervisor hole in their address space.
                if req.compat() {
                    view.write_obj(arg, &CompatXenPlatformParameters { virt_start: 0 })?;
                } else {
                    view.write_obj(arg, &XenPlatformParameters { virt_start: 0 })?;
                }
                Ok(0)
            }
            XENVER_GET_FEATURES => {
                let mut fi: XenFeatureInfo = view.read_obj(arg)?;
                if fi.submap_idx >= XENFEAT_NR_SUBMAPS {
                    return Err(XenErrno::Einval);
                }
                fi.submap = HVM_FEATURES;
                if self.hvm_pirqs_offered() {
                    fi.submap |= 1 << XENFEAT_HVM_PIRQS;
                }
                view.write_obj(arg, &fi)?;
                Ok(0)
            }
            XENVER_PAGESIZE => Ok(XEN_PAGE_SIZE as i64),
            XENVER_GUEST_HANDLE => {
                view.write_bytes(arg, &self.cfg.handle)?;
                Ok(0)
            }
            // Privileged information: refused to an unprivileged domain.
            XENVER_COMMANDLINE | XENVER_BUILD_ID => Err(XenErrno::Eperm),
            _ => {
                self.report_unknown(HYPERVISOR_XEN_VERSION, cmd, "xen_version sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }
}
