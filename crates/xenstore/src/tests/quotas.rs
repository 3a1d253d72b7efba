//! Quotas: C xenstored's defaults, the errors they answer with, dom0 exempt.

use super::*;
use crate::quota::Quotas;
use crate::wire::MsgType::*;

/// A guest owning `/local/domain/1` (one node) under the given quotas.
fn guest(q: Quotas) -> (Xenstore, ConnId, ConnId) {
    let mut xs = Xenstore::new(q);
    let d0 = xs.connect_privileged();
    xs.create_domain(1);
    ok(&mut xs, d0, Mkdir, 0, &["/local/domain/1"]);
    ok(&mut xs, d0, SetPerms, 0, &["/local/domain/1", "n1"]);
    let g = xs.introduce_domain(1, 1, 1).unwrap();
    (xs, d0, g)
}

#[test]
fn defaults_are_c_xenstoreds() {
    let q = Quotas::default();
    assert_eq!(
        (
            q.nodes,
            q.watches,
            q.outstanding,
            q.transactions,
            q.transaction_nodes,
            q.node_permissions,
            q.path_max,
            q.node_size
        ),
        (1000, 128, 20, 10, 1024, 5, 2048, 2048)
    );
}

#[test]
fn nodes_per_domain() {
    let (mut xs, d0, g) = guest(Quotas { nodes: 10, ..Quotas::default() });
    for i in 0..9 {
        write(&mut xs, g, 0, &format!("n{i}"), "").unwrap();
    }
    assert_eq!(xs.store().owned_by(1), 10);
    assert_eq!(write(&mut xs, g, 0, "n9", ""), Err(Errno::NoSpc));
    // A multi-level create counts every new node.
    ok(&mut xs, g, Rm, 0, &["n8"]);
    assert_eq!(write(&mut xs, g, 0, "a/b", ""), Err(Errno::NoSpc));
    write(&mut xs, g, 0, "a", "").unwrap();
    // Overwriting is fine; dom0 is exempt.
    write(&mut xs, g, 0, "a", "again").unwrap();
    for i in 0..20 {
        write(&mut xs, d0, 0, &format!("/local/domain/1/d0-{i}"), "").unwrap();
    }
    xs.check().unwrap();
}

#[test]
fn nodes_quota_at_commit() {
    let (mut xs, _d0, g) = guest(Quotas { nodes: 4, ..Quotas::default() });
    let t1 = list(&ok(&mut xs, g, TransactionStart, 0, &[""]))[0].parse().unwrap();
    let t2 = list(&ok(&mut xs, g, TransactionStart, 0, &[""]))[0].parse().unwrap();
    write(&mut xs, g, t1, "a", "").unwrap();
    write(&mut xs, g, t1, "b", "").unwrap();
    write(&mut xs, g, t2, "c", "").unwrap();
    write(&mut xs, g, t2, "d", "").unwrap();
    ok(&mut xs, g, TransactionEnd, t1, &["T"]);
    assert_eq!(err(&mut xs, g, TransactionEnd, t2, &["T"]), Errno::NoSpc);
    assert_eq!(xs.store().owned_by(1), 3);
}

#[test]
fn node_size() {
    let (mut xs, d0, g) = guest(Quotas::default());
    // 16 header + 8 per permission + value + children <= 2048.
    write(&mut xs, g, 0, "v", &"x".repeat(2048 - 24)).unwrap();
    assert_eq!(write(&mut xs, g, 0, "v", &"x".repeat(2048 - 23)), Err(Errno::NoSpc));
    write(&mut xs, d0, 0, "/local/domain/1/v", &"x".repeat(4000)).unwrap();
}

#[test]
fn permissions_per_node() {
    let (mut xs, d0, g) = guest(Quotas::default());
    write(&mut xs, g, 0, "p", "").unwrap();
    ok(&mut xs, g, SetPerms, 0, &["p", "n1", "r0", "r0", "r0", "r0"]);
    assert_eq!(err(&mut xs, g, SetPerms, 0, &["p", "n1", "r0", "r0", "r0", "r0", "r0"]), Errno::NoSpc);
    ok(&mut xs, d0, SetPerms, 0, &["/local/domain/1/p", "n1", "r0", "r0", "r0", "r0", "r0", "r0", "r0"]);
}

#[test]
fn watches_per_domain() {
    let (mut xs, d0, g) = guest(Quotas::default());
    for i in 0..128 {
        ok(&mut xs, g, Watch, 0, &["w", &i.to_string()]);
    }
    assert_eq!(err(&mut xs, g, Watch, 0, &["w", "128"]), Errno::NoSpc);
    ok(&mut xs, g, Unwatch, 0, &["w", "0"]);
    ok(&mut xs, g, Watch, 0, &["w", "128"]);
    for i in 0..200 {
        ok(&mut xs, d0, Watch, 0, &["/w", &i.to_string()]);
    }
}

#[test]
fn transactions_per_domain_and_nodes_per_transaction() {
    let (mut xs, _d0, g) = guest(Quotas { transaction_nodes: 5, ..Quotas::default() });
    let ids: Vec<u32> =
        (0..10).map(|_| list(&ok(&mut xs, g, TransactionStart, 0, &[""]))[0].parse().unwrap()).collect();
    assert_eq!(err(&mut xs, g, TransactionStart, 0, &[""]), Errno::NoSpc);
    let tx = ids[0];
    for i in 0..5 {
        let _ = read(&mut xs, g, tx, &format!("r{i}"));
    }
    assert_eq!(read(&mut xs, g, tx, "r5"), Err(Errno::NoSpc));
    // A transaction that hit a limit cannot commit (xenstored answers ENOMEM).
    assert_eq!(err(&mut xs, g, TransactionEnd, tx, &["T"]), Errno::NoMem);
    list(&ok(&mut xs, g, TransactionStart, 0, &[""]));
}

#[test]
fn path_length_counts_below_the_domain_path() {
    let (mut xs, d0, g) = guest(Quotas::default());
    // Components are short: a long child name would break the parent's node size.
    let base = format!("d{}", format!("/{}", "a".repeat(99)).repeat(20));
    let rel = format!("{base}/{}", "b".repeat(46));
    assert_eq!(rel.len(), 2048);
    write(&mut xs, g, 0, &rel, "").unwrap();
    let rel = format!("{base}/{}", "b".repeat(47));
    assert_eq!(write(&mut xs, g, 0, &rel, ""), Err(Errno::Inval));
    write(&mut xs, d0, 0, &format!("/local/domain/1/{rel}"), "").unwrap();
}

#[test]
fn outstanding_replies_stop_reading() {
    let (mut xs, _d0, g) = guest(Quotas::default());
    for _ in 0..20 {
        assert!(xs.can_accept(g));
        xs.process(g, &Message::with_strings(MsgType::Read, 1, 0, &[b"x"]));
    }
    assert!(!xs.can_accept(g));
    xs.pop_output(g);
    assert!(xs.can_accept(g));
}

#[test]
fn queued_events_are_bounded() {
    let (mut xs, d0, g) = guest(Quotas { watch_events: 50, ..Quotas::default() });
    ok(&mut xs, g, Watch, 0, &["/local/domain/1", "all"]);
    xs.drain(g);
    for i in 0..200 {
        write(&mut xs, d0, 0, &format!("/local/domain/1/e{i}"), "").unwrap();
    }
    assert_eq!(xs.connection(g).unwrap().outbox_len(), 50);
    assert_eq!(xs.connection(g).unwrap().dropped_events(), 150);
    xs.check().unwrap();
}

#[test]
fn quota_operations() {
    let (mut xs, d0, g) = guest(Quotas::default());
    let names = String::from_utf8(ok(&mut xs, d0, GetQuota, 0, &[])).unwrap();
    assert!(names.starts_with("nodes watches outstanding"));
    assert_eq!(ok(&mut xs, d0, GetQuota, 0, &["nodes"]), b"1000\0");
    assert_eq!(ok(&mut xs, d0, GetQuota, 0, &["1", "watches"]), b"128\0");
    assert_eq!(err(&mut xs, d0, GetQuota, 0, &["bogus"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, GetQuota, 0, &["99", "nodes"]), Errno::NoEnt);
    ok(&mut xs, d0, SetQuota, 0, &["1", "watches", "1"]);
    ok(&mut xs, g, Watch, 0, &["a", "a"]);
    assert_eq!(err(&mut xs, g, Watch, 0, &["b", "b"]), Errno::NoSpc);
    ok(&mut xs, d0, SetQuota, 0, &["nodes", "7"]);
    assert_eq!(ok(&mut xs, d0, GetQuota, 0, &["nodes"]), b"7\0");
    assert_eq!(err(&mut xs, d0, SetQuota, 0, &["nodes"]), Errno::Inval);
    assert_eq!(err(&mut xs, d0, SetQuota, 0, &["nodes", "-1"]), Errno::Inval);
}
