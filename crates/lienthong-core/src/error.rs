//! The one error type of the domain crate.

/// Everything that can be wrong with a domain value. Each message says what was wrong and,
/// where it helps, what a valid value looks like.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error(
        "malformed agency code {code:?}: {reason} (expected four dot-separated parts such as 000.00.00.H41)"
    )]
    MalformedAgencyCode { code: String, reason: &'static str },
    #[error("malformed node id {id:?}: {reason}")]
    MalformedNodeId { id: String, reason: &'static str },
    #[error("malformed document id {id:?}: {reason}")]
    MalformedDocumentId { id: String, reason: &'static str },
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("unknown status code {0:?}; valid codes are 01-06, 13, 15 and 16")]
    UnknownStatusCode(String),
    #[error("invalid status notice: {0}")]
    InvalidStatus(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("unsupported signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid directory: {0}")]
    InvalidDirectory(String),
    #[error(
        "unknown recipient {0}: no agency with this code is in the directory; check the code or wait for a newer directory"
    )]
    UnknownRecipient(crate::AgencyCode),
    #[error("unknown node {0}: it is not in the directory")]
    UnknownNode(crate::NodeId),
    #[error(
        "{what} {given:?} is not written in its canonical form {canonical:?}; send (and sign) \
         {canonical:?}: a signature covers the bytes as sent, so the node never rewrites them"
    )]
    NonCanonical {
        what: &'static str,
        given: String,
        canonical: String,
    },
}
