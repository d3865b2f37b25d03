//! The document lifecycle (DESIGN §3) as one node sees it: business statuses 01–06, 13,
//! 15 and 16, and revoke (1), update (2) and replace (3) documents — the rules the node
//! that accepts from a DMS enforces, and the state inboxes and `track` show.
//!
//! # What a node keeps
//! Only an index next to the messages themselves. When a node admits (from a DMS or a
//! neighbour) a status notice about document D, or a revoke, update or replace
//! referencing D, it appends a [`TransportEventKind::Lifecycle`] entry naming that message
//! to D's event log, in a durable write made *before* the message is stored. D's
//! [`BusinessState`] is folded from the messages those entries name, read from the store:
//!
//! - an entry whose message was never stored (a crash between the two writes, or a
//!   refusal after the entry) counts for nothing; the sender re-sends what it holds no
//!   receipt for, the entry is written again and counted once;
//! - a stored message always has its entry, so no state is lost, and the state can never
//!   say more than the messages do;
//! - the entry is written whether D is here yet or not: a revoke that overtakes its
//!   original on a priority lane still marks it when the original arrives.
//!
//! Every node on the path keeps the index, so the recipient's home node marks the
//! original in the recipient's inbox when a revoke arrives by relay, and the sender's home
//! node knows every recipient's latest status for `track`.
//!
//! # The rules (at the node that accepts from the DMS)
//! The rules themselves are pure and live in [`lienthong_core::lifecycle`]; this module
//! looks up what they judge (the referenced documents among the sender's own, the state
//! from the index) and keeps the index.
//!
//! A check and the admission it allows run under the documents' `LifecycleLocks`, so
//! two concurrent messages cannot both pass a rule only one of them may; a re-send of a
//! stored message is answered from the store and not checked again.

use lienthong_core::lifecycle::{self, BusinessState};
use lienthong_core::{
    AgencyCode, Document, DocumentId, MessageKey, StatusNotice, TransportEventKind,
};
use lienthong_proto::stored;
use lienthong_store::MessageKind;

use crate::Error;
use crate::context::Context;

/// The documents a revoke, update or replace refers to (see [`lifecycle::references`]).
pub fn references(document: &Document) -> Result<Vec<DocumentId>, Error> {
    Ok(lifecycle::references(document)?)
}

/// Writes the lifecycle index entries saying that `message` concerns each of `targets`,
/// durably; called before `message` itself is stored. An entry names the message by its
/// id (the detail) and its sender (the agency).
pub async fn index(
    ctx: &Context,
    message: &MessageKey,
    targets: &[MessageKey],
) -> Result<(), Error> {
    for target in targets {
        let entry = ctx.event(
            TransportEventKind::Lifecycle,
            message.sender.as_ref(),
            message.id.to_string(),
        );
        ctx.store
            .append_event(target, stored::encode_event(&entry).into())
            .await?;
    }
    Ok(())
}

/// The lifecycle of document `key` at this node.
pub fn business_state(ctx: &Context, key: &MessageKey) -> Result<BusinessState, Error> {
    let mut state = BusinessState::default();
    let mut seen: Vec<MessageKey> = Vec::new();
    for raw in ctx.store.events(key)? {
        let event = stored::decode_event(&raw)?;
        if event.kind != TransportEventKind::Lifecycle {
            continue;
        }
        let (Ok(message), Some(sender)) = (DocumentId::parse(&event.detail), &event.agency) else {
            continue;
        };
        let message = MessageKey::sent_by(sender, &message);
        if seen.contains(&message) {
            continue;
        }
        // No message, no state: see the module documentation.
        let Some(stored_message) = ctx.store.message(&message)? else {
            continue;
        };
        seen.push(message);
        match stored_message.envelope.kind {
            // Only what the message itself says counts: a revoke, update or replace by the
            // document's own sender, a notice about this sender's document.
            MessageKind::Document => {
                let d = stored::decode_document(&stored_message.envelope.encoded)?;
                if key.sender.as_ref() == d.sender().ok()
                    && references(&d).is_ok_and(|r| r.contains(&key.id))
                {
                    state.apply_document(&d);
                }
            }
            MessageKind::Status => {
                let n = stored::decode_status(&stored_message.envelope.encoded)?;
                if n.document_key().is_ok_and(|d| d == *key) {
                    state.apply_status(&n);
                }
            }
            MessageKind::Event => {}
        }
    }
    Ok(state)
}

/// The lifecycle rules for a status notice from a DMS about `original` (already checked:
/// the caller is its sender for 13, else one of its recipients).
pub fn check_status(
    ctx: &Context,
    caller: &AgencyCode,
    notice: &StatusNotice,
    original: &Document,
) -> Result<(), Error> {
    let state = business_state(ctx, &original.key()?)?;
    Ok(lifecycle::check_status(caller, notice, original, &state)?)
}

/// The lifecycle rules for a revoke, update or replace from the DMS of `caller`: each
/// referenced document is looked up among the caller's own (a document of another sender
/// with that id is not the caller's to act on, nor its business to learn of).
pub fn check_document(
    ctx: &Context,
    caller: &AgencyCode,
    document: &Document,
) -> Result<(), Error> {
    for target in references(document)? {
        let target_key = MessageKey::sent_by(caller, &target);
        let original = ctx
            .load_document(&target_key)?
            .ok_or_else(|| lifecycle::unknown_reference(document, &target, ctx.id.as_str()))?;
        let state = business_state(ctx, &target_key)?;
        lifecycle::check_reference(document, &original, &state)?;
    }
    Ok(())
}
