//! # lienthong-devnet
//!
//! A lienthong network on this machine in a few lines: a fresh CA, node and agency
//! certificates, node configuration and client profiles under a directory
//! ([`generate`] for one node, [`generate_network`] for a tree of them), and nodes
//! running in this process on port 0 ([`RunningNode`], [`RunningNetwork`]).
//! `lienthong dev` and `lienthong bench` build on it, and so does the test kit; it holds
//! nothing only tests need (fault injection lives in `lienthong-testkit`).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lienthong_client::ClientProfile;
use lienthong_core::AgencyCode;
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
    let (cert, key) = node_cert(&ca, &node_id, &node_dir)?;
    let endpoint = format!("https://{listen}");
    let mut profiles = Vec::new();
    for (code, _) in agencies {
        let agency = AgencyCode::parse(code)?;
        let path = agency_profile(&ca, dir, &agency, &endpoint, DEV_NODE)?;
        profiles.push((agency, path));
    }
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
        delivery: Default::default(),
        network: None,
        vxp: vxp_gateway(dir, DEV_NODE, &profiles)?,
        vxp_upstream: None,
    };
    let config_path = node_dir.join("node.toml");
    std::fs::write(&config_path, toml::to_string_pretty(&config)?)?;

    let operator_profile = operator_profile(dir, &endpoint, DEV_NODE, (cert, key))?;
    Ok(DevNetwork {
        dir: dir.to_path_buf(),
        config,
        config_path,
        profiles,
        operator_profile,
    })
}

/// Issues a node certificate (ECDSA P-256, reachable as localhost / 127.0.0.1) into
/// `node_dir`; returns the certificate and key paths.
fn node_cert(
    ca: &CertificateAuthority,
    node: &lienthong_core::NodeId,
    node_dir: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let issued = ca.issue(
        &Identity::Node(node.clone()),
        &["localhost".to_string()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        KeyKind::EcdsaP256,
        365,
    )?;
    Ok(issued.save(node_dir, "node")?)
}

/// Issues `agency`'s certificate (Ed25519, the key that also signs its documents) and
/// writes its client profile for the node `node` at `endpoint`; returns the profile path.
fn agency_profile(
    ca: &CertificateAuthority,
    dir: &Path,
    agency: &AgencyCode,
    endpoint: &str,
    node: &str,
) -> anyhow::Result<PathBuf> {
    let issued = ca.issue(
        &Identity::Agency(agency.clone()),
        &[],
        &[],
        KeyKind::Ed25519,
        365,
    )?;
    let (cert, key) = issued.save(dir.join("agencies"), agency.as_str())?;
    write_profile(
        dir,
        agency.as_str(),
        ClientProfile {
            endpoint: endpoint.to_string(),
            node: node.to_string(),
            agency: Some(agency.to_string()),
            ca: dir.join("ca").join("ca.pem"),
            cert,
            key,
            crls: Vec::new(),
        },
    )
}

/// The operator profile of node `node`: its own certificate and key.
fn operator_profile(
    dir: &Path,
    endpoint: &str,
    node: &str,
    (cert, key): (PathBuf, PathBuf),
) -> anyhow::Result<PathBuf> {
    write_profile(
        dir,
        &format!("operator-{node}"),
        ClientProfile {
            endpoint: endpoint.to_string(),
            node: node.to_string(),
            agency: None,
            ca: dir.join("ca").join("ca.pem"),
            cert,
            key,
            crls: Vec::new(),
        },
    )
}

/// The VXP gateway of a node serving `agencies` (none without agencies): one system per
/// agency, whose id is the agency code and whose secret is in `vxp/<code>.secret` (the
/// gateway reads them all from `vxp/secrets.toml`), acting with the agency's own profile
/// (in a dev network the DMS's key doubles as the custodial key), listening on a free
/// port of 127.0.0.1 with the node's certificate.
fn vxp_gateway(
    dir: &Path,
    node: &str,
    agencies: &[(AgencyCode, PathBuf)],
) -> anyhow::Result<Option<lienthong_vxp::GatewayConfig>> {
    use std::os::unix::fs::OpenOptionsExt;
    if agencies.is_empty() {
        return Ok(None);
    }
    let vxp_dir = dir.join("vxp");
    std::fs::create_dir_all(&vxp_dir)?;
    let owner_only = |path: &Path, text: &str| -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(())
    };
    let secrets_file = vxp_dir.join(format!("secrets-{node}.toml"));
    let mut secrets = String::from("# VXP system id = secret (HMAC key of the SDK)\n");
    let mut systems = Vec::new();
    let mut agency_profiles = std::collections::BTreeMap::new();
    for (agency, profile) in agencies {
        let secret = random_hex(16)?;
        secrets.push_str(&format!("{:?} = {secret:?}\n", agency.as_str()));
        owner_only(&vxp_dir.join(format!("{agency}.secret")), &secret)?;
        systems.push(lienthong_vxp::gateway::SystemConfig {
            id: agency.to_string(),
            agencies: vec![agency.to_string()],
        });
        agency_profiles.insert(agency.to_string(), profile.clone());
    }
    owner_only(&secrets_file, &secrets)?;
    let mut config = lienthong_vxp::GatewayConfig::new(secrets_file, systems);
    config.agency_profiles = agency_profiles;
    Ok(Some(config))
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The file holding the VXP secret of `agency` in a network generated under `dir`.
pub fn vxp_secret_file(dir: &Path, agency: &AgencyCode) -> PathBuf {
    dir.join("vxp").join(format!("{agency}.secret"))
}

fn write_profile(dir: &Path, name: &str, profile: ClientProfile) -> anyhow::Result<PathBuf> {
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles)?;
    let path = profiles.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string_pretty(&profile)?)?;
    Ok(path)
}

/// A node running in this process until [`RunningNode::stop`].
#[derive(Debug)]
pub struct RunningNode {
    pub addr: SocketAddr,
    /// The VXP gateway's address, when the node has one.
    pub vxp_addr: Option<SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), lienthong_node::Error>>,
}

impl RunningNode {
    pub async fn start(
        config: &NodeConfig,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let bound = lienthong_node::server::bind(config, listener).await?;
        let vxp_addr = bound.vxp_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        Ok(RunningNode {
            addr,
            vxp_addr,
            stop,
            task,
        })
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
            crls: Vec::new(),
        };
        let path = self.dir.join("extra").join(format!("{name}.toml"));
        std::fs::write(&path, toml::to_string_pretty(&profile)?)?;
        Ok(path)
    }
}

// ---- multi-node networks ---------------------------------------------------------------

/// One node of a generated network.
#[derive(Debug)]
pub struct NetNode {
    pub id: lienthong_core::NodeId,
    pub level: &'static str,
    pub config: NodeConfig,
    /// (agency code, name, client profile) of the agencies homed here.
    pub agencies: Vec<(AgencyCode, String, PathBuf)>,
    pub operator_profile: PathBuf,
}

/// A generated tree of nodes with its PKI, directory and profiles.
#[derive(Debug)]
pub struct Network {
    pub dir: PathBuf,
    pub tiers: u8,
    /// The national gateway first, then parents before children.
    pub nodes: Vec<NetNode>,
}

impl Network {
    /// The national gateway's directory source (TOML); edit it and restart the gateway
    /// to publish a new version.
    pub fn directory_source(&self) -> &Path {
        self.nodes[0]
            .config
            .network
            .as_ref()
            .and_then(|n| n.directory_file.as_deref())
            .expect("the national gateway has a directory file")
    }

    pub fn node(&self, id: &str) -> &NetNode {
        self.nodes
            .iter()
            .find(|n| n.id.as_str() == id)
            .unwrap_or_else(|| panic!("no node {id} in the generated network"))
    }

    /// The client profile of `code`.
    pub fn profile(&self, code: &str) -> &Path {
        self.nodes
            .iter()
            .flat_map(|n| &n.agencies)
            .find(|(c, _, _)| c.as_str() == code)
            .map(|(_, _, p)| p.as_path())
            .unwrap_or_else(|| panic!("no agency {code} in the generated network"))
    }
}

/// (node id, level, parent, [(agency code, agency name)]).
type TreeNode = (String, &'static str, Option<String>, Vec<(String, String)>);

/// The shape of a generated network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// 2: national → province → commune (local government since 2025);
    /// 3: national → province → district → commune.
    pub tiers: u8,
    /// Children of each province (and of each district), at least 1.
    pub fanout: usize,
    /// The two provinces: (code suffix, name), e.g. `("H41", "Nghệ An")`; the agency codes
    /// end in the suffix, so networks with other provinces share no agency.
    pub provinces: [(&'static str, &'static str); 2],
}

impl Shape {
    pub fn new(tiers: u8) -> Self {
        Shape {
            tiers,
            fanout: 2,
            provinces: [("H41", "Nghệ An"), ("H42", "Hà Tĩnh")],
        }
    }
}

/// The generated tree: the national gateway, two provinces (Nghệ An H41 and Hà Tĩnh H42),
/// and below each `fanout` communes (2 tiers) or `fanout` districts of `fanout` communes
/// each (3 tiers).
fn tree(shape: Shape) -> Vec<TreeNode> {
    let (tiers, fanout, provinces) = (shape.tiers, shape.fanout.max(1), shape.provinces);
    let mut out = vec![(
        "VN".to_string(),
        "national",
        None,
        vec![(
            "000.00.00.G22".to_string(),
            "Văn phòng Chính phủ".to_string(),
        )],
    )];
    for (p, pname) in provinces {
        out.push((
            p.to_string(),
            "province",
            Some("VN".to_string()),
            vec![
                (format!("000.00.00.{p}"), format!("UBND tỉnh {pname}")),
                (
                    format!("000.00.14.{p}"),
                    format!("Sở Thông tin và Truyền thông {pname}"),
                ),
            ],
        ));
        let communes_under = |parent: &str, base: usize, out: &mut Vec<_>| {
            for c in 1..=fanout {
                let n = base + c;
                out.push((
                    format!("{parent}-C{c}"),
                    "commune",
                    Some(parent.to_string()),
                    vec![(
                        format!("{n:03}.00.20.{p}"),
                        format!("UBND xã số {n}, {pname}"),
                    )],
                ));
            }
        };
        if tiers == 3 {
            for d in 1..=fanout {
                let district = format!("{p}-D{d}");
                out.push((
                    district.clone(),
                    "district",
                    Some(p.to_string()),
                    vec![(
                        format!("000.{d:02}.10.{p}"),
                        format!("UBND huyện số {d}, {pname}"),
                    )],
                ));
                communes_under(&district, d * 10, &mut out);
            }
        } else {
            communes_under(p, 0, &mut out);
        }
    }
    out
}

/// How many nodes [`generate_network`] makes for `shape`.
pub fn network_size(shape: Shape) -> usize {
    tree(shape).len()
}

/// Writes a CA, node and agency certificates, the national directory source, node
/// configurations and client profiles under `dir`, for nodes listening on `addrs` (in the
/// order of [`tree`]: national first). `poll_ms` is how often children ask for a newer
/// directory.
pub fn generate_network(
    dir: &Path,
    shape: Shape,
    addrs: &[SocketAddr],
    poll_ms: u64,
) -> anyhow::Result<Network> {
    let tiers = shape.tiers;
    anyhow::ensure!(
        tiers == 2 || tiers == 3,
        "tiers must be 2 or 3, not {tiers}"
    );
    let shape = tree(shape);
    anyhow::ensure!(
        addrs.len() == shape.len(),
        "{} nodes need {} addresses",
        shape.len(),
        addrs.len()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = CertificateAuthority::generate("lienthong dev network CA")?;
    let ca_dir = dir.join("ca");
    ca.save(&ca_dir)?;
    let ca_pem = ca_dir.join("ca.pem");
    let endpoint = |i: usize| format!("https://{}", addrs[i]);

    // The national directory source.
    let mut source = String::from("# lienthong directory: nodes and agencies\nversion = 1\n");
    for (i, (id, level, parent, _)) in shape.iter().enumerate() {
        source.push_str(&format!(
            "\n[[nodes]]\nid = {id:?}\nlevel = {level:?}\nendpoint = {:?}\n",
            endpoint(i)
        ));
        if let Some(p) = parent {
            source.push_str(&format!("parent = {p:?}\n"));
        }
    }
    for (id, _, _, agencies) in &shape {
        for (code, name) in agencies {
            source.push_str(&format!(
                "\n[[agencies]]\ncode = {code:?}\nname = {name:?}\nhome = {id:?}\n"
            ));
        }
    }
    let national_dir = dir.join("nodes").join(&shape[0].0);
    std::fs::create_dir_all(&national_dir)?;
    let directory_file = national_dir.join("directory.toml");
    std::fs::write(&directory_file, source)?;

    let mut nodes = Vec::new();
    for (i, (id, level, parent, agencies)) in shape.iter().enumerate() {
        let node_id = lienthong_core::NodeId::parse(id)?;
        let node_dir = dir.join("nodes").join(id);
        let (cert, key) = node_cert(&ca, &node_id, &node_dir)?;
        let parent_index = parent
            .as_ref()
            .and_then(|p| shape.iter().position(|(pid, ..)| pid == p));
        let config = NodeConfig {
            node_id: id.clone(),
            listen: addrs[i],
            data_dir: node_dir.join("data"),
            tls: TlsConfig {
                ca: ca_pem.clone(),
                cert: cert.clone(),
                key: key.clone(),
                crls: Vec::new(),
            },
            agencies: Vec::new(),
            limits: Limits::default(),
            delivery: Default::default(),
            network: Some(lienthong_node::config::NetworkConfig {
                national: shape[0].0.clone(),
                directory_file: (i == 0).then(|| directory_file.clone()),
                parent_endpoint: parent_index.map(endpoint),
                parent: parent.clone(),
                directory_poll_ms: poll_ms,
            }),
            vxp: None,
            vxp_upstream: None,
        };
        let mut homed = Vec::new();
        for (code, name) in agencies {
            let agency = AgencyCode::parse(code)?;
            let path = agency_profile(&ca, dir, &agency, &endpoint(i), id)?;
            homed.push((agency, name.clone(), path));
        }
        let mut config = config;
        config.vxp = vxp_gateway(
            dir,
            id,
            &homed
                .iter()
                .map(|(a, _, p)| (a.clone(), p.clone()))
                .collect::<Vec<_>>(),
        )?;
        std::fs::write(node_dir.join("node.toml"), toml::to_string_pretty(&config)?)?;
        let operator_profile = operator_profile(dir, &endpoint(i), id, (cert, key))?;
        nodes.push(NetNode {
            id: node_id,
            level,
            config,
            agencies: homed,
            operator_profile,
        });
    }
    Ok(Network {
        dir: dir.to_path_buf(),
        tiers,
        nodes,
    })
}

/// The directory source `source` with `aliases` (legacy codes, platform account ids)
/// and, when given, the `edxml_id` (the identifier its system expects in edXML, one of
/// the aliases) added to agency `code`'s entry.
pub fn with_aliases(source: &str, code: &str, aliases: &[&str], edxml_id: Option<&str>) -> String {
    let entry = format!("[[agencies]]\ncode = {code:?}\n");
    let mut added = format!("{entry}aliases = {aliases:?}\n");
    if let Some(id) = edxml_id {
        added.push_str(&format!("edxml_id = {id:?}\n"));
    }
    assert!(
        source.contains(&entry),
        "no agency {code} in the directory source"
    );
    source.replacen(&entry, &added, 1)
}

/// The directory source `source` with node `node` named a bridge to the national
/// platform, registered for `agencies` (none: for every agency).
pub fn with_bridge(source: &str, node: &str, agencies: &[&str]) -> String {
    format!("{source}\n[[bridges]]\nnode = {node:?}\nagencies = {agencies:?}\n")
}

/// A generated network with every node running in this process.
#[derive(Debug)]
pub struct RunningNetwork {
    pub net: Network,
    /// In the order of `net.nodes`; `None` while a node is stopped.
    nodes: Vec<Option<RunningNode>>,
}

impl RunningNetwork {
    /// Binds one listener per node on 127.0.0.1:0 (or `base_port` + i), generates the
    /// network under `dir`, and starts the nodes, national gateway first. Returns once
    /// every node has the directory.
    pub async fn start(
        dir: &Path,
        shape: Shape,
        base_port: u16,
        poll_ms: u64,
    ) -> anyhow::Result<Self> {
        Self::start_with(dir, shape, base_port, poll_ms, |_| {}).await
    }

    /// As [`RunningNetwork::start`], with `adjust` applied to every node's configuration
    /// first (kept for restarts).
    pub async fn start_with(
        dir: &Path,
        shape: Shape,
        base_port: u16,
        poll_ms: u64,
        adjust: impl Fn(&mut NodeConfig),
    ) -> anyhow::Result<Self> {
        Self::start_with_directory(dir, shape, base_port, poll_ms, adjust, |source| source).await
    }

    /// As [`RunningNetwork::start_with`], the national directory source (TOML, version 1)
    /// replaced by what `edit` makes of it before the national gateway signs it (e.g. with
    /// [`with_aliases`]).
    pub async fn start_with_directory(
        dir: &Path,
        shape: Shape,
        base_port: u16,
        poll_ms: u64,
        adjust: impl Fn(&mut NodeConfig),
        edit: impl FnOnce(String) -> String,
    ) -> anyhow::Result<Self> {
        let n = network_size(shape);
        let mut listeners = Vec::with_capacity(n);
        for i in 0..n {
            let port = if base_port == 0 {
                0
            } else {
                base_port + i as u16
            };
            listeners.push(
                tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                    .await
                    .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?,
            );
        }
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()?;
        let mut net = generate_network(dir, shape, &addrs, poll_ms)?;
        let source = net.directory_source().to_path_buf();
        std::fs::write(&source, edit(std::fs::read_to_string(&source)?))?;
        for node in &mut net.nodes {
            adjust(&mut node.config);
        }
        let mut nodes = Vec::with_capacity(n);
        for (node, listener) in net.nodes.iter().zip(listeners) {
            nodes.push(Some(RunningNode::start(&node.config, listener).await?));
        }
        let running = RunningNetwork { net, nodes };
        running
            .wait_for_directory(std::time::Duration::from_secs(30))
            .await?;
        Ok(running)
    }

    /// The VXP gateway address of node `i` (in the order of `net.nodes`), when it runs
    /// and has one.
    pub fn vxp_addr(&self, i: usize) -> Option<SocketAddr> {
        self.nodes.get(i)?.as_ref()?.vxp_addr
    }

    /// Polls each node's health until all hold a signed directory (version ≥ 1).
    pub async fn wait_for_directory(&self, within: std::time::Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        for node in &self.net.nodes {
            let mut admin = ClientProfile::load(&node.operator_profile)?.admin()?;
            loop {
                let agencies = admin
                    .health(lienthong_proto::pb::HealthRequest {})
                    .await
                    .map(|h| h.into_inner().agencies)
                    .unwrap_or(0);
                if agencies as usize == node.agencies.len() {
                    break;
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "node {} has no directory after {within:?}",
                    node.id
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The DMS client of agency `code`.
    pub fn client(&self, code: &str) -> anyhow::Result<lienthong_client::DmsClient> {
        let profile = ClientProfile::load(self.net.profile(code))?;
        Ok(lienthong_client::DmsClient::from_profile(&profile)?)
    }

    fn index(&self, id: &str) -> anyhow::Result<usize> {
        self.net
            .nodes
            .iter()
            .position(|n| n.id.as_str() == id)
            .with_context(|| format!("no node {id} in the network"))
    }

    /// Stops node `id`; its data directory stays.
    pub async fn stop_node(&mut self, id: &str) -> anyhow::Result<()> {
        let i = self.index(id)?;
        if let Some(node) = self.nodes[i].take() {
            node.stop().await?;
        }
        Ok(())
    }

    /// Starts node `id` again on its address and data directory, re-reading its
    /// configuration (and, at the national gateway, the directory source).
    pub async fn start_node(&mut self, id: &str) -> anyhow::Result<()> {
        let i = self.index(id)?;
        anyhow::ensure!(self.nodes[i].is_none(), "node {id} is running");
        let config = &self.net.nodes[i].config;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        self.nodes[i] = Some(RunningNode::start(config, listener).await?);
        Ok(())
    }

    /// The operator's admin client of node `id`.
    pub fn admin(
        &self,
        id: &str,
    ) -> anyhow::Result<
        lienthong_proto::pb::admin_service_client::AdminServiceClient<tonic::transport::Channel>,
    > {
        let i = self.index(id)?;
        Ok(ClientProfile::load(&self.net.nodes[i].operator_profile)?.admin()?)
    }

    pub async fn restart_node(&mut self, id: &str) -> anyhow::Result<()> {
        self.stop_node(id).await?;
        self.start_node(id).await
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        // Children first, so that no link is left dialling a stopped parent.
        for node in self.nodes.into_iter().rev().flatten() {
            node.stop().await?;
        }
        Ok(())
    }
}
