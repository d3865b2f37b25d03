//! End-to-end checks of what a node hands back: receipts, documents with their
//! attachments, over [`lienthong_pki::verify`] (the same checks the node makes).

use bytes::Bytes;
use lienthong_core::sign::sha256;
use lienthong_core::{Document, Receipt};
use lienthong_pki::CachedTrust;
use lienthong_pki::verify;

use crate::Error;

/// Checks a receipt's signature: made by the node it names, over the receipt's bytes.
pub fn verify_receipt(trust: &CachedTrust, receipt: &Receipt) -> Result<(), Error> {
    Ok(verify::receipt(trust, receipt)?)
}

/// Checks a document end to end: the sender's signature against the CA and every
/// attachment against its digest.
pub fn verify_document(
    trust: &CachedTrust,
    document: &Document,
    contents: &[Bytes],
) -> Result<(), Error> {
    verify_parts(trust, document, contents, &[])
}

/// [`verify_document`], skipping the attachments marked in `streamed` (checked as they
/// were written to files).
pub(crate) fn verify_parts(
    trust: &CachedTrust,
    document: &Document,
    contents: &[Bytes],
    streamed: &[bool],
) -> Result<(), Error> {
    let sender = document
        .sender()
        .map_err(|e| Error::Verification(e.to_string()))?;
    verify::document(trust, document, sender)?;
    if contents.len() != document.attachments.len() {
        return Err(Error::Verification(format!(
            "{} attachments described but {} received",
            document.attachments.len(),
            contents.len()
        )));
    }
    for (i, (a, c)) in document.attachments.iter().zip(contents).enumerate() {
        if streamed.get(i) == Some(&true) {
            continue;
        }
        if sha256(c) != a.sha256 || c.len() as u64 != a.size {
            return Err(Error::Verification(format!(
                "attachment {:?} does not match its digest",
                a.name
            )));
        }
    }
    Ok(())
}
