//! The committed tree: nodes by absolute path, the global generation counter and
//! the per-domain node counts the `nodes` quota is checked against.
//!
//! Like C xenstored the tree is a flat map keyed by path; each node lists its
//! children's names. The special watch paths `@introduceDomain` and
//! `@releaseDomain` are nodes too (they carry the permissions that decide who
//! receives those events) but are nobody's children.

use std::collections::{BTreeMap, HashMap};

use crate::node::Node;
use crate::path::{INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use crate::perms::{Access, Perm, Perms, DOMID_ANY};

/// The committed nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    nodes: HashMap<String, Node>,
    /// Last generation handed out.
    generation: u64,
    /// Number of nodes owned by each domain.
    owned: BTreeMap<u32, u32>,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// The tree xenstored starts with: `/`, `/tool`, `/tool/xenstored`, and the
    /// two special nodes, all owned by dom0 with no access for others except
    /// that every domain may watch `@releaseDomain`.
    pub fn new() -> Store {
        let mut s = Store::empty();
        let dom0 = || Perms::owned(0, Access::NONE);
        let mut root = Node::new(dom0());
        root.children.push("tool".into());
        let mut tool = Node::new(dom0());
        tool.children.push("xenstored".into());
        s.insert_new("/", root);
        s.insert_new("/tool", tool);
        s.insert_new("/tool/xenstored", Node::new(dom0()));
        let release =
            Perms::from_vec(vec![Perm::new(0, Access::NONE), Perm::new(DOMID_ANY, Access::READ)]).unwrap_or_else(dom0);
        s.insert_new(RELEASE_DOMAIN, Node::new(release));
        s.insert_new(INTRODUCE_DOMAIN, Node::new(dom0()));
        s
    }

    /// A store without any node (deserialisation builds on this).
    pub(crate) fn empty() -> Store {
        Store { nodes: HashMap::new(), generation: 0, owned: BTreeMap::new() }
    }

    fn insert_new(&mut self, path: &str, mut node: Node) {
        node.generation = self.next_generation();
        self.put(path.to_string(), node);
    }

    /// A new, never used generation.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The last generation handed out.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn set_generation(&mut self, g: u64) {
        self.generation = g;
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    /// Inserts or replaces a node, keeping the owner counts.
    pub fn put(&mut self, path: String, node: Node) {
        let owner = node.perms.owner();
        if let Some(old) = self.nodes.insert(path, node) {
            self.uncount(old.perms.owner());
        }
        *self.owned.entry(owner).or_insert(0) += 1;
    }

    /// Removes a node (not its children), keeping the owner counts.
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        self.uncount(old.perms.owner());
        Some(old)
    }

    fn uncount(&mut self, owner: u32) {
        if let Some(c) = self.owned.get_mut(&owner) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.owned.remove(&owner);
            }
        }
    }

    /// Number of nodes owned by `domid`.
    pub fn owned_by(&self, domid: u32) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Number of nodes, special nodes included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All paths, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// All nodes, in path order.
    pub fn iter_sorted(&self) -> Vec<(&str, &Node)> {
        let mut v: Vec<(&str, &Node)> = self.nodes.iter().map(|(k, n)| (k.as_str(), n)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Checks the invariants: the root exists, every child listed exists, every
    /// non-special node other than the root is listed by its parent, and the
    /// owner counts match a recount. Returns a description of the first problem.
    pub fn check(&self) -> Result<(), String> {
        if !self.nodes.contains_key("/") {
            return Err("no root".into());
        }
        let mut recount: BTreeMap<u32, u32> = BTreeMap::new();
        for (path, node) in &self.nodes {
            *recount.entry(node.perms.owner()).or_insert(0) += 1;
            if node.perms.is_empty() {
                return Err(format!("{path}: no permissions"));
            }
            for c in &node.children {
                let cp = crate::path::child(path, c);
                if !self.nodes.contains_key(&cp) {
                    return Err(format!("{path}: child {c} missing"));
                }
            }
            if path.starts_with('/') {
                if let Some(parent) = crate::path::parent(path) {
                    let listed = self.nodes.get(parent).is_some_and(|p| p.has_child(crate::path::basename(path)));
                    if !listed {
                        return Err(format!("{path}: not listed by its parent"));
                    }
                }
            }
            if node.generation > self.generation {
                return Err(format!("{path}: generation from the future"));
            }
        }
        if recount != self.owned {
            return Err(format!("owner counts {:?} != recount {:?}", self.owned, recount));
        }
        Ok(())
    }
}
