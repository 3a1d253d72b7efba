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
        println!("{:>8}: {} syscalls", kind.name(), count(kind));
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
    assert!(count(ThreadKind::Service) < count(ThreadKind::Main));
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
