//! The checks every party makes of a signed message — a node admitting it, the next hop,
//! a DMS fetching it: one function each, so that no two places can disagree on what a
//! valid signature is. Each checks the signature with [`CachedTrust::verify_signer`]
//! (chain, validity, CRLs, key) and that the signer is who the message says.

use lienthong_core::canonical;
use lienthong_core::{
    AgencyCode, Document, DocumentId, Imported, NodeId, Receipt, Signature, StatusNotice,
    TraceEntry,
};

use crate::{CachedTrust, Identity};

/// Why a signed message does not pass.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the {what} is not signed; sign it with {expected}'s key")]
    Unsigned {
        what: &'static str,
        expected: Identity,
    },
    /// The certificate does not chain, has expired, or the signature does not verify.
    #[error("bad {what} signature: {source}")]
    BadSignature {
        what: &'static str,
        #[source]
        source: crate::Error,
    },
    /// The certificate is in a CRL: nothing it signs is accepted.
    #[error("{what} refused: {source}")]
    Revoked {
        what: &'static str,
        #[source]
        source: crate::Error,
    },
    #[error("the {what} is signed by {signer}, not by {expected}")]
    WrongSigner {
        what: &'static str,
        signer: Identity,
        expected: Identity,
    },
    #[error("message {id} carries no trace entry")]
    NoTrace { id: DocumentId },
    #[error("message {id}: the last trace entry names {named} but it came from {from}")]
    WrongHop {
        id: DocumentId,
        named: NodeId,
        from: NodeId,
    },
}

/// Checks that `signature` verifies over `signed` and was made by `expected`.
pub fn signed_by(
    trust: &CachedTrust,
    what: &'static str,
    signature: Option<&Signature>,
    signed: &[u8],
    expected: Identity,
) -> Result<(), Refused> {
    let signature = signature.ok_or_else(|| Refused::Unsigned {
        what,
        expected: expected.clone(),
    })?;
    let signer = trust
        .verify_signer(signature, signed)
        .map_err(|source| match source {
            crate::Error::RevokedSigner { .. } => Refused::Revoked { what, source },
            source => Refused::BadSignature { what, source },
        })?;
    if signer != expected {
        return Err(Refused::WrongSigner {
            what,
            signer,
            expected,
        });
    }
    Ok(())
}

/// A document, signed by its sender over [`canonical::document_bytes`].
/// A message a bridge imported from the national platform is signed by that bridge
/// instead (whether the node is a bridge of the directory is for the caller, which holds
/// the directory, to check: see [`vouched_by`]).
pub fn document(
    trust: &CachedTrust,
    document: &Document,
    sender: &AgencyCode,
) -> Result<(), Refused> {
    signed_by(
        trust,
        "document",
        document.signature.as_ref(),
        &canonical::document_bytes(document),
        signer_of(sender, document.imported.as_ref()),
    )
}

/// Who must have signed a message from `sender`: the agency, or for an imported message
/// the bridge that imported it.
fn signer_of(sender: &AgencyCode, imported: Option<&Imported>) -> Identity {
    match imported {
        Some(i) => Identity::Node(i.bridge.clone()),
        None => Identity::Agency(sender.clone()),
    }
}

/// Why an imported message's bridge is not to be trusted for it.
#[derive(Debug, thiserror::Error)]
pub enum NotVouched {
    #[error(
        "message from {sender} says node {bridge} imported it from the national platform, but the directory (version {version}) names no such bridge"
    )]
    NotABridge {
        sender: AgencyCode,
        bridge: NodeId,
        version: u64,
    },
    #[error(
        "message from {sender} says it was imported from the national platform, but {sender} is an agency of the directory: a bridge never speaks for one of ours"
    )]
    OurAgency { sender: AgencyCode },
}

/// For an imported message (`imported` set), checks that the directory names its bridge
/// and that its sender is not one of the directory's own agencies. Nothing to check for
/// a message signed by its agency.
pub fn vouched_by(
    directory: &lienthong_core::DirectoryIndex,
    sender: &AgencyCode,
    imported: Option<&Imported>,
) -> Result<(), NotVouched> {
    let Some(i) = imported else {
        return Ok(());
    };
    if !directory.is_bridge(&i.bridge) {
        return Err(NotVouched::NotABridge {
            sender: sender.clone(),
            bridge: i.bridge.clone(),
            version: directory.version,
        });
    }
    if directory.agency(sender).is_some() {
        return Err(NotVouched::OurAgency {
            sender: sender.clone(),
        });
    }
    Ok(())
}

/// A status notice, signed by its sender over [`canonical::status_bytes`].
pub fn status_notice(
    trust: &CachedTrust,
    notice: &StatusNotice,
    sender: &AgencyCode,
) -> Result<(), Refused> {
    signed_by(
        trust,
        "status notice",
        notice.signature.as_ref(),
        &canonical::status_bytes(notice),
        signer_of(sender, notice.imported.as_ref()),
    )
}

/// A receipt, signed by the node it names.
pub fn receipt(trust: &CachedTrust, receipt: &Receipt) -> Result<(), Refused> {
    signed_by(
        trust,
        "receipt",
        receipt.signature.as_ref(),
        &canonical::receipt_bytes(receipt),
        Identity::Node(receipt.node.clone()),
    )
}

/// One trace entry of message `id` (content digest `digest`), signed by the node it names.
pub fn trace_entry(
    trust: &CachedTrust,
    id: &DocumentId,
    digest: &[u8; 32],
    entry: &TraceEntry,
) -> Result<(), Refused> {
    signed_by(
        trust,
        "trace entry",
        entry.signature.as_ref(),
        &canonical::trace_entry_bytes(id, digest, &entry.node, entry.at),
        Identity::Node(entry.node.clone()),
    )
}

/// Every entry of a message's trace, in order.
pub fn trace(
    trust: &CachedTrust,
    id: &DocumentId,
    digest: &[u8; 32],
    trace: &[TraceEntry],
) -> Result<(), Refused> {
    trace
        .iter()
        .try_for_each(|entry| trace_entry(trust, id, digest, entry))
}

/// The last trace entry of a message handed over by neighbour `from`: added, and signed,
/// by `from`.
pub fn last_hop(
    trust: &CachedTrust,
    id: &DocumentId,
    digest: &[u8; 32],
    trace: &[TraceEntry],
    from: &NodeId,
) -> Result<(), Refused> {
    let last = trace
        .last()
        .ok_or_else(|| Refused::NoTrace { id: id.clone() })?;
    if &last.node != from {
        return Err(Refused::WrongHop {
            id: id.clone(),
            named: last.node.clone(),
            from: from.clone(),
        });
    }
    trace_entry(trust, id, digest, last)
}
