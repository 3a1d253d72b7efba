//! Quotas, with C xenstored's defaults (tools/xenstored/domain.c).
//!
//! Quotas bind unprivileged domains only; dom0 and the socket clients are
//! exempt. A value of 0 disables a quota, as in xenstored. Each domain starts
//! with a copy of the global values (`SET_QUOTA <domid>` changes one domain).
//!
//! Every quota allows exactly its value: a domain may own 1000 nodes, hold 128
//! watches, 10 transactions, 5 permission entries per node, a node of 2048
//! bytes and a path of 2048 bytes; the next one is refused. (C xenstored's
//! comparisons have varied by one between releases; the stated numbers are what
//! the documentation promises.) Refusals are answered with `ENOSPC`, except an
//! over-long path, which is `EINVAL` as in `canonicalize()`.

use crate::wire::XENSTORE_REL_PATH_MAX;

/// The quota values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quotas {
    /// Nodes a domain may own (`nodes`).
    pub nodes: u32,
    /// Watches per domain (`watches`).
    pub watches: u32,
    /// Replies queued but not yet read by the domain; past it the ring is not
    /// read any further (`outstanding`).
    pub outstanding: u32,
    /// Open transactions per domain (`transactions`).
    pub transactions: u32,
    /// Nodes one transaction may access (`transaction-nodes`).
    pub transaction_nodes: u32,
    /// Permission entries per node (`node-permissions`).
    pub node_permissions: u32,
    /// Length of a path below `/local/domain/<id>/` (`path-max`).
    pub path_max: u32,
    /// Size of a node as [`crate::node::Node::acc_size`] counts it (`node-size`).
    pub node_size: u32,
    /// Watch events queued for a connection before newer ones are dropped
    /// (`watch-events`; oxenstored's `quota-maxwatchevents`; C xenstored bounds
    /// them by memory and a 20 s expiry instead).
    pub watch_events: u32,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            nodes: 1000,
            watches: 128,
            outstanding: 20,
            transactions: 10,
            transaction_nodes: 1024,
            node_permissions: 5,
            path_max: XENSTORE_REL_PATH_MAX as u32,
            node_size: 2048,
            watch_events: 1024,
        }
    }
}

/// Names as `GET_QUOTA`/`SET_QUOTA` and `xenstore-control quota` spell them.
pub const QUOTA_NAMES: [&str; 9] = [
    "nodes",
    "watches",
    "outstanding",
    "transactions",
    "transaction-nodes",
    "node-permissions",
    "path-max",
    "node-size",
    "watch-events",
];

impl Quotas {
    /// No limits at all.
    pub fn unlimited() -> Quotas {
        Quotas {
            nodes: 0,
            watches: 0,
            outstanding: 0,
            transactions: 0,
            transaction_nodes: 0,
            node_permissions: 0,
            path_max: 0,
            node_size: 0,
            watch_events: 0,
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut u32> {
        Some(match name {
            "nodes" => &mut self.nodes,
            "watches" => &mut self.watches,
            "outstanding" => &mut self.outstanding,
            "transactions" => &mut self.transactions,
            "transaction-nodes" => &mut self.transaction_nodes,
            "node-permissions" => &mut self.node_permissions,
            "path-max" => &mut self.path_max,
            "node-size" => &mut self.node_size,
            "watch-events" => &mut self.watch_events,
            _ => return None,
        })
    }

    /// The value of the quota called `name`.
    pub fn get(&self, name: &str) -> Option<u32> {
        let mut copy = *self;
        copy.slot(name).map(|v| *v)
    }

    /// Sets the quota called `name`; false for an unknown name.
    pub fn set(&mut self, name: &str, value: u32) -> bool {
        match self.slot(name) {
            Some(v) => {
                *v = value;
                true
            }
            None => false,
        }
    }

    /// One line per quota, as `xenstore-control quota` prints them.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for name in QUOTA_NAMES {
            s.push_str(&format!("{name:<17}: {:>8}\n", self.get(name).unwrap_or(0)));
        }
        s
    }
}

/// Whether `value` goes past `limit` (0 means no limit).
pub fn exceeds(limit: u32, value: usize) -> bool {
    limit != 0 && value > limit as usize
}
