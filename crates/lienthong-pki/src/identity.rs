//! Who a certificate speaks for: a node of the network or an agency (cơ quan), named by a
//! single SAN URI `urn:lienthong:node:<id>` or `urn:lienthong:agency:<code>`.

use std::fmt;
use std::str::FromStr;

use lienthong_core::{AgencyCode, NodeId};

use crate::error::{Error, Result};

/// The prefix every lienthong identity URI starts with.
pub const URI_PREFIX: &str = "urn:lienthong:";

const NODE_PREFIX: &str = "urn:lienthong:node:";
const AGENCY_PREFIX: &str = "urn:lienthong:agency:";

/// The party a certificate authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// An agency (cơ quan) whose document-management system talks to its home node; its key
    /// also signs the documents it sends.
    Agency(AgencyCode),
    /// A node of the exchange network.
    Node(NodeId),
}

impl Identity {
    /// The SAN URI that carries this identity: `urn:lienthong:agency:000.00.00.H41` or
    /// `urn:lienthong:node:H41`.
    pub fn to_uri(&self) -> String {
        match self {
            Identity::Agency(code) => format!("{AGENCY_PREFIX}{code}"),
            Identity::Node(id) => format!("{NODE_PREFIX}{id}"),
        }
    }

    /// Parses a URI made by [`Identity::to_uri`].
    pub fn from_uri(uri: &str) -> Result<Identity> {
        let malformed = |reason: String| Error::MalformedIdentity {
            uri: uri.to_string(),
            reason,
        };
        if let Some(id) = uri.strip_prefix(NODE_PREFIX) {
            NodeId::parse(id)
                .map(Identity::Node)
                .map_err(|e| malformed(e.to_string()))
        } else if let Some(code) = uri.strip_prefix(AGENCY_PREFIX) {
            // AgencyCode::parse is lenient (whitespace, lowercase letter); a certificate must
            // carry the canonical form so that identities compare byte for byte.
            let parsed = AgencyCode::parse(code).map_err(|e| malformed(e.to_string()))?;
            if parsed.as_str() != code {
                return Err(malformed(format!(
                    "the agency code must be written in canonical form {parsed}"
                )));
            }
            Ok(Identity::Agency(parsed))
        } else {
            Err(malformed("unknown kind".to_string()))
        }
    }

    /// The node id, if this is a node.
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            Identity::Node(id) => Some(id),
            Identity::Agency(_) => None,
        }
    }

    /// The agency code, if this is an agency.
    pub fn agency(&self) -> Option<&AgencyCode> {
        match self {
            Identity::Agency(code) => Some(code),
            Identity::Node(_) => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

impl FromStr for Identity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_uri(s)
    }
}

impl From<NodeId> for Identity {
    fn from(id: NodeId) -> Self {
        Identity::Node(id)
    }
}

impl From<AgencyCode> for Identity {
    fn from(code: AgencyCode) -> Self {
        Identity::Agency(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uri_round_trips() {
        let node = Identity::Node(NodeId::parse("H41").unwrap());
        assert_eq!(node.to_uri(), "urn:lienthong:node:H41");
        assert_eq!(Identity::from_uri(&node.to_uri()).unwrap(), node);
        assert_eq!(node.to_string(), "urn:lienthong:node:H41");

        let agency = Identity::Agency(AgencyCode::parse("000.00.00.H41").unwrap());
        assert_eq!(agency.to_uri(), "urn:lienthong:agency:000.00.00.H41");
        assert_eq!(agency.to_uri().parse::<Identity>().unwrap(), agency);
        assert_eq!(agency.agency().unwrap().as_str(), "000.00.00.H41");
        assert!(agency.node().is_none());
    }

    #[test]
    fn rejects_malformed_identity_uris() {
        for uri in [
            "urn:lienthong:agency:000.00.H41",
            "urn:lienthong:agency:000.00.00.h41",
            "urn:lienthong:node:",
            "urn:lienthong:node:a b",
            "urn:lienthong:person:x",
            "spiffe://lienthong/node/H41",
        ] {
            let err = Identity::from_uri(uri).unwrap_err();
            assert!(
                matches!(err, Error::MalformedIdentity { .. }),
                "{uri}: {err}"
            );
        }
    }
}
