//! Canonical bytes: the exact bytes a signature covers, defined here and nowhere else, so
//! that they do not depend on protobuf field order, unknown fields or default-value
//! elision.
//!
//! Encoding: a domain tag line (`lienthong/document/v1\n` …), then every field in a fixed
//! order; a string or byte string is its length as u32 big-endian followed by its bytes; a
//! number is u64 (or i64) big-endian; an optional value is a 0/1 byte then the value; a
//! list is its count as u32 big-endian then its items. The sender's signature and the hop
//! trace are not covered by the document bytes (hops append to the trace; each trace entry
//! is signed by its node over [`trace_entry_bytes`]).

use crate::directory::Directory;
use crate::document::{Document, Imported, Organization, ResponseFor, StaffInfo};
use crate::external::ExternalDirectory;
use crate::sign::sha256;
use crate::status::{Receipt, StatusNotice};
use crate::{DocumentId, NodeId, UnixMillis};

struct Canon(Vec<u8>);

impl Canon {
    fn new(tag: &str) -> Self {
        let mut v = Vec::with_capacity(512);
        v.extend_from_slice(tag.as_bytes());
        v.push(b'\n');
        Canon(v)
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn i64(&mut self, n: i64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn flag(&mut self, present: bool) -> &mut Self {
        self.0.push(present as u8);
        self
    }
    fn count(&mut self, n: usize) -> &mut Self {
        self.0.extend_from_slice(&(n as u32).to_be_bytes());
        self
    }
    fn strs(&mut self, items: &[String]) -> &mut Self {
        self.count(items.len());
        for s in items {
            self.str(s);
        }
        self
    }
    /// A trailer present only on messages a bridge imported, so that every other
    /// message's bytes (and signatures made before bridges existed) stay as they were:
    /// `imported` then the bridge, the platform id and the XML-DSig finding.
    fn imported(&mut self, imported: &Option<Imported>) -> &mut Self {
        if let Some(i) = imported {
            self.str("imported")
                .str(i.bridge.as_str())
                .str(&i.platform_id)
                .str(&i.dsig);
        }
        self
    }
    fn organization(&mut self, o: &Organization) -> &mut Self {
        self.str(o.code.as_ref().map(|c| c.as_str()).unwrap_or(""))
            .str(&o.in_charge)
            .str(&o.name)
            .str(&o.address)
            .str(&o.email)
            .str(&o.telephone)
            .str(&o.fax)
            .str(&o.website)
    }
    fn response_for(&mut self, r: &ResponseFor) -> &mut Self {
        self.str(&r.organ_id)
            .str(&r.code)
            .str(&r.promulgation_date)
            .str(&r.document_id)
    }
    fn staff(&mut self, s: &Option<StaffInfo>) -> &mut Self {
        self.flag(s.is_some());
        if let Some(s) = s {
            self.str(&s.department)
                .str(&s.staff)
                .str(&s.email)
                .str(&s.mobile);
        }
        self
    }
}

/// The bytes the sending agency signs: header, business block and attachment digests.
pub fn document_bytes(d: &Document) -> Vec<u8> {
    let mut c = Canon::new("lienthong/document/v1");
    c.str(d.id.as_str()).organization(&d.from).count(d.to.len());
    for o in &d.to {
        c.organization(o);
    }
    let h = &d.header;
    c.str(&h.code.number)
        .str(&h.code.notation)
        .str(&h.promulgation.place)
        .str(&h.promulgation.date)
        .u64(h.document_type.kind.into())
        .u64(h.document_type.detail.into())
        .str(&h.document_type.name)
        .str(&h.subject)
        .str(&h.content)
        .str(&h.signer.competence)
        .str(&h.signer.position)
        .str(&h.signer.full_name)
        .str(&h.due_date)
        .strs(&h.to_places)
        .u64(h.other.priority as u64)
        .str(&h.other.sphere_of_promulgation)
        .str(&h.other.typist_notation)
        .u64(h.other.promulgation_amount.into())
        .u64(h.other.page_amount.into())
        .strs(&h.other.appendixes)
        .count(h.response_for.len());
    for r in &h.response_for {
        c.response_for(r);
    }
    c.u64(h.steering_type.into());
    let b = &d.business;
    c.u64(b.business_type as u64)
        .str(&b.reason)
        .str(&b.referenced_document_id)
        .u64(b.paper.into())
        .flag(b.document_info.is_some());
    if let Some(info) = &b.document_info {
        c.u64(info.document_info.into())
            .u64(info.document_receiver.into())
            .count(info.receivers.len());
        for r in &info.receivers {
            c.str(&r.organ_id).u64(r.receiver_type.into());
        }
    }
    c.count(b.replacements.len());
    for r in &b.replacements {
        c.str(&r.document_id).strs(&r.organ_ids);
    }
    c.staff(&b.staff).count(d.attachments.len());
    for a in &d.attachments {
        c.str(&a.content_id)
            .str(&a.name)
            .str(&a.content_type)
            .str(&a.description)
            .u64(a.size)
            .bytes(&a.sha256);
    }
    c.i64(d.created_at).flag(d.expires_at.is_some());
    if let Some(e) = d.expires_at {
        c.i64(e);
    }
    c.bytes(&d.edxml_preserved).imported(&d.imported);
    c.0
}

/// The bytes the sending agency signs for a status notice.
pub fn status_bytes(n: &StatusNotice) -> Vec<u8> {
    let mut c = Canon::new("lienthong/status/v1");
    c.str(n.id.as_str())
        .organization(&n.from)
        .str(n.to.as_str())
        .response_for(&n.response_for)
        .staff(&n.staff)
        .str(n.code.code())
        .str(&n.description)
        .i64(n.at)
        .bytes(&n.edxml_preserved)
        .imported(&n.imported);
    c.0
}

/// The bytes a node signs in a receipt.
pub fn receipt_bytes(r: &Receipt) -> Vec<u8> {
    let mut c = Canon::new("lienthong/receipt/v1");
    c.str(r.document_id.as_str())
        .bytes(&r.content_digest)
        .str(r.node.as_str())
        .i64(r.accepted_at);
    c.0
}

/// The bytes a node signs when it appends itself to a message's trace: the message's
/// content digest binds the entry to that message.
pub fn trace_entry_bytes(
    id: &DocumentId,
    content_digest: &[u8; 32],
    node: &NodeId,
    at: UnixMillis,
) -> Vec<u8> {
    let mut c = Canon::new("lienthong/trace/v1");
    c.str(id.as_str())
        .bytes(content_digest)
        .str(node.as_str())
        .i64(at);
    c.0
}

/// The bytes the national gateway signs when it issues a directory: version, issue time,
/// every node and every agency in directory order; not the signature itself.
pub fn directory_bytes(d: &Directory) -> Vec<u8> {
    let mut c = Canon::new("lienthong/directory/v2");
    c.u64(d.version).i64(d.issued_at).count(d.nodes.len());
    for n in &d.nodes {
        c.str(n.id.as_str()).str(&n.level).flag(n.parent.is_some());
        if let Some(p) = &n.parent {
            c.str(p.as_str());
        }
        c.str(&n.endpoint);
    }
    c.count(d.agencies.len());
    for a in &d.agencies {
        c.str(a.agency.code.as_str())
            .str(&a.agency.name)
            .strs(&a.agency.aliases)
            .flag(a.agency.edxml_id.is_some());
        if let Some(id) = &a.agency.edxml_id {
            c.str(id);
        }
        c.str(a.home.as_str());
    }
    // Bridges came later: a directory without any keeps the bytes (and signature) it had.
    if !d.bridges.is_empty() {
        c.str("bridges").count(d.bridges.len());
        for b in &d.bridges {
            c.str(b.node.as_str()).count(b.agencies.len());
            for a in &b.agencies {
                c.str(a.as_str());
            }
        }
    }
    c.0
}

/// The bytes a bridge signs for the platform's agency list it publishes.
pub fn external_bytes(e: &ExternalDirectory) -> Vec<u8> {
    let mut c = Canon::new("lienthong/external-directory/v1");
    c.str(e.bridge.as_str())
        .i64(e.version)
        .count(e.agencies.len());
    for a in &e.agencies {
        c.str(a.code.as_str()).str(&a.name).strs(&a.aliases);
    }
    c.0
}

/// SHA-256 of a document's canonical bytes: the dedup key's content half.
pub fn document_digest(d: &Document) -> [u8; 32] {
    sha256(&document_bytes(d))
}

/// SHA-256 of a status notice's canonical bytes.
pub fn status_digest(n: &StatusNotice) -> [u8; 32] {
    sha256(&status_bytes(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgencyCode;
    use crate::document::{Attachment, TraceEntry};

    fn doc() -> Document {
        let mut d = Document::new(
            AgencyCode::parse("000.00.00.G22").unwrap(),
            vec![AgencyCode::parse("000.00.00.H41").unwrap()],
        );
        d.header.subject = "Về việc triển khai".into();
        d.attachments.push(Attachment {
            name: "qd.pdf".into(),
            size: 3,
            sha256: sha256(b"pdf"),
            ..Default::default()
        });
        d
    }

    #[test]
    fn covers_every_signed_field_but_not_the_trace() {
        let d = doc();
        let base = document_bytes(&d);
        let mut changed = d.clone();
        changed.header.subject.push('!');
        assert_ne!(document_bytes(&changed), base);
        let mut changed = d.clone();
        changed.attachments[0].sha256[0] ^= 1;
        assert_ne!(document_bytes(&changed), base);
        let mut changed = d.clone();
        changed.business.reason = "x".into();
        assert_ne!(document_bytes(&changed), base);
        let mut changed = d.clone();
        changed.edxml_preserved = b"<Unknown/>".to_vec();
        assert_ne!(document_bytes(&changed), base);
        let mut traced = d.clone();
        traced.trace.push(TraceEntry {
            node: NodeId::parse("H41").unwrap(),
            at: 1,
            signature: None,
        });
        assert_eq!(document_bytes(&traced), base);
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        // "ab" + "" and "a" + "b" must not encode alike.
        let mut a = doc();
        a.header.code.number = "ab".into();
        a.header.code.notation = String::new();
        let mut b = a.clone();
        b.header.code.number = "a".into();
        b.header.code.notation = "b".into();
        assert_ne!(document_bytes(&a), document_bytes(&b));
    }

    #[test]
    fn directory_bytes_cover_every_field_but_not_the_signature() {
        use crate::directory::{AgencyEntry, NodeEntry};
        use crate::id::Agency;
        use crate::{Signature, SignatureAlgorithm};

        let node = |id: &str, parent: Option<&str>| NodeEntry {
            id: NodeId::parse(id).unwrap(),
            level: "province".into(),
            parent: parent.map(|p| NodeId::parse(p).unwrap()),
            endpoint: format!("https://{id}.example:7443"),
        };
        let d = Directory {
            version: 7,
            issued_at: 1_700_000_000_000,
            nodes: vec![node("national", None), node("H41", Some("national"))],
            agencies: vec![AgencyEntry {
                agency: Agency {
                    code: AgencyCode::parse("000.00.00.H41").unwrap(),
                    name: "UBND tỉnh Nghệ An".into(),
                    aliases: vec!["ubnd-na".into()],
                    edxml_id: None,
                },
                home: NodeId::parse("H41").unwrap(),
            }],
            bridges: Vec::new(),
            signature: None,
        };
        let base = directory_bytes(&d);
        assert!(base.starts_with(b"lienthong/directory/v2\n"));
        let changes: Vec<fn(&mut Directory)> = vec![
            |d| d.version += 1,
            |d| d.issued_at += 1,
            |d| d.nodes[1].id = NodeId::parse("H42").unwrap(),
            |d| d.nodes[1].level = "city".into(),
            |d| d.nodes[1].parent = None,
            |d| d.nodes[1].parent = Some(NodeId::parse("H40").unwrap()),
            |d| d.nodes[1].endpoint.push('0'),
            |d| d.nodes.swap(0, 1),
            |d| d.nodes.pop().map(drop).unwrap_or(()),
            |d| d.agencies[0].agency.code = AgencyCode::parse("000.00.00.H42").unwrap(),
            |d| d.agencies[0].agency.name.push('!'),
            |d| d.agencies[0].agency.aliases.push("x".into()),
            |d| d.agencies[0].agency.aliases[0].push('x'),
            |d| d.agencies[0].agency.edxml_id = Some("ubnd-na".into()),
            |d| d.agencies[0].agency.edxml_id = Some(String::new()),
            |d| d.agencies[0].home = NodeId::parse("national").unwrap(),
            |d| d.agencies.clear(),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut changed = d.clone();
            change(&mut changed);
            assert_ne!(directory_bytes(&changed), base, "change {i}");
        }
        let mut signed = d.clone();
        signed.signature = Some(Signature {
            algorithm: SignatureAlgorithm::Ed25519,
            signer_cert: vec![1, 2, 3],
            value: vec![4; 64],
        });
        assert_eq!(directory_bytes(&signed), base);
    }

    #[test]
    fn an_imported_trailer_and_bridges_change_the_bytes_only_when_present() {
        use crate::directory::BridgeEntry;
        use crate::document::Imported;
        let plain = doc();
        let mut imported = plain.clone();
        imported.imported = Some(Imported {
            bridge: NodeId::parse("VN").unwrap(),
            platform_id: "S1".into(),
            dsig: "absent".into(),
        });
        let base = document_bytes(&plain);
        let with = document_bytes(&imported);
        assert!(
            with.starts_with(&base),
            "the trailer is appended, nothing else moves"
        );
        assert_ne!(with, base);
        let mut other = imported.clone();
        other.imported.as_mut().unwrap().dsig = "verified".into();
        assert_ne!(document_bytes(&other), with, "the finding is signed");

        let mut d = crate::directory::Directory {
            version: 1,
            issued_at: 0,
            nodes: Vec::new(),
            agencies: Vec::new(),
            bridges: Vec::new(),
            signature: None,
        };
        let without = directory_bytes(&d);
        d.bridges.push(BridgeEntry {
            node: NodeId::parse("VN").unwrap(),
            agencies: Vec::new(),
        });
        let bridged = directory_bytes(&d);
        assert!(bridged.starts_with(&without));
        assert_ne!(bridged, without);
    }
}
