//! The official document (edoc), mirroring the edXML MessageHeader, Bussiness block,
//! attachments, signature and TraceHeaderList of QCVN 102:2016.
//!
//! Dates that DMSs write as text (`yyyy/MM/dd`) are kept as the text they sent; the bus
//! never reinterprets a business field. Times the bus itself sets are [`UnixMillis`].

use crate::sign::Signature;
use crate::{AgencyCode, DocumentId, Error, NodeId, UnixMillis};

/// An agency as named in a message (edXML `From` / `To`): its code and the contact details
/// the DMS wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Organization {
    /// OrganId — the agency code. `None` only while a message is being built.
    pub code: Option<AgencyCode>,
    /// OrganizationInCharge — the governing body.
    pub in_charge: String,
    /// OrganName.
    pub name: String,
    /// OrganAdd — postal address.
    pub address: String,
    pub email: String,
    pub telephone: String,
    pub fax: String,
    pub website: String,
}

impl Organization {
    pub fn with_code(code: AgencyCode) -> Self {
        Organization {
            code: Some(code),
            ..Default::default()
        }
    }
}

/// Độ khẩn — urgency. Higher values overtake lower ones on every queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Thường.
    #[default]
    Routine = 0,
    /// Khẩn.
    Urgent = 1,
    /// Thượng khẩn.
    VeryUrgent = 2,
    /// Hỏa tốc.
    Flash = 3,
}

impl Priority {
    pub fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0 => Priority::Routine,
            1 => Priority::Urgent,
            2 => Priority::VeryUrgent,
            3 => Priority::Flash,
            _ => {
                return Err(Error::InvalidDocument(format!(
                    "priority {v} is out of range; use 0 (thường) to 3 (hỏa tốc)"
                )));
            }
        })
    }
}

/// Số và ký hiệu — the document's number and notation (`7806` / `VPCP-TTĐT`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeInfo {
    pub number: String,
    pub notation: String,
}

/// Nơi và ngày ban hành.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromulgationInfo {
    pub place: String,
    /// As written by the DMS, usually `yyyy/MM/dd`.
    pub date: String,
}

/// Loại văn bản.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentType {
    /// 1 legal document (văn bản quy phạm pháp luật), 2 administrative document.
    pub kind: u32,
    /// A finer code (edXML TypeDetail).
    pub detail: u32,
    /// Thông tư, Quyết định, Công văn …
    pub name: String,
}

/// Người ký.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerInfo {
    /// Thẩm quyền (e.g. "Quyền", "Thay mặt").
    pub competence: String,
    pub position: String,
    pub full_name: String,
}

/// OtherInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtherInfo {
    pub priority: Priority,
    /// Phạm vi ban hành.
    pub sphere_of_promulgation: String,
    /// Ký hiệu người đánh máy.
    pub typist_notation: String,
    /// Số lượng bản phát hành.
    pub promulgation_amount: u32,
    /// Số trang.
    pub page_amount: u32,
    /// Phụ lục.
    pub appendixes: Vec<String>,
}

/// A reference to a document this one answers (edXML ResponseFor).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseFor {
    /// The original sender (OrganId), as written.
    pub organ_id: String,
    /// Số/ký hiệu of the original.
    pub code: String,
    pub promulgation_date: String,
    pub document_id: String,
}

/// edXML MessageHeader fields of a document, apart from from/to and the id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentHeader {
    pub code: CodeInfo,
    pub promulgation: PromulgationInfo,
    pub document_type: DocumentType,
    /// Trích yếu — the document's abstract.
    pub subject: String,
    /// Nội dung — body text, when the DMS sends one.
    pub content: String,
    pub signer: SignerInfo,
    /// Hạn xử lý, as written (`yyyy/MM/dd`).
    pub due_date: String,
    /// Nơi nhận (ToPlaces).
    pub to_places: Vec<String>,
    pub other: OtherInfo,
    pub response_for: Vec<ResponseFor>,
    /// Loại chỉ đạo (0 none, 1 steering, …), as sent.
    pub steering_type: u32,
}

/// BussinessDocType.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BusinessType {
    /// 0 — a new document.
    #[default]
    New = 0,
    /// 1 — revoke (thu hồi) an earlier document.
    Revoke = 1,
    /// 2 — update (cập nhật) an earlier document.
    Update = 2,
    /// 3 — replace (thay thế) an earlier document.
    Replace = 3,
}

impl BusinessType {
    pub fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0 => BusinessType::New,
            1 => BusinessType::Revoke,
            2 => BusinessType::Update,
            3 => BusinessType::Replace,
            _ => {
                return Err(Error::InvalidDocument(format!(
                    "business type {v} is unknown; use 0 new, 1 revoke, 2 update, 3 replace"
                )));
            }
        })
    }
}

/// A receiver of an update (edXML ReceiverList/Receiver).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receiver {
    pub organ_id: String,
    /// ReceiverType: 0 the receiver keeps, 1 added, as sent.
    pub receiver_type: u32,
}

/// What an update changes (edXML BussinessDocumentInfo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessDocumentInfo {
    /// DocumentInfo flag: 1 when the document's information changed.
    pub document_info: u32,
    /// DocumentReceiver flag: 1 when the receivers changed.
    pub document_receiver: u32,
    pub receivers: Vec<Receiver>,
}

/// A document replaced by this one, and who received it (edXML ReplacementInfo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplacementInfo {
    pub document_id: String,
    pub organ_ids: Vec<String>,
}

/// The officer handling the document (edXML StaffInfo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffInfo {
    pub department: String,
    pub staff: String,
    pub email: String,
    pub mobile: String,
}

/// The business block (edXML Bussiness).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Business {
    pub business_type: BusinessType,
    /// BussinessDocReason.
    pub reason: String,
    /// The document this one revokes, updates or replaces (edXML Bussiness/DocumentId).
    pub referenced_document_id: String,
    /// Paper: 1 when a paper copy is also sent.
    pub paper: u32,
    pub document_info: Option<BusinessDocumentInfo>,
    pub replacements: Vec<ReplacementInfo>,
    pub staff: Option<StaffInfo>,
}

/// An attachment's description. The bytes are carried beside the document and stored as a
/// blob named by `sha256`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachment {
    /// ContentId, without a `cid:` prefix.
    pub content_id: String,
    pub name: String,
    pub content_type: String,
    pub description: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// One hop of a document's path (edXML TraceHeader), signed by the node that added it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    pub node: NodeId,
    pub at: UnixMillis,
    pub signature: Option<Signature>,
}

/// Văn bản điện tử — an official document travelling on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub id: DocumentId,
    pub from: Organization,
    /// At least one recipient, each with a code.
    pub to: Vec<Organization>,
    pub header: DocumentHeader,
    pub business: Business,
    pub attachments: Vec<Attachment>,
    /// Set by the sending agency over [`crate::canonical::document_bytes`].
    pub signature: Option<Signature>,
    /// Appended by every hop; not covered by the sender's signature.
    pub trace: Vec<TraceEntry>,
    /// When the sending DMS created the message.
    pub created_at: UnixMillis,
    /// After this the bus stops trying and dead-letters it; `None` uses the node default.
    pub expires_at: Option<UnixMillis>,
    /// The parts of an imported edXML message lienthong does not model (unknown elements,
    /// the original XML-DSig `Signature`), as encoded by `lienthong-edxml`, so that export
    /// gives them back. Signed with the rest; empty for native documents.
    pub edxml_preserved: Vec<u8>,
    /// Set when a bridge imported the message from the national platform: the signature
    /// is then the bridge's, vouching for what the platform delivered, not the sending
    /// agency's.
    pub imported: Option<Imported>,
}

/// How a message from the national platform entered lienthong. A message carrying it is
/// signed by the bridge node named here (checked against the directory's bridges), and
/// its sender is an agency outside the directory: "vouched for by our bridge", never
/// "signed by the sending agency".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The node that imported it, whose key signed it.
    pub bridge: NodeId,
    /// The platform's id of the message (the `docId` it was received under).
    pub platform_id: String,
    /// What the bridge found of the sending DMS's own XML-DSig in the original edXML:
    /// `verified (…)`, `absent`, `invalid: …` or `not checked: …`.
    pub dsig: String,
}

impl Document {
    /// A new, empty document from `from` to `to`, with a fresh id.
    pub fn new(from: AgencyCode, to: Vec<AgencyCode>) -> Self {
        Document {
            id: DocumentId::generate(),
            from: Organization::with_code(from),
            to: to.into_iter().map(Organization::with_code).collect(),
            header: DocumentHeader::default(),
            business: Business::default(),
            attachments: Vec::new(),
            signature: None,
            trace: Vec::new(),
            created_at: crate::now_millis(),
            expires_at: None,
            edxml_preserved: Vec::new(),
            imported: None,
        }
    }

    /// The sender's code; documents are validated to have one.
    pub fn sender(&self) -> Result<&AgencyCode, Error> {
        self.from
            .code
            .as_ref()
            .ok_or_else(|| Error::InvalidDocument("the sender (from) has no agency code".into()))
    }

    /// How the bus names this document: its id within its sender.
    pub fn key(&self) -> Result<crate::MessageKey, Error> {
        Ok(crate::MessageKey::sent_by(self.sender()?, &self.id))
    }

    /// The recipients' codes, in order, without duplicates.
    pub fn recipients(&self) -> Result<Vec<AgencyCode>, Error> {
        let mut out: Vec<AgencyCode> = Vec::with_capacity(self.to.len());
        for (i, org) in self.to.iter().enumerate() {
            let code = org.code.clone().ok_or_else(|| {
                Error::InvalidDocument(format!("recipient #{} has no agency code", i + 1))
            })?;
            if !out.contains(&code) {
                out.push(code);
            }
        }
        Ok(out)
    }

    /// Checks what every document must satisfy before the bus takes it.
    pub fn validate(&self) -> Result<(), Error> {
        self.sender()?;
        if self.to.is_empty() {
            return Err(Error::InvalidDocument(
                "the document has no recipient; add at least one agency to `to`".into(),
            ));
        }
        self.recipients()?;
        if self.business.business_type != BusinessType::New
            && self.business.referenced_document_id.trim().is_empty()
            && self
                .business
                .replacements
                .iter()
                .all(|r| r.document_id.trim().is_empty())
        {
            return Err(Error::InvalidDocument(format!(
                "a {:?} document must reference the original document id",
                self.business.business_type
            )));
        }
        for a in &self.attachments {
            if a.name.is_empty() {
                return Err(Error::InvalidDocument("an attachment has no name".into()));
            }
        }
        Ok(())
    }

    pub fn priority(&self) -> Priority {
        self.header.other.priority
    }
}
