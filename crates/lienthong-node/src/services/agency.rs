//! `AgencyService`: the API a DMS calls. Every request is first tied to the agency of the
//! connection's certificate, then translated to the domain and handed to the flow that
//! owns it ([`crate::admission`], [`crate::mailbox`], [`crate::attachments`]).

use std::pin::Pin;
use std::sync::Arc;

use lienthong_core::{AgencyCode, BlobChunk, DocumentId};
use lienthong_proto::pb::{self, agency_service_server::AgencyService};
use lienthong_proto::{DocumentWithContent, document_to_pb};
use lienthong_store::MessageKind;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::admission::from_agency;
use crate::context::Context;
use crate::mailbox::{self, Fetched, InboxItem};
use crate::transport::peer;
use crate::{Error, attachments, config};

const MAX_LIST_LIMIT: u32 = 1000;
/// Inbox entries a subscription reads from the store at a time.
const SUBSCRIBE_BATCH: usize = 64;
/// Entries a subscription keeps ready for a slow reader: small, so that an urgent entry
/// arriving meanwhile waits behind few routine ones.
const SUBSCRIBE_BUFFER: usize = 16;

#[derive(Debug, Clone)]
pub struct AgencyApi {
    ctx: Arc<Context>,
}

impl AgencyApi {
    pub fn new(ctx: Arc<Context>) -> Self {
        AgencyApi { ctx }
    }

    fn caller<T>(&self, req: &Request<T>) -> Result<AgencyCode, Status> {
        let peer = peer(req)?;
        Ok(super::authorize_agency(&self.ctx, &peer.identity)?)
    }
}

/// A stream of chunks from the wire, each checked.
fn chunks(
    stream: tonic::Streaming<pb::BlobChunk>,
) -> impl Stream<Item = Result<BlobChunk, Error>> + Unpin {
    stream.map(|c| match c {
        Ok(c) => BlobChunk::try_from(c).map_err(Error::from),
        Err(s) => Err(Error::Transport(s.to_string())),
    })
}

fn document_id(s: &str) -> Result<DocumentId, Status> {
    DocumentId::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The optional `from` of a request naming a message: the sender's code, or empty.
fn sender(s: &str) -> Result<Option<AgencyCode>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    AgencyCode::parse(s)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("from: {e}")))
}

fn entry_pb(item: InboxItem) -> pb::InboxEntry {
    pb::InboxEntry {
        cursor: item.entry.cursor,
        id: item.entry.message.id.to_string(),
        kind: match item.entry.kind {
            MessageKind::Document => pb::MessageKind::Document,
            MessageKind::Status | MessageKind::Event => pb::MessageKind::Status,
        } as i32,
        priority: item.entry.priority.into(),
        from: item.from.to_string(),
        subject: item.subject,
        received_at_unix_ms: item.received_at,
        redelivered: false,
        business_state: item
            .business
            .as_ref()
            .map(|(mark, _)| mark.as_str().to_string())
            .unwrap_or_default(),
        superseded_by: item
            .business
            .map(|(_, by)| by.to_string())
            .unwrap_or_default(),
        business_type: item.business_type as u32,
        references: item.references.iter().map(|r| r.to_string()).collect(),
    }
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::InboxEntry, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::BlobChunk, Status>> + Send>>;

#[tonic::async_trait]
impl AgencyService for AgencyApi {
    async fn send_document(
        &self,
        req: Request<pb::SendDocumentRequest>,
    ) -> Result<Response<pb::SendDocumentResponse>, Status> {
        let caller = self.caller(&req)?;
        let document = req
            .into_inner()
            .document
            .ok_or_else(|| Status::invalid_argument("field `document` is required"))?;
        let message = DocumentWithContent::try_from(document).map_err(Error::from)?;
        let (receipt, duplicate) = from_agency::send_document(&self.ctx, &caller, message).await?;
        Ok(Response::new(pb::SendDocumentResponse {
            receipt: Some((&receipt).into()),
            duplicate,
        }))
    }

    type SubscribeStream = EntryStream;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        let caller = self.caller(&req)?;
        let seen_up_to = req.into_inner().after_cursor;
        let mut signal = self.ctx.signals.watch_inbox(&caller);
        let mut stopping = self.ctx.stopping();
        let ctx = self.ctx.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(SUBSCRIBE_BUFFER);
        tokio::spawn(async move {
            // Every unacknowledged entry goes out once per subscription: the last cursor
            // sent per priority lane (entries of a lane appear in cursor order). After
            // each batch the urgent lanes are read again first, so an urgent entry that
            // arrives behind a routine backlog overtakes it.
            let mut sent: [Option<u64>; 4] = [None; 4];
            loop {
                // Mark the signal seen before reading, so an entry stored meanwhile wakes
                // the next wait instead of being missed.
                signal.borrow_and_update();
                let mut batch = Vec::new();
                for priority in (0..=3u8).rev() {
                    let lane = &mut sent[priority as usize];
                    let page = match mailbox::inbox_lane(
                        &ctx,
                        &caller,
                        priority,
                        *lane,
                        SUBSCRIBE_BATCH,
                    ) {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(Status::from(e))).await;
                            return;
                        }
                    };
                    batch = page.items;
                    // Past quarantined entries too, which the page leaves out.
                    if let Some(last) = page.read_up_to {
                        *lane = Some(last);
                        break;
                    }
                }
                let idle = batch.is_empty();
                for item in batch {
                    let redelivered = item.entry.cursor <= seen_up_to;
                    let entry = pb::InboxEntry {
                        redelivered,
                        ..entry_pb(item)
                    };
                    if tx.send(Ok(entry)).await.is_err() {
                        return; // the DMS went away
                    }
                }
                if !idle {
                    continue;
                }
                tokio::select! {
                    changed = signal.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list_inbox(
        &self,
        req: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let caller = self.caller(&req)?;
        let req = req.into_inner();
        let limit = match req.limit {
            0 => config::DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let after = (req.after_cursor > 0).then_some(req.after_cursor);
        let items = if req.arrival_order {
            mailbox::inbox_by_arrival(&self.ctx, &caller, after, limit as usize)?
        } else {
            mailbox::inbox(&self.ctx, &caller, after, limit as usize)?
        };
        Ok(Response::new(pb::ListInboxResponse {
            entries: items.into_iter().map(entry_pb).collect(),
        }))
    }

    async fn fetch_document(
        &self,
        req: Request<pb::FetchDocumentRequest>,
    ) -> Result<Response<pb::FetchDocumentResponse>, Status> {
        let caller = self.caller(&req)?;
        let req = req.into_inner();
        let id = document_id(&req.id)?;
        let from = sender(&req.from)?;
        let response = match mailbox::fetch(&self.ctx, &caller, &id, from.as_ref()).await? {
            Fetched::Document {
                document,
                contents,
                receipt,
            } => pb::FetchDocumentResponse {
                message: Some(pb::fetch_document_response::Message::Document(
                    document_to_pb(&document, Some(&contents)),
                )),
                receipt: Some((&receipt).into()),
            },
            Fetched::Status { notice, receipt } => pb::FetchDocumentResponse {
                message: Some(pb::fetch_document_response::Message::Status(
                    (&notice).into(),
                )),
                receipt: Some((&receipt).into()),
            },
        };
        Ok(Response::new(response))
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        let caller = self.caller(&req)?;
        let req = req.into_inner();
        let id = document_id(&req.id)?;
        let from = sender(&req.from)?;
        mailbox::ack(&self.ctx, &caller, &id, from.as_ref()).await?;
        Ok(Response::new(pb::AckResponse {}))
    }

    async fn send_status(
        &self,
        req: Request<pb::SendStatusRequest>,
    ) -> Result<Response<pb::SendStatusResponse>, Status> {
        let caller = self.caller(&req)?;
        let notice = req
            .into_inner()
            .notice
            .ok_or_else(|| Status::invalid_argument("field `notice` is required"))?
            .try_into()
            .map_err(Error::from)?;
        let (receipt, duplicate) = from_agency::send_status(&self.ctx, &caller, notice).await?;
        Ok(Response::new(pb::SendStatusResponse {
            receipt: Some((&receipt).into()),
            duplicate,
        }))
    }

    async fn upload_attachment(
        &self,
        req: Request<tonic::Streaming<pb::BlobChunk>>,
    ) -> Result<Response<pb::BlobStatus>, Status> {
        let caller = self.caller(&req)?;
        let status =
            attachments::receive(&self.ctx, chunks(req.into_inner()), Some(&caller)).await?;
        Ok(Response::new(status.into()))
    }

    async fn attachment_status(
        &self,
        req: Request<pb::BlobStatusRequest>,
    ) -> Result<Response<pb::BlobStatus>, Status> {
        let caller = self.caller(&req)?;
        let digest = lienthong_proto::blob_digest(&req.into_inner().sha256).map_err(Error::from)?;
        let status = attachments::status(&self.ctx, &digest, Some(&caller)).await?;
        Ok(Response::new(status.into()))
    }

    type FetchAttachmentStream = ChunkStream;

    async fn fetch_attachment(
        &self,
        req: Request<pb::FetchAttachmentRequest>,
    ) -> Result<Response<Self::FetchAttachmentStream>, Status> {
        let caller = self.caller(&req)?;
        let req = req.into_inner();
        let id = document_id(&req.document_id)?;
        let from = sender(&req.from)?;
        let digest = lienthong_proto::blob_digest(&req.sha256).map_err(Error::from)?;
        let stream =
            mailbox::fetch_attachment(&self.ctx, &caller, &id, from.as_ref(), digest, req.offset)
                .await?;
        Ok(Response::new(Box::pin(stream.map(|c| {
            c.map(pb::BlobChunk::from).map_err(Status::from)
        }))))
    }

    async fn track(
        &self,
        req: Request<pb::TrackRequest>,
    ) -> Result<Response<pb::TrackResponse>, Status> {
        let caller = self.caller(&req)?;
        let req = req.into_inner();
        let id = document_id(&req.id)?;
        let from = sender(&req.from)?;
        let tracked = mailbox::track(&self.ctx, &caller, &id, from.as_ref())?;
        let (business_state, superseded_by) = tracked
            .business
            .mark()
            .map(|(mark, by)| (mark.as_str().to_string(), by.to_string()))
            .unwrap_or_default();
        Ok(Response::new(pb::TrackResponse {
            id: id.to_string(),
            events: tracked.events.iter().map(Into::into).collect(),
            statuses: tracked.statuses.iter().map(Into::into).collect(),
            business_state,
            superseded_by,
            recipients: tracked
                .recipients
                .iter()
                .map(|r| pb::RecipientState {
                    agency: r.agency.to_string(),
                    transport: r
                        .transport
                        .map(|k| k.as_str().to_string())
                        .unwrap_or_default(),
                    status_code: r
                        .status
                        .as_ref()
                        .map(|s| s.code.code().to_string())
                        .unwrap_or_default(),
                    status_id: r
                        .status
                        .as_ref()
                        .map(|s| s.notice.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
        }))
    }
}
