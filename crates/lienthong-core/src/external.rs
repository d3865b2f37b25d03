//! Agencies outside the directory: those a bridge reaches on the national
//! document-exchange platform. Each bridge fetches the platform's agency lists and
//! publishes them as an [`ExternalDirectory`] signed with its node key; every node keeps
//! the newest list of each bridge ([`ExternalIndex`]) to route a document for such an
//! agency towards the bridge, and to refuse at once an address neither the directory nor
//! any platform list knows.
//!
//! An external entry never shadows the directory: a code or alias the directory knows is
//! left out of the index, so our own agencies are always reached inside lienthong.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::directory::DirectoryIndex;
use crate::{AgencyCode, NodeId, Signature, UnixMillis};

/// An agency on the national platform, as a bridge found it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalAgency {
    pub code: AgencyCode,
    pub name: String,
    /// Other identifiers the platform gives it (legacy code, platform account id).
    pub aliases: Vec<String>,
}

/// One bridge's view of the platform's agencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalDirectory {
    pub bridge: NodeId,
    /// When the bridge fetched the list: a newer list of the same bridge replaces it.
    pub version: UnixMillis,
    pub agencies: Vec<ExternalAgency>,
    /// The bridge's signature over [`crate::canonical::external_bytes`].
    pub signature: Option<Signature>,
}

/// The newest list of each bridge, indexed for routing.
#[derive(Clone, Debug, Default)]
pub struct ExternalIndex {
    lists: BTreeMap<NodeId, Arc<ExternalDirectory>>,
    /// Code → the bridges that reach it, in node id order.
    by_code: HashMap<AgencyCode, Vec<NodeId>>,
    /// Trimmed alias → code.
    by_alias: HashMap<String, AgencyCode>,
    names: HashMap<AgencyCode, String>,
}

impl ExternalIndex {
    /// Indexes `lists` (already verified), leaving out every list of a node that is not a
    /// bridge of `directory` and every entry the directory itself knows.
    pub fn new(
        lists: impl IntoIterator<Item = Arc<ExternalDirectory>>,
        directory: &DirectoryIndex,
    ) -> Self {
        let mut index = ExternalIndex::default();
        for list in lists {
            if !directory.is_bridge(&list.bridge) {
                continue;
            }
            index.lists.insert(list.bridge.clone(), list);
        }
        for list in index.lists.values() {
            for a in &list.agencies {
                if directory.resolve(a.code.as_str()).is_some() {
                    continue;
                }
                let bridges = index.by_code.entry(a.code.clone()).or_default();
                if !bridges.contains(&list.bridge) {
                    bridges.push(list.bridge.clone());
                }
                index
                    .names
                    .entry(a.code.clone())
                    .or_insert_with(|| a.name.clone());
                for alias in &a.aliases {
                    let alias = alias.trim();
                    if alias.is_empty() || directory.resolve(alias).is_some() {
                        continue;
                    }
                    index
                        .by_alias
                        .entry(alias.to_string())
                        .or_insert_with(|| a.code.clone());
                }
            }
        }
        index
    }

    /// The lists held, one per bridge.
    pub fn lists(&self) -> impl Iterator<Item = &Arc<ExternalDirectory>> {
        self.lists.values()
    }

    /// Whether no bridge has published a list.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The bridges that reach external agency `code` (none if no list has it).
    pub fn bridges_of(&self, code: &AgencyCode) -> &[NodeId] {
        self.by_code.get(code).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The external agency `input` names: its code, or one of its aliases.
    pub fn resolve(&self, input: &str) -> Option<AgencyCode> {
        let input = input.trim();
        AgencyCode::parse(input)
            .ok()
            .filter(|c| self.by_code.contains_key(c))
            .or_else(|| self.by_alias.get(input).cloned())
    }

    /// The platform's name of external agency `code`.
    pub fn name(&self, code: &AgencyCode) -> Option<&str> {
        self.names.get(code).map(String::as_str)
    }

    /// The bridge a message from `sender` (none for a node's own messages) to external
    /// agency `to` leaves through: the one the directory assigns to `sender` when it
    /// reaches `to`, else the first that does.
    pub fn bridge_towards<'a>(
        &'a self,
        directory: &'a DirectoryIndex,
        sender: Option<&AgencyCode>,
        to: &AgencyCode,
    ) -> Option<&'a NodeId> {
        let reach = self.bridges_of(to);
        sender
            .and_then(|s| directory.bridge_for(s))
            .filter(|b| reach.contains(b))
            .or_else(|| reach.first())
    }
}

/// The outbox at a bridge towards the national platform: not a node of the tree, so the
/// directory refuses a node of that id.
pub const PLATFORM_HOP: &str = "vxp-platform";

/// [`PLATFORM_HOP`] as a node id, the key of the platform's outbox.
pub fn platform_hop() -> NodeId {
    NodeId::parse(PLATFORM_HOP).expect("a valid node id")
}
