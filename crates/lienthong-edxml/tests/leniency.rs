//! The lenient parser on the shapes real edXML traffic has, each asserting the values
//! read; and the errors it gives when a message is unusable, with their line.

use lienthong_edxml::{Error, Message, parse, write};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn document(m: Message) -> lienthong_edxml::EdxmlDocument {
    match m {
        Message::Document(d) => d,
        Message::Status(_) => panic!("expected a document"),
    }
}

const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

/// A minimal document with the given element names (`{p}` is replaced by the prefix).
fn minimal(root_open: &str, p: &str) -> String {
    format!(
        "{root_open}<{p}edXMLEnvelope><{p}edXMLHeader><{p}MessageHeader>\
         <{p}From><{p}OrganId>000.00.00.G22</{p}OrganId></{p}From>\
         <{p}To><{p}OrganId>000.00.00.H41</{p}OrganId></{p}To>\
         <{p}Subject>Trích yếu</{p}Subject>\
         <{p}DocumentId>doc-1</{p}DocumentId>\
         </{p}MessageHeader></{p}edXMLHeader></{p}edXMLEnvelope></{}edXML>",
        if root_open.starts_with("<q:") {
            "q:"
        } else {
            ""
        }
    )
}

#[test]
fn reads_default_namespace_root_with_edxml_prefixed_envelope_and_crlf() {
    let d = document(parse(&fixture("edoc_new.edxml")).unwrap());
    let h = &d.header;
    assert_eq!(h.from.organ_id, "000.00.32.H40");
    assert_eq!(h.from.name, "Sở Thử Nghiệm tỉnh Mẫu");
    assert_eq!(
        h.to.iter().map(|o| o.organ_id.as_str()).collect::<Vec<_>>(),
        ["000.00.00.H40", "003.01.32.H40"]
    );
    assert_eq!(h.document_id, "000.00.32.H40,2024/03/01,123/STN-VP");
    assert_eq!(
        (h.code_number.as_str(), h.code_notation.as_str()),
        ("123", "STN-VP")
    );
    assert_eq!(h.promulgation_date, "2024/03/01");
    assert_eq!(h.document_type, "2");
    assert_eq!(h.document_type_name, "Công văn");
    assert_eq!(
        h.subject,
        "V/v thử nghiệm trục liên thông văn bản & phần mềm QLVB"
    );
    assert_eq!(h.signer_full_name, "Trần Văn Thử");
    assert_eq!(h.to_places, ["Như trên", "Lưu: VT"]);
    assert_eq!(h.other.priority, "1");
    assert_eq!(h.other.direction, "false");
    assert_eq!(h.other.appendixes, ["Phụ lục I"]);
    assert_eq!(h.steering_type, "1");
    assert_eq!(d.trace.len(), 1);
    assert_eq!(d.trace[0].organ_id, "28.22.H17");
    assert_eq!(d.trace[0].timestamp, "2024/03/01 09:30:00");
    assert!(d.business.is_none());
    assert!(d.signature.is_none());
}

#[test]
fn skips_stray_bytes_before_the_xml_declaration() {
    let bytes = fixture("edoc_new.edxml");
    assert_eq!(
        &bytes[..5],
        b"\xef\xbb\xbf\x00 ",
        "the fixture starts with stray bytes"
    );
    assert!(parse(&bytes).is_ok());
    let m = parse(b"garbage\r\n<?xml version=\"1.0\"?>\r\n<edXML/>");
    // Read past the stray bytes; the error is about the message, on line 3.
    let e = m.unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.reason.contains("no edXMLEnvelope"), "{e}");
}

#[test]
fn reads_other_prefixes_bound_to_the_qcvn_namespace() {
    let xml = minimal(&format!("<q:edXML xmlns:q=\"{NS}\">"), "q:");
    let d = document(parse(xml.as_bytes()).unwrap());
    assert_eq!(d.header.from.organ_id, "000.00.00.G22");
    assert_eq!(d.header.to[0].organ_id, "000.00.00.H41");
    assert_eq!(d.header.subject, "Trích yếu");
}

#[test]
fn reads_messages_in_no_namespace_at_all() {
    let xml = minimal("<edXML>", "");
    let d = document(parse(xml.as_bytes()).unwrap());
    assert_eq!(d.header.document_id, "doc-1");
    assert_eq!(d.header.subject, "Trích yếu");
    assert!(d.extras.is_empty());
}

#[test]
fn elements_in_a_foreign_namespace_are_kept_not_read() {
    let xml = minimal(&format!("<edXML xmlns=\"{NS}\">"), "").replace(
        "<Subject>Trích yếu</Subject>",
        "<x:Subject xmlns:x=\"urn:other\">khác</x:Subject><Subject>Trích yếu</Subject>",
    );
    let d = document(parse(xml.as_bytes()).unwrap());
    assert_eq!(d.header.subject, "Trích yếu");
    assert_eq!(d.extras.len(), 1);
    assert_eq!(d.extras[0].element.ns.as_deref(), Some("urn:other"));
    assert_eq!(d.extras[0].after, Some(("To".to_string(), 0)));
}

#[test]
fn reads_content_ids_with_or_without_cid_prefix_and_merges_manifest_with_attachment() {
    let d = document(parse(&fixture("edoc_new.edxml")).unwrap());
    assert_eq!(d.attachments.len(), 1);
    let a = &d.attachments[0];
    assert_eq!(a.content_id, "5f0c2a8e-1b2c-4d3e-9f40-aa11bb22cc33");
    assert_eq!(a.name, "cong-van-123.zip");
    assert_eq!(a.description, "Công văn 123 và phụ lục");
    assert_eq!(a.content_type, "application/zip");
    assert!(a.size > 0 && a.content.len() as u64 == a.size);
    let entries = lienthong_edxml::zip_entries(&a.content).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["cong-van-123.pdf", "phu-luc.txt"]
    );

    // The manifest says cid:, the attachment does not: one attachment.
    let text = String::from_utf8(fixture("edoc_new.edxml")).unwrap();
    let i = text.rfind("cid:5f0c").unwrap();
    let bare = format!("{}{}", &text[..i], &text[i + 4..]);
    let d2 = document(parse(bare.as_bytes()).unwrap());
    assert_eq!(d2.attachments, d.attachments);
}

#[test]
fn pairs_each_encoded_attachment_with_the_first_unmatched_reference_of_its_id_or_name() {
    let reference = |cid: &str, name: &str| {
        format!(
            "<Reference><ContentId>{cid}</ContentId><AttachmentName>{name}</AttachmentName></Reference>"
        )
    };
    let encoded = |cid: &str, name: &str, b64: &str| {
        format!(
            "<Attachment><ContentId>{cid}</ContentId><AttachmentName>{name}</AttachmentName>\
             <ContentTransferEncoded>{b64}</ContentTransferEncoded></Attachment>"
        )
    };
    let xml = format!(
        "<edXML><edXMLEnvelope><edXMLHeader><MessageHeader><DocumentId>d</DocumentId></MessageHeader>\
         </edXMLHeader><edXMLBody><edXMLManifest>{}{}{}{}</edXMLManifest></edXMLBody></edXMLEnvelope>\
         <AttachmentEncoded>{}{}{}{}</AttachmentEncoded></edXML>",
        reference("cid:a", "a1.pdf"),
        reference("b", "b.pdf"),
        reference("", "n.pdf"),
        reference("a", "a2.pdf"),
        encoded("a", "", "QQ=="),
        encoded("", "n.pdf", "Tg=="),
        encoded("&lt;a&gt;", "", "QUE="),
        encoded("z", "z.pdf", "Wg=="),
    );
    let d = document(parse(xml.as_bytes()).unwrap());
    let got: Vec<(&str, &str, &[u8])> = d
        .attachments
        .iter()
        .map(|a| (a.content_id.as_str(), a.name.as_str(), &a.content[..]))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", "a1.pdf", &b"A"[..]),
            ("b", "b.pdf", &b""[..]),
            ("", "n.pdf", &b"N"[..]),
            ("a", "a2.pdf", &b"AA"[..]),
            ("z", "z.pdf", &b"Z"[..]),
        ]
    );
}

#[test]
fn an_empty_response_for_reads_as_none_and_empty_elements_as_empty_text() {
    let d = document(parse(&fixture("edoc_new.edxml")).unwrap());
    assert!(d.header.response_for.is_empty());
    let xml = minimal("<edXML>", "").replace(
        "<Subject>Trích yếu</Subject>",
        "<Subject/><Content></Content>",
    );
    let d = document(parse(xml.as_bytes()).unwrap());
    assert_eq!(d.header.subject, "");
    assert_eq!(d.header.content, "");
    let r = document(parse(&fixture("edoc_revoke.edxml")).unwrap());
    assert_eq!(r.header.response_for.len(), 1);
    assert_eq!(r.header.response_for[0].code, "98/STN-VP");
}

#[test]
fn missing_optional_fields_read_as_empty() {
    let d = document(parse(minimal("<edXML>", "").as_bytes()).unwrap());
    let h = &d.header;
    assert_eq!(h.code_number, "");
    assert_eq!(h.promulgation_date, "");
    assert_eq!(h.other, Default::default());
    assert!(h.to_places.is_empty());
    assert!(d.trace.is_empty() && d.business.is_none() && d.attachments.is_empty());
    assert!(d.signature.is_none());
}

#[test]
fn crlf_inside_text_is_normalised_to_lf() {
    let xml = minimal("<edXML>", "").replace("Trích yếu", "dòng 1\r\ndòng 2\rdòng 3");
    let d = document(parse(xml.as_bytes()).unwrap());
    assert_eq!(d.header.subject, "dòng 1\ndòng 2\ndòng 3");
}

#[test]
fn unknown_elements_are_kept_at_their_place_and_written_back() {
    let d = document(parse(&fixture("edoc_new.edxml")).unwrap());
    assert_eq!(d.extras.len(), 1);
    let x = &d.extras[0];
    assert_eq!(x.container, "MessageHeader");
    assert_eq!(x.element.local, "SecurityLevel");
    assert_eq!(x.element.text(), "Mật");
    // The empty ResponseFor before it is not a field, so it follows OtherInfo.
    assert_eq!(x.after, Some(("OtherInfo".to_string(), 0)));
    let out = String::from_utf8(write(&Message::Document(d.clone())).unwrap()).unwrap();
    let other = out.find("</edXML:OtherInfo>").unwrap();
    let level = out.find("SecurityLevel>Mật<").unwrap();
    let steering = out.find("<edXML:SteeringType>").unwrap();
    assert!(other < level && level < steering, "{out}");
    assert_eq!(document(parse(out.as_bytes()).unwrap()), d);
}

#[test]
fn a_second_copy_of_a_single_field_is_kept_as_unknown() {
    let xml = minimal("<edXML>", "").replace(
        "<Subject>Trích yếu</Subject>",
        "<Subject>một</Subject><Subject>hai</Subject>",
    );
    let d = document(parse(xml.as_bytes()).unwrap());
    assert_eq!(d.header.subject, "một");
    assert_eq!(d.extras[0].element.text(), "hai");
    assert_eq!(d.extras[0].after, Some(("Subject".to_string(), 0)));
}

#[test]
fn reads_business_blocks_of_revoke_update_and_replace() {
    let r = document(parse(&fixture("edoc_revoke.edxml")).unwrap());
    let b = r.business.unwrap();
    assert_eq!((b.doc_type.as_str(), b.paper.as_str()), ("1", "0"));
    assert_eq!(b.reason, "Thu hồi văn bản gửi nhầm");
    assert_eq!(b.staff.unwrap().staff, "Lê Thị Mẫu");

    let u = document(parse(&fixture("edoc_update.edxml")).unwrap());
    let b = u.business.unwrap();
    assert_eq!(b.doc_type, "2");
    assert_eq!(b.document_id, "000.00.32.H40,2024/02/20,98/STN-VP");
    let info = b.document_info.unwrap();
    assert_eq!(info.document_receiver, "1");
    assert_eq!(info.receivers[1].organ_id, "vxp.saas.03");
    assert_eq!(info.receivers[1].receiver_type, "1");

    let p = document(parse(&fixture("edoc_replace.edxml")).unwrap());
    let b = p.business.unwrap();
    assert_eq!(b.doc_type, "3");
    assert_eq!(b.replacements.len(), 1);
    assert_eq!(
        b.replacements[0].organ_ids,
        ["000.00.00.H40", "003.01.32.H40"]
    );
    assert!(p.attachments.is_empty());
}

#[test]
fn reads_every_status_message() {
    for code in ["01", "02", "03", "04", "05", "06", "13", "15", "16"] {
        let Message::Status(s) = parse(&fixture(&format!("status_{code}.edxml"))).unwrap() else {
            panic!("status_{code} is a status message");
        };
        assert_eq!(s.status_code, code);
        assert_eq!(
            s.response_for.document_id,
            "000.00.32.H40,2024/03/01,123/STN-VP"
        );
        assert_eq!(s.timestamp, format!("2024/03/02 14:05:{code}"));
        let staff = s.staff.unwrap();
        assert_eq!(staff.department, "Phòng Hành chính");
        let (from, to) = if code == "13" {
            ("000.00.32.H40", "000.00.00.H40")
        } else {
            ("000.00.00.H40", "000.00.32.H40")
        };
        assert_eq!(s.from.organ_id, from);
        assert_eq!(s.response_for.organ_id, to);
    }
}

#[test]
fn keeps_the_signature_element_as_read() {
    let d = document(parse(&fixture("edoc_revoke.edxml")).unwrap());
    let sig = d.signature.unwrap();
    assert_eq!(sig.local, "Signature");
    // As in real traffic, the Signature sits in the default (edXML) namespace.
    assert_eq!(sig.ns.as_deref(), Some(NS));
    assert!(sig.find(&|e| e.local == "X509SubjectName").is_some());
}

#[test]
fn errors_carry_line_column_and_reason() {
    let cases: [(&[u8], u32, &str); 6] = [
        (
            b"<?xml version=\"1.0\"?>\n<edXML>\n  <a>\n  </b>\n</edXML>",
            4,
            "malformed XML",
        ),
        (
            b"<edXML>\n<x>&nbsp;</x></edXML>",
            2,
            "unknown entity &nbsp;",
        ),
        (b"<?xml version=\"1.0\"?>\n\n<html/>", 3, "not an edXML"),
        (b"<edXML>\n<edXMLEnvelope>\n<edXMLHeader>", 3, "truncated"),
        (b"<edXML>\n\n<a>\xff</a></edXML>", 3, "not valid UTF-8"),
        (b"", 1, "no XML"),
    ];
    for (input, line, reason) in cases {
        let e = parse(input).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.column >= 1);
        assert!(e.reason.contains(reason), "{e}");
    }
    let e = parse(&fixture("broken_truncated.edxml")).unwrap_err();
    assert!(e.reason.contains("truncated"), "{e}");
    assert_eq!(e.line, 79, "{e}");
}

#[test]
fn an_attachment_that_is_not_base64_is_reported_with_its_line() {
    let text = String::from_utf8(fixture("edoc_new.edxml")).unwrap();
    let start = text.find("QCVN_102_2016\">UEs").unwrap() + "QCVN_102_2016\">".len();
    let broken = format!(
        "{}${{__StringFromFile(test.txt)}}{}",
        &text[..start],
        &text[text[start..].find('<').unwrap() + start..]
    );
    let e = parse(broken.as_bytes()).unwrap_err();
    let line = text[..start].matches('\n').count() as u32 + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.reason.contains("cong-van-123.zip"), "{e}");
    assert!(
        e.reason.contains(
            "holds the template \"${__StringFromFile(test.txt)}\" where the attachment's base64 content should be"
        ),
        "{e}"
    );
}

#[test]
fn routing_fields_that_are_not_agency_codes_are_refused_with_the_line_or_carried() {
    let text = String::from_utf8(fixture("edoc_new.edxml")).unwrap();
    let odd = text.replacen(
        "<edXML:OrganId>000.00.32.H40</edXML:OrganId>",
        "<edXML:OrganId>vxp.saas.03</edXML:OrganId>",
        1,
    );
    let d = document(parse(odd.as_bytes()).unwrap());
    let e = d.to_core(0).unwrap_err();
    assert!(matches!(e, Error::Unroutable { .. }), "{e}");
    assert_eq!(e.line(), Some(8), "{e}");
    assert!(
        e.to_string().contains("From/OrganId \"vxp.saas.03\""),
        "{e}"
    );
    assert!(e.to_string().contains("cannot be routed"), "{e}");
    // Carried when routing is not the point, and exported as written.
    let core = d.to_core_lenient(0).unwrap();
    assert_eq!(core.from.code, None);
    let back = lienthong_edxml::EdxmlDocument::from_core(&core).unwrap();
    assert_eq!(back.header.from.organ_id, "vxp.saas.03");
}
