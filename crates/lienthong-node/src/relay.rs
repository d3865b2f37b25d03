//! Hand-off between neighbouring nodes.
//!
//! - [`RelayApi`] receives: only from directory neighbours (identity from the peer
//!   certificate); items are admitted concurrently and each is acknowledged once durable.
//! - [`run_link`] sends: one long-lived stream per neighbour, fed from the durable outbox
//!   towards it; an entry leaves the outbox only after the neighbour's acknowledgement.
//!   After a failure the link reconnects with back-off and re-sends what was not
//!   acknowledged, with the same ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, NodeId, TransportEventKind, now_millis};
use lienthong_pki::Identity;
use lienthong_proto::pb::relay_service_client::RelayServiceClient;
use lienthong_proto::pb::relay_service_server::RelayService;
use lienthong_proto::{DocumentWithContent, document_to_pb, pb, stored};
use lienthong_store::{MessageKind, OutboxEntry};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::node::{Node, Origin, RelayOutcome};

/// Items a receiving node admits at once on one stream.
const RECEIVE_CONCURRENCY: usize = 256;
/// Items a sending link keeps unacknowledged.
const SEND_WINDOW: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (node, tx, from) = (node.clone(), tx.clone(), from.clone());
                tokio::spawn(async move {
                    let ack = receive(&node, &from, item).await;
                    drop(permit);
                    let _ = tx.send(Ok(ack)).await;
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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
        Some(pb::relay_item::Message::Event(e)) => node.admit_event(e, from).await,
        None => Err(lienthong_proto::Error::Missing { field: "message" }.into()),
    }
}

/// Builds the hand-off item for an outbox entry.
async fn item_for(node: &Node, entry: &OutboxEntry, seq: u64) -> Result<pb::RelayItem, Error> {
    let stored_message = node
        .store()
        .message(&entry.id)?
        .ok_or_else(|| Error::Store(lienthong_store::Error::NotFound(entry.id.to_string())))?;
    let envelope = &stored_message.envelope;
    let receipt_pb = || -> Result<Option<pb::Receipt>, Error> {
        Ok(Some(
            (&stored::decode_receipt(&stored_message.receipt)?).into(),
        ))
    };
    let (message, origin_receipt) = match envelope.kind {
        MessageKind::Document => {
            let document = stored::decode_document(&envelope.encoded)?;
            let mut contents = Vec::with_capacity(document.attachments.len());
            for a in &document.attachments {
                contents.push(node.store().blob(a.sha256).await?);
            }
            (
                pb::relay_item::Message::Document(document_to_pb(&document, Some(&contents))),
                receipt_pb()?,
            )
        }
        MessageKind::Status => {
            let notice = stored::decode_status(&envelope.encoded)?;
            (
                pb::relay_item::Message::Status((&notice).into()),
                receipt_pb()?,
            )
        }
        MessageKind::Event => {
            let event = pb::RelayEvent::decode(envelope.encoded.as_ref())
                .map_err(|e| lienthong_proto::Error::Decode(e.to_string()))?;
            (pb::relay_item::Message::Event(event), None)
        }
    };
    Ok(pb::RelayItem {
        seq,
        message: Some(message),
        id: entry.id.to_string(),
        recipients: entry.recipients.iter().map(|r| r.to_string()).collect(),
        origin_receipt,
    })
}

/// Keeps the link towards neighbour `hop` until `stop` turns true.
pub async fn run_link(node: Arc<Node>, hop: NodeId, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        match serve_link(&node, &hop, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::info!(node = %node.id(), %hop, error = %e, "link down; retrying");
            }
        }
        // Jitter spreads reconnects of many links.
        let jitter = Duration::from_millis(now_millis() as u64 % 100);
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: returns `Ok` on shutdown, `Err` when the link broke.
async fn serve_link(
    node: &Arc<Node>,
    hop: &NodeId,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut signal = node.watch_outbox(hop);
    // Wait for work before dialling, so idle links cost nothing.
    while node.store().outbox(hop, 1)?.is_empty() {
        tokio::select! {
            _ = signal.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    let endpoint = node
        .directory()
        .current()
        .node(hop)
        .map(|n| n.endpoint.clone())
        .ok_or_else(|| Error::NotFound(format!("neighbour {hop} is not in the directory")))?;
    let config = lienthong_pki::client_config(node.tls_files(), Some(Identity::Node(hop.clone())))?;
    let channel = crate::transport::channel(&endpoint, config)?;
    let max = node.limits().max_message_bytes;
    let mut client = RelayServiceClient::new(channel)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let (tx, rx) = mpsc::channel::<pb::RelayItem>(SEND_WINDOW);
    let mut acks = client
        .handoff(ReceiverStream::new(rx))
        .await
        .map_err(|s| Error::Transport(format!("hand-off to {hop} refused: {s}")))?
        .into_inner();
    tracing::info!(node = %node.id(), %hop, "link up");

    let mut in_flight: HashMap<u64, OutboxEntry> = HashMap::new();
    // The last key read per priority on this connection: a refill reads only entries
    // after it, so nothing is read twice (new entries of a priority sort after its old
    // ones). A new connection starts from the head and re-sends whatever is still
    // unacknowledged; the neighbour deduplicates.
    let mut cursors: [Option<Bytes>; 4] = Default::default();
    let mut seq = 0u64;
    let mut finishing = tokio::task::JoinSet::new();
    loop {
        // Refill the window, urgent priorities first.
        if in_flight.len() < SEND_WINDOW {
            signal.borrow_and_update();
            for priority in (0..=3u8).rev() {
                let room = SEND_WINDOW - in_flight.len();
                if room == 0 {
                    break;
                }
                let cursor = &mut cursors[priority as usize];
                for entry in node
                    .store()
                    .outbox_lane(hop, priority, cursor.as_deref(), room)?
                {
                    seq += 1;
                    let item = item_for(node, &entry, seq).await?;
                    *cursor = Some(entry.key.clone());
                    in_flight.insert(seq, entry);
                    tx.send(item)
                        .await
                        .map_err(|_| Error::Transport(format!("stream to {hop} closed")))?;
                }
            }
        }
        tokio::select! {
            ack = acks.message() => {
                let ack = match ack {
                    Ok(Some(ack)) => ack,
                    Ok(None) => return Err(Error::Transport(format!("{hop} closed the stream"))),
                    Err(s) => return Err(Error::Transport(format!("stream to {hop}: {s}"))),
                };
                let Some(entry) = in_flight.remove(&ack.seq) else { continue };
                let (node, hop) = (node.clone(), hop.clone());
                finishing.spawn(async move { finish(&node, &hop, entry, ack).await });
            }
            Some(done) = finishing.join_next(), if !finishing.is_empty() => {
                if let Ok(result) = done {
                    result?;
                }
            }
            _ = signal.changed(), if in_flight.len() < SEND_WINDOW => {}
            _ = tokio::time::sleep(Duration::from_secs(1)), if in_flight.is_empty() => {}
            _ = stop.changed() => return Ok(()),
        }
    }
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

/// After the neighbour answered: the entry leaves the outbox and the sender hears of it.
async fn finish(
    node: &Node,
    hop: &NodeId,
    entry: OutboxEntry,
    ack: pb::RelayAck,
) -> Result<(), Error> {
    let refused = ack.refused_code != 0;
    // A refusal for a passing reason on the neighbour's side (its store unavailable, its
    // disk full) is not the message's fault: keep it, break the link, and re-send after
    // the back-off. Only a refusal of the message itself dead-letters it.
    if refused && is_transient(ack.refused_code) {
        return Err(Error::Transport(format!(
            "{hop} could not take {} for now: {}",
            entry.id, ack.refused_reason
        )));
    }
    node.store().outbox_remove(hop, &entry.key).await?;
    let Some(m) = node.store().message(&entry.id)? else {
        return Ok(());
    };
    let sender = match m.envelope.kind {
        MessageKind::Document => stored::decode_document(&m.envelope.encoded)?
            .sender()?
            .clone(),
        MessageKind::Status => stored::decode_status(&m.envelope.encoded)?
            .sender()?
            .clone(),
        MessageKind::Event => return Ok(()),
    };
    let id: &DocumentId = &entry.id;
    for r in &entry.recipients {
        // A hand-off is recorded here; the sender's home node learns every hop from the
        // trace that comes back with the delivery, so only refusals travel back now.
        let event = if refused {
            lienthong_core::TransportEvent {
                kind: TransportEventKind::DeadLettered,
                at: now_millis(),
                node: node.id().clone(),
                agency: Some(r.clone()),
                detail: format!("refused by {hop}: {}", ack.refused_reason),
            }
        } else {
            lienthong_core::TransportEvent {
                kind: TransportEventKind::Forwarded,
                at: now_millis(),
                node: node.id().clone(),
                agency: Some(r.clone()),
                detail: format!("to {hop}"),
            }
        };
        if refused {
            node.record(id, &sender, event).await?;
        } else {
            node.store()
                .append_event(id, stored::encode_event(&event).into())
                .await?;
        }
    }
    Ok(())
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
