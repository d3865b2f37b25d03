//! The node's core: what it does with a document, a status notice or a transport event —
//! from a DMS or from a neighbouring node — and who may ask. The gRPC services in
//! [`crate::agency`], [`crate::admin`], [`crate::relay`] and [`crate::directory`] only
//! translate to and from the wire.
//!
//! Every message enters through one admission path: verify the sender's signature and the
//! attachment digests, deduplicate on the id, write attachment blobs, append this node's
//! signed trace entry, route each recipient over the directory (local inbox, or the
//! outbox towards a neighbour), and store it all in one durable write. Transport events
//! are recorded where they happen and travel back to the sender's home node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use lienthong_core::canonical;
use lienthong_core::directory::{AgencyEntry, Directory, DirectoryIndex, NodeEntry, Route};
use lienthong_core::id::Agency;
use lienthong_core::sign::{Signature, SigningKey, sha256};
use lienthong_core::{
    AgencyCode, Document, DocumentId, NodeId, Receipt, StatusNotice, TraceEntry, TransportEvent,
    TransportEventKind, UnixMillis, now_millis,
};
use lienthong_pki::{CachedTrust, Identity, TlsFiles, TrustRoots};
use lienthong_proto::stored;
use lienthong_proto::{DocumentWithContent, pb};
use lienthong_store::{AcceptOutcome, Delivery, Envelope, InboxEntry, MessageKind, Store};
use prost::Message;
use tokio::sync::watch;

use crate::Error;
use crate::config::{DeliveryConfig, Limits, NetworkConfig, NodeConfig};
use crate::delivery::Links;
use crate::directory::{self, DirectoryHolder};
use crate::lifecycle::{BusinessMark, BusinessState, LatestStatus, LifecycleLocks};

/// A message taken out of the store for a DMS.
#[derive(Debug)]
// A short-lived value returned once per fetch; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Fetched {
    Document {
        document: Document,
        contents: Vec<Bytes>,
        receipt: Receipt,
    },
    Status {
        notice: StatusNotice,
        receipt: Receipt,
    },
}

/// Inbox entry with what a DMS needs to decide whether to fetch it.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub entry: InboxEntry,
    pub from: AgencyCode,
    /// Trích yếu for documents; code and document id for status notices.
    pub subject: String,
    pub received_at: UnixMillis,
    /// For a document: revoked, replaced or updated, and by which message.
    pub business: Option<(BusinessMark, DocumentId)>,
    /// For a document: its business type, and the documents a revoke, update or
    /// replace refers to.
    pub business_type: lienthong_core::BusinessType,
    pub references: Vec<DocumentId>,
}

/// Where a message came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A DMS of an agency homed here.
    Agency(AgencyCode),
    /// A neighbouring node, with the origin node's receipt it carried.
    Relay { from: NodeId, receipt: Receipt },
}

/// The outcome of a relay hand-off item, for the `RelayAck`.
#[derive(Debug)]
pub enum RelayOutcome {
    Stored,
    Duplicate,
}

/// One running node: its identity, keys, directory and store.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    store: Arc<dyn Store>,
    signing_key: SigningKey,
    /// DER of the certificate matching `signing_key`, carried in receipts and trace
    /// entries.
    cert_der: Vec<u8>,
    trust: CachedTrust,
    tls_files: TlsFiles,
    directory: DirectoryHolder,
    network: Option<NetworkConfig>,
    /// Bumped after an agency's inbox grew.
    inbox_signals: Mutex<HashMap<AgencyCode, watch::Sender<()>>>,
    /// Bumped after the outbox towards a neighbour grew.
    outbox_signals: Mutex<HashMap<NodeId, watch::Sender<()>>>,
    limits: Limits,
    delivery: DeliveryConfig,
    links: Links,
    disk: DiskGuard,
    uploaders: crate::attachments::Uploaders,
    started: Instant,
    /// Turns true when the node begins shutting down; long-lived streams end then.
    stopping: watch::Sender<bool>,
    /// Serializes lifecycle checks with the admission they allow, per document.
    lifecycle_locks: LifecycleLocks,
}

impl Node {
    /// Builds a node from validated configuration and an open store. Loads keys (refusing
    /// group- or world-readable ones), checks that the certificate names this node, and
    /// loads the directory (source file at the national gateway, else the cache).
    pub fn new(config: &NodeConfig, store: Arc<dyn Store>) -> Result<Self, Error> {
        let id = config.node_id()?;
        let signing_key = lienthong_pki::load_signing_key(&config.tls.key)?;
        let cert_der = lienthong_pki::load_certs(&config.tls.cert)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Config(format!(
                    "{} holds no certificate",
                    config.tls.cert.display()
                ))
            })?
            .to_vec();
        let cert_identity = lienthong_pki::peer_identity(&cert_der)?;
        if cert_identity != Identity::Node(id.clone()) {
            return Err(Error::Config(format!(
                "certificate {} is for {cert_identity}, not for node {id}; issue one with \
                 `lienthong pki issue node {id}`",
                config.tls.cert.display()
            )));
        }
        let trust = CachedTrust::new(TrustRoots::load(&config.tls.ca)?);
        let directory = match &config.network {
            None => DirectoryHolder::new(standalone_directory(config, &id)?, None, None)?,
            Some(net) => {
                let national = NodeId::parse(&net.national)
                    .map_err(|e| Error::Config(format!("network.national: {e}")))?;
                let cache = directory::cache_path(&config.data_dir);
                let initial = if let Some(source) = &net.directory_file {
                    let mut d = directory::load_source(source)?;
                    directory::sign(&mut d, &signing_key, &cert_der)?;
                    if let Some(cached) = directory::load_cache(&cache)?
                        && cached.version > d.version
                    {
                        return Err(Error::Config(format!(
                            "{} has version {} but version {} was published before; \
                             raise the version",
                            source.display(),
                            d.version,
                            cached.version
                        )));
                    }
                    directory::save_cache(&cache, &d)?;
                    d
                } else {
                    match directory::load_cache(&cache)? {
                        Some(d) => {
                            directory::verify(&d, &trust, &national)?;
                            d
                        }
                        None => placeholder_directory(&id, net)?,
                    }
                };
                DirectoryHolder::new(initial, Some(national), Some(cache))?
            }
        };
        Ok(Node {
            id,
            store,
            signing_key,
            cert_der,
            trust,
            tls_files: config.tls_files(),
            directory,
            network: config.network.clone(),
            inbox_signals: Mutex::new(HashMap::new()),
            outbox_signals: Mutex::new(HashMap::new()),
            limits: config.limits.clone(),
            delivery: config.delivery.clone(),
            links: Links::default(),
            disk: DiskGuard::new(config.data_dir.clone(), config.limits.min_free_disk_bytes),
            uploaders: crate::attachments::Uploaders::new(config.data_dir.join("uploaders")),
            started: Instant::now(),
            stopping: watch::channel(false).0,
            lifecycle_locks: LifecycleLocks::default(),
        })
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn trust(&self) -> &CachedTrust {
        &self.trust
    }

    pub fn tls_files(&self) -> &TlsFiles {
        &self.tls_files
    }

    pub fn directory(&self) -> &DirectoryHolder {
        &self.directory
    }

    pub fn network(&self) -> Option<&NetworkConfig> {
        self.network.as_ref()
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

    /// Wakes whatever depends on the directory (link workers).
    pub fn directory_changed(&self) {
        let hops: Vec<NodeId> = self.neighbours();
        self.signal_hops(&hops);
    }

    /// Turns true when the node begins shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Asks long-lived streams (subscriptions, relay hand-offs) to end.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// The state of the links towards the neighbours.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// `RESOURCE_EXHAUSTED` while the data directory's filesystem has less free space
    /// than `limits.min_free_disk_bytes`.
    /// Which agencies uploaded which blobs here.
    pub(crate) fn uploaders(&self) -> &crate::attachments::Uploaders {
        &self.uploaders
    }

    pub fn check_disk_space(&self) -> Result<(), Error> {
        self.disk.check()
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    // ---- who may ask ---------------------------------------------------------------

    fn is_homed_here(&self, d: &DirectoryIndex, agency: &AgencyCode) -> bool {
        d.home_of(agency) == Some(&self.id)
    }

    /// The agency a DMS connection speaks for; it must be homed at this node.
    pub fn authorize_agency(&self, identity: &Identity) -> Result<AgencyCode, Error> {
        match identity {
            Identity::Agency(code) if self.is_homed_here(&self.directory.current(), code) => {
                Ok(code.clone())
            }
            Identity::Agency(code) => Err(Error::PermissionDenied(format!(
                "agency {code} is not served by node {}; connect to its home node",
                self.id
            ))),
            other => Err(Error::PermissionDenied(format!(
                "the agency API needs an agency certificate; {other} is not an agency"
            ))),
        }
    }

    /// Operators use this node's own identity.
    pub fn authorize_operator(&self, identity: &Identity) -> Result<(), Error> {
        match identity {
            Identity::Node(id) if *id == self.id => Ok(()),
            other => Err(Error::PermissionDenied(format!(
                "the admin API needs node {}'s certificate; {other} may not use it",
                self.id
            ))),
        }
    }

    /// The neighbour a relay connection comes from.
    pub fn authorize_neighbour(&self, identity: &Identity) -> Result<NodeId, Error> {
        match identity {
            Identity::Node(n) if self.directory.current().is_neighbour(&self.id, n) => {
                Ok(n.clone())
            }
            other => Err(Error::PermissionDenied(format!(
                "{other} is not a neighbour of node {} in the directory; only a parent or \
                 child may hand messages over",
                self.id
            ))),
        }
    }

    // ---- signatures ------------------------------------------------------------------

    /// Checks that `signature` exists, is valid over `message`, and was made by `sender`.
    fn verify_sender(
        &self,
        signature: Option<&Signature>,
        message: &[u8],
        sender: &AgencyCode,
    ) -> Result<(), Error> {
        let signature = signature.ok_or_else(|| {
            Error::InvalidArgument(
                "the message is not signed; sign it with the sending agency's key".into(),
            )
        })?;
        let signer = self
            .trust
            .verify_signer(signature, message)
            .map_err(|e| Error::InvalidArgument(format!("bad signature: {e}")))?;
        if signer != Identity::Agency(sender.clone()) {
            return Err(Error::PermissionDenied(format!(
                "the message is signed by {signer}, not by its sender {sender}"
            )));
        }
        Ok(())
    }

    /// Checks that the last trace entry was added, and signed, by the neighbour `from`.
    fn verify_last_hop(
        &self,
        id: &DocumentId,
        digest: &[u8; 32],
        trace: &[TraceEntry],
        from: &NodeId,
    ) -> Result<(), Error> {
        let last = trace.last().ok_or_else(|| {
            Error::InvalidArgument(format!("message {id} from {from} carries no trace entry"))
        })?;
        if &last.node != from {
            return Err(Error::PermissionDenied(format!(
                "message {id}: the last trace entry names {} but came from {from}",
                last.node
            )));
        }
        let signature = last.signature.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("message {id}: trace entry of {from} is not signed"))
        })?;
        let signer = self
            .trust
            .verify_signer(
                signature,
                &canonical::trace_entry_bytes(id, digest, &last.node, last.at),
            )
            .map_err(|e| Error::InvalidArgument(format!("bad trace signature: {e}")))?;
        if signer != Identity::Node(from.clone()) {
            return Err(Error::PermissionDenied(format!(
                "message {id}: trace entry of {from} is signed by {signer}"
            )));
        }
        Ok(())
    }

    fn sign_with_node_key(&self, bytes: &[u8]) -> Result<Signature, Error> {
        Ok(Signature {
            algorithm: self.signing_key.algorithm(),
            signer_cert: self.cert_der.clone(),
            value: self.signing_key.sign(bytes)?,
        })
    }

    fn receipt(&self, id: &DocumentId, content_digest: [u8; 32]) -> Result<Receipt, Error> {
        let mut receipt = Receipt {
            document_id: id.clone(),
            content_digest,
            node: self.id.clone(),
            accepted_at: now_millis(),
            signature: None,
        };
        receipt.signature = Some(self.sign_with_node_key(&canonical::receipt_bytes(&receipt))?);
        Ok(receipt)
    }

    fn trace_entry(&self, id: &DocumentId, digest: &[u8; 32]) -> Result<TraceEntry, Error> {
        let at = now_millis();
        Ok(TraceEntry {
            node: self.id.clone(),
            at,
            signature: Some(
                self.sign_with_node_key(&canonical::trace_entry_bytes(id, digest, &self.id, at))?,
            ),
        })
    }

    pub(crate) fn event(
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

    // ---- signals ---------------------------------------------------------------------

    fn signal_inboxes(&self, agencies: &[AgencyCode]) {
        let mut signals = self.inbox_signals.lock().unwrap_or_else(|p| p.into_inner());
        for a in agencies {
            if let Some(s) = signals.get_mut(a) {
                s.send_replace(());
            }
        }
    }

    pub(crate) fn signal_hops(&self, hops: &[NodeId]) {
        let mut signals = self
            .outbox_signals
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for h in hops {
            signals
                .entry(h.clone())
                .or_insert_with(|| watch::channel(()).0)
                .send_replace(());
        }
    }

    /// A receiver that changes whenever `agency`'s inbox grows.
    pub fn watch_inbox(&self, agency: &AgencyCode) -> watch::Receiver<()> {
        let mut signals = self.inbox_signals.lock().unwrap_or_else(|p| p.into_inner());
        signals
            .entry(agency.clone())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// A receiver that changes whenever the outbox towards `hop` grows.
    pub fn watch_outbox(&self, hop: &NodeId) -> watch::Receiver<()> {
        let mut signals = self
            .outbox_signals
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        signals
            .entry(hop.clone())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    // ---- events ----------------------------------------------------------------------

    /// Records `event` about message `id` sent by `sender`: appended here if the sender
    /// is homed here, else queued towards the sender's home node.
    pub async fn record(
        &self,
        id: &DocumentId,
        sender: &AgencyCode,
        event: TransportEvent,
    ) -> Result<(), Error> {
        let d = self.directory.current();
        if self.is_homed_here(&d, sender) || d.home_of(sender).is_none() {
            self.store
                .append_event(id, stored::encode_event(&event).into())
                .await?;
            return Ok(());
        }
        self.forward_event(&d, id, sender, event, &[]).await
    }

    /// Sends `event`, already recorded here, on to the sender's home node if that is
    /// another node.
    pub(crate) async fn tell_sender_home(
        &self,
        id: &DocumentId,
        sender: &AgencyCode,
        event: TransportEvent,
    ) -> Result<(), Error> {
        let d = self.directory.current();
        if self.is_homed_here(&d, sender) || d.home_of(sender).is_none() {
            return Ok(());
        }
        self.forward_event(&d, id, sender, event, &[]).await
    }

    /// Queues `event` (with the document's hop `trace` for a delivery) towards the
    /// sender's home node.
    async fn forward_event(
        &self,
        d: &DirectoryIndex,
        id: &DocumentId,
        sender: &AgencyCode,
        event: TransportEvent,
        trace: &[TraceEntry],
    ) -> Result<(), Error> {
        let relay_event = pb::RelayEvent {
            document_id: id.to_string(),
            sender: sender.to_string(),
            event: Some((&event).into()),
            trace: lienthong_proto::trace_to_pb(trace),
        };
        match d.route(&self.id, sender) {
            Ok(Route::Via(hop)) => self.queue_events(hop, vec![relay_event]).await,
            // Nowhere to send it: keep it here rather than lose it.
            _ => self.keep_events(vec![relay_event]).await,
        }
    }

    /// Stores `events` as one message in the outbox towards `hop`: the link packs the
    /// events waiting there into one item, so a burst of deliveries costs a few writes
    /// per hop on the way back, not one per document.
    async fn queue_events(&self, hop: NodeId, events: Vec<pb::RelayEvent>) -> Result<(), Error> {
        let senders = events
            .iter()
            .map(|e| AgencyCode::parse(&e.sender))
            .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
        let encoded = pb::RelayEvents { events }.encode_to_vec();
        let digest = sha256(&encoded);
        let event_id = DocumentId::parse(&format!("ev-{}", hex::encode(&digest[..16])))?;
        let envelope = Envelope {
            id: event_id,
            kind: MessageKind::Event,
            priority: 0,
            content_digest: digest,
            encoded: encoded.into(),
            received_at: now_millis(),
        };
        let delivery = Delivery {
            outboxes: vec![(hop.clone(), senders.into_iter().collect())],
            ..Delivery::default()
        };
        self.store
            .accept(envelope, delivery, Bytes::new(), Vec::new())
            .await?;
        self.signal_hops(&[hop]);
        Ok(())
    }

    /// Appends `events` (checked with [`check_event`]) to the logs of their messages here:
    /// at the sender's home node, or wherever an event can go no further. A delivery's
    /// trace adds one "forwarded" event per hop. An event already in the log (a re-sent
    /// pack) is not added again.
    async fn keep_events(&self, events: Vec<pb::RelayEvent>) -> Result<(), Error> {
        // A pack holds many documents' events: group them by document in one pass.
        let mut by_message: Vec<(DocumentId, Vec<Bytes>)> = Vec::new();
        let mut position: HashMap<DocumentId, usize> = HashMap::new();
        for e in events {
            let id = DocumentId::parse(&e.document_id)?;
            let transport: TransportEvent = e
                .event
                .ok_or(lienthong_proto::Error::Missing { field: "event" })?
                .try_into()?;
            let trace = lienthong_proto::trace_from_pb(e.trace)?;
            let mut encoded: Vec<Bytes> = trace
                .windows(2)
                .map(|pair| {
                    stored::encode_event(&TransportEvent {
                        kind: TransportEventKind::Forwarded,
                        at: pair[1].at,
                        node: pair[1].node.clone(),
                        agency: transport.agency.clone(),
                        detail: format!("received from {}", pair[0].node),
                    })
                    .into()
                })
                .collect();
            encoded.push(stored::encode_event(&transport).into());
            match position.get(&id) {
                Some(&at) => by_message[at].1.extend(encoded),
                None => {
                    position.insert(id.clone(), by_message.len());
                    by_message.push((id, encoded));
                }
            }
        }
        // The store leaves out events already logged (a pack re-sent after a broken link).
        if !by_message.is_empty() {
            self.store.append_event_logs(by_message).await?;
        }
        Ok(())
    }

    // ---- admission -------------------------------------------------------------------

    /// Accepts a document from the DMS of `caller`: checks sender and recipients, then
    /// admits it. Returns the signed receipt (the original one for a duplicate) and
    /// whether it was a duplicate.
    pub async fn send_document(
        &self,
        caller: &AgencyCode,
        message: DocumentWithContent,
    ) -> Result<(Receipt, bool), Error> {
        let sender = message.document.sender()?.clone();
        if sender != *caller {
            return Err(Error::PermissionDenied(format!(
                "the document's sender (from) is {sender} but the connection belongs to \
                 {caller}; a DMS may only send as its own agency"
            )));
        }
        // Every recipient must be able to export what is accepted (see lienthong-edxml's
        // limits): a value it cannot read would stop its export for good.
        lienthong_edxml::EdxmlDocument::check_preserved(&message.document.edxml_preserved)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let recipients = message.document.recipients()?;
        let d = self.directory.current();
        if let Some(unknown) = recipients.iter().find(|r| d.home_of(r).is_none()) {
            return Err(Error::NotFound(format!(
                "unknown recipient {unknown}: no agency with that code is in the directory \
                 (version {}) of node {}",
                d.version, self.id
            )));
        }
        // A re-send is answered from the store (original receipt or ALREADY_EXISTS), not
        // judged again against a lifecycle that has moved on since. The check and the
        // admission hold the referenced documents' locks, so two concurrent revokes of
        // one document cannot both pass.
        let targets = crate::lifecycle::references(&message.document)?;
        let _guard = self.lifecycle_locks.lock(&targets).await;
        if !targets.is_empty() && !self.store.has_message(&message.document.id)? {
            self.check_document_lifecycle(caller, &message.document)?;
        }
        let (receipt, outcome) = self
            .admit_document(message, recipients, Origin::Agency(caller.clone()))
            .await?;
        Ok((receipt, matches!(outcome, RelayOutcome::Duplicate)))
    }

    /// The admission path of documents, from a DMS or a neighbour.
    pub async fn admit_document(
        &self,
        message: DocumentWithContent,
        recipients: Vec<AgencyCode>,
        origin: Origin,
    ) -> Result<(Receipt, RelayOutcome), Error> {
        // The document is stored exactly as signed: the node never alters a signed field;
        // it only appends its trace entry.
        let DocumentWithContent {
            mut document,
            contents,
        } = message;
        let sender = document.sender()?.clone();
        if contents.len() != document.attachments.len() {
            return Err(Error::InvalidArgument(format!(
                "{} attachments described but {} carried",
                document.attachments.len(),
                contents.len()
            )));
        }
        // An attachment comes inline (as today), or, when large, without content: its
        // bytes were streamed before (UploadAttachment from a DMS, PushBlob from a
        // neighbour) and are held complete, their digest verified when they completed.
        let mut inline = Vec::with_capacity(contents.len());
        for (attachment, content) in document.attachments.iter().zip(&contents) {
            if content.is_empty() && attachment.size > 0 {
                crate::attachments::check_held(self, attachment, &origin).await?;
                inline.push(false);
                continue;
            }
            if content.len() as u64 != attachment.size {
                return Err(Error::InvalidArgument(format!(
                    "attachment {:?} declares {} bytes but carries {}",
                    attachment.name,
                    attachment.size,
                    content.len()
                )));
            }
            if sha256(content) != attachment.sha256 {
                return Err(Error::InvalidArgument(format!(
                    "attachment {:?} does not match its SHA-256 digest; the file changed \
                     after it was signed, or was damaged in transit",
                    attachment.name
                )));
            }
            inline.push(true);
        }
        let signed = canonical::document_bytes(&document);
        let content_digest = match self.check_message(
            &document.id,
            &signed,
            document.signature.as_ref(),
            &sender,
            &document.trace,
            &origin,
        )? {
            // A duplicate needs no blob writes and keeps its original receipt.
            Checked::Duplicate(receipt) => return Ok((receipt, RelayOutcome::Duplicate)),
            Checked::New { content_digest } => content_digest,
        };
        // A revoke, update or replace is indexed under the documents it references before
        // it is stored (see `lifecycle`); an unreadable reference marks nothing.
        let targets = crate::lifecycle::references(&document).unwrap_or_default();
        self.index_lifecycle(&document.id, &targets).await?;
        for ((attachment, content), inline) in document.attachments.iter().zip(contents).zip(inline)
        {
            if inline {
                self.store.put_blob(attachment.sha256, content).await?;
            }
        }
        let (receipt, hop) = self.stamp(&document.id, content_digest, &origin)?;
        document.trace.push(hop);

        let d = self.directory.current();
        let plan = self.plan(&d, &recipients, &origin);
        let mut events = Vec::new();
        let mut back = Vec::new(); // events for the sender's home node
        match &origin {
            Origin::Agency(_) => events.push(self.event(
                TransportEventKind::Accepted,
                None,
                format!("from {sender}"),
            )),
            Origin::Relay { from, .. } => events.push(self.event(
                TransportEventKind::Forwarded,
                None,
                format!("received from {from}"),
            )),
        }
        for r in &plan.local {
            let e = self.event(
                TransportEventKind::Delivered,
                Some(r),
                format!("inbox of {r} at {}", self.id),
            );
            events.push(e.clone());
            back.push(e);
        }
        for (r, reason) in &plan.dead {
            let e = self.event(TransportEventKind::DeadLettered, Some(r), reason.clone());
            events.push(e.clone());
            back.push(e);
        }
        let envelope = Envelope {
            id: document.id.clone(),
            kind: MessageKind::Document,
            priority: document.priority() as u8,
            content_digest,
            encoded: stored::encode_document(&document).into(),
            received_at: now_millis(),
        };
        let hops: Vec<NodeId> = plan.via.iter().map(|(h, _)| h.clone()).collect();
        let delivery = Delivery {
            inboxes: plan.local.clone(),
            outboxes: plan.via,
            dead: plan.dead.clone(),
        };
        let outcome = self
            .store
            .accept(
                envelope,
                delivery,
                stored::encode_receipt(&receipt).into(),
                events
                    .iter()
                    .map(|e| stored::encode_event(e).into())
                    .collect(),
            )
            .await?;
        match outcome {
            AcceptOutcome::Accepted { .. } => {
                self.signal_inboxes(&plan.local);
                self.signal_hops(&hops);
                if !self.is_homed_here(&d, &sender) {
                    for e in back {
                        self.forward_event(&d, &document.id, &sender, e, &document.trace)
                            .await?;
                    }
                }
                tracing::debug!(id = %document.id, %sender, local = plan.local.len(), hops = hops.len(), "document admitted");
                Ok((receipt, RelayOutcome::Stored))
            }
            AcceptOutcome::Duplicate { receipt } => {
                Ok((stored::decode_receipt(&receipt)?, RelayOutcome::Duplicate))
            }
        }
    }

    /// Splits recipients into local inboxes, next hops, and dead letters (unknown here, or
    /// routed back to the neighbour they came from).
    fn plan(&self, d: &DirectoryIndex, recipients: &[AgencyCode], origin: &Origin) -> Plan {
        let mut plan = Plan::default();
        let Ok(routed) = d.plan(&self.id, recipients) else {
            // This node is not in its own directory yet: nothing can be routed.
            for r in recipients {
                plan.dead.push((
                    r.clone(),
                    format!("node {} is not in its directory", self.id),
                ));
            }
            return plan;
        };
        plan.local = routed.local;
        for (hop, rs) in routed.via {
            if matches!(origin, Origin::Relay { from, .. } if *from == hop) {
                for r in rs {
                    plan.dead.push((
                        r,
                        format!("routing loop: {hop} sent it here and is its next hop too"),
                    ));
                }
            } else {
                plan.via.push((hop, rs));
            }
        }
        for r in routed.unknown {
            let reason = format!(
                "recipient {r} is not in the directory (version {}) of node {}",
                d.version, self.id
            );
            plan.dead.push((r, reason));
        }
        plan
    }

    /// The checks every message passes, whatever its kind: the sender's signature, the
    /// previous hop's trace entry for a relayed one, and deduplication on the id.
    fn check_message(
        &self,
        id: &DocumentId,
        signed: &[u8],
        signature: Option<&Signature>,
        sender: &AgencyCode,
        trace: &[TraceEntry],
        origin: &Origin,
    ) -> Result<Checked, Error> {
        self.verify_sender(signature, signed, sender)?;
        let content_digest = sha256(signed);
        if let Origin::Relay { from, .. } = origin {
            self.verify_last_hop(id, &content_digest, trace, from)?;
        }
        match self.store.message(id)? {
            Some(existing) => self
                .duplicate_or_conflict(id, existing, content_digest)
                .map(Checked::Duplicate),
            // Only a new message needs room; duplicates are answered from the store.
            None => {
                self.check_disk_space()?;
                Ok(Checked::New { content_digest })
            }
        }
    }

    /// The receipt a new message is answered with (this node's, or the origin node's for
    /// a relayed one) and this node's trace entry.
    fn stamp(
        &self,
        id: &DocumentId,
        content_digest: [u8; 32],
        origin: &Origin,
    ) -> Result<(Receipt, TraceEntry), Error> {
        let receipt = match origin {
            Origin::Agency(_) => self.receipt(id, content_digest)?,
            Origin::Relay { receipt, .. } => receipt.clone(),
        };
        Ok((receipt, self.trace_entry(id, &content_digest)?))
    }

    /// The original receipt if `existing` has the same content, else `ALREADY_EXISTS`.
    fn duplicate_or_conflict(
        &self,
        id: &DocumentId,
        existing: lienthong_store::StoredMessage,
        content_digest: [u8; 32],
    ) -> Result<Receipt, Error> {
        if existing.envelope.content_digest == content_digest {
            Ok(stored::decode_receipt(&existing.receipt)?)
        } else {
            Err(Error::AlreadyExists(format!(
                "message {id} was already accepted with different content; send changed \
                 content under a new id"
            )))
        }
    }

    /// Accepts a status notice from `caller` about a document held here (delivered to or
    /// sent by `caller`), and routes it to the other party.
    pub async fn send_status(
        &self,
        caller: &AgencyCode,
        notice: StatusNotice,
    ) -> Result<(Receipt, bool), Error> {
        let sender = notice.sender()?.clone();
        if sender != *caller {
            return Err(Error::PermissionDenied(format!(
                "the notice's sender (from) is {sender} but the connection belongs to {caller}"
            )));
        }
        // As for documents: what is accepted must be exportable.
        lienthong_edxml::EdxmlStatus::check_preserved(&notice.edxml_preserved)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let document_id = notice.document_id()?;
        let original = self.load_document(&document_id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "document {document_id} is not known at node {}; a status must answer a \
                 document that was delivered here",
                self.id
            ))
        })?;
        let original_sender = original.sender()?.clone();
        let recipients = original.recipients()?;
        if notice.code.sent_by_original_sender() {
            if sender != original_sender {
                return Err(Error::FailedPrecondition(format!(
                    "lifecycle: status {} (withdraw request) may only be sent by the \
                     document's original sender {original_sender}",
                    notice.code.code()
                )));
            }
            if !recipients.contains(&notice.to) {
                return Err(Error::InvalidArgument(format!(
                    "{} is not a recipient of document {document_id}",
                    notice.to
                )));
            }
        } else {
            if !recipients.contains(&sender) {
                return Err(Error::PermissionDenied(format!(
                    "{sender} is not a recipient of document {document_id} and cannot report \
                     its status"
                )));
            }
            if notice.to != original_sender {
                return Err(Error::InvalidArgument(format!(
                    "a status about document {document_id} goes to its sender \
                     {original_sender}, not to {}",
                    notice.to
                )));
            }
        }
        // As for documents: the check and the admission under the document's lock.
        let _guard = self
            .lifecycle_locks
            .lock(std::slice::from_ref(&document_id))
            .await;
        if !self.store.has_message(&notice.id)? {
            self.check_status_lifecycle(caller, &notice, &original)?;
        }
        let (receipt, outcome) = self
            .admit_status(notice, Origin::Agency(caller.clone()))
            .await?;
        Ok((receipt, matches!(outcome, RelayOutcome::Duplicate)))
    }

    /// The admission path of status notices, from a DMS or a neighbour.
    pub async fn admit_status(
        &self,
        mut notice: StatusNotice,
        origin: Origin,
    ) -> Result<(Receipt, RelayOutcome), Error> {
        let sender = notice.sender()?.clone();
        let signed = canonical::status_bytes(&notice);
        let content_digest = match self.check_message(
            &notice.id,
            &signed,
            notice.signature.as_ref(),
            &sender,
            &notice.trace,
            &origin,
        )? {
            Checked::Duplicate(receipt) => return Ok((receipt, RelayOutcome::Duplicate)),
            Checked::New { content_digest } => content_digest,
        };
        // Indexed under its document before it is stored (see `lifecycle`).
        if let Ok(document_id) = notice.document_id() {
            self.index_lifecycle(&notice.id, &[document_id]).await?;
        }
        let (receipt, hop) = self.stamp(&notice.id, content_digest, &origin)?;
        notice.trace.push(hop);
        let d = self.directory.current();
        let to = vec![notice.to.clone()];
        let plan = self.plan(&d, &to, &origin);
        let mut events = vec![self.event(
            TransportEventKind::Accepted,
            None,
            format!("status {} from {sender}", notice.code.code()),
        )];
        for r in &plan.local {
            events.push(self.event(
                TransportEventKind::Delivered,
                Some(r),
                format!("inbox of {r} at {}", self.id),
            ));
        }
        for (r, reason) in &plan.dead {
            events.push(self.event(TransportEventKind::DeadLettered, Some(r), reason.clone()));
        }
        let envelope = Envelope {
            id: notice.id.clone(),
            kind: MessageKind::Status,
            priority: 1,
            content_digest,
            encoded: stored::encode_status(&notice).into(),
            received_at: now_millis(),
        };
        let hops: Vec<NodeId> = plan.via.iter().map(|(h, _)| h.clone()).collect();
        let outcome = self
            .store
            .accept(
                envelope,
                Delivery {
                    inboxes: plan.local.clone(),
                    outboxes: plan.via,
                    dead: plan.dead.clone(),
                },
                stored::encode_receipt(&receipt).into(),
                events
                    .iter()
                    .map(|e| stored::encode_event(e).into())
                    .collect(),
            )
            .await?;
        if let AcceptOutcome::Duplicate { receipt } = outcome {
            return Ok((stored::decode_receipt(&receipt)?, RelayOutcome::Duplicate));
        }
        self.signal_inboxes(&plan.local);
        self.signal_hops(&hops);
        // Where the notice reaches its addressee, the document's log points at it, so
        // that `track` can show it.
        if !plan.local.is_empty()
            && let Ok(document_id) = notice.document_id()
            && self.store.has_message(&document_id)?
        {
            self.store
                .append_event(
                    &document_id,
                    stored::encode_event(&self.event(
                        TransportEventKind::StatusReceived,
                        Some(&sender),
                        notice.id.to_string(),
                    ))
                    .into(),
                )
                .await?;
        }
        Ok((receipt, RelayOutcome::Stored))
    }

    /// Transport events relayed by `from`: those about messages whose sender is homed
    /// here join their logs; the others go on, one message per next hop. An event whose
    /// route leads back to `from` (directories disagree for a moment) stays here.
    pub async fn admit_events(
        &self,
        pack: pb::RelayEvents,
        from: &NodeId,
    ) -> Result<RelayOutcome, Error> {
        let d = self.directory.current();
        let mut here = Vec::new();
        let mut onwards: Vec<(NodeId, Vec<pb::RelayEvent>)> = Vec::new();
        for event in pack.events {
            // One unusable event must not cost the others of its pack their way home:
            // it is dropped here, with a log line, and never goes further.
            let sender = match check_event(&event) {
                Ok(sender) => sender,
                Err(e) => {
                    tracing::warn!(node = %self.id, %from, document = %event.document_id, error = %e, "unusable transport event dropped");
                    continue;
                }
            };
            if self.is_homed_here(&d, &sender) {
                here.push(event);
                continue;
            }
            match d.route(&self.id, &sender) {
                Ok(Route::Via(hop)) if hop != *from => {
                    match onwards.iter_mut().find(|(h, _)| *h == hop) {
                        Some((_, events)) => events.push(event),
                        None => onwards.push((hop, vec![event])),
                    }
                }
                _ => {
                    tracing::warn!(node = %self.id, %sender, %from, "no way on for a transport event; kept here");
                    here.push(event);
                }
            }
        }
        for (hop, events) in onwards {
            self.queue_events(hop, events).await?;
        }
        self.keep_events(here).await?;
        Ok(RelayOutcome::Stored)
    }

    // ---- receiving -------------------------------------------------------------------

    pub(crate) fn load_document(&self, id: &DocumentId) -> Result<Option<Document>, Error> {
        match self.store.message(id)? {
            Some(m) if m.envelope.kind == MessageKind::Document => {
                Ok(Some(stored::decode_document(&m.envelope.encoded)?))
            }
            _ => Ok(None),
        }
    }

    /// Entries of `agency`'s inbox after `after`, urgent first, with sender and subject.
    pub fn inbox(
        &self,
        agency: &AgencyCode,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, Error> {
        self.describe_inbox(self.store.inbox(agency, after, limit)?)
    }

    /// Entries of `agency`'s inbox after `after` in order of arrival, for paging.
    pub fn inbox_by_arrival(
        &self,
        agency: &AgencyCode,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, Error> {
        self.describe_inbox(self.store.inbox_by_arrival(agency, after, limit)?)
    }

    /// Entries of one priority lane of `agency`'s inbox after `after`, in cursor order.
    pub fn inbox_lane(
        &self,
        agency: &AgencyCode,
        priority: u8,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, Error> {
        self.describe_inbox(self.store.inbox_lane(agency, priority, after, limit)?)
    }

    /// Inbox entries with the sender and subject of their messages.
    fn describe_inbox(
        &self,
        entries: Vec<lienthong_store::InboxEntry>,
    ) -> Result<Vec<InboxItem>, Error> {
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(m) = self.store.message(&entry.id)? else {
                return Err(Error::Store(lienthong_store::Error::Corrupt(format!(
                    "inbox entry {} has no stored message",
                    entry.id
                ))));
            };
            let mut business_type = lienthong_core::BusinessType::New;
            let mut references = Vec::new();
            let (from, subject, business) = match entry.kind {
                MessageKind::Document => {
                    let d = stored::decode_document(&m.envelope.encoded)?;
                    let business = self
                        .business_state(&entry.id)?
                        .mark()
                        .map(|(mark, by)| (mark, by.clone()));
                    business_type = d.business.business_type;
                    references = crate::lifecycle::references(&d).unwrap_or_default();
                    (d.sender()?.clone(), d.header.subject, business)
                }
                MessageKind::Status => {
                    let n = stored::decode_status(&m.envelope.encoded)?;
                    let subject = format!("status {} for {}", n.code, n.response_for.document_id);
                    (n.sender()?.clone(), subject, None)
                }
                MessageKind::Event => {
                    return Err(Error::Store(lienthong_store::Error::Corrupt(format!(
                        "inbox entry {} is a transport event",
                        entry.id
                    ))));
                }
            };
            items.push(InboxItem {
                entry,
                from,
                subject,
                received_at: m.envelope.received_at,
                business,
                business_type,
                references,
            });
        }
        Ok(items)
    }

    /// Whether `agency` may read message `id`: it sent it, or it is (one of) its
    /// recipients.
    fn party_to(&self, agency: &AgencyCode, fetched: &Fetched) -> bool {
        match fetched {
            Fetched::Document { document, .. } => {
                document.sender().is_ok_and(|s| s == agency)
                    || document.recipients().is_ok_and(|r| r.contains(agency))
            }
            Fetched::Status { notice, .. } => {
                notice.sender().is_ok_and(|s| s == agency) || notice.to == *agency
            }
        }
    }

    fn load(&self, id: &DocumentId) -> Result<Option<Fetched>, Error> {
        let Some(m) = self.store.message(id)? else {
            return Ok(None);
        };
        if m.envelope.kind == MessageKind::Event {
            return Ok(None);
        }
        let receipt = stored::decode_receipt(&m.receipt)?;
        Ok(Some(match m.envelope.kind {
            MessageKind::Document => {
                let document = stored::decode_document(&m.envelope.encoded)?;
                Fetched::Document {
                    document,
                    contents: Vec::new(),
                    receipt,
                }
            }
            MessageKind::Status | MessageKind::Event => Fetched::Status {
                notice: stored::decode_status(&m.envelope.encoded)?,
                receipt,
            },
        }))
    }

    fn not_found(&self, id: &DocumentId) -> Error {
        Error::NotFound(format!(
            "message {id} is not known to node {} for you",
            self.id
        ))
    }

    /// Message `id` without attachment bytes, if `caller` is a party to it.
    pub(crate) fn load_for(
        &self,
        caller: &AgencyCode,
        id: &DocumentId,
    ) -> Result<Option<Fetched>, Error> {
        Ok(self.load(id)?.filter(|f| self.party_to(caller, f)))
    }

    /// The message with its attachment bytes, for a party to it; large attachments come
    /// without bytes (empty content, see [`crate::attachments::inline_flags`]) and are
    /// fetched in chunks.
    pub async fn fetch(&self, caller: &AgencyCode, id: &DocumentId) -> Result<Fetched, Error> {
        let mut fetched = self
            .load(id)?
            .filter(|f| self.party_to(caller, f))
            .ok_or_else(|| self.not_found(id))?;
        if let Fetched::Document {
            document, contents, ..
        } = &mut fetched
        {
            let inline = crate::attachments::inline_flags(
                &document.attachments,
                self.limits.max_message_bytes,
            );
            for (a, inline) in document.attachments.iter().zip(inline) {
                contents.push(if inline {
                    self.store.blob(a.sha256).await?
                } else {
                    Bytes::new()
                });
            }
            if document.recipients()?.contains(caller) {
                let event = self.event(TransportEventKind::Fetched, Some(caller), String::new());
                self.record(id, document.sender()?, event).await?;
            }
        }
        Ok(fetched)
    }

    /// Removes `id` from `caller`'s inbox.
    pub async fn ack(&self, caller: &AgencyCode, id: &DocumentId) -> Result<(), Error> {
        let event = self.event(
            TransportEventKind::Acknowledged,
            Some(caller),
            String::new(),
        );
        if !self
            .store
            .ack(caller, id, stored::encode_event(&event).into())
            .await?
        {
            return Err(Error::NotFound(format!(
                "message {id} is not in the inbox of {caller} (never delivered, or already \
                 acknowledged)"
            )));
        }
        // The sender's home node hears of it too.
        if let Some(Fetched::Document { document, .. }) = self.load(id)? {
            let sender = document.sender()?;
            let d = self.directory.current();
            if !self.is_homed_here(&d, sender) && d.home_of(sender).is_some() {
                self.forward_event(&d, id, sender, event, &[]).await?;
            }
        }
        Ok(())
    }

    /// The transport events of `id`, the status notices received for it, and its
    /// business state per recipient.
    pub fn track(&self, caller: &AgencyCode, id: &DocumentId) -> Result<Tracked, Error> {
        let fetched = self
            .load(id)?
            .filter(|f| self.party_to(caller, f))
            .ok_or_else(|| self.not_found(id))?;
        let mut events = Vec::new();
        let mut statuses = Vec::new();
        for raw in self.store.events(id)? {
            let event = stored::decode_event(&raw)?;
            // A hand-off retried after a broken link may bring an event twice.
            if events.contains(&event) {
                continue;
            }
            if event.kind == TransportEventKind::Lifecycle {
                continue; // index entries: shown as the business state below
            }
            if event.kind == TransportEventKind::StatusReceived {
                let notice_id = DocumentId::parse(&event.detail)?;
                if let Some(Fetched::Status { notice, .. }) = self.load(&notice_id)? {
                    statuses.push(notice);
                }
            }
            events.push(event);
        }
        // Events arrive from every node on the path, not in the order they happened.
        events.sort_by_key(|e| e.at);
        let business = self.business_state(id)?;
        let recipients = match &fetched {
            Fetched::Document { document, .. } if document.sender()? == caller => {
                document.recipients()?
            }
            Fetched::Document { .. } => vec![caller.clone()],
            Fetched::Status { notice, .. } => vec![notice.to.clone()],
        };
        let recipients = recipients
            .into_iter()
            .map(|agency| RecipientState {
                transport: events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.agency.as_ref() == Some(&agency)
                            && e.kind != TransportEventKind::StatusReceived
                    })
                    .map(|e| e.kind),
                status: business.latest.get(&agency).cloned(),
                agency,
            })
            .collect();
        Ok(Tracked {
            events,
            statuses,
            business,
            recipients,
        })
    }
}

/// What [`Node::track`] answers.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Transport events, by time.
    pub events: Vec<TransportEvent>,
    /// Status notices about the document that reached this node's agencies.
    pub statuses: Vec<StatusNotice>,
    pub business: BusinessState,
    /// The document's recipients (for its sender; else the caller alone).
    pub recipients: Vec<RecipientState>,
}

/// Where a document stands for one recipient: transport and business.
#[derive(Debug, Clone)]
pub struct RecipientState {
    pub agency: AgencyCode,
    /// The latest transport event about it.
    pub transport: Option<TransportEventKind>,
    /// The latest business status about it.
    pub status: Option<LatestStatus>,
}

/// What [`Node::check_message`] decided.
#[derive(Debug)]
enum Checked {
    /// Stored before with the same content: answer with the original receipt.
    Duplicate(Receipt),
    New {
        content_digest: [u8; 32],
    },
}

/// Where the recipients of one message go from this node.
#[derive(Debug, Default)]
struct Plan {
    local: Vec<AgencyCode>,
    via: Vec<(NodeId, Vec<AgencyCode>)>,
    /// Recipients that cannot be routed, with the reason.
    dead: Vec<(AgencyCode, String)>,
}

/// The directory of a stand-alone node: itself, serving the agencies of its config.
fn standalone_directory(config: &NodeConfig, id: &NodeId) -> Result<Directory, Error> {
    Ok(Directory {
        version: 0,
        issued_at: now_millis(),
        nodes: vec![NodeEntry {
            id: id.clone(),
            level: "standalone".into(),
            parent: None,
            endpoint: format!("https://{}", config.listen),
        }],
        agencies: config
            .agencies()?
            .into_iter()
            .map(|agency| AgencyEntry {
                agency,
                home: id.clone(),
            })
            .collect(),
        signature: None,
    })
}

/// What a node below the national gateway knows before its first directory: itself and
/// its parent, so that it can ask the parent.
fn placeholder_directory(id: &NodeId, net: &NetworkConfig) -> Result<Directory, Error> {
    let parent = NodeId::parse(net.parent.as_deref().unwrap_or_default())
        .map_err(|e| Error::Config(format!("network.parent: {e}")))?;
    Ok(Directory {
        version: 0,
        issued_at: 0,
        nodes: vec![
            NodeEntry {
                id: parent.clone(),
                level: String::new(),
                parent: None,
                endpoint: net.parent_endpoint.clone().unwrap_or_default(),
            },
            NodeEntry {
                id: id.clone(),
                level: String::new(),
                parent: Some(parent),
                endpoint: String::new(),
            },
        ],
        agencies: Vec::new(),
        signature: None,
    })
}

/// Watches the free space of the data directory's filesystem, at most once per
/// [`DiskGuard::RECHECK`], so that a full disk refuses new messages with a clear reason
/// instead of failing writes half-way, and lets them in again as soon as space returns.
#[derive(Debug)]
struct DiskGuard {
    path: std::path::PathBuf,
    min_free: u64,
    /// When free space was last read, and what it was.
    last: Mutex<Option<(Instant, u64)>>,
}

impl DiskGuard {
    const RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

    fn new(path: std::path::PathBuf, min_free: u64) -> Self {
        DiskGuard {
            path,
            min_free,
            last: Mutex::new(None),
        }
    }

    fn check(&self) -> Result<(), Error> {
        if self.min_free == 0 {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let free = match *last {
            Some((at, free)) if at.elapsed() < Self::RECHECK => free,
            _ => {
                let stat = rustix::fs::statvfs(&self.path).map_err(std::io::Error::from)?;
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                *last = Some((Instant::now(), free));
                free
            }
        };
        if free < self.min_free {
            return Err(Error::ResourceExhausted(format!(
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

/// Whether a relayed transport event can be used: its ids, event and trace decode.
/// Returns the agency it goes to.
fn check_event(event: &pb::RelayEvent) -> Result<AgencyCode, Error> {
    DocumentId::parse(&event.document_id)?;
    let transport = event
        .event
        .clone()
        .ok_or(lienthong_proto::Error::Missing { field: "event" })?;
    let transport = TransportEvent::try_from(transport)?;
    // Lifecycle index entries belong to the node that wrote them; they never travel.
    if transport.kind == TransportEventKind::Lifecycle {
        return Err(Error::InvalidArgument(
            "a lifecycle index entry is not a transport event to relay".into(),
        ));
    }
    lienthong_proto::trace_from_pb(event.trace.clone())?;
    Ok(AgencyCode::parse(&event.sender)?)
}
