//! Success and error paths of the node operations.

use super::*;
use crate::wire::MsgType::*;

fn setup() -> (Xenstore, ConnId) {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    (xs, d0)
}

#[test]
fn initial_tree_is_xenstoreds() {
    let (mut xs, d0) = setup();
    assert_eq!(list(&ok(&mut xs, d0, Directory, 0, &["/"])), vec!["tool"]);
    assert_eq!(list(&ok(&mut xs, d0, Directory, 0, &["/tool"])), vec!["xenstored"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["/"])), vec!["n0"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["@releaseDomain"])), vec!["n0", "r32757"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["@introduceDomain"])), vec!["n0"]);
    xs.check().unwrap();
}

#[test]
fn write_read_and_binary_values() {
    let (mut xs, d0) = setup();
    write(&mut xs, d0, 0, "/a/b/c", "hello").unwrap();
    assert_eq!(read(&mut xs, d0, 0, "/a/b/c").unwrap(), "hello");
    // Parents are created empty.
    assert_eq!(read(&mut xs, d0, 0, "/a/b").unwrap(), "");
    // Values may hold NULs and be empty.
    let out = xs.handle(d0, &Message::new(Write, 1, 0, b"/bin\0x\0y\0".to_vec()));
    assert_eq!(reply(&out).payload, b"OK\0");
    assert_eq!(ok(&mut xs, d0, Read, 0, &["/bin"]), b"x\0y\0");
    write(&mut xs, d0, 0, "/a/b/c", "").unwrap();
    assert_eq!(read(&mut xs, d0, 0, "/a/b/c").unwrap(), "");
    // The reply echoes type, req_id and tx_id.
    let out = xs.handle(d0, &Message::with_strings(Read, 4242, 0, &[b"/a"]));
    assert_eq!((out[0].ty, out[0].req_id, out[0].tx_id), (Read as u32, 4242, 0));
    xs.check().unwrap();
}

#[test]
fn write_needs_a_path_string() {
    let (mut xs, d0) = setup();
    let out = xs.handle(d0, &Message::new(Write, 1, 0, b"/nonul".to_vec()));
    assert_eq!(reply(&out).as_error(), Some(Errno::Inval));
    let out = xs.handle(d0, &Message::new(Write, 1, 0, Vec::new()));
    assert_eq!(reply(&out).as_error(), Some(Errno::Inval));
}

#[test]
fn read_argument_errors() {
    let (mut xs, d0) = setup();
    assert_eq!(err(&mut xs, d0, Read, 0, &["/nope"]), Errno::NoEnt);
    for bad in [&b""[..], b"/a", b"/a\0b\0", b"\0/a\0"] {
        let out = xs.handle(d0, &Message::new(Read, 1, 0, bad.to_vec()));
        assert_eq!(reply(&out).as_error(), Some(Errno::Inval), "{bad:?}");
    }
    for bad in ["/a/", "//a", "/a//b", "/a b", "/a.b", "@x", "/a\u{e9}", ""] {
        assert_eq!(err(&mut xs, d0, Read, 0, &[bad]), Errno::Inval, "{bad}");
    }
    let long = format!("/{}", "a".repeat(3072));
    assert_eq!(err(&mut xs, d0, Read, 0, &[&long]), Errno::Inval);
}

#[test]
fn mkdir_creates_and_keeps() {
    let (mut xs, d0) = setup();
    ok(&mut xs, d0, Mkdir, 0, &["/m/n"]);
    assert_eq!(read(&mut xs, d0, 0, "/m/n").unwrap(), "");
    write(&mut xs, d0, 0, "/m/n", "v").unwrap();
    ok(&mut xs, d0, Mkdir, 0, &["/m/n"]);
    assert_eq!(read(&mut xs, d0, 0, "/m/n").unwrap(), "v");
    assert_eq!(err(&mut xs, d0, Mkdir, 0, &["/m/"]), Errno::Inval);
}

#[test]
fn rm_semantics() {
    let (mut xs, d0) = setup();
    write(&mut xs, d0, 0, "/r/a/b", "1").unwrap();
    write(&mut xs, d0, 0, "/r/c", "2").unwrap();
    ok(&mut xs, d0, Rm, 0, &["/r/a"]);
    assert_eq!(list(&ok(&mut xs, d0, Directory, 0, &["/r"])), vec!["c"]);
    assert_eq!(read(&mut xs, d0, 0, "/r/a/b"), Err(Errno::NoEnt));
    // Missing node with existing parent: fine. Missing parent: ENOENT.
    ok(&mut xs, d0, Rm, 0, &["/r/zz"]);
    assert_eq!(err(&mut xs, d0, Rm, 0, &["/r/zz/yy"]), Errno::NoEnt);
    // The root cannot go.
    assert_eq!(err(&mut xs, d0, Rm, 0, &["/"]), Errno::Inval);
    xs.check().unwrap();
}

#[test]
fn directory_lists_in_creation_order() {
    let (mut xs, d0) = setup();
    for n in ["z", "a", "m"] {
        ok(&mut xs, d0, Mkdir, 0, &[&format!("/d/{n}")]);
    }
    assert_eq!(list(&ok(&mut xs, d0, Directory, 0, &["/d"])), vec!["z", "a", "m"]);
    assert_eq!(ok(&mut xs, d0, Directory, 0, &["/d/z"]), b"");
    assert_eq!(err(&mut xs, d0, Directory, 0, &["/none"]), Errno::NoEnt);
}

#[test]
fn directory_too_big_is_e2big_and_directory_part_pages() {
    let (mut xs, d0) = setup();
    let names: Vec<String> = (0..400).map(|i| format!("child-number-{i:04}")).collect();
    for n in &names {
        ok(&mut xs, d0, Mkdir, 0, &[&format!("/big/{n}")]);
    }
    assert_eq!(err(&mut xs, d0, Directory, 0, &["/big"]), Errno::TooBig);
    let mut got = Vec::new();
    let mut off = 0usize;
    let mut gen = None;
    loop {
        let p = ok(&mut xs, d0, DirectoryPart, 0, &["/big", &off.to_string()]);
        assert!(p.len() <= 4096);
        let parts = list(&p);
        let g = parts[0].clone();
        assert_eq!(*gen.get_or_insert(g.clone()), g, "generation stable while unchanged");
        let kids: Vec<String> = parts[1..].to_vec();
        let done = kids.last().is_some_and(|k| k.is_empty());
        for k in kids.iter().filter(|k| !k.is_empty()) {
            off += k.len() + 1;
            got.push(k.clone());
        }
        if done {
            break;
        }
    }
    assert_eq!(got, names);
    // Past the end: generation and an empty list.
    let p = ok(&mut xs, d0, DirectoryPart, 0, &["/big", "999999"]);
    assert_eq!(list(&p).len(), 2);
    assert!(p.ends_with(b"\0\0"));
    // Argument count.
    assert_eq!(err(&mut xs, d0, DirectoryPart, 0, &["/big"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, DirectoryPart, 0, &["/big", "0", "x"]), Errno::Inval);
    // The generation changes when the children do.
    let before = list(&ok(&mut xs, d0, DirectoryPart, 0, &["/big", "0"]))[0].clone();
    ok(&mut xs, d0, Mkdir, 0, &["/big/new"]);
    let after = list(&ok(&mut xs, d0, DirectoryPart, 0, &["/big", "0"]))[0].clone();
    assert_ne!(before, after);
}

#[test]
fn get_and_set_perms() {
    let (mut xs, d0) = setup();
    ok(&mut xs, d0, Mkdir, 0, &["/p"]);
    ok(&mut xs, d0, SetPerms, 0, &["/p", "n0", "r1", "b2", "w3"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["/p"])), vec!["n0", "r1", "b2", "w3"]);
    // Children inherit on creation.
    ok(&mut xs, d0, Mkdir, 0, &["/p/q"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["/p/q"])), vec!["n0", "r1", "b2", "w3"]);
    // strtol base 0 accepts hex.
    ok(&mut xs, d0, SetPerms, 0, &["/p", "b0x10"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["/p"])), vec!["b16"]);
    for bad in [&["/p"][..], &["/p", "x1"], &["/p", "r"], &["/p", "r1x"], &["/p", ""]] {
        assert_eq!(err(&mut xs, d0, SetPerms, 0, bad), Errno::Inval, "{bad:?}");
    }
    assert_eq!(err(&mut xs, d0, SetPerms, 0, &["/nope", "n0"]), Errno::NoEnt);
    assert_eq!(err(&mut xs, d0, GetPerms, 0, &["/nope"]), Errno::NoEnt);
    // Special nodes accept permissions.
    ok(&mut xs, d0, SetPerms, 0, &["@introduceDomain", "n0", "r5"]);
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["@introduceDomain"])), vec!["n0", "r5"]);
    xs.check().unwrap();
}

#[test]
fn unknown_and_reply_only_types_are_enosys() {
    let (mut xs, d0) = setup();
    for ty in [20u32, 27, 100, 0xffff, u32::MAX, WatchEvent as u32, Error as u32] {
        let out = xs.handle(d0, &Message { ty, req_id: 3, tx_id: 0, payload: b"/\0".to_vec() });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_error(), Some(Errno::NoSys), "type {ty}");
        assert_eq!(out[0].req_id, 3);
    }
}

#[test]
fn unknown_transaction_is_enoent() {
    let (mut xs, d0) = setup();
    assert_eq!(err(&mut xs, d0, Read, 99, &["/"]), Errno::NoEnt);
    assert_eq!(err(&mut xs, d0, Write, 99, &["/x"]), Errno::NoEnt);
    // WATCH ignores the transaction id.
    ok(&mut xs, d0, Watch, 99, &["/", "t"]);
}

#[test]
fn relative_paths_of_a_socket_use_xenstoreds_base() {
    let (mut xs, d0) = setup();
    write(&mut xs, d0, 0, "rel", "v").unwrap();
    assert_eq!(read(&mut xs, d0, 0, "/local/domain/65535/rel").unwrap(), "v");
}

#[test]
fn handle_returns_only_the_callers_output() {
    let (mut xs, d0) = setup();
    let other = xs.connect_privileged();
    ok(&mut xs, other, Watch, 0, &["/w", "tok"]);
    let out = send(&mut xs, d0, Write, 0, &["/w", ""]);
    assert_eq!(out.len(), 1);
    assert_eq!(xs.take_woken(), vec![other]);
    assert_eq!(events(&xs.drain(other)), vec![("/w".into(), "tok".into())]);
}
