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
        for f in [&mut p.ca, &mut p.cert, &mut p.key] {
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
            crls: Vec::new(),
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
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some("pdf") => "application/pdf",
            Some("zip") => "application/zip",
            Some("xml") | Some("edxml") => "application/xml",
            Some("txt") => "text/plain",
            Some("doc") => "application/msword",
            Some("docx") => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            _ => "application/octet-stream",
        }
        .to_string();
        Ok(OutgoingAttachment {
            name,
            content_type,
            bytes: bytes.into(),
        })
    }
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
        let trust = TrustRoots::load(&profile.ca)?;
        let rpc = AgencyServiceClient::new(profile.channel()?)
            .max_decoding_message_size(DEFAULT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(DEFAULT_MAX_MESSAGE_BYTES);
        Ok(DmsClient {
            agency,
            signing_key: std::sync::Arc::new(signing_key),
            cert_der,
            trust: std::sync::Arc::new(CachedTrust::new(trust)),
            rpc,
        })
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
        // Content ids derive from the bytes, so sealing the same document again (a retry)
        // yields the same signed content and the node's original receipt.
        document.attachments = attachments
            .iter()
            .enumerate()
            .map(|(i, a)| Attachment {
                content_id: format!("{i}-{}", hex16(&sha256(&a.bytes))),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                description: String::new(),
                size: a.bytes.len() as u64,
                sha256: sha256(&a.bytes),
            })
            .collect();
        document.signature = Some(self.sign(&canonical::document_bytes(document))?);
        let contents: Vec<Bytes> = attachments.iter().map(|a| a.bytes.clone()).collect();
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
        Ok(self
            .rpc
            .clone()
            .list_inbox(pb::ListInboxRequest {
                after_cursor,
                limit,
            })
            .await?
            .into_inner()
            .entries)
    }

    /// Fetches a message and verifies it end to end.
    pub async fn fetch(&self, id: &str) -> Result<Incoming, tonic::Status> {
        let r = self
            .rpc
            .clone()
            .fetch_document(pb::FetchDocumentRequest { id: id.to_string() })
            .await?
            .into_inner();
        let receipt = self.check_receipt(r.receipt)?;
        let bad = |e: String| tonic::Status::data_loss(e);
        match r.message {
            Some(pb::fetch_document_response::Message::Document(d)) => {
                let lienthong_proto::DocumentWithContent { document, contents } = d
                    .try_into()
                    .map_err(|e: lienthong_proto::Error| bad(e.to_string()))?;
                verify_document(&self.trust, &document, &contents)
                    .map_err(|e| bad(e.to_string()))?;
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
                let signature = notice
                    .signature
                    .as_ref()
                    .ok_or_else(|| bad("status notice is not signed".into()))?;
                let signer = self
                    .trust
                    .verify_signer(signature, &canonical::status_bytes(&notice))
                    .map_err(|e| bad(e.to_string()))?;
                if Some(&signer) != notice.sender().ok().cloned().map(Identity::Agency).as_ref() {
                    return Err(bad(format!(
                        "status notice signed by {signer}, not its sender"
                    )));
                }
                Ok(Incoming::Status { notice, receipt })
            }
            None => Err(bad("the node sent no message".into())),
        }
    }

    pub async fn ack(&self, id: &str) -> Result<(), tonic::Status> {
        self.rpc
            .clone()
            .ack(pb::AckRequest { id: id.to_string() })
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
            .track(pb::TrackRequest { id: id.to_string() })
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
    let signature = receipt
        .signature
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("the receipt is not signed".into()))?;
    let signer = trust
        .verify_signer(signature, &canonical::receipt_bytes(receipt))
        .map_err(|e| Error::InvalidArgument(format!("receipt signature: {e}")))?;
    if signer != Identity::Node(receipt.node.clone()) {
        return Err(Error::InvalidArgument(format!(
            "the receipt names node {} but is signed by {signer}",
            receipt.node
        )));
    }
    Ok(())
}

/// Checks a document end to end: the sender's signature against the CA and every
/// attachment against its digest.
pub fn verify_document(
    trust: &CachedTrust,
    document: &Document,
    contents: &[Bytes],
) -> Result<(), Error> {
    let signature = document
        .signature
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("the document is not signed".into()))?;
    let signer = trust
        .verify_signer(signature, &canonical::document_bytes(document))
        .map_err(|e| Error::InvalidArgument(format!("bad signature: {e}")))?;
    let sender = document.sender()?;
    if signer != Identity::Agency(sender.clone()) {
        return Err(Error::InvalidArgument(format!(
            "the document is signed by {signer}, not by its sender {sender}"
        )));
    }
    if contents.len() != document.attachments.len() {
        return Err(Error::InvalidArgument(format!(
            "{} attachments described but {} received",
            document.attachments.len(),
            contents.len()
        )));
    }
    for (a, c) in document.attachments.iter().zip(contents) {
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
