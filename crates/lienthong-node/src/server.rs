//! Serving a node: the entry point takes a bound listener and a shutdown future, so tests
//! start many nodes in one process on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lienthong_store::SledStore;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::Error;
use crate::config::NodeConfig;
use crate::node::Node;
use crate::transport::tls_incoming;

/// How long in-flight requests get to finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Interval of the HTTP/2 pings the node sends on every connection.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// A connection whose client leaves a ping unanswered this long is closed: a peer that
/// vanished, or stopped reading, does not hold its connection and streams.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens the store in `config.data_dir`, builds the node (and its VXP gateway when
/// configured) and serves it on `listener` until `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let bound = bind(&config, listener).await?;
    tracing::info!(
        node = %bound.node.id(),
        addr = %bound.listener.local_addr()?,
        vxp = ?bound.vxp_addr(),
        agencies = bound.node.agencies().len(),
        "node serving"
    );
    bound.serve(shutdown).await
}

/// A node built, with its listeners: gRPC, and the VXP gateway's when configured.
#[derive(Debug)]
pub struct Bound {
    pub node: Node,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    gateway: Option<(crate::vxp::VxpGateway, TcpListener)>,
}

/// Builds the node and its gateway ([`build`], [`crate::vxp::build`]: everything that can
/// fail before a port is used), then binds the gateway's listen address.
pub async fn bind(config: &NodeConfig, listener: TcpListener) -> Result<Bound, Error> {
    let (node, tls) = build(config)?;
    let gateway = match crate::vxp::build(config)? {
        Some(gateway) => {
            let vxp_listener = TcpListener::bind(gateway.listen()).await.map_err(|e| {
                Error::Config(format!(
                    "cannot listen on {} ([vxp] listen): {e}",
                    gateway.listen()
                ))
            })?;
            Some((gateway, vxp_listener))
        }
        None => None,
    };
    Ok(Bound {
        node,
        tls,
        listener,
        gateway,
    })
}

impl Bound {
    /// Where the VXP gateway listens, when the node has one.
    pub fn vxp_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway
            .as_ref()
            .and_then(|(_, listener)| listener.local_addr().ok())
    }

    /// Serves the node and its gateway until `shutdown` resolves, then stops both.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let gateway = self.gateway.map(|(gateway, listener)| {
            tokio::spawn(crate::vxp::serve(gateway, listener, stopped()))
        });
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        serve(self.node, self.tls, self.listener, stopped()).await?;
        if let Some(gateway) = gateway {
            gateway
                .await
                .map_err(|e| Error::Transport(format!("the VXP gateway's task: {e}")))??;
        }
        Ok(())
    }
}

/// Everything that can fail before a port is used: store, keys, certificates, TLS.
pub fn build(config: &NodeConfig) -> Result<(Node, Arc<rustls::ServerConfig>), Error> {
    use std::os::unix::fs::DirBuilderExt;
    config.validate()?;
    let tls = lienthong_pki::server_config(&config.tls_files())?;
    // Only the node's account may read what it keeps (the store narrows what is inside).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .map_err(|e| {
            Error::Config(format!(
                "cannot create data_dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
    let store = SledStore::open(&config.data_dir)?;
    let node = Node::new(config, Arc::new(store))?;
    Ok((node, tls))
}

/// Serves `node` over mutual TLS on `listener` until `shutdown` resolves, then gives
/// in-flight requests [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    node: Node,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let limits = node.limits().clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopping = node.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.begin_shutdown();
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let (incoming, accept_loop) = tls_incoming(listener, tls, &limits, stopped(stop_rx.clone()));

    let background = node.spawn_background(stop_rx.clone())?;
    let builder = Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT));
    let server = node
        .router(builder)
        .await?
        .serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));

    let grace = async {
        stopped(stop_rx).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        res = server => res.map_err(|e| Error::Transport(e.to_string()))?,
        _ = grace => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    // The listener is closed once the accept loop has ended, and the store once every
    // background task has let go of the node.
    let _ = accept_loop.await;
    for task in background {
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("a background task did not stop within the grace period");
        }
    }
    // Tasks spawned per request (relay items, subscriptions, connections) may hold the
    // node a moment longer; the store closes when the last of them lets go.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while node.holders() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if node.holders() > 1 {
        tracing::warn!(
            "requests still hold the node after the grace period; the store stays open until they end"
        );
    }
    tracing::info!(node = %node.id(), "node stopped");
    Ok(())
}
