//! The client side, for a DMS and for operators: a profile file naming the endpoint and
//! the PKI material, and [`DmsClient`], which builds, signs and sends documents and status
//! notices, and fetches and verifies what arrives. The CLI, the tests, `dev --smoke` and
//! the benchmark all use it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lienthong_core::canonical;
use lienthong_core::sign::{Signature, SigningKey, sha256};
use lienthong_core::{
    AgencyCode, Attachment, Document, NodeId, Receipt, StatusNotice, TransportEvent,
};
use lienthong_pki::verify;
use lienthong_pki::{CachedTrust, Identity, TlsFiles, TrustRoots};
use lienthong_proto::pb;
use lienthong_proto::pb::admin_service_client::AdminServiceClient;
use lienthong_proto::pb::agency_service_client::AgencyServiceClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::Error;
use crate::config::DEFAULT_MAX_MESSAGE_BYTES;

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

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crls: self.crls.clone(),
        }
    }

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

    pub fn admin(&self) -> Result<AdminServiceClient<Channel>, Error> {
        Ok(AdminServiceClient::new(self.channel()?))
    }
}

/// An attachment to send: its description and bytes.
#[derive(Debug, Clone)]
pub struct OutgoingAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Bytes,
}

impl OutgoingAttachment {
    /// Reads a file, guessing the content type from its extension.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let name = file_name(path);
        let content_type = content_type(path);
        Ok(OutgoingAttachment {
            name,
            content_type,
            bytes: bytes.into(),
        })
    }
}

/// Attachments at least this large are streamed in chunks by [`AttachmentSource::from_path`]
/// (and so by `lienthong send`) instead of travelling inline.
pub const STREAM_THRESHOLD_BYTES: u64 = 8 * 1024 * 1024;
/// The largest attachment [`DmsClient::fetch`] streams into memory; larger ones need
/// [`DmsClient::fetch_to_files`].
pub const FETCH_IN_MEMORY_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Attempts of a chunked upload or download before it gives up, each resuming where the
/// last left off.
const TRANSFER_ATTEMPTS: u32 = 8;

/// A large attachment sent from a file: described (size and SHA-256, hashed in blocks)
/// without loading it; its bytes are streamed in chunks.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    pub name: String,
    pub content_type: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
}

impl FileAttachment {
    /// Describes a file: its name, content type from the extension, size and SHA-256.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let (size, sha256) = hash_file(path)?;
        Ok(FileAttachment {
            name: file_name(path),
            content_type: content_type(path),
            path: path.to_path_buf(),
            size,
            sha256,
        })
    }
}

/// An attachment to send: inline bytes, or a (large) file streamed in chunks.
#[derive(Debug, Clone)]
pub enum AttachmentSource {
    Inline(OutgoingAttachment),
    File(FileAttachment),
}

impl AttachmentSource {
    /// A file below [`STREAM_THRESHOLD_BYTES`] inline, a larger one streamed.
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?
            .len();
        Ok(if len >= STREAM_THRESHOLD_BYTES {
            AttachmentSource::File(FileAttachment::from_file(path)?)
        } else {
            AttachmentSource::Inline(OutgoingAttachment::from_file(path)?)
        })
    }
}

/// How a chunked upload went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// The node's durable offset when this upload began (bytes not sent again).
    pub resumed_from: u64,
    /// Bytes sent, over every attempt.
    pub bytes_sent: u64,
    /// Streams opened (1 when nothing broke, 0 when the node held it all already).
    pub attempts: u32,
}

/// The size and SHA-256 of a file, read in blocks.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), Error> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    let digest = ctx
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes");
    Ok((size, digest))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into())
}

fn content_type(path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("xml") | Some("edxml") => "application/xml",
        Some("txt") => "text/plain",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
    .to_string()
}

/// A document received and checked end to end: the sender's signature against the CA, the
/// attachments against their digests, and the node's receipt.
#[derive(Debug, Clone)]
pub struct VerifiedDocument {
    pub document: Document,
    pub contents: Vec<Bytes>,
    pub receipt: Receipt,
}

/// What `fetch` returns.
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

/// A DMS's connection to its home node.
#[derive(Debug, Clone)]
pub struct DmsClient {
    agency: AgencyCode,
    signing_key: std::sync::Arc<SigningKey>,
    cert_der: Vec<u8>,
    trust: std::sync::Arc<CachedTrust>,
    rpc: AgencyServiceClient<Channel>,
    /// Chunk size of uploads.
    chunk_bytes: usize,
}

impl DmsClient {
    /// Connects with a profile that names an agency.
    pub fn from_profile(profile: &ClientProfile) -> Result<Self, Error> {
        let agency = profile
            .agency
            .as_deref()
            .ok_or_else(|| Error::Config("the client profile names no agency".into()))?;
        let agency = AgencyCode::parse(agency).map_err(|e| Error::Config(e.to_string()))?;
        let signing_key = lienthong_pki::load_signing_key(&profile.key)?;
        let cert_der = lienthong_pki::load_certs(&profile.cert)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Config(format!("{} holds no certificate", profile.cert.display()))
            })?
            .to_vec();
        let trust = TrustRoots::from_files(&profile.tls_files())?;
        let rpc = AgencyServiceClient::new(profile.channel()?)
            .max_decoding_message_size(DEFAULT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(DEFAULT_MAX_MESSAGE_BYTES);
        Ok(DmsClient {
            agency,
            signing_key: std::sync::Arc::new(signing_key),
            cert_der,
            trust: std::sync::Arc::new(CachedTrust::new(trust)),
            rpc,
            chunk_bytes: crate::attachments::CHUNK_BYTES,
        })
    }

    /// Uses chunks of `bytes` for uploads (default 1 MiB); it must stay below the node's
    /// `limits.max_message_bytes`.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    pub fn agency(&self) -> &AgencyCode {
        &self.agency
    }

    /// The raw gRPC client, for calls this type does not wrap.
    pub fn rpc(&self) -> AgencyServiceClient<Channel> {
        self.rpc.clone()
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

    /// Describes `attachments` in `document`, signs it, and returns the wire message.
    pub fn seal(
        &self,
        document: &mut Document,
        attachments: &[OutgoingAttachment],
    ) -> Result<pb::Document, Error> {
        let sources: Vec<AttachmentSource> = attachments
            .iter()
            .cloned()
            .map(AttachmentSource::Inline)
            .collect();
        self.seal_sources(document, &sources)
    }

    /// Describes `sources` in `document`, signs it (the signature covers every digest),
    /// and returns the wire message: inline bytes for [`AttachmentSource::Inline`], no
    /// content for [`AttachmentSource::File`] (upload those first).
    pub fn seal_sources(
        &self,
        document: &mut Document,
        sources: &[AttachmentSource],
    ) -> Result<pb::Document, Error> {
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
        document.signature = Some(self.sign(&canonical::document_bytes(document))?);
        Ok(lienthong_proto::document_to_pb(document, Some(&contents)))
    }

    /// Signs `document` as it is described (attachment descriptions included, as an edXML
    /// import made them) and returns the wire message carrying `contents`, which must be
    /// the attachments' bytes in order.
    pub fn seal_described(
        &self,
        document: &mut Document,
        contents: &[Bytes],
    ) -> Result<pb::Document, Error> {
        document.signature = Some(self.sign(&canonical::document_bytes(document))?);
        Ok(lienthong_proto::document_to_pb(document, Some(contents)))
    }

    /// Sends a sealed document; returns the node's receipt, verified, and whether the node
    /// had it already.
    pub async fn send_sealed(
        &self,
        sealed: pb::Document,
    ) -> Result<(Receipt, bool), tonic::Status> {
        let r = self
            .rpc
            .clone()
            .send_document(pb::SendDocumentRequest {
                document: Some(sealed),
            })
            .await?
            .into_inner();
        let receipt = self.check_receipt(r.receipt)?;
        Ok((receipt, r.duplicate))
    }

    /// Sends a sealed document without checking the receipt's signature: for load
    /// generators measuring the node, not for a DMS.
    pub async fn send_sealed_unverified(&self, sealed: pb::Document) -> Result<(), tonic::Status> {
        self.rpc
            .clone()
            .send_document(pb::SendDocumentRequest {
                document: Some(sealed),
            })
            .await?;
        Ok(())
    }

    /// Seals and sends.
    pub async fn send(
        &self,
        document: &mut Document,
        attachments: &[OutgoingAttachment],
    ) -> Result<(Receipt, bool), tonic::Status> {
        let sealed = self
            .seal(document, attachments)
            .map_err(tonic::Status::from)?;
        self.send_sealed(sealed).await
    }

    /// Checks a receipt's node signature and returns it.
    fn check_receipt(&self, receipt: Option<pb::Receipt>) -> Result<Receipt, tonic::Status> {
        let receipt: Receipt = receipt
            .ok_or_else(|| tonic::Status::internal("the node sent no receipt"))?
            .try_into()
            .map_err(|e: lienthong_proto::Error| tonic::Status::internal(e.to_string()))?;
        verify_receipt(&self.trust, &receipt).map_err(tonic::Status::from)?;
        Ok(receipt)
    }

    /// Signs and sends a status notice about `document` to `to`.
    pub async fn send_status(
        &self,
        mut notice: StatusNotice,
    ) -> Result<(Receipt, bool), tonic::Status> {
        notice.signature = Some(
            self.sign(&canonical::status_bytes(&notice))
                .map_err(tonic::Status::from)?,
        );
        let r = self
            .rpc
            .clone()
            .send_status(pb::SendStatusRequest {
                notice: Some((&notice).into()),
            })
            .await?
            .into_inner();
        let receipt = self.check_receipt(r.receipt)?;
        Ok((receipt, r.duplicate))
    }

    pub async fn list_inbox(
        &self,
        after_cursor: u64,
        limit: u32,
    ) -> Result<Vec<pb::InboxEntry>, tonic::Status> {
        self.list(after_cursor, limit, false).await
    }

    /// Lists the inbox in order of arrival after `after_cursor`: page with the last
    /// cursor of the previous page.
    pub async fn list_inbox_by_arrival(
        &self,
        after_cursor: u64,
        limit: u32,
    ) -> Result<Vec<pb::InboxEntry>, tonic::Status> {
        self.list(after_cursor, limit, true).await
    }

    async fn list(
        &self,
        after_cursor: u64,
        limit: u32,
        arrival_order: bool,
    ) -> Result<Vec<pb::InboxEntry>, tonic::Status> {
        Ok(self
            .rpc
            .clone()
            .list_inbox(pb::ListInboxRequest {
                after_cursor,
                limit,
                arrival_order,
            })
            .await?
            .into_inner()
            .entries)
    }

    /// Fetches a message and verifies it end to end. Attachments the node leaves out of
    /// the fetch (large ones) are streamed into memory, up to
    /// [`FETCH_IN_MEMORY_MAX_BYTES`] each; for big files use [`DmsClient::fetch_to_files`].
    pub async fn fetch(&self, id: &str) -> Result<Incoming, tonic::Status> {
        self.fetch_with(id, Large::InMemory).await
    }

    /// Fetches a message and verifies its signature, without the attachments the node
    /// leaves out of a fetch (large ones): their `contents` entries stay empty, their
    /// bytes unchecked. For reading a document's header (its sender, its recipients).
    pub async fn fetch_described(&self, id: &str) -> Result<Incoming, tonic::Status> {
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
    ) -> Result<Incoming, tonic::Status> {
        self.fetch_with(id, Large::ToFiles(dest)).await
    }

    async fn fetch_with(&self, id: &str, large: Large<'_>) -> Result<Incoming, tonic::Status> {
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
        let bad = |e: String| tonic::Status::data_loss(e);
        // A revoked signer is refused as such; anything else that does not verify is
        // damage.
        let refused = |e: Error| match e {
            Error::Signature(verify::Refused::Revoked { .. }) => tonic::Status::from(e),
            e => bad(e.to_string()),
        };
        match r.message {
            Some(pb::fetch_document_response::Message::Document(d)) => {
                let lienthong_proto::DocumentWithContent {
                    document,
                    mut contents,
                } = d
                    .try_into()
                    .map_err(|e: lienthong_proto::Error| bad(e.to_string()))?;
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
                            return Err(tonic::Status::failed_precondition(format!(
                                "attachment {:?} has {} bytes, too many to fetch into memory; \
                                 fetch it to a file (DmsClient::fetch_to_files, `lienthong \
                                 inbox --save DIR`)",
                                a.name, a.size
                            )));
                        }
                        Large::InMemory => *content = self.fetch_attachment_bytes(id, a).await?,
                    }
                }
                verify_parts(&self.trust, &document, &contents, &streamed).map_err(refused)?;
                Ok(Incoming::Document(VerifiedDocument {
                    document,
                    contents,
                    receipt,
                }))
            }
            Some(pb::fetch_document_response::Message::Status(n)) => {
                let notice: StatusNotice = n
                    .try_into()
                    .map_err(|e: lienthong_proto::Error| bad(e.to_string()))?;
                let sender = notice.sender().map_err(|e| bad(e.to_string()))?;
                verify::status_notice(&self.trust, &notice, sender)
                    .map_err(|e| refused(e.into()))?;
                Ok(Incoming::Status { notice, receipt })
            }
            None => Err(bad("the node sent no message".into())),
        }
    }

    pub async fn ack(&self, id: &str) -> Result<(), tonic::Status> {
        self.rpc
            .clone()
            .ack(pb::AckRequest {
                id: id.to_string(),
                from: String::new(),
            })
            .await?;
        Ok(())
    }

    /// The transport events and status notices of a message.
    pub async fn track(
        &self,
        id: &str,
    ) -> Result<(Vec<TransportEvent>, Vec<StatusNotice>), tonic::Status> {
        let r = self
            .rpc
            .clone()
            .track(pb::TrackRequest {
                id: id.to_string(),
                from: String::new(),
            })
            .await?
            .into_inner();
        let internal = |e: lienthong_proto::Error| tonic::Status::internal(e.to_string());
        let events = r
            .events
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let statuses = r
            .statuses
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        Ok((events, statuses))
    }
}

/// Checks a receipt's signature: made by the node it names, over the receipt's bytes.
pub fn verify_receipt(trust: &CachedTrust, receipt: &Receipt) -> Result<(), Error> {
    Ok(verify::receipt(trust, receipt)?)
}

/// Checks a document end to end: the sender's signature against the CA and every
/// attachment against its digest.
pub fn verify_document(
    trust: &CachedTrust,
    document: &Document,
    contents: &[Bytes],
) -> Result<(), Error> {
    verify_parts(trust, document, contents, &[])
}

/// [`verify_document`], skipping the attachments marked in `streamed` (checked as they
/// were written to files).
fn verify_parts(
    trust: &CachedTrust,
    document: &Document,
    contents: &[Bytes],
    streamed: &[bool],
) -> Result<(), Error> {
    verify::document(trust, document, document.sender()?)?;
    if contents.len() != document.attachments.len() {
        return Err(Error::InvalidArgument(format!(
            "{} attachments described but {} received",
            document.attachments.len(),
            contents.len()
        )));
    }
    for (i, (a, c)) in document.attachments.iter().zip(contents).enumerate() {
        if streamed.get(i) == Some(&true) {
            continue;
        }
        if sha256(c) != a.sha256 || c.len() as u64 != a.size {
            return Err(Error::InvalidArgument(format!(
                "attachment {:?} does not match its digest",
                a.name
            )));
        }
    }
    Ok(())
}

fn hex16(digest: &[u8; 32]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

// ---- large attachments, in chunks ----------------------------------------------------------

/// Whether a failed transfer is worth resuming (the link or the node), rather than wrong.
fn retryable(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::FailedPrecondition
    )
}

async fn backoff(attempt: u32) {
    let ms = 100u64 << attempt.min(6);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

impl DmsClient {
    /// How many bytes of attachment `sha256` the node holds durably, and whether it is
    /// complete.
    pub async fn attachment_status(
        &self,
        sha256: &[u8; 32],
    ) -> Result<pb::BlobStatus, tonic::Status> {
        Ok(self
            .rpc
            .clone()
            .attachment_status(pb::BlobStatusRequest {
                sha256: Bytes::copy_from_slice(sha256),
            })
            .await?
            .into_inner())
    }

    /// Streams a file to the node in chunks, from the node's durable offset; after an
    /// error asks again where the node stands and resumes from there. Memory: a few
    /// chunks.
    pub async fn upload_file(&self, file: &FileAttachment) -> Result<UploadReport, tonic::Status> {
        let mut report = UploadReport::default();
        let mut last_error = None;
        for attempt in 0..TRANSFER_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let status = match self.attachment_status(&file.sha256).await {
                Ok(s) => s,
                Err(e) if retryable(&e) => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if attempt == 0 {
                report.resumed_from = if status.complete {
                    file.size
                } else {
                    status.durable_bytes
                };
            }
            if status.complete {
                return Ok(report);
            }
            report.attempts += 1;
            let (result, sent) = self.upload_from(file, status.durable_bytes).await;
            report.bytes_sent += sent;
            match result {
                Ok(s) if s.complete => return Ok(report),
                Ok(s) => {
                    last_error = Some(tonic::Status::unavailable(format!(
                        "the node holds {} of {} bytes after the upload stream ended",
                        s.durable_bytes, file.size
                    )))
                }
                Err(e) if retryable(&e) => {
                    tracing::info!(file = %file.path.display(), error = %e, "upload broken; resuming");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| tonic::Status::unavailable("upload failed")))
    }

    /// One upload stream from `offset`; returns its outcome and the bytes handed to it.
    async fn upload_from(
        &self,
        file: &FileAttachment,
        offset: u64,
    ) -> (Result<pb::BlobStatus, tonic::Status>, u64) {
        use std::os::unix::fs::FileExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::BlobChunk>(2);
        let (path, size, digest, chunk) =
            (file.path.clone(), file.size, file.sha256, self.chunk_bytes);
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let f = std::fs::File::open(&path)?;
            let mut at = offset;
            // At least one chunk, empty when the node already holds every byte but has
            // not completed the blob (its completion was cut short): it completes then.
            let mut first = true;
            while at < size || first {
                first = false;
                let len = chunk.min(size.saturating_sub(at) as usize);
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, at)?;
                let c = pb::BlobChunk {
                    sha256: Bytes::copy_from_slice(&digest),
                    size,
                    offset: at,
                    data: buf.into(),
                };
                if tx.blocking_send(c).is_err() {
                    break;
                }
                at += len as u64;
            }
            Ok(at - offset)
        });
        let result = self
            .rpc
            .clone()
            .upload_attachment(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(|r| r.into_inner());
        let sent = match reader.await {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) => {
                return (
                    Err(tonic::Status::failed_precondition(format!(
                        "reading {}: {e}",
                        file.path.display()
                    ))),
                    0,
                );
            }
            Err(e) => return (Err(tonic::Status::internal(e.to_string())), 0),
        };
        (result, sent)
    }

    /// Uploads the [`AttachmentSource::File`]s of `sources` (resuming where the node
    /// stands), then seals and sends the document; returns the receipt, whether it was a
    /// duplicate, and one report per uploaded file.
    pub async fn send_sources(
        &self,
        document: &mut Document,
        sources: &[AttachmentSource],
    ) -> Result<(Receipt, bool, Vec<UploadReport>), tonic::Status> {
        let mut reports = Vec::new();
        for source in sources {
            if let AttachmentSource::File(f) = source {
                reports.push(self.upload_file(f).await?);
            }
        }
        let sealed = self
            .seal_sources(document, sources)
            .map_err(tonic::Status::from)?;
        let (receipt, duplicate) = self.send_sealed(sealed).await?;
        Ok((receipt, duplicate, reports))
    }

    /// The bytes of a large attachment of document `id`, in memory.
    async fn fetch_attachment_bytes(
        &self,
        id: &str,
        a: &Attachment,
    ) -> Result<Bytes, tonic::Status> {
        let mut stream = self
            .rpc
            .clone()
            .fetch_attachment(pb::FetchAttachmentRequest {
                document_id: id.to_string(),
                sha256: Bytes::copy_from_slice(&a.sha256),
                offset: 0,
                from: String::new(),
            })
            .await?
            .into_inner();
        let mut out = Vec::with_capacity(a.size.min(64 << 20) as usize);
        while let Some(c) = stream.message().await? {
            if c.offset != out.len() as u64 {
                return Err(tonic::Status::data_loss("chunks arrived out of order"));
            }
            out.extend_from_slice(&c.data);
        }
        Ok(out.into())
    }

    /// Streams attachment `a` of document `id` to `path`, through `<path>.part`: resumes
    /// from the bytes already in that file after an error (or a previous run), checks
    /// size and SHA-256 at the end, then renames. Returns the offset it resumed from.
    pub async fn fetch_attachment_to_file(
        &self,
        id: &str,
        a: &Attachment,
        path: &Path,
    ) -> Result<u64, tonic::Status> {
        use std::io::Write;
        let io = |e: std::io::Error| tonic::Status::internal(format!("{}: {e}", path.display()));
        let part = PathBuf::from(format!("{}.part", path.display()));
        let mut resumed_from = None;
        let mut last_error = None;
        for attempt in 0..TRANSFER_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&part)
                .map_err(io)?;
            let mut offset = f.metadata().map_err(io)?.len();
            if offset > a.size {
                f.set_len(0).map_err(io)?;
                offset = 0;
            }
            resumed_from.get_or_insert(offset);
            if offset < a.size {
                let result = async {
                    let mut stream = self
                        .rpc
                        .clone()
                        .fetch_attachment(pb::FetchAttachmentRequest {
                            document_id: id.to_string(),
                            sha256: Bytes::copy_from_slice(&a.sha256),
                            offset,
                            from: String::new(),
                        })
                        .await?
                        .into_inner();
                    while let Some(c) = stream.message().await? {
                        if c.offset != offset {
                            return Err(tonic::Status::data_loss("chunks arrived out of order"));
                        }
                        f.write_all(&c.data).map_err(io)?;
                        offset += c.data.len() as u64;
                    }
                    Ok(())
                }
                .await;
                f.sync_data().map_err(io)?;
                match result {
                    Ok(()) => {}
                    Err(e) if retryable(&e) => {
                        last_error = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            drop(f);
            let (size, digest) = hash_file(&part).map_err(tonic::Status::from)?;
            if size != a.size || digest != a.sha256 {
                let _ = std::fs::remove_file(&part);
                return Err(tonic::Status::data_loss(format!(
                    "attachment {:?} arrived with {size} bytes not matching its digest",
                    a.name
                )));
            }
            std::fs::rename(&part, path).map_err(io)?;
            return Ok(resumed_from.unwrap_or(0));
        }
        Err(last_error.unwrap_or_else(|| tonic::Status::unavailable("download failed")))
    }
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
