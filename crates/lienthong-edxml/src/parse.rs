//! Reading a message: from the element tree of [`crate::dom`] to the [`Message`] model.
//!
//! Every element is matched by local name in the edXML namespace (or in none); an element
//! that is not expected where it is — an unknown name, a foreign namespace, a second copy
//! of a single field, a field with child elements — is kept as an [`Extra`] at its place,
//! so that nothing read is lost.
//!
//! Containers are named by logical paths, which the writer uses to put extras back:
//! `edXML`, `edXMLEnvelope`, `edXMLHeader`, `MessageHeader`, `MessageHeader/From`,
//! `MessageHeader/To[i]`, `MessageHeader/Code`, `MessageHeader/PromulgationInfo`,
//! `MessageHeader/DocumentType`, `MessageHeader/SignerInfo`, `MessageHeader/ToPlaces`,
//! `MessageHeader/OtherInfo`, `MessageHeader/OtherInfo/Appendixes`,
//! `MessageHeader/ResponseFor[i]` (documents) or `MessageHeader/ResponseFor` (status),
//! `MessageHeader/StaffInfo`, `TraceHeaderList`, `TraceHeaderList/TraceHeader[i]`,
//! `Bussiness`, `Bussiness/BussinessDocumentInfo`, `Bussiness/BussinessDocumentInfo/ReceiverList`,
//! `Bussiness/BussinessDocumentInfo/ReceiverList/Receiver[i]`, `Bussiness/ReplacementInfoList`,
//! `Bussiness/ReplacementInfoList/ReplacementInfo[i]` and its `/OrganIdList`,
//! `Bussiness/StaffInfo`, `edXMLBody`, `edXMLManifest`, `edXMLManifest/Reference[i]`,
//! `AttachmentEncoded`, `AttachmentEncoded/Attachment[i]` (`i` is the attachment's index
//! in [`EdxmlDocument::attachments`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read, Write};

use crate::attachment::{DigestWriter, decode_base64};
use crate::dom::{self, Element, Node};
use crate::dsig::is_signature;
use crate::error::ParseError;
use crate::limits::Limits;
use crate::model::*;
use crate::stream::Spooled;

/// Where the parser puts an attachment's decoded bytes: given the attachment's
/// description (content still empty), it returns the writer for its content.
pub type AttachmentSink<'s> = dyn FnMut(&Attachment) -> std::io::Result<Box<dyn Write + 's>> + 's;

/// Parses a message, decoding attachments into [`Attachment::content`].
///
/// The base64 text is decoded as it is read from the input, never copied whole.
/// The input must be within the [`crate::limits`].
pub fn parse(input: &[u8]) -> Result<Message, ParseError> {
    from_tree(
        &dom::read(input, Limits::INPUT)?,
        &mut Contents::<io::Sink>::InMemory,
    )
}

/// Parses edXML this crate wrote (with [`crate::write`] from a parsed message, or as an
/// `edxml_preserved` skeleton), decoding attachments as [`parse`] does: the same reader,
/// with limits that leave room for what the writer adds to a message it was given.
pub fn parse_written(input: &[u8]) -> Result<Message, ParseError> {
    from_tree(
        &dom::read(input, Limits::WRITTEN)?,
        &mut Contents::<io::Sink>::InMemory,
    )
}

/// Parses a message, streaming each attachment's decoded bytes into the writer `sink`
/// returns for it (a file, a blob store …); the attachments' `content` stays empty, their
/// `size` and `sha256` are set.
pub fn parse_with(input: &[u8], sink: &mut AttachmentSink<'_>) -> Result<Message, ParseError> {
    from_tree(
        &dom::read(input, Limits::INPUT)?,
        &mut Contents::<io::Sink>::Sink(sink),
    )
}

/// A message read by [`parse_stream`].
#[derive(Debug)]
pub struct StreamedMessage<S> {
    /// The message; each attachment's `size` and `sha256` are set, its `content` is empty.
    pub message: Message,
    /// One per attachment of the message, in order: the spool holding its decoded
    /// content, or `None` when the message carries no content for it (a manifest
    /// Reference without an encoded Attachment).
    pub contents: Vec<Option<S>>,
}

/// Parses a message from `input` (a file), decoding each attachment's base64 as it is read
/// into a new spool from `spool` (a temporary file), so that memory holds the message
/// without its attachments, whatever their size. The same reader, limits and errors as
/// [`parse`], with two differences: a status message must carry no attachment content
/// (which [`parse`] keeps as an unknown element), and the input is checked to be UTF-8 as
/// it is read, not first, so an error before an invalid byte is the one reported, and
/// bytes after the root element are not read at all.
pub fn parse_stream<R: Read, S: Write>(
    input: R,
    mut spool: impl FnMut() -> io::Result<S>,
) -> Result<StreamedMessage<S>, ParseError> {
    let tree = crate::stream::read(input, Limits::INPUT, &mut spool)?;
    let mut contents = Contents::Spooled {
        decoded: tree.contents,
        spool: &mut spool,
        out: Vec::new(),
    };
    let message = from_tree(&tree.root, &mut contents)?;
    let Contents::Spooled { out, .. } = contents else {
        unreachable!("made above")
    };
    Ok(StreamedMessage {
        message,
        contents: out,
    })
}

/// Where the attachments' contents go.
enum Contents<'c, 's, S> {
    /// Into [`Attachment::content`].
    InMemory,
    /// Into the writers the caller's sink returns.
    Sink(&'c mut AttachmentSink<'s>),
    /// Decoded by [`crate::stream`] into spools, found by the line and column of their
    /// `ContentTransferEncoded` element; contents it did not decode go into new spools.
    Spooled {
        decoded: HashMap<(u32, u32), Spooled<S>>,
        spool: &'c mut dyn FnMut() -> io::Result<S>,
        /// One per attachment, in order.
        out: Vec<Option<S>>,
    },
}

/// What a container's reader did with one child element.
enum Take {
    Known,
    /// Read and deliberately left out of the model (an empty ResponseFor).
    Dropped,
    Unknown,
}

#[derive(Default)]
struct Ctx {
    extras: Vec<Extra>,
    lines: BTreeMap<String, u32>,
}

impl Ctx {
    fn line(&mut self, path: String, el: &Element<'_>) {
        self.lines.entry(path).or_insert(el.line);
    }
}

/// Visits the child elements of `el`; `f` gets each child and whether it is the first
/// known one of its name, and says what it did with it. Unknown children become extras
/// of `container`, anchored after the last known sibling.
fn walk<'e, 'a>(
    ctx: &mut Ctx,
    el: &'e Element<'a>,
    container: &str,
    mut f: impl FnMut(&mut Ctx, &'e Element<'a>, bool) -> Take,
) {
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut last: Option<(String, u32)> = None;
    for child in el.elements() {
        let first = dom::is_edxml_ns(child.ns.as_deref()) && !counts.contains_key(&child.local);
        match f(ctx, child, first) {
            Take::Known => {
                let n = counts.entry(child.local.clone()).or_insert(0);
                last = Some((child.local.clone(), *n));
                *n += 1;
            }
            Take::Dropped => {}
            Take::Unknown => ctx.extras.push(Extra {
                container: container.to_string(),
                after: last.clone(),
                element: child.to_owned_element(),
            }),
        }
    }
}

/// Reads a leaf field into `slot` if it is the first of its name and holds only text.
fn set(slot: &mut String, child: &Element<'_>, first: bool) -> Take {
    if !first || child.has_element_children() {
        return Take::Unknown;
    }
    *slot = child.text();
    Take::Known
}

/// Appends a leaf list item.
fn push(list: &mut Vec<String>, child: &Element<'_>) -> Take {
    if child.has_element_children() {
        return Take::Unknown;
    }
    list.push(child.text());
    Take::Known
}

fn edxml<'e>(child: &'e Element<'_>) -> Option<&'e str> {
    dom::is_edxml_ns(child.ns.as_deref()).then_some(child.local.as_str())
}

/// The message in a tree read by [`crate::dom`] or [`crate::stream`].
fn from_tree<S: Write>(
    root: &Element<'_>,
    contents: &mut Contents<'_, '_, S>,
) -> Result<Message, ParseError> {
    if root.local != "edXML" {
        return Err(ParseError::new(
            root.line,
            root.column,
            format!(
                "the root element is <{}>, expected <edXML>: this is not an edXML (QCVN 102:2016) message",
                root.qname()
            ),
        ));
    }
    let mut ctx = Ctx::default();
    let mut envelope = None;
    let mut encoded = None;
    let mut signature = None;
    walk(&mut ctx, root, "edXML", |_, c, first| match edxml(c) {
        Some("edXMLEnvelope") if first => {
            envelope = Some(c);
            Take::Known
        }
        Some("AttachmentEncoded") if first => {
            encoded = Some(c);
            Take::Known
        }
        _ if is_signature(c) && signature.is_none() => {
            signature = Some(c.to_owned_element());
            Take::Known
        }
        _ => Take::Unknown,
    });
    let envelope = envelope.ok_or_else(|| {
        ParseError::new(
            root.line,
            root.column,
            "<edXML> has no edXMLEnvelope: the message has no header",
        )
    })?;
    let mut header = None;
    let mut body = None;
    walk(
        &mut ctx,
        envelope,
        "edXMLEnvelope",
        |_, c, first| match edxml(c) {
            Some("edXMLHeader") if first => {
                header = Some(c);
                Take::Known
            }
            Some("edXMLBody") if first => {
                body = Some(c);
                Take::Known
            }
            _ if is_signature(c) && signature.is_none() => {
                signature = Some(c.to_owned_element());
                Take::Known
            }
            _ => Take::Unknown,
        },
    );
    let header = header.ok_or_else(|| {
        ParseError::new(
            envelope.line,
            envelope.column,
            "edXMLEnvelope has no edXMLHeader: the message has no header",
        )
    })?;
    let mut message_header = None;
    let mut trace_list = None;
    let mut business_el = None;
    walk(&mut ctx, header, "edXMLHeader", |_, c, first| {
        match edxml(c) {
            Some("MessageHeader") if first => {
                message_header = Some(c);
                Take::Known
            }
            Some("TraceHeaderList") if first => {
                trace_list = Some(c);
                Take::Known
            }
            // Some DMSs put Bussiness beside the TraceHeaderList rather than in it.
            Some("Bussiness") if first => {
                business_el = Some(c);
                Take::Known
            }
            _ if is_signature(c) && signature.is_none() => {
                signature = Some(c.to_owned_element());
                Take::Known
            }
            _ => Take::Unknown,
        }
    });
    let mh = message_header.ok_or_else(|| {
        ParseError::new(
            header.line,
            header.column,
            "edXMLHeader has no MessageHeader: neither a document nor a status message",
        )
    })?;
    ctx.line("MessageHeader".into(), mh);

    let mut trace = Vec::new();
    if let Some(list) = trace_list {
        walk(
            &mut ctx,
            list,
            "TraceHeaderList",
            |ctx, c, first| match edxml(c) {
                Some("TraceHeader") => {
                    let path = format!("TraceHeaderList/TraceHeader[{}]", trace.len());
                    let mut t = TraceHeader::default();
                    walk(ctx, c, &path, |_, c, first| match edxml(c) {
                        Some("OrganId") => set(&mut t.organ_id, c, first),
                        Some("Timestamp") => set(&mut t.timestamp, c, first),
                        _ => Take::Unknown,
                    });
                    trace.push(t);
                    Take::Known
                }
                Some("Bussiness") if first && business_el.is_none() => {
                    business_el = Some(c);
                    Take::Known
                }
                _ => Take::Unknown,
            },
        );
    }
    let business = business_el.map(|b| business(&mut ctx, b));

    let is_status = mh.child("StatusCode").is_some();
    if let (true, Some(e), Contents::Spooled { decoded, .. }) = (is_status, encoded, &*contents)
        && !decoded.is_empty()
    {
        // Kept as an unknown element when read from memory; streamed, its text is gone.
        return Err(ParseError::new(
            e.line,
            e.column,
            "a status message carries no attachment, but this one has attachment content in AttachmentEncoded: send it with its document",
        ));
    }
    let mut message = if is_status {
        let mut s = status_header(&mut ctx, mh);
        s.trace = trace;
        s.signature = signature;
        // A status has no business block; keep one that came as read.
        if let (Some(_), Some(el)) = (business, business_el) {
            ctx.extras.push(Extra {
                container: "TraceHeaderList".into(),
                after: None,
                element: el.to_owned_element(),
            });
        }
        Message::Status(s)
    } else {
        let mut d = EdxmlDocument {
            header: document_header(&mut ctx, mh),
            trace,
            business,
            signature,
            ..Default::default()
        };
        d.attachments = attachments(&mut ctx, body, encoded, contents)?;
        Message::Document(d)
    };
    if is_status && (body.is_some() || encoded.is_some()) {
        // A status message carries no attachment; keep whatever came as read.
        if let Some(b) = body {
            keep_whole(&mut ctx, "edXMLEnvelope", "edXMLHeader", b);
        }
        if let Some(e) = encoded {
            keep_whole(&mut ctx, "edXML", "edXMLEnvelope", e);
        }
    }
    ctx.extras.sort_by(|a, b| a.container.cmp(&b.container));
    let lines = SourceLines(ctx.lines);
    match &mut message {
        Message::Document(d) => {
            d.extras = ctx.extras;
            d.lines = lines;
        }
        Message::Status(s) => {
            s.extras = ctx.extras;
            s.lines = lines;
        }
    }
    Ok(message)
}

fn keep_whole(ctx: &mut Ctx, container: &str, after: &str, el: &Element<'_>) {
    ctx.extras.push(Extra {
        container: container.into(),
        after: Some((after.into(), 0)),
        element: el.to_owned_element(),
    });
}

fn organization(ctx: &mut Ctx, el: &Element<'_>, path: &str) -> Organization {
    ctx.line(path.to_string(), el);
    let mut o = Organization::default();
    walk(ctx, el, path, |ctx, c, first| match edxml(c) {
        Some("OrganId") => {
            ctx.line(format!("{path}/OrganId"), c);
            set(&mut o.organ_id, c, first)
        }
        Some("OrganizationInCharge") => set(&mut o.in_charge, c, first),
        Some("OrganName") => set(&mut o.name, c, first),
        Some("OrganAdd") => set(&mut o.address, c, first),
        Some("Email") => set(&mut o.email, c, first),
        Some("Telephone") => set(&mut o.telephone, c, first),
        Some("Fax") => set(&mut o.fax, c, first),
        Some("Website") => set(&mut o.website, c, first),
        _ => Take::Unknown,
    });
    o
}

fn response_for(ctx: &mut Ctx, el: &Element<'_>, path: &str) -> ResponseFor {
    let mut r = ResponseFor::default();
    walk(ctx, el, path, |ctx, c, first| match edxml(c) {
        Some("OrganId") => {
            ctx.line(format!("{path}/OrganId"), c);
            set(&mut r.organ_id, c, first)
        }
        Some("Code") => set(&mut r.code, c, first),
        Some("PromulgationDate") => set(&mut r.promulgation_date, c, first),
        Some("DocumentId") => {
            ctx.line(format!("{path}/DocumentId"), c);
            set(&mut r.document_id, c, first)
        }
        _ => Take::Unknown,
    });
    r
}

fn staff(ctx: &mut Ctx, el: &Element<'_>, path: &str) -> StaffInfo {
    let mut s = StaffInfo::default();
    walk(ctx, el, path, |_, c, first| match edxml(c) {
        Some("Department") => set(&mut s.department, c, first),
        Some("Staff") => set(&mut s.staff, c, first),
        Some("Email") => set(&mut s.email, c, first),
        Some("Mobile") => set(&mut s.mobile, c, first),
        _ => Take::Unknown,
    });
    s
}

fn leaf_list(ctx: &mut Ctx, el: &Element<'_>, path: &str, item: &str) -> Vec<String> {
    let mut v = Vec::new();
    walk(ctx, el, path, |_, c, _| match edxml(c) {
        Some(n) if n == item => push(&mut v, c),
        _ => Take::Unknown,
    });
    v
}

fn document_header(ctx: &mut Ctx, mh: &Element<'_>) -> DocumentHeader {
    let mut h = DocumentHeader::default();
    walk(ctx, mh, "MessageHeader", |ctx, c, first| match edxml(c) {
        Some("From") if first => {
            h.from = organization(ctx, c, "MessageHeader/From");
            Take::Known
        }
        Some("To") => {
            let path = format!("MessageHeader/To[{}]", h.to.len());
            h.to.push(organization(ctx, c, &path));
            Take::Known
        }
        Some("DocumentId") => {
            ctx.line("MessageHeader/DocumentId".into(), c);
            set(&mut h.document_id, c, first)
        }
        Some("Code") if first => {
            walk(ctx, c, "MessageHeader/Code", |_, c, first| match edxml(c) {
                Some("CodeNumber") => set(&mut h.code_number, c, first),
                Some("CodeNotation") => set(&mut h.code_notation, c, first),
                _ => Take::Unknown,
            });
            Take::Known
        }
        Some("PromulgationInfo") if first => {
            walk(
                ctx,
                c,
                "MessageHeader/PromulgationInfo",
                |_, c, first| match edxml(c) {
                    Some("Place") => set(&mut h.promulgation_place, c, first),
                    Some("PromulgationDate") => set(&mut h.promulgation_date, c, first),
                    _ => Take::Unknown,
                },
            );
            Take::Known
        }
        Some("DocumentType") if first => {
            walk(
                ctx,
                c,
                "MessageHeader/DocumentType",
                |_, c, first| match edxml(c) {
                    Some("Type") => set(&mut h.document_type, c, first),
                    Some("TypeDetail") => set(&mut h.document_type_detail, c, first),
                    Some("TypeName") => set(&mut h.document_type_name, c, first),
                    _ => Take::Unknown,
                },
            );
            Take::Known
        }
        Some("Subject") => set(&mut h.subject, c, first),
        Some("Content") => set(&mut h.content, c, first),
        Some("SignerInfo") if first => {
            walk(
                ctx,
                c,
                "MessageHeader/SignerInfo",
                |_, c, first| match edxml(c) {
                    Some("Competence") => set(&mut h.signer_competence, c, first),
                    Some("Position") => set(&mut h.signer_position, c, first),
                    Some("FullName") => set(&mut h.signer_full_name, c, first),
                    _ => Take::Unknown,
                },
            );
            Take::Known
        }
        Some("DueDate") => set(&mut h.due_date, c, first),
        Some("ToPlaces") if first => {
            h.to_places = leaf_list(ctx, c, "MessageHeader/ToPlaces", "Place");
            Take::Known
        }
        Some("OtherInfo") if first => {
            let o = &mut h.other;
            walk(
                ctx,
                c,
                "MessageHeader/OtherInfo",
                |ctx, c, first| match edxml(c) {
                    Some("Priority") => set(&mut o.priority, c, first),
                    Some("SphereOfPromulgation") => set(&mut o.sphere_of_promulgation, c, first),
                    Some("TyperNotation") => set(&mut o.typer_notation, c, first),
                    Some("PromulgationAmount") => set(&mut o.promulgation_amount, c, first),
                    Some("PageAmount") => set(&mut o.page_amount, c, first),
                    Some("Direction") => set(&mut o.direction, c, first),
                    Some("Appendixes") if first => {
                        o.appendixes =
                            leaf_list(ctx, c, "MessageHeader/OtherInfo/Appendixes", "Appendix");
                        Take::Known
                    }
                    _ => Take::Unknown,
                },
            );
            Take::Known
        }
        Some("ResponseFor") => {
            let path = format!("MessageHeader/ResponseFor[{}]", h.response_for.len());
            let mark = ctx.extras.len();
            let r = response_for(ctx, c, &path);
            if r.is_empty() && ctx.extras.len() == mark {
                Take::Dropped
            } else {
                h.response_for.push(r);
                Take::Known
            }
        }
        Some("SteeringType") => set(&mut h.steering_type, c, first),
        _ => Take::Unknown,
    });
    h
}

fn status_header(ctx: &mut Ctx, mh: &Element<'_>) -> EdxmlStatus {
    let mut s = EdxmlStatus::default();
    walk(ctx, mh, "MessageHeader", |ctx, c, first| match edxml(c) {
        Some("From") if first => {
            s.from = organization(ctx, c, "MessageHeader/From");
            Take::Known
        }
        Some("ResponseFor") if first => {
            ctx.line("MessageHeader/ResponseFor".into(), c);
            s.response_for = response_for(ctx, c, "MessageHeader/ResponseFor");
            Take::Known
        }
        Some("StaffInfo") if first => {
            s.staff = Some(staff(ctx, c, "MessageHeader/StaffInfo"));
            Take::Known
        }
        Some("StatusCode") => {
            ctx.line("MessageHeader/StatusCode".into(), c);
            set(&mut s.status_code, c, first)
        }
        Some("Description") => set(&mut s.description, c, first),
        Some("Timestamp") => {
            ctx.line("MessageHeader/Timestamp".into(), c);
            set(&mut s.timestamp, c, first)
        }
        _ => Take::Unknown,
    });
    s
}

fn business(ctx: &mut Ctx, el: &Element<'_>) -> Business {
    ctx.line("Bussiness".into(), el);
    let mut b = Business::default();
    walk(ctx, el, "Bussiness", |ctx, c, first| match edxml(c) {
        Some("DocumentId") => set(&mut b.document_id, c, first),
        Some("BussinessDocType") => {
            ctx.line("Bussiness/BussinessDocType".into(), c);
            set(&mut b.doc_type, c, first)
        }
        Some("BussinessDocReason") => set(&mut b.reason, c, first),
        Some("Paper") => set(&mut b.paper, c, first),
        Some("BussinessDocumentInfo") if first => {
            let mut info = BusinessDocumentInfo::default();
            let path = "Bussiness/BussinessDocumentInfo";
            walk(ctx, c, path, |ctx, c, first| match edxml(c) {
                Some("DocumentInfo") => set(&mut info.document_info, c, first),
                Some("DocumentReceiver") => set(&mut info.document_receiver, c, first),
                Some("ReceiverList") if first => {
                    let list_path = format!("{path}/ReceiverList");
                    walk(ctx, c, &list_path, |ctx, c, _| match edxml(c) {
                        Some("Receiver") => {
                            let p = format!("{list_path}/Receiver[{}]", info.receivers.len());
                            let mut r = Receiver::default();
                            walk(ctx, c, &p, |_, c, first| match edxml(c) {
                                Some("OrganId") => set(&mut r.organ_id, c, first),
                                Some("ReceiverType") => set(&mut r.receiver_type, c, first),
                                _ => Take::Unknown,
                            });
                            info.receivers.push(r);
                            Take::Known
                        }
                        _ => Take::Unknown,
                    });
                    Take::Known
                }
                _ => Take::Unknown,
            });
            b.document_info = Some(info);
            Take::Known
        }
        Some("ReplacementInfoList") if first => {
            let list_path = "Bussiness/ReplacementInfoList";
            walk(ctx, c, list_path, |ctx, c, _| match edxml(c) {
                Some("ReplacementInfo") => {
                    let p = format!("{list_path}/ReplacementInfo[{}]", b.replacements.len());
                    let mut r = ReplacementInfo::default();
                    walk(ctx, c, &p, |ctx, c, first| match edxml(c) {
                        Some("DocumentId") => set(&mut r.document_id, c, first),
                        Some("OrganIdList") if first => {
                            r.organ_ids = leaf_list(ctx, c, &format!("{p}/OrganIdList"), "OrganId");
                            Take::Known
                        }
                        _ => Take::Unknown,
                    });
                    b.replacements.push(r);
                    Take::Known
                }
                _ => Take::Unknown,
            });
            Take::Known
        }
        Some("StaffInfo") if first => {
            b.staff = Some(staff(ctx, c, "Bussiness/StaffInfo"));
            Take::Known
        }
        _ => Take::Unknown,
    });
    b
}

/// Decodes base64 `chunks` into `w`, flushed; its size, SHA-256 and `w`.
fn decode_into<'c, W: Write>(
    chunks: impl Iterator<Item = &'c str>,
    w: W,
) -> Result<(u64, [u8; 32], W), String> {
    let mut w = DigestWriter::new(w);
    decode_base64(chunks, &mut w)?;
    let (size, sha256, mut inner) = w.finish();
    inner.flush().map_err(|e| format!("cannot store it: {e}"))?;
    Ok((size, sha256, inner))
}

/// Strips a `cid:` prefix (any case) and angle brackets from a ContentId.
pub(crate) fn bare_content_id(raw: &str) -> String {
    let t = raw.trim();
    let t = match t.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("cid:") => &t[4..],
        _ => t,
    };
    t.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// One manifest Reference or encoded Attachment before merging.
struct Part<'e, 'a> {
    attachment: Attachment,
    extras: Vec<Extra>,
    encoded: Option<&'e Element<'a>>,
    element: &'e Element<'a>,
}

fn attachment_part<'e, 'a>(ctx: &mut Ctx, el: &'e Element<'a>) -> Part<'e, 'a> {
    let mut local = Ctx::default();
    let mut a = Attachment::default();
    let mut encoded = None;
    let mut raw_cid = String::new();
    walk(&mut local, el, "", |_, c, first| match edxml(c) {
        Some("ContentId") => set(&mut raw_cid, c, first),
        Some("AttachmentName") => set(&mut a.name, c, first),
        Some("ContentType") => set(&mut a.content_type, c, first),
        Some("Description") => set(&mut a.description, c, first),
        Some("ContentTransferEncoded") if first => {
            encoded = Some(c);
            Take::Known
        }
        _ => Take::Unknown,
    });
    a.content_id = bare_content_id(&raw_cid);
    ctx.lines.extend(local.lines);
    Part {
        attachment: a,
        extras: local.extras,
        encoded,
        element: el,
    }
}

fn attachments<S: Write>(
    ctx: &mut Ctx,
    body: Option<&Element<'_>>,
    encoded: Option<&Element<'_>>,
    contents: &mut Contents<'_, '_, S>,
) -> Result<Vec<Attachment>, ParseError> {
    let mut refs = Vec::new();
    if let Some(body) = body {
        let mut manifest = None;
        walk(ctx, body, "edXMLBody", |_, c, first| match edxml(c) {
            Some("edXMLManifest") if first => {
                manifest = Some(c);
                Take::Known
            }
            _ => Take::Unknown,
        });
        if let Some(m) = manifest {
            walk(ctx, m, "edXMLManifest", |ctx, c, _| match edxml(c) {
                Some("Reference") => {
                    refs.push(attachment_part(ctx, c));
                    Take::Known
                }
                _ => Take::Unknown,
            });
        }
    }
    let mut parts = Vec::new();
    if let Some(e) = encoded {
        walk(ctx, e, "AttachmentEncoded", |ctx, c, _| match edxml(c) {
            Some("Attachment") => {
                parts.push(attachment_part(ctx, c));
                Take::Known
            }
            _ => Take::Unknown,
        });
    }
    // Merge: the manifest's order first, then encoded attachments it does not list.
    struct Merged<'e, 'a> {
        attachment: Attachment,
        reference_extras: Vec<Extra>,
        attachment_extras: Vec<Extra>,
        encoded: Option<&'e Element<'a>>,
        element: Option<&'e Element<'a>>,
    }
    let mut merged: Vec<Merged<'_, '_>> = refs
        .into_iter()
        .map(|r| Merged {
            attachment: r.attachment,
            reference_extras: r.extras,
            attachment_extras: Vec::new(),
            encoded: None,
            element: None,
        })
        .collect();
    // An encoded Attachment goes with the first Reference not yet matched that has its
    // ContentId (or, without one, no ContentId and its name). Looked up by that key, not
    // searched: thousands of each would cost the square of their number.
    let key = |a: &Attachment| {
        if a.content_id.is_empty() {
            (false, a.name.clone())
        } else {
            (true, a.content_id.clone())
        }
    };
    let mut unmatched: HashMap<(bool, String), VecDeque<usize>> = HashMap::new();
    for (i, m) in merged.iter().enumerate() {
        unmatched
            .entry(key(&m.attachment))
            .or_default()
            .push_back(i);
    }
    for p in parts {
        let found = unmatched
            .get_mut(&key(&p.attachment))
            .and_then(VecDeque::pop_front);
        let m = match found {
            Some(i) => &mut merged[i],
            None => {
                merged.push(Merged {
                    attachment: Attachment {
                        content_id: p.attachment.content_id.clone(),
                        ..Default::default()
                    },
                    reference_extras: Vec::new(),
                    attachment_extras: Vec::new(),
                    encoded: None,
                    element: None,
                });
                merged.last_mut().expect("just pushed")
            }
        };
        let a = &mut m.attachment;
        for (slot, v) in [
            (&mut a.name, p.attachment.name),
            (&mut a.content_type, p.attachment.content_type),
            (&mut a.description, p.attachment.description),
        ] {
            if !v.is_empty() {
                *slot = v;
            }
        }
        m.attachment_extras = p.extras;
        m.encoded = p.encoded;
        m.element = Some(p.element);
    }
    let mut out = Vec::with_capacity(merged.len());
    for (i, m) in merged.into_iter().enumerate() {
        for (prefix, extras) in [
            ("edXMLManifest/Reference", m.reference_extras),
            ("AttachmentEncoded/Attachment", m.attachment_extras),
        ] {
            for mut x in extras {
                x.container = format!("{prefix}[{i}]");
                ctx.extras.push(x);
            }
        }
        let mut a = m.attachment;
        if let Some(el) = m.element {
            ctx.line(format!("AttachmentEncoded/Attachment[{i}]"), el);
        }
        if let Some(enc) = m.encoded {
            let chunks = enc.children.iter().filter_map(|n| match n {
                Node::Text(t) => Some(t.as_ref()),
                _ => None,
            });
            let bad = |reason: String| {
                ParseError::new(
                    enc.line,
                    enc.column,
                    format!(
                        "attachment {:?} (ContentId {:?}): {reason}",
                        a.name, a.content_id
                    ),
                )
            };
            match contents {
                Contents::Sink(sink) => {
                    let w = sink(&a).map_err(|e| bad(format!("cannot store it: {e}")))?;
                    let (size, sha256, _) = decode_into(chunks, w).map_err(bad)?;
                    a.size = size;
                    a.sha256 = sha256;
                }
                Contents::InMemory => {
                    let mut content = Vec::new();
                    decode_base64(chunks, &mut content).map_err(bad)?;
                    a.set_content(content);
                }
                Contents::Spooled {
                    decoded,
                    spool,
                    out,
                } => {
                    let spooled = match decoded.remove(&(enc.line, enc.column)) {
                        Some(s) => s,
                        None => spool()
                            .map_err(|e| format!("cannot store it: {e}"))
                            .and_then(|w| decode_into(chunks, w))
                            .map(|(size, sha256, w)| (w, size, sha256)),
                    };
                    let (w, size, sha256) = spooled.map_err(bad)?;
                    a.size = size;
                    a.sha256 = sha256;
                    out.push(Some(w));
                }
            }
        } else {
            a.set_content(Vec::new());
            if let Contents::Spooled { out, .. } = contents {
                out.push(None);
            }
        }
        out.push(a);
    }
    Ok(out)
}
