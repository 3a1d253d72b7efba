//! The permission model: owner, ACL entries, privileged callers, targets,
//! `DOMID_ANY`, stale entries.

use super::*;
use crate::default_tree::{create_domain_tree, DomainTree};
use crate::wire::MsgType::*;

/// dom0 connection, and domain 1 with the toolstack's tree and its ring connection.
pub(crate) fn with_guest(domid: u32) -> (Xenstore, ConnId, ConnId) {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    create_domain_tree(&mut xs, &DomainTree::new(domid, "guest", 524288)).unwrap();
    let g = xs.introduce_domain(domid, 0xfeffc, 3).unwrap();
    (xs, d0, g)
}

#[test]
fn guest_reads_its_tree_and_writes_only_its_own_nodes() {
    let (mut xs, _d0, g) = with_guest(1);
    assert_eq!(read(&mut xs, g, 0, "name").unwrap(), "guest");
    assert_eq!(read(&mut xs, g, 0, "/local/domain/1/domid").unwrap(), "1");
    assert_eq!(write(&mut xs, g, 0, "name", "evil"), Err(Errno::Acces));
    assert_eq!(write(&mut xs, g, 0, "memory/target", "1"), Err(Errno::Acces));
    write(&mut xs, g, 0, "control/shutdown", "poweroff").unwrap();
    write(&mut xs, g, 0, "data/x/y", "1").unwrap();
    // Unprivileged creators own what they create; the ACL is inherited.
    assert_eq!(list(&ok(&mut xs, g, GetPerms, 0, &["data/x/y"])), vec!["n1"]);
    assert_eq!(write(&mut xs, g, 0, "/top", "x"), Err(Errno::Acces));
    assert_eq!(write(&mut xs, g, 0, "/local/domain/1/newdir", "x"), Err(Errno::Acces));
    xs.check().unwrap();
}

#[test]
fn enoent_only_when_the_parent_is_visible() {
    let (mut xs, d0, g) = with_guest(1);
    write(&mut xs, d0, 0, "/secret/a", "s").unwrap();
    assert_eq!(read(&mut xs, g, 0, "/secret/a"), Err(Errno::Acces));
    assert_eq!(read(&mut xs, g, 0, "/secret/nope"), Err(Errno::Acces));
    assert_eq!(read(&mut xs, g, 0, "/secret/nope/deeper"), Err(Errno::Acces));
    assert_eq!(read(&mut xs, g, 0, "nope"), Err(Errno::NoEnt));
    assert_eq!(read(&mut xs, g, 0, "data/nope/deeper"), Err(Errno::NoEnt));
    assert_eq!(err(&mut xs, g, Directory, 0, &["/"]), Errno::Acces);
    assert_eq!(err(&mut xs, g, Rm, 0, &["/secret"]), Errno::Acces);
    assert_eq!(err(&mut xs, g, Rm, 0, &["/secret/x"]), Errno::Acces);
}

#[test]
fn acl_entries_and_default_access() {
    let (mut xs, d0, g) = with_guest(1);
    write(&mut xs, d0, 0, "/acl", "v").unwrap();
    ok(&mut xs, d0, SetPerms, 0, &["/acl", "n0", "r1"]);
    assert_eq!(read(&mut xs, g, 0, "/acl").unwrap(), "v");
    assert_eq!(write(&mut xs, g, 0, "/acl", "w"), Err(Errno::Acces));
    ok(&mut xs, d0, SetPerms, 0, &["/acl", "n0", "w1"]);
    assert_eq!(read(&mut xs, g, 0, "/acl"), Err(Errno::Acces));
    write(&mut xs, g, 0, "/acl", "w").unwrap();
    // The first entry's letter is everybody's default.
    ok(&mut xs, d0, SetPerms, 0, &["/acl", "b0"]);
    assert_eq!(read(&mut xs, g, 0, "/acl").unwrap(), "w");
    // A specific entry overrides the default.
    ok(&mut xs, d0, SetPerms, 0, &["/acl", "b0", "n1"]);
    assert_eq!(read(&mut xs, g, 0, "/acl"), Err(Errno::Acces));
    // DOMID_ANY entries match everybody.
    ok(&mut xs, d0, SetPerms, 0, &["/acl", "n0", "r32757"]);
    assert_eq!(read(&mut xs, g, 0, "/acl").unwrap(), "w");
}

#[test]
fn set_perms_needs_ownership_and_owner_changes_need_privilege() {
    let (mut xs, d0, g) = with_guest(1);
    write(&mut xs, g, 0, "data/mine", "1").unwrap();
    ok(&mut xs, g, SetPerms, 0, &["data/mine", "n1", "r0"]);
    assert_eq!(err(&mut xs, g, SetPerms, 0, &["data/mine", "n0"]), Errno::Perm);
    write(&mut xs, d0, 0, "/shared", "").unwrap();
    ok(&mut xs, d0, SetPerms, 0, &["/shared", "n0", "b1"]);
    // Write access is not ownership.
    assert_eq!(err(&mut xs, g, SetPerms, 0, &["/shared", "n0", "b1"]), Errno::Acces);
    // The privileged may give a node away.
    ok(&mut xs, d0, SetPerms, 0, &["/shared", "n1"]);
    ok(&mut xs, g, SetPerms, 0, &["/shared", "n1", "r0"]);
    xs.check().unwrap();
}

#[test]
fn privileged_only_operations_are_eacces_for_guests() {
    let (mut xs, _d0, g) = with_guest(1);
    for (ty, args) in [
        (Control, &["print", "x"][..]),
        (Introduce, &["2", "1", "1"]),
        (Release, &["1"]),
        (IsDomainIntroduced, &["1"]),
        (Resume, &["1"]),
        (SetTarget, &["1", "1"]),
        (SetFeature, &["1", "0"]),
        (GetQuota, &[]),
        (SetQuota, &["nodes", "1"]),
    ] {
        assert_eq!(err(&mut xs, g, ty, 0, args), Errno::Acces, "{ty:?}");
    }
    // GET_FEATURE without a domid is for everybody, with one for dom0 only.
    assert_eq!(ok(&mut xs, g, GetFeature, 0, &[]), b"15\0");
    assert_eq!(err(&mut xs, g, GetFeature, 0, &["1"]), Errno::Acces);
    // GET_DOMAIN_PATH is not privileged.
    assert_eq!(ok(&mut xs, g, GetDomainPath, 0, &["7"]), b"/local/domain/7\0");
}

#[test]
fn set_target_lends_the_targets_rights() {
    let (mut xs, d0, g1) = with_guest(1);
    create_domain_tree(&mut xs, &DomainTree::new(2, "stubdom", 1024)).unwrap();
    let g2 = xs.introduce_domain(2, 1, 4).unwrap();
    assert_eq!(read(&mut xs, g2, 0, "/local/domain/1/name"), Err(Errno::Acces));
    write(&mut xs, g1, 0, "data/d", "1").unwrap();
    ok(&mut xs, d0, SetTarget, 0, &["2", "1"]);
    assert_eq!(read(&mut xs, g2, 0, "/local/domain/1/name").unwrap(), "guest");
    write(&mut xs, g2, 0, "/local/domain/1/data/d", "2").unwrap();
    assert_eq!(err(&mut xs, d0, SetTarget, 0, &["2", "9"]), Errno::NoEnt);
    assert_eq!(err(&mut xs, d0, SetTarget, 0, &["2"]), Errno::Inval);
}

#[test]
fn entries_for_unknown_domains_stay_ignored_after_the_domain_appears() {
    let (mut xs, _d0, g) = with_guest(1);
    write(&mut xs, g, 0, "data/n", "v").unwrap();
    // Domain 7 does not exist when the guest names it.
    ok(&mut xs, g, SetPerms, 0, &["data/n", "n1", "r7"]);
    assert_eq!(list(&ok(&mut xs, g, GetPerms, 0, &["data/n"])), vec!["n1", "r7"]);
    let g7 = xs.introduce_domain(7, 1, 9).unwrap();
    assert_eq!(read(&mut xs, g7, 0, "/local/domain/1/data/n"), Err(Errno::Acces));
    // An owner that does not exist is refused.
    assert_eq!(err(&mut xs, g, SetPerms, 0, &["data/n", "n8"]), Errno::NoEnt);
}

#[test]
fn released_domains_lose_their_entries_and_nodes() {
    let (mut xs, d0, g1) = with_guest(1);
    let g2 = xs.introduce_domain(2, 1, 4).unwrap();
    write(&mut xs, d0, 0, "/for2", "v").unwrap();
    ok(&mut xs, d0, SetPerms, 0, &["/for2", "n0", "r2", "r1"]);
    assert_eq!(read(&mut xs, g2, 0, "/for2").unwrap(), "v");
    write(&mut xs, d0, 0, "/owned2/x", "v").unwrap();
    ok(&mut xs, d0, SetPerms, 0, &["/owned2", "n2"]);
    xs.release_domain(2).unwrap();
    assert_eq!(list(&ok(&mut xs, d0, GetPerms, 0, &["/for2"])), vec!["n0", "r1"]);
    assert_eq!(read(&mut xs, d0, 0, "/owned2"), Err(Errno::NoEnt));
    assert_eq!(xs.store().owned_by(2), 0);
    // A new domain 2 gets nothing from the old one.
    let g2b = xs.introduce_domain(2, 1, 4).unwrap();
    assert_eq!(read(&mut xs, g2b, 0, "/for2"), Err(Errno::Acces));
    assert_eq!(read(&mut xs, g1, 0, "/for2").unwrap(), "v");
    xs.check().unwrap();
}
