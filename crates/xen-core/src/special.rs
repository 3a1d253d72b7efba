//! Pages the toolstack places in the guest-physical space before the guest
//! runs: the xenstore ring and the primary console ring. Like QEMU's emulated
//! Xen, they are host pages overlaid on frames outside RAM, and the guest finds
//! them through `HVM_PARAM_STORE_PFN` and `HVM_PARAM_CONSOLE_PFN`.

use std::sync::Arc;

use xenkvm_xen_abi::hvm::{HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_PFN};

use crate::domain::Domain;
use crate::page::SharedPage;
use crate::ports::PhysmapError;

/// Which special page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialPage {
    Xenstore,
    Console,
}

impl Domain {
    /// Places `page` at `gfn` for the guest and records it in the matching
    /// HVM parameter. The page stays mapped for the domain's lifetime.
    pub fn map_special_page(&mut self, which: SpecialPage, gfn: u64, page: Arc<SharedPage>) -> Result<(), PhysmapError> {
        self.ports.physmap.move_overlay(None, gfn, &page)?;
        self.mem.set_overlay(gfn, page);
        let param = match which {
            SpecialPage::Xenstore => HVM_PARAM_STORE_PFN,
            SpecialPage::Console => HVM_PARAM_CONSOLE_PFN,
        };
        self.set_param_host(param, gfn);
        Ok(())
    }
}
