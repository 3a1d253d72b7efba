//! Sizes and field offsets of every ABI record, 64-bit and compat, against the
//! values the Xen headers give.

use std::mem::{offset_of, size_of};
use xenkvm_xen_abi::{hvm::*, memory::*, sched::*, shared_info::*, start_info::*, vcpu::*, version::*};

#[test]
fn shared_info_64() {
    assert_eq!(size_of::<VcpuTimeInfo>(), 32);
    assert_eq!(offset_of!(VcpuTimeInfo, tsc_timestamp), 8);
    assert_eq!(offset_of!(VcpuTimeInfo, system_time), 16);
    assert_eq!(offset_of!(VcpuTimeInfo, tsc_to_system_mul), 24);
    assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
    assert_eq!(offset_of!(VcpuTimeInfo, flags), 29);
    assert_eq!(size_of::<VcpuInfo>() as u64, VCPU_INFO_SIZE);
    assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask) as u64, VCPU_INFO_UPCALL_MASK);
    assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel) as u64, VCPU_INFO_PENDING_SEL);
    assert_eq!(offset_of!(VcpuInfo, time) as u64, VCPU_INFO_TIME);
    assert_eq!(size_of::<SharedInfo>(), 0xC40);
    assert_eq!(offset_of!(SharedInfo, evtchn_pending) as u64, SHARED_INFO_64.evtchn_pending);
    assert_eq!(offset_of!(SharedInfo, evtchn_mask) as u64, SHARED_INFO_64.evtchn_mask);
    assert_eq!(offset_of!(SharedInfo, wc_version) as u64, SHARED_INFO_64.wc_version);
    assert_eq!(offset_of!(SharedInfo, wc_sec) as u64, SHARED_INFO_64.wc_sec);
    assert_eq!(offset_of!(SharedInfo, wc_nsec) as u64, SHARED_INFO_64.wc_nsec);
    assert_eq!(offset_of!(SharedInfo, wc_sec_hi) as u64, SHARED_INFO_64.wc_sec_hi);
    assert_eq!(offset_of!(SharedInfo, arch), 0xC10);
}

#[test]
fn shared_info_compat() {
    assert_eq!(size_of::<CompatVcpuInfo>() as u64, VCPU_INFO_SIZE);
    assert_eq!(offset_of!(CompatVcpuInfo, evtchn_pending_sel) as u64, COMPAT_VCPU_INFO_PENDING_SEL);
    assert_eq!(offset_of!(CompatVcpuInfo, arch_cr2), 8);
    assert_eq!(offset_of!(CompatVcpuInfo, time) as u64, VCPU_INFO_TIME);
    assert_eq!(offset_of!(CompatSharedInfo, evtchn_pending) as u64, SHARED_INFO_COMPAT.evtchn_pending);
    assert_eq!(offset_of!(CompatSharedInfo, evtchn_mask) as u64, SHARED_INFO_COMPAT.evtchn_mask);
    assert_eq!(offset_of!(CompatSharedInfo, wc_version) as u64, SHARED_INFO_COMPAT.wc_version);
    assert_eq!(offset_of!(CompatSharedInfo, wc_sec) as u64, SHARED_INFO_COMPAT.wc_sec);
    assert_eq!(offset_of!(CompatSharedInfo, wc_nsec) as u64, SHARED_INFO_COMPAT.wc_nsec);
    assert_eq!(
        (offset_of!(CompatSharedInfo, arch) + offset_of!(CompatArchSharedInfo, wc_sec_hi)) as u64,
        SHARED_INFO_COMPAT.wc_sec_hi
    );
    assert_eq!(size_of::<CompatSharedInfo>(), 0x928);
}

#[test]
fn vcpu_records() {
    assert_eq!(size_of::<VcpuRunstateInfo>(), 48);
    assert_eq!(offset_of!(VcpuRunstateInfo, state_entry_time), 8);
    assert_eq!(offset_of!(VcpuRunstateInfo, time), 16);
    assert_eq!(size_of::<CompatVcpuRunstateInfo>(), 44);
    assert_eq!(offset_of!(CompatVcpuRunstateInfo, state_entry_time), 4);
    assert_eq!(offset_of!(CompatVcpuRunstateInfo, time), 12);
    assert_eq!(size_of::<VcpuRegisterVcpuInfo>(), 16);
    assert_eq!(offset_of!(VcpuRegisterVcpuInfo, offset), 8);
    assert_eq!(size_of::<VcpuRegisterMemoryArea>(), 8);
}

#[test]
fn version_records() {
    assert_eq!(size_of::<XenCompileInfo>(), 144);
    assert_eq!(offset_of!(XenCompileInfo, compile_by), 64);
    assert_eq!(offset_of!(XenCompileInfo, compile_domain), 80);
    assert_eq!(offset_of!(XenCompileInfo, compile_date), 112);
    assert_eq!(size_of::<XenFeatureInfo>(), 8);
    assert_eq!(size_of::<XenPlatformParameters>(), 8);
    assert_eq!(size_of::<CompatXenPlatformParameters>(), 4);
}

#[test]
fn sched_records() {
    assert_eq!(size_of::<SchedShutdown>(), 4);
    assert_eq!(size_of::<SchedPoll>(), 24);
    assert_eq!(offset_of!(SchedPoll, nr_ports), 8);
    assert_eq!(offset_of!(SchedPoll, timeout), 16);
    assert_eq!(size_of::<CompatSchedPoll>(), 16);
    assert_eq!(offset_of!(CompatSchedPoll, nr_ports), 4);
    assert_eq!(offset_of!(CompatSchedPoll, timeout), 8);
}

#[test]
fn memory_records() {
    assert_eq!(size_of::<XenAddToPhysmap>(), 24);
    assert_eq!(offset_of!(XenAddToPhysmap, space), 4);
    assert_eq!(offset_of!(XenAddToPhysmap, idx), 8);
    assert_eq!(offset_of!(XenAddToPhysmap, gpfn), 16);
    assert_eq!(size_of::<CompatXenAddToPhysmap>(), 16);
    assert_eq!(offset_of!(CompatXenAddToPhysmap, idx), 8);
    assert_eq!(offset_of!(CompatXenAddToPhysmap, gpfn), 12);
}

#[test]
fn hvm_records() {
    assert_eq!(size_of::<XenHvmParam>(), 16);
    assert_eq!(offset_of!(XenHvmParam, index), 4);
    assert_eq!(offset_of!(XenHvmParam, value), 8);
    assert_eq!(size_of::<XenHvmEvtchnUpcallVector>(), 8);
    assert_eq!(size_of::<XenHvmPagetableDying>(), 16);
}

#[test]
fn pvh_start_info() {
    assert_eq!(size_of::<HvmStartInfo>(), 56);
    assert_eq!(offset_of!(HvmStartInfo, modlist_paddr), 16);
    assert_eq!(offset_of!(HvmStartInfo, cmdline_paddr), 24);
    assert_eq!(offset_of!(HvmStartInfo, rsdp_paddr), 32);
    assert_eq!(offset_of!(HvmStartInfo, memmap_paddr), 40);
    assert_eq!(offset_of!(HvmStartInfo, memmap_entries), 48);
    assert_eq!(size_of::<HvmModlistEntry>(), 32);
    assert_eq!(size_of::<HvmMemmapTableEntry>(), 24);
    assert_eq!(offset_of!(HvmMemmapTableEntry, type_), 16);
}

#[test]
fn grant_table_records() {
    use xenkvm_xen_abi::grant_table::*;
    assert_eq!(size_of::<GrantEntryV1>(), 8);
    assert_eq!(offset_of!(GrantEntryV1, domid), 2);
    assert_eq!(offset_of!(GrantEntryV1, frame), 4);
    assert_eq!(size_of::<GnttabMapGrantRef>(), 32);
    assert_eq!(offset_of!(GnttabMapGrantRef, flags), 8);
    assert_eq!(offset_of!(GnttabMapGrantRef, gref), 12);
    assert_eq!(offset_of!(GnttabMapGrantRef, dom), 16);
    assert_eq!(offset_of!(GnttabMapGrantRef, status), 18);
    assert_eq!(offset_of!(GnttabMapGrantRef, handle), 20);
    assert_eq!(offset_of!(GnttabMapGrantRef, dev_bus_addr), 24);
    assert_eq!(size_of::<GnttabUnmapGrantRef>(), 24);
    assert_eq!(offset_of!(GnttabUnmapGrantRef, handle), 16);
    assert_eq!(offset_of!(GnttabUnmapGrantRef, status), 20);
    assert_eq!(size_of::<GnttabQuerySize>(), 16);
    assert_eq!(offset_of!(GnttabQuerySize, nr_frames), 4);
    assert_eq!(offset_of!(GnttabQuerySize, max_nr_frames), 8);
    assert_eq!(offset_of!(GnttabQuerySize, status), 12);
    assert_eq!(size_of::<GnttabSetVersion>(), 4);
    assert_eq!(size_of::<GnttabGetVersion>(), 8);
    assert_eq!(offset_of!(GnttabGetVersion, version), 4);
    assert_eq!(size_of::<GnttabSwapGrantRef>(), 12);
    assert_eq!(offset_of!(GnttabSwapGrantRef, status), 8);
}

#[test]
fn grant_table_records_by_abi() {
    use xenkvm_xen_abi::grant_table::*;
    // setup_table: the handle is 8-byte aligned in the 64-bit ABI.
    assert_eq!(size_of::<GnttabSetupTable>(), 24);
    assert_eq!(offset_of!(GnttabSetupTable, nr_frames), 4);
    assert_eq!(offset_of!(GnttabSetupTable, status), 8);
    assert_eq!(offset_of!(GnttabSetupTable, frame_list), 16);
    assert_eq!(size_of::<CompatGnttabSetupTable>(), 16);
    assert_eq!(offset_of!(CompatGnttabSetupTable, nr_frames), 4);
    assert_eq!(offset_of!(CompatGnttabSetupTable, status), 8);
    assert_eq!(offset_of!(CompatGnttabSetupTable, frame_list), 12);
    // copy: xen_pfn_t is 8 bytes in the 64-bit ABI, 4 in compat.
    assert_eq!(size_of::<GnttabCopyPtr>(), 16);
    assert_eq!(offset_of!(GnttabCopyPtr, domid), 8);
    assert_eq!(offset_of!(GnttabCopyPtr, offset), 10);
    assert_eq!(size_of::<GnttabCopy>(), 40);
    assert_eq!(offset_of!(GnttabCopy, dest), 16);
    assert_eq!(offset_of!(GnttabCopy, len), 32);
    assert_eq!(offset_of!(GnttabCopy, flags), 34);
    assert_eq!(offset_of!(GnttabCopy, status), 36);
    assert_eq!(size_of::<CompatGnttabCopyPtr>(), 8);
    assert_eq!(offset_of!(CompatGnttabCopyPtr, domid), 4);
    assert_eq!(offset_of!(CompatGnttabCopyPtr, offset), 6);
    assert_eq!(size_of::<CompatGnttabCopy>(), 24);
    assert_eq!(offset_of!(CompatGnttabCopy, dest), 8);
    assert_eq!(offset_of!(CompatGnttabCopy, len), 16);
    assert_eq!(offset_of!(CompatGnttabCopy, flags), 18);
    assert_eq!(offset_of!(CompatGnttabCopy, status), 20);
    // get_status_frames
    assert_eq!(size_of::<GnttabGetStatusFrames>(), 16);
    assert_eq!(offset_of!(GnttabGetStatusFrames, dom), 4);
    assert_eq!(offset_of!(GnttabGetStatusFrames, status), 6);
    assert_eq!(offset_of!(GnttabGetStatusFrames, frame_list), 8);
    assert_eq!(size_of::<CompatGnttabGetStatusFrames>(), 12);
    assert_eq!(offset_of!(CompatGnttabGetStatusFrames, frame_list), 8);
}

/// event_channel.h records: identical in the 64-bit and the compat ABI (no
/// pointers; the one u64 field of init_control and expand_array sits at 0).
#[test]
fn event_channel_records() {
    use xenkvm_xen_abi::event_channel::*;
    assert_eq!(size_of::<EvtchnAllocUnbound>(), 8);
    assert_eq!(offset_of!(EvtchnAllocUnbound, remote_dom), 2);
    assert_eq!(offset_of!(EvtchnAllocUnbound, port), 4);
    assert_eq!(size_of::<EvtchnBindInterdomain>(), 12);
    assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
    assert_eq!(offset_of!(EvtchnBindInterdomain, local_port), 8);
    assert_eq!(size_of::<EvtchnBindVirq>(), 12);
    assert_eq!(offset_of!(EvtchnBindVirq, vcpu), 4);
    assert_eq!(offset_of!(EvtchnBindVirq, port), 8);
    assert_eq!(size_of::<EvtchnBindPirq>(), 12);
    assert_eq!(offset_of!(EvtchnBindPirq, port), 8);
    assert_eq!(size_of::<EvtchnBindIpi>(), 8);
    assert_eq!(offset_of!(EvtchnBindIpi, port), 4);
    assert_eq!(size_of::<EvtchnClose>(), 4);
    assert_eq!(size_of::<EvtchnSend>(), 4);
    assert_eq!(size_of::<EvtchnUnmask>(), 4);
    assert_eq!(size_of::<EvtchnStatus>(), 24);
    assert_eq!(offset_of!(EvtchnStatus, port), 4);
    assert_eq!(offset_of!(EvtchnStatus, status), 8);
    assert_eq!(offset_of!(EvtchnStatus, vcpu), 12);
    assert_eq!(offset_of!(EvtchnStatus, u), 16);
    assert_eq!(size_of::<EvtchnBindVcpu>(), 8);
    assert_eq!(offset_of!(EvtchnBindVcpu, vcpu), 4);
    assert_eq!(size_of::<EvtchnReset>(), 2);
    assert_eq!(size_of::<EvtchnInitControl>(), 24);
    assert_eq!(offset_of!(EvtchnInitControl, offset), 8);
    assert_eq!(offset_of!(EvtchnInitControl, vcpu), 12);
    assert_eq!(offset_of!(EvtchnInitControl, link_bits), 16);
    assert_eq!(size_of::<EvtchnExpandArray>(), 8);
    assert_eq!(size_of::<EvtchnSetPriority>(), 8);
    assert_eq!(offset_of!(EvtchnSetPriority, priority), 4);
    assert_eq!(EVTCHN_2L_NR_CHANNELS, 4096);
    assert_eq!(COMPAT_EVTCHN_2L_NR_CHANNELS, 1024);
}

#[test]
fn event_channel_status_union() {
    use xenkvm_xen_abi::event_channel::EvtchnStatus;
    let mut s = EvtchnStatus { u: [0xAAAA_AAAA, 0xBBBB_BBBB], ..Default::default() };
    s.set_u_dom(7);
    assert_eq!(s.u, [0xAAAA_0007, 0xBBBB_BBBB], "unbound.dom is 2 bytes; the rest stays");
    s.set_u_interdomain(0, 42);
    assert_eq!(s.u, [0xAAAA_0000, 42]);
    assert_eq!(s.u_dom(), 0);
}

/// vcpu.h timer records: the singleshot record loses its tail padding in compat.
#[test]
fn vcpu_timer_records() {
    assert_eq!(size_of::<VcpuSetPeriodicTimer>(), 8);
    assert_eq!(size_of::<VcpuSetSingleshotTimer>(), 16);
    assert_eq!(offset_of!(VcpuSetSingleshotTimer, flags), 8);
    assert_eq!(size_of::<CompatVcpuSetSingleshotTimer>(), 12);
    assert_eq!(offset_of!(CompatVcpuSetSingleshotTimer, flags), 8);
    assert_eq!(VCPU_SSHOTTMR_FUTURE, 1);
}
