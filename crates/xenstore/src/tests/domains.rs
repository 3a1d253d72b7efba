//! Domain management and miscellaneous operations, and the default tree.

use super::perms::with_guest;
use super::*;
use crate::default_tree::{create_domain_tree, DomainTree};
use crate::wire::MsgType::*;

#[test]
fn introduce_and_release_over_the_wire() {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    assert_eq!(ok(&mut xs, d0, IsDomainIntroduced, 0, &["5"]), b"F\0");
    ok(&mut xs, d0, Introduce, 0, &["5", "-2", "7"]);
    assert_eq!(ok(&mut xs, d0, IsDomainIntroduced, 0, &["5"]), b"T\0");
    let d = xs.domain(5).unwrap();
    assert_eq!((d.port, d.ring_gfn, d.introduced), (7, u64::MAX - 1, true));
    let g = xs.domain_conn(5).unwrap();
    // Introducing again keeps the connection but resets it.
    ok(&mut xs, g, Watch, 0, &["x", "t"]);
    let epoch = xs.connection(g).unwrap().epoch();
    ok(&mut xs, d0, Introduce, 0, &["5", "1", "8"]);
    assert_eq!(xs.domain_conn(5), Some(g));
    assert!(xs.connection(g).unwrap().watches().is_empty());
    assert!(xs.connection(g).unwrap().epoch() > epoch);
    for bad in [&["5", "1"][..], &["5", "1", "0"], &["x", "1", "1"], &["70000", "1", "1"], &["0", "1", "1"]] {
        assert_eq!(err(&mut xs, d0, Introduce, 0, bad), Errno::Inval, "{bad:?}");
    }
    ok(&mut xs, d0, Release, 0, &["5"]);
    assert_eq!(xs.domain_conn(5), None);
    assert!(xs.connection(g).is_none());
    assert_eq!(ok(&mut xs, d0, IsDomainIntroduced, 0, &["5"]), b"F\0");
    assert_eq!(err(&mut xs, d0, Release, 0, &["5"]), Errno::NoEnt);
    assert_eq!(err(&mut xs, d0, Release, 0, &["0"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, Release, 0, &["abc"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, Resume, 0, &["5"]), Errno::NoEnt);
    xs.check().unwrap();
}

#[test]
fn domain_paths_and_introduction_queries() {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    assert_eq!(ok(&mut xs, d0, GetDomainPath, 0, &["3"]), b"/local/domain/3\0");
    assert_eq!(ok(&mut xs, d0, GetDomainPath, 0, &["65535"]), b"/local/domain/65535\0");
    for bad in ["65536", "-1", "3x", " "] {
        assert_eq!(err(&mut xs, d0, GetDomainPath, 0, &[bad]), Errno::Inval, "{bad}");
    }
    assert_eq!(err(&mut xs, d0, GetDomainPath, 0, &[]), Errno::Inval);
    assert_eq!(ok(&mut xs, d0, IsDomainIntroduced, 0, &["0"]), b"T\0");
    assert_eq!(ok(&mut xs, d0, IsDomainIntroduced, 0, &["32752"]), b"T\0");
}

#[test]
fn features() {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    assert_eq!(ok(&mut xs, d0, GetFeature, 0, &[]), b"15\0");
    ok(&mut xs, d0, SetFeature, 0, &["4", "3"]);
    assert_eq!(ok(&mut xs, d0, GetFeature, 0, &["4"]), b"3\0");
    assert_eq!(err(&mut xs, d0, SetFeature, 0, &["4", "16"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, SetFeature, 0, &["4"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, GetFeature, 0, &["9"]), Errno::NoEnt);
    let g = xs.introduce_domain(4, 1, 1).unwrap();
    assert_eq!(err(&mut xs, d0, SetFeature, 0, &["4", "1"]), Errno::Busy);
    assert_eq!(ok(&mut xs, g, GetFeature, 0, &[]), b"3\0");
    // Without WATCHDEPTH a third WATCH argument is an error.
    assert_eq!(err(&mut xs, g, Watch, 0, &["x", "t", "1"]), Errno::Inval);
}

#[test]
fn control_subset() {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    assert_eq!(ok(&mut xs, d0, Control, 0, &["print", "hello"]), b"OK\0");
    assert_eq!(ok(&mut xs, d0, Control, 0, &["log", "on"]), b"OK\0");
    assert_eq!(ok(&mut xs, d0, Control, 0, &["check"]), b"OK\0");
    assert!(String::from_utf8(ok(&mut xs, d0, Control, 0, &["quota"])).unwrap().contains("nodes"));
    assert!(!ok(&mut xs, d0, Control, 0, &["help"]).is_empty());
    assert_eq!(err(&mut xs, d0, Control, 0, &["live-update", "-a"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, Control, 0, &[]), Errno::Inval);
    xs.create_domain(3);
    assert!(String::from_utf8(ok(&mut xs, d0, Control, 0, &["quota", "3"])).unwrap().starts_with("Domain 3:"));
}

#[test]
fn default_tree_matches_libxl() {
    let (mut xs, d0, g) = with_guest(1);
    let dom = "/local/domain/1";
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &[dom])), vec!["n0", "r1"]);
    for ro in ["cpu", "memory", "device", "control", "name", "domid", "memory/target", "hvmloader"] {
        assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &[&format!("{dom}/{ro}")])), vec!["n0", "r1"], "{ro}");
    }
    for rw in [
        "control/shutdown",
        "control/feature-poweroff",
        "control/sysrq",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
        "device/suspend/event-channel",
    ] {
        assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &[&format!("{dom}/{rw}")])), vec!["n1"], "{rw}");
    }
    assert_eq!(read(&mut xs, g, 0, "memory/target").unwrap(), "524288");
    assert_eq!(read(&mut xs, g, 0, "cpu/0/availability").unwrap(), "online");
    assert_eq!(read(&mut xs, g, 0, "control/platform-feature-xs_reset_watches").unwrap(), "1");
    // Recreating replaces the old tree.
    write(&mut xs, d0, 0, "/local/domain/1/stale", "x").unwrap();
    let mut t = DomainTree::new(1, "again", 1024);
    t.uuid = Some("00000000-0000-0000-0000-000000000001".into());
    t.store = Some((1, 0xfeffc));
    t.console = Some((2, 0xfeffd));
    create_domain_tree(&mut xs, &t).unwrap();
    assert_eq!(read(&mut xs, d0, 0, "/local/domain/1/stale"), Err(Errno::NoEnt));
    assert_eq!(read(&mut xs, d0, 0, "/local/domain/1/store/ring-ref").unwrap(), "1044476");
    assert_eq!(read(&mut xs, d0, 0, "/vm/00000000-0000-0000-0000-000000000001/name").unwrap(), "again");
    assert_eq!(read(&mut xs, g, 0, "vm").unwrap(), "/vm/00000000-0000-0000-0000-000000000001");
    // The temporary connection is gone.
    assert_eq!(xs.connections().count(), 2);
    xs.check().unwrap();
}
