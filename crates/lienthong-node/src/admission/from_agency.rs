//! What a message from a DMS must pass before it is admitted: the DMS speaks only for its
//! own agency, a document's recipients are in the directory, a status notice answers a
//! document the agency is a party to, and the lifecycle allows the message. A re-send of
//! a stored message is answered from the store, never judged again against a lifecycle
//! that has moved on since.

use lienthong_core::{AgencyCode, MessageKey, Receipt, StatusNotice};
use lienthong_proto::DocumentWithContent;

use super::{Incoming, Origin, Outcome, admit};
use crate::Error;
use crate::context::Context;

/// Accepts a document from the DMS of `caller`. Returns the signed receipt (the original
/// one for a duplicate) and whether it was a duplicate.
pub async fn send_document(
    ctx: &Context,
    caller: &AgencyCode,
    message: DocumentWithContent,
) -> Result<(Receipt, bool), Error> {
    let sender = message.document.sender()?.clone();
    if sender != *caller {
        return Err(Error::SenderMismatch(format!(
            "the document's sender (from) is {sender} but the connection belongs to \
             {caller}; a DMS may only send as its own agency"
        )));
    }
    // Every recipient must be able to export what is accepted (see lienthong-edxml's
    // limits): a value it cannot read would stop its export for good.
    lienthong_edxml::EdxmlDocument::check_preserved(&message.document.edxml_preserved)
        .map_err(|e| Error::Unexportable(e.to_string()))?;
    let recipients = message.document.recipients()?;
    let d = ctx.directory.current();
    let external = ctx.external.index();
    if let Some(unknown) = recipients
        .iter()
        .find(|r| d.home_of(r).is_none() && external.bridge_towards(&d, Some(caller), r).is_none())
    {
        let platform = if external.is_empty() {
            String::new()
        } else {
            let bridges: Vec<_> = external.lists().map(|l| l.bridge.to_string()).collect();
            format!(
                ", nor in the national platform's agency list published by bridge {}",
                bridges.join(", ")
            )
        };
        return Err(Error::UnknownRecipient(format!(
            "unknown recipient {unknown}: no agency with that code is in the directory \
             (version {}) of node {}{platform}",
            d.version, ctx.id
        )));
    }
    // The check and the admission hold the referenced documents' locks, so two
    // concurrent revokes of one document cannot both pass.
    let targets = crate::lifecycle::references(&message.document)?;
    let _guard = ctx.lifecycle_locks.lock(&targets).await;
    if !targets.is_empty() && !ctx.store.has_message(&message.document.key()?)? {
        crate::lifecycle::check_document(ctx, caller, &message.document)?;
    }
    let uploaded: Vec<_> = message
        .document
        .attachments
        .iter()
        .zip(&message.contents)
        .filter(|(a, content)| content.is_empty() && a.size > 0)
        .map(|(a, _)| a.sha256)
        .collect();
    let incoming = Incoming::Document {
        message: Box::new(message),
        recipients,
    };
    let (receipt, outcome) = admit(ctx, incoming, Origin::Agency(caller.clone())).await?;
    // Uploads a document names no longer count against the agency's quota.
    for digest in uploaded {
        ctx.uploads.note_sent(&digest, caller)?;
    }
    Ok((receipt, outcome == Outcome::Duplicate))
}

/// Accepts a status notice from `caller` about a document held here (delivered to or
/// sent by `caller`), and routes it to the other party.
///
/// The document is looked up under the sender the notice names (the caller itself for
/// a withdraw request, else the agency the notice goes to), and a caller who is not a
/// party to it gets the same answer as for a document that does not exist: a refusal
/// tells an outsider nothing about which ids exist or who sent them.
pub async fn send_status(
    ctx: &Context,
    caller: &AgencyCode,
    notice: StatusNotice,
) -> Result<(Receipt, bool), Error> {
    let sender = notice.sender()?.clone();
    if sender != *caller {
        return Err(Error::SenderMismatch(format!(
            "the notice's sender (from) is {sender} but the connection belongs to {caller}"
        )));
    }
    // As for documents: what is accepted must be exportable.
    lienthong_edxml::EdxmlStatus::check_preserved(&notice.edxml_preserved)
        .map_err(|e| Error::Unexportable(e.to_string()))?;
    let document_key: MessageKey = notice.document_key()?;
    let unknown = || {
        Error::UnknownMessage(format!(
            "document {} from {} is not known to node {} for you; a status answers a \
             document delivered to you (and goes to its sender), or a withdraw request \
             (13) one you sent",
            document_key.id,
            notice
                .document_sender()
                .map_or_else(|e| e.to_string(), |s| s.to_string()),
            ctx.id
        ))
    };
    let original = ctx.load_document(&document_key)?.ok_or_else(unknown)?;
    let recipients = original.recipients()?;
    if notice.code.sent_by_original_sender() {
        // Looked up under the caller's own key: the caller sent it.
        if !recipients.contains(&notice.to) {
            return Err(Error::InvalidArgument(format!(
                "{} is not a recipient of document {}",
                notice.to, document_key.id
            )));
        }
    } else if !recipients.contains(&sender) {
        return Err(unknown());
    }
    // As for a document's recipients: a notice goes nowhere unless someone knows its
    // addressee (an agency on the national platform is known once a bridge's list
    // reached this node); refuse now rather than dead-letter it.
    let d = ctx.directory.current();
    if d.home_of(&notice.to).is_none()
        && ctx
            .external
            .index()
            .bridge_towards(&d, Some(caller), &notice.to)
            .is_none()
    {
        return Err(Error::UnknownRecipient(format!(
            "{} is neither in the directory (version {}) of node {} nor in a national \
             platform agency list it holds; send the status again later",
            notice.to, d.version, ctx.id
        )));
    }
    // As for documents: the check and the admission under the document's lock.
    let _guard = ctx
        .lifecycle_locks
        .lock(std::slice::from_ref(&document_key.id))
        .await;
    if !ctx.store.has_message(&notice.key()?)? {
        crate::lifecycle::check_status(ctx, caller, &notice, &original)?;
    }
    let (receipt, outcome) = admit(
        ctx,
        Incoming::Status(Box::new(notice)),
        Origin::Agency(caller.clone()),
    )
    .await?;
    Ok((receipt, outcome == Outcome::Duplicate))
}
