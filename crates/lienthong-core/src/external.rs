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

    /// The external agencies whose code, an alias or the name contains `text` (any case),
    /// each once, in code order, with the bridges that reach it.
    pub fn search(&self, text: &str) -> Vec<(&ExternalAgency, &[NodeId])> {
        let text = text.trim().to_lowercase();
        let mut seen = std::collections::HashSet::new();
        let mut found: Vec<(&ExternalAgency, &[NodeId])> = self
            .lists
            .values()
            .flat_map(|l| &l.agencies)
            .filter(|a| !self.bridges_of(&a.code).is_empty())
            .filter(|a| {
                text.is_empty()
                    || a.code.as_str().to_lowercase().contains(&text)
                    || a.name.to_lowercase().contains(&text)
                    || a.aliases.iter().any(|x| x.to_lowercase().contains(&text))
            })
            .filter(|a| seen.insert(&a.code))
            .map(|a| (a, self.bridges_of(&a.code)))
            .collect();
        found.sort_by(|a, b| a.0.code.cmp(&b.0.code));
        found
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{AgencyEntry, BridgeEntry, Directory, NodeEntry};
    use crate::id::Agency;

    fn node(id: &str, parent: Option<&str>) -> NodeEntry {
        NodeEntry {
            id: NodeId::parse(id).unwrap(),
            level: String::new(),
            parent: parent.map(|p| NodeId::parse(p).unwrap()),
            endpoint: String::new(),
        }
    }

    fn code(c: &str) -> AgencyCode {
        AgencyCode::parse(c).unwrap()
    }

    /// VN (a bridge) → H41 (a bridge registered for 000.00.00.H41); our agencies
    /// 000.00.00.H41 (alias `28.22.H17`) and 001.00.20.H41.
    fn directory() -> DirectoryIndex {
        let agency = |c: &str, aliases: &[&str], home: &str| AgencyEntry {
            agency: Agency {
                code: code(c),
                name: String::new(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                edxml_id: None,
            },
            home: NodeId::parse(home).unwrap(),
        };
        DirectoryIndex::new(Directory {
            version: 1,
            issued_at: 0,
            nodes: vec![node("VN", None), node("H41", Some("VN"))],
            agencies: vec![
                agency("000.00.00.H41", &["28.22.H17"], "H41"),
                agency("001.00.20.H41", &[], "H41"),
            ],
            bridges: vec![
                BridgeEntry {
                    node: NodeId::parse("VN").unwrap(),
                    agencies: Vec::new(),
                },
                BridgeEntry {
                    node: NodeId::parse("H41").unwrap(),
                    agencies: vec![code("000.00.00.H41")],
                },
            ],
            signature: None,
        })
        .unwrap()
    }

    fn list(bridge: &str, agencies: &[(&str, &[&str])]) -> Arc<ExternalDirectory> {
        Arc::new(ExternalDirectory {
            bridge: NodeId::parse(bridge).unwrap(),
            version: 1,
            agencies: agencies
                .iter()
                .map(|(c, aliases)| ExternalAgency {
                    code: code(c),
                    name: format!("name of {c}"),
                    aliases: aliases.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
            signature: None,
        })
    }

    #[test]
    fn an_external_entry_never_shadows_our_directory() {
        let d = directory();
        let index = ExternalIndex::new(
            [list(
                "VN",
                &[
                    // Ours, by code and by alias: left out.
                    ("001.00.20.H41", &[]),
                    ("000.00.00.H29", &["28.22.H17", "01.01.H29"]),
                ],
            )],
            &d,
        );
        assert!(index.bridges_of(&code("001.00.20.H41")).is_empty());
        assert_eq!(index.resolve("000.00.00.H29"), Some(code("000.00.00.H29")));
        assert_eq!(index.resolve(" 01.01.H29 "), Some(code("000.00.00.H29")));
        assert_eq!(index.resolve("28.22.H17"), None, "our alias stays ours");
        assert_eq!(index.resolve("000.00.00.H99"), None);
    }

    #[test]
    fn lists_of_nodes_that_are_not_bridges_are_left_out() {
        let d = directory();
        let index = ExternalIndex::new([list("H42", &[("000.00.00.H29", &[])])], &d);
        assert!(index.is_empty());
        assert_eq!(index.resolve("000.00.00.H29"), None);
    }

    #[test]
    fn the_bridge_registered_for_the_sender_is_preferred_when_it_reaches_the_agency() {
        let d = directory();
        let both = [
            list("VN", &[("000.00.00.H29", &[])]),
            list("H41", &[("000.00.00.H29", &[]), ("000.00.00.H30", &[])]),
        ];
        let index = ExternalIndex::new(both, &d);
        let h29 = code("000.00.00.H29");
        let bridge = |sender: &str, to: &AgencyCode| {
            index
                .bridge_towards(&d, Some(&code(sender)), to)
                .map(|n| n.to_string())
        };
        assert_eq!(bridge("000.00.00.H41", &h29).as_deref(), Some("H41"));
        assert_eq!(bridge("001.00.20.H41", &h29).as_deref(), Some("VN"));
        // Only H41 reaches H30, whatever the sender.
        assert_eq!(
            bridge("001.00.20.H41", &code("000.00.00.H30")).as_deref(),
            Some("H41")
        );
        assert_eq!(
            index.bridge_towards(&d, None, &h29).map(|n| n.as_str()),
            Some("H41")
        );
    }
}
