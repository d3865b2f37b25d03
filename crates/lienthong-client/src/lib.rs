//! # lienthong-client
//!
//! The client side of a lienthong node, for a DMS and for operators: a [`ClientProfile`]
//! names the node and the PKI files; [`DmsClient`] builds, signs and sends documents and
//! status notices, and fetches and verifies what arrives, end to end. The CLI, the tests,
//! `dev --smoke`, the benchmarks and the VXP gateway all use it; the node uses its
//! [`transport`] for its own links.
//!
//! The API speaks the domain types of `lienthong-core` and the client's own
//! ([`InboxItem`], [`Incoming`], [`Sealed`]); generated protobuf types stay inside.
//! Failures are one [`Error`] a caller can match: refused by the node (with the stable
//! reason the node names), the transport, local I/O, or verification.
//!
//! ## Layout
//! - [`profile`]: the profile file;
//! - [`transport`]: mutual-TLS channels to a node;
//! - [`inbox`]: inbox entries and subscriptions;
//! - [`directory`]: the directory, verified, and the copy a client keeps;
//! - [`attachments`]: attachments to send, chunked uploads and downloads;
//! - [`verify`]: receipts and documents checked end to end;
//! - `edxml` (feature `edxml`): edXML files sent and received messages written as edXML;
//! - [`error`]: the one error type.
#![forbid(unsafe_code)]

pub mod attachments;
pub mod directory;
#[cfg(feature = "edxml")]
pub mod edxml;
pub mod error;
pub mod inbox;
pub mod profile;
pub mod transport;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use lienthong_core::canonical;
use lienthong_core::sign::{Signature, SigningKey, sha256};
use lienthong_core::{
    AgencyCode, Attachment, Document, DocumentId, Receipt, StatusCode, StatusNotice, TransportEvent,
};
use lienthong_pki::{CachedTrust, TrustRoots};
use lienthong_proto::pb;
use lienthong_proto::pb::agency_service_client::AgencyServiceClient;
use tonic::transport::Channel;

pub use attachments::{
    AttachmentSource, FETCH_IN_MEMORY_MAX_BYTES, FileAttachment, OutgoingAttachment,
    STREAM_THRESHOLD_BYTES, UploadReport, hash_file,
};
pub use error::{Error, REASON_KEY};
pub use inbox::{InboxItem, InboxKind};
pub use profile::ClientProfile;
pub use verify::{verify_document, verify_receipt};

/// The chunk size of uploads unless [`DmsClient::with_chunk_bytes`] says otherwise.
pub const DEFAULT_CHUNK_BYTES: usize = 1024 * 1024;

/// A document received and checked end to end: the sender's signature against the CA, the
/// attachments against their digests, and the node's receipt.
#[derive(Debug, Clone)]
pub struct VerifiedDocument {
    pub document: Document,
    /// The attachments' bytes in order; empty for those streamed to files or skipped.
    pub contents: Vec<Bytes>,
    pub receipt: Receipt,
}

/// What a fetch returns.
#[derive(Debug, Clone)]
// A short-lived value returned once per fetch; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Incoming {
    Document(VerifiedDocument),
    Status {
        notice: StatusNotice,
        receipt: Receipt,
    },
}

/// A document signed and ready to send, with the bytes of its inline attachments (empty
/// for attachments uploaded in chunks first).
#[derive(Debug, Clone)]
pub struct Sealed {
    pub document: Document,
    pub contents: Vec<Bytes>,
}

impl Sealed {
    /// The request that carries it.
    fn request(&self) -> pb::SendDocumentRequest {
        pb::SendDocumentRequest {
            document: Some(lienthong_proto::document_to_pb(
                &self.document,
                Some(&self.contents),
            )),
        }
    }
}

/// The node's answer to a document or status notice it accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The node's receipt, its signature verified.
    pub receipt: Receipt,
    /// The node had the message already: `receipt` is the original one.
    pub duplicate: bool,
}

/// A DMS's connection to its home node.
#[derive(Debug, Clone)]
pub struct DmsClient {
    agency: AgencyCode,
    signing_key: Arc<SigningKey>,
    cert_der: Vec<u8>,
    trust: Arc<CachedTrust>,
    rpc: AgencyServiceClient<Channel>,
    channel: Channel,
    /// Chunk size of uploads.
    chunk_bytes: usize,
    /// The directory last verified, for [`DmsClient::current_directory`].
    directory_cache: directory::DirectoryCache,
}

impl DmsClient {
    /// Connects with a profile that names an agency (lazily: nothing is sent until the
    /// first call).
    pub fn from_profile(profile: &ClientProfile) -> Result<Self, Error> {
        let agency = profile
            .agency
            .as_deref()
            .ok_or_else(|| Error::Config("the client profile names no agency".into()))?;
        let agency = AgencyCode::parse(agency)?;
        let signing_key = lienthong_pki::load_signing_key(&profile.key)?;
        let cert_der = lienthong_pki::load_certs(&profile.cert)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Config(format!("{} holds no certificate", profile.cert.display()))
            })?
            .to_vec();
        let trust = TrustRoots::from_files(&profile.tls_files())?;
        let channel = profile.channel()?;
        let rpc = AgencyServiceClient::new(channel.clone())
            .max_decoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES);
        Ok(DmsClient {
            agency,
            signing_key: Arc::new(signing_key),
            cert_der,
            trust: Arc::new(CachedTrust::new(trust)),
            rpc,
            channel,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            directory_cache: Default::default(),
        })
    }

    /// Uses chunks of `bytes` for uploads (default [`DEFAULT_CHUNK_BYTES`]); it must stay
    /// below the node's `limits.max_message_bytes`.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The agency this client speaks for.
    pub fn agency(&self) -> &AgencyCode {
        &self.agency
    }

    /// The mutual-TLS channel to the node, for calls this type does not wrap (tests that
    /// send what no well-behaved client would).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The trust roots the client verifies against.
    pub fn trust(&self) -> &CachedTrust {
        &self.trust
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, Error> {
        Ok(Signature {
            algorithm: self.signing_key.algorithm(),
            signer_cert: self.cert_der.clone(),
            value: self.signing_key.sign(message)?,
        })
    }

    /// A new document from this agency to `to`, not yet signed.
    pub fn new_document(&self, to: Vec<AgencyCode>, subject: &str) -> Document {
        let mut d = Document::new(self.agency.clone(), to);
        d.header.subject = subject.to_string();
        d
    }

    /// Describes `attachments` in `document` and signs it.
    pub fn seal(
        &self,
        document: &mut Document,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sealed, Error> {
        let sources: Vec<AttachmentSource> = attachments
            .iter()
            .cloned()
            .map(AttachmentSource::Inline)
            .collect();
        self.seal_sources(document, &sources)
    }

    /// Describes `sources` in `document` and signs it (the signature covers every digest):
    /// inline bytes for [`AttachmentSource::Inline`], no content for
    /// [`AttachmentSource::File`] (upload those first).
    pub fn seal_sources(
        &self,
        document: &mut Document,
        sources: &[AttachmentSource],
    ) -> Result<Sealed, Error> {
        // Content ids derive from the bytes, so sealing the same document again (a retry)
        // yields the same signed content and the node's original receipt.
        let mut contents = Vec::with_capacity(sources.len());
        document.attachments = sources
            .iter()
            .enumerate()
            .map(|(i, source)| {
                let (name, content_type, size, digest, bytes) = match source {
                    AttachmentSource::Inline(a) => (
                        &a.name,
                        &a.content_type,
                        a.bytes.len() as u64,
                        sha256(&a.bytes),
                        a.bytes.clone(),
                    ),
                    AttachmentSource::File(f) => {
                        (&f.name, &f.content_type, f.size, f.sha256, Bytes::new())
                    }
                };
                contents.push(bytes);
                Attachment {
                    content_id: format!("{i}-{}", hex16(&digest)),
                    name: name.clone(),
                    content_type: content_type.clone(),
                    description: String::new(),
                    size,
                    sha256: digest,
                }
            })
            .collect();
        self.seal_described(document, contents)
    }

    /// Signs `document` as it is described (attachment descriptions included, as an edXML
    /// import made them), to travel with `contents`, the attachments' bytes in order.
    pub fn seal_described(
        &self,
        document: &mut Document,
        contents: Vec<Bytes>,
    ) -> Result<Sealed, Error> {
        document.signature = Some(self.sign(&canonical::document_bytes(document))?);
        Ok(Sealed {
            document: document.clone(),
            contents,
        })
    }

    /// Sends a sealed document; returns the node's receipt, verified.
    pub async fn send_sealed(&self, sealed: &Sealed) -> Result<Accepted, Error> {
        let r = self
            .rpc
            .clone()
            .send_document(sealed.request())
            .await?
            .into_inner();
        Ok(Accepted {
            receipt: self.check_receipt(r.receipt)?,
            duplicate: r.duplicate,
        })
    }

    /// Sends a sealed document without checking the receipt's signature: for load
    /// generators measuring the node, not for a DMS.
    pub async fn send_sealed_unverified(&self, sealed: &Sealed) -> Result<(), Error> {
        self.rpc.clone().send_document(sealed.request()).await?;
        Ok(())
    }

    /// Seals and sends.
    pub async fn send(
        &self,
        document: &mut Document,
        attachments: &[OutgoingAttachment],
    ) -> Result<Accepted, Error> {
        let sealed = self.seal(document, attachments)?;
        self.send_sealed(&sealed).await
    }

    /// Checks a receipt's node signature and returns it.
    fn check_receipt(&self, receipt: Option<pb::Receipt>) -> Result<Receipt, Error> {
        let receipt: Receipt = receipt
            .ok_or_else(|| Error::Verification("the node sent no receipt".into()))?
            .try_into()?;
        verify_receipt(&self.trust, &receipt)?;
        Ok(receipt)
    }

    /// Signs and sends a status notice.
    pub async fn send_status(&self, mut notice: StatusNotice) -> Result<Accepted, Error> {
        notice.signature = Some(self.sign(&canonical::status_bytes(&notice))?);
        let r = self
            .rpc
            .clone()
            .send_status(pb::SendStatusRequest {
                notice: Some((&notice).into()),
            })
            .await?
            .into_inner();
        Ok(Accepted {
            receipt: self.check_receipt(r.receipt)?,
            duplicate: r.duplicate,
        })
    }

    /// Fetches a message and verifies it end to end. Attachments the node leaves out of
    /// the fetch (large ones) are streamed into memory, up to
    /// [`FETCH_IN_MEMORY_MAX_BYTES`] each; for big files use [`DmsClient::fetch_to_files`].
    pub async fn fetch(&self, id: &str) -> Result<Incoming, Error> {
        self.fetch_with(id, Large::InMemory).await
    }

    /// Fetches a message and verifies its signature, without the attachments the node
    /// leaves out of a fetch (large ones): their `contents` entries stay empty, their
    /// bytes unchecked. For reading a document's header (its sender, its recipients).
    pub async fn fetch_described(&self, id: &str) -> Result<Incoming, Error> {
        self.fetch_with(id, Large::Skip).await
    }

    /// Fetches a message and verifies it end to end, streaming the attachments the node
    /// leaves out of the fetch (large ones) to the file `dest` names for each (given its
    /// position among the document's attachments), resuming after errors. Their entries
    /// in `contents` stay empty; the files are verified against size and SHA-256.
    pub async fn fetch_to_files(
        &self,
        id: &str,
        dest: &(dyn Fn(usize, &Attachment) -> PathBuf + Sync),
    ) -> Result<Incoming, Error> {
        self.fetch_with(id, Large::ToFiles(dest)).await
    }

    async fn fetch_with(&self, id: &str, large: Large<'_>) -> Result<Incoming, Error> {
        let r = self
            .rpc
            .clone()
            .fetch_document(pb::FetchDocumentRequest {
                id: id.to_string(),
                from: String::new(),
            })
            .await?
            .into_inner();
        let receipt = self.check_receipt(r.receipt)?;
        match r.message {
            Some(pb::fetch_document_response::Message::Document(d)) => {
                let lienthong_proto::DocumentWithContent {
                    document,
                    mut contents,
                } = d.try_into()?;
                let mut streamed = vec![false; contents.len()];
                for (i, a) in document.attachments.iter().enumerate() {
                    let Some(content) = contents.get_mut(i) else {
                        break;
                    };
                    if !content.is_empty() || a.size == 0 {
                        continue;
                    }
                    match large {
                        Large::ToFiles(dest) => {
                            self.fetch_attachment_to_file(id, a, &dest(i, a)).await?;
                            streamed[i] = true;
                        }
                        Large::Skip => streamed[i] = true,
                        Large::InMemory if a.size > FETCH_IN_MEMORY_MAX_BYTES => {
                            return Err(Error::Config(format!(
                                "attachment {:?} has {} bytes, too many to fetch into memory; \
                                 fetch it to a file (DmsClient::fetch_to_files, `lienthong \
                                 inbox --save DIR`)",
                                a.name, a.size
                            )));
                        }
                        Large::InMemory => *content = self.fetch_attachment_bytes(id, a).await?,
                    }
                }
                verify::verify_parts(&self.trust, &document, &contents, &streamed)?;
                if let Ok(sender) = document.sender() {
                    self.check_vouched(sender, document.imported.as_ref())
                        .await?;
                }
                Ok(Incoming::Document(VerifiedDocument {
                    document,
                    contents,
                    receipt,
                }))
            }
            Some(pb::fetch_document_response::Message::Status(n)) => {
                let notice: StatusNotice = n.try_into()?;
                let sender = notice
                    .sender()
                    .map_err(|e| Error::Verification(e.to_string()))?;
                lienthong_pki::verify::status_notice(&self.trust, &notice, sender)?;
                self.check_vouched(sender, notice.imported.as_ref()).await?;
                Ok(Incoming::Status { notice, receipt })
            }
            None => Err(Error::Verification("the node sent no message".into())),
        }
    }

    /// Acknowledges a message: the DMS holds it and the node may let it go. Acknowledging
    /// again is not an error.
    pub async fn ack(&self, id: &str) -> Result<(), Error> {
        self.rpc
            .clone()
            .ack(pb::AckRequest {
                id: id.to_string(),
                from: String::new(),
            })
            .await?;
        Ok(())
    }

    /// The notices to send for a status notice. A withdraw request (13) from the
    /// document's sender addressed to the sender itself (as edXML's ResponseFor names it)
    /// goes to every recipient of the document (read back from the node), one notice
    /// each, with ids derived from the given one so that a re-send deduplicates. Any
    /// other notice goes as it is.
    pub async fn addressed(&self, notice: StatusNotice) -> Result<Vec<StatusNotice>, Error> {
        if notice.code != StatusCode::WithdrawRequest || notice.to != *self.agency() {
            return Ok(vec![notice]);
        }
        let unusable = Error::Config;
        let document = notice.document_id().map_err(|e| unusable(e.to_string()))?;
        let Incoming::Document(original) = self.fetch_described(document.as_str()).await? else {
            return Err(unusable(format!(
                "{document} is a status notice, not a document"
            )));
        };
        let recipients = original
            .document
            .recipients()
            .map_err(|e| unusable(e.to_string()))?;
        recipients
            .into_iter()
            .map(|to| {
                let h = lienthong_core::sign::sha256(format!("{}/{to}", notice.id).as_bytes());
                let h: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
                let id = format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                );
                Ok(StatusNotice {
                    id: DocumentId::parse(&id).map_err(|e| unusable(e.to_string()))?,
                    to,
                    ..notice.clone()
                })
            })
            .collect()
    }

    /// The transport events and status notices of a message this agency sent or received.
    pub async fn track(&self, id: &str) -> Result<Tracked, Error> {
        self.track_from(id, None).await
    }

    /// [`track`](Self::track), naming the sender when messages of several senders share
    /// the id.
    pub async fn track_from(&self, id: &str, from: Option<&AgencyCode>) -> Result<Tracked, Error> {
        let r = self
            .rpc
            .clone()
            .track(pb::TrackRequest {
                id: id.to_string(),
                from: from.map(|f| f.to_string()).unwrap_or_default(),
            })
            .await?
            .into_inner();
        Ok(Tracked {
            events: r
                .events
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            statuses: r
                .statuses
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            business_state: r.business_state,
            superseded_by: r.superseded_by,
            recipients: r
                .recipients
                .into_iter()
                .map(|r| RecipientState {
                    agency: r.agency,
                    transport: r.transport,
                    status_code: r.status_code,
                    status_id: r.status_id,
                })
                .collect(),
        })
    }
}

/// What `track` shows of a message.
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// Its transport events, as far as the caller may see them.
    pub events: Vec<TransportEvent>,
    /// The status notices about it.
    pub statuses: Vec<StatusNotice>,
    /// "revoked", "replaced", "updated" or empty: what a later business message did to
    /// the document.
    pub business_state: String,
    /// The id of the message that made it so.
    pub superseded_by: String,
    /// One per recipient (for its sender; for a recipient, itself).
    pub recipients: Vec<RecipientState>,
}

/// Where one recipient of a document stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientState {
    pub agency: String,
    /// The latest transport event about it (`delivered`, `fetched`, …), or empty.
    pub transport: String,
    /// The latest business status it reported (`03`), or empty.
    pub status_code: String,
    /// The id of that status notice.
    pub status_id: String,
}

/// What a fetch does with the attachments the node leaves out of it (large ones).
#[derive(Clone, Copy)]
enum Large<'a> {
    /// Streams each to the file the function names (verified there).
    ToFiles(&'a (dyn Fn(usize, &Attachment) -> PathBuf + Sync)),
    /// Reads each into memory, up to a bound.
    InMemory,
    /// Leaves them out.
    Skip,
}

fn hex16(digest: &[u8; 32]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
