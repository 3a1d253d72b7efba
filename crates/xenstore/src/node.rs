//! One node of the tree: a value, the names of its children and its permissions.

use crate::perms::Perms;

/// Generation value of a node that does not exist (`NO_GENERATION`).
pub const NO_GENERATION: u64 = u64::MAX;

/// A node. The path is the key in the store, not part of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Binary value (usually ASCII without a NUL).
    pub value: Vec<u8>,
    /// Child names in creation order, as xenstored keeps them.
    pub children: Vec<String>,
    pub perms: Perms,
    /// Changed on every write; conflict detection and `DIRECTORY_PART`'s gencnt.
    pub generation: u64,
}

impl Node {
    pub fn new(perms: Perms) -> Node {
        Node { value: Vec::new(), children: Vec::new(), perms, generation: 0 }
    }

    /// The size the `node-size` quota counts, computed as C xenstored does:
    /// a 16-byte header, 8 bytes per permission entry, the value and the
    /// NUL-terminated child names.
    pub fn acc_size(&self) -> usize {
        16 + 8 * self.perms.len() + self.value.len() + self.children_len()
    }

    /// Length of the NUL-separated child list (`childlen`).
    pub fn children_len(&self) -> usize {
        self.children.iter().map(|c| c.len() + 1).sum()
    }

    /// The child list as sent by `DIRECTORY`: each name NUL-terminated.
    pub fn children_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.children_len());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }

    pub fn has_child(&self, name: &str) -> bool {
        self.children.iter().any(|c| c == name)
    }

    pub fn add_child(&mut self, name: &str) {
        if !self.has_child(name) {
            self.children.push(name.to_string());
        }
    }

    pub fn remove_child(&mut self, name: &str) {
        self.children.retain(|c| c != name);
    }
}
