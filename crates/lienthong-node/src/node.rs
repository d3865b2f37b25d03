//! A node assembled: its [`Context`], the gRPC services over it, and its own tasks — one
//! link worker per neighbour (following directory changes), the expiry sweep of waiting
//! outboxes, below the national gateway the pull of the directory from the parent, and
//! at a bridge the bridge's tasks ([`crate::bridge`]).
//! The server module serves it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lienthong_core::NodeId;
use lienthong_core::id::Agency;
use lienthong_pki::Identity;
use lienthong_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::bridge::Bridge;
use crate::config::{Limits, NodeConfig};
use crate::context::Context;
use crate::{dead_letters, link, services};

/// One node, ready to serve.
#[derive(Debug, Clone)]
pub struct Node {
    ctx: Arc<Context>,
    /// The bridge to the national platform, when `[vxp_upstream]` is set.
    bridge: Option<Arc<Bridge>>,
}

impl Node {
    /// Builds a node from validated configuration and an open store (see
    /// [`Context::new`]).
    pub fn new(config: &NodeConfig, store: Arc<dyn Store>) -> Result<Self, Error> {
        let ctx = Arc::new(Context::new(config, store)?);
        let bridge = match &config.vxp_upstream {
            Some(upstream) => {
                if !ctx.directory.current().is_bridge(&ctx.id) && config.network.is_some() {
                    tracing::warn!(node = %ctx.id, "[vxp_upstream] is set but the directory does not name this node a bridge yet: nothing is routed to the platform until it does");
                }
                Some(Arc::new(Bridge::new(
                    ctx.clone(),
                    upstream,
                    &config.data_dir,
                )?))
            }
            None => None,
        };
        Ok(Node { ctx, bridge })
    }

    pub fn id(&self) -> &NodeId {
        &self.ctx.id
    }

    /// The agencies homed at this node, per the directory in use.
    pub fn agencies(&self) -> Vec<Agency> {
        self.ctx.agencies()
    }

    pub fn limits(&self) -> &Limits {
        &self.ctx.limits
    }

    /// Asks long-lived streams (subscriptions, relay hand-offs) to end.
    pub fn begin_shutdown(&self) {
        self.ctx.begin_shutdown();
    }

    /// How many holders the node's shared state has: 1 once every task and request let
    /// go of it (the store closes then).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.ctx)
    }

    /// Every service of the node on `builder`'s server (see [`services::router`]).
    pub async fn router(
        &self,
        builder: tonic::transport::Server,
    ) -> Result<tonic::transport::server::Router, Error> {
        services::router(&self.ctx, builder).await
    }

    /// Starts the node's own tasks; they end when `stop` turns true.
    pub fn spawn_background(
        &self,
        stop: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, Error> {
        let ctx = &self.ctx;
        let mut tasks = Vec::new();
        if let Some(net) = &ctx.network
            && let (Some(parent), Some(endpoint)) = (&net.parent, &net.parent_endpoint)
        {
            let parent =
                NodeId::parse(parent).map_err(|e| Error::Config(format!("network.parent: {e}")))?;
            let config =
                lienthong_pki::client_config(&ctx.tls_files, Some(Identity::Node(parent)))?;
            let channel = lienthong_client::transport::channel(endpoint, config)
                .map_err(|e| Error::Config(e.to_string()))?;
            let interval = Duration::from_millis(net.directory_poll_ms.max(10));
            tasks.push(tokio::spawn(services::directory::pull_from_parent(
                ctx.clone(),
                channel,
                interval,
                stop.clone(),
            )));
        }
        if let Some(bridge) = &self.bridge {
            tasks.extend(bridge.clone().spawn(stop.clone()));
        }
        tasks.push(tokio::spawn(sweep_expired(ctx.clone(), stop.clone())));
        tasks.push(tokio::spawn(keep_links(ctx.clone(), stop)));
        Ok(tasks)
    }
}

/// Every `delivery.expiry_sweep_ms`, dead-letters the expired messages of outboxes whose
/// link is down.
async fn sweep_expired(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(ctx.delivery.expiry_sweep_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match dead_letters::sweep_expired(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(node = %ctx.id, expired = n, "expired messages dead-lettered"),
            Err(e) => tracing::error!(node = %ctx.id, error = %e, "expiry sweep failed"),
        }
    }
}

/// One link worker per neighbour, started as the directory names new ones.
async fn keep_links(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    let mut links: HashMap<NodeId, JoinHandle<()>> = HashMap::new();
    let mut directory = ctx.directory.subscribe();
    let mut stop_wait = stop.clone();
    loop {
        for hop in ctx.neighbours() {
            links
                .entry(hop.clone())
                .or_insert_with(|| tokio::spawn(link::run_link(ctx.clone(), hop, stop.clone())));
        }
        tokio::select! {
            changed = directory.changed() => if changed.is_err() { break },
            _ = stop_wait.wait_for(|s| *s) => break,
        }
    }
    for (_, task) in links {
        let _ = task.await;
    }
}
