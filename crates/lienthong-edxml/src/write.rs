//! The strict writer: a [`Message`] as edXML in the QCVN 102:2016 namespace, shaped like
//! the messages DMSs exchange — root `edXML`, `edXMLEnvelope` with `edXMLHeader` and
//! `edXMLBody`, `AttachmentEncoded` outside the envelope, every edXML element with the
//! `edXML:` prefix (declared on the root, together with the default namespace), UTF-8,
//! LF line ends, `cid:` content ids, one-line base64.
//!
//! Known fields are written in the order of the standard; an empty field is left out.
//! Extras go back into their container right after the known element they followed (an
//! empty known element is written when an extra needs it as its anchor), the Signature
//! after the TraceHeaderList.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use crate::attachment::{DigestWriter, encode_base64};
use crate::dom::{EDXML_NS, Element, Node};
use crate::error::Error;
use crate::model::*;

/// Where the writer gets the content of an attachment the message does not hold.
pub type AttachmentSource<'s> = dyn FnMut(&Attachment) -> io::Result<Box<dyn Read + 's>> + 's;

/// Writes `message` to bytes. Every attachment must hold its content (see
/// [`Attachment::has_content`]); otherwise use [`write_with`].
pub fn write(message: &Message) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write_to(&mut out, message)?;
    Ok(out)
}

/// Writes `message` into `out`.
pub fn write_to(out: &mut dyn Write, message: &Message) -> Result<(), Error> {
    write_with(out, message, &mut |a: &Attachment| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "attachment {:?} has no content in the message; supply it with write_with",
                a.name
            ),
        ))
    })
}

/// Writes `message` into `out`, reading the content of attachments that do not hold it
/// from `source`; that content must match the attachment's size and SHA-256.
pub fn write_with(
    out: &mut dyn Write,
    message: &Message,
    source: &mut AttachmentSource<'_>,
) -> Result<(), Error> {
    write_impl(out, message, source, true).map(drop)
}

/// Writes `message` without indentation (for `edxml_preserved`).
pub(crate) fn write_compact(out: &mut dyn Write, message: &Message) -> Result<(), Error> {
    write_impl(
        out,
        message,
        &mut |_: &Attachment| Ok(Box::new(io::empty())),
        false,
    )
    .map(drop)
}

/// Writes `message`; returns how many times an extra was looked at (see [`Pending`]).
fn write_impl(
    out: &mut dyn Write,
    message: &Message,
    source: &mut AttachmentSource<'_>,
    pretty: bool,
) -> Result<u64, Error> {
    let mut w = Out {
        out: io::BufWriter::new(out),
        extras: Pending::new(message.extras()),
        frames: Vec::new(),
        pretty,
    };
    w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")?;
    w.raw(&format!(
        "<edXML xmlns=\"{EDXML_NS}\" xmlns:edXML=\"{EDXML_NS}\">"
    ))?;
    w.frames.push(Frame::new("", "edXML"));
    w.extras_after(None)?;
    w.open("edXMLEnvelope", "edXMLEnvelope")?;
    w.open("edXMLHeader", "edXMLHeader")?;
    match message {
        Message::Document(d) => {
            document_header(&mut w, &d.header)?;
            trace_list(&mut w, &d.trace, d.business.as_ref())?;
            if let Some(sig) = &d.signature {
                w.element("Signature", sig)?;
            }
        }
        Message::Status(s) => {
            status_header(&mut w, s)?;
            trace_list(&mut w, &s.trace, None)?;
            if let Some(sig) = &s.signature {
                w.element("Signature", sig)?;
            }
        }
    }
    w.close()?; // edXMLHeader
    let attachments: &[Attachment] = match message {
        Message::Document(d) => &d.attachments,
        Message::Status(_) => &[],
    };
    if !attachments.is_empty() || w.wanted("edXMLBody", "edXMLBody") {
        w.open("edXMLBody", "edXMLBody")?;
        if !attachments.is_empty() || w.wanted("edXMLManifest", "edXMLManifest") {
            w.open_with("edXMLManifest", "edXMLManifest", " version=\"1.0\"")?;
            for (i, a) in attachments.iter().enumerate() {
                w.open("Reference", format!("edXMLManifest/Reference[{i}]"))?;
                w.leaf("ContentId", &cid(&a.content_id))?;
                w.leaf("AttachmentName", &a.name)?;
                w.leaf("Description", &a.description)?;
                w.leaf("ContentType", &a.content_type)?;
                w.close()?;
            }
            w.close()?;
        }
        w.close()?;
    }
    w.close()?; // edXMLEnvelope
    if !attachments.is_empty() || w.wanted("AttachmentEncoded", "AttachmentEncoded") {
        w.open("AttachmentEncoded", "AttachmentEncoded")?;
        for (i, a) in attachments.iter().enumerate() {
            w.open("Attachment", format!("AttachmentEncoded/Attachment[{i}]"))?;
            w.leaf("ContentId", &cid(&a.content_id))?;
            w.leaf("AttachmentName", &a.name)?;
            w.leaf("Description", &a.description)?;
            w.leaf("ContentType", &a.content_type)?;
            w.indent()?;
            w.raw("<edXML:ContentTransferEncoded>")?;
            if a.has_content() {
                encode_base64(&mut &a.content[..], &mut w.out)?;
            } else {
                let mut reader = DigestReader::new(source(a)?);
                encode_base64(&mut reader, &mut w.out)?;
                let (size, sha256) = reader.finish();
                if size != a.size || sha256 != a.sha256 {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the content supplied for attachment {:?} is {size} bytes with another SHA-256 than the {} bytes the message describes",
                            a.name, a.size
                        ),
                    )));
                }
            }
            w.raw("</edXML:ContentTransferEncoded>")?;
            w.known("ContentTransferEncoded")?;
            w.close()?;
        }
        w.close()?;
    }
    // Extras whose container the writer never opened are written in the root, so that
    // nothing read is lost.
    for i in w.extras.left() {
        w.write_extra(i)?;
    }
    w.frames.pop();
    w.indent()?;
    w.raw("</edXML>\n")?;
    w.out.flush()?;
    Ok(w.extras.examined)
}

fn cid(content_id: &str) -> String {
    if content_id.is_empty() {
        String::new()
    } else {
        format!("cid:{content_id}")
    }
}

fn organization(
    w: &mut Out<'_, '_>,
    name: &'static str,
    path: String,
    o: &Organization,
) -> io::Result<()> {
    w.open(name, path)?;
    w.leaf("OrganId", &o.organ_id)?;
    w.leaf("OrganizationInCharge", &o.in_charge)?;
    w.leaf("OrganName", &o.name)?;
    w.leaf("OrganAdd", &o.address)?;
    w.leaf("Email", &o.email)?;
    w.leaf("Telephone", &o.telephone)?;
    w.leaf("Fax", &o.fax)?;
    w.leaf("Website", &o.website)?;
    w.close()
}

fn response_for(w: &mut Out<'_, '_>, path: String, r: &ResponseFor) -> io::Result<()> {
    w.open("ResponseFor", path)?;
    w.leaf("OrganId", &r.organ_id)?;
    w.leaf("Code", &r.code)?;
    w.leaf("PromulgationDate", &r.promulgation_date)?;
    w.leaf("DocumentId", &r.document_id)?;
    w.close()
}

fn staff(w: &mut Out<'_, '_>, path: &str, s: &StaffInfo) -> io::Result<()> {
    w.open("StaffInfo", path)?;
    w.leaf("Department", &s.department)?;
    w.leaf("Staff", &s.staff)?;
    w.leaf("Email", &s.email)?;
    w.leaf("Mobile", &s.mobile)?;
    w.close()
}

fn leaf_list(
    w: &mut Out<'_, '_>,
    name: &'static str,
    path: &str,
    item: &'static str,
    items: &[String],
) -> io::Result<()> {
    if items.is_empty() && !w.wanted(name, path) {
        return Ok(());
    }
    w.open(name, path)?;
    for i in items {
        w.item(item, i)?;
    }
    w.close()
}

fn document_header(w: &mut Out<'_, '_>, h: &DocumentHeader) -> io::Result<()> {
    w.open("MessageHeader", "MessageHeader")?;
    organization(w, "From", "MessageHeader/From".into(), &h.from)?;
    for (i, to) in h.to.iter().enumerate() {
        organization(w, "To", format!("MessageHeader/To[{i}]"), to)?;
    }
    if !(h.code_number.is_empty() && h.code_notation.is_empty())
        || w.wanted("Code", "MessageHeader/Code")
    {
        w.open("Code", "MessageHeader/Code")?;
        w.leaf("CodeNumber", &h.code_number)?;
        w.leaf("CodeNotation", &h.code_notation)?;
        w.close()?;
    }
    if !(h.promulgation_place.is_empty() && h.promulgation_date.is_empty())
        || w.wanted("PromulgationInfo", "MessageHeader/PromulgationInfo")
    {
        w.open("PromulgationInfo", "MessageHeader/PromulgationInfo")?;
        w.leaf("Place", &h.promulgation_place)?;
        w.leaf("PromulgationDate", &h.promulgation_date)?;
        w.close()?;
    }
    if !(h.document_type.is_empty()
        && h.document_type_detail.is_empty()
        && h.document_type_name.is_empty())
        || w.wanted("DocumentType", "MessageHeader/DocumentType")
    {
        w.open("DocumentType", "MessageHeader/DocumentType")?;
        w.leaf("Type", &h.document_type)?;
        w.leaf("TypeDetail", &h.document_type_detail)?;
        w.leaf("TypeName", &h.document_type_name)?;
        w.close()?;
    }
    w.leaf("Subject", &h.subject)?;
    w.leaf("Content", &h.content)?;
    if !(h.signer_competence.is_empty()
        && h.signer_position.is_empty()
        && h.signer_full_name.is_empty())
        || w.wanted("SignerInfo", "MessageHeader/SignerInfo")
    {
        w.open("SignerInfo", "MessageHeader/SignerInfo")?;
        w.leaf("Competence", &h.signer_competence)?;
        w.leaf("Position", &h.signer_position)?;
        w.leaf("FullName", &h.signer_full_name)?;
        w.close()?;
    }
    w.leaf("DueDate", &h.due_date)?;
    leaf_list(
        w,
        "ToPlaces",
        "MessageHeader/ToPlaces",
        "Place",
        &h.to_places,
    )?;
    let o = &h.other;
    if *o != OtherInfo::default() || w.wanted("OtherInfo", "MessageHeader/OtherInfo") {
        w.open("OtherInfo", "MessageHeader/OtherInfo")?;
        w.leaf("Priority", &o.priority)?;
        w.leaf("SphereOfPromulgation", &o.sphere_of_promulgation)?;
        w.leaf("TyperNotation", &o.typer_notation)?;
        w.leaf("PromulgationAmount", &o.promulgation_amount)?;
        w.leaf("PageAmount", &o.page_amount)?;
        w.leaf("Direction", &o.direction)?;
        leaf_list(
            w,
            "Appendixes",
            "MessageHeader/OtherInfo/Appendixes",
            "Appendix",
            &o.appendixes,
        )?;
        w.close()?;
    }
    for (i, r) in h.response_for.iter().enumerate() {
        response_for(w, format!("MessageHeader/ResponseFor[{i}]"), r)?;
    }
    w.leaf("SteeringType", &h.steering_type)?;
    w.leaf("DocumentId", &h.document_id)?;
    w.close()
}

fn status_header(w: &mut Out<'_, '_>, s: &EdxmlStatus) -> io::Result<()> {
    w.open("MessageHeader", "MessageHeader")?;
    organization(w, "From", "MessageHeader/From".into(), &s.from)?;
    response_for(w, "MessageHeader/ResponseFor".into(), &s.response_for)?;
    if let Some(st) = &s.staff {
        staff(w, "MessageHeader/StaffInfo", st)?;
    }
    // Always written: it is what makes the message a status.
    w.item("StatusCode", &s.status_code)?;
    w.leaf("Description", &s.description)?;
    w.leaf("Timestamp", &s.timestamp)?;
    w.close()
}

fn trace_list(
    w: &mut Out<'_, '_>,
    trace: &[TraceHeader],
    business: Option<&Business>,
) -> io::Result<()> {
    if trace.is_empty() && business.is_none() && !w.wanted("TraceHeaderList", "TraceHeaderList") {
        return Ok(());
    }
    w.open("TraceHeaderList", "TraceHeaderList")?;
    for (i, t) in trace.iter().enumerate() {
        w.open("TraceHeader", format!("TraceHeaderList/TraceHeader[{i}]"))?;
        w.leaf("OrganId", &t.organ_id)?;
        w.leaf("Timestamp", &t.timestamp)?;
        w.close()?;
    }
    if let Some(b) = business {
        w.open("Bussiness", "Bussiness")?;
        w.leaf("DocumentId", &b.document_id)?;
        w.leaf("BussinessDocType", &b.doc_type)?;
        w.leaf("BussinessDocReason", &b.reason)?;
        w.leaf("Paper", &b.paper)?;
        if let Some(info) = &b.document_info {
            let path = "Bussiness/BussinessDocumentInfo";
            w.open("BussinessDocumentInfo", path)?;
            w.leaf("DocumentInfo", &info.document_info)?;
            w.leaf("DocumentReceiver", &info.document_receiver)?;
            let list = "Bussiness/BussinessDocumentInfo/ReceiverList";
            if !info.receivers.is_empty() || w.wanted("ReceiverList", list) {
                w.open("ReceiverList", list)?;
                for (i, r) in info.receivers.iter().enumerate() {
                    w.open("Receiver", format!("{list}/Receiver[{i}]"))?;
                    w.leaf("OrganId", &r.organ_id)?;
                    w.leaf("ReceiverType", &r.receiver_type)?;
                    w.close()?;
                }
                w.close()?;
            }
            w.close()?;
        }
        let list = "Bussiness/ReplacementInfoList";
        if !b.replacements.is_empty() || w.wanted("ReplacementInfoList", list) {
            w.open("ReplacementInfoList", list)?;
            for (i, r) in b.replacements.iter().enumerate() {
                let path = format!("{list}/ReplacementInfo[{i}]");
                w.open("ReplacementInfo", path.clone())?;
                w.leaf("DocumentId", &r.document_id)?;
                leaf_list(
                    w,
                    "OrganIdList",
                    &format!("{path}/OrganIdList"),
                    "OrganId",
                    &r.organ_ids,
                )?;
                w.close()?;
            }
            w.close()?;
        }
        if let Some(s) = &b.staff {
            staff(w, "Bussiness/StaffInfo", s)?;
        }
        w.close()?;
    }
    w.close()
}

/// One open known container.
struct Frame {
    name: &'static str,
    path: String,
    /// Known children written so far, by name.
    counts: HashMap<&'static str, u32>,
}

impl Frame {
    fn new(name: &'static str, path: impl Into<String>) -> Self {
        Frame {
            name,
            path: path.into(),
            counts: HashMap::new(),
        }
    }
}

/// An extra's place: its container, and the known element it follows (`None`: at the
/// container's start), the n-th of its name.
type Place<'a> = (&'a str, Option<(&'a str, u32)>);

/// The message's extras, found by container and by the known element they follow, and
/// which are still to be written: each lookup looks at the extras it finds, not at all of
/// them, since a message may hold tens of thousands of both extras and known elements.
struct Pending<'m> {
    extras: &'m [Extra],
    done: Vec<bool>,
    /// Extras by container, in order.
    by_container: HashMap<&'m str, Vec<usize>>,
    /// Extras by container and the known element they follow (`None`: at its start).
    by_anchor: HashMap<Place<'m>, Vec<usize>>,
    /// Extras not written yet under a path: in the container of that path or below it.
    left_under: HashMap<&'m str, usize>,
    /// Extras looked at so far, for the test that proves the writer linear.
    examined: u64,
}

impl<'m> Pending<'m> {
    fn new(extras: &'m [Extra]) -> Self {
        let mut p = Pending {
            extras,
            done: vec![false; extras.len()],
            by_container: HashMap::new(),
            by_anchor: HashMap::new(),
            left_under: HashMap::new(),
            examined: 0,
        };
        for (i, x) in extras.iter().enumerate() {
            let container = x.container.as_str();
            p.by_container.entry(container).or_default().push(i);
            let anchor = x.after.as_ref().map(|(n, k)| (n.as_str(), *k));
            p.by_anchor.entry((container, anchor)).or_default().push(i);
            for path in Self::paths(container) {
                *p.left_under.entry(path).or_default() += 1;
            }
        }
        p
    }

    /// `container` and the paths it is under: `A/B/C`, `A/B`, `A`.
    fn paths(container: &str) -> impl Iterator<Item = &str> {
        std::iter::once(container).chain(
            container
                .match_indices('/')
                .map(move |(at, _)| &container[..at]),
        )
    }

    fn mark_written(&mut self, i: usize) {
        self.done[i] = true;
        for path in Self::paths(&self.extras[i].container) {
            if let Some(n) = self.left_under.get_mut(path) {
                *n -= 1;
            }
        }
    }

    /// Whether an extra is still to be written in `path` or below it.
    fn left_under(&self, path: &str) -> bool {
        self.left_under.get(path).is_some_and(|&n| n > 0)
    }

    /// Whether an extra of `container` that follows `anchor` is still to be written.
    fn left_after(&mut self, container: &str, anchor: (&str, u32)) -> bool {
        let by_anchor: &HashMap<Place<'_>, Vec<usize>> = &self.by_anchor;
        let Some(list) = by_anchor.get(&(container, Some(anchor))) else {
            return false;
        };
        self.examined += list.len() as u64;
        list.iter().any(|&i| !self.done[i])
    }

    /// The extras of `container` that follow `anchor`, still to be written, in order.
    /// (The writer asks once for each: a container path is opened once, and each known
    /// element written in it is a new anchor.)
    fn after(&mut self, container: &str, anchor: Option<(&str, u32)>) -> Vec<usize> {
        let by_anchor: &HashMap<Place<'_>, Vec<usize>> = &self.by_anchor;
        undone(
            &self.done,
            &mut self.examined,
            by_anchor.get(&(container, anchor)),
        )
    }

    /// The extras of `container` still to be written, in order; asked for when the
    /// container closes.
    fn within(&mut self, container: &str) -> Vec<usize> {
        let by_container: &HashMap<&str, Vec<usize>> = &self.by_container;
        undone(&self.done, &mut self.examined, by_container.get(container))
    }

    /// Every extra still to be written, in order.
    fn left(&mut self) -> Vec<usize> {
        self.examined += self.extras.len() as u64;
        (0..self.extras.len()).filter(|&i| !self.done[i]).collect()
    }
}

/// The extras of `list` not written yet.
fn undone(done: &[bool], examined: &mut u64, list: Option<&Vec<usize>>) -> Vec<usize> {
    let list = list.map(Vec::as_slice).unwrap_or_default();
    *examined += list.len() as u64;
    list.iter().copied().filter(|&i| !done[i]).collect()
}

struct Out<'m, 'o> {
    out: io::BufWriter<&'o mut dyn Write>,
    extras: Pending<'m>,
    frames: Vec<Frame>,
    /// Newlines and indentation between known elements.
    pretty: bool,
}

impl Out<'_, '_> {
    fn raw(&mut self, s: &str) -> io::Result<()> {
        self.out.write_all(s.as_bytes())
    }

    fn indent(&mut self) -> io::Result<()> {
        if !self.pretty {
            return Ok(());
        }
        self.out.write_all(b"\n")?;
        for _ in 0..self.frames.len() {
            self.out.write_all(b"  ")?;
        }
        Ok(())
    }

    fn top(&self) -> &Frame {
        self.frames.last().expect("the root frame is open")
    }

    /// Whether an element `name` at `path` must be written although it has no content:
    /// an extra lives in it, or follows it in the current container.
    fn wanted(&mut self, name: &str, path: &str) -> bool {
        if self.extras.left_under(path) {
            return true;
        }
        let top = self.frames.last().expect("the root frame is open");
        let nth = top.counts.get(name).copied().unwrap_or(0);
        self.extras.left_after(&top.path, (name, nth))
    }

    fn open(&mut self, name: &'static str, path: impl Into<String>) -> io::Result<()> {
        self.open_with(name, path, "")
    }

    fn open_with(
        &mut self,
        name: &'static str,
        path: impl Into<String>,
        attrs: &str,
    ) -> io::Result<()> {
        self.indent()?;
        self.raw(&format!("<edXML:{name}{attrs}>"))?;
        self.frames.push(Frame::new(name, path));
        self.extras_after(None)
    }

    fn close(&mut self) -> io::Result<()> {
        let path = self.top().path.clone();
        for i in self.extras.within(&path) {
            self.write_extra(i)?;
        }
        let frame = self.frames.pop().expect("a frame is open");
        self.indent()?;
        self.raw(&format!("</edXML:{}>", frame.name))?;
        self.known(frame.name)
    }

    /// Records that a known element `name` was written in the current container and
    /// writes the extras that followed it.
    fn known(&mut self, name: &'static str) -> io::Result<()> {
        let Some(top) = self.frames.last_mut() else {
            return Ok(());
        };
        let n = top.counts.entry(name).or_insert(0);
        let nth = *n;
        *n += 1;
        self.extras_after(Some((name, nth)))
    }

    fn extras_after(&mut self, anchor: Option<(&str, u32)>) -> io::Result<()> {
        let path = self.top().path.clone();
        for i in self.extras.after(&path, anchor) {
            self.write_extra(i)?;
        }
        Ok(())
    }

    fn write_extra(&mut self, i: usize) -> io::Result<()> {
        self.extras.mark_written(i);
        self.indent()?;
        let el = &self.extras.extras[i].element;
        write_element(&mut self.out, el, &mut root_scope())
    }

    /// A text field; left out when empty unless an extra needs it.
    fn leaf(&mut self, name: &'static str, value: &str) -> io::Result<()> {
        if value.is_empty() && !self.wanted(name, "\0") {
            return Ok(());
        }
        self.item(name, value)
    }

    /// A text item of a list, written even when empty.
    fn item(&mut self, name: &'static str, value: &str) -> io::Result<()> {
        self.indent()?;
        self.raw(&format!(
            "<edXML:{name}>{}</edXML:{name}>",
            escape_text(value)
        ))?;
        self.known(name)
    }

    /// A kept element written as a known child (the Signature).
    fn element(&mut self, name: &'static str, el: &Element<'_>) -> io::Result<()> {
        self.indent()?;
        write_element(&mut self.out, el, &mut root_scope())?;
        self.known(name)
    }
}

/// The namespaces in scope inside the root the writer opens.
fn root_scope() -> Vec<(String, String)> {
    vec![
        (String::new(), EDXML_NS.to_string()),
        ("edXML".to_string(), EDXML_NS.to_string()),
    ]
}

fn lookup<'s>(scope: &'s [(String, String)], prefix: &str) -> Option<&'s str> {
    if prefix == "xml" {
        return Some("http://www.w3.org/XML/1998/namespace");
    }
    scope
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .and_then(|(_, u)| (!u.is_empty()).then_some(u.as_str()))
}

/// Writes a kept element, declaring whatever namespaces its names need in `scope`.
pub(crate) fn write_element(
    out: &mut dyn Write,
    el: &Element<'_>,
    scope: &mut Vec<(String, String)>,
) -> io::Result<()> {
    let mark = scope.len();
    let mut decls: Vec<(String, String)> = Vec::new();
    let mut declare = |scope: &mut Vec<(String, String)>, p: &str, u: &str| {
        if lookup(scope, p) != Some(u) && !(u.is_empty() && lookup(scope, p).is_none()) {
            decls.retain(|(q, _)| q != p);
            decls.push((p.to_string(), u.to_string()));
            scope.push((p.to_string(), u.to_string()));
        }
    };
    for (p, u) in &el.ns_decls {
        declare(scope, p, u);
    }
    let prefix = el.prefix.as_deref().unwrap_or("");
    match (&el.ns, prefix) {
        (Some(ns), p) => declare(scope, p, ns),
        (None, "") => declare(scope, "", ""),
        (None, _) => {}
    }
    for a in &el.attrs {
        if let (Some(ns), Some(p)) = (&a.ns, &a.prefix) {
            declare(scope, p, ns);
        }
    }
    let mut s = format!("<{}", el.qname());
    for (p, u) in &decls {
        if p.is_empty() {
            s.push_str(&format!(" xmlns=\"{}\"", escape_attr(u)));
        } else {
            s.push_str(&format!(" xmlns:{p}=\"{}\"", escape_attr(u)));
        }
    }
    for a in &el.attrs {
        let name = match &a.prefix {
            Some(p) => format!("{p}:{}", a.local),
            None => a.local.clone(),
        };
        s.push_str(&format!(" {name}=\"{}\"", escape_attr(&a.value)));
    }
    if el.children.is_empty() {
        s.push_str("/>");
        out.write_all(s.as_bytes())?;
    } else {
        s.push('>');
        out.write_all(s.as_bytes())?;
        for child in &el.children {
            match child {
                Node::Element(e) => write_element(out, e, scope)?,
                Node::Text(t) => out.write_all(escape_text(t).as_bytes())?,
                Node::Comment(c) => write!(out, "<!--{c}-->")?,
            }
        }
        write!(out, "</{}>", el.qname())?;
    }
    scope.truncate(mark);
    Ok(())
}

pub(crate) fn escape_text(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '\r']) {
        return s.into();
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\r' => o.push_str("&#13;"),
            c => o.push(c),
        }
    }
    o.into()
}

fn escape_attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            c => o.push(c),
        }
    }
    o
}

/// A reader that counts and hashes what passes through it.
struct DigestReader<R: Read> {
    inner: R,
    sink: DigestWriter<io::Sink>,
}

impl<R: Read> DigestReader<R> {
    fn new(inner: R) -> Self {
        DigestReader {
            inner,
            sink: DigestWriter::new(io::sink()),
        }
    }
    fn finish(self) -> (u64, [u8; 32]) {
        let (size, sha, _) = self.sink.finish();
        (size, sha)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_are_looked_up_not_searched_for_every_known_element() {
        // 2,000 trace headers are written while 2,000 unknown elements wait for their
        // place after the envelope. Searching every extra for every known element looked
        // at them tens of millions of times (a minute for 30,000 of each).
        let n = 2_000;
        let xml = format!(
            "<edXML><edXMLEnvelope><edXMLHeader><MessageHeader><From><OrganId>000.00.00.H41</OrganId></From>\
             <DocumentId>d</DocumentId></MessageHeader><TraceHeaderList>{}</TraceHeaderList></edXMLHeader>\
             </edXMLEnvelope>{}</edXML>",
            "<TraceHeader><OrganId>x</OrganId></TraceHeader>".repeat(n),
            "<X/>".repeat(n)
        );
        let message = crate::parse(xml.as_bytes()).unwrap();
        assert_eq!(message.extras().len(), n);
        let mut out = Vec::new();
        let examined = write_impl(
            &mut out,
            &message,
            &mut |_: &Attachment| Ok(Box::new(io::empty())),
            true,
        )
        .unwrap();
        assert!(examined <= 4 * n as u64, "{examined} looks at {n} extras");
        assert_eq!(crate::parse(&out).unwrap(), message);
    }
}
