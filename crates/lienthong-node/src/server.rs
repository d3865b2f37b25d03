//! Serving a node: the entry point takes a bound listener and a shutdown future, so tests
//! start many nodes in one process on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lienthong_core::NodeId;
use lienthong_pki::Identity;
use lienthong_proto::pb::admin_service_server::AdminServiceServer;
use lienthong_proto::pb::agency_service_server::AgencyServiceServer;
use lienthong_proto::pb::directory_service_server::DirectoryServiceServer;
use lienthong_proto::pb::relay_service_server::RelayServiceServer;
use lienthong_store::SledStore;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::Error;
use crate::admin::AdminApi;
use crate::agency::AgencyApi;
use crate::config::NodeConfig;
use crate::directory::DirectoryApi;
use crate::node::Node;
use crate::relay::RelayApi;
use crate::transport::tls_incoming;

/// How long in-flight requests get to finish after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Opens the store in `config.data_dir`, builds the node and serves it on `listener` until
/// `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (node, tls) = build(&config)?;
    tracing::info!(
        node = %node.id(),
        addr = %listener.local_addr()?,
        agencies = node.agencies().len(),
        "node serving"
    );
    serve(node, tls, listener, shutdown).await
}

/// Everything that can fail before a port is used: store, keys, certificates, TLS.
pub fn build(config: &NodeConfig) -> Result<(Arc<Node>, Arc<rustls::ServerConfig>), Error> {
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
    let node = Arc::new(Node::new(config, Arc::new(store))?);
    Ok((node, tls))
}

/// Serves `node` over mutual TLS on `listener` until `shutdown` resolves, then gives
/// in-flight requests [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    node: Arc<Node>,
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

    let (incoming, accept_loop) = tls_incoming(
        listener,
        tls,
        limits.handshake_timeout(),
        stopped(stop_rx.clone()),
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AgencyServiceServer<AgencyApi>>().await;
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lienthong_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Transport(format!("reflection service: {e}")))?;

    let max = limits.max_message_bytes;
    let agency = AgencyServiceServer::new(AgencyApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let admin = AdminServiceServer::new(AdminApi::new(node.clone()));
    let relay = RelayServiceServer::new(RelayApi::new(node.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let directory = DirectoryServiceServer::new(DirectoryApi::new(node.clone()));

    let background = spawn_background(&node, stop_rx.clone())?;

    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(agency)
        .add_service(admin)
        .add_service(relay)
        .add_service(directory)
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
    while Arc::strong_count(&node) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if Arc::strong_count(&node) > 1 {
        tracing::warn!(
            "requests still hold the node after the grace period; the store stays open until they end"
        );
    }
    tracing::info!(node = %node.id(), "node stopped");
    Ok(())
}

/// The node's own tasks: one link worker per neighbour (following directory changes), the
/// expiry sweep of waiting outboxes and, below the national gateway, the directory pull
/// from the parent.
fn spawn_background(
    node: &Arc<Node>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let mut tasks = Vec::new();
    if let Some(net) = node.network()
        && let (Some(parent), Some(endpoint)) = (&net.parent, &net.parent_endpoint)
    {
        let parent =
            NodeId::parse(parent).map_err(|e| Error::Config(format!("network.parent: {e}")))?;
        let config = lienthong_pki::client_config(node.tls_files(), Some(Identity::Node(parent)))?;
        let channel = crate::transport::channel(endpoint, config)?;
        let interval = Duration::from_millis(net.directory_poll_ms.max(10));
        tasks.push(tokio::spawn(crate::directory::pull_from_parent(
            node.clone(),
            channel,
            interval,
            stop.clone(),
        )));
    }
    let sweeper = node.clone();
    let mut sweep_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        let every = Duration::from_millis(sweeper.delivery().expiry_sweep_ms);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = sweep_stop.wait_for(|s| *s) => return,
            }
            match crate::delivery::sweep_expired(&sweeper).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(node = %sweeper.id(), expired = n, "expired messages dead-lettered"),
                Err(e) => tracing::error!(node = %sweeper.id(), error = %e, "expiry sweep failed"),
            }
        }
    }));
    let node = node.clone();
    tasks.push(tokio::spawn(async move {
        let mut links: std::collections::HashMap<NodeId, tokio::task::JoinHandle<()>> =
            std::collections::HashMap::new();
        let mut directory = node.directory().subscribe();
        let mut stop_wait = stop.clone();
        loop {
            for hop in node.neighbours() {
                links.entry(hop.clone()).or_insert_with(|| {
                    tokio::spawn(crate::relay::run_link(node.clone(), hop, stop.clone()))
                });
            }
            tokio::select! {
                changed = directory.changed() => if changed.is_err() { break },
                _ = stop_wait.wait_for(|s| *s) => break,
            }
        }
        for (_, task) in links {
            let _ = task.await;
        }
    }));
    Ok(tasks)
}
