//! The directory on the wire (`DirectoryService`) and in a node's on-disk cache.
//!
//! Decoding validates every id and code and then the tree itself
//! ([`Directory::validate`]); it does not check the signature, which needs
//! the national gateway's trust anchor: callers verify it over
//! [`lienthong_core::canonical::directory_bytes`] before use.

use lienthong_core::NodeId;
use lienthong_core::directory::{AgencyEntry, BridgeEntry, Directory, NodeEntry};
use lienthong_core::external::{ExternalAgency, ExternalDirectory};
use lienthong_core::id::Agency;
use prost::Message;

use crate::{Error, code, invalid, pb};

fn node_id(field: &'static str, s: &str) -> Result<NodeId, Error> {
    NodeId::parse(s).map_err(|e| invalid(field, e))
}

impl TryFrom<pb::Directory> for Directory {
    type Error = Error;
    fn try_from(d: pb::Directory) -> Result<Self, Error> {
        let nodes = d
            .nodes
            .into_iter()
            .map(|n| {
                Ok(NodeEntry {
                    id: node_id("nodes.id", &n.id)?,
                    level: n.level,
                    parent: if n.parent.is_empty() {
                        None
                    } else {
                        Some(node_id("nodes.parent", &n.parent)?)
                    },
                    endpoint: n.endpoint,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let agencies = d
            .agencies
            .into_iter()
            .map(|a| {
                Ok(AgencyEntry {
                    agency: Agency {
                        code: code("agencies.code", &a.code)?,
                        name: a.name,
                        aliases: a.aliases,
                        edxml_id: (!a.edxml_id.is_empty()).then_some(a.edxml_id),
                    },
                    home: node_id("agencies.home", &a.home)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let bridges = d
            .bridges
            .into_iter()
            .map(|b| {
                Ok(BridgeEntry {
                    node: node_id("bridges.node", &b.node)?,
                    agencies: b
                        .agencies
                        .iter()
                        .map(|a| code("bridges.agencies", a))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let directory = Directory {
            version: d.version,
            issued_at: d.issued_at_unix_ms,
            nodes,
            agencies,
            bridges,
            signature: d.signature.map(TryInto::try_into).transpose()?,
        };
        directory.validate().map_err(|e| invalid("directory", e))?;
        Ok(directory)
    }
}

impl From<&Directory> for pb::Directory {
    fn from(d: &Directory) -> Self {
        pb::Directory {
            version: d.version,
            issued_at_unix_ms: d.issued_at,
            nodes: d
                .nodes
                .iter()
                .map(|n| pb::NodeEntry {
                    id: n.id.to_string(),
                    level: n.level.clone(),
                    parent: n.parent.as_ref().map(NodeId::to_string).unwrap_or_default(),
                    endpoint: n.endpoint.clone(),
                })
                .collect(),
            agencies: d
                .agencies
                .iter()
                .map(|a| pb::AgencyEntry {
                    code: a.agency.code.to_string(),
                    name: a.agency.name.clone(),
                    aliases: a.agency.aliases.clone(),
                    home: a.home.to_string(),
                    edxml_id: a.agency.edxml_id.clone().unwrap_or_default(),
                })
                .collect(),
            bridges: d
                .bridges
                .iter()
                .map(|b| pb::BridgeEntry {
                    node: b.node.to_string(),
                    agencies: b.agencies.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            signature: d.signature.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::ExternalDirectory> for ExternalDirectory {
    type Error = Error;
    /// Validates ids and codes; an entry whose code is not a QĐ 20/2020 code is refused
    /// with the whole list (a bridge publishes only codes it could parse).
    fn try_from(e: pb::ExternalDirectory) -> Result<Self, Error> {
        Ok(ExternalDirectory {
            bridge: node_id("external.bridge", &e.bridge)?,
            version: e.version,
            agencies: e
                .agencies
                .into_iter()
                .map(|a| {
                    Ok(ExternalAgency {
                        code: code("external.agencies.code", &a.code)?,
                        name: a.name,
                        aliases: a.aliases,
                    })
                })
                .collect::<Result<_, Error>>()?,
            signature: e.signature.map(TryInto::try_into).transpose()?,
        })
    }
}

impl From<&ExternalDirectory> for pb::ExternalDirectory {
    fn from(e: &ExternalDirectory) -> Self {
        pb::ExternalDirectory {
            bridge: e.bridge.to_string(),
            version: e.version,
            agencies: e
                .agencies
                .iter()
                .map(|a| pb::ExternalAgency {
                    code: a.code.to_string(),
                    name: a.name.clone(),
                    aliases: a.aliases.clone(),
                })
                .collect(),
            signature: e.signature.as_ref().map(Into::into),
        }
    }
}

/// Encodes a directory for the node's on-disk cache.
pub fn encode_directory(d: &Directory) -> Vec<u8> {
    pb::Directory::from(d).encode_to_vec()
}

/// Encodes a platform agency list for a node's disk.
pub fn encode_external(e: &ExternalDirectory) -> Vec<u8> {
    pb::ExternalDirectory::from(e).encode_to_vec()
}

/// Decodes a platform agency list kept on disk (its signature is the caller's to check).
pub fn decode_external(bytes: &[u8]) -> Result<ExternalDirectory, Error> {
    let pb = pb::ExternalDirectory::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    pb.try_into()
}

/// Decodes and validates a cached directory; a damaged cache is reported, not used.
pub fn decode_directory(bytes: &[u8]) -> Result<Directory, Error> {
    let pb = pb::Directory::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    pb.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_core::canonical::directory_bytes;
    use lienthong_core::{AgencyCode, Signature, SignatureAlgorithm};

    fn directory() -> Directory {
        let id = |s: &str| NodeId::parse(s).unwrap();
        let node = |n: &str, level: &str, parent: Option<&str>, endpoint: &str| NodeEntry {
            id: id(n),
            level: level.into(),
            parent: parent.map(id),
            endpoint: endpoint.into(),
        };
        let agency = |c: &str, name: &str, aliases: &[&str], home: &str| AgencyEntry {
            agency: Agency {
                code: AgencyCode::parse(c).unwrap(),
                name: name.into(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                edxml_id: aliases.last().map(|a| a.to_string()),
            },
            home: id(home),
        };
        Directory {
            version: 42,
            issued_at: 1_700_000_000_123,
            nodes: vec![
                node("national", "national", None, "https://vdxp.example:7443"),
                node(
                    "H41",
                    "province",
                    Some("national"),
                    "https://h41.example:7443",
                ),
                node("H41-C002", "commune", Some("H41"), ""),
            ],
            agencies: vec![
                agency(
                    "000.00.00.G22",
                    "Văn phòng Chính phủ",
                    &["01.02.G22"],
                    "national",
                ),
                agency("000.00.00.H41", "UBND tỉnh Nghệ An", &[], "H41"),
                agency("002.00.00.H41", "UBND xã", &["xa-002"], "H41-C002"),
            ],
            bridges: vec![BridgeEntry {
                node: id("H41"),
                agencies: vec![AgencyCode::parse("000.00.00.H41").unwrap()],
            }],
            signature: Some(Signature {
                algorithm: SignatureAlgorithm::Ed25519,
                signer_cert: vec![0x30, 0x82, 1, 2],
                value: vec![9; 64],
            }),
        }
    }

    #[test]
    fn directories_round_trip_through_the_cache_encoding() {
        let d = directory();
        assert_eq!(d.agencies[2].agency.edxml_id.as_deref(), Some("xa-002"));
        assert_eq!(d.agencies[1].agency.edxml_id, None);
        let back = decode_directory(&encode_directory(&d)).unwrap();
        assert_eq!(back, d);
        assert_eq!(directory_bytes(&back), directory_bytes(&d));
        let mut unsigned = d.clone();
        unsigned.signature = None;
        assert_eq!(
            decode_directory(&encode_directory(&unsigned)).unwrap(),
            unsigned
        );
    }

    #[test]
    fn rejects_malformed_node_id_naming_the_field() {
        let mut pb = pb::Directory::from(&directory());
        pb.nodes[2].parent = "H 41".into();
        let err = Directory::try_from(pb).unwrap_err().to_string();
        assert!(
            err.contains("nodes.parent") && err.contains("malformed node id"),
            "{err}"
        );
    }

    #[test]
    fn rejects_malformed_agency_code_naming_the_field() {
        let mut pb = pb::Directory::from(&directory());
        pb.agencies[1].code = "H41".into();
        let err = Directory::try_from(pb).unwrap_err().to_string();
        assert!(
            err.contains("agencies.code") && err.contains("malformed agency code"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_directory_that_is_not_a_tree() {
        let mut pb = pb::Directory::from(&directory());
        pb.nodes[1].parent = String::new();
        let err = Directory::try_from(pb).unwrap_err().to_string();
        assert!(err.contains("two root nodes, national and H41"), "{err}");
    }

    #[test]
    fn rejects_garbage_cache_bytes() {
        assert!(matches!(
            decode_directory(&[0xff, 0xff, 0xff]),
            Err(Error::Decode(_))
        ));
    }
}
