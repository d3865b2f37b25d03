//! A DMS's side of its node: the inbox of its agency (listed, paged, subscribed lane by
//! lane), fetching a message it is a party to, acknowledging it, and tracking it. Ids are
//! chosen by senders, so a message is found by its id within its sender
//! ([`find_for`]); a stored message found damaged is quarantined rather than failing the
//! whole inbox.

use std::sync::Arc;

use bytes::Bytes;
use lienthong_core::lifecycle::{BusinessMark, BusinessState, LatestStatus};
use lienthong_core::{
    AgencyCode, Document, DocumentId, MessageKey, Receipt, StatusNotice, TransportEvent,
    TransportEventKind, UnixMillis,
};
use lienthong_proto::stored;
use lienthong_store::{Digest, InboxEntry, MessageKind};
use tokio_stream::wrappers::ReceiverStream;

use crate::Error;
use crate::attachments::{self, ChunkStream};
use crate::context::{Context, is_damage};
use crate::events;

/// A message taken out of the store for a DMS.
#[derive(Debug)]
// A short-lived value returned once per fetch; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Fetched {
    Document {
        document: Document,
        contents: Vec<Bytes>,
        receipt: Receipt,
    },
    Status {
        notice: StatusNotice,
        receipt: Receipt,
    },
}

/// Inbox entry with what a DMS needs to decide whether to fetch it.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub entry: InboxEntry,
    pub from: AgencyCode,
    /// Trích yếu for documents; code and document id for status notices.
    pub subject: String,
    pub received_at: UnixMillis,
    /// For a document: revoked, replaced or updated, and by which message.
    pub business: Option<(BusinessMark, DocumentId)>,
    /// For a document: its business type, and the documents a revoke, update or
    /// replace refers to.
    pub business_type: lienthong_core::BusinessType,
    pub references: Vec<DocumentId>,
}

/// Entries of `agency`'s inbox after `after`, urgent first, with sender and subject.
pub fn inbox(
    ctx: &Context,
    agency: &AgencyCode,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<InboxItem>, Error> {
    Ok(describe_inbox(ctx, ctx.store.inbox(agency, after, limit)?)?.items)
}

/// Entries of `agency`'s inbox after `after` in order of arrival, for paging.
pub fn inbox_by_arrival(
    ctx: &Context,
    agency: &AgencyCode,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<InboxItem>, Error> {
    Ok(describe_inbox(ctx, ctx.store.inbox_by_arrival(agency, after, limit)?)?.items)
}

/// Entries of one priority lane of `agency`'s inbox after `after`, in cursor order.
pub fn inbox_lane(
    ctx: &Context,
    agency: &AgencyCode,
    priority: u8,
    after: Option<u64>,
    limit: usize,
) -> Result<InboxPage, Error> {
    describe_inbox(ctx, ctx.store.inbox_lane(agency, priority, after, limit)?)
}

/// Inbox entries with the sender and subject of their messages. A message whose
/// stored copy is damaged is quarantined (left out, logged once, reported by
/// [`Node::damaged`]) instead of failing the whole listing.
fn describe_inbox(
    ctx: &Context,
    entries: Vec<lienthong_store::InboxEntry>,
) -> Result<InboxPage, Error> {
    let read_up_to = entries.last().map(|e| e.cursor);
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let key = entry.message.clone();
        match describe_entry(ctx, entry) {
            Ok(item) => items.push(item),
            Err(e) if is_damage(&e) => ctx.quarantine.add(&ctx.id, &key, &e),
            Err(e) => return Err(e),
        }
    }
    Ok(InboxPage { items, read_up_to })
}

fn describe_entry(ctx: &Context, entry: lienthong_store::InboxEntry) -> Result<InboxItem, Error> {
    let m = ctx.store.message(&entry.message)?.ok_or_else(|| {
        Error::Store(lienthong_store::Error::Corrupt(format!(
            "inbox entry {} has no stored message",
            entry.message
        )))
    })?;
    let mut business_type = lienthong_core::BusinessType::New;
    let mut references = Vec::new();
    let (from, subject, business) = match entry.kind {
        MessageKind::Document => {
            let d = stored::decode_document(&m.envelope.encoded)?;
            let business = crate::lifecycle::business_state(ctx, &entry.message)?
                .mark()
                .map(|(mark, by)| (mark, by.clone()));
            business_type = d.business.business_type;
            references = crate::lifecycle::references(&d).unwrap_or_default();
            (d.sender()?.clone(), d.header.subject, business)
        }
        MessageKind::Status => {
            let n = stored::decode_status(&m.envelope.encoded)?;
            let subject = format!("status {} for {}", n.code, n.response_for.document_id);
            (n.sender()?.clone(), subject, None)
        }
        MessageKind::Event => {
            return Err(Error::Store(lienthong_store::Error::Corrupt(format!(
                "inbox entry {} is a transport event",
                entry.message
            ))));
        }
    };
    Ok(InboxItem {
        entry,
        from,
        subject,
        received_at: m.envelope.received_at,
        business,
        business_type,
        references,
    })
}

/// Whether `agency` may read message `id`: it sent it, or it is (one of) its
/// recipients.
fn party_to(agency: &AgencyCode, fetched: &Fetched) -> bool {
    match fetched {
        Fetched::Document { document, .. } => {
            document.sender().is_ok_and(|s| s == agency)
                || document.recipients().is_ok_and(|r| r.contains(agency))
        }
        Fetched::Status { notice, .. } => {
            notice.sender().is_ok_and(|s| s == agency) || notice.to == *agency
        }
    }
}

fn load(ctx: &Context, key: &MessageKey) -> Result<Option<Fetched>, Error> {
    let Some(m) = ctx.store.message(key)? else {
        return Ok(None);
    };
    if m.envelope.kind == MessageKind::Event {
        return Ok(None);
    }
    let receipt = stored::decode_receipt(&m.receipt)?;
    Ok(Some(match m.envelope.kind {
        MessageKind::Document => {
            let document = stored::decode_document(&m.envelope.encoded)?;
            Fetched::Document {
                document,
                contents: Vec::new(),
                receipt,
            }
        }
        MessageKind::Status | MessageKind::Event => Fetched::Status {
            notice: stored::decode_status(&m.envelope.encoded)?,
            receipt,
        },
    }))
}

fn not_found(ctx: &Context, id: &DocumentId) -> Error {
    Error::UnknownMessage(format!(
        "message {id} is not known to node {} for you",
        ctx.id
    ))
}

/// The message with id `id` that `caller` is a party to (it sent it, or it is
/// addressed to it), without attachment bytes. Ids are chosen by senders, so two
/// agencies may have used `id`: `from` names the sender, and is needed only when
/// messages of two senders with this id reached `caller`.
pub fn find_for(
    ctx: &Context,
    caller: &AgencyCode,
    id: &DocumentId,
    from: Option<&AgencyCode>,
) -> Result<(MessageKey, Fetched), Error> {
    let candidates = match from {
        Some(from) => vec![MessageKey::sent_by(from, id)],
        None => ctx.store.messages_with_id(id)?,
    };
    let mut found = Vec::new();
    for key in candidates {
        if key.sender.is_none() {
            continue; // a node's own message: no agency reads it
        }
        let loaded = match load(ctx, &key) {
            Err(e) if is_damage(&e) => {
                ctx.quarantine.add(&ctx.id, &key, &e);
                return Err(e);
            }
            loaded => loaded?,
        };
        if let Some(fetched) = loaded.filter(|f| party_to(caller, f)) {
            found.push((key, fetched));
        }
    }
    match found.len() {
        0 => Err(not_found(ctx, id)),
        1 => Ok(found.remove(0)),
        _ => Err(Error::AmbiguousId(format!(
            "several messages with id {id} concern you ({}); name the sender in the \
             request's `from`",
            found
                .iter()
                .filter_map(|(k, _)| k.sender.as_ref().map(|s| format!("from {s}")))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The message with its attachment bytes, for a party to it; large attachments come
/// without bytes (empty content, see [`crate::attachments::inline_flags`]) and are
/// fetched in chunks.
pub async fn fetch(
    ctx: &Context,
    caller: &AgencyCode,
    id: &DocumentId,
    from: Option<&AgencyCode>,
) -> Result<Fetched, Error> {
    let (key, mut fetched) = find_for(ctx, caller, id, from)?;
    if let Fetched::Document {
        document, contents, ..
    } = &mut fetched
    {
        let inline = crate::attachments::inline_flags(
            &document.attachments,
            crate::attachments::FETCH_INLINE_BYTES.min(crate::attachments::relay_inline_budget(
                ctx.limits.max_message_bytes,
            )),
        );
        for (a, inline) in document.attachments.iter().zip(inline) {
            contents.push(if inline {
                ctx.store.blob(a.sha256).await?
            } else {
                Bytes::new()
            });
        }
        if document.recipients()?.contains(caller) {
            let event = ctx.event(TransportEventKind::Fetched, Some(caller), String::new());
            events::record(ctx, &key, event).await?;
        }
    }
    Ok(fetched)
}

/// Removes `id` from `caller`'s inbox. Idempotent: acknowledging a message again
/// answers as the first time did.
pub async fn ack(
    ctx: &Context,
    caller: &AgencyCode,
    id: &DocumentId,
    from: Option<&AgencyCode>,
) -> Result<(), Error> {
    let not_in_inbox = || {
        Error::UnknownMessage(format!(
            "message {id} is not in the inbox of {caller} (never delivered, or already \
             acknowledged)"
        ))
    };
    let (key, fetched) = find_for(ctx, caller, id, from).map_err(|e| match e {
        Error::UnknownMessage(_) => not_in_inbox(),
        e => e,
    })?;
    let event = ctx.event(
        TransportEventKind::Acknowledged,
        Some(caller),
        String::new(),
    );
    if !ctx
        .store
        .ack(caller, &key, stored::encode_event(&event).into())
        .await?
    {
        // Acknowledged before (a DMS that retries after a lost answer): the same
        // answer again. Only an agency the message was never for is refused.
        let addressed = match &fetched {
            Fetched::Document { document, .. } => document.recipients()?.contains(caller),
            Fetched::Status { notice, .. } => notice.to == *caller,
        };
        return if addressed {
            Ok(())
        } else {
            Err(not_in_inbox())
        };
    }
    // The sender's home node hears of it too.
    if let Fetched::Document { .. } = fetched {
        events::tell_sender_home(ctx, &key, event).await?;
    }
    Ok(())
}

/// The transport events of `id`, the status notices received for it, and its
/// business state per recipient. Its sender sees everything; a recipient sees its
/// own part only (not when a co-recipient fetched it, nor what it answered).
pub fn track(
    ctx: &Context,
    caller: &AgencyCode,
    id: &DocumentId,
    from: Option<&AgencyCode>,
) -> Result<Tracked, Error> {
    let (key, fetched) = find_for(ctx, caller, id, from)?;
    let sent_by_caller = key.sender.as_ref() == Some(caller);
    let mut events = Vec::new();
    let mut statuses = Vec::new();
    for raw in ctx.store.events(&key)? {
        let event = stored::decode_event(&raw)?;
        // A hand-off retried after a broken link may bring an event twice.
        if events.contains(&event) {
            continue;
        }
        if event.kind == TransportEventKind::Lifecycle {
            continue; // index entries: shown as the business state below
        }
        // Events about one recipient are that recipient's and the sender's business.
        if !sent_by_caller && event.agency.as_ref().is_some_and(|a| a != caller) {
            continue;
        }
        if event.kind == TransportEventKind::StatusReceived
            && let Some(notice_sender) = &event.agency
        {
            let notice_key = MessageKey::sent_by(notice_sender, &DocumentId::parse(&event.detail)?);
            if let Some(Fetched::Status { notice, .. }) = load(ctx, &notice_key)? {
                statuses.push(notice);
            }
        }
        events.push(event);
    }
    // Events arrive from every node on the path, not in the order they happened.
    events.sort_by_key(|e| e.at);
    let mut business = crate::lifecycle::business_state(ctx, &key)?;
    let recipients = match &fetched {
        Fetched::Document { document, .. } if sent_by_caller => document.recipients()?,
        Fetched::Document { .. } => vec![caller.clone()],
        Fetched::Status { notice, .. } => vec![notice.to.clone()],
    };
    if !sent_by_caller {
        business = business.seen_by(caller);
    }
    let recipients = recipients
        .into_iter()
        .map(|agency| RecipientState {
            transport: events
                .iter()
                .rev()
                .find(|e| {
                    e.agency.as_ref() == Some(&agency)
                        && e.kind != TransportEventKind::StatusReceived
                })
                .map(|e| e.kind),
            status: business.latest.get(&agency).cloned(),
            agency,
        })
        .collect();
    Ok(Tracked {
        events,
        statuses,
        business,
        recipients,
    })
}

/// A page of an inbox lane: the entries described, and the last cursor read — past
/// quarantined entries too, so that a reader goes on after them.
#[derive(Debug)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub read_up_to: Option<u64>,
}

/// What [`track`] answers.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Transport events, by time.
    pub events: Vec<TransportEvent>,
    /// Status notices about the document that reached this node's agencies.
    pub statuses: Vec<StatusNotice>,
    pub business: BusinessState,
    /// The document's recipients (for its sender; else the caller alone).
    pub recipients: Vec<RecipientState>,
}

/// Where a document stands for one recipient: transport and business.
#[derive(Debug, Clone)]
pub struct RecipientState {
    pub agency: AgencyCode,
    /// The latest transport event about it.
    pub transport: Option<TransportEventKind>,
    /// The latest business status about it.
    pub status: Option<LatestStatus>,
}

/// `FetchAttachment`: the bytes of attachment `digest` of message `id` from `offset`, for a
/// party to it.
pub async fn fetch_attachment(
    ctx: &Arc<Context>,
    caller: &AgencyCode,
    id: &DocumentId,
    from: Option<&AgencyCode>,
    digest: Digest,
    offset: u64,
) -> Result<ChunkStream, Error> {
    let found = match find_for(ctx, caller, id, from) {
        Ok(found) => Some(found),
        Err(Error::UnknownMessage(_)) => None,
        Err(e) => return Err(e),
    };
    let attachment = match found {
        Some((_, Fetched::Document { document, .. })) => document
            .attachments
            .into_iter()
            .find(|a| a.sha256 == digest),
        _ => None,
    }
    .ok_or_else(|| {
        Error::UnknownMessage(format!(
            "document {id} with an attachment of SHA-256 {} is not known to node {} for you",
            hex::encode(digest),
            ctx.id
        ))
    })?;
    if offset > attachment.size {
        return Err(Error::InvalidArgument(format!(
            "offset {offset} is beyond the attachment's {} bytes",
            attachment.size
        )));
    }
    let chunk = attachments::chunk_bytes(ctx.limits.max_message_bytes);
    let rx = attachments::read_chunks(ctx.clone(), digest, attachment.size, offset, chunk);
    Ok(Box::pin(ReceiverStream::new(rx)))
}
