//! The one way a document or a status notice enters a node, from a DMS or from a
//! neighbour: check it, deduplicate it, stamp it, route it and store it in one durable
//! write ([`admit`]). What only a DMS must pass first — it speaks for its own agency, its
//! recipients exist, the lifecycle allows the message — is in [`from_agency`]; where the
//! recipients go from here is [`plan`].
//!
//! The steps, whatever the kind of message:
//! 1. a document's attachments: each carried inline and matching its size and digest, or
//!    held here complete (uploaded by the sending agency, or pushed by the neighbour);
//! 2. the sender's signature over the canonical bytes and, from a neighbour, its signed
//!    trace entry ([`lienthong_pki::verify`]);
//! 3. deduplication on the sender and id: the same content gets the original receipt,
//!    other content `ALREADY_EXISTS`; only a new message needs disk room;
//! 4. the lifecycle index entries of the documents it concerns, written before it;
//! 5. inline attachment bytes to their blob files;
//! 6. the receipt (this node's, or the origin's for a relayed message) and this node's
//!    trace entry;
//! 7. the routing plan, the transport events of the admission, and the one durable write
//!    of message, receipt, events, inbox and outbox entries and dead letters;
//! 8. waking the inboxes and links that grew, and telling the sender's home node.

pub mod from_agency;
pub mod plan;

use bytes::Bytes;
use lienthong_core::blob::Digest;
use lienthong_core::canonical;
use lienthong_core::sign::sha256;
use lienthong_core::{
    AgencyCode, MessageKey, NodeId, Receipt, StatusNotice, TraceEntry, TransportEventKind,
    now_millis,
};
use lienthong_pki::verify;
use lienthong_proto::{DocumentWithContent, stored};
use lienthong_store::{AcceptOutcome, Delivery, Envelope, MessageKind};

use crate::Error;
use crate::context::Context;
use crate::events;
use plan::Plan;

/// Where a message came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A DMS of an agency homed here.
    Agency(AgencyCode),
    /// A neighbouring node, with the origin node's receipt it carried.
    Relay { from: NodeId, receipt: Receipt },
}

/// Whether an admitted message was new here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// Stored before with the same content; answered with the original receipt.
    Duplicate,
}

/// A message on its way in.
#[derive(Debug)]
pub enum Incoming {
    /// A document for `recipients` (all of its recipients from a DMS; those reached
    /// through this node when relayed).
    Document {
        message: Box<DocumentWithContent>,
        recipients: Vec<AgencyCode>,
    },
    /// A status notice, for the agency it names.
    Status(Box<StatusNotice>),
}

/// Admits `message` from `origin`: see the module documentation for the steps. Returns
/// the receipt (the original one for a duplicate) and whether it was new.
pub async fn admit(
    ctx: &Context,
    message: Incoming,
    origin: Origin,
) -> Result<(Receipt, Outcome), Error> {
    let mut message = Checked::new(ctx, message, &origin).await?;
    let key = message.key.clone();
    let content_digest = match dedup(ctx, &message, &origin)? {
        Dedup::Duplicate(receipt) => return Ok((receipt, Outcome::Duplicate)),
        Dedup::New { content_digest } => content_digest,
    };
    crate::lifecycle::index(ctx, &key, &message.lifecycle_targets()).await?;
    for (digest, content) in std::mem::take(&mut message.inline_blobs) {
        ctx.store.put_blob(digest, content).await?;
    }
    let receipt = match &origin {
        Origin::Agency(_) => ctx.signer.receipt(&key.id, content_digest)?,
        Origin::Relay { receipt, .. } => receipt.clone(),
    };
    let hop = ctx.signer.trace_entry(&key.id, &content_digest)?;
    message.push_trace(hop);

    let d = ctx.directory.current();
    let plan = Plan::new(ctx, &d, &message.sender, &message.recipients(), &origin);
    let mut recorded = vec![match &origin {
        Origin::Agency(_) => ctx.event(TransportEventKind::Accepted, None, message.accepted()),
        Origin::Relay { from, .. } => ctx.event(
            TransportEventKind::Forwarded,
            None,
            format!("received from {from}"),
        ),
    }];
    // Events for the sender's home node: where the message reached its recipients' inboxes
    // or stopped.
    let mut for_sender = Vec::new();
    for r in &plan.local {
        let e = ctx.event(
            TransportEventKind::Delivered,
            Some(r),
            format!("inbox of {r} at {}", ctx.id),
        );
        recorded.push(e.clone());
        for_sender.push(e);
    }
    for (r, reason) in &plan.dead {
        let e = ctx.event(TransportEventKind::DeadLettered, Some(r), reason.clone());
        recorded.push(e.clone());
        for_sender.push(e);
    }
    let envelope = Envelope {
        key: key.clone(),
        kind: message.kind(),
        priority: message.priority(),
        content_digest,
        encoded: message.encode().into(),
        received_at: now_millis(),
    };
    let hops: Vec<NodeId> = plan.via.iter().map(|(h, _)| h.clone()).collect();
    let delivery = Delivery {
        inboxes: plan.local.clone(),
        outboxes: plan.via.clone(),
        dead: plan.dead.clone(),
    };
    let outcome = ctx
        .store
        .accept(
            envelope,
            delivery,
            stored::encode_receipt(&receipt).into(),
            recorded
                .iter()
                .map(|e| stored::encode_event(e).into())
                .collect(),
        )
        .await?;
    if let AcceptOutcome::Duplicate { receipt } = outcome {
        return Ok((stored::decode_receipt(&receipt)?, Outcome::Duplicate));
    }
    ctx.signals.inboxes(&plan.local);
    ctx.signals.hops(&hops);
    message.after_accept(ctx, &d, &plan, for_sender).await?;
    tracing::debug!(id = %key, local = plan.local.len(), hops = hops.len(), "message admitted");
    Ok((receipt, Outcome::Stored))
}

/// A message whose kind-specific checks passed, ready for the shared steps.
struct Checked {
    key: MessageKey,
    sender: AgencyCode,
    message: Incoming,
    /// Attachments that came inline, to write as blobs once the message is new.
    inline_blobs: Vec<(Digest, Bytes)>,
}

impl Checked {
    /// Step 1: the attachments of a document, each inline and matching, or held here.
    async fn new(ctx: &Context, message: Incoming, origin: &Origin) -> Result<Self, Error> {
        let (key, sender) = match &message {
            Incoming::Document { message, .. } => {
                (message.document.key()?, message.document.sender()?.clone())
            }
            Incoming::Status(notice) => (notice.key()?, notice.sender()?.clone()),
        };
        let mut inline_blobs = Vec::new();
        if let Incoming::Document { message, .. } = &message {
            let attachments = &message.document.attachments;
            if message.contents.len() != attachments.len() {
                return Err(Error::InvalidArgument(format!(
                    "{} attachments described but {} carried",
                    attachments.len(),
                    message.contents.len()
                )));
            }
            // An attachment comes inline, or, when large, without content: its bytes were
            // streamed before (UploadAttachment from a DMS, PushBlob from a neighbour) and
            // are held complete, their digest verified when they completed.
            for (attachment, content) in attachments.iter().zip(&message.contents) {
                if content.is_empty() && attachment.size > 0 {
                    let uploader = match origin {
                        Origin::Agency(agency) => Some(agency),
                        Origin::Relay { .. } => None,
                    };
                    crate::attachments::check_held(ctx, attachment, uploader).await?;
                    continue;
                }
                if content.len() as u64 != attachment.size {
                    return Err(Error::AttachmentMismatch(format!(
                        "attachment {:?} declares {} bytes but carries {}",
                        attachment.name,
                        attachment.size,
                        content.len()
                    )));
                }
                if sha256(content) != attachment.sha256 {
                    return Err(Error::AttachmentMismatch(format!(
                        "attachment {:?} does not match its SHA-256 digest; the file changed \
                         after it was signed, or was damaged in transit",
                        attachment.name
                    )));
                }
                inline_blobs.push((attachment.sha256, content.clone()));
            }
        }
        Ok(Checked {
            key,
            sender,
            message,
            inline_blobs,
        })
    }

    /// The canonical bytes the sender signed.
    fn signed_bytes(&self) -> Vec<u8> {
        match &self.message {
            Incoming::Document { message, .. } => canonical::document_bytes(&message.document),
            Incoming::Status(notice) => canonical::status_bytes(notice),
        }
    }

    fn verify_sender(&self, ctx: &Context) -> Result<(), verify::Refused> {
        match &self.message {
            Incoming::Document { message, .. } => {
                verify::document(&ctx.trust, &message.document, &self.sender)
            }
            Incoming::Status(notice) => verify::status_notice(&ctx.trust, notice, &self.sender),
        }
    }

    /// How the message entered from the national platform, if a bridge imported it.
    fn imported(&self) -> Option<&lienthong_core::Imported> {
        match &self.message {
            Incoming::Document { message, .. } => message.document.imported.as_ref(),
            Incoming::Status(notice) => notice.imported.as_ref(),
        }
    }

    fn trace(&self) -> &[TraceEntry] {
        match &self.message {
            Incoming::Document { message, .. } => &message.document.trace,
            Incoming::Status(notice) => &notice.trace,
        }
    }

    fn push_trace(&mut self, entry: TraceEntry) {
        match &mut self.message {
            Incoming::Document { message, .. } => message.document.trace.push(entry),
            Incoming::Status(notice) => notice.trace.push(entry),
        }
    }

    /// Step 4: the documents whose lifecycle this message concerns (an unreadable
    /// reference marks nothing).
    fn lifecycle_targets(&self) -> Vec<MessageKey> {
        match &self.message {
            Incoming::Document { message, .. } => crate::lifecycle::references(&message.document)
                .unwrap_or_default()
                .iter()
                .map(|target| MessageKey::sent_by(&self.sender, target))
                .collect(),
            Incoming::Status(notice) => notice.document_key().ok().into_iter().collect(),
        }
    }

    fn recipients(&self) -> Vec<AgencyCode> {
        match &self.message {
            Incoming::Document { recipients, .. } => recipients.clone(),
            Incoming::Status(notice) => vec![notice.to.clone()],
        }
    }

    fn kind(&self) -> MessageKind {
        match &self.message {
            Incoming::Document { .. } => MessageKind::Document,
            Incoming::Status(_) => MessageKind::Status,
        }
    }

    /// Urgent documents overtake routine ones on every queue; a status notice goes as
    /// urgent (1).
    fn priority(&self) -> u8 {
        match &self.message {
            Incoming::Document { message, .. } => message.document.priority() as u8,
            Incoming::Status(_) => 1,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match &self.message {
            Incoming::Document { message, .. } => stored::encode_document(&message.document),
            Incoming::Status(notice) => stored::encode_status(notice),
        }
    }

    /// The detail of the "accepted" event at the origin node.
    fn accepted(&self) -> String {
        match &self.message {
            Incoming::Document { .. } => format!("from {}", self.sender),
            Incoming::Status(notice) => {
                format!("status {} from {}", notice.code.code(), self.sender)
            }
        }
    }

    /// Step 8, what differs by kind: a document's deliveries and dead letters go back to
    /// its sender's home node, with the hop trace; a notice that reached its addressee
    /// here is pointed at from the document's log, for `track`.
    async fn after_accept(
        &self,
        ctx: &Context,
        d: &lienthong_core::DirectoryIndex,
        plan: &Plan,
        for_sender: Vec<lienthong_core::TransportEvent>,
    ) -> Result<(), Error> {
        match &self.message {
            Incoming::Document { message, .. } => {
                if ctx.towards_sender(d, &self.sender).is_some() {
                    for e in for_sender {
                        events::forward(
                            ctx,
                            d,
                            &self.key,
                            &self.sender,
                            e,
                            &message.document.trace,
                        )
                        .await?;
                    }
                }
            }
            Incoming::Status(notice) => {
                if !plan.local.is_empty()
                    && let Ok(document_key) = notice.document_key()
                    && ctx.store.has_message(&document_key)?
                {
                    let pointer = ctx.event(
                        TransportEventKind::StatusReceived,
                        Some(&self.sender),
                        notice.id.to_string(),
                    );
                    ctx.store
                        .append_event(&document_key, stored::encode_event(&pointer).into())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// What deduplication decided.
enum Dedup {
    /// Stored before with the same content: answer with the original receipt.
    Duplicate(Receipt),
    New {
        content_digest: [u8; 32],
    },
}

/// Steps 2 and 3: the sender's signature, the previous hop's trace entry for a relayed
/// message, and deduplication on the message's key.
fn dedup(ctx: &Context, message: &Checked, origin: &Origin) -> Result<Dedup, Error> {
    message.verify_sender(ctx).map_err(Error::from)?;
    verify::vouched_by(
        &ctx.directory.current(),
        &message.sender,
        message.imported(),
    )?;
    let signed = message.signed_bytes();
    let content_digest = sha256(&signed);
    let key = &message.key;
    if let Origin::Relay { from, .. } = origin {
        verify::last_hop(&ctx.trust, &key.id, &content_digest, message.trace(), from)
            .map_err(Error::from)?;
    }
    match ctx.store.message(key)? {
        Some(existing) if existing.envelope.content_digest == content_digest => {
            Ok(Dedup::Duplicate(stored::decode_receipt(&existing.receipt)?))
        }
        Some(_) => Err(Error::Conflict(format!(
            "message {} was already accepted with different content; send changed content \
             under a new id",
            key.id
        ))),
        // Only a new message needs room; duplicates are answered from the store.
        None => {
            ctx.check_disk_space()?;
            Ok(Dedup::New { content_digest })
        }
    }
}
