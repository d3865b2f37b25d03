//! The client profile: a TOML file naming the node's endpoint and id, the agency a DMS
//! speaks for, and its PKI files.

use std::path::{Path, PathBuf};

use lienthong_core::NodeId;
use lienthong_pki::{Identity, TlsFiles};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::Error;

/// A client profile (TOML): who the client is and which node it talks to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientProfile {
    /// The node's endpoint, `https://host:port`.
    pub endpoint: String,
    /// The node's id; the server certificate must carry it.
    pub node: String,
    /// The agency this DMS speaks for (absent for an operator profile).
    #[serde(default)]
    pub agency: Option<String>,
    /// CA certificate, PEM.
    pub ca: PathBuf,
    /// Client certificate, PEM.
    pub cert: PathBuf,
    /// Client private key, PEM; must not be group- or world-readable.
    pub key: PathBuf,
    /// Certificate revocation lists, PEM (from `lienthong pki revoke`). When given, the
    /// node's certificate and every signature fetched (documents, status notices,
    /// receipts) are checked against them, and each CA in `ca` needs its CRL here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crls: Vec<PathBuf>,
}

impl ClientProfile {
    /// Reads a profile; relative paths in it are relative to the profile's folder.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read client profile {}: {e}",
                path.display()
            ))
        })?;
        let mut p: ClientProfile =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut p.ca, &mut p.cert, &mut p.key]
            .into_iter()
            .chain(p.crls.iter_mut())
        {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        Ok(p)
    }

    /// The PKI files of the profile.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crls: self.crls.clone(),
        }
    }

    /// The node the profile talks to.
    pub fn node_id(&self) -> Result<NodeId, Error> {
        NodeId::parse(&self.node).map_err(|e| Error::Config(format!("node: {e}")))
    }

    /// A channel to the node, checking that the server is the node named here.
    pub fn channel(&self) -> Result<Channel, Error> {
        crate::transport::connect(
            &self.endpoint,
            &self.tls_files(),
            Some(Identity::Node(self.node_id()?)),
        )
    }

    /// The generated client of the node's admin API, for an operator profile. (The
    /// operator commands speak the admin messages directly; a typed operator client
    /// belongs with the operators' screens.)
    pub fn admin(
        &self,
    ) -> Result<lienthong_proto::pb::admin_service_client::AdminServiceClient<Channel>, Error> {
        Ok(lienthong_proto::pb::admin_service_client::AdminServiceClient::new(self.channel()?))
    }
}
