//! The directory (*danh bạ*): the nodes of the tree and the agencies each one serves,
//! versioned and signed by the national gateway, and the tree routing computed from it.
//!
//! The hierarchy is data: a node's `level` is free text and the tree may be two tiers deep
//! (province → commune) in one province and three (province → district → commune) in
//! another. [`Directory`] is the signed value as it travels and is cached; a
//! [`DirectoryIndex`], built once from a valid directory, answers lookups in O(1) and
//! routes each recipient in O(depth of the tree).

use std::collections::HashMap;

use crate::id::Agency;
use crate::{AgencyCode, Error, NodeId, Signature, UnixMillis};

/// A node of the tree: the national gateway, a province, a district or a commune.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    pub id: NodeId,
    /// Cấp — free text such as `national`, `province`, `district`, `commune`. Routing never
    /// looks at it: the depth of the tree is given by `parent`, not by levels.
    pub level: String,
    /// The node one step closer to the national gateway; `None` only for the root.
    pub parent: Option<NodeId>,
    /// Where the node's relay API listens, `https://host:port`; empty for a node that
    /// accepts no inbound connections (a commune behind NAT dials its parent instead).
    /// Its TLS identity is `urn:lienthong:node:<id>`.
    pub endpoint: String,
}

/// An agency and the node that serves it (its home).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgencyEntry {
    pub agency: Agency,
    /// The node whose agency API this agency connects to and whose inbox holds its mail.
    pub home: NodeId,
}

/// The directory as the national gateway signs it and every node caches it.
///
/// A directory received from anywhere must be checked with [`Directory::validate`] (or
/// [`DirectoryIndex::new`], which validates) and its signature verified over
/// [`crate::canonical::directory_bytes`] before use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    /// Increases with every directory the national gateway issues; a node never replaces
    /// its cached directory with one of a lower version.
    pub version: u64,
    pub issued_at: UnixMillis,
    /// Exactly one node has no parent: the national gateway.
    pub nodes: Vec<NodeEntry>,
    pub agencies: Vec<AgencyEntry>,
    /// The nodes that bridge to the national platform (one per platform account); empty
    /// when lienthong reaches no agency outside this directory.
    pub bridges: Vec<BridgeEntry>,
    /// The national gateway's signature over [`crate::canonical::directory_bytes`].
    pub signature: Option<Signature>,
}

/// A node that is one more "system" on the national document-exchange platform: it sends
/// there what is addressed outside the directory and imports what the platform holds for
/// our agencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeEntry {
    pub node: NodeId,
    /// The agencies of this directory the bridge's platform account was registered for:
    /// their documents to the platform leave through it. Empty: every agency no other
    /// bridge lists.
    pub agencies: Vec<AgencyCode>,
}

impl Directory {
    /// Checks the directory is a tree that routing can use: unique node ids, exactly one
    /// root, every parent present, no cycles; unique agency codes and aliases (an alias is
    /// never another agency's code); every agency's home present.
    pub fn validate(&self) -> Result<(), Error> {
        Tree::build(self).map(|_| ())
    }
}

/// Where a document for one recipient goes next from a given node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The recipient is homed at this node: deliver to its inbox.
    Local,
    /// Hand the document to this neighbour (a child whose subtree holds the recipient's
    /// home, or else the parent).
    Via(NodeId),
}

/// How a multi-recipient document fans out at one node: the recipients delivered here, one
/// group per next hop, and those the directory does not know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// Recipients homed at this node, in input order.
    pub local: Vec<AgencyCode>,
    /// One entry per next hop, in order of first appearance; recipients in input order.
    pub via: Vec<(NodeId, Vec<AgencyCode>)>,
    /// Recipients with no entry in the directory, in input order.
    pub unknown: Vec<AgencyCode>,
}

/// A validated directory with the indexes lookups and routing need. Build it once per
/// directory version and share it (it is immutable).
#[derive(Clone, Debug)]
pub struct DirectoryIndex {
    directory: Directory,
    tree: Tree,
}

/// Positions into `Directory::nodes` and `Directory::agencies`.
#[derive(Clone, Debug)]
struct Tree {
    root: usize,
    node_by_id: HashMap<NodeId, usize>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// Distance from the root; the root is 0.
    depth: Vec<u32>,
    agency_by_code: HashMap<AgencyCode, usize>,
    /// Trimmed alias → agency.
    agency_by_alias: HashMap<String, usize>,
    /// Agency → its home node.
    home: Vec<usize>,
    /// Node → the agencies homed there, in directory order.
    homed: Vec<Vec<usize>>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidDirectory(msg)
}

impl Tree {
    fn build(d: &Directory) -> Result<Tree, Error> {
        let n = d.nodes.len();
        let mut node_by_id = HashMap::with_capacity(n);
        for (i, node) in d.nodes.iter().enumerate() {
            if node_by_id.insert(node.id.clone(), i).is_some() {
                return Err(invalid(format!(
                    "node {} is listed more than once",
                    node.id
                )));
            }
            if node.id.as_str() == crate::external::PLATFORM_HOP {
                return Err(invalid(format!(
                    "node id {} is reserved for the national platform's outbox at a bridge",
                    node.id
                )));
            }
            if !node.endpoint.is_empty() && !node.endpoint.starts_with("https://") {
                return Err(invalid(format!(
                    "node {} has endpoint {:?}; an endpoint is empty or an https:// URL",
                    node.id, node.endpoint
                )));
            }
        }

        let mut parent = Vec::with_capacity(n);
        let mut root = None;
        for node in &d.nodes {
            match &node.parent {
                None => match root {
                    None => root = Some(node_by_id[&node.id]),
                    Some(r) => {
                        return Err(invalid(format!(
                            "two root nodes, {} and {}: exactly one node (the national gateway) has no parent",
                            d.nodes[r].id, node.id
                        )));
                    }
                },
                Some(p) if !node_by_id.contains_key(p) => {
                    return Err(invalid(format!(
                        "node {} has parent {p}, which is not in the directory",
                        node.id
                    )));
                }
                Some(_) => {}
            }
            parent.push(node.parent.as_ref().map(|p| node_by_id[p]));
        }
        let root = root.ok_or_else(|| {
            invalid(
                "no root node: exactly one node (the national gateway) must have no parent".into(),
            )
        })?;

        // Depths, walking each node up to the first node of known depth; a walk that comes
        // back to a node already on it is a cycle.
        const UNKNOWN: u32 = u32::MAX;
        let mut depth = vec![UNKNOWN; n];
        depth[root] = 0;
        let mut on_walk = vec![false; n];
        let mut walk: Vec<usize> = Vec::new();
        for start in 0..n {
            let mut at = start;
            while depth[at] == UNKNOWN {
                if on_walk[at] {
                    let from = walk.iter().position(|&w| w == at).unwrap_or(0);
                    let mut ids: Vec<&str> = walk[from..]
                        .iter()
                        .map(|&w| d.nodes[w].id.as_str())
                        .collect();
                    ids.push(d.nodes[at].id.as_str());
                    return Err(invalid(format!(
                        "nodes form a cycle ({}) that never reaches the root {}",
                        ids.join(" -> parent "),
                        d.nodes[root].id
                    )));
                }
                on_walk[at] = true;
                walk.push(at);
                // Only the root has no parent, and the root's depth is known.
                at = parent[at].unwrap_or(root);
            }
            let mut next = depth[at];
            for &w in walk.iter().rev() {
                next += 1;
                depth[w] = next;
                on_walk[w] = false;
            }
            walk.clear();
        }

        let mut children = vec![Vec::new(); n];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }

        let mut agency_by_code = HashMap::with_capacity(d.agencies.len());
        let mut home = Vec::with_capacity(d.agencies.len());
        let mut homed = vec![Vec::new(); n];
        for (i, entry) in d.agencies.iter().enumerate() {
            let code = &entry.agency.code;
            if agency_by_code.insert(code.clone(), i).is_some() {
                return Err(invalid(format!("agency {code} is listed more than once")));
            }
            let &h = node_by_id.get(&entry.home).ok_or_else(|| {
                invalid(format!(
                    "agency {code} has home node {}, which is not in the directory",
                    entry.home
                ))
            })?;
            home.push(h);
            homed[h].push(i);
        }

        let mut agency_by_alias: HashMap<String, usize> = HashMap::new();
        for (i, entry) in d.agencies.iter().enumerate() {
            let code = &entry.agency.code;
            for alias in &entry.agency.aliases {
                let alias = alias.trim();
                if alias.is_empty() {
                    return Err(invalid(format!("agency {code} has an empty alias")));
                }
                if let Some(other) = AgencyCode::parse(alias)
                    .ok()
                    .and_then(|c| agency_by_code.get(&c))
                    .filter(|&&o| o != i)
                {
                    return Err(invalid(format!(
                        "alias {alias:?} of agency {code} is the code of agency {}",
                        d.agencies[*other].agency.code
                    )));
                }
                if let Some(&other) = agency_by_alias.get(alias)
                    && other != i
                {
                    return Err(invalid(format!(
                        "alias {alias:?} names both agency {} and agency {code}",
                        d.agencies[other].agency.code
                    )));
                }
                agency_by_alias.insert(alias.to_string(), i);
            }
            if let Some(id) = &entry.agency.edxml_id
                && !entry.agency.aliases.iter().any(|a| a.trim() == id.trim())
            {
                return Err(invalid(format!(
                    "edxml_id {id:?} of agency {code} is not one of its aliases; list it in aliases too"
                )));
            }
        }

        let mut bridged = std::collections::HashSet::new();
        for b in &d.bridges {
            if !node_by_id.contains_key(&b.node) {
                return Err(invalid(format!(
                    "bridge {} is not a node of the directory",
                    b.node
                )));
            }
            if !bridged.insert(&b.node) {
                return Err(invalid(format!(
                    "bridge {} is listed more than once",
                    b.node
                )));
            }
            if let Some(a) = b.agencies.iter().find(|a| !agency_by_code.contains_key(*a)) {
                return Err(invalid(format!(
                    "bridge {} is registered for agency {a}, which is not in the directory",
                    b.node
                )));
            }
        }

        Ok(Tree {
            root,
            node_by_id,
            parent,
            children,
            depth,
            agency_by_code,
            agency_by_alias,
            home,
            homed,
        })
    }

    /// The next hop from node `here` towards node `to`, or `None` if `here` is `to`.
    /// O(depth): climbs from `to` to the level just below `here`.
    fn next_hop(&self, here: usize, to: usize) -> Option<usize> {
        if here == to {
            return None;
        }
        let below = self.depth[here] + 1;
        let mut at = to;
        while self.depth[at] > below {
            at = self.parent[at]?;
        }
        if self.depth[at] == below && self.parent[at] == Some(here) {
            Some(at)
        } else {
            // Not below `here`, so `here` is not the root (everything is below the root).
            self.parent[here]
        }
    }
}

/// Read access to the indexed directory (`index.version`, `index.nodes`, …): the index is
/// the directory plus lookups, and never lets it change.
impl std::ops::Deref for DirectoryIndex {
    type Target = Directory;
    fn deref(&self) -> &Directory {
        &self.directory
    }
}

impl TryFrom<Directory> for DirectoryIndex {
    type Error = Error;
    fn try_from(directory: Directory) -> Result<Self, Error> {
        DirectoryIndex::new(directory)
    }
}

impl DirectoryIndex {
    /// Validates `directory` and indexes it.
    pub fn new(directory: Directory) -> Result<Self, Error> {
        let tree = Tree::build(&directory)?;
        Ok(DirectoryIndex { directory, tree })
    }

    /// Gives back the directory, e.g. to cache or serve it.
    pub fn into_directory(self) -> Directory {
        self.directory
    }

    fn node_at(&self, i: usize) -> &NodeEntry {
        &self.directory.nodes[i]
    }

    fn index_of(&self, id: &NodeId) -> Result<usize, Error> {
        self.tree
            .node_by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::UnknownNode(id.clone()))
    }

    /// The national gateway.
    pub fn root(&self) -> &NodeEntry {
        self.node_at(self.tree.root)
    }

    pub fn node(&self, id: &NodeId) -> Option<&NodeEntry> {
        self.tree.node_by_id.get(id).map(|&i| self.node_at(i))
    }

    pub fn agency(&self, code: &AgencyCode) -> Option<&AgencyEntry> {
        self.tree
            .agency_by_code
            .get(code)
            .map(|&i| &self.directory.agencies[i])
    }

    /// The node that serves `code`.
    pub fn home_of(&self, code: &AgencyCode) -> Option<&NodeId> {
        self.agency(code).map(|a| &a.home)
    }

    /// The agency a DMS means by `input`: a QĐ 20/2020 code in the directory, or else an
    /// alias (a legacy code such as `01.02.G22` or a local id), compared after trimming.
    pub fn resolve(&self, input: &str) -> Option<AgencyCode> {
        let input = input.trim();
        AgencyCode::parse(input)
            .ok()
            .and_then(|c| self.tree.agency_by_code.get(&c))
            .or_else(|| self.tree.agency_by_alias.get(input))
            .map(|&i| self.directory.agencies[i].agency.code.clone())
    }

    /// The identifier edXML written for a DMS gives agency `code`, when its entry sets
    /// one ([`Agency::edxml_id`]); otherwise messages carry the code.
    pub fn edxml_id(&self, code: &AgencyCode) -> Option<&str> {
        self.agency(code)
            .and_then(|a| a.agency.edxml_id.as_deref())
            .map(str::trim)
    }

    /// Whether `node` is one of the directory's bridges to the national platform.
    pub fn is_bridge(&self, node: &NodeId) -> bool {
        self.directory.bridges.iter().any(|b| &b.node == node)
    }

    /// The bridge a message from `sender` to the national platform leaves through: the one
    /// registered for `sender`, else the first registered for no agency in particular,
    /// else none.
    pub fn bridge_for(&self, sender: &AgencyCode) -> Option<&NodeId> {
        let bridges = &self.directory.bridges;
        bridges
            .iter()
            .find(|b| b.agencies.contains(sender))
            .or_else(|| bridges.iter().find(|b| b.agencies.is_empty()))
            .map(|b| &b.node)
    }

    /// The agencies whose home is `node`, in directory order; none for an unknown node.
    pub fn agencies_homed_at(&self, node: &NodeId) -> impl Iterator<Item = &AgencyEntry> + '_ {
        self.tree
            .node_by_id
            .get(node)
            .into_iter()
            .flat_map(|&n| &self.tree.homed[n])
            .map(|&i| &self.directory.agencies[i])
    }

    /// The parent of `node`; `None` for the root and for an unknown node.
    pub fn parent_of(&self, node: &NodeId) -> Option<&NodeId> {
        self.node(node).and_then(|n| n.parent.as_ref())
    }

    /// The children of `node`, in directory order; none for a leaf or an unknown node.
    pub fn children_of(&self, node: &NodeId) -> impl Iterator<Item = &NodeId> + '_ {
        self.tree
            .node_by_id
            .get(node)
            .into_iter()
            .flat_map(|&n| &self.tree.children[n])
            .map(|&c| &self.node_at(c).id)
    }

    /// Whether `a` and `b` are linked in the tree (one is the other's parent): the only
    /// peers a node's relay API accepts.
    pub fn is_neighbour(&self, a: &NodeId, b: &NodeId) -> bool {
        self.parent_of(a) == Some(b) || self.parent_of(b) == Some(a)
    }

    /// The nodes a document travels through from `from` to `to`, both included; empty if
    /// either node is unknown.
    pub fn path(&self, from: &NodeId, to: &NodeId) -> Vec<NodeId> {
        let (Ok(mut a), Ok(mut b)) = (self.index_of(from), self.index_of(to)) else {
            return Vec::new();
        };
        let t = &self.tree;
        let mut up = Vec::new();
        let mut down = Vec::new();
        while t.depth[a] > t.depth[b] {
            up.push(a);
            a = t.parent[a].unwrap_or(t.root);
        }
        while t.depth[b] > t.depth[a] {
            down.push(b);
            b = t.parent[b].unwrap_or(t.root);
        }
        while a != b {
            up.push(a);
            down.push(b);
            a = t.parent[a].unwrap_or(t.root);
            b = t.parent[b].unwrap_or(t.root);
        }
        up.push(a);
        up.into_iter()
            .chain(down.into_iter().rev())
            .map(|i| self.node_at(i).id.clone())
            .collect()
    }

    /// The neighbour of `here` on the way to node `to`: `None` if `to` is `here` or
    /// either is unknown. A node `to` is "behind" the link to that neighbour.
    pub fn next_hop_towards(&self, here: &NodeId, to: &NodeId) -> Option<NodeId> {
        self.path(here, to).into_iter().nth(1)
    }

    /// Where a document for `recipient` goes next from node `here` (DESIGN §2): locally if
    /// `here` is its home, down to the child whose subtree holds the home, else up to the
    /// parent.
    pub fn route(&self, here: &NodeId, recipient: &AgencyCode) -> Result<Route, Error> {
        let h = self.index_of(here)?;
        self.route_from(h, recipient)
    }

    fn route_from(&self, here: usize, recipient: &AgencyCode) -> Result<Route, Error> {
        let &a = self
            .tree
            .agency_by_code
            .get(recipient)
            .ok_or_else(|| Error::UnknownRecipient(recipient.clone()))?;
        let home = self.tree.home[a];
        if home == here {
            return Ok(Route::Local);
        }
        match self.tree.next_hop(here, home) {
            Some(next) => Ok(Route::Via(self.node_at(next).id.clone())),
            // Unreachable for an index built by `new`: every node is below the root.
            None => Err(Error::InvalidDirectory(format!(
                "no route from {} to {recipient} at {}",
                self.node_at(here).id,
                self.node_at(home).id
            ))),
        }
    }

    /// Splits `recipients` by next hop from `here`: the fan-out of one document at one node.
    /// A recipient listed twice is planned once. Fails only if `here` is not in the
    /// directory.
    pub fn plan(&self, here: &NodeId, recipients: &[AgencyCode]) -> Result<RoutePlan, Error> {
        let h = self.index_of(here)?;
        let mut plan = RoutePlan::default();
        let mut slot_of_hop: HashMap<NodeId, usize> = HashMap::new();
        let mut seen = std::collections::HashSet::with_capacity(recipients.len());
        for r in recipients {
            if !seen.insert(r) {
                continue;
            }
            match self.route_from(h, r) {
                Ok(Route::Local) => plan.local.push(r.clone()),
                Ok(Route::Via(next)) => {
                    let slot = *slot_of_hop.entry(next.clone()).or_insert_with(|| {
                        plan.via.push((next, Vec::new()));
                        plan.via.len() - 1
                    });
                    plan.via[slot].1.push(r.clone());
                }
                Err(Error::UnknownRecipient(_)) => plan.unknown.push(r.clone()),
                Err(e) => return Err(e),
            }
        }
        Ok(plan)
    }
}

/// The agency an identifier from a DMS names (`From`, `To`, `--to` …): what `directory`
/// resolves it to (its code or one of its aliases), or else the QĐ 20/2020 code it is,
/// known or not (whether it exists is the node's decision, with its directory). Without a
/// directory (a single node serves its agencies from its own configuration) only codes
/// are placed. The error says why `id` names no agency.
pub fn place(directory: Option<&DirectoryIndex>, id: &str) -> Result<AgencyCode, String> {
    if let Some(code) = directory.and_then(|d| d.resolve(id)) {
        return Ok(code);
    }
    AgencyCode::parse(id).map_err(|e| {
        let reason = match e {
            Error::MalformedAgencyCode { reason, .. } => reason,
            _ => "it is not an agency code",
        };
        match directory {
            Some(d) => format!(
                "not a QĐ 20/2020 code ({reason}), and no agency of directory version {} has it as an alias",
                d.version
            ),
            None => format!(
                "not a QĐ 20/2020 code ({reason}), and without the directory lienthong cannot tell which agency it names"
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn node(nid: &str, level: &str, parent: Option<&str>) -> NodeEntry {
        NodeEntry {
            id: id(nid),
            level: level.into(),
            parent: parent.map(id),
            endpoint: format!("https://{}.example:7443", nid.to_lowercase()),
        }
    }

    fn agency(c: &str, home: &str, aliases: &[&str]) -> AgencyEntry {
        AgencyEntry {
            agency: Agency {
                code: code(c),
                name: format!("Cơ quan {c}"),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                edxml_id: None,
            },
            home: id(home),
        }
    }

    fn directory(nodes: Vec<NodeEntry>, agencies: Vec<AgencyEntry>) -> Directory {
        Directory {
            version: 1,
            issued_at: 1_700_000_000_000,
            nodes,
            agencies,
            bridges: Vec::new(),
            signature: None,
        }
    }

    /// national → H41, H29 → two communes each (C1, C2). Agencies: the Government Office at
    /// national, the UBND tỉnh at each province, one UBND xã per commune.
    fn two_tier() -> Directory {
        let mut nodes = vec![node("national", "national", None)];
        let mut agencies = vec![agency("000.00.00.G22", "national", &["01.02.G22"])];
        for p in ["H41", "H29"] {
            nodes.push(node(p, "province", Some("national")));
            agencies.push(agency(&format!("000.00.00.{p}"), p, &[]));
            for (i, c) in ["C1", "C2"].into_iter().enumerate() {
                let n = format!("{p}-{c}");
                nodes.push(node(&n, "commune", Some(p)));
                agencies.push(agency(
                    &format!("00{}.00.00.{p}", i + 1),
                    &n,
                    &[&format!("xa-{}", n.to_lowercase())],
                ));
            }
        }
        directory(nodes, agencies)
    }

    /// national → H41, H29 → two districts each (D1, D2) → two communes each (C1, C2).
    /// Agency codes: province 000.00.00.Hxx, district 000.0d.00.Hxx, commune 00c.0d.00.Hxx.
    fn three_tier() -> Directory {
        let mut nodes = vec![node("national", "national", None)];
        let mut agencies = vec![agency("000.00.00.G22", "national", &[])];
        for p in ["H41", "H29"] {
            nodes.push(node(p, "province", Some("national")));
            agencies.push(agency(&format!("000.00.00.{p}"), p, &[]));
            for d in 1..=2 {
                let dn = format!("{p}-D{d}");
                nodes.push(node(&dn, "district", Some(p)));
                agencies.push(agency(&format!("000.0{d}.00.{p}"), &dn, &[]));
                for c in 1..=2 {
                    let cn = format!("{dn}-C{c}");
                    nodes.push(node(&cn, "commune", Some(&dn)));
                    agencies.push(agency(&format!("00{c}.0{d}.00.{p}"), &cn, &[]));
                }
            }
        }
        directory(nodes, agencies)
    }

    fn index(d: Directory) -> DirectoryIndex {
        DirectoryIndex::new(d).unwrap()
    }

    fn via(s: &str) -> Route {
        Route::Via(id(s))
    }

    fn ids(v: &[&str]) -> Vec<NodeId> {
        v.iter().map(|s| id(s)).collect()
    }

    #[test]
    fn two_tier_routes_between_communes_through_the_tree() {
        let x = index(two_tier());
        // Same province: up to the province, then down.
        assert_eq!(
            x.route(&id("H41-C1"), &code("002.00.00.H41")).unwrap(),
            via("H41")
        );
        assert_eq!(
            x.route(&id("H41"), &code("002.00.00.H41")).unwrap(),
            via("H41-C2")
        );
        assert_eq!(
            x.route(&id("H41-C2"), &code("002.00.00.H41")).unwrap(),
            Route::Local
        );
        // Across provinces: up, up, down, down.
        let to = code("001.00.00.H29");
        assert_eq!(x.route(&id("H41-C1"), &to).unwrap(), via("H41"));
        assert_eq!(x.route(&id("H41"), &to).unwrap(), via("national"));
        assert_eq!(x.route(&id("national"), &to).unwrap(), via("H29"));
        assert_eq!(x.route(&id("H29"), &to).unwrap(), via("H29-C1"));
        assert_eq!(
            x.path(&id("H41-C1"), &id("H29-C1")),
            ids(&["H41-C1", "H41", "national", "H29", "H29-C1"])
        );
        // A commune sending to the Government Office goes up.
        assert_eq!(
            x.route(&id("H29-C2"), &code("000.00.00.G22")).unwrap(),
            via("H29")
        );
    }

    #[test]
    fn three_tier_routes_within_and_across_districts_and_provinces() {
        let x = index(three_tier());
        // Same district.
        let to = code("002.01.00.H41");
        assert_eq!(x.route(&id("H41-D1-C1"), &to).unwrap(), via("H41-D1"));
        assert_eq!(x.route(&id("H41-D1"), &to).unwrap(), via("H41-D1-C2"));
        assert_eq!(
            x.path(&id("H41-D1-C1"), &id("H41-D1-C2")),
            ids(&["H41-D1-C1", "H41-D1", "H41-D1-C2"])
        );
        // Across districts of one province: the province turns it down.
        let to = code("001.02.00.H41");
        assert_eq!(x.route(&id("H41-D1-C1"), &to).unwrap(), via("H41-D1"));
        assert_eq!(x.route(&id("H41-D1"), &to).unwrap(), via("H41"));
        assert_eq!(x.route(&id("H41"), &to).unwrap(), via("H41-D2"));
        assert_eq!(x.route(&id("H41-D2"), &to).unwrap(), via("H41-D2-C1"));
        // Across provinces.
        let to = code("002.02.00.H29");
        assert_eq!(x.route(&id("H41"), &to).unwrap(), via("national"));
        assert_eq!(x.route(&id("national"), &to).unwrap(), via("H29"));
        assert_eq!(x.route(&id("H29"), &to).unwrap(), via("H29-D2"));
        assert_eq!(
            x.path(&id("H41-D1-C1"), &id("H29-D2-C2")),
            ids(&[
                "H41-D1-C1",
                "H41-D1",
                "H41",
                "national",
                "H29",
                "H29-D2",
                "H29-D2-C2"
            ])
        );
        // A node that is not on the way still routes sensibly: a sibling district goes up.
        assert_eq!(
            x.route(&id("H41-D2"), &code("001.01.00.H41")).unwrap(),
            via("H41")
        );
        assert_eq!(x.path(&id("H41"), &id("H41")), ids(&["H41"]));
        assert_eq!(
            x.path(&id("national"), &id("H29-D1")),
            ids(&["national", "H29", "H29-D1"])
        );
    }

    #[test]
    fn a_province_fans_out_where_the_paths_split() {
        let x = index(three_tier());
        let recipients = [
            code("001.01.00.H41"), // H41-D1-C1
            code("000.00.00.H41"), // local
            code("001.02.00.H41"), // H41-D2-C1
            code("002.01.00.H41"), // H41-D1-C2
            code("001.01.00.H29"), // other province
            code("009.09.00.H99"), // not in the directory
            code("000.00.00.G22"), // national
            code("001.01.00.H41"), // listed twice
        ];
        let plan = x.plan(&id("H41"), &recipients).unwrap();
        assert_eq!(plan.local, vec![code("000.00.00.H41")]);
        assert_eq!(
            plan.via,
            vec![
                (
                    id("H41-D1"),
                    vec![code("001.01.00.H41"), code("002.01.00.H41")]
                ),
                (id("H41-D2"), vec![code("001.02.00.H41")]),
                (
                    id("national"),
                    vec![code("001.01.00.H29"), code("000.00.00.G22")]
                ),
            ]
        );
        assert_eq!(plan.unknown, vec![code("009.09.00.H99")]);

        // In the two-tier tree a province fans out straight to its communes.
        let x = index(two_tier());
        let plan = x
            .plan(&id("H29"), &[code("002.00.00.H29"), code("001.00.00.H29")])
            .unwrap();
        assert_eq!(
            plan.via,
            vec![
                (id("H29-C2"), vec![code("002.00.00.H29")]),
                (id("H29-C1"), vec![code("001.00.00.H29")]),
            ]
        );
        assert!(plan.local.is_empty() && plan.unknown.is_empty());
    }

    #[test]
    fn rejects_unknown_recipient_naming_the_code() {
        let x = index(two_tier());
        let err = x.route(&id("H41"), &code("009.00.00.H99")).unwrap_err();
        assert_eq!(err, Error::UnknownRecipient(code("009.00.00.H99")));
        assert!(err.to_string().contains("009.00.00.H99"), "{err}");
    }

    #[test]
    fn rejects_routing_from_an_unknown_node() {
        let x = index(two_tier());
        let err = x.route(&id("H01"), &code("000.00.00.H41")).unwrap_err();
        assert_eq!(err, Error::UnknownNode(id("H01")));
        assert!(err.to_string().contains("H01"), "{err}");
        assert!(x.plan(&id("H01"), &[]).is_err());
        assert!(x.path(&id("H01"), &id("H41")).is_empty());
    }

    #[test]
    fn resolves_codes_and_aliases() {
        let x = index(two_tier());
        assert_eq!(x.resolve("01.02.G22"), Some(code("000.00.00.G22")));
        assert_eq!(x.resolve(" 000.00.00.g22 "), Some(code("000.00.00.G22")));
        assert_eq!(x.resolve("xa-h41-c2"), Some(code("002.00.00.H41")));
        assert_eq!(x.resolve("000.00.00.H99"), None);
        assert_eq!(x.resolve("nobody"), None);
    }

    #[test]
    fn places_codes_aliases_and_says_why_an_identifier_names_no_agency() {
        let mut d = two_tier();
        d.agencies[3].agency.aliases = vec!["28.22.H17".into(), "vxp.saas.03".into()];
        d.agencies[3].agency.edxml_id = Some("28.22.H17".into());
        let x = index(d);
        let xa = code("002.00.00.H41");
        assert_eq!(place(Some(&x), "28.22.H17"), Ok(xa.clone()));
        assert_eq!(place(Some(&x), " vxp.saas.03 "), Ok(xa.clone()));
        assert_eq!(x.edxml_id(&xa), Some("28.22.H17"));
        assert_eq!(x.edxml_id(&code("001.00.00.H41")), None);
        // A code the directory does not list is still a code: the node decides.
        assert_eq!(place(Some(&x), "009.00.00.H99"), Ok(code("009.00.00.H99")));
        assert_eq!(place(None, "000.00.00.h41"), Ok(code("000.00.00.H41")));
        let why = place(Some(&x), "vxp.saas.99").unwrap_err();
        assert_eq!(
            why,
            "not a QĐ 20/2020 code (it must have exactly four parts), and no agency of directory version 1 has it as an alias"
        );
        let why = place(None, "28.22.H17").unwrap_err();
        assert!(
            why.contains("without the directory lienthong cannot tell which agency it names"),
            "{why}"
        );
    }

    #[test]
    fn an_edxml_id_must_be_one_of_the_agencys_aliases() {
        let mut d = two_tier();
        d.agencies[1].agency.edxml_id = Some("28.22.H41".into());
        let msg = invalid_message(d);
        assert!(
            msg.contains(
                r#"edxml_id "28.22.H41" of agency 000.00.00.H41 is not one of its aliases"#
            ),
            "{msg}"
        );
        let mut d = two_tier();
        d.agencies[1].agency.aliases.push("28.22.H41".into());
        d.agencies[1].agency.edxml_id = Some("28.22.H41".into());
        d.validate().unwrap();
    }

    #[test]
    fn looks_up_nodes_agencies_and_neighbours() {
        let x = index(two_tier());
        assert_eq!(x.root().id, id("national"));
        assert_eq!(x.node(&id("H41")).unwrap().level, "province");
        assert_eq!(x.home_of(&code("001.00.00.H29")), Some(&id("H29-C1")));
        assert_eq!(x.parent_of(&id("H29-C1")), Some(&id("H29")));
        assert_eq!(x.parent_of(&id("national")), None);
        assert_eq!(
            x.children_of(&id("national")).cloned().collect::<Vec<_>>(),
            ids(&["H41", "H29"])
        );
        assert_eq!(x.children_of(&id("H41-C1")).count(), 0);
        let homed: Vec<_> = x
            .agencies_homed_at(&id("H41"))
            .map(|a| a.agency.code.clone())
            .collect();
        assert_eq!(homed, vec![code("000.00.00.H41")]);
        assert!(x.is_neighbour(&id("H41"), &id("H41-C1")));
        assert!(x.is_neighbour(&id("H41-C1"), &id("H41")));
        assert!(x.is_neighbour(&id("national"), &id("H29")));
        assert!(!x.is_neighbour(&id("H41-C1"), &id("H41-C2")));
        assert!(!x.is_neighbour(&id("national"), &id("H41-C1")));
        assert!(!x.is_neighbour(&id("H41"), &id("H41")));
    }

    fn invalid_message(d: Directory) -> String {
        match d.validate() {
            Err(Error::InvalidDirectory(msg)) => msg,
            other => panic!("expected an invalid directory, got {other:?}"),
        }
    }

    #[test]
    fn rejects_two_roots() {
        let mut d = two_tier();
        d.nodes[4].parent = None; // H29
        let msg = invalid_message(d);
        assert!(msg.contains("two root nodes, national and H29"), "{msg}");
    }

    #[test]
    fn rejects_no_root() {
        let mut d = two_tier();
        d.nodes[0].parent = Some(id("H41"));
        let msg = invalid_message(d);
        assert!(msg.contains("no root node"), "{msg}");
    }

    #[test]
    fn rejects_cycle_naming_its_nodes() {
        let mut d = three_tier();
        // H41 → national becomes H41 → H41-D1-C1, which is below H41.
        d.nodes[1].parent = Some(id("H41-D1-C1"));
        let msg = invalid_message(d);
        assert!(msg.contains("cycle"), "{msg}");
        for n in ["H41", "H41-D1", "H41-D1-C1"] {
            assert!(msg.contains(n), "{msg}");
        }
        let mut d = two_tier();
        d.nodes[2].parent = Some(id("H41-C1")); // its own parent
        let msg = invalid_message(d);
        assert!(msg.contains("cycle (H41-C1 -> parent H41-C1)"), "{msg}");
    }

    #[test]
    fn rejects_missing_parent() {
        let mut d = two_tier();
        d.nodes[2].parent = Some(id("H40"));
        let msg = invalid_message(d);
        assert!(
            msg.contains("node H41-C1 has parent H40, which is not in the directory"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_duplicate_node_id() {
        let mut d = two_tier();
        d.nodes.push(node("H41", "province", Some("national")));
        let msg = invalid_message(d);
        assert!(msg.contains("node H41 is listed more than once"), "{msg}");
    }

    #[test]
    fn rejects_duplicate_agency_code() {
        let mut d = two_tier();
        d.agencies.push(agency("000.00.00.H41", "H29", &[]));
        let msg = invalid_message(d);
        assert!(
            msg.contains("agency 000.00.00.H41 is listed more than once"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_alias_clashes() {
        let mut d = two_tier();
        d.agencies[1].agency.aliases.push("01.02.G22".into());
        let msg = invalid_message(d);
        assert!(
            msg.contains(
                r#"alias "01.02.G22" names both agency 000.00.00.G22 and agency 000.00.00.H41"#
            ),
            "{msg}"
        );
        let mut d = two_tier();
        d.agencies[1].agency.aliases.push("000.00.00.g22".into());
        let msg = invalid_message(d);
        assert!(
            msg.contains(
                r#"alias "000.00.00.g22" of agency 000.00.00.H41 is the code of agency 000.00.00.G22"#
            ),
            "{msg}"
        );
        let mut d = two_tier();
        d.agencies[1].agency.aliases.push("  ".into());
        let msg = invalid_message(d);
        assert!(
            msg.contains("agency 000.00.00.H41 has an empty alias"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_unknown_home() {
        let mut d = two_tier();
        d.agencies[1].home = id("H01");
        let msg = invalid_message(d);
        assert!(
            msg.contains("agency 000.00.00.H41 has home node H01, which is not in the directory"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_plaintext_endpoint() {
        let mut d = two_tier();
        d.nodes[1].endpoint = "http://h41.example:7443".into();
        let msg = invalid_message(d);
        assert!(msg.contains("node H41 has endpoint"), "{msg}");
        let mut d = two_tier();
        d.nodes[2].endpoint = String::new(); // a commune behind NAT
        d.validate().unwrap();
    }

    #[test]
    fn routes_a_national_scale_directory() {
        // 63 provinces × 40 communes, ~110,000 agencies: building and routing stay cheap.
        let mut nodes = vec![node("national", "national", None)];
        let mut agencies = Vec::new();
        for p in 10..73 {
            let pn = format!("H{p}");
            nodes.push(node(&pn, "province", Some("national")));
            for c in 0..40 {
                let cn = format!("{pn}-C{c}");
                nodes.push(node(&cn, "commune", Some(&pn)));
                for a in 0..44 {
                    agencies.push(agency(&format!("{a:03}.{c:02}.00.H{p}"), &cn, &[]));
                }
            }
        }
        let x = index(directory(nodes, agencies));
        assert!(x.agencies.len() > 110_000);
        let all: Vec<AgencyCode> = x.agencies.iter().map(|a| a.agency.code.clone()).collect();
        let plan = x.plan(&id("national"), &all).unwrap();
        assert_eq!(plan.via.len(), 63);
        assert_eq!(
            x.route(&id("H10-C0"), &code("043.39.00.H72")).unwrap(),
            via("H10")
        );
    }
}
