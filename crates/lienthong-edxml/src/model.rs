//! The parsed edXML message: every field of QCVN 102:2016 that lienthong reads, as the
//! text the DMS wrote, plus what it does not model (unknown elements, the XML-DSig
//! `Signature`) kept for writing back.
//!
//! Text fields are trimmed; an absent element and an empty one read the same (empty
//! string). Numbers and codes stay text here (`"0"`, `"03"`): lenient reading keeps a
//! value it cannot interpret, and the mapping to lienthong's domain decides what is
//! usable. Equality of two messages is equality of these fields; it is what a round trip
//! (`parse(write(m)) == m`) preserves.

use std::collections::BTreeMap;

use crate::dom::XmlElement;

/// One edXML message: an official document or a status notice.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Document(EdxmlDocument),
    Status(EdxmlStatus),
}

impl Message {
    /// The parts not modelled, in every container.
    pub fn extras(&self) -> &[Extra] {
        match self {
            Message::Document(d) => &d.extras,
            Message::Status(s) => &s.extras,
        }
    }

    /// The XML-DSig `Signature` element, when the message carries one.
    pub fn signature(&self) -> Option<&XmlElement> {
        match self {
            Message::Document(d) => d.signature.as_ref(),
            Message::Status(s) => s.signature.as_ref(),
        }
    }
}

/// Văn bản điện tử — an edXML document message (edoc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdxmlDocument {
    pub header: DocumentHeader,
    /// TraceHeaderList — the DMSs and axes the message passed, as they wrote it.
    pub trace: Vec<TraceHeader>,
    /// Bussiness (sic) — absent in many new documents.
    pub business: Option<Business>,
    /// The XML-DSig `Signature` element, kept as read.
    pub signature: Option<XmlElement>,
    /// The manifest references merged with the encoded attachments, by ContentId.
    pub attachments: Vec<Attachment>,
    /// Unknown elements, sorted by container (document order within one container).
    pub extras: Vec<Extra>,
    /// Where things were in the input; not part of equality.
    pub lines: SourceLines,
}

/// Thông điệp trạng thái — an edXML status message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdxmlStatus {
    pub from: Organization,
    /// The document the status is about.
    pub response_for: ResponseFor,
    pub staff: Option<StaffInfo>,
    /// StatusCode as written (`"03"`).
    pub status_code: String,
    pub description: String,
    /// Timestamp as written, usually `yyyy/MM/dd HH:mm:ss` in Vietnam time.
    pub timestamp: String,
    pub trace: Vec<TraceHeader>,
    pub signature: Option<XmlElement>,
    pub extras: Vec<Extra>,
    pub lines: SourceLines,
}

/// An element lienthong does not model, and where it was: its container (a logical path
/// such as `MessageHeader/To[1]`) and the known element it followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extra {
    /// The logical path of the container; see [`crate::parse`](mod@crate::parse) for the names.
    pub container: String,
    /// The known sibling element this one followed, with that sibling's 0-based
    /// occurrence among known siblings of the same name; `None` when it came first.
    pub after: Option<(String, u32)>,
    pub element: XmlElement,
}

/// Lines of some fields in the input (by logical path, such as
/// `MessageHeader/From/OrganId`), for error messages. Always equal to another: positions
/// are not part of a message's meaning.
#[derive(Clone, Debug, Default)]
pub struct SourceLines(pub BTreeMap<String, u32>);

impl PartialEq for SourceLines {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for SourceLines {}

impl SourceLines {
    /// The line of the field at `path`, 0 when unknown.
    pub fn of(&self, path: &str) -> u32 {
        self.0.get(path).copied().unwrap_or(0)
    }
}

/// An agency as named in From / To.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Organization {
    /// OrganId — the agency code as written (may be a legacy or local code).
    pub organ_id: String,
    /// OrganizationInCharge.
    pub in_charge: String,
    /// OrganName.
    pub name: String,
    /// OrganAdd.
    pub address: String,
    pub email: String,
    pub telephone: String,
    pub fax: String,
    pub website: String,
}

/// MessageHeader of a document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentHeader {
    pub from: Organization,
    pub to: Vec<Organization>,
    /// DocumentId — the sender's id of the document.
    pub document_id: String,
    /// Code/CodeNumber — số.
    pub code_number: String,
    /// Code/CodeNotation — ký hiệu.
    pub code_notation: String,
    /// PromulgationInfo/Place.
    pub promulgation_place: String,
    /// PromulgationInfo/PromulgationDate, usually `yyyy/MM/dd`.
    pub promulgation_date: String,
    /// DocumentType/Type.
    pub document_type: String,
    /// DocumentType/TypeDetail.
    pub document_type_detail: String,
    /// DocumentType/TypeName.
    pub document_type_name: String,
    /// Trích yếu — the document's abstract.
    pub subject: String,
    pub content: String,
    /// SignerInfo/Competence — thẩm quyền.
    pub signer_competence: String,
    pub signer_position: String,
    pub signer_full_name: String,
    /// Hạn xử lý.
    pub due_date: String,
    /// ToPlaces/Place — nơi nhận.
    pub to_places: Vec<String>,
    pub other: OtherInfo,
    /// ResponseFor — documents this one answers. An entirely empty ResponseFor (as real
    /// DMSs send for "none") is not listed.
    pub response_for: Vec<ResponseFor>,
    pub steering_type: String,
}

/// OtherInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtherInfo {
    /// Độ khẩn: 0 thường … 3 hỏa tốc.
    pub priority: String,
    pub sphere_of_promulgation: String,
    /// TyperNotation (sic) — ký hiệu người đánh máy.
    pub typer_notation: String,
    pub promulgation_amount: String,
    pub page_amount: String,
    /// Direction — whether the document is a directive (`true`/`false`).
    pub direction: String,
    /// Appendixes/Appendix.
    pub appendixes: Vec<String>,
}

/// ResponseFor — a reference to another document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseFor {
    pub organ_id: String,
    pub code: String,
    pub promulgation_date: String,
    pub document_id: String,
}

impl ResponseFor {
    pub fn is_empty(&self) -> bool {
        self.organ_id.is_empty()
            && self.code.is_empty()
            && self.promulgation_date.is_empty()
            && self.document_id.is_empty()
    }
}

/// TraceHeader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeader {
    pub organ_id: String,
    /// As written, usually `yyyy/MM/dd HH:mm:ss` in Vietnam time.
    pub timestamp: String,
}

/// Bussiness (sic) — what the document does to earlier ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Business {
    /// DocumentId — the document revoked, updated or replaced.
    pub document_id: String,
    /// BussinessDocType: 0 new, 1 revoke, 2 update, 3 replace.
    pub doc_type: String,
    /// BussinessDocReason.
    pub reason: String,
    /// Paper: 1 when a paper copy is also sent.
    pub paper: String,
    pub document_info: Option<BusinessDocumentInfo>,
    /// ReplacementInfoList/ReplacementInfo.
    pub replacements: Vec<ReplacementInfo>,
    pub staff: Option<StaffInfo>,
}

/// BussinessDocumentInfo — what an update changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessDocumentInfo {
    pub document_info: String,
    pub document_receiver: String,
    /// ReceiverList/Receiver.
    pub receivers: Vec<Receiver>,
}

/// ReceiverList/Receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receiver {
    pub organ_id: String,
    pub receiver_type: String,
}

/// ReplacementInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplacementInfo {
    pub document_id: String,
    /// OrganIdList/OrganId.
    pub organ_ids: Vec<String>,
}

/// StaffInfo — the officer handling the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffInfo {
    pub department: String,
    pub staff: String,
    pub email: String,
    pub mobile: String,
}

/// An attachment: the manifest `Reference` and the `AttachmentEncoded/Attachment` with
/// the same ContentId, read as one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachment {
    /// ContentId without the `cid:` prefix.
    pub content_id: String,
    pub name: String,
    /// ContentType, usually `application/zip`.
    pub content_type: String,
    pub description: String,
    /// Size of the decoded content in bytes.
    pub size: u64,
    /// SHA-256 of the decoded content.
    pub sha256: [u8; 32],
    /// The decoded content (most often a ZIP holding the real file). Empty when the
    /// parser streamed it elsewhere ([`crate::parse_with`]) or when the message was built
    /// from a core document; `size` and `sha256` still describe it.
    pub content: Vec<u8>,
}

impl Attachment {
    /// Whether the decoded content is held in [`Attachment::content`].
    pub fn has_content(&self) -> bool {
        self.content.len() as u64 == self.size
    }

    /// Sets the content, with its size and digest.
    pub fn set_content(&mut self, content: Vec<u8>) {
        self.size = content.len() as u64;
        self.sha256 = lienthong_core::sign::sha256(&content);
        self.content = content;
    }
}
