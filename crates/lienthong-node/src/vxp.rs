//! The VXP gateway beside the node (`[vxp]`): an HTTPS listener that DMSs built against
//! the national platform's SDK call unchanged, in front of
//! [`lienthong_vxp::BusBackend`].
//!
//! The gateway runs in the node's process but reaches the node as a DMS does, over mutual
//! TLS with each agency's certificate and the custodial key the operator keeps for it:
//! one admission path and every check a DMS passes apply to what arrives over VXP, and
//! the gateway holds no handle into the node (it could as well run on another host).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use lienthong_client::{ClientProfile, DmsClient};
use lienthong_vxp::{BusBackend, Gateway, GatewayConfig};
use tokio::net::TcpListener;

use crate::Error;
use crate::config::NodeConfig;

/// A gateway ready to serve.
pub struct VxpGateway {
    gateway: Arc<Gateway<BusBackend>>,
    tls: Arc<rustls::ServerConfig>,
    listen: SocketAddr,
}

impl std::fmt::Debug for VxpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VxpGateway")
            .field("listen", &self.listen)
            .finish()
    }
}

impl VxpGateway {
    /// The configured listen address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }
}

/// Builds the gateway of `config.vxp`, or `None` without one: the systems and secrets
/// (the secrets file refused when others can read it), one client per agency profile
/// (its key file likewise), the TLS identity. Fails before any port is used.
pub fn build(config: &NodeConfig) -> Result<Option<VxpGateway>, Error> {
    let Some(vxp) = &config.vxp else {
        return Ok(None);
    };
    let refused = |what: String| Error::Config(format!("[vxp] {what}"));
    let mut clients = Vec::with_capacity(vxp.agency_profiles.len());
    for (agency, path) in &vxp.agency_profiles {
        let profile = ClientProfile::load(path).map_err(|e| refused(e.to_string()))?;
        if profile.agency.as_deref() != Some(agency.as_str()) {
            return Err(refused(format!(
                "agency_profiles.\"{agency}\" = {} is a profile of {}; give each agency its own profile",
                path.display(),
                profile.agency.as_deref().unwrap_or("no agency")
            )));
        }
        clients.push(
            DmsClient::from_profile(&profile)
                .map_err(|e| refused(format!("{}: {e}", path.display())))?,
        );
    }
    for system in &vxp.systems {
        for agency in &system.agencies {
            if !vxp.agency_profiles.contains_key(agency) {
                return Err(refused(format!(
                    "system '{}' acts for {agency}, which has no entry in agency_profiles; add its profile",
                    system.id
                )));
            }
        }
    }
    let state_dir = vxp
        .state_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("vxp"));
    let spool_dir = vxp
        .spool_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("spool"));
    let backend = BusBackend::new(clients, &state_dir, spool_dir.clone())
        .map_err(|e| refused(format!("cannot prepare {}: {e}", state_dir.display())))?;
    let gateway_config = GatewayConfig {
        spool_dir: Some(spool_dir),
        ..vxp.clone()
    };
    let gateway =
        Gateway::from_config(&gateway_config, backend).map_err(|e| refused(e.to_string()))?;
    let cert = vxp.cert.as_ref().unwrap_or(&config.tls.cert);
    let key = vxp.key.as_ref().unwrap_or(&config.tls.key);
    let tls = lienthong_vxp::gateway::server_tls_config(
        lienthong_pki::load_certs(cert)?,
        lienthong_pki::load_private_key(key)?,
    )
    .map_err(|e| refused(e.to_string()))?;
    Ok(Some(VxpGateway {
        gateway,
        tls: Arc::new(tls),
        listen: vxp.listen,
    }))
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    gateway: VxpGateway,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let router = gateway.gateway.router();
    lienthong_vxp::gateway::serve(listener, gateway.tls, router, shutdown).await?;
    Ok(())
}
