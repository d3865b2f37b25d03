//! `AdminService`: health, queue depths and link states, and the dead-letter commands,
//! for operators holding this node's certificate.

use std::sync::Arc;

use lienthong_proto::pb::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use crate::delivery::{self, OperatorVerb};
use crate::node::Node;
use crate::transport::peer;
use lienthong_pki::Identity;
use prost::Message;

#[derive(Debug, Clone)]
pub struct AdminApi {
    node: Arc<Node>,
}

impl AdminApi {
    pub fn new(node: Arc<Node>) -> Self {
        AdminApi { node }
    }

    /// The operator's identity, if allowed.
    fn authorize<T>(&self, req: &Request<T>) -> Result<Identity, Status> {
        let peer = peer(req)?;
        self.node.authorize_operator(&peer.identity)?;
        Ok(peer.identity.clone())
    }

    async fn act(
        &self,
        req: Request<pb::DeadLetterAction>,
        verb: OperatorVerb,
    ) -> Result<Response<pb::DeadLetterActionResult>, Status> {
        let operator = self.authorize(&req)?;
        let action = req.into_inner();
        let filter = action.filter.unwrap_or_default();
        let outcome =
            delivery::act(&self.node, &operator, verb, &filter, action.reason.trim()).await?;
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
            .node
            .damaged()
            .into_iter()
            .map(|(key, why)| format!("{key}: {why}"))
            .collect();
        let store_ok = self.node.store().queue_depths().is_ok() && damaged.is_empty();
        Ok(Response::new(pb::HealthResponse {
            node: self.node.id().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.node.uptime().as_secs(),
            store_ok,
            agencies: self.node.agencies().len() as u32,
            damaged,
        }))
    }

    async fn queues(
        &self,
        req: Request<pb::QueuesRequest>,
    ) -> Result<Response<pb::QueuesResponse>, Status> {
        self.authorize(&req)?;
        let depths = self
            .node
            .store()
            .queue_depths()
            .map_err(crate::Error::from)?;
        let mut inboxes: Vec<pb::QueueDepth> = depths
            .inboxes
            .into_iter()
            .map(|(a, depth)| pb::QueueDepth {
                name: a.to_string(),
                depth,
            })
            .collect();
        // Every homed agency is listed, empty inboxes included.
        for agency in self.node.agencies() {
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
                .node
                .links()
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
        let parsed = delivery::DeadLetterFilter::from_pb(&filter)?;
        let letters = delivery::list(&self.node, &parsed, limit)?;
        Ok(Response::new(pb::DeadLetterList {
            dead_letters: letters
                .iter()
                .map(|l| delivery::to_pb(&self.node, l))
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
            .node
            .store()
            .operator_log(r.after, limit)
            .map_err(crate::Error::from)?
            .into_iter()
            .map(|(seq, bytes)| {
                let action = pb::OperatorAction::decode(bytes.as_ref()).map_err(|e| {
                    crate::Error::Store(lienthong_store::Error::Corrupt(format!(
                        "operator log entry {seq}: {e}"
                    )))
                })?;
                Ok(pb::OperatorLogEntry {
                    seq,
                    action: Some(action),
                })
            })
            .collect::<Result<Vec<_>, crate::Error>>()?;
        Ok(Response::new(pb::OperatorLogResponse { entries }))
    }
}
