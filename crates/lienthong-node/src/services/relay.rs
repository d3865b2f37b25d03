//! The relay protocol between neighbouring nodes, both sides.
//!
//! - [`RelayApi`] receives: only from directory neighbours (identity from the peer
//!   certificate); items are admitted concurrently ([`crate::admission`],
//!   [`crate::events`]) and each is acknowledged once durable.
//! - [`LinkClient`] sends, for [`crate::link`]: the hand-off stream, blob status and
//!   blob pushes, over mTLS that checks the neighbour's identity.

use std::sync::Arc;

use lienthong_core::{AgencyCode, BlobChunk, BlobStatus, Digest, NodeId, Receipt, RelayedEvent};
use lienthong_pki::Identity;
use lienthong_proto::pb::relay_service_client::RelayServiceClient;
use lienthong_proto::pb::relay_service_server::RelayService;
use lienthong_proto::{DocumentWithContent, document_to_pb, pb};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::admission::{self, Incoming, Origin, Outcome};
use crate::context::Context;
use crate::link::item::{Handed, HandoffAck, HandoffItem};
use crate::link::window::WINDOW_BYTES;
use crate::{attachments, events};

/// Items a receiving node admits at once on one stream.
const RECEIVE_CONCURRENCY: usize = 256;

#[derive(Debug, Clone)]
pub struct RelayApi {
    ctx: Arc<Context>,
}

impl RelayApi {
    pub fn new(ctx: Arc<Context>) -> Self {
        RelayApi { ctx }
    }

    fn neighbour<T>(&self, req: &Request<T>) -> Result<NodeId, Status> {
        Ok(super::authorize_neighbour(
            &self.ctx,
            &crate::transport::peer(req)?.identity,
        )?)
    }
}

type AckStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::RelayAck, Status>> + Send>>;

/// A stream of chunks from the wire, each checked.
fn chunks(
    stream: Streaming<pb::BlobChunk>,
) -> impl Stream<Item = Result<BlobChunk, Error>> + Unpin {
    stream.map(|c| match c {
        Ok(c) => BlobChunk::try_from(c).map_err(Error::from),
        Err(s) => Err(Error::Transport(s.to_string())),
    })
}

#[tonic::async_trait]
impl RelayService for RelayApi {
    type HandoffStream = AckStream;

    async fn handoff(
        &self,
        req: Request<Streaming<pb::RelayItem>>,
    ) -> Result<Response<AckStream>, Status> {
        let from = self.neighbour(&req)?;
        let mut items = req.into_inner();
        let ctx = self.ctx.clone();
        let (tx, rx) = mpsc::channel(RECEIVE_CONCURRENCY);
        let mut stopping = self.ctx.stopping();
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
                let kib = (lienthong_proto::wire_len(&item) / 1024).clamp(1, budget_kib) as u32;
                let (Ok(permit), Ok(room)) = (
                    permits.clone().acquire_owned().await,
                    bytes.clone().acquire_many_owned(kib).await,
                ) else {
                    return;
                };
                let (ctx, tx, from) = (ctx.clone(), tx.clone(), from.clone());
                tokio::spawn(async move {
                    let ack = receive(&ctx, &from, item).await;
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
        self.neighbour(&req)?;
        let status = attachments::receive(&self.ctx, chunks(req.into_inner()), None).await?;
        Ok(Response::new(status.into()))
    }

    async fn blob_status(
        &self,
        req: Request<pb::BlobStatusRequest>,
    ) -> Result<Response<pb::BlobStatus>, Status> {
        self.neighbour(&req)?;
        let digest = lienthong_proto::blob_digest(&req.into_inner().sha256).map_err(Error::from)?;
        let status = attachments::status(&self.ctx, &digest, None).await?;
        Ok(Response::new(status.into()))
    }
}

/// Admits one relayed item and says how it went.
async fn receive(ctx: &Context, from: &NodeId, item: pb::RelayItem) -> pb::RelayAck {
    let seq = item.seq;
    let id = item.id.clone();
    match admit(ctx, from, item).await {
        Ok(outcome) => pb::RelayAck {
            seq,
            id,
            duplicate: outcome == Outcome::Duplicate,
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

async fn admit(ctx: &Context, from: &NodeId, item: pb::RelayItem) -> Result<Outcome, Error> {
    let recipients = item
        .recipients
        .iter()
        .map(|r| AgencyCode::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let origin = || -> Result<Origin, Error> {
        let receipt: Receipt = item
            .origin_receipt
            .clone()
            .ok_or(lienthong_proto::Error::Missing {
                field: "origin_receipt",
            })?
            .try_into()?;
        Ok(Origin::Relay {
            from: from.clone(),
            receipt,
        })
    };
    let incoming = match item.message {
        Some(pb::relay_item::Message::Document(d)) => Incoming::Document {
            message: Box::new(DocumentWithContent::try_from(d)?),
            recipients,
        },
        Some(pb::relay_item::Message::Status(n)) => Incoming::Status(Box::new(n.try_into()?)),
        Some(pb::relay_item::Message::Events(pack)) => {
            // Each event on its own: one that does not decode costs only itself.
            let events = pack
                .events
                .into_iter()
                .map(|e| RelayedEvent::try_from(e).map_err(Error::from))
                .collect();
            events::admit_pack(ctx, events, from).await?;
            return Ok(Outcome::Stored);
        }
        None => return Err(lienthong_proto::Error::Missing { field: "message" }.into()),
    };
    Ok(admission::admit(ctx, incoming, origin()?).await?.1)
}

/// The sending side of the relay protocol towards one neighbour, over mTLS that checks
/// the neighbour's identity; the connection is made on first use.
#[derive(Debug, Clone)]
pub struct LinkClient {
    rpc: RelayServiceClient<tonic::transport::Channel>,
}

impl LinkClient {
    pub fn connect(ctx: &Context, hop: &NodeId) -> Result<Self, Error> {
        let endpoint = ctx
            .directory
            .current()
            .node(hop)
            .map(|n| n.endpoint.clone())
            .ok_or_else(|| {
                Error::NotNeighbour(format!("neighbour {hop} is not in the directory"))
            })?;
        let config =
            lienthong_pki::client_config(&ctx.tls_files, Some(Identity::Node(hop.clone())))?;
        let max = ctx.limits.max_message_bytes;
        Ok(LinkClient {
            rpc: RelayServiceClient::new(
                lienthong_client::transport::channel(&endpoint, config)
                    .map_err(|e| Error::Config(e.to_string()))?,
            )
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        })
    }

    /// Opens the hand-off stream: `items` go out as they come, answers come back.
    pub async fn handoff(
        &mut self,
        items: mpsc::Receiver<HandoffItem>,
    ) -> Result<impl Stream<Item = Result<HandoffAck, Error>> + Unpin + use<>, Status> {
        let out = ReceiverStream::new(items).map(|item| item_pb(&item));
        let acks = self.rpc.handoff(out).await?.into_inner();
        Ok(acks.map(|ack| match ack {
            Ok(ack) => Ok(HandoffAck {
                seq: ack.seq,
                id: ack.id,
                duplicate: ack.duplicate,
                refused: (ack.refused_code != 0)
                    .then(|| (tonic::Code::from_i32(ack.refused_code), ack.refused_reason)),
            }),
            Err(s) => Err(Error::Transport(format!("hand-off stream: {s}"))),
        }))
    }

    /// What the neighbour holds of blob `digest`.
    pub async fn blob_status(&mut self, digest: Digest) -> Result<BlobStatus, Status> {
        let status = self
            .rpc
            .blob_status(pb::BlobStatusRequest {
                sha256: bytes::Bytes::copy_from_slice(&digest),
            })
            .await?
            .into_inner();
        BlobStatus::try_from(status).map_err(|e| Status::internal(e.to_string()))
    }

    /// Pushes `chunks` of one blob; the neighbour answers what it holds after them.
    pub async fn push_blob(
        &mut self,
        chunks: mpsc::Receiver<BlobChunk>,
    ) -> Result<BlobStatus, Status> {
        let out = ReceiverStream::new(chunks).map(pb::BlobChunk::from);
        let status = self.rpc.push_blob(out).await?.into_inner();
        BlobStatus::try_from(status).map_err(|e| Status::internal(e.to_string()))
    }
}

/// A hand-off item on the wire.
fn item_pb(item: &HandoffItem) -> pb::RelayItem {
    let message = match &item.message {
        Handed::Document(d) => {
            pb::relay_item::Message::Document(document_to_pb(&d.document, Some(&d.contents)))
        }
        Handed::Status(n) => pb::relay_item::Message::Status(n.as_ref().into()),
        Handed::Events(events) => pb::relay_item::Message::Events(pb::RelayEvents {
            events: events.iter().map(Into::into).collect(),
        }),
    };
    pb::RelayItem {
        seq: item.seq,
        message: Some(message),
        id: item.id.clone(),
        recipients: item.recipients.iter().map(|r| r.to_string()).collect(),
        origin_receipt: item.origin_receipt.as_ref().map(Into::into),
    }
}
