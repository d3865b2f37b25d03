//! The network under test: one child process per node, each behind a [`FaultProxy`] that
//! its neighbours dial, and the controls the fault schedule uses — SIGKILL and restart,
//! SIGTERM and restart, SIGSTOP/SIGCONT, partition and delay.
//!
//! Addresses: every node listens on a loopback port chosen up front (so a restarted node
//! comes back on the same one); its proxy listens on another. The signed directory names
//! the proxy as the node's endpoint, and each node's `parent_endpoint` is its parent's
//! proxy, so every byte between nodes crosses a proxy. DMS clients and the operator
//! profiles connect to the node directly: the workload must be able to reach a node whose
//! links are partitioned.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lienthong_client::ClientProfile;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::proxy::{Delay, FaultProxy};
use crate::{Network, Shape, generate_network};

/// How long a (re)started node gets to answer its health check.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a node gets to stop after SIGTERM before it is killed: the node's own grace
/// period ([`lienthong_node::server::SHUTDOWN_GRACE`]) for requests, again for background
/// tasks, and a margin.
const TERM_WITHIN: Duration = Duration::from_secs(20);

/// What state a node process is in, as the fault schedule left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// SIGSTOPped.
    Paused,
    /// Killed or stopped; its data directory is kept.
    Down,
}

#[derive(Debug)]
struct NodeProcess {
    child: Option<Child>,
    paused: bool,
    /// Times started, the first start included.
    starts: u32,
}

/// A node of the cluster: its process, its proxy, its files.
#[derive(Debug)]
pub struct ClusterNode {
    pub id: String,
    pub listen: SocketAddr,
    pub config_path: PathBuf,
    pub operator_profile: PathBuf,
    /// The node's stdout and stderr, appended across restarts.
    pub log: PathBuf,
    /// Agencies homed here.
    pub agencies: usize,
    pub proxy: FaultProxy,
    process: Mutex<NodeProcess>,
}

/// The running network of node processes and proxies. Dropping it kills every node
/// (`kill_on_drop`); a node also exits by itself when this process dies, because its
/// standard input (a pipe from here) closes.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub net: Network,
    pub nodes: Vec<ClusterNode>,
    exe: PathBuf,
    /// Nodes that exited without being told to, with what they said: a crash is a finding.
    pub unexpected_exits: std::sync::Mutex<Vec<String>>,
}

impl Cluster {
    /// Generates the network under `dir` with ports picked now, starts a proxy per node
    /// and every node process (national gateway first), and returns once every node
    /// holds the signed directory. `exe` is the chaos binary (re-executed as `exe node
    /// --config FILE`).
    pub async fn start(dir: &Path, shape: Shape, exe: PathBuf, seed: u64) -> anyhow::Result<Self> {
        let n = crate::network_size(shape);
        // Node ports: bound and released at once, so that a node (and its restarts) can
        // bind them. Proxy listeners are kept.
        let mut listens = Vec::with_capacity(n);
        let mut reserved = Vec::with_capacity(n);
        for _ in 0..n {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            listens.push(l.local_addr()?);
            reserved.push(l);
        }
        let mut proxy_listeners = Vec::with_capacity(n);
        for _ in 0..n {
            proxy_listeners.push(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        }
        drop(reserved);
        let proxy_addrs = proxy_listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()?;

        // Directory polls every 500 ms: a restarted child catches up fast.
        let net = generate_network(dir, shape, &listens, 500)?;
        route_through_proxies(&net, &listens, &proxy_addrs)?;

        let mut nodes = Vec::with_capacity(n);
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        for (i, (node, listener)) in net.nodes.iter().zip(proxy_listeners).enumerate() {
            let proxy = FaultProxy::start(listener, listens[i], seed.wrapping_add(i as u64))?;
            nodes.push(ClusterNode {
                id: node.id.to_string(),
                listen: listens[i],
                config_path: dir.join("nodes").join(node.id.as_str()).join("node.toml"),
                operator_profile: node.operator_profile.clone(),
                log: logs.join(format!("{}.log", node.id)),
                agencies: node.agencies.len(),
                proxy,
                process: Mutex::new(NodeProcess {
                    child: None,
                    paused: false,
                    starts: 0,
                }),
            });
        }
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            net,
            nodes,
            exe,
            unexpected_exits: std::sync::Mutex::new(Vec::new()),
        };
        for i in 0..n {
            cluster.spawn(i).await?;
        }
        for i in 0..n {
            cluster.wait_ready(i, true).await?;
        }
        Ok(cluster)
    }

    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    async fn spawn(&self, i: usize) -> anyhow::Result<u32> {
        let node = &self.nodes[i];
        let mut p = node.process.lock().await;
        anyhow::ensure!(p.child.is_none(), "node {} is already running", node.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let child = Command::new(&self.exe)
            .arg("node")
            .arg("--config")
            .arg(&node.config_path)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {} ({})", node.id, self.exe.display()))?;
        let pid = child.id().unwrap_or_default();
        p.child = Some(child);
        p.paused = false;
        p.starts += 1;
        Ok(pid)
    }

    /// Polls the node's health (with its operator profile, directly) until it answers
    /// and, when `directory` is set, holds a signed directory with its agencies.
    pub async fn wait_ready(&self, i: usize, directory: bool) -> anyhow::Result<Duration> {
        let node = &self.nodes[i];
        let started = Instant::now();
        let mut admin = ClientProfile::load(&node.operator_profile)?.admin()?;
        loop {
            let health = tokio::time::timeout(
                Duration::from_secs(2),
                admin.health(lienthong_proto::pb::HealthRequest {}),
            )
            .await;
            if let Ok(Ok(h)) = health
                && (!directory || h.into_inner().agencies as usize == node.agencies)
            {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.check_exited(i).await {
                anyhow::bail!("node {} exited while starting: {status}", node.id);
            }
            anyhow::ensure!(
                started.elapsed() < READY_WITHIN,
                "node {} not ready after {READY_WITHIN:?}; see {}",
                node.id,
                node.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// If the node's process has exited on its own, records it and returns its status.
    pub async fn check_exited(&self, i: usize) -> Option<String> {
        let node = &self.nodes[i];
        let mut p = node.process.lock().await;
        let child = p.child.as_mut()?;
        let status = child.try_wait().ok().flatten()?;
        p.child = None;
        p.paused = false;
        let what = format!(
            "node {} exited on its own ({status}); log: {}",
            node.id,
            node.log.display()
        );
        self.unexpected_exits.lock().unwrap().push(what.clone());
        Some(status.to_string())
    }

    pub async fn state(&self, i: usize) -> NodeState {
        let p = self.nodes[i].process.lock().await;
        match (&p.child, p.paused) {
            (None, _) => NodeState::Down,
            (Some(_), true) => NodeState::Paused,
            (Some(_), false) => NodeState::Running,
        }
    }

    /// SIGKILL: the node dies at once, mid-write; its data directory stays.
    pub async fn kill(&self, i: usize) -> anyhow::Result<Option<u32>> {
        let mut p = self.nodes[i].process.lock().await;
        let Some(mut child) = p.child.take() else {
            return Ok(None);
        };
        let pid = child.id();
        child.start_kill()?;
        child.wait().await?;
        p.paused = false;
        Ok(pid)
    }

    /// SIGTERM: the node drains and stops; killed if it takes longer than
    /// [`TERM_WITHIN`]. Returns whether it stopped by itself.
    pub async fn terminate(&self, i: usize) -> anyhow::Result<bool> {
        // The process leaves the table before the wait, so that the progress line and
        // crash watch are not held up by a slow drain; it counts as down from now.
        let mut child = {
            let mut p = self.nodes[i].process.lock().await;
            p.paused = false;
            let Some(child) = p.child.take() else {
                return Ok(true);
            };
            child
        };
        if let Some(pid) = child.id() {
            signal(pid, "TERM").await?;
        }
        let clean = match tokio::time::timeout(TERM_WITHIN, child.wait()).await {
            Ok(status) => status?.success(),
            Err(_) => {
                child.start_kill()?;
                child.wait().await?;
                false
            }
        };
        Ok(clean)
    }

    /// Starts a node that is down on its data directory and port; waits until it answers.
    pub async fn restart(&self, i: usize) -> anyhow::Result<(u32, Duration)> {
        let pid = self.spawn(i).await?;
        let ready = self.wait_ready(i, false).await?;
        Ok((pid, ready))
    }

    /// SIGSTOP: the process freezes with its sockets open, as a hung machine does.
    pub async fn pause(&self, i: usize) -> anyhow::Result<Option<u32>> {
        let mut p = self.nodes[i].process.lock().await;
        let Some(pid) = p.child.as_ref().and_then(Child::id) else {
            return Ok(None);
        };
        signal(pid, "STOP").await?;
        p.paused = true;
        Ok(Some(pid))
    }

    /// SIGCONT.
    pub async fn resume(&self, i: usize) -> anyhow::Result<()> {
        let mut p = self.nodes[i].process.lock().await;
        if let (Some(pid), true) = (p.child.as_ref().and_then(Child::id), p.paused) {
            signal(pid, "CONT").await?;
        }
        p.paused = false;
        Ok(())
    }

    /// Deletes a node's data directory (store, blobs, directory cache) while it is down:
    /// a lost disk, outside the delivery contract. Used only to prove that the checker
    /// sees what such a loss does.
    pub async fn wipe(&self, i: usize) -> anyhow::Result<()> {
        let p = self.nodes[i].process.lock().await;
        anyhow::ensure!(p.child.is_none(), "node {} is running", self.nodes[i].id);
        let data = &self.net.nodes[i].config.data_dir;
        std::fs::remove_dir_all(data).with_context(|| format!("removing {}", data.display()))?;
        Ok(())
    }

    pub fn partition(&self, i: usize, on: bool) {
        self.nodes[i].proxy.control().set_partitioned(on);
    }

    pub fn set_delay(&self, i: usize, delay: Option<Delay>) {
        self.nodes[i].proxy.control().set_delay(delay);
    }

    /// Ends every fault: proxies transparent, paused nodes continued, nodes that are down
    /// started again; waits until every node answers.
    pub async fn heal_all(&self) -> anyhow::Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            node.proxy.control().heal();
            self.check_exited(i).await;
            match self.state(i).await {
                NodeState::Paused => self.resume(i).await?,
                NodeState::Down => {
                    self.restart(i).await?;
                }
                NodeState::Running => {}
            }
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i, true).await?;
        }
        Ok(())
    }

    /// How many times each node was started, in node order.
    pub async fn starts(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for node in &self.nodes {
            out.push(node.process.lock().await.starts);
        }
        out
    }

    /// Kills every node (continuing paused ones first, so none is left stopped).
    pub async fn shutdown(&self) {
        for i in 0..self.nodes.len() {
            let _ = self.resume(i).await;
            let _ = self.kill(i).await;
        }
    }
}

/// Rewrites the directory source and the node configurations so that node-to-node
/// traffic goes to the proxies: a node's directory endpoint becomes its proxy, and each
/// node fetches the directory from its parent's proxy.
fn route_through_proxies(
    net: &Network,
    listens: &[SocketAddr],
    proxies: &[SocketAddr],
) -> anyhow::Result<()> {
    let url = |a: &SocketAddr| format!("\"https://{a}\"");
    let source_path = net.directory_source();
    let mut source = std::fs::read_to_string(source_path)?;
    for (listen, proxy) in listens.iter().zip(proxies) {
        anyhow::ensure!(
            source.contains(&url(listen)),
            "the generated directory does not name {listen}"
        );
        source = source.replace(&url(listen), &url(proxy));
    }
    std::fs::write(source_path, source)?;
    for node in &net.nodes {
        let mut config = node.config.clone();
        if let Some(network) = config.network.as_mut()
            && let Some(parent) = &network.parent
        {
            let p = net
                .nodes
                .iter()
                .position(|n| n.id.as_str() == parent)
                .with_context(|| format!("no parent {parent} in the network"))?;
            network.parent_endpoint = Some(format!("https://{}", proxies[p]));
        }
        let path = net
            .dir
            .join("nodes")
            .join(node.id.as_str())
            .join("node.toml");
        std::fs::write(&path, toml::to_string_pretty(&config)?)?;
    }
    Ok(())
}

/// Sends `kill -SIG pid` with the system's `kill` command: the workspace forbids unsafe
/// code, and this needs no extra crate.
async fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .await
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed: {status}");
    Ok(())
}

/// A shared cluster.
pub type SharedCluster = Arc<Cluster>;
