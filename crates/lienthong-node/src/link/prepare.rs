//! What an outbox entry becomes when its turn comes: a hand-off item, or — if the stored
//! message expired or no longer matches the digest it was accepted with — a dead letter,
//! never sent. A document whose attachments are too large to travel inline has them
//! pushed to the neighbour first ([`super::push`]).

use std::sync::Arc;

use bytes::Bytes;
use lienthong_core::{NodeId, now_millis};
use lienthong_proto::{DocumentWithContent, stored};
use lienthong_store::{MessageKind, OutboxEntry, StoredMessage};

use super::item::{Handed, HandoffItem};
use crate::Error;
use crate::context::Context;
use crate::dead_letters::{self, Undeliverable};

/// What an outbox entry becomes when its turn comes.
pub enum Prepared {
    Item(Box<HandoffItem>, MessageKind),
    Undeliverable(Undeliverable),
    /// A document with attachments too large to travel inline, when blobs are not to be
    /// pushed now: the link pushes them on the side and prepares it again.
    AwaitsBlobs,
}

/// Whether preparing a hand-off may push large attachments to the neighbour first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    Push,
    Defer,
}

/// Builds the hand-off item for an outbox entry, unless the message expired or its stored
/// copy no longer matches its digest.
pub async fn prepare(
    ctx: &Arc<Context>,
    hop: &NodeId,
    entry: &OutboxEntry,
    blobs: Blobs,
) -> Result<Prepared, Error> {
    let stored_message = ctx
        .store
        .message(&entry.message)?
        .ok_or_else(|| Error::Store(lienthong_store::Error::NotFound(entry.message.to_string())))?;
    // A stored copy that no longer decodes or matches its digest is the store's damage,
    // not the link's: quarantine it rather than retry it forever.
    let corrupt = |e: Error| match e {
        Error::Store(lienthong_store::Error::Corrupt(why)) => {
            Ok(Prepared::Undeliverable(Undeliverable::Corrupt(why)))
        }
        Error::Wire(e) => Ok(Prepared::Undeliverable(Undeliverable::Corrupt(format!(
            "the stored copy of {} does not decode: {e}",
            entry.message
        )))),
        e => Err(e),
    };
    match dead_letters::expires_at(&stored_message, &ctx.delivery) {
        Ok(Some(deadline)) if deadline <= now_millis() => {
            return Ok(Prepared::Undeliverable(Undeliverable::Expired(deadline)));
        }
        Ok(_) => {}
        Err(e) => return corrupt(e),
    }
    match item_for(ctx, hop, entry, &stored_message, blobs).await {
        Ok(Some(item)) => Ok(Prepared::Item(Box::new(item), stored_message.envelope.kind)),
        Ok(None) => Ok(Prepared::AwaitsBlobs),
        Err(e) => corrupt(e),
    }
}

/// The hand-off item for a stored message; [`lienthong_store::Error::Corrupt`] if the
/// message or an attachment does not match its digest. Attachments too large to travel
/// inline are pushed to `hop` first, in chunks (resuming where `hop` stands), and the
/// item carries no content for them; with [`Blobs::Defer`] there is no item then (`None`).
async fn item_for(
    ctx: &Arc<Context>,
    hop: &NodeId,
    entry: &OutboxEntry,
    stored_message: &StoredMessage,
    blobs: Blobs,
) -> Result<Option<HandoffItem>, Error> {
    let envelope = &stored_message.envelope;
    let corrupt = |what: &str| {
        Error::Store(lienthong_store::Error::Corrupt(format!(
            "{what} {} no longer matches the digest it was accepted with",
            entry.message
        )))
    };
    let receipt = || stored::decode_receipt(&stored_message.receipt).map(Some);
    // About the item's size on the wire: its stored encoding, its inline contents.
    let mut bytes = envelope.encoded.len() + stored_message.receipt.len() + 256;
    let (message, origin_receipt) = match envelope.kind {
        MessageKind::Document => {
            let document = stored::decode_document(&envelope.encoded)?;
            if lienthong_core::canonical::document_digest(&document) != envelope.content_digest {
                return Err(corrupt("document"));
            }
            let inline = crate::attachments::inline_flags(
                &document.attachments,
                crate::attachments::relay_inline_budget(ctx.limits.max_message_bytes),
            );
            if blobs == Blobs::Defer && inline.contains(&false) {
                return Ok(None);
            }
            // A blob missing from this node's store is damage to the store, like one that no
            // longer matches its digest: the message is quarantined, not retried forever.
            let missing = |e: lienthong_store::Error| match e {
                lienthong_store::Error::NotFound(what) => Error::Store(
                    lienthong_store::Error::Corrupt(format!("{what} is missing from the store")),
                ),
                e => e.into(),
            };
            let mut contents = Vec::with_capacity(document.attachments.len());
            for (a, inline) in document.attachments.iter().zip(inline) {
                if inline {
                    let content = ctx.store.blob(a.sha256).await.map_err(missing)?;
                    bytes += content.len();
                    contents.push(content);
                } else {
                    super::push::push(ctx, hop, a).await.map_err(|e| match e {
                        Error::Store(e) => missing(e),
                        e => e,
                    })?;
                    contents.push(Bytes::new());
                }
            }
            (
                Handed::Document(Box::new(DocumentWithContent { document, contents })),
                receipt()?,
            )
        }
        MessageKind::Status => {
            let notice = stored::decode_status(&envelope.encoded)?;
            if lienthong_core::canonical::status_digest(&notice) != envelope.content_digest {
                return Err(corrupt("status notice"));
            }
            (Handed::Status(Box::new(notice)), receipt()?)
        }
        MessageKind::Event => {
            let events = stored::decode_event_pack(&envelope.encoded)?
                .into_iter()
                .filter_map(|e| match e {
                    Ok(e) => Some(e),
                    Err(error) => {
                        tracing::warn!(node = %ctx.id, pack = %entry.message, %error, "unusable stored transport event dropped");
                        None
                    }
                })
                .collect();
            (Handed::Events(events), None)
        }
    };
    Ok(Some(HandoffItem {
        seq: 0, // numbered when sent ([`super::window::Window::send`])
        id: entry.message.id.to_string(),
        message,
        // Events name where they go themselves.
        recipients: match envelope.kind {
            MessageKind::Event => Vec::new(),
            MessageKind::Document | MessageKind::Status => entry.recipients.clone(),
        },
        origin_receipt,
        bytes,
    }))
}
