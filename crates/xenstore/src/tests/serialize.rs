//! Snapshot round trips after every kind of operation, behavioural
//! equivalence after restore, and refusal of damaged snapshots.

use super::perms::with_guest;
use super::*;
use crate::serialize::SnapshotError;
use crate::wire::MsgType::*;

/// Round-trips and checks that the restored engine answers like the original.
fn roundtrip(xs: &Xenstore) -> Xenstore {
    let bytes = xs.to_bytes();
    let back = Xenstore::from_bytes(&bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.store(), xs.store());
    assert_eq!(back.conns, xs.conns);
    assert_eq!(back.domains, xs.domains);
    back
}

/// Runs the same requests on both engines and compares all output.
fn same_behaviour(a: &mut Xenstore, b: &mut Xenstore, conns: &[ConnId]) {
    let probes: Vec<(MsgType, Vec<&str>)> = vec![
        (Read, vec!["/local/domain/1/name"]),
        (Directory, vec!["/local/domain/1"]),
        (Write, vec!["/local/domain/1/data/probe"]),
        (Rm, vec!["/local/domain/1/data"]),
        (TransactionStart, vec![""]),
        (Watch, vec!["/local/domain/1", "probe"]),
    ];
    for c in conns {
        for (ty, args) in &probes {
            for tx in [0, 1, 2] {
                assert_eq!(send(a, *c, *ty, tx, args), send(b, *c, *ty, tx, args), "{ty:?} tx {tx}");
            }
        }
        assert_eq!(a.drain(*c), b.drain(*c));
    }
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn round_trip_after_every_kind_of_operation() {
    let (mut xs, d0, g) = with_guest(1);
    roundtrip(&xs);
    write(&mut xs, g, 0, "data/a/b", "v").unwrap();
    roundtrip(&xs);
    ok(&mut xs, g, Mkdir, 0, &["data/m"]);
    roundtrip(&xs);
    ok(&mut xs, g, SetPerms, 0, &["data/m", "n1", "r0", "b32757"]);
    roundtrip(&xs);
    ok(&mut xs, g, Rm, 0, &["data/a"]);
    roundtrip(&xs);
    ok(&mut xs, g, Watch, 0, &["data", "rel"]);
    ok(&mut xs, d0, Watch, 0, &["@releaseDomain", "abs", "1"]);
    roundtrip(&xs);
    // Open transactions with private changes, deletions and deferred events.
    let tx: u32 = list(&ok(&mut xs, g, TransactionStart, 0, &[""]))[0].parse().unwrap();
    write(&mut xs, g, tx, "data/t/x", "1").unwrap();
    ok(&mut xs, g, Rm, tx, &["data/m"]);
    read(&mut xs, g, tx, "name").unwrap();
    let mut back = roundtrip(&xs);
    // Commit on both: same result, same events.
    assert_eq!(send(&mut xs, g, TransactionEnd, tx, &["T"]), send(&mut back, g, TransactionEnd, tx, &["T"]));
    assert_eq!(xs.to_bytes(), back.to_bytes());
    // Queued output (unread replies and events) survives.
    xs.process(g, &Message::with_strings(Read, 77, 0, &[b"name"]));
    write(&mut xs, d0, 0, "/local/domain/1/data/ev", "").unwrap();
    roundtrip(&xs);
    // Domains: introduced, shut down, targets, features, quotas.
    xs.introduce_domain(2, 5, 6).unwrap();
    ok(&mut xs, d0, SetTarget, 0, &["2", "1"]);
    xs.domain_shutdown(2);
    ok(&mut xs, d0, SetQuota, 0, &["1", "nodes", "50"]);
    ok(&mut xs, d0, SetFeature, 0, &["9", "1"]);
    roundtrip(&xs);
    xs.release_domain(2).unwrap();
    let mut back = roundtrip(&xs);
    let g2 = xs.introduce_domain(3, 1, 1).unwrap();
    let g2b = back.introduce_domain(3, 1, 1).unwrap();
    assert_eq!(g2, g2b, "connection ids continue after restore");
    same_behaviour(&mut xs, &mut back, &[d0, g, g2]);
}

#[test]
fn damaged_snapshots_are_refused() {
    let (mut xs, _d0, g) = with_guest(1);
    ok(&mut xs, g, Watch, 0, &["data", "t"]);
    let tx: u32 = list(&ok(&mut xs, g, TransactionStart, 0, &[""]))[0].parse().unwrap();
    write(&mut xs, g, tx, "data/x", "1").unwrap();
    let bytes = xs.to_bytes();
    assert!(matches!(Xenstore::from_bytes(b"nonsense"), Err(SnapshotError::BadMagic | SnapshotError::Truncated)));
    for cut in (0..bytes.len()).step_by(7) {
        assert!(Xenstore::from_bytes(&bytes[..cut]).is_err(), "prefix {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Xenstore::from_bytes(&longer).err(), Some(SnapshotError::Trailing(1)));
    let mut v = bytes.clone();
    v[8] = 9;
    assert_eq!(Xenstore::from_bytes(&v).err(), Some(SnapshotError::BadVersion(9)));
    // Random corruption: refused or restored into a consistent state, never a panic.
    let mut rng = super::fuzz::Rng::new(77);
    for _ in 0..3000 {
        let mut v = bytes.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(v.len() as u64) as usize;
            v[i] = rng.next() as u8;
        }
        if let Ok(x) = Xenstore::from_bytes(&v) {
            x.check().unwrap();
        }
    }
}
