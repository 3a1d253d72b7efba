//! A fuzz-style property test using only std: random message streams, cut
//! into random chunks, through the decoder into the engine from three
//! connections (dom0 and two guests). Oracles: no panic, the store's
//! invariants and counters hold, replies and events never exceed the payload
//! limit, queues stay bounded.

use super::*;
use crate::default_tree::{create_domain_tree, DomainTree};
use crate::wire::{Decoder, XENSTORE_PAYLOAD_MAX};

/// xorshift64*.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/b",
    "/a/b/c",
    "/local/domain/1",
    "/local/domain/1/data/x",
    "/local/domain/2/data",
    "data/y",
    "data",
    "control/shutdown",
    "@releaseDomain",
    "@introduceDomain",
    "/tool",
    "bad//path",
    "/trailing/",
    "",
    "/a b",
    "x/y/z",
];
const WORDS: &[&str] = &[
    "", "T", "F", "0", "1", "2", "-1", "n0", "r1", "b2", "w1", "n1", "r32757", "x1", "4096", "99999", "print", "check",
];

fn random_message(rng: &mut Rng, txs: &[u32]) -> Message {
    let ty = match rng.below(20) {
        0 => rng.below(40) as u32,
        1 => rng.next() as u32,
        _ => [2, 11, 12, 13, 1, 22, 3, 14, 4, 5, 6, 7, 21, 10, 17, 8, 9, 18, 19, 0][rng.below(20) as usize],
    };
    let tx = match rng.below(4) {
        0 if !txs.is_empty() => txs[rng.below(txs.len() as u64) as usize],
        1 => rng.below(5) as u32,
        _ => 0,
    };
    let mut payload = Vec::new();
    let n = rng.below(4);
    for i in 0..n {
        let s = if i == 0 && rng.below(4) != 0 { rng.pick(PATHS) } else { rng.pick(WORDS) };
        payload.extend_from_slice(s.as_bytes());
        if rng.below(10) != 0 {
            payload.push(0);
        }
    }
    if rng.below(8) == 0 {
        let extra = rng.below(300) as usize;
        payload.extend((0..extra).map(|_| rng.next() as u8));
    }
    Message { ty, req_id: rng.next() as u32, tx_id: tx, payload }
}

/// Checks the size limit; returns the number of successful replies.
fn check_output(out: &[Message]) -> usize {
    let mut ok = 0;
    for m in out {
        assert!(m.payload.len() <= XENSTORE_PAYLOAD_MAX);
        if m.ty != crate::wire::MsgType::Error as u32 && m.ty != crate::wire::MsgType::WatchEvent as u32 {
            ok += 1;
        }
    }
    ok
}

#[test]
fn random_streams_through_decoder_and_engine() {
    let iterations: usize = if cfg!(debug_assertions) { 30_000 } else { 1_000_000 };
    let mut rng = Rng::new(0x0123_4567_89ab_cdef);
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    create_domain_tree(&mut xs, &DomainTree::new(1, "one", 1024)).unwrap();
    create_domain_tree(&mut xs, &DomainTree::new(2, "two", 1024)).unwrap();
    let g1 = xs.introduce_domain(1, 1, 1).unwrap();
    let g2 = xs.introduce_domain(2, 1, 2).unwrap();
    let mut conns = [d0, g1, g2];
    let mut successes = 0usize;
    let mut decoders = [Decoder::new(), Decoder::new(), Decoder::new()];
    let mut pending: [Vec<u8>; 3] = Default::default();
    let mut processed = 0usize;
    for i in 0..iterations {
        let k = rng.below(3) as usize;
        let c = conns[k];
        let txs = xs.connection(c).map(|c| c.transaction_ids()).unwrap_or_default();
        let mut bytes = random_message(&mut rng, &txs).to_bytes();
        if rng.below(200) == 0 {
            // A hostile length: the decoder must refuse it without allocating.
            bytes[12..16].copy_from_slice(&(rng.next() as u32 | 0x1000_0000).to_le_bytes());
        }
        pending[k].extend_from_slice(&bytes);
        while !pending[k].is_empty() {
            let cut = (rng.below(64) as usize + 1).min(pending[k].len());
            let chunk: Vec<u8> = pending[k].drain(..cut).collect();
            let mut msgs = Vec::new();
            if decoders[k].feed_all(&chunk, &mut msgs).is_err() {
                decoders[k].reset();
                pending[k].clear();
                xs.reset_connection(c);
                break;
            }
            for m in msgs {
                xs.process(c, &m);
                processed += 1;
            }
        }
        for (k, c) in conns.iter_mut().enumerate() {
            if rng.below(3) != 0 {
                successes += check_output(&xs.drain(*c));
            }
            match xs.connection(*c) {
                Some(conn) => assert!(conn.outbox_len() <= 5000, "queue bounded"),
                None => {
                    // Released (or never introduced) by a random RELEASE: bring it back.
                    *c = xs.introduce_domain(k as u32, 1, 1).unwrap();
                    decoders[k].reset();
                    pending[k].clear();
                }
            }
        }
        if i % 1000 == 0 {
            xs.check().unwrap();
        }
    }
    xs.check().unwrap();
    assert!(processed > iterations / 2);
    assert!(successes > iterations / 10, "{successes} successful replies");
    let snapshot = xs.to_bytes();
    let restored = Xenstore::from_bytes(&snapshot).unwrap();
    assert_eq!(restored.to_bytes(), snapshot);
}
