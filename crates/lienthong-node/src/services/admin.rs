//! `AdminService`: health, queue depths and link states, and the dead-letter commands,
//! for operators holding this node's certificate.

use std::sync::Arc;
use std::time::Duration;

use lienthong_core::{DocumentId, NodeId};
use lienthong_pki::Identity;
use lienthong_proto::pb::{self, admin_service_server::AdminService};
use lienthong_proto::stored;
use lienthong_store::{DeadLetter, MessageKind};
use tonic::{Request, Response, Status};

use crate::Error;
use crate::context::Context;
use crate::dead_letters::{self, DeadLetterFilter, OperatorVerb};
use crate::transport::peer;

#[derive(Debug, Clone)]
pub struct AdminApi {
    ctx: Arc<Context>,
}

impl AdminApi {
    pub fn new(ctx: Arc<Context>) -> Self {
        AdminApi { ctx }
    }

    /// The operator's identity, if allowed.
    fn authorize<T>(&self, req: &Request<T>) -> Result<Identity, Status> {
        let peer = peer(req)?;
        super::authorize_operator(&self.ctx, &peer.identity)?;
        Ok(peer.identity.clone())
    }

    async fn act(
        &self,
        req: Request<pb::DeadLetterAction>,
        verb: OperatorVerb,
    ) -> Result<Response<pb::DeadLetterActionResult>, Status> {
        let operator = self.authorize(&req)?;
        let action = req.into_inner();
        let filter = filter_from_pb(&action.filter.unwrap_or_default())?;
        let outcome =
            dead_letters::act(&self.ctx, &operator, verb, &filter, action.reason.trim()).await?;
        Ok(Response::new(pb::DeadLetterActionResult {
            document_ids: outcome.done.iter().map(|id| id.to_string()).collect(),
            skipped: outcome.skipped,
        }))
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn health(
        &self,
        req: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        self.authorize(&req)?;
        let damaged: Vec<String> = self
            .ctx
            .quarantine
            .all()
            .into_iter()
            .map(|(key, why)| format!("{key}: {why}"))
            .collect();
        let store_ok = self.ctx.store.queue_depths().is_ok() && damaged.is_empty();
        Ok(Response::new(pb::HealthResponse {
            node: self.ctx.id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.ctx.uptime().as_secs(),
            store_ok,
            agencies: self.ctx.agencies().len() as u32,
            damaged,
        }))
    }

    async fn queues(
        &self,
        req: Request<pb::QueuesRequest>,
    ) -> Result<Response<pb::QueuesResponse>, Status> {
        self.authorize(&req)?;
        let depths = self.ctx.store.queue_depths().map_err(Error::from)?;
        let mut inboxes: Vec<pb::QueueDepth> = depths
            .inboxes
            .into_iter()
            .map(|(a, depth)| pb::QueueDepth {
                name: a.to_string(),
                depth,
            })
            .collect();
        // Every homed agency is listed, empty inboxes included.
        for agency in self.ctx.agencies() {
            if !inboxes.iter().any(|q| q.name == agency.code.as_str()) {
                inboxes.push(pb::QueueDepth {
                    name: agency.code.to_string(),
                    depth: 0,
                });
            }
        }
        inboxes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::QueuesResponse {
            inboxes,
            outboxes: depths
                .outboxes
                .into_iter()
                .map(|(n, depth)| pb::QueueDepth {
                    name: n.to_string(),
                    depth,
                })
                .collect(),
            dead_letters: depths.dead_letters,
            links: self
                .ctx
                .links
                .all()
                .into_iter()
                .map(|(peer, s)| pb::LinkStatus {
                    peer: peer.to_string(),
                    state: s.phase.as_str().to_string(),
                    consecutive_failures: s.consecutive_failures,
                    retry_at_unix_ms: s.retry_at.unwrap_or(0),
                    last_error: s.last_error,
                })
                .collect(),
        }))
    }

    async fn list_dead_letters(
        &self,
        req: Request<pb::DeadLetterFilter>,
    ) -> Result<Response<pb::DeadLetterList>, Status> {
        self.authorize(&req)?;
        let filter = req.into_inner();
        let limit = match filter.limit {
            0 => 1000,
            n => n as usize,
        };
        let parsed = filter_from_pb(&filter)?;
        let letters = dead_letters::list(&self.ctx, &parsed, limit)?;
        Ok(Response::new(pb::DeadLetterList {
            dead_letters: letters
                .iter()
                .map(|l| dead_letter_pb(&self.ctx, l))
                .collect(),
        }))
    }

    async fn retry_dead_letters(
        &self,
        req: Request<pb::DeadLetterAction>,
    ) -> Result<Response<pb::DeadLetterActionResult>, Status> {
        self.act(req, OperatorVerb::Retry).await
    }

    async fn drop_dead_letters(
        &self,
        req: Request<pb::DeadLetterAction>,
    ) -> Result<Response<pb::DeadLetterActionResult>, Status> {
        self.act(req, OperatorVerb::Drop).await
    }

    async fn platform(
        &self,
        req: Request<pb::PlatformRequest>,
    ) -> Result<Response<pb::PlatformResponse>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n as usize,
        };
        let index = self.ctx.external.index();
        let found = index.search(&r.search);
        let quarantined = match &self.ctx.platform_quarantine {
            Some(dir) => crate::bridge::quarantined(dir).map_err(Error::from)?,
            None => Vec::new(),
        };
        Ok(Response::new(pb::PlatformResponse {
            lists: index
                .lists()
                .map(|l| {
                    format!(
                        "{} {} agencies, fetched at {} (Unix ms)",
                        l.bridge,
                        l.agencies.len(),
                        l.version
                    )
                })
                .collect(),
            matched: found.len() as u32,
            agencies: found
                .into_iter()
                .take(limit)
                .map(|(a, bridges)| pb::ExternalAgencyEntry {
                    code: a.code.to_string(),
                    name: a.name.clone(),
                    aliases: a.aliases.clone(),
                    bridges: bridges.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            quarantined: quarantined
                .into_iter()
                .map(|(platform_id, reason, file)| pb::QuarantinedImport {
                    platform_id,
                    reason,
                    file: file.display().to_string(),
                })
                .collect(),
        }))
    }

    async fn operator_log(
        &self,
        req: Request<pb::OperatorLogRequest>,
    ) -> Result<Response<pb::OperatorLogResponse>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 1000,
            n => n as usize,
        };
        let entries = self
            .ctx
            .store
            .operator_log(r.after, limit)
            .map_err(Error::from)?
            .into_iter()
            .map(|(seq, bytes)| {
                let action = stored::decode_operator_action(&bytes).map_err(|e| {
                    Error::Store(lienthong_store::Error::Corrupt(format!(
                        "operator log entry {seq}: {e}"
                    )))
                })?;
                Ok(pb::OperatorLogEntry {
                    seq,
                    action: Some((&action).into()),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Response::new(pb::OperatorLogResponse { entries }))
    }
}

/// Which dead letters an operator means.
fn filter_from_pb(f: &pb::DeadLetterFilter) -> Result<DeadLetterFilter, Error> {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(DeadLetterFilter {
        document_id: non_empty(&f.document_id)
            .map(|d| DocumentId::parse(&d))
            .transpose()?,
        peer: non_empty(&f.peer)
            .map(|p| NodeId::parse(&p).map_err(|e| Error::InvalidArgument(format!("peer: {e}"))))
            .transpose()?,
        older_than: (f.older_than_ms > 0).then(|| Duration::from_millis(f.older_than_ms)),
        reason_contains: non_empty(&f.reason_contains),
    })
}

/// A dead letter as the admin API shows it.
fn dead_letter_pb(ctx: &Context, letter: &DeadLetter) -> pb::DeadLetter {
    let kind = match ctx.store.message(&letter.message) {
        Ok(Some(m)) => match m.envelope.kind {
            MessageKind::Document => "document",
            MessageKind::Status => "status",
            MessageKind::Event => "event",
        },
        _ => "unknown",
    };
    pb::DeadLetter {
        document_id: letter.message.id.to_string(),
        kind: kind.to_string(),
        priority: u32::from(letter.priority),
        recipients: letter.recipients.iter().map(|r| r.to_string()).collect(),
        peer: letter
            .hop
            .as_ref()
            .map(|h| h.to_string())
            .unwrap_or_default(),
        reason: letter.reason.clone(),
        at_unix_ms: letter.at,
        sender: letter
            .message
            .sender
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}
