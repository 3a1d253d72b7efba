//! A second console end to end: a simulated hvc_xen frontend on one side, a
//! client of a unix-socket chardev on the other, the worker thread between.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};

use vm_memory::{Bytes, GuestAddress};
use xenkvm_xen_abi::grant_table::GTF_PERMIT_ACCESS;
use xenkvm_xen_pv::console::{IN_CONS, IN_OFFSET, IN_PROD, OUT_OFFSET, OUT_PROD};
use xenkvm_xen_pv::xenbus::XenbusState;
use xenkvm_xenstore::{Message, MsgType};

use super::*;
use crate::test_support::{eventually, TestVm};
use crate::vcpu::GuestEnd;

const RING_GFN: u64 = 0x321;
const GREF: u32 = 12;

fn at(offset: usize) -> GuestAddress {
    GuestAddress((RING_GFN << 12) + offset as u64)
}

#[test]
fn second_console_carries_text_both_ways_through_a_socket() {
    let dir = std::env::temp_dir().join(format!("xenkvm-console-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hvc1.sock");
    let out = chardev::open_socket("con1", &path, false).unwrap();

    let vm = TestVm::new();
    let (ram, domain, shared, guest) = (vm.ram.clone(), vm.ctx.domain.clone(), vm.ctx.shared.clone(), vm.guest);
    let backend = shared.with(|xs| ConsoleBackend::create(xs, 1, 1, DomainGrants::new(domain.clone()))).unwrap();
    let front = backend.paths().frontend.clone();
    let back = backend.paths().backend.clone();
    let (backends, control, changes) = (Arc::new(Backends::default()), Arc::new(RunControl::default()), Arc::new(AtomicU64::new(0)));
    let input = Arc::new(ConsoleInput::new(backends.clone()));
    out.set_target(InputTarget::PvConsole(input.clone()));
    let worker = Worker {
        backend,
        out,
        input,
        shared: shared.clone(),
        recheck: StoreRecheck::new(changes.clone()),
        domain: domain.clone(),
        backends,
        control: control.clone(),
        life: None,
    };
    let thread = std::thread::spawn(move || worker.run());

    // The frontend, as xencons_connect_backend: grant, channel, nodes, Initialised.
    ram.write_slice(&[0u8; 4096], at(0)).unwrap();
    let guest_port = {
        let mut d = domain.lock().unwrap();
        let frame = d.grant_table().frame(0).unwrap().clone();
        frame.write(GREF as usize * 8, &(u64::from(GTF_PERMIT_ACCESS) | (RING_GFN << 32)).to_le_bytes());
        d.alloc_unbound_for_backend().unwrap()
    };
    let write = |name: &str, value: String| {
        let mut p = format!("{front}/{name}").into_bytes();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        shared.with(|xs| xs.handle(guest, &Message::new(MsgType::Write, 0, 0, p)));
        changes.fetch_add(1, Ordering::AcqRel);
    };
    write("ring-ref", GREF.to_string());
    write("port", guest_port.to_string());
    write("state", XenbusState::Initialised.value());
    let state = || {
        let path = format!("{back}/state");
        let reply = shared.with(|xs| {
            let c = xs.connect_privileged();
            let r = xs.handle(c, &Message::with_strings(MsgType::Read, 0, 0, &[path.as_bytes()]));
            xs.disconnect(c);
            r
        });
        reply.into_iter().next().map(|m| String::from_utf8_lossy(&m.payload).into_owned())
    };
    eventually("the backend to connect", || state().as_deref() == Some("4"));

    let mut client = UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The client is attached once the chardev's thread took it; output before is dropped.
    std::thread::sleep(Duration::from_millis(100));

    // Guest output reaches the socket client.
    let text = b"hello from hvc1\n";
    for (i, b) in text.iter().enumerate() {
        ram.write_obj(*b, at(OUT_OFFSET + i)).unwrap();
    }
    ram.write_obj(text.len() as u32, at(OUT_PROD)).unwrap();
    let mut got = vec![0u8; text.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, text);

    // What the client types lands in the guest's input ring.
    client.write_all(b"typed\n").unwrap();
    eventually("input in the ring", || ram.read_obj::<u32>(at(IN_PROD)).unwrap() == 6);
    let mut typed = [0u8; 6];
    ram.read_slice(&mut typed, at(IN_OFFSET)).unwrap();
    assert_eq!(&typed, b"typed\n");
    assert_eq!(ram.read_obj::<u32>(at(IN_CONS)).unwrap(), 0);
    // The guest port was told (its pending bit is set).
    assert!(domain.lock().unwrap().port_pending(guest_port));

    control.finish(GuestEnd::Timeout);
    thread.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
