//! # lienthong-testkit
//!
//! A lienthong network on this machine in a few lines: a fresh CA, node and agency
//! certificates, node configuration and client profiles under a directory
//! ([`generate`]), and nodes running in this process on port 0 ([`RunningNode`]).
//! `lienthong dev`, `lienthong bench` and the end-to-end tests all build on it.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lienthong_core::AgencyCode;
use lienthong_node::client::ClientProfile;
use lienthong_node::config::{AgencyConfig, Limits, NodeConfig, TlsConfig};
use lienthong_pki::{CertificateAuthority, Identity, KeyKind};

/// The agencies of the development node: Nghệ An province (H41).
pub const DEV_NODE: &str = "H41";
pub const DEV_AGENCIES: [(&str, &str); 4] = [
    ("000.00.00.H41", "UBND tỉnh Nghệ An"),
    ("000.00.14.H41", "Sở Thông tin và Truyền thông tỉnh Nghệ An"),
    ("000.00.20.H41", "Sở Tài chính tỉnh Nghệ An"),
    ("001.01.20.H41", "UBND xã Nghi Phú"),
];

/// A generated single-node network: its config and one client profile per agency, plus
/// an operator profile.
#[derive(Debug)]
pub struct DevNetwork {
    pub dir: PathBuf,
    pub config: NodeConfig,
    pub config_path: PathBuf,
    /// (agency code, profile path), in [`DEV_AGENCIES`] order.
    pub profiles: Vec<(AgencyCode, PathBuf)>,
    pub operator_profile: PathBuf,
}

/// Writes a CA, a node certificate, agency certificates, `node.toml` and client profiles
/// under `dir`, for a node listening on `listen`.
pub fn generate(
    dir: &Path,
    listen: SocketAddr,
    agencies: &[(&str, &str)],
) -> anyhow::Result<DevNetwork> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = CertificateAuthority::generate("lienthong dev CA")?;
    let ca_dir = dir.join("ca");
    ca.save(&ca_dir)?;
    let ca_pem = ca_dir.join("ca.pem");

    let node_id = lienthong_core::NodeId::parse(DEV_NODE)?;
    let node_dir = dir.join("nodes").join(DEV_NODE);
    let node_cert = ca.issue(
        &Identity::Node(node_id.clone()),
        &["localhost".to_string()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        KeyKind::EcdsaP256,
        365,
    )?;
    let (cert, key) = node_cert.save(&node_dir, "node")?;
    let config = NodeConfig {
        node_id: DEV_NODE.to_string(),
        listen,
        data_dir: node_dir.join("data"),
        tls: TlsConfig {
            ca: ca_pem.clone(),
            cert: cert.clone(),
            key: key.clone(),
            crls: Vec::new(),
        },
        agencies: agencies
            .iter()
            .map(|(code, name)| AgencyConfig {
                code: code.to_string(),
                name: name.to_string(),
                aliases: Vec::new(),
            })
            .collect(),
        limits: Limits::default(),
    };
    let config_path = node_dir.join("node.toml");
    std::fs::write(&config_path, toml::to_string_pretty(&config)?)?;

    let endpoint = format!("https://{listen}");
    let profiles_dir = dir.join("profiles");
    std::fs::create_dir_all(&profiles_dir)?;
    let mut profiles = Vec::new();
    for (code, _) in agencies {
        let agency = AgencyCode::parse(code)?;
        let issued = ca.issue(
            &Identity::Agency(agency.clone()),
            &[],
            &[],
            KeyKind::Ed25519,
            365,
        )?;
        let (cert, key) = issued.save(dir.join("agencies"), code)?;
        let profile = ClientProfile {
            endpoint: endpoint.clone(),
            node: DEV_NODE.to_string(),
            agency: Some(code.to_string()),
            ca: ca_pem.clone(),
            cert,
            key,
        };
        let path = profiles_dir.join(format!("{code}.toml"));
        std::fs::write(&path, toml::to_string_pretty(&profile)?)?;
        profiles.push((agency, path));
    }
    let operator = ClientProfile {
        endpoint,
        node: DEV_NODE.to_string(),
        agency: None,
        ca: ca_pem,
        cert,
        key,
    };
    let operator_profile = profiles_dir.join(format!("operator-{DEV_NODE}.toml"));
    std::fs::write(&operator_profile, toml::to_string_pretty(&operator)?)?;
    Ok(DevNetwork {
        dir: dir.to_path_buf(),
        config,
        config_path,
        profiles,
        operator_profile,
    })
}

/// A node running in this process until [`RunningNode::stop`].
#[derive(Debug)]
pub struct RunningNode {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), lienthong_node::Error>>,
}

impl RunningNode {
    pub async fn start(
        config: &NodeConfig,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let (node, tls) = lienthong_node::server::build(config)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(lienthong_node::server::serve(node, tls, listener, async {
            let _ = stopped.await;
        }));
        Ok(RunningNode { addr, stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

impl DevNetwork {
    /// Issues a certificate for `identity` from the CA in `ca_dir` (this network's CA by
    /// default) and writes a client profile for it; for tests of foreign CAs and of
    /// agencies that are not homed here.
    pub fn extra_profile(
        &self,
        ca_dir: Option<&Path>,
        identity: &Identity,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        let ca_dir = ca_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.join("ca"));
        let ca = CertificateAuthority::load(&ca_dir)?;
        let kind = match identity {
            Identity::Node(_) => KeyKind::EcdsaP256,
            Identity::Agency(_) => KeyKind::Ed25519,
        };
        let issued = ca.issue(identity, &[], &[], kind, 30)?;
        let (cert, key) = issued.save(self.dir.join("extra"), name)?;
        let profile = ClientProfile {
            endpoint: format!("https://{}", self.config.listen),
            node: self.config.node_id.clone(),
            agency: identity.agency().map(|a| a.to_string()),
            // Trust this network's CA for the server, whoever issued the client cert.
            ca: self.dir.join("ca").join("ca.pem"),
            cert,
            key,
        };
        let path = self.dir.join("extra").join(format!("{name}.toml"));
        std::fs::write(&path, toml::to_string_pretty(&profile)?)?;
        Ok(path)
    }
}

/// A generated network with its node running, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct TestNetwork {
    pub net: DevNetwork,
    pub node: Option<RunningNode>,
    _dir: tempfile::TempDir,
}

impl TestNetwork {
    /// A network of [`DEV_AGENCIES`] on one node on 127.0.0.1:0; `adjust` may change the
    /// node's configuration before it starts.
    pub async fn start(adjust: impl FnOnce(&mut NodeConfig)) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lienthong-test-")
            .tempdir()?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let mut net = generate(dir.path(), listener.local_addr()?, &DEV_AGENCIES)?;
        adjust(&mut net.config);
        let node = RunningNode::start(&net.config, listener).await?;
        Ok(TestNetwork {
            net,
            node: Some(node),
            _dir: dir,
        })
    }

    /// The DMS client of the `i`-th agency of [`DEV_AGENCIES`].
    pub fn client(&self, i: usize) -> anyhow::Result<lienthong_node::client::DmsClient> {
        let profile = ClientProfile::load(&self.net.profiles[i].1)?;
        Ok(lienthong_node::client::DmsClient::from_profile(&profile)?)
    }

    /// Stops the node and starts it again on the same address and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            node.stop().await?;
        }
        let listener = tokio::net::TcpListener::bind(self.net.config.listen).await?;
        self.node = Some(RunningNode::start(&self.net.config, listener).await?);
        Ok(())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            node.stop().await?;
        }
        Ok(())
    }
}
