//! Hand-off between neighbouring nodes.
//!
//! - [`RelayApi`] receives: only from directory neighbours (identity from the peer
//!   certificate); items are admitted concurrently and each is acknowledged once durable.
//! - [`run_link`] sends: one long-lived stream per neighbour, fed from the durable outbox
//!   towards it; an entry leaves the outbox only after the neighbour's acknowledgement.
//!   After a failure the link reconnects with back-off, jitter and a circuit
//!   ([`crate::delivery::LinkHealth`]) and re-sends what was not acknowledged, with the
//!   same ids. Before each hand-off the stored message is checked: an expired one is
//!   dead-lettered, a corrupt one quarantined, neither is sent. On shutdown the link
//!   stops taking new entries and waits (up to [`DRAIN_GRACE`]) for the acknowledgements
//!   of those in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lienthong_core::{AgencyCode, NodeId, TransportEventKind, now_millis};
use lienthong_pki::Identity;
use lienthong_proto::pb::relay_service_client::RelayServiceClient;
use lienthong_proto::pb::relay_service_server::RelayService;
use lienthong_proto::{DocumentWithContent, document_to_pb, pb, stored};
use lienthong_store::{Handed, MessageKind, OutboxEntry};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::delivery::{self, LinkHealth, LinkPhase, Undeliverable};
use crate::node::{Node, Origin, RelayOutcome};

/// Items a receiving node admits at once on one stream.
const RECEIVE_CONCURRENCY: usize = 256;
/// Items a sending link keeps unacknowledged.
const SEND_WINDOW: usize = 256;
/// Encoded bytes a sending link keeps unacknowledged (one larger item still goes alone),
/// and a receiving stream admits at once: memory stays bounded with inline attachments.
const WINDOW_BYTES: usize = 64 * 1024 * 1024;
/// Large-attachment pushes a link runs at once, each on its own stream next to the
/// hand-off stream; a document past them waits in its lane.
const PUSHES_PER_LINK: usize = 2;
/// How long a stopping link waits for the acknowledgements of items in flight.
pub const DRAIN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct RelayApi {
    node: Arc<Node>,
}

impl RelayApi {
    pub fn new(node: Arc<Node>) -> Self {
        RelayApi { node }
    }
}

type AckStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::RelayAck, Status>> + Send>>;

#[tonic::async_trait]
impl RelayService for RelayApi {
    type HandoffStream = AckStream;

    async fn handoff(
        &self,
        req: Request<Streaming<pb::RelayItem>>,
    ) -> Result<Response<AckStream>, Status> {
        let from = self
            .node
            .authorize_neighbour(&crate::transport::peer(&req)?.identity)?;
        let mut items = req.into_inner();
        let node = self.node.clone();
        let (tx, rx) = mpsc::channel(RECEIVE_CONCURRENCY);
        let mut stopping = self.node.stopping();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(RECEIVE_CONCURRENCY));
            // In KiB: an item takes its size (at least 1, at most the whole budget).
            let budget_kib = WINDOW_BYTES / 1024;
            let bytes = Arc::new(Semaphore::new(budget_kib));
            loop {
                let next = tokio::select! {
                    next = items.message() => next,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                let item = match next {
                    Ok(Some(item)) => item,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(%from, error = %e, "relay stream ended");
                        return;
                    }
                };
                let kib = (item.encoded_len() / 1024).clamp(1, budget_kib) as u32;
                let (Ok(permit), Ok(room)) = (
                    permits.clone().acquire_owned().await,
                    bytes.clone().acquire_many_owned(kib).await,
                ) else {
                    return;
                };
                let (node, tx, from) = (node.clone(), tx.clone(), from.clone());
                tokio::spawn(async move {
                    let ack = receive(&node, &from, item).await;
                    drop((permit, room));
                    let _ = tx.send(Ok(ack)).await;
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn push_blob(
        &self,
        req: Request<Streaming<pb::BlobChunk>>,
    ) -> Result<Response<pb::BlobStatus>, Status> {
        self.node
            .authorize_neighbour(&crate::transport::peer(&req)?.identity)?;
        let status = crate::attachments::receive(&self.node, req.into_inner(), None).await?;
        Ok(Response::new(status))
    }

    async fn blob_status(
        &self,
        req: Request<pb::BlobStatusRequest>,
    ) -> Result<Response<pb::BlobStatus>, Status> {
        self.node
            .authorize_neighbour(&crate::transport::peer(&req)?.identity)?;
        let status = crate::attachments::status(&self.node, &req.into_inner().sha256, None).await?;
        Ok(Response::new(status))
    }
}

/// Admits one relayed item and says how it went.
async fn receive(node: &Node, from: &NodeId, item: pb::RelayItem) -> pb::RelayAck {
    let seq = item.seq;
    let id = item.id.clone();
    let result = admit(node, from, item).await;
    match result {
        Ok(outcome) => pb::RelayAck {
            seq,
            id,
            duplicate: matches!(outcome, RelayOutcome::Duplicate),
            refused_code: 0,
            refused_reason: String::new(),
        },
        Err(e) => {
            let status = Status::from(e);
            tracing::warn!(%from, %id, code = ?status.code(), reason = status.message(), "relayed item refused");
            pb::RelayAck {
                seq,
                id,
                duplicate: false,
                refused_code: status.code() as i32,
                refused_reason: status.message().to_string(),
            }
        }
    }
}

async fn admit(node: &Node, from: &NodeId, item: pb::RelayItem) -> Result<RelayOutcome, Error> {
    let recipients = item
        .recipients
        .iter()
        .map(|r| AgencyCode::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let receipt = || -> Result<lienthong_core::Receipt, Error> {
        Ok(item
            .origin_receipt
            .clone()
            .ok_or(lienthong_proto::Error::Missing {
                field: "origin_receipt",
            })?
            .try_into()?)
    };
    match item.message {
        Some(pb::relay_item::Message::Document(d)) => {
            let message = DocumentWithContent::try_from(d)?;
            let origin = Origin::Relay {
                from: from.clone(),
                receipt: receipt()?,
            };
            Ok(node.admit_document(message, recipients, origin).await?.1)
        }
        Some(pb::relay_item::Message::Status(n)) => {
            let origin = Origin::Relay {
                from: from.clone(),
                receipt: receipt()?,
            };
            Ok(node.admit_status(n.try_into()?, origin).await?.1)
        }
        Some(pb::relay_item::Message::Events(pack)) => node.admit_events(pack, from).await,
        None => Err(lienthong_proto::Error::Missing { field: "message" }.into()),
    }
}

/// What an outbox entry becomes when its turn comes.
enum Prepared {
    Item(Box<pb::RelayItem>, MessageKind),
    Undeliverable(Undeliverable),
    /// A document with attachments too large to travel inline, when blobs are not to be
    /// pushed now: the link pushes them on the side and prepares it again.
    AwaitsBlobs,
}

/// Whether preparing a hand-off may push large attachments to the neighbour first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Blobs {
    Push,
    Defer,
}

/// Builds the hand-off item for an outbox entry, unless the message expired or its stored
/// copy no longer matches its digest.
async fn prepare(
    node: &Arc<Node>,
    hop: &NodeId,
    entry: &OutboxEntry,
    blobs: Blobs,
) -> Result<Prepared, Error> {
    let stored_message = node
        .store()
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
    match delivery::expires_at(&stored_message, node.delivery()) {
        Ok(Some(deadline)) if deadline <= now_millis() => {
            return Ok(Prepared::Undeliverable(Undeliverable::Expired(deadline)));
        }
        Ok(_) => {}
        Err(e) => return corrupt(e),
    }
    match item_for(node, hop, entry, &stored_message, blobs).await {
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
    node: &Arc<Node>,
    hop: &NodeId,
    entry: &OutboxEntry,
    stored_message: &lienthong_store::StoredMessage,
    blobs: Blobs,
) -> Result<Option<pb::RelayItem>, Error> {
    let envelope = &stored_message.envelope;
    let corrupt = |what: &str| {
        Error::Store(lienthong_store::Error::Corrupt(format!(
            "{what} {} no longer matches the digest it was accepted with",
            entry.message
        )))
    };
    let receipt_pb = || -> Result<Option<pb::Receipt>, Error> {
        Ok(Some(
            (&stored::decode_receipt(&stored_message.receipt)?).into(),
        ))
    };
    let (message, origin_receipt) = match envelope.kind {
        MessageKind::Document => {
            let document = stored::decode_document(&envelope.encoded)?;
            if lienthong_core::canonical::document_digest(&document) != envelope.content_digest {
                return Err(corrupt("document"));
            }
            let inline = crate::attachments::inline_flags(
                &document.attachments,
                crate::attachments::relay_inline_budget(node.limits().max_message_bytes),
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
                    contents.push(node.store().blob(a.sha256).await.map_err(missing)?);
                } else {
                    crate::attachments::push(node, hop, a)
                        .await
                        .map_err(|e| match e {
                            Error::Store(e) => missing(e),
                            e => e,
                        })?;
                    contents.push(Bytes::new());
                }
            }
            (
                pb::relay_item::Message::Document(document_to_pb(&document, Some(&contents))),
                receipt_pb()?,
            )
        }
        MessageKind::Status => {
            let notice = stored::decode_status(&envelope.encoded)?;
            if lienthong_core::canonical::status_digest(&notice) != envelope.content_digest {
                return Err(corrupt("status notice"));
            }
            (
                pb::relay_item::Message::Status((&notice).into()),
                receipt_pb()?,
            )
        }
        MessageKind::Event => {
            let pack = pb::RelayEvents::decode(envelope.encoded.as_ref())
                .map_err(|e| lienthong_proto::Error::Decode(e.to_string()))?;
            (pb::relay_item::Message::Events(pack), None)
        }
    };
    Ok(Some(pb::RelayItem {
        seq: 0, // numbered when sent ([`Window::send`])
        message: Some(message),
        id: entry.message.id.to_string(),
        // Events name where they go themselves.
        recipients: match envelope.kind {
            MessageKind::Event => Vec::new(),
            MessageKind::Document | MessageKind::Status => {
                entry.recipients.iter().map(|r| r.to_string()).collect()
            }
        },
        origin_receipt,
    }))
}

/// Keeps the link towards neighbour `hop` until `stop` turns true.
pub async fn run_link(node: Arc<Node>, hop: NodeId, mut stop: watch::Receiver<bool>) {
    let mut health = LinkHealth::new(node.delivery().clone());
    loop {
        if *stop.borrow() {
            return;
        }
        let mut delivered = false;
        let error = match serve_link(&node, &hop, &mut stop, &mut delivered).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if delivered {
            health.succeeded();
        }
        let (wait, phase) = health.failed();
        let failures = health.failures();
        node.links().set(&hop, |s| {
            s.phase = phase;
            s.consecutive_failures = failures;
            s.retry_at = Some(now_millis() + wait.as_millis() as i64);
            s.last_error = error.to_string();
        });
        if phase == LinkPhase::Open {
            tracing::warn!(node = %node.id(), %hop, %error, failures, wait_ms = wait.as_millis() as u64, "link circuit open");
        } else {
            tracing::info!(node = %node.id(), %hop, %error, failures, wait_ms = wait.as_millis() as u64, "link down; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if health.circuit_open() {
            node.links().set(&hop, |s| s.phase = LinkPhase::HalfOpen);
        }
    }
}

/// One connection's life: returns `Ok` on shutdown, `Err` when the link broke. Sets
/// `delivered` once the neighbour has acknowledged an item.
async fn serve_link(
    node: &Arc<Node>,
    hop: &NodeId,
    stop: &mut watch::Receiver<bool>,
    delivered: &mut bool,
) -> Result<(), Error> {
    let mut signal = node.watch_outbox(hop);
    // Wait for work before dialling, so idle links cost nothing.
    if node.store().outbox(hop, 1)?.is_empty() {
        node.links().set(hop, |s| {
            if s.phase == LinkPhase::Up {
                s.phase = LinkPhase::Idle;
            }
        });
    }
    while node.store().outbox(hop, 1)?.is_empty() {
        tokio::select! {
            _ = signal.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    let mut client = relay_client(node, hop)?;
    let (tx, rx) = mpsc::channel::<pb::RelayItem>(SEND_WINDOW + PUSHES_PER_LINK);
    let mut acks = client
        .handoff(ReceiverStream::new(rx))
        .await
        .map_err(|s| Error::Transport(format!("hand-off to {hop} refused: {s}")))?
        .into_inner();
    tracing::info!(node = %node.id(), %hop, "link up");
    node.links().set(hop, |s| {
        s.phase = LinkPhase::Up;
        s.retry_at = None;
    });

    // Event packs stay well inside the neighbour's message size limit.
    let max_pack = node.limits().max_message_bytes / 4;
    let mut window = Window {
        in_flight: HashMap::new(),
        bytes: 0,
        seq: 0,
        answered_by: tokio::time::Instant::now(),
        ack_timeout: Duration::from_millis(node.delivery().ack_timeout_ms),
    };
    // The last key read per priority on this connection: a refill reads only entries
    // after it, so nothing is read twice (new entries of a priority sort after its old
    // ones). A new connection starts from the head and re-sends whatever is still
    // unacknowledged; the neighbour deduplicates.
    let mut cursors: [Option<Bytes>; 4] = Default::default();
    // Answered items leave the outbox in one write per round: while a round is being
    // written, the answers that arrive wait for the next.
    let mut finishing = tokio::task::JoinSet::new();
    let mut answered: Vec<(Vec<(OutboxEntry, MessageKind)>, pb::RelayAck)> = Vec::new();
    // Documents whose large attachments are being pushed on the side, so that the link
    // goes on with other items (urgent ones first) meanwhile.
    let mut pushing: tokio::task::JoinSet<(OutboxEntry, Result<Prepared, Error>)> =
        tokio::task::JoinSet::new();
    // Set on shutdown: no new items; the link ends once those in flight are answered.
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        if finishing.is_empty() && !answered.is_empty() {
            let (node, hop, round) = (node.clone(), hop.clone(), std::mem::take(&mut answered));
            finishing.spawn(async move { finish(&node, &hop, round).await });
        }
        if let Some(deadline) = draining {
            if window.in_flight.is_empty() && finishing.is_empty() && answered.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(node = %node.id(), %hop, unanswered = window.in_flight.len(), answered_unrecorded = answered.len(), "shutdown: items still unacknowledged, or answered but not yet recorded; they stay queued and go again later");
                return Ok(());
            }
        }
        // Refill the window, urgent priorities first.
        if draining.is_none() && window.has_room() {
            // Time spent here (reading and checking stored messages) is not the
            // neighbour's.
            let refilling = tokio::time::Instant::now();
            signal.borrow_and_update();
            for priority in (0..=3u8).rev() {
                if !window.has_room() {
                    break;
                }
                let room = SEND_WINDOW - window.in_flight.len();
                let cursor = &mut cursors[priority as usize];
                // Transport events read one after another travel as one item.
                let mut pack: Option<EventPack> = None;
                for entry in node
                    .store()
                    .outbox_lane(hop, priority, cursor.as_deref(), room)?
                {
                    if !window.has_room() {
                        break; // the rest of the lane waits for answers
                    }
                    let prepared = prepare(node, hop, &entry, Blobs::Defer).await?;
                    if matches!(prepared, Prepared::AwaitsBlobs) && pushing.len() >= PUSHES_PER_LINK
                    {
                        break; // this lane waits for a push to finish
                    }
                    *cursor = Some(entry.key.clone());
                    let (item, kind) = match prepared {
                        Prepared::Item(item, kind) => (*item, kind),
                        Prepared::Undeliverable(why) => {
                            delivery::dead_letter(node, hop, &entry, why).await?;
                            continue;
                        }
                        Prepared::AwaitsBlobs => {
                            let (node, hop) = (node.clone(), hop.clone());
                            pushing.spawn(async move {
                                let prepared = prepare(&node, &hop, &entry, Blobs::Push).await;
                                (entry, prepared)
                            });
                            continue;
                        }
                    };
                    if kind == MessageKind::Event {
                        match &mut pack {
                            Some(p) if p.fits(&item, max_pack) => p.join(entry, item),
                            _ => {
                                if let Some(p) = pack.take() {
                                    window.send(&tx, hop, p.item, p.entries).await?;
                                }
                                pack = Some(EventPack::new(entry, item));
                            }
                        }
                        continue;
                    }
                    if let Some(p) = pack.take() {
                        window.send(&tx, hop, p.item, p.entries).await?;
                    }
                    window.send(&tx, hop, item, vec![(entry, kind)]).await?;
                }
                if let Some(p) = pack.take() {
                    window.send(&tx, hop, p.item, p.entries).await?;
                }
            }
            window.answered_by += refilling.elapsed();
        }
        tokio::select! {
            ack = acks.message() => {
                let ack = match ack {
                    Ok(Some(ack)) => ack,
                    Ok(None) => return Err(Error::Transport(format!("{hop} closed the stream"))),
                    Err(s) => return Err(Error::Transport(format!("stream to {hop}: {s}"))),
                };
                let Some(entries) = window.answered(ack.seq) else { continue };
                *delivered = true;
                answered.push((entries, ack));
            }
            Some(done) = finishing.join_next(), if !finishing.is_empty() => {
                if let Ok(result) = done {
                    result?;
                }
            }
            Some(pushed) = pushing.join_next(), if !pushing.is_empty() && draining.is_none() => {
                let (entry, prepared) = pushed
                    .map_err(|e| Error::Transport(format!("blob push to {hop} stopped: {e}")))?;
                match prepared? {
                    Prepared::Item(item, kind) => {
                        window.send(&tx, hop, *item, vec![(entry, kind)]).await?;
                    }
                    Prepared::Undeliverable(why) => {
                        delivery::dead_letter(node, hop, &entry, why).await?;
                    }
                    Prepared::AwaitsBlobs => {
                        return Err(Error::Transport(format!(
                            "{} still awaits its attachments after a push to {hop}",
                            entry.message
                        )));
                    }
                }
            }
            _ = signal.changed(), if draining.is_none() && window.has_room() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)), if window.in_flight.is_empty() => {}
            // A neighbour that stops answering (frozen, or its disk stuck) while items are
            // in flight: give the connection up and reconnect after the back-off.
            _ = tokio::time::sleep_until(window.deadline()), if !window.in_flight.is_empty() && draining.is_none() => {
                return Err(Error::Transport(format!(
                    "{hop} acknowledged nothing for {} ms with {} items in flight",
                    window.ack_timeout.as_millis(),
                    window.in_flight.len()
                )));
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if draining.is_some() => {}
            _ = stop.changed(), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            }
        }
    }
}

/// A relay client towards neighbour `hop`, over mTLS that checks `hop`'s identity; the
/// connection is made on first use.
pub(crate) fn relay_client(
    node: &Node,
    hop: &NodeId,
) -> Result<RelayServiceClient<tonic::transport::Channel>, Error> {
    let endpoint = node
        .directory()
        .current()
        .node(hop)
        .map(|n| n.endpoint.clone())
        .ok_or_else(|| Error::NotFound(format!("neighbour {hop} is not in the directory")))?;
    let config = lienthong_pki::client_config(node.tls_files(), Some(Identity::Node(hop.clone())))?;
    let max = node.limits().max_message_bytes;
    Ok(
        RelayServiceClient::new(crate::transport::channel(&endpoint, config)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
}

/// Whether a refusal code means "try again later" rather than "this message is wrong".
fn is_transient(code: i32) -> bool {
    use tonic::Code;
    matches!(
        Code::from_i32(code),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Cancelled
    )
}

/// After the neighbour answered items: the entries it took leave the outbox and the
/// hand-offs are recorded, in one write for the whole round; then those it refused for
/// good are dead-lettered.
async fn finish(
    node: &Node,
    hop: &NodeId,
    round: Vec<(Vec<(OutboxEntry, MessageKind)>, pb::RelayAck)>,
) -> Result<(), Error> {
    let mut handed = Vec::new();
    let mut refused = Vec::new();
    let mut transient = None;
    for (entries, ack) in round {
        if ack.refused_code == 0 {
            handed.extend(entries);
        } else if is_transient(ack.refused_code) {
            // A refusal for a passing reason on the neighbour's side (its store
            // unavailable, its disk full) is not the message's fault: keep it, break the
            // link, and re-send after the back-off.
            transient.get_or_insert(Error::Transport(format!(
                "{hop} could not take {} for now: {}",
                ack.id, ack.refused_reason
            )));
        } else {
            // Only a refusal of the message itself dead-letters it.
            refused.extend(
                entries
                    .into_iter()
                    .map(|(entry, _)| (entry, ack.refused_reason.clone())),
            );
        }
    }
    // A hand-off is recorded here; the sender's home node learns every hop from the
    // trace that comes back with the delivery. Transport events have no log of their own.
    let handed: Vec<Handed> = handed
        .into_iter()
        .map(|(entry, kind)| {
            let events = match kind {
                MessageKind::Event => Vec::new(),
                MessageKind::Document | MessageKind::Status => entry
                    .recipients
                    .iter()
                    .map(|r| {
                        let e =
                            node.event(TransportEventKind::Forwarded, Some(r), format!("to {hop}"));
                        stored::encode_event(&e).into()
                    })
                    .collect(),
            };
            Handed {
                key: entry.key,
                message: entry.message,
                events,
            }
        })
        .collect();
    if !handed.is_empty() {
        node.store().outbox_remove(hop, handed).await?;
    }
    for (entry, reason) in refused {
        let why = Undeliverable::Refused {
            by: hop.clone(),
            reason,
        };
        delivery::dead_letter(node, hop, &entry, why).await?;
    }
    transient.map_or(Ok(()), Err)
}

/// Transport events read one after another from an outbox, on their way into one
/// hand-off item.
struct EventPack {
    item: pb::RelayItem,
    entries: Vec<(OutboxEntry, MessageKind)>,
    /// Encoded size of `item`, about.
    bytes: usize,
}

impl EventPack {
    fn new(entry: OutboxEntry, item: pb::RelayItem) -> Self {
        EventPack {
            bytes: item.encoded_len(),
            item,
            entries: vec![(entry, MessageKind::Event)],
        }
    }

    /// Whether `item` can join without the pack outgrowing `max` bytes.
    fn fits(&self, item: &pb::RelayItem, max: usize) -> bool {
        self.bytes + item.encoded_len() <= max
    }

    fn join(&mut self, entry: OutboxEntry, item: pb::RelayItem) {
        self.bytes += item.encoded_len();
        if let (
            Some(pb::relay_item::Message::Events(packed)),
            Some(pb::relay_item::Message::Events(more)),
        ) = (&mut self.item.message, item.message)
        {
            packed.events.extend(more.events);
        }
        self.entries.push((entry, MessageKind::Event));
    }
}

/// The slowest transfer a link allows for before it calls a silent neighbour frozen:
/// items in flight add their size at this rate to the acknowledgement deadline, so a
/// large document on a slow line is not mistaken for a dead peer.
pub(crate) const SLOWEST_BYTES_PER_SEC: f64 = 256.0 * 1024.0;

/// The items a link has sent on its current connection and not yet seen answered.
struct Window {
    /// Sequence number → the outbox entries the item carries and its encoded size.
    in_flight: HashMap<u64, (Vec<(OutboxEntry, MessageKind)>, usize)>,
    /// Encoded bytes in flight.
    bytes: usize,
    seq: u64,
    /// The last answer (or the first item after a quiet spell), plus `ack_timeout`.
    answered_by: tokio::time::Instant,
    ack_timeout: Duration,
}

impl Window {
    async fn send(
        &mut self,
        tx: &mpsc::Sender<pb::RelayItem>,
        hop: &NodeId,
        mut item: pb::RelayItem,
        entries: Vec<(OutboxEntry, MessageKind)>,
    ) -> Result<(), Error> {
        self.seq += 1;
        item.seq = self.seq;
        if self.in_flight.is_empty() {
            self.answered_by = tokio::time::Instant::now() + self.ack_timeout;
        }
        let size = item.encoded_len();
        self.bytes += size;
        self.in_flight.insert(self.seq, (entries, size));
        tx.send(item)
            .await
            .map_err(|_| Error::Transport(format!("stream to {hop} closed")))
    }

    /// The entries of item `seq`, once answered; `None` for an unknown one.
    fn answered(&mut self, seq: u64) -> Option<Vec<(OutboxEntry, MessageKind)>> {
        let (entries, size) = self.in_flight.remove(&seq)?;
        self.bytes -= size;
        self.answered_by = tokio::time::Instant::now() + self.ack_timeout;
        Some(entries)
    }

    /// Whether more items may go out: fewer than [`SEND_WINDOW`] and [`WINDOW_BYTES`].
    fn has_room(&self) -> bool {
        self.in_flight.len() < SEND_WINDOW && self.bytes < WINDOW_BYTES
    }

    /// When the link gives the connection up unless something is answered before.
    fn deadline(&self) -> tokio::time::Instant {
        self.answered_by + Duration::from_secs_f64(self.bytes as f64 / SLOWEST_BYTES_PER_SEC)
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient;
    use tonic::Code;

    #[test]
    fn only_refusals_of_the_message_itself_dead_letter_it() {
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Aborted,
        ] {
            assert!(is_transient(code as i32), "{code:?} must be retried");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::AlreadyExists,
            Code::NotFound,
        ] {
            assert!(!is_transient(code as i32), "{code:?} must be dead-lettered");
        }
    }
}
