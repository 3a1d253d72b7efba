use super::*;

const PID: u32 = 4242;

fn count(kind: ThreadKind) -> usize {
    rules(kind, PID).unwrap().len()
}

#[test]
fn every_filter_compiles_in_both_modes() {
    for kind in ThreadKind::ALL {
        for mode in [SeccompMode::On, SeccompMode::Log] {
            let bpf = program(kind, mode, PID).unwrap();
            assert!(!bpf.is_empty() && bpf.len() < 4096, "{kind:?}: {} instructions", bpf.len());
        }
        println!("{:>8}: {} syscalls, {} BPF instructions", kind.name(), count(kind), program(kind, SeccompMode::On, PID).unwrap().len());
    }
}

#[test]
fn each_kind_is_a_superset_of_the_kinds_its_threads_start() {
    let main = rules(ThreadKind::Main, PID).unwrap();
    let service = rules(ThreadKind::Service, PID).unwrap();
    for child in [ThreadKind::Vcpu, ThreadKind::Worker, ThreadKind::Service] {
        for nr in rules(child, PID).unwrap().keys() {
            assert!(main.contains_key(nr), "main lacks syscall {nr} of {child:?}");
        }
    }
    for nr in rules(ThreadKind::Worker, PID).unwrap().keys() {
        assert!(service.contains_key(nr), "service lacks syscall {nr} of the workers");
    }
}

#[test]
fn the_lists_stay_small_and_ordered() {
    assert!(count(ThreadKind::Vcpu) < count(ThreadKind::Worker));
    assert!(count(ThreadKind::Worker) < count(ThreadKind::Service));
    assert!(count(ThreadKind::Service) <= count(ThreadKind::Main));
    assert!(count(ThreadKind::Main) < 120, "{}", count(ThreadKind::Main));
}

#[test]
fn dangerous_syscalls_are_on_no_list() {
    let banned = [libc::SYS_execve, libc::SYS_ptrace, libc::SYS_mount, libc::SYS_fork, libc::SYS_kexec_load, libc::SYS_bpf];
    for kind in ThreadKind::ALL {
        let r = rules(kind, PID).unwrap();
        for nr in banned {
            assert!(!r.contains_key(&nr), "{kind:?} allows syscall {nr}");
        }
    }
}

#[test]
fn ioctl_is_filtered_by_request_everywhere() {
    for kind in ThreadKind::ALL {
        let r = rules(kind, PID).unwrap();
        assert!(!r.get(&libc::SYS_ioctl).unwrap().is_empty(), "{kind:?} allows every ioctl");
    }
}

#[test]
fn merge_keeps_an_unconditional_allow() {
    let mut a = lists::Rules::from([(1, Vec::new())]);
    let b = rules(ThreadKind::Worker, PID).unwrap().into_iter().filter(|(nr, _)| *nr == libc::SYS_ioctl).map(|(_, r)| (1, r)).collect();
    lists::merge(&mut a, b);
    assert!(a[&1].is_empty());
}

/// Runs `f` on a thread under `kind`'s filter, where a syscall off the list
/// fails with EPERM (rather than killing the test binary).
fn confined<T: Send>(kind: ThreadKind, f: impl FnOnce() -> T + Send) -> T {
    let bpf = program_with(kind, SeccompAction::Errno(libc::EPERM as u32), std::process::id()).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            seccompiler::apply_filter(&bpf).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn image(name: &str, size: u64) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("xenkvm-seccomp-{}-{name}", std::process::id()));
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    p
}

/// What a disk backend does with an image, all of it under the worker filter.
fn disk_io(mut d: Box<dyn xenkvm_xen_pv::blkback::BlockDevice>) -> std::io::Result<Vec<u8>> {
    d.write_at(65536 + 512, &[0x5C; 8192])?;
    d.flush()?;
    if d.can_discard() {
        d.discard(65536 + 4096, 4096)?;
    }
    let mut b = vec![0u8; 12288];
    d.read_at(65536, &mut b)?;
    drop(d);
    Ok(b)
}

#[test]
fn the_worker_filter_allows_raw_and_qcow2_disk_io() {
    use imago::{file::File as ImagoFile, qcow2::Qcow2, FormatCreateBuilder, StorageOpenOptions};
    let raw = image("raw", 1 << 20);
    let qcow2 = image("qcow2", 0);
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&qcow2).unwrap();
    let storage = ImagoFile::from_open_file(file, StorageOpenOptions::new().filename(&qcow2).write(true)).unwrap();
    Qcow2::<ImagoFile>::create_builder(storage).size(4 << 20).create().unwrap();
    for (path, format) in [(&raw, crate::DiskFormat::Raw), (&qcow2, crate::DiskFormat::Qcow2)] {
        let mut cfg = crate::DiskConfig::raw(path);
        cfg.format = format;
        let d = crate::disk::open(&cfg).unwrap();
        let b = confined(ThreadKind::Worker, move || disk_io(d)).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(&b[..512], &[0; 512][..]);
        assert_eq!(&b[512..4096], &[0x5C; 3584][..]);
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn a_syscall_off_the_list_is_refused() {
    let r = confined(ThreadKind::Worker, || std::fs::File::open("/dev/null").map(drop));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EPERM));
}

#[test]
fn the_service_filter_allows_hotplugging_a_disk_and_a_nic() {
    use crate::hotplug::{DeviceRequest, Hotplug};
    let spare = image("hotplug", 1 << 20);
    let vm = crate::test_support::TestVm::new();
    let mut cfg = crate::VmConfig::embedded(&[]);
    cfg.spare_drives = vec![("img".into(), crate::DiskConfig::raw(&spare))];
    cfg.spare_netdevs = vec![("t0".into(), "xkseccomp0".into())];
    let hp = Hotplug::new(&cfg, Box::new(|_: &str| {}));
    hp.attach(&vm.ctx);
    let disk = DeviceRequest::Disk { id: "d1".into(), drive: "img".into(), vdev: None, cdrom: false };
    confined(ThreadKind::Service, || hp.add(disk)).unwrap();
    crate::test_support::eventually("InitWait", || vm.read("/local/domain/0/backend/vbd/1/51712/state").as_deref() == Some("2"));
    // A tap needs CAP_NET_ADMIN: try only where an unconfined open works.
    if crate::tap::Tap::open("xkseccomp0").is_ok() {
        let nic = DeviceRequest::Nic { id: "n1".into(), netdev: "t0".into(), mac: None };
        confined(ThreadKind::Service, || hp.add(nic)).unwrap();
    }
    vm.ctx.control.finish(crate::vcpu::GuestEnd::Timeout);
    hp.detach();
    let _ = std::fs::remove_file(spare);
}

#[test]
fn a_vcpu_thread_may_reprogram_the_ioapic_routes() {
    // A guest's write to a redirection entry makes its vCPU thread call
    // KVM_SET_GSI_ROUTING (a missing entry once killed the VMM with SIGSYS).
    let vm = match xenkvm_kvm::KvmVm::new() {
        Ok(vm) => vm,
        Err(e) => return eprintln!("SKIPPED: no usable /dev/kvm ({e})"),
    };
    let r = confined(ThreadKind::Vcpu, || vm.set_ioapic_routes(&[(9, 0xFEE0_0000, 0xC031)]).map_err(|e| e.to_string()));
    assert_eq!(r, Ok(()));
}
