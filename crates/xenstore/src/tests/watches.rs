//! Watches: the first event, matching, rm, depth, relative paths, permission
//! filtering, special paths, limits.

use super::perms::with_guest;
use super::*;
use crate::wire::MsgType::*;

fn setup() -> (Xenstore, ConnId, ConnId) {
    let mut xs = Xenstore::default();
    let a = xs.connect_privileged();
    let w = xs.connect_privileged();
    (xs, a, w)
}

fn ev(xs: &mut Xenstore, c: ConnId) -> Vec<String> {
    events(&xs.drain(c)).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn registration_fires_once_after_the_ok() {
    let (mut xs, _a, w) = setup();
    let out = send(&mut xs, w, Watch, 0, &["/not/there", "tok"]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].payload, b"OK\0");
    assert_eq!(out[0].ty, Watch as u32);
    assert_eq!(events(&out[1..]), vec![("/not/there".into(), "tok".into())]);
    assert_eq!((out[1].req_id, out[1].tx_id), (0, 0));
}

#[test]
fn writes_fire_the_node_and_ancestor_watches() {
    let (mut xs, a, w) = setup();
    for (p, t) in [("/x", "1"), ("/x/y", "2"), ("/x/y/z", "3"), ("/other", "4"), ("/", "5")] {
        ok(&mut xs, w, Watch, 0, &[p, t]);
    }
    xs.drain(w);
    write(&mut xs, a, 0, "/x/y", "v").unwrap();
    let mut got = events(&xs.drain(w));
    got.sort();
    assert_eq!(got, vec![("/x/y".into(), "1".into()), ("/x/y".into(), "2".into()), ("/x/y".into(), "5".into())]);
    ok(&mut xs, a, Mkdir, 0, &["/other/q"]);
    assert_eq!(events(&xs.drain(w)).len(), 2);
    // mkdir of an existing node fires nothing.
    ok(&mut xs, a, Mkdir, 0, &["/other/q"]);
    assert!(xs.drain(w).is_empty());
    ok(&mut xs, a, SetPerms, 0, &["/other", "n0"]);
    assert_eq!(ev(&mut xs, w), vec!["/other", "/other"]);
}

#[test]
fn rm_fires_exact_watches_below_and_subtree_watches_above() {
    let (mut xs, a, w) = setup();
    write(&mut xs, a, 0, "/r/a/b/c", "").unwrap();
    for (p, t) in [("/r/a/b/c", "deep"), ("/r/a/b", "mid"), ("/r", "top"), ("/r/a/b/c/d", "below")] {
        ok(&mut xs, w, Watch, 0, &[p, t]);
    }
    xs.drain(w);
    ok(&mut xs, a, Rm, 0, &["/r/a"]);
    let mut got = events(&xs.drain(w));
    got.sort();
    assert_eq!(
        got,
        vec![("/r/a".into(), "top".into()), ("/r/a/b".into(), "mid".into()), ("/r/a/b/c".into(), "deep".into())]
    );
}

#[test]
fn depth_limits_the_match() {
    let (mut xs, a, w) = setup();
    ok(&mut xs, w, Watch, 0, &["/d", "t", "1"]);
    ok(&mut xs, w, Watch, 0, &["/", "root0", "0"]);
    xs.drain(w);
    write(&mut xs, a, 0, "/d/x", "").unwrap();
    assert_eq!(ev(&mut xs, w), vec!["/d/x"]);
    write(&mut xs, a, 0, "/d/x/y", "").unwrap();
    assert!(ev(&mut xs, w).is_empty());
    write(&mut xs, a, 0, "/d", "").unwrap();
    assert_eq!(ev(&mut xs, w), vec!["/d"]);
    assert_eq!(err(&mut xs, w, Watch, 0, &["/d", "neg", "-1"]), Errno::Inval);
}

#[test]
fn watch_argument_errors_and_unwatch() {
    let (mut xs, a, w) = setup();
    ok(&mut xs, w, Watch, 0, &["/u", "t"]);
    assert_eq!(err(&mut xs, w, Watch, 0, &["/u", "t"]), Errno::Exist);
    ok(&mut xs, w, Watch, 0, &["/u", "t2"]);
    assert_eq!(err(&mut xs, w, Watch, 0, &["/u"]), Errno::Inval);
    assert_eq!(err(&mut xs, w, Watch, 0, &["/u", "a", "1", "x"]), Errno::Inval);
    assert_eq!(err(&mut xs, w, Watch, 0, &["/u/", "a"]), Errno::Inval);
    ok(&mut xs, w, Unwatch, 0, &["/u", "t"]);
    assert_eq!(err(&mut xs, w, Unwatch, 0, &["/u", "t"]), Errno::NoEnt);
    assert_eq!(err(&mut xs, w, Unwatch, 0, &["/u"]), Errno::Inval);
    xs.drain(w);
    write(&mut xs, a, 0, "/u", "").unwrap();
    assert_eq!(events(&xs.drain(w)), vec![("/u".into(), "t2".into())]);
    ok(&mut xs, w, ResetWatches, 0, &[""]);
    write(&mut xs, a, 0, "/u", "").unwrap();
    assert!(xs.drain(w).is_empty());
}

#[test]
fn relative_watches_report_relative_paths() {
    let (mut xs, d0, g) = with_guest(1);
    let out = send(&mut xs, g, Watch, 0, &["control/shutdown", "sd"]);
    assert_eq!(events(&out), vec![("control/shutdown".into(), "sd".into())]);
    write(&mut xs, d0, 0, "/local/domain/1/control/shutdown", "reboot").unwrap();
    assert_eq!(events(&xs.drain(g)), vec![("control/shutdown".into(), "sd".into())]);
    // Unwatch by the same relative name.
    ok(&mut xs, g, Unwatch, 0, &["control/shutdown", "sd"]);
}

#[test]
fn guests_only_hear_about_nodes_they_may_read() {
    let (mut xs, d0, g) = with_guest(1);
    ok(&mut xs, g, Watch, 0, &["/", "all"]);
    xs.drain(g);
    write(&mut xs, d0, 0, "/private/x", "s").unwrap();
    assert!(xs.drain(g).is_empty());
    write(&mut xs, d0, 0, "/local/domain/1/name", "renamed").unwrap();
    assert_eq!(ev(&mut xs, g), vec!["/local/domain/1/name"]);
    // Losing read access still tells the watcher once.
    write(&mut xs, d0, 0, "/pub", "").unwrap();
    ok(&mut xs, d0, SetPerms, 0, &["/pub", "n0", "r1"]);
    assert_eq!(ev(&mut xs, g), vec!["/pub"]);
    ok(&mut xs, d0, SetPerms, 0, &["/pub", "n0"]);
    assert_eq!(ev(&mut xs, g), vec!["/pub"]);
    write(&mut xs, d0, 0, "/pub", "x").unwrap();
    assert!(xs.drain(g).is_empty());
}

#[test]
fn special_watches() {
    let (mut xs, d0, g) = with_guest(1);
    ok(&mut xs, d0, Watch, 0, &["@introduceDomain", "intro"]);
    ok(&mut xs, d0, Watch, 0, &["@introduceDomain", "intro-dom", "1"]);
    ok(&mut xs, d0, Watch, 0, &["@releaseDomain", "rel"]);
    ok(&mut xs, d0, Watch, 0, &["@releaseDomain/2", "rel2"]);
    ok(&mut xs, g, Watch, 0, &["@releaseDomain", "grel"]);
    ok(&mut xs, g, Watch, 0, &["@introduceDomain", "gintro"]);
    xs.drain(d0);
    xs.drain(g);
    xs.introduce_domain(2, 1, 5).unwrap();
    let mut got = events(&xs.drain(d0));
    got.sort();
    assert_eq!(
        got,
        vec![("@introduceDomain".into(), "intro".into()), ("@introduceDomain/2".into(), "intro-dom".into())]
    );
    // @introduceDomain is dom0's only.
    assert!(xs.drain(g).is_empty());
    xs.domain_shutdown(2);
    xs.domain_shutdown(2);
    let mut got = events(&xs.drain(d0));
    got.sort();
    assert_eq!(got, vec![("@releaseDomain".into(), "rel".into()), ("@releaseDomain/2".into(), "rel2".into())]);
    // Every domain may hear @releaseDomain (DOMID_ANY may read it).
    assert_eq!(events(&xs.drain(g)), vec![("@releaseDomain".into(), "grel".into())]);
    ok(&mut xs, d0, Resume, 0, &["2"]);
    let out = send(&mut xs, d0, Release, 0, &["2"]);
    assert_eq!(reply(&out).payload, b"OK\0");
    // Events for the caller are queued before its reply.
    assert_eq!(events(&out).len(), 2);
    assert_eq!(events(&xs.drain(g)).len(), 1);
}

#[test]
fn oversized_events_are_dropped_and_duplicates_merged() {
    let (mut xs, a, w) = setup();
    let token = "t".repeat(4090);
    let out = send(&mut xs, w, Watch, 0, &["/big/path", &token]);
    assert_eq!(out.len(), 1, "the first event would exceed the payload limit");
    ok(&mut xs, w, Watch, 0, &["/dup", "d"]);
    xs.drain(w);
    write(&mut xs, a, 0, "/big/path", "").unwrap();
    assert!(xs.drain(w).is_empty());
    write(&mut xs, a, 0, "/dup", "1").unwrap();
    write(&mut xs, a, 0, "/dup", "2").unwrap();
    assert_eq!(xs.drain(w).len(), 1);
}

#[test]
fn queued_events_counts_the_watch_events_in_the_outbox() {
    let (mut xs, a, w) = setup();
    xs.process(w, &Message::with_strings(Watch, 1, 0, &[b"/q", b"t"]));
    let conn = xs.connection(w).unwrap();
    assert_eq!((conn.queued_events(), conn.outstanding()), (1, 1));
    ok(&mut xs, a, Write, 0, &["/q", "v"]);
    let conn = xs.connection(w).unwrap();
    assert_eq!(conn.queued_events(), 1, "the pending event for /q is merged");
    assert_eq!(conn.outbox_len(), 2);
    xs.drain(w);
    assert_eq!(xs.connection(w).unwrap().queued_events(), 0);
}
