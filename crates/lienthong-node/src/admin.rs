//! `AdminService`: health and queue depths for operators holding this node's certificate.

use std::sync::Arc;

use lienthong_proto::pb::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::transport::peer;

#[derive(Debug, Clone)]
pub struct AdminApi {
    node: Arc<Node>,
}

impl AdminApi {
    pub fn new(node: Arc<Node>) -> Self {
        AdminApi { node }
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let peer = peer(req)?;
        Ok(self.node.authorize_operator(&peer.identity)?)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn health(
        &self,
        req: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        self.authorize(&req)?;
        let store_ok = self.node.store().queue_depths().is_ok();
        Ok(Response::new(pb::HealthResponse {
            node: self.node.id().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.node.uptime().as_secs(),
            store_ok,
            agencies: self.node.agencies().len() as u32,
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
        }))
    }
}
