//! The node's configuration file (TOML). Every field is documented and has a named
//! default; [`NodeConfig::load`] validates everything before any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lienthong_core::id::Agency;
use lienthong_core::{AgencyCode, NodeId};
use serde::{Deserialize, Serialize};

use crate::Error;

pub use lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES;
/// Default time a client gets to finish the TLS handshake, and then again to start
/// HTTP/2.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default number of requests (HTTP/2 streams) one connection may have open at once. A
/// DMS needs a handful (a subscription, fetches, uploads), a relay link a few more; each
/// open stream costs the node memory, so thousands on one connection are refused.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Default number of connections one certificate identity (an agency, a node) may hold
/// open at once. A DMS or a neighbour uses one or two; the cap stops one certificate from
/// taking the node's sockets and memory.
pub const DEFAULT_MAX_CONNECTIONS_PER_IDENTITY: usize = 64;
/// Default number of entries `ListInbox` returns.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

/// One node's configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id; must match the `urn:lienthong:node:<id>` of its certificate.
    pub node_id: String,
    /// Address to listen on for gRPC over mutual TLS, e.g. `127.0.0.1:7001`.
    pub listen: SocketAddr,
    /// Directory of the store (sled database and attachment blobs). Created if missing.
    pub data_dir: PathBuf,
    /// Certificates and keys.
    pub tls: TlsConfig,
    /// Agencies homed at this node (its members).
    #[serde(default)]
    pub agencies: Vec<AgencyConfig>,
    /// Limits that protect the node from abuse.
    #[serde(default)]
    pub limits: Limits,
    /// How messages travel on: retries, circuits and expiry.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// How this node joins a network of nodes. Absent: a stand-alone node serving
    /// `agencies`.
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    /// The VXP gateway beside the node, for DMSs built against the national platform's
    /// SDK (see `lienthong_vxp::GatewayConfig`). Absent: no gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxp: Option<lienthong_vxp::GatewayConfig>,
    /// The bridge to the national platform: this node is one more system on it (the
    /// directory must name it among its bridges). Absent: not a bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxp_upstream: Option<UpstreamConfig>,
}

/// `[vxp_upstream]`: the national platform, and who this node is on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The platform's base URL, `https://host[:port][/path]`; operations go to
    /// `<endpoint>/<op>`.
    pub endpoint: String,
    /// The system id the platform's operators gave this deployment.
    pub system_id: String,
    /// A file holding the secret as plain text (one trailing newline ignored), readable
    /// by the node's account only.
    pub secret_file: PathBuf,
    /// PEM certificates to trust for the platform's HTTPS (its CA).
    pub ca: PathBuf,
    /// How often the platform's mailbox is polled, in milliseconds.
    #[serde(default = "default_upstream_poll_ms")]
    pub poll_ms: u64,
    /// How often the platform's agency lists are fetched again, in milliseconds.
    #[serde(default = "default_agencies_refresh_ms")]
    pub agencies_refresh_ms: u64,
    /// Where the bridge keeps its journal, staging and quarantine (default
    /// `<data_dir>/bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
}

impl UpstreamConfig {
    /// Where the bridge keeps its journal, staging and quarantine.
    pub fn state_path(&self, data_dir: &Path) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("bridge"))
    }
}

/// Default [`UpstreamConfig::poll_ms`].
pub const DEFAULT_UPSTREAM_POLL_MS: u64 = 5_000;

fn default_upstream_poll_ms() -> u64 {
    DEFAULT_UPSTREAM_POLL_MS
}

fn default_agencies_refresh_ms() -> u64 {
    3_600_000
}

/// Default interval at which a node asks its parent for a newer directory.
pub const DEFAULT_DIRECTORY_POLL_MS: u64 = 30_000;

/// Membership in a network: the directory and the parent link.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The national gateway's node id: only a directory signed by this node is accepted.
    pub national: String,
    /// National gateway only: the directory source (TOML) this node signs and serves.
    #[serde(default)]
    pub directory_file: Option<PathBuf>,
    /// The parent's endpoint (`https://host:port`), used to fetch the directory; absent at
    /// the national gateway.
    #[serde(default)]
    pub parent_endpoint: Option<String>,
    /// The parent's node id; its certificate must carry it.
    #[serde(default)]
    pub parent: Option<String>,
    /// How often to ask the parent for a newer directory, in milliseconds (default
    /// [`DEFAULT_DIRECTORY_POLL_MS`]).
    #[serde(default = "default_directory_poll_ms")]
    pub directory_poll_ms: u64,
}

fn default_directory_poll_ms() -> u64 {
    DEFAULT_DIRECTORY_POLL_MS
}

/// Paths of the node's PKI material. Relative paths are relative to the config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s), PEM: the roots for peers and for document signers.
    pub ca: PathBuf,
    /// This node's certificate, PEM.
    pub cert: PathBuf,
    /// This node's private key, PEM (PKCS#8); must not be group- or world-readable.
    pub key: PathBuf,
    /// Certificate revocation lists, PEM (default none): applied to TLS peers and to every
    /// signature the node checks.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

/// An agency homed at this node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyConfig {
    /// QĐ 20/2020 code, e.g. `000.00.00.H41`.
    pub code: String,
    /// Official name (default empty).
    #[serde(default)]
    pub name: String,
    /// Older codes and local ids the agency's DMS may still use (default none).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Default free space the data directory's filesystem keeps: below it, new documents are
/// refused while fetches and acknowledgements go on.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 64 * 1024 * 1024;

/// Default time a reading of the data directory's free space is used before it is taken
/// again: a disk that fills, or is freed, is noticed within it.
pub const DEFAULT_DISK_RECHECK_MS: u64 = 250;

/// Default largest attachment a DMS may upload: 2 GiB.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Default bytes one agency may hold in uploads no document of its names yet: 4 GiB.
pub const DEFAULT_UPLOAD_QUOTA_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Limits that protect the node from abuse and from running out of room.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest gRPC message accepted, in bytes (default [`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// TLS handshake timeout in milliseconds (default [`DEFAULT_HANDSHAKE_TIMEOUT_MS`]);
    /// after the handshake a client has as long again to send the HTTP/2 connection
    /// preface, or the connection is closed.
    pub handshake_timeout_ms: u64,
    /// Requests (HTTP/2 streams) one connection may have open at once, advertised to
    /// clients in SETTINGS_MAX_CONCURRENT_STREAMS; more are refused (default
    /// [`DEFAULT_MAX_CONCURRENT_STREAMS`]).
    pub max_concurrent_streams: u32,
    /// Connections one certificate identity may hold open at once; further ones are
    /// closed right after the handshake, with a log line (default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_IDENTITY`]).
    pub max_connections_per_identity: usize,
    /// Free bytes the data directory's filesystem must keep for new documents to be
    /// accepted (default [`DEFAULT_MIN_FREE_DISK_BYTES`]); the rest of the space is for
    /// fetches, acknowledgements and events.
    pub min_free_disk_bytes: u64,
    /// How long a reading of the data directory's free space is used before it is taken
    /// again, in milliseconds (default [`DEFAULT_DISK_RECHECK_MS`]): a disk that fills,
    /// or is freed, is noticed within this long.
    pub disk_recheck_ms: u64,
    /// Largest attachment a DMS may upload in chunks, in bytes (default
    /// [`DEFAULT_MAX_ATTACHMENT_BYTES`]); a larger declared size is refused at once.
    pub max_attachment_bytes: u64,
    /// Bytes one agency may hold in uploads that no document of its names yet, partial
    /// uploads included (default [`DEFAULT_UPLOAD_QUOTA_BYTES`]): an upload that would go
    /// past it is refused until the agency sends its documents.
    pub upload_quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections_per_identity: DEFAULT_MAX_CONNECTIONS_PER_IDENTITY,
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES,
            disk_recheck_ms: DEFAULT_DISK_RECHECK_MS,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            upload_quota_bytes: DEFAULT_UPLOAD_QUOTA_BYTES,
        }
    }
}

/// Default lifetime of a message that sets no expiry: 7 days from its creation.
pub const DEFAULT_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// Default first delay before a failed link is tried again.
pub const DEFAULT_RETRY_MIN_MS: u64 = 100;
/// Default longest delay between two attempts of a failing link.
pub const DEFAULT_RETRY_MAX_MS: u64 = 30_000;
/// Default failed attempts in a row after which a link's circuit opens.
pub const DEFAULT_CIRCUIT_FAILURES: u32 = 5;
/// Default wait of an open circuit before one trial connection.
pub const DEFAULT_CIRCUIT_OPEN_MS: u64 = 30_000;
/// Default interval of the sweep of waiting outboxes for expired messages.
pub const DEFAULT_EXPIRY_SWEEP_MS: u64 = 10_000;
/// Default wait for the next acknowledgement while items are in flight.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 15_000;

/// Retries, circuits and expiry of the links towards neighbours.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Lifetime of a document or status notice that sets no expiry, counted from its
    /// creation, in seconds (default [`DEFAULT_EXPIRY_SECS`], 7 days). An expired message
    /// is dead-lettered.
    pub default_expiry_secs: u64,
    /// First delay before a failed link is tried again, in milliseconds (default
    /// [`DEFAULT_RETRY_MIN_MS`]); it doubles after each failure, up to `retry_max_ms`,
    /// with jitter.
    pub retry_min_ms: u64,
    /// Longest delay between two attempts of a failing link, in milliseconds (default
    /// [`DEFAULT_RETRY_MAX_MS`]).
    pub retry_max_ms: u64,
    /// Failed attempts in a row after which a link's circuit opens (default
    /// [`DEFAULT_CIRCUIT_FAILURES`]).
    pub circuit_failures: u32,
    /// How long an open circuit waits before one trial connection, in milliseconds
    /// (default [`DEFAULT_CIRCUIT_OPEN_MS`]).
    pub circuit_open_ms: u64,
    /// How often waiting outboxes are swept for expired messages, in milliseconds
    /// (default [`DEFAULT_EXPIRY_SWEEP_MS`]).
    pub expiry_sweep_ms: u64,
    /// How long a link waits for the next acknowledgement while items are in flight
    /// before it gives the connection up and reconnects, in milliseconds (default
    /// [`DEFAULT_ACK_TIMEOUT_MS`]), plus the time the bytes in flight take at 256 KiB/s:
    /// a frozen neighbour holds the link no longer than that.
    pub ack_timeout_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            default_expiry_secs: DEFAULT_EXPIRY_SECS,
            retry_min_ms: DEFAULT_RETRY_MIN_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            circuit_failures: DEFAULT_CIRCUIT_FAILURES,
            circuit_open_ms: DEFAULT_CIRCUIT_OPEN_MS,
            expiry_sweep_ms: DEFAULT_EXPIRY_SWEEP_MS,
            ack_timeout_ms: DEFAULT_ACK_TIMEOUT_MS,
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
}

impl NodeConfig {
    /// Reads, resolves relative paths against the file's directory, and validates.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.tls.ca);
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        self.tls.crls.iter_mut().for_each(fix);
        if let Some(file) = self
            .network
            .as_mut()
            .and_then(|n| n.directory_file.as_mut())
        {
            fix(file);
        }
        if let Some(vxp) = self.vxp.as_mut() {
            vxp.resolve_paths(base);
        }
        if let Some(up) = self.vxp_upstream.as_mut() {
            fix(&mut up.secret_file);
            fix(&mut up.ca);
            if let Some(dir) = up.state_dir.as_mut() {
                fix(dir);
            }
        }
    }

    /// Checks ids, codes and limits; says which field is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        self.node_id()?;
        self.agencies()?;
        if self.limits.max_message_bytes < 1024 {
            return Err(Error::Config(
                "limits.max_message_bytes must be at least 1024".into(),
            ));
        }
        let d = &self.delivery;
        if d.retry_min_ms == 0 || d.retry_max_ms < d.retry_min_ms {
            return Err(Error::Config(
                "delivery.retry_min_ms must be at least 1 and at most delivery.retry_max_ms".into(),
            ));
        }
        if d.circuit_failures == 0
            || d.expiry_sweep_ms == 0
            || d.default_expiry_secs == 0
            || d.ack_timeout_ms == 0
        {
            return Err(Error::Config(
                "delivery.circuit_failures, delivery.expiry_sweep_ms, \
                 delivery.default_expiry_secs and delivery.ack_timeout_ms must be at least 1"
                    .into(),
            ));
        }
        if let Some(net) = &self.network {
            NodeId::parse(&net.national)
                .map_err(|e| Error::Config(format!("network.national: {e}")))?;
            let is_national = net.national == self.node_id;
            match (
                is_national,
                &net.directory_file,
                &net.parent_endpoint,
                &net.parent,
            ) {
                (true, Some(_), None, None) => {}
                (true, _, _, _) => {
                    return Err(Error::Config(
                        "the national gateway needs network.directory_file and no parent".into(),
                    ));
                }
                (false, None, Some(_), Some(parent)) => {
                    NodeId::parse(parent)
                        .map_err(|e| Error::Config(format!("network.parent: {e}")))?;
                }
                (false, _, _, _) => {
                    return Err(Error::Config(
                        "a node below the national gateway needs network.parent and \
                         network.parent_endpoint, and no directory_file"
                            .into(),
                    ));
                }
            }
            if !self.agencies.is_empty() {
                return Err(Error::Config(
                    "agencies come from the directory in a network; remove [[agencies]]".into(),
                ));
            }
        }
        if self.limits.handshake_timeout_ms == 0 {
            return Err(Error::Config(
                "limits.handshake_timeout_ms must be positive".into(),
            ));
        }
        if self.limits.max_concurrent_streams == 0 || self.limits.max_connections_per_identity == 0
        {
            return Err(Error::Config(
                "limits.max_concurrent_streams and limits.max_connections_per_identity must be \
                 at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn node_id(&self) -> Result<NodeId, Error> {
        NodeId::parse(&self.node_id).map_err(|e| Error::Config(format!("node_id: {e}")))
    }

    /// The homed agencies, validated and without duplicates.
    pub fn agencies(&self) -> Result<Vec<Agency>, Error> {
        let mut out: Vec<Agency> = Vec::new();
        for a in &self.agencies {
            let code =
                AgencyCode::parse(&a.code).map_err(|e| Error::Config(format!("agencies: {e}")))?;
            if out.iter().any(|x| x.code == code) {
                return Err(Error::Config(format!("agencies: {code} is listed twice")));
            }
            out.push(Agency {
                code,
                name: a.name.clone(),
                aliases: a.aliases.clone(),
                // Only a network's directory carries one: without a directory a DMS
                // client resolves no alias.
                edxml_id: None,
            });
        }
        Ok(out)
    }

    pub fn tls_files(&self) -> lienthong_pki::TlsFiles {
        lienthong_pki::TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
            crls: self.tls.crls.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples operators copy from `deploy/config/` stay valid: every field they
    /// name exists, and the limits and delivery values they show are the defaults.
    #[test]
    fn the_deploy_examples_parse_and_show_the_defaults() {
        let node: NodeConfig =
            toml::from_str(include_str!("../../../deploy/config/province-node.toml")).unwrap();
        assert_eq!(node.node_id, "H41");
        assert!(node.network.is_some());
        let limits = Limits::default();
        assert_eq!(node.limits.max_message_bytes, limits.max_message_bytes);
        assert_eq!(
            node.limits.handshake_timeout_ms,
            limits.handshake_timeout_ms
        );
        assert_eq!(
            node.limits.max_concurrent_streams,
            limits.max_concurrent_streams
        );
        assert_eq!(
            node.limits.max_connections_per_identity,
            limits.max_connections_per_identity
        );
        assert_eq!(node.limits.min_free_disk_bytes, limits.min_free_disk_bytes);
        assert_eq!(node.limits.disk_recheck_ms, limits.disk_recheck_ms);
        assert_eq!(
            node.limits.max_attachment_bytes,
            limits.max_attachment_bytes
        );
        assert_eq!(node.limits.upload_quota_bytes, limits.upload_quota_bytes);
        let delivery = DeliveryConfig::default();
        assert_eq!(
            (
                node.delivery.default_expiry_secs,
                node.delivery.retry_min_ms,
                node.delivery.retry_max_ms,
                node.delivery.circuit_failures,
                node.delivery.circuit_open_ms,
                node.delivery.expiry_sweep_ms,
                node.delivery.ack_timeout_ms,
            ),
            (
                delivery.default_expiry_secs,
                delivery.retry_min_ms,
                delivery.retry_max_ms,
                delivery.circuit_failures,
                delivery.circuit_open_ms,
                delivery.expiry_sweep_ms,
                delivery.ack_timeout_ms,
            )
        );
        let profile: lienthong_client::ClientProfile =
            toml::from_str(include_str!("../../../deploy/config/dms-profile.toml")).unwrap();
        assert_eq!(profile.agency.as_deref(), Some("000.00.00.H41"));
    }
}
