//! The shared handles of a running node, at the bottom of the module graph: every other
//! module takes a [`Context`] and none reaches back into a bigger object. It owns what a
//! node *is* (its id, keys, trust, store, directory, limits) and the small pieces of
//! shared state that many flows touch (queue signals, link states, the disk guard, upload
//! marks, lifecycle locks, the quarantine of damaged messages, the shutdown flag); the
//! flows themselves live in their own modules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use lienthong_core::directory::{DirectoryIndex, Route};
use lienthong_core::id::Agency;
use lienthong_core::{
    AgencyCode, Document, DocumentId, MessageKey, NodeId, TransportEvent, TransportEventKind,
    now_millis,
};
use lienthong_pki::{CachedTrust, TlsFiles, TrustRoots};
use lienthong_proto::stored;
use lienthong_store::{MessageKind, Store};
use std::sync::Arc;
use tokio::sync::watch;

use crate::Error;
use crate::config::{DeliveryConfig, Limits, NetworkConfig, NodeConfig};
use crate::directory::{self, DirectoryHolder};
use crate::external::ExternalLists;
use crate::link::health::Links;
use crate::signer::NodeSigner;
use crate::uploads::Uploads;

/// One running node's shared handles.
#[derive(Debug)]
pub struct Context {
    pub id: NodeId,
    pub store: Arc<dyn Store>,
    /// This node's key and certificate: receipts, trace entries, a published directory.
    pub signer: NodeSigner,
    /// The CA roots and CRLs every peer certificate and every signature is checked
    /// against.
    pub trust: CachedTrust,
    pub tls_files: TlsFiles,
    pub directory: DirectoryHolder,
    /// The national platform's agencies, as each bridge published them.
    pub external: ExternalLists,
    /// At a bridge, where platform messages that could not be imported are kept.
    pub platform_quarantine: Option<std::path::PathBuf>,
    /// `None` for a stand-alone node.
    pub network: Option<NetworkConfig>,
    pub limits: Limits,
    pub delivery: DeliveryConfig,
    /// Wakes what waits for an inbox or an outbox to grow.
    pub signals: Signals,
    /// The state of the links towards the neighbours, for operators.
    pub links: Links,
    disk: DiskGuard,
    /// Which blobs each agency proved it holds here.
    pub uploads: Uploads,
    /// Serializes lifecycle checks with the admission they allow, per document.
    pub lifecycle_locks: LifecycleLocks,
    /// Stored messages found damaged: left out of inbox listings, reported by health.
    pub quarantine: Quarantine,
    started: Instant,
    /// Turns true when the node begins shutting down; long-lived streams end then.
    stopping: watch::Sender<bool>,
}

impl Context {
    /// Builds the context from validated configuration and an open store. Loads keys
    /// (refusing group- or world-readable ones), checks that the certificate names this
    /// node, and loads the directory (source file at the national gateway, else the
    /// cache).
    pub fn new(config: &NodeConfig, store: Arc<dyn Store>) -> Result<Self, Error> {
        let id = config.node_id()?;
        let signer = NodeSigner::load(config, &id)?;
        // The same roots and CRLs as TLS: a revoked certificate neither connects nor signs.
        let trust = CachedTrust::new(TrustRoots::from_files(&config.tls_files())?);
        let directory = directory::initial(config, &id, &signer, &trust)?;
        let external = ExternalLists::open(Some(config.data_dir.join("external")), &trust);
        external.reindex(&directory.current());
        Ok(Context {
            id,
            store,
            signer,
            trust,
            tls_files: config.tls_files(),
            directory,
            external,
            platform_quarantine: config
                .vxp_upstream
                .as_ref()
                .map(|u| crate::bridge::quarantine_dir(&u.state_path(&config.data_dir))),
            network: config.network.clone(),
            limits: config.limits.clone(),
            delivery: config.delivery.clone(),
            signals: Signals::default(),
            links: Links::default(),
            disk: DiskGuard::new(config.data_dir.clone(), &config.limits),
            uploads: open_uploads(&config.data_dir)?,
            lifecycle_locks: LifecycleLocks::default(),
            quarantine: Quarantine::default(),
            started: Instant::now(),
            stopping: watch::channel(false).0,
        })
    }

    /// The agencies homed at this node, per the directory in use.
    pub fn agencies(&self) -> Vec<Agency> {
        let d = self.directory.current();
        d.agencies_homed_at(&self.id)
            .map(|e| e.agency.clone())
            .collect()
    }

    /// The neighbours (parent and children) per the directory in use.
    pub fn neighbours(&self) -> Vec<NodeId> {
        let d = self.directory.current();
        let mut out: Vec<NodeId> = d.parent_of(&self.id).into_iter().cloned().collect();
        out.extend(d.children_of(&self.id).cloned());
        out
    }

    /// Whether `agency` is homed at this node in `d`.
    pub fn is_homed_here(&self, d: &DirectoryIndex, agency: &AgencyCode) -> bool {
        d.home_of(agency) == Some(&self.id)
    }

    /// Where messages of `sender` send their transport events: `None` when the sender is
    /// homed here (or unknown: the event stays here), else the next hop towards its home.
    pub fn towards_sender(&self, d: &DirectoryIndex, sender: &AgencyCode) -> Option<NodeId> {
        if self.is_homed_here(d, sender) || d.home_of(sender).is_none() {
            return None;
        }
        match d.route(&self.id, sender) {
            Ok(Route::Via(hop)) => Some(hop),
            _ => None,
        }
    }

    /// Wakes whatever depends on the directory (link workers).
    pub fn directory_changed(&self) {
        self.external.reindex(&self.directory.current());
        self.signals.hops(&self.neighbours());
    }

    /// Turns true when the node begins shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Asks long-lived streams (subscriptions, relay hand-offs) to end.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// `RESOURCE_EXHAUSTED` while the data directory's filesystem has less free space
    /// than `limits.min_free_disk_bytes`.
    pub fn check_disk_space(&self) -> Result<(), Error> {
        self.disk.check()
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// A transport event that happened here now.
    pub fn event(
        &self,
        kind: TransportEventKind,
        agency: Option<&AgencyCode>,
        detail: String,
    ) -> TransportEvent {
        TransportEvent {
            kind,
            at: now_millis(),
            node: self.id.clone(),
            agency: agency.cloned(),
            detail,
        }
    }

    /// The stored document `key`, if a document is stored under it.
    pub fn load_document(&self, key: &MessageKey) -> Result<Option<Document>, Error> {
        match self.store.message(key)? {
            Some(m) if m.envelope.kind == MessageKind::Document => {
                Ok(Some(stored::decode_document(&m.envelope.encoded)?))
            }
            _ => Ok(None),
        }
    }
}

/// Watch channels that wake a subscription when an agency's inbox grows and a link when
/// the outbox towards its neighbour grows.
#[derive(Debug, Default)]
pub struct Signals {
    inboxes: Mutex<HashMap<AgencyCode, watch::Sender<()>>>,
    outboxes: Mutex<HashMap<NodeId, watch::Sender<()>>>,
}

impl Signals {
    /// `agencies`' inboxes grew.
    pub fn inboxes(&self, agencies: &[AgencyCode]) {
        let mut signals = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        for a in agencies {
            if let Some(s) = signals.get_mut(a) {
                s.send_replace(());
            }
        }
    }

    /// The outboxes towards `hops` grew.
    pub fn hops(&self, hops: &[NodeId]) {
        let mut signals = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        for h in hops {
            signals
                .entry(h.clone())
                .or_insert_with(|| watch::channel(()).0)
                .send_replace(());
        }
    }

    /// A receiver that changes whenever `agency`'s inbox grows.
    pub fn watch_inbox(&self, agency: &AgencyCode) -> watch::Receiver<()> {
        let mut signals = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        signals
            .entry(agency.clone())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// A receiver that changes whenever the outbox towards `hop` grows.
    pub fn watch_outbox(&self, hop: &NodeId) -> watch::Receiver<()> {
        let mut signals = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        signals
            .entry(hop.clone())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }
}

/// Stored messages found damaged since the node started (they no longer decode or match
/// their checksum), with what is wrong: left out of inbox listings so that the rest is
/// served, and reported by health.
#[derive(Debug, Default)]
pub struct Quarantine(Mutex<BTreeMap<MessageKey, String>>);

impl Quarantine {
    /// Notes that the stored copy of message `key` is damaged (logged once).
    pub fn add(&self, node: &NodeId, key: &MessageKey, why: &Error) {
        let mut damaged = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !damaged.contains_key(key) {
            tracing::error!(%node, message = %key, error = %why, "stored message damaged; quarantined (left out of its inbox)");
            damaged.insert(key.clone(), why.to_string());
        }
    }

    pub fn all(&self) -> Vec<(MessageKey, String)> {
        let damaged = self.0.lock().unwrap_or_else(|p| p.into_inner());
        damaged
            .iter()
            .map(|(k, why)| (k.clone(), why.clone()))
            .collect()
    }
}

/// Locks striped by document id: a lifecycle check and the admission it allows run under
/// the locks of the documents concerned, so that two concurrent messages cannot both pass
/// a rule only one of them may (two answers to one withdraw request, a revoke and a
/// replace of one document). Documents that share a stripe only wait for each other.
#[derive(Debug)]
pub struct LifecycleLocks(Vec<tokio::sync::Mutex<()>>);

impl Default for LifecycleLocks {
    fn default() -> Self {
        LifecycleLocks((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl LifecycleLocks {
    /// Holds the stripes of `ids`, taken in stripe order (no deadlock between callers).
    pub async fn lock(&self, ids: &[DocumentId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids
            .iter()
            .map(|id| {
                let digest = lienthong_core::sign::sha256(id.as_str().as_bytes());
                digest[0] as usize % self.0.len()
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.0[s].lock().await);
        }
        guards
    }
}

/// Whether `e` says a stored message is damaged (it does not decode, or the store found it
/// corrupt), as opposed to the store being unavailable.
pub fn is_damage(e: &Error) -> bool {
    matches!(
        e,
        Error::Store(lienthong_store::Error::Corrupt(_)) | Error::Wire(_)
    )
}

/// The agencies' upload marks under `data_dir`. Marks of the layout before `uploads/`
/// (`uploaders/`) were written at an upload's first chunk, before anything was proven,
/// so they are not trusted: removed, and an agency uploads such a blob once more.
fn open_uploads(data_dir: &std::path::Path) -> Result<Uploads, Error> {
    let old = data_dir.join("uploaders");
    if old.exists() {
        tracing::info!(dir = %old.display(), "removing upload marks of the old layout; agencies upload those attachments again");
        std::fs::remove_dir_all(&old)?;
    }
    Ok(Uploads::open(data_dir.join("uploads"))?)
}

/// Watches the free space of the data directory's filesystem, at most once per
/// `limits.disk_recheck_ms`, so that a full disk refuses new messages with a clear reason
/// instead of failing writes half-way, and lets them in again as soon as space returns.
#[derive(Debug)]
struct DiskGuard {
    path: std::path::PathBuf,
    min_free: u64,
    recheck: std::time::Duration,
    /// When free space was last read, and what it was.
    last: Mutex<Option<(Instant, u64)>>,
}

impl DiskGuard {
    fn new(path: std::path::PathBuf, limits: &Limits) -> Self {
        DiskGuard {
            path,
            min_free: limits.min_free_disk_bytes,
            recheck: std::time::Duration::from_millis(limits.disk_recheck_ms),
            last: Mutex::new(None),
        }
    }

    fn check(&self) -> Result<(), Error> {
        if self.min_free == 0 {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let free = match *last {
            Some((at, free)) if at.elapsed() < self.recheck => free,
            _ => {
                let stat = rustix::fs::statvfs(&self.path).map_err(std::io::Error::from)?;
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                *last = Some((Instant::now(), free));
                free
            }
        };
        if free < self.min_free {
            return Err(Error::DiskFull(format!(
                "the disk holding {} is nearly full ({} free, {} kept in reserve): new \
                 messages are refused until space is freed; fetches and acknowledgements \
                 go on",
                self.path.display(),
                human_bytes(free),
                human_bytes(self.min_free)
            )));
        }
        Ok(())
    }
}

fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{} KiB", n / 1024)
    }
}
