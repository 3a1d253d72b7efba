//! Transactions: isolation, commit and abort, conflicts only on nodes the
//! transaction touched, watch events at commit, argument errors.

use super::*;
use crate::wire::MsgType::*;

fn start(xs: &mut Xenstore, c: ConnId) -> u32 {
    let p = ok(xs, c, TransactionStart, 0, &[""]);
    list(&p)[0].parse().unwrap()
}

fn end(xs: &mut Xenstore, c: ConnId, tx: u32, commit: bool) -> Result<(), Errno> {
    let out = send(xs, c, TransactionEnd, tx, &[if commit { "T" } else { "F" }]);
    match reply(&out).as_error() {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn setup() -> (Xenstore, ConnId, ConnId) {
    let mut xs = Xenstore::default();
    let a = xs.connect_privileged();
    let b = xs.connect_privileged();
    write(&mut xs, a, 0, "/t/a", "1").unwrap();
    write(&mut xs, a, 0, "/t/b", "1").unwrap();
    (xs, a, b)
}

#[test]
fn isolation_commit_and_abort() {
    let (mut xs, a, b) = setup();
    let tx = start(&mut xs, a);
    write(&mut xs, a, tx, "/t/a", "2").unwrap();
    write(&mut xs, a, tx, "/t/new/deep", "3").unwrap();
    assert_eq!(read(&mut xs, a, tx, "/t/a").unwrap(), "2");
    assert_eq!(read(&mut xs, b, 0, "/t/a").unwrap(), "1");
    assert_eq!(read(&mut xs, b, 0, "/t/new/deep"), Err(Errno::NoEnt));
    assert_eq!(list(&ok(&mut xs, a, Directory, tx, &["/t"])), vec!["a", "b", "new"]);
    end(&mut xs, a, tx, true).unwrap();
    assert_eq!(read(&mut xs, b, 0, "/t/a").unwrap(), "2");
    assert_eq!(read(&mut xs, b, 0, "/t/new/deep").unwrap(), "3");
    let tx = start(&mut xs, a);
    ok(&mut xs, a, Rm, tx, &["/t/new"]);
    assert_eq!(read(&mut xs, a, tx, "/t/new/deep"), Err(Errno::NoEnt));
    end(&mut xs, a, tx, false).unwrap();
    assert_eq!(read(&mut xs, b, 0, "/t/new/deep").unwrap(), "3");
    // The id is gone after the end.
    assert_eq!(read(&mut xs, a, tx, "/t/a"), Err(Errno::NoEnt));
    xs.check().unwrap();
}

#[test]
fn conflict_only_on_touched_nodes() {
    let (mut xs, a, b) = setup();
    // Unrelated write: no conflict (QEMU would fail this one).
    let tx = start(&mut xs, a);
    assert_eq!(read(&mut xs, a, tx, "/t/a").unwrap(), "1");
    write(&mut xs, a, tx, "/t/a", "x").unwrap();
    write(&mut xs, b, 0, "/t/b", "other").unwrap();
    end(&mut xs, a, tx, true).unwrap();
    assert_eq!(read(&mut xs, b, 0, "/t/a").unwrap(), "x");
    // A node read in the transaction changed: EAGAIN, nothing applied.
    let tx = start(&mut xs, a);
    read(&mut xs, a, tx, "/t/b").unwrap();
    write(&mut xs, a, tx, "/t/a", "lost").unwrap();
    write(&mut xs, b, 0, "/t/b", "changed").unwrap();
    assert_eq!(end(&mut xs, a, tx, true), Err(Errno::Again));
    assert_eq!(read(&mut xs, b, 0, "/t/a").unwrap(), "x");
    // A node only written in the transaction changed: EAGAIN too.
    let tx = start(&mut xs, a);
    write(&mut xs, a, tx, "/t/a", "mine").unwrap();
    write(&mut xs, b, 0, "/t/a", "theirs").unwrap();
    assert_eq!(end(&mut xs, a, tx, true), Err(Errno::Again));
    // A node found missing and created meanwhile: EAGAIN.
    let tx = start(&mut xs, a);
    assert_eq!(read(&mut xs, a, tx, "/t/c"), Err(Errno::NoEnt));
    write(&mut xs, b, 0, "/t/c", "now").unwrap();
    assert_eq!(end(&mut xs, a, tx, true), Err(Errno::Again));
    // Deleted meanwhile: EAGAIN.
    let tx = start(&mut xs, a);
    read(&mut xs, a, tx, "/t/c").unwrap();
    ok(&mut xs, b, Rm, 0, &["/t/c"]);
    assert_eq!(end(&mut xs, a, tx, true), Err(Errno::Again));
    // Another transaction's commit of other nodes does not disturb.
    let t1 = start(&mut xs, a);
    let t2 = start(&mut xs, b);
    write(&mut xs, a, t1, "/t/a", "t1").unwrap();
    write(&mut xs, b, t2, "/t/b", "t2").unwrap();
    end(&mut xs, b, t2, true).unwrap();
    end(&mut xs, a, t1, true).unwrap();
    assert_eq!(read(&mut xs, a, 0, "/t/a").unwrap(), "t1");
    assert_eq!(read(&mut xs, a, 0, "/t/b").unwrap(), "t2");
    // Creating siblings changes the shared parent's child list: conflict.
    let t1 = start(&mut xs, a);
    write(&mut xs, a, t1, "/t/x", "1").unwrap();
    write(&mut xs, b, 0, "/t/y", "1").unwrap();
    assert_eq!(end(&mut xs, a, t1, true), Err(Errno::Again));
    xs.check().unwrap();
}

#[test]
fn test_xenstore_style_read_modify_write_conflict() {
    // Mirrors test-xenstore's "ta-conflict" case.
    let (mut xs, a, b) = setup();
    let tx = start(&mut xs, a);
    assert_eq!(read(&mut xs, a, tx, "/t/a").unwrap(), "1");
    write(&mut xs, b, 0, "/t/a", "b").unwrap();
    assert_eq!(read(&mut xs, a, tx, "/t/a").unwrap(), "1");
    write(&mut xs, a, tx, "/t/a", "c").unwrap();
    assert_eq!(read(&mut xs, a, tx, "/t/a").unwrap(), "c");
    assert_eq!(end(&mut xs, a, tx, true), Err(Errno::Again));
    assert_eq!(read(&mut xs, a, 0, "/t/a").unwrap(), "b");
}

#[test]
fn watches_fire_at_commit_only() {
    let (mut xs, a, b) = setup();
    ok(&mut xs, b, Watch, 0, &["/t", "tok"]);
    xs.drain(b);
    let tx = start(&mut xs, a);
    write(&mut xs, a, tx, "/t/a", "2").unwrap();
    write(&mut xs, a, tx, "/t/n/m", "2").unwrap();
    ok(&mut xs, a, Rm, tx, &["/t/b"]);
    assert!(xs.drain(b).is_empty());
    end(&mut xs, a, tx, true).unwrap();
    let mut ev = events(&xs.drain(b));
    ev.sort();
    assert_eq!(ev.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), vec!["/t/a", "/t/b", "/t/n/m"]);
    let tx = start(&mut xs, a);
    write(&mut xs, a, tx, "/t/a", "3").unwrap();
    end(&mut xs, a, tx, false).unwrap();
    assert!(xs.drain(b).is_empty());
}

#[test]
fn argument_and_state_errors() {
    let (mut xs, a, _b) = setup();
    assert_eq!(err(&mut xs, a, TransactionEnd, 0, &["T"]), Errno::NoEnt);
    let tx = start(&mut xs, a);
    assert_eq!(err(&mut xs, a, TransactionEnd, tx, &["X"]), Errno::Inval);
    assert_eq!(err(&mut xs, a, TransactionEnd, tx, &[]), Errno::Inval);
    assert_eq!(err(&mut xs, a, TransactionStart, tx, &[""]), Errno::Busy);
    assert_eq!(err(&mut xs, a, TransactionStart, tx + 100, &[""]), Errno::NoEnt);
    // Ids are unique and never 0.
    let t2 = start(&mut xs, a);
    assert!(tx != 0 && t2 != 0 && t2 != tx);
    end(&mut xs, a, tx, true).unwrap();
    end(&mut xs, a, t2, true).unwrap();
}

#[test]
fn reset_watches_inside_a_transaction_drops_all_transactions() {
    let (mut xs, a, _b) = setup();
    let t1 = start(&mut xs, a);
    let t2 = start(&mut xs, a);
    ok(&mut xs, a, Watch, 0, &["/t", "x"]);
    ok(&mut xs, a, ResetWatches, t1, &[""]);
    assert_eq!(read(&mut xs, a, t1, "/t/a"), Err(Errno::NoEnt));
    assert_eq!(read(&mut xs, a, t2, "/t/a"), Err(Errno::NoEnt));
    assert!(xs.connection(a).unwrap().watches().is_empty());
    xs.check().unwrap();
}

#[test]
fn node_counts_follow_commits() {
    let (mut xs, a, _b) = setup();
    let before = xs.store().owned_by(0);
    let tx = start(&mut xs, a);
    write(&mut xs, a, tx, "/c/1/2/3", "").unwrap();
    ok(&mut xs, a, Rm, tx, &["/t/a"]);
    assert_eq!(xs.store().owned_by(0), before);
    end(&mut xs, a, tx, true).unwrap();
    assert_eq!(xs.store().owned_by(0), before + 4 - 1);
    xs.check().unwrap();
}
