//! The node's core: what it does with a document, a status notice, an inbox request, and
//! who may ask. The gRPC services in [`crate::agency`] and [`crate::admin`] only translate
//! to and from the wire.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lienthong_core::canonical;
use lienthong_core::id::Agency;
use lienthong_core::sign::{Signature, SigningKey};
use lienthong_core::{
    AgencyCode, Document, DocumentId, NodeId, Receipt, StatusNotice, TransportEvent,
    TransportEventKind, UnixMillis, now_millis,
};
use lienthong_pki::{CachedTrust, Identity, TrustRoots};
use lienthong_proto::DocumentWithContent;
use lienthong_proto::stored;
use lienthong_store::{AcceptOutcome, Delivery, Envelope, InboxEntry, MessageKind, Store};
use tokio::sync::watch;

use crate::Error;
use crate::config::{Limits, NodeConfig};

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
}

/// One running node: its identity, members, keys and store.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    agencies: HashMap<AgencyCode, Agency>,
    store: Arc<dyn Store>,
    signing_key: SigningKey,
    /// DER of the certificate matching `signing_key`, carried in receipts.
    cert_der: Vec<u8>,
    trust: CachedTrust,
    /// One signal per homed agency; bumped after its inbox grew.
    inbox_signals: HashMap<AgencyCode, watch::Sender<()>>,
    limits: Limits,
    started: Instant,
}

impl Node {
    /// Builds a node from validated configuration and an open store. Loads keys (refusing
    /// group- or world-readable ones) and checks that the certificate names this node.
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
        let trust = TrustRoots::load(&config.tls.ca)?;
        let agencies: HashMap<_, _> = config
            .agencies()?
            .into_iter()
            .map(|a| (a.code.clone(), a))
            .collect();
        let inbox_signals = agencies
            .keys()
            .map(|c| (c.clone(), watch::channel(()).0))
            .collect();
        Ok(Node {
            id,
            agencies,
            store,
            signing_key,
            cert_der,
            trust: CachedTrust::new(trust),
            inbox_signals,
            limits: config.limits.clone(),
            started: Instant::now(),
        })
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn agencies(&self) -> impl Iterator<Item = &Agency> {
        self.agencies.values()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    // ---- who may ask ---------------------------------------------------------------

    /// The agency a DMS connection speaks for; it must be homed at this node.
    pub fn authorize_agency(&self, identity: &Identity) -> Result<AgencyCode, Error> {
        match identity {
            Identity::Agency(code) if self.agencies.contains_key(code) => Ok(code.clone()),
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

    fn check_homed(&self, recipient: &AgencyCode) -> Result<(), Error> {
        if self.agencies.contains_key(recipient) {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "unknown recipient {recipient}: no agency with that code is known to node {}",
                self.id
            )))
        }
    }

    // ---- signatures ------------------------------------------------------------------

    /// Verifies `signature` over `message` and returns the signer's identity.
    fn verify_signer(&self, signature: &Signature, message: &[u8]) -> Result<Identity, Error> {
        self.trust
            .verify_signer(signature, message)
            .map_err(|e| Error::InvalidArgument(format!("bad signature: {e}")))
    }

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
        let signer = self.verify_signer(signature, message)?;
        if signer != Identity::Agency(sender.clone()) {
            return Err(Error::PermissionDenied(format!(
                "the message is signed by {signer}, not by its sender {sender}"
            )));
        }
        Ok(())
    }

    fn receipt(&self, id: &DocumentId, content_digest: [u8; 32]) -> Result<Receipt, Error> {
        let mut receipt = Receipt {
            document_id: id.clone(),
            content_digest,
            node: self.id.clone(),
            accepted_at: now_millis(),
            signature: None,
        };
        let value = self.signing_key.sign(&canonical::receipt_bytes(&receipt))?;
        receipt.signature = Some(Signature {
            algorithm: self.signing_key.algorithm(),
            signer_cert: self.cert_der.clone(),
            value,
        });
        Ok(receipt)
    }

    fn event(
        &self,
        kind: TransportEventKind,
        agency: Option<&AgencyCode>,
        detail: String,
    ) -> Bytes {
        stored::encode_event(&TransportEvent {
            kind,
            at: now_millis(),
            node: self.id.clone(),
            agency: agency.cloned(),
            detail,
        })
        .into()
    }

    fn signal(&self, agencies: &[AgencyCode]) {
        for a in agencies {
            if let Some(s) = self.inbox_signals.get(a) {
                s.send_replace(());
            }
        }
    }

    /// A receiver that changes whenever `agency`'s inbox grows.
    pub fn watch_inbox(&self, agency: &AgencyCode) -> Result<watch::Receiver<()>, Error> {
        self.inbox_signals
            .get(agency)
            .map(|s| s.subscribe())
            .ok_or_else(|| Error::NotFound(format!("no inbox for {agency} at node {}", self.id)))
    }

    // ---- sending ---------------------------------------------------------------------

    /// Accepts a document from the DMS of `caller`: checks sender, recipients, signature
    /// and attachments, stores everything durably, and returns the signed receipt (the
    /// original one for a duplicate) and whether it was a duplicate.
    pub async fn send_document(
        &self,
        caller: &AgencyCode,
        message: DocumentWithContent,
    ) -> Result<(Receipt, bool), Error> {
        // The document is stored exactly as signed: the node never alters a signed field.
        let DocumentWithContent { document, contents } = message;
        let sender = document.sender()?.clone();
        if sender != *caller {
            return Err(Error::PermissionDenied(format!(
                "the document's sender (from) is {sender} but the connection belongs to \
                 {caller}; a DMS may only send as its own agency"
            )));
        }
        let recipients = document.recipients()?;
        for r in &recipients {
            self.check_homed(r)?;
        }
        for (attachment, content) in document.attachments.iter().zip(&contents) {
            if content.len() as u64 != attachment.size {
                return Err(Error::InvalidArgument(format!(
                    "attachment {:?} declares {} bytes but carries {}",
                    attachment.name,
                    attachment.size,
                    content.len()
                )));
            }
            if lienthong_core::sign::sha256(content) != attachment.sha256 {
                return Err(Error::InvalidArgument(format!(
                    "attachment {:?} does not match its SHA-256 digest; the file changed \
                     after it was signed, or was damaged in transit",
                    attachment.name
                )));
            }
        }
        let signed = canonical::document_bytes(&document);
        self.verify_sender(document.signature.as_ref(), &signed, &sender)?;
        let content_digest = lienthong_core::sign::sha256(&signed);

        // A duplicate needs no blob writes and keeps its original receipt.
        if let Some(existing) = self.store.message(&document.id)? {
            return self.duplicate_or_conflict(&document.id, existing, content_digest);
        }
        for (attachment, content) in document.attachments.iter().zip(contents) {
            self.store.put_blob(attachment.sha256, content).await?;
        }
        let receipt = self.receipt(&document.id, content_digest)?;
        let envelope = Envelope {
            id: document.id.clone(),
            kind: MessageKind::Document,
            priority: document.priority() as u8,
            content_digest,
            encoded: stored::encode_document(&document).into(),
            received_at: receipt.accepted_at,
        };
        let delivery = Delivery {
            inboxes: recipients.clone(),
            outboxes: Vec::new(),
        };
        let mut events =
            vec![self.event(TransportEventKind::Accepted, None, format!("from {sender}"))];
        events.extend(recipients.iter().map(|r| {
            self.event(
                TransportEventKind::Delivered,
                Some(r),
                format!("inbox of {r}"),
            )
        }));
        let outcome = self
            .store
            .accept(
                envelope,
                delivery,
                stored::encode_receipt(&receipt).into(),
                events,
            )
            .await?;
        match outcome {
            AcceptOutcome::Accepted { .. } => {
                self.signal(&recipients);
                tracing::debug!(id = %document.id, %sender, recipients = recipients.len(), "document accepted");
                Ok((receipt, false))
            }
            AcceptOutcome::Duplicate { receipt } => Ok((stored::decode_receipt(&receipt)?, true)),
        }
    }

    fn duplicate_or_conflict(
        &self,
        id: &DocumentId,
        existing: lienthong_store::StoredMessage,
        content_digest: [u8; 32],
    ) -> Result<(Receipt, bool), Error> {
        if existing.envelope.content_digest == content_digest {
            Ok((stored::decode_receipt(&existing.receipt)?, true))
        } else {
            Err(Error::AlreadyExists(format!(
                "message {id} was already accepted with different content; send changed \
                 content under a new id"
            )))
        }
    }

    /// Accepts a status notice from `caller` about a document held here, and delivers it
    /// to the other party's inbox.
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
        self.check_homed(&notice.to)?;
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
                return Err(Error::PermissionDenied(format!(
                    "status {} may only be sent by the document's sender {original_sender}",
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
        let signed = canonical::status_bytes(&notice);
        self.verify_sender(notice.signature.as_ref(), &signed, &sender)?;
        let content_digest = lienthong_core::sign::sha256(&signed);
        if let Some(existing) = self.store.message(&notice.id)? {
            return self.duplicate_or_conflict(&notice.id, existing, content_digest);
        }
        let receipt = self.receipt(&notice.id, content_digest)?;
        let envelope = Envelope {
            id: notice.id.clone(),
            kind: MessageKind::Status,
            priority: original.priority() as u8,
            content_digest,
            encoded: stored::encode_status(&notice).into(),
            received_at: receipt.accepted_at,
        };
        let to = vec![notice.to.clone()];
        let events = vec![
            self.event(
                TransportEventKind::Accepted,
                None,
                format!("status from {sender}"),
            ),
            self.event(
                TransportEventKind::Delivered,
                Some(&notice.to),
                format!("inbox of {}", notice.to),
            ),
        ];
        let outcome = self
            .store
            .accept(
                envelope,
                Delivery {
                    inboxes: to.clone(),
                    outboxes: Vec::new(),
                },
                stored::encode_receipt(&receipt).into(),
                events,
            )
            .await?;
        if let AcceptOutcome::Duplicate { receipt } = outcome {
            return Ok((stored::decode_receipt(&receipt)?, true));
        }
        // The original document's log points at the notice, so `track` can show it.
        self.store
            .append_event(
                &document_id,
                self.event(
                    TransportEventKind::StatusReceived,
                    Some(&sender),
                    notice.id.to_string(),
                ),
            )
            .await?;
        self.signal(&to);
        Ok((receipt, false))
    }

    // ---- receiving -------------------------------------------------------------------

    fn load_document(&self, id: &DocumentId) -> Result<Option<Document>, Error> {
        match self.store.message(id)? {
            Some(m) if m.envelope.kind == MessageKind::Document => {
                Ok(Some(stored::decode_document(&m.envelope.encoded)?))
            }
            _ => Ok(None),
        }
    }

    /// Entries of `agency`'s inbox after `after`, with sender and subject.
    pub fn inbox(
        &self,
        agency: &AgencyCode,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxItem>, Error> {
        let entries = self.store.inbox(agency, after, limit)?;
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(m) = self.store.message(&entry.id)? else {
                return Err(Error::Store(lienthong_store::Error::Corrupt(format!(
                    "inbox entry {} has no stored message",
                    entry.id
                ))));
            };
            let (from, subject) = match entry.kind {
                MessageKind::Document => {
                    let d = stored::decode_document(&m.envelope.encoded)?;
                    (d.sender()?.clone(), d.header.subject)
                }
                MessageKind::Status => {
                    let n = stored::decode_status(&m.envelope.encoded)?;
                    let subject = format!("status {} for {}", n.code, n.response_for.document_id);
                    (n.sender()?.clone(), subject)
                }
            };
            items.push(InboxItem {
                entry,
                from,
                subject,
                received_at: m.envelope.received_at,
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
            MessageKind::Status => Fetched::Status {
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

    /// The message with its attachment bytes, for a party to it.
    pub async fn fetch(&self, caller: &AgencyCode, id: &DocumentId) -> Result<Fetched, Error> {
        let mut fetched = self
            .load(id)?
            .filter(|f| self.party_to(caller, f))
            .ok_or_else(|| self.not_found(id))?;
        if let Fetched::Document {
            document, contents, ..
        } = &mut fetched
        {
            for a in &document.attachments {
                contents.push(self.store.blob(a.sha256).await?);
            }
            if document.recipients()?.contains(caller) {
                self.store
                    .append_event(
                        id,
                        self.event(TransportEventKind::Fetched, Some(caller), String::new()),
                    )
                    .await?;
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
        if self.store.ack(caller, id, event).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "message {id} is not in the inbox of {caller} (never delivered, or already \
                 acknowledged)"
            )))
        }
    }

    /// The transport events of `id` and the status notices received for it.
    pub fn track(
        &self,
        caller: &AgencyCode,
        id: &DocumentId,
    ) -> Result<(Vec<TransportEvent>, Vec<StatusNotice>), Error> {
        self.load(id)?
            .filter(|f| self.party_to(caller, f))
            .ok_or_else(|| self.not_found(id))?;
        let mut events = Vec::new();
        let mut statuses = Vec::new();
        for raw in self.store.events(id)? {
            let event = stored::decode_event(&raw)?;
            if event.kind == TransportEventKind::StatusReceived {
                let notice_id = DocumentId::parse(&event.detail)?;
                if let Some(Fetched::Status { notice, .. }) = self.load(&notice_id)? {
                    statuses.push(notice);
                }
            }
            events.push(event);
        }
        Ok((events, statuses))
    }
}
