//! The bridge to the national document-exchange platform (`[vxp_upstream]`): this node is
//! one more "system" on the platform, speaking its VXP HTTP protocol with
//! [`lienthong_vxp::VxpClient`] (the same signed headers, request shapes and edXML
//! mapping as the gateway DMSs call). The directory names the bridges; any node may be
//! one.
//!
//! - [`agencies`]: the platform's agency lists, fetched periodically and published as a
//!   signed list of external agencies reachable through this bridge (routing towards it,
//!   refusing unknown addresses at the sender's node);
//! - [`outbound`]: the platform's outbox, kept like any link (durable queue, back-off,
//!   circuit, expiry, dead letters, operator retry): each message goes out as edXML with
//!   `sendEdoc`, once (the journal keeps the first attempt's signed timestamp);
//! - [`inbound`]: the platform's mailbox polled, each message imported leniently, signed
//!   by this bridge as "imported from the platform", admitted (durable), and only then
//!   acknowledged on the platform; what cannot be imported is quarantined and answered
//!   with `fail`;
//! - [`journal`]: what survives a crash so that nothing is sent or imported twice.

pub mod agencies;
pub mod inbound;
pub mod journal;
pub mod outbound;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lienthong_vxp::{ClientConfig, Secret, VxpClient};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::config::UpstreamConfig;
use crate::context::Context;
use journal::Journal;

/// A running bridge's shared parts.
#[derive(Debug)]
pub struct Bridge {
    pub ctx: Arc<Context>,
    pub platform: VxpClient,
    pub config: UpstreamConfig,
    pub journal: Journal,
    /// Where edXML is staged on its way out and in.
    pub spool: PathBuf,
    /// Platform messages that could not be imported, with their reasons.
    pub quarantine: PathBuf,
}

impl Bridge {
    /// Builds the bridge of `config` for the node of `ctx`: reads the secret (refused when
    /// others may read it), the platform's roots, opens the journal. Fails before any
    /// call is made.
    pub fn new(ctx: Arc<Context>, config: &UpstreamConfig, data_dir: &Path) -> Result<Self, Error> {
        let refused = |what: String| Error::Config(format!("[vxp_upstream] {what}"));
        let secret = read_secret(&config.secret_file).map_err(refused)?;
        let tls = lienthong_pki::web_client_config(&config.ca)
            .map_err(|e| refused(format!("ca = {}: {e}", config.ca.display())))?;
        let platform = VxpClient::new(ClientConfig::new(
            config.endpoint.trim_end_matches('/'),
            config.system_id.clone(),
            Secret::new(secret),
            Arc::new(tls),
        ))
        .map_err(|e| refused(e.to_string()))?;
        let state = config.state_path(data_dir);
        let private_dir = |dir: &Path| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| refused(format!("cannot create {}: {e}", dir.display())))
        };
        let spool = state.join("spool");
        let quarantine = quarantine_dir(&state);
        private_dir(&spool)?;
        private_dir(&quarantine)?;
        let journal = Journal::open(&state.join("journal.jsonl"))?;
        Ok(Bridge {
            ctx,
            platform,
            config: config.clone(),
            journal,
            spool,
            quarantine,
        })
    }

    /// Starts the bridge's three tasks; they end when `stop` turns true.
    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        tracing::info!(node = %self.ctx.id, platform = %self.config.endpoint, system = %self.config.system_id, "bridge to the national platform");
        vec![
            tokio::spawn(agencies::run(self.clone(), stop.clone())),
            tokio::spawn(outbound::run(self.clone(), stop.clone())),
            tokio::spawn(inbound::run(self, stop)),
        ]
    }
}

/// Where platform messages that could not be imported are kept, with their reasons.
pub fn quarantine_dir(state: &Path) -> PathBuf {
    state.join("quarantine")
}

/// The platform secret: the file's text without one trailing newline; refused when the
/// group or others may read the file, or when it is empty.
fn read_secret(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let what = |e: std::io::Error| format!("secret_file = {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(what)?;
    let mode = file.metadata().map_err(what)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "secret_file = {} has mode {mode:o}; others may read the platform secret: chmod 600 it",
            path.display()
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(what)?;
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("secret_file = {} is empty", path.display()));
    }
    Ok(secret.to_string())
}

/// Sleeps `ms` milliseconds unless `stop` turns true first (then `false`).
async fn pause(stop: &mut watch::Receiver<bool>, ms: u64) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// The platform messages kept in quarantine folder `dir`: (platform id as a file name,
/// reason, the edXML file), in name order.
pub fn quarantined(dir: &Path) -> std::io::Result<Vec<(String, String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "reason") {
            let reason = std::fs::read_to_string(&path)?.trim_end().to_string();
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push((id, reason, path.with_extension("edxml")));
        }
    }
    out.sort();
    Ok(out)
}
