//! edXML ⇄ lienthong's domain: [`EdxmlDocument`] ⇄ [`lienthong_core::Document`],
//! [`EdxmlStatus`] ⇄ [`lienthong_core::StatusNotice`].
//!
//! Import keeps in `edxml_preserved` what the core types do not hold, so that export
//! gives the message back (a re-parse of the export equals the parse of the original):
//!
//! - unknown elements at their place, the original XML-DSig `Signature`, the
//!   TraceHeaderList, OtherInfo/Direction, and whether a Bussiness block was present;
//! - the text of numbers and codes as written (`Priority`, `Type`, `BussinessDocType`,
//!   an agency identifier such as `vxp.saas.03` or `28.22.H17` that is not a QĐ 20/2020
//!   code, a status `Timestamp` …): on export the written text is used again as long as
//!   it still means what the core value says, else the core value is written.
//!
//! ## Agency identifiers
//! Real messages name agencies by QĐ 20/2020 codes, legacy three-part codes (`28.22.H17`)
//! and platform account ids (`vxp.saas.03`). On import each routing identifier (From and
//! every To of a document; From and ResponseFor/OrganId of a status) is placed with the
//! directory ([`lienthong_core::directory::place`]): a code, or an alias the directory
//! lists, becomes the agency's code in the core value, and the text as written stays in
//! `edxml_preserved`. On export an agency whose directory entry sets an `edxml_id` is
//! written with it (the identifier its own system expects); otherwise as imported when
//! that text is its code written differently, else as its code.
//!
//! ## The `edxml_preserved` encoding, version 1
//! The bytes `lienthong-edxml-preserved/1\n` followed by an edXML message, written by this
//! crate without indentation, that is the imported message with every field the core type
//! carries emptied (names, subjects, dates, attachment descriptions and contents …) and
//! everything else kept: the *skeleton*. Export reads the skeleton with the same parser
//! and lays the core values over it. A later version changes the first line.
//!
//! Core values always win: a field edited on the core document is exported as edited.

use lienthong_core as core;
use lienthong_core::directory::{DirectoryIndex, place};
use lienthong_core::{AgencyCode, DocumentId, StatusCode, UnixMillis};

use crate::error::Error;
use crate::model::*;
use crate::time::{format_timestamp, parse_timestamp};

/// The first line of an `edxml_preserved` value.
pub const PRESERVED_MAGIC: &[u8] = b"lienthong-edxml-preserved/1\n";

fn num(text: &str) -> u32 {
    text.trim().parse().unwrap_or(0)
}

/// Độ khẩn as core reads it: anything but 0–3 is routine.
fn priority(text: &str) -> core::Priority {
    u8::try_from(num(text))
        .ok()
        .and_then(|p| core::Priority::from_u8(p).ok())
        .unwrap_or_default()
}

/// BussinessDocType as core reads it: anything but 0–3 is a new document.
fn business_type(text: &str) -> core::BusinessType {
    u8::try_from(num(text))
        .ok()
        .and_then(|t| core::BusinessType::from_u8(t).ok())
        .unwrap_or_default()
}

/// The text to export for a number: the imported text while it still reads as `value`
/// (so `00`, an empty field or an unreadable text come back as they were), else `value`.
fn num_out(native: bool, imported: &str, value: u32, read: fn(&str) -> u32) -> String {
    if !native && read(imported) == value {
        imported.to_string()
    } else {
        value.to_string()
    }
}

/// An identifier the bus routes by, where the message has it: `From/OrganId` and each
/// `To #n OrganId` of a document; `From/OrganId` and `ResponseFor/OrganId` (the agency
/// the notice goes to) of a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingId {
    pub field: String,
    pub value: String,
    /// 0 when unknown.
    pub line: u32,
}

impl RoutingId {
    /// The agency the identifier names (see [`place`]), or [`Error::Unroutable`] saying
    /// why it names none.
    pub fn place(&self, directory: Option<&DirectoryIndex>) -> Result<AgencyCode, Error> {
        place(directory, &self.value).map_err(|reason| Error::Unroutable {
            field: self.field.clone(),
            value: self.value.clone(),
            line: self.line,
            reason,
        })
    }

    /// As [`RoutingId::place`] when `strict`; otherwise an identifier that names no
    /// agency is carried as text (`None`).
    fn place_or_carry(
        &self,
        directory: Option<&DirectoryIndex>,
        strict: bool,
    ) -> Result<Option<AgencyCode>, Error> {
        match self.place(directory) {
            Ok(c) => Ok(Some(c)),
            Err(_) if !strict => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Message {
    /// The identifiers the bus routes this message by, From first.
    pub fn routing_ids(&self) -> Vec<RoutingId> {
        match self {
            Message::Document(d) => d.routing_ids(),
            Message::Status(s) => s.routing_ids(),
        }
    }
}

fn org_to_core(o: &Organization, code: Option<AgencyCode>) -> core::Organization {
    core::Organization {
        code,
        in_charge: o.in_charge.clone(),
        name: o.name.clone(),
        address: o.address.clone(),
        email: o.email.clone(),
        telephone: o.telephone.clone(),
        fax: o.fax.clone(),
        website: o.website.clone(),
    }
}

/// The identifier an exported message gives agency `code`: the directory's `edxml_id`
/// for it when set, else the code.
fn export_id(code: &AgencyCode, directory: Option<&DirectoryIndex>) -> String {
    directory
        .and_then(|d| d.edxml_id(code))
        .map(str::to_string)
        .unwrap_or_else(|| code.to_string())
}

fn org_from_core(
    imported: Option<&Organization>,
    o: &core::Organization,
    directory: Option<&DirectoryIndex>,
) -> Organization {
    let raw = imported.map(|i| i.organ_id.as_str()).unwrap_or("");
    // The identifier configured for the agency; else the imported text while it is the
    // same code written differently (or, for an identifier that named no agency, the text
    // carried), else the core code.
    let configured = o
        .code
        .as_ref()
        .and_then(|c| directory.and_then(|d| d.edxml_id(c)));
    let organ_id = match configured {
        Some(id) => id.to_string(),
        None if AgencyCode::parse(raw).ok() == o.code => raw.to_string(),
        None => o.code.as_ref().map(|c| c.to_string()).unwrap_or_default(),
    };
    Organization {
        organ_id,
        in_charge: o.in_charge.clone(),
        name: o.name.clone(),
        address: o.address.clone(),
        email: o.email.clone(),
        telephone: o.telephone.clone(),
        fax: o.fax.clone(),
        website: o.website.clone(),
    }
}

fn response_for_to_core(r: &ResponseFor) -> core::ResponseFor {
    core::ResponseFor {
        organ_id: r.organ_id.clone(),
        code: r.code.clone(),
        promulgation_date: r.promulgation_date.clone(),
        document_id: r.document_id.clone(),
    }
}

fn response_for_from_core(r: &core::ResponseFor) -> ResponseFor {
    ResponseFor {
        organ_id: r.organ_id.clone(),
        code: r.code.clone(),
        promulgation_date: r.promulgation_date.clone(),
        document_id: r.document_id.clone(),
    }
}

fn staff_to_core(s: &StaffInfo) -> core::StaffInfo {
    core::StaffInfo {
        department: s.department.clone(),
        staff: s.staff.clone(),
        email: s.email.clone(),
        mobile: s.mobile.clone(),
    }
}

fn staff_from_core(s: &core::StaffInfo) -> StaffInfo {
    StaffInfo {
        department: s.department.clone(),
        staff: s.staff.clone(),
        email: s.email.clone(),
        mobile: s.mobile.clone(),
    }
}

fn clear(s: &mut String) {
    s.clear();
}

fn clear_all(v: &mut [String]) {
    v.iter_mut().for_each(clear);
}

fn clear_org(o: &mut Organization) {
    let organ_id = std::mem::take(&mut o.organ_id);
    *o = Organization {
        organ_id,
        ..Default::default()
    };
}

fn clear_staff(s: &mut Option<StaffInfo>) {
    if let Some(s) = s {
        *s = StaffInfo::default();
    }
}

/// `edxml_preserved` for a skeleton.
fn encode_preserved(skeleton: &Message) -> Result<Vec<u8>, Error> {
    let mut out = PRESERVED_MAGIC.to_vec();
    crate::write::write_compact(&mut out, skeleton)?;
    Ok(out)
}

/// The skeleton in an `edxml_preserved` value; `None` for a native (empty) one.
fn decode_preserved(preserved: &[u8]) -> Result<Option<Message>, Error> {
    if preserved.is_empty() {
        return Ok(None);
    }
    let xml = preserved.strip_prefix(PRESERVED_MAGIC).ok_or_else(|| {
        Error::Preserved(
            "it does not start with lienthong-edxml-preserved/1 (written by a newer or another program?)"
                .into(),
        )
    })?;
    crate::parse::parse_written(xml)
        .map(Some)
        .map_err(|e| Error::Preserved(e.to_string()))
}

/// Why a document's `edxml_preserved` cannot hold a status skeleton, and the reverse.
const HOLDS_STATUS: &str = "it holds a status message, not a document";
const HOLDS_DOCUMENT: &str = "it holds a document, not a status message";

impl EdxmlDocument {
    /// Checks that `preserved` is an `edxml_preserved` value [`EdxmlDocument::from_core`]
    /// can export a document with: empty (a document that was not imported from edXML),
    /// or this crate's encoding of a document, readable within the [`crate::limits`]. A
    /// node calls it before it accepts a document from a DMS, so that whatever it accepts
    /// can be exported by its recipients.
    pub fn check_preserved(preserved: &[u8]) -> Result<(), Error> {
        match decode_preserved(preserved)? {
            None | Some(Message::Document(_)) => Ok(()),
            Some(Message::Status(_)) => Err(Error::Preserved(HOLDS_STATUS.into())),
        }
    }

    /// As [`EdxmlDocument::to_core_with`] without a directory: From and every To must be
    /// QĐ 20/2020 codes.
    pub fn to_core(&self, now: UnixMillis) -> Result<core::Document, Error> {
        self.convert(now, None, true)
    }

    /// The core document for sending: From and every To must name an agency, by a
    /// QĐ 20/2020 code or an alias `directory` lists (else [`Error::Unroutable`] says
    /// which, why and on which line), and DocumentId must be usable. `now` is the
    /// creation time when the message has no TraceHeader timestamp. Attachment contents
    /// stay in [`EdxmlDocument::attachments`] (or wherever [`crate::parse_with`] streamed
    /// them); the core document holds their size and SHA-256.
    pub fn to_core_with(
        &self,
        now: UnixMillis,
        directory: Option<&DirectoryIndex>,
    ) -> Result<core::Document, Error> {
        self.convert(now, directory, true)
    }

    /// As [`EdxmlDocument::to_core`], but an identifier that is not a QĐ 20/2020 code
    /// is carried (its `code` is `None`, the text is preserved) instead of refused: for
    /// archiving and inspection, not for sending.
    pub fn to_core_lenient(&self, now: UnixMillis) -> Result<core::Document, Error> {
        self.convert(now, None, false)
    }

    /// Refuses a document without To: it has no recipient to be routed to.
    pub(crate) fn require_recipients(&self) -> Result<(), Error> {
        if self.header.to.is_empty() {
            return Err(Error::Import {
                line: self.lines.of("MessageHeader"),
                reason: "MessageHeader has no To: the document has no recipient to be routed to"
                    .into(),
            });
        }
        Ok(())
    }

    /// The identifiers the bus routes this document by: From, then each To.
    pub fn routing_ids(&self) -> Vec<RoutingId> {
        let h = &self.header;
        let lines = &self.lines;
        let mut ids = Vec::with_capacity(1 + h.to.len());
        ids.push(RoutingId {
            field: "From/OrganId".into(),
            value: h.from.organ_id.clone(),
            line: lines
                .of("MessageHeader/From/OrganId")
                .max(lines.of("MessageHeader")),
        });
        for (i, o) in h.to.iter().enumerate() {
            ids.push(RoutingId {
                field: format!("To #{} OrganId", i + 1),
                value: o.organ_id.clone(),
                line: lines
                    .of(&format!("MessageHeader/To[{i}]/OrganId"))
                    .max(lines.of(&format!("MessageHeader/To[{i}]"))),
            });
        }
        ids
    }

    fn convert(
        &self,
        now: UnixMillis,
        directory: Option<&DirectoryIndex>,
        strict: bool,
    ) -> Result<core::Document, Error> {
        let h = &self.header;
        let lines = &self.lines;
        let id = DocumentId::parse(&h.document_id).map_err(|e| Error::Import {
            line: lines
                .of("MessageHeader/DocumentId")
                .max(lines.of("MessageHeader")),
            reason: format!(
                "MessageHeader/DocumentId: {e}; lienthong needs the sender's document id to deduplicate"
            ),
        })?;
        let ids = self.routing_ids();
        let from_code = ids[0].place_or_carry(directory, strict)?;
        if strict {
            self.require_recipients()?;
        }
        let mut to = Vec::with_capacity(h.to.len());
        for (o, id) in h.to.iter().zip(&ids[1..]) {
            to.push(org_to_core(o, id.place_or_carry(directory, strict)?));
        }
        let o = &h.other;
        let header = core::DocumentHeader {
            code: core::CodeInfo {
                number: h.code_number.clone(),
                notation: h.code_notation.clone(),
            },
            promulgation: core::PromulgationInfo {
                place: h.promulgation_place.clone(),
                date: h.promulgation_date.clone(),
            },
            document_type: core::DocumentType {
                kind: num(&h.document_type),
                detail: num(&h.document_type_detail),
                name: h.document_type_name.clone(),
            },
            subject: h.subject.clone(),
            content: h.content.clone(),
            signer: core::SignerInfo {
                competence: h.signer_competence.clone(),
                position: h.signer_position.clone(),
                full_name: h.signer_full_name.clone(),
            },
            due_date: h.due_date.clone(),
            to_places: h.to_places.clone(),
            other: core::OtherInfo {
                priority: priority(&o.priority),
                sphere_of_promulgation: o.sphere_of_promulgation.clone(),
                typist_notation: o.typer_notation.clone(),
                promulgation_amount: num(&o.promulgation_amount),
                page_amount: num(&o.page_amount),
                appendixes: o.appendixes.clone(),
            },
            response_for: h.response_for.iter().map(response_for_to_core).collect(),
            steering_type: num(&h.steering_type),
        };
        let business = self
            .business
            .as_ref()
            .map(|b| core::Business {
                business_type: business_type(&b.doc_type),
                reason: b.reason.clone(),
                referenced_document_id: b.document_id.clone(),
                paper: num(&b.paper),
                document_info: b
                    .document_info
                    .as_ref()
                    .map(|i| core::BusinessDocumentInfo {
                        document_info: num(&i.document_info),
                        document_receiver: num(&i.document_receiver),
                        receivers: i
                            .receivers
                            .iter()
                            .map(|r| core::Receiver {
                                organ_id: r.organ_id.clone(),
                                receiver_type: num(&r.receiver_type),
                            })
                            .collect(),
                    }),
                replacements: b
                    .replacements
                    .iter()
                    .map(|r| core::ReplacementInfo {
                        document_id: r.document_id.clone(),
                        organ_ids: r.organ_ids.clone(),
                    })
                    .collect(),
                staff: b.staff.as_ref().map(staff_to_core),
            })
            .unwrap_or_default();
        let attachments = self
            .attachments
            .iter()
            .map(|a| core::Attachment {
                content_id: a.content_id.clone(),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                description: a.description.clone(),
                size: a.size,
                sha256: a.sha256,
            })
            .collect();
        let created_at = self
            .trace
            .first()
            .and_then(|t| parse_timestamp(&t.timestamp))
            .unwrap_or(now);
        Ok(core::Document {
            id,
            from: org_to_core(&h.from, from_code),
            to,
            header,
            business,
            attachments,
            signature: None,
            trace: Vec::new(),
            created_at,
            expires_at: None,
            edxml_preserved: encode_preserved(&Message::Document(self.skeleton()))?,
            imported: None,
        })
    }

    /// This message with every field the core document carries emptied.
    fn skeleton(&self) -> EdxmlDocument {
        let mut s = self.clone();
        let h = &mut s.header;
        clear_org(&mut h.from);
        h.to.iter_mut().for_each(clear_org);
        for f in [
            &mut h.document_id,
            &mut h.code_number,
            &mut h.code_notation,
            &mut h.promulgation_place,
            &mut h.promulgation_date,
            &mut h.document_type_name,
            &mut h.subject,
            &mut h.content,
            &mut h.signer_competence,
            &mut h.signer_position,
            &mut h.signer_full_name,
            &mut h.due_date,
            &mut h.other.sphere_of_promulgation,
            &mut h.other.typer_notation,
        ] {
            clear(f);
        }
        clear_all(&mut h.to_places);
        clear_all(&mut h.other.appendixes);
        // ResponseFor stays whole: an emptied one would read as absent.
        if let Some(b) = &mut s.business {
            clear(&mut b.document_id);
            clear(&mut b.reason);
            if let Some(i) = &mut b.document_info {
                i.receivers.iter_mut().for_each(|r| clear(&mut r.organ_id));
            }
            for r in &mut b.replacements {
                clear(&mut r.document_id);
                clear_all(&mut r.organ_ids);
            }
            clear_staff(&mut b.staff);
        }
        for a in &mut s.attachments {
            *a = Attachment::default();
        }
        s
    }

    /// As [`EdxmlDocument::from_core_with`] without a directory: agencies are written by
    /// their codes (or as imported, when that is the same code).
    pub fn from_core(doc: &core::Document) -> Result<EdxmlDocument, Error> {
        Self::from_core_with(doc, None)
    }

    /// The edXML message for a core document: its preserved parts (if it was imported)
    /// with the core values laid over them, each agency written with the `edxml_id`
    /// `directory` sets for it. Attachments have no content: write with
    /// [`crate::write_with`], or fill [`Attachment::content`].
    pub fn from_core_with(
        doc: &core::Document,
        directory: Option<&DirectoryIndex>,
    ) -> Result<EdxmlDocument, Error> {
        let (base, native) = match decode_preserved(&doc.edxml_preserved)? {
            None => (EdxmlDocument::default(), true),
            Some(Message::Document(d)) => (d, false),
            Some(Message::Status(_)) => return Err(Error::Preserved(HOLDS_STATUS.into())),
        };
        let c = &doc.header;
        let b = &base.header;
        let header = DocumentHeader {
            from: org_from_core(Some(&b.from), &doc.from, directory),
            to: doc
                .to
                .iter()
                .enumerate()
                .map(|(i, o)| org_from_core(b.to.get(i), o, directory))
                .collect(),
            document_id: doc.id.to_string(),
            code_number: c.code.number.clone(),
            code_notation: c.code.notation.clone(),
            promulgation_place: c.promulgation.place.clone(),
            promulgation_date: c.promulgation.date.clone(),
            document_type: num_out(native, &b.document_type, c.document_type.kind, num),
            document_type_detail: num_out(
                native && c.document_type.detail != 0,
                &b.document_type_detail,
                c.document_type.detail,
                num,
            ),
            document_type_name: c.document_type.name.clone(),
            subject: c.subject.clone(),
            content: c.content.clone(),
            signer_competence: c.signer.competence.clone(),
            signer_position: c.signer.position.clone(),
            signer_full_name: c.signer.full_name.clone(),
            due_date: c.due_date.clone(),
            to_places: c.to_places.clone(),
            other: OtherInfo {
                priority: num_out(native, &b.other.priority, c.other.priority as u32, |t| {
                    priority(t) as u32
                }),
                sphere_of_promulgation: c.other.sphere_of_promulgation.clone(),
                typer_notation: c.other.typist_notation.clone(),
                promulgation_amount: num_out(
                    native,
                    &b.other.promulgation_amount,
                    c.other.promulgation_amount,
                    num,
                ),
                page_amount: num_out(native, &b.other.page_amount, c.other.page_amount, num),
                direction: b.other.direction.clone(),
                appendixes: c.other.appendixes.clone(),
            },
            response_for: c.response_for.iter().map(response_for_from_core).collect(),
            steering_type: num_out(native, &b.steering_type, c.steering_type, num),
        };
        let cb = &doc.business;
        let business = match (&base.business, native) {
            (None, _) if *cb == core::Business::default() => None,
            (imported, _) => {
                let ib = imported.clone().unwrap_or_default();
                let native = native || imported.is_none();
                Some(Business {
                    document_id: cb.referenced_document_id.clone(),
                    doc_type: num_out(native, &ib.doc_type, cb.business_type as u32, |t| {
                        business_type(t) as u32
                    }),
                    reason: cb.reason.clone(),
                    paper: num_out(native, &ib.paper, cb.paper, num),
                    document_info: cb.document_info.as_ref().map(|i| {
                        let ii = ib.document_info.clone().unwrap_or_default();
                        BusinessDocumentInfo {
                            document_info: num_out(native, &ii.document_info, i.document_info, num),
                            document_receiver: num_out(
                                native,
                                &ii.document_receiver,
                                i.document_receiver,
                                num,
                            ),
                            receivers: i
                                .receivers
                                .iter()
                                .enumerate()
                                .map(|(k, r)| Receiver {
                                    organ_id: r.organ_id.clone(),
                                    receiver_type: num_out(
                                        native,
                                        ii.receivers
                                            .get(k)
                                            .map(|x| x.receiver_type.as_str())
                                            .unwrap_or(""),
                                        r.receiver_type,
                                        num,
                                    ),
                                })
                                .collect(),
                        }
                    }),
                    replacements: cb
                        .replacements
                        .iter()
                        .map(|r| ReplacementInfo {
                            document_id: r.document_id.clone(),
                            organ_ids: r.organ_ids.clone(),
                        })
                        .collect(),
                    staff: cb.staff.as_ref().map(staff_from_core),
                })
            }
        };
        let mut trace = base.trace.clone();
        if native {
            // The sending DMS stamps the first trace header.
            trace.push(TraceHeader {
                organ_id: doc
                    .from
                    .code
                    .as_ref()
                    .map(|c| export_id(c, directory))
                    .unwrap_or_default(),
                timestamp: format_timestamp(doc.created_at),
            });
        }
        // A message the sending DMS signed goes out exactly as signed: its XML-DSig covers
        // the TraceHeaderList, and the bus's hops are in lienthong's own signed trace.
        if base.signature.is_none() {
            trace.extend(doc.trace.iter().map(|t| TraceHeader {
                organ_id: t.node.to_string(),
                timestamp: format_timestamp(t.at),
            }));
        }
        let attachments = doc
            .attachments
            .iter()
            .map(|a| Attachment {
                content_id: a.content_id.clone(),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                description: a.description.clone(),
                size: a.size,
                sha256: a.sha256,
                content: Vec::new(),
            })
            .collect();
        Ok(EdxmlDocument {
            header,
            trace,
            business,
            signature: base.signature,
            attachments,
            extras: base.extras,
            lines: SourceLines::default(),
        })
    }
}

impl EdxmlStatus {
    /// As [`EdxmlDocument::check_preserved`], for a status notice's `edxml_preserved`.
    pub fn check_preserved(preserved: &[u8]) -> Result<(), Error> {
        match decode_preserved(preserved)? {
            None | Some(Message::Status(_)) => Ok(()),
            Some(Message::Document(_)) => Err(Error::Preserved(HOLDS_DOCUMENT.into())),
        }
    }

    /// As [`EdxmlStatus::to_core_with`] without a directory: From and ResponseFor/OrganId
    /// must be QĐ 20/2020 codes.
    pub fn to_core(&self, now: UnixMillis) -> Result<core::StatusNotice, Error> {
        self.to_core_with(now, None)
    }

    /// The core status notice. From and ResponseFor/OrganId (the agency the notice goes
    /// to) must name agencies, by QĐ 20/2020 codes or aliases `directory` lists;
    /// StatusCode must be one of 01–06, 13, 15, 16. The notice's id is derived from its
    /// content, so that a re-sent notice deduplicates. `now` is the time when the
    /// Timestamp cannot be read.
    pub fn to_core_with(
        &self,
        now: UnixMillis,
        directory: Option<&DirectoryIndex>,
    ) -> Result<core::StatusNotice, Error> {
        let [from, to] = self.routing_ids_pair();
        let from = from.place(directory)?;
        let to = to.place(directory)?;
        let code = self.status_code()?;
        Ok(core::StatusNotice {
            id: self.derived_id(),
            from: org_to_core(&self.from, Some(from)),
            to,
            response_for: response_for_to_core(&self.response_for),
            staff: self.staff.as_ref().map(staff_to_core),
            code,
            description: self.description.clone(),
            at: parse_timestamp(&self.timestamp).unwrap_or(now),
            signature: None,
            trace: Vec::new(),
            edxml_preserved: encode_preserved(&Message::Status(self.skeleton()))?,
            imported: None,
        })
    }

    /// The StatusCode, one of 01–06, 13, 15, 16.
    pub fn status_code(&self) -> Result<StatusCode, Error> {
        StatusCode::parse(&self.status_code).map_err(|e| Error::Import {
            line: self
                .lines
                .of("MessageHeader/StatusCode")
                .max(self.lines.of("MessageHeader")),
            reason: format!("StatusCode: {e}"),
        })
    }

    /// The identifiers the bus routes this notice by: From, then ResponseFor/OrganId.
    pub fn routing_ids(&self) -> Vec<RoutingId> {
        self.routing_ids_pair().into()
    }

    fn routing_ids_pair(&self) -> [RoutingId; 2] {
        let lines = &self.lines;
        [
            RoutingId {
                field: "From/OrganId".into(),
                value: self.from.organ_id.clone(),
                line: lines
                    .of("MessageHeader/From/OrganId")
                    .max(lines.of("MessageHeader")),
            },
            RoutingId {
                field: "ResponseFor/OrganId".into(),
                value: self.response_for.organ_id.clone(),
                line: lines
                    .of("MessageHeader/ResponseFor/OrganId")
                    .max(lines.of("MessageHeader/ResponseFor"))
                    .max(lines.of("MessageHeader")),
            },
        ]
    }

    /// A UUID-shaped id from the notice's sender, document, code, time and description.
    fn derived_id(&self) -> DocumentId {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            "lienthong-edxml/status-id/1",
            &self.from.organ_id,
            &self.response_for.document_id,
            &self.status_code,
            &self.timestamp,
            &self.description,
        ] {
            ctx.update(&(part.len() as u32).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let d = ctx.finish();
        let h: String = d.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        );
        DocumentId::parse(&id).expect("a UUID-shaped id is a valid document id")
    }

    fn skeleton(&self) -> EdxmlStatus {
        let mut s = self.clone();
        clear_org(&mut s.from);
        clear_staff(&mut s.staff);
        clear(&mut s.description);
        s
    }

    /// As [`EdxmlStatus::from_core_with`] without a directory.
    pub fn from_core(n: &core::StatusNotice) -> Result<EdxmlStatus, Error> {
        Self::from_core_with(n, None)
    }

    /// The edXML status message for a core notice: its preserved parts (if it was
    /// imported) with the core values laid over them, the sender and the agency the
    /// notice goes to (ResponseFor/OrganId) written with the `edxml_id` `directory` sets
    /// for them.
    pub fn from_core_with(
        n: &core::StatusNotice,
        directory: Option<&DirectoryIndex>,
    ) -> Result<EdxmlStatus, Error> {
        let (base, native) = match decode_preserved(&n.edxml_preserved)? {
            None => (EdxmlStatus::default(), true),
            Some(Message::Status(s)) => (s, false),
            Some(Message::Document(_)) => return Err(Error::Preserved(HOLDS_DOCUMENT.into())),
        };
        let mut response_for = response_for_from_core(&n.response_for);
        if let Some(id) = directory.and_then(|d| d.edxml_id(&n.to)) {
            response_for.organ_id = id.to_string();
        } else if response_for.organ_id.is_empty() {
            response_for.organ_id = n.to.to_string();
        }
        let status_code = match StatusCode::parse(&base.status_code) {
            Ok(c) if c == n.code => base.status_code.clone(),
            _ => n.code.code().to_string(),
        };
        let timestamp = match parse_timestamp(&base.timestamp) {
            Some(at) if at == n.at => base.timestamp.clone(),
            None if !native => base.timestamp.clone(),
            _ => format_timestamp(n.at),
        };
        let mut trace = base.trace.clone();
        // As for a document: a signed status goes out exactly as signed.
        if base.signature.is_none() {
            trace.extend(n.trace.iter().map(|t| TraceHeader {
                organ_id: t.node.to_string(),
                timestamp: format_timestamp(t.at),
            }));
        }
        Ok(EdxmlStatus {
            from: org_from_core(Some(&base.from), &n.from, directory),
            response_for,
            staff: n.staff.as_ref().map(staff_from_core),
            status_code,
            description: n.description.clone(),
            timestamp,
            trace,
            signature: base.signature,
            extras: base.extras,
            lines: SourceLines::default(),
        })
    }
}
