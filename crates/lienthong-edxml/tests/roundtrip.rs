//! Round trips: generated messages through write → parse; every fixture through
//! parse → write → parse; and through lienthong's domain (import → export), which must
//! give the message back, unknown elements and Signature included.

use std::borrow::Cow;

use lienthong_edxml::dom::{Attribute, Element, Node};
use lienthong_edxml::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const FIXTURES: [&str; 13] = [
    "edoc_new.edxml",
    "edoc_revoke.edxml",
    "edoc_update.edxml",
    "edoc_replace.edxml",
    "status_01.edxml",
    "status_02.edxml",
    "status_03.edxml",
    "status_04.edxml",
    "status_05.edxml",
    "status_06.edxml",
    "status_13.edxml",
    "status_15.edxml",
    "status_16.edxml",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_fixture_survives_write_then_parse() {
    for name in FIXTURES {
        let m = parse(&fixture(name)).unwrap();
        let out = write(&m).unwrap();
        assert_eq!(parse(&out).unwrap(), m, "{name}");
        // The writer's output is stable.
        assert_eq!(write(&parse(&out).unwrap()).unwrap(), out, "{name}");
    }
}

/// Import into lienthong's domain and export again.
fn through_core(m: &Message) -> Message {
    match m {
        Message::Document(d) => {
            let core = d.to_core_lenient(0).unwrap();
            let mut back = EdxmlDocument::from_core(&core).unwrap();
            for (a, original) in back.attachments.iter_mut().zip(&d.attachments) {
                a.content = original.content.clone();
            }
            Message::Document(back)
        }
        Message::Status(s) => {
            Message::Status(EdxmlStatus::from_core(&s.to_core(0).unwrap()).unwrap())
        }
    }
}

#[test]
fn every_fixture_survives_import_then_export() {
    for name in FIXTURES {
        let m = parse(&fixture(name)).unwrap();
        let exported = write(&through_core(&m)).unwrap();
        assert_eq!(parse(&exported).unwrap(), m, "{name}");
    }
}

#[test]
fn import_maps_fields_to_the_domain() {
    let Message::Document(d) = parse(&fixture("edoc_update.edxml")).unwrap() else {
        panic!()
    };
    let c = d.to_core(0).unwrap();
    assert_eq!(c.id.as_str(), "000.00.32.H40,2024/03/01,123/STN-VP");
    assert_eq!(c.from.code.as_ref().unwrap().as_str(), "000.00.32.H40");
    assert_eq!(c.to.len(), 2);
    assert_eq!(c.header.other.priority, lienthong_core::Priority::Urgent);
    assert_eq!(c.header.document_type.kind, 2);
    assert_eq!(
        c.business.business_type,
        lienthong_core::BusinessType::Update
    );
    assert_eq!(
        c.business.referenced_document_id,
        "000.00.32.H40,2024/02/20,98/STN-VP"
    );
    assert_eq!(c.attachments[0].size, d.attachments[0].size);
    assert_eq!(
        c.attachments[0].sha256,
        lienthong_core::sign::sha256(&d.attachments[0].content)
    );
    // 2024/03/01 09:30:00 in Vietnam time, from the first TraceHeader.
    assert_eq!(c.created_at, 1_709_260_200_000);
    c.validate().unwrap();
    assert!(
        c.edxml_preserved
            .starts_with(b"lienthong-edxml-preserved/1\n")
    );

    let Message::Status(s) = parse(&fixture("status_13.edxml")).unwrap() else {
        panic!()
    };
    let n = s.to_core(0).unwrap();
    assert_eq!(n.code, lienthong_core::StatusCode::WithdrawRequest);
    assert_eq!(n.to.as_str(), "000.00.00.H40");
    assert_eq!(n.at, 1_709_363_113_000);
    n.validate().unwrap();
    // The same notice gets the same id, so a re-send deduplicates.
    assert_eq!(s.to_core(1).unwrap().id, n.id);
}

#[test]
fn core_edits_win_on_export() {
    let Message::Document(d) = parse(&fixture("edoc_new.edxml")).unwrap() else {
        panic!()
    };
    let mut c = d.to_core(0).unwrap();
    c.header.subject = "Trích yếu đã sửa".into();
    c.header.other.priority = lienthong_core::Priority::Flash;
    c.to.pop();
    let e = EdxmlDocument::from_core(&c).unwrap();
    assert_eq!(e.header.subject, "Trích yếu đã sửa");
    assert_eq!(e.header.other.priority, "3");
    assert_eq!(e.header.to.len(), 1);
    // What core does not model is still there.
    assert_eq!(e.header.other.direction, "false");
    assert_eq!(e.extras, d.extras);
    assert_eq!(e.trace, d.trace);
}

#[test]
fn native_core_documents_export_with_a_sender_trace_header() {
    let from = lienthong_core::AgencyCode::parse("000.00.00.G22").unwrap();
    let to = lienthong_core::AgencyCode::parse("000.00.00.H41").unwrap();
    let mut c = lienthong_core::Document::new(from, vec![to]);
    c.created_at = 1_709_260_200_000;
    c.header.subject = "Văn bản gốc của lienthong".into();
    let e = EdxmlDocument::from_core(&c).unwrap();
    assert_eq!(e.trace[0].organ_id, "000.00.00.G22");
    assert_eq!(e.trace[0].timestamp, "2024/03/01 09:30:00");
    assert_eq!(e.header.other.priority, "0");
    assert!(e.business.is_none());
    let Message::Document(back) = parse(&write(&Message::Document(e.clone())).unwrap()).unwrap()
    else {
        panic!()
    };
    assert_eq!(back.header.subject, "Văn bản gốc của lienthong");
    assert_eq!(back.to_core(0).unwrap().id, c.id);
}

#[test]
fn attachments_stream_to_a_sink_and_back_from_a_source() {
    let bytes = fixture("edoc_new.edxml");
    let Message::Document(full) = parse(&bytes).unwrap() else {
        panic!()
    };
    let mut stored: Vec<Vec<u8>> = Vec::new();
    let streamed = {
        let store = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let s2 = store.clone();
        let m = parse_with(&bytes, &mut |_a: &Attachment| {
            struct Into(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
            impl std::io::Write for Into {
                fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                    self.0.borrow_mut().extend_from_slice(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            Ok(Box::new(Into(s2.clone())))
        })
        .unwrap();
        stored.push(store.borrow().clone());
        m
    };
    let Message::Document(ref d) = streamed else {
        panic!()
    };
    assert!(d.attachments[0].content.is_empty());
    assert_eq!(d.attachments[0].size, full.attachments[0].size);
    assert_eq!(d.attachments[0].sha256, full.attachments[0].sha256);
    assert_eq!(stored[0], full.attachments[0].content);
    // Without its content the plain writer refuses; with a source it writes it.
    let err = write(&streamed).unwrap_err();
    assert!(err.to_string().contains("has no content"), "{err}");
    let mut out = Vec::new();
    let content = stored[0].clone();
    write_with(&mut out, &streamed, &mut |_a: &Attachment| {
        Ok(Box::new(std::io::Cursor::new(content.clone())))
    })
    .unwrap();
    assert_eq!(parse(&out).unwrap(), Message::Document(full));
    // A source giving other bytes is caught.
    let err = write_with(&mut Vec::new(), &streamed, &mut |_a: &Attachment| {
        Ok(Box::new(std::io::Cursor::new(b"other".to_vec())))
    })
    .unwrap_err();
    assert!(err.to_string().contains("another SHA-256"), "{err}");
}

// ---- generated messages ----

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 àáạđĐêôơưỹ&<>\"'/.,:-]{0,12}".prop_map(|s| s.trim().to_string())
}

fn organization() -> impl Strategy<Value = Organization> {
    vec(text(), 8).prop_map(|v| Organization {
        organ_id: v[0].clone(),
        in_charge: v[1].clone(),
        name: v[2].clone(),
        address: v[3].clone(),
        email: v[4].clone(),
        telephone: v[5].clone(),
        fax: v[6].clone(),
        website: v[7].clone(),
    })
}

fn staff() -> impl Strategy<Value = StaffInfo> {
    vec(text(), 4).prop_map(|v| StaffInfo {
        department: v[0].clone(),
        staff: v[1].clone(),
        email: v[2].clone(),
        mobile: v[3].clone(),
    })
}

fn response_for() -> impl Strategy<Value = ResponseFor> {
    // An entirely empty ResponseFor means "none" and is not read back.
    vec(text(), 4).prop_map(|v| ResponseFor {
        organ_id: v[0].clone(),
        code: v[1].clone(),
        promulgation_date: v[2].clone(),
        document_id: format!("d{}", v[3]),
    })
}

fn trace() -> impl Strategy<Value = Vec<TraceHeader>> {
    vec(
        (text(), text()).prop_map(|(organ_id, timestamp)| TraceHeader {
            organ_id,
            timestamp,
        }),
        0..3,
    )
}

fn business() -> impl Strategy<Value = Business> {
    (
        vec(text(), 4),
        option::of((text(), text(), vec((text(), text()), 0..3))),
        vec((text(), vec(text(), 0..3)), 0..2),
        option::of(staff()),
    )
        .prop_map(|(v, info, repl, staff)| Business {
            document_id: v[0].clone(),
            doc_type: v[1].clone(),
            reason: v[2].clone(),
            paper: v[3].clone(),
            document_info: info.map(|(a, b, r)| BusinessDocumentInfo {
                document_info: a,
                document_receiver: b,
                receivers: r
                    .into_iter()
                    .map(|(organ_id, receiver_type)| Receiver {
                        organ_id,
                        receiver_type,
                    })
                    .collect(),
            }),
            replacements: repl
                .into_iter()
                .map(|(document_id, organ_ids)| ReplacementInfo {
                    document_id,
                    organ_ids,
                })
                .collect(),
            staff,
        })
}

fn unknown(name: String, value: String, foreign: bool) -> XmlElement {
    let mut e = if foreign {
        Element::new(Some("urn:example:ext"), Some("ext"), &format!("Ext{name}"))
    } else {
        Element::new(Some(EDXML_NS), None, &format!("Unknown{name}"))
    };
    e.attrs.push(Attribute {
        prefix: None,
        local: "note".into(),
        ns: None,
        value: value.clone(),
    });
    e.children.push(Node::Text(Cow::Owned(format!("v{value}"))));
    e
}

/// At most one extra per container, each in a container the writer always opens.
fn extras() -> impl Strategy<Value = Vec<Extra>> {
    (
        option::of(("[A-Z][a-z]{0,5}", text(), any::<bool>())),
        option::of(("[A-Z][a-z]{0,5}", text(), any::<bool>())),
        option::of(("[A-Z][a-z]{0,5}", text(), any::<bool>())),
    )
        .prop_map(|(a, b, c)| {
            let mut v = Vec::new();
            if let Some((n, t, f)) = a {
                v.push(Extra {
                    container: "MessageHeader".into(),
                    after: Some(("From".into(), 0)),
                    element: unknown(n, t, f),
                });
            }
            if let Some((n, t, f)) = b {
                v.push(Extra {
                    container: "MessageHeader/From".into(),
                    after: None,
                    element: unknown(n, t, f),
                });
            }
            if let Some((n, t, f)) = c {
                v.push(Extra {
                    container: "edXML".into(),
                    after: Some(("edXMLEnvelope".into(), 0)),
                    element: unknown(n, t, f),
                });
            }
            v.sort_by(|a, b| a.container.cmp(&b.container));
            v
        })
}

fn signature() -> impl Strategy<Value = XmlElement> {
    text().prop_map(|digest| {
        let mut sig = Element::new(Some(lienthong_edxml::dom::DSIG_NS), None, "Signature");
        let mut si = Element::new(Some(lienthong_edxml::dom::DSIG_NS), None, "SignedInfo");
        let mut dv = Element::new(Some(lienthong_edxml::dom::DSIG_NS), None, "DigestValue");
        dv.children
            .push(Node::Text(Cow::Owned(format!("x{digest}"))));
        si.children.push(Node::Element(dv));
        sig.children.push(Node::Element(si));
        sig
    })
}

fn attachments() -> impl Strategy<Value = Vec<Attachment>> {
    vec((text(), text(), text(), vec(any::<u8>(), 0..300)), 0..3).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (name, content_type, description, content))| {
                let mut a = Attachment {
                    content_id: format!("att-{i}"),
                    name,
                    content_type,
                    description,
                    ..Default::default()
                };
                a.set_content(content);
                a
            })
            .collect()
    })
}

fn document() -> impl Strategy<Value = EdxmlDocument> {
    (
        (organization(), vec(organization(), 0..3), vec(text(), 18)),
        (
            vec(text(), 0..3),
            vec(text(), 0..3),
            vec(response_for(), 0..3),
        ),
        (trace(), option::of(business()), option::of(signature())),
        (attachments(), extras()),
    )
        .prop_map(
            |(
                (from, to, t),
                (places, appendixes, rf),
                (trace, business, signature),
                (attachments, extras),
            )| {
                EdxmlDocument {
                    header: DocumentHeader {
                        from,
                        to,
                        document_id: t[0].clone(),
                        code_number: t[1].clone(),
                        code_notation: t[2].clone(),
                        promulgation_place: t[3].clone(),
                        promulgation_date: t[4].clone(),
                        document_type: t[5].clone(),
                        document_type_detail: t[6].clone(),
                        document_type_name: t[7].clone(),
                        subject: t[8].clone(),
                        content: t[9].clone(),
                        signer_competence: t[10].clone(),
                        signer_position: t[11].clone(),
                        signer_full_name: t[12].clone(),
                        due_date: t[13].clone(),
                        to_places: places,
                        other: OtherInfo {
                            priority: t[14].clone(),
                            sphere_of_promulgation: t[15].clone(),
                            typer_notation: t[16].clone(),
                            promulgation_amount: t[17].clone(),
                            page_amount: t[1].clone(),
                            direction: t[2].clone(),
                            appendixes,
                        },
                        response_for: rf,
                        steering_type: t[3].clone(),
                    },
                    trace,
                    business,
                    signature,
                    attachments,
                    extras,
                    lines: Default::default(),
                }
            },
        )
}

fn status() -> impl Strategy<Value = EdxmlStatus> {
    (
        organization(),
        response_for(),
        option::of(staff()),
        vec(text(), 3),
        trace(),
        option::of(signature()),
        extras(),
    )
        .prop_map(
            |(from, response_for, staff, t, trace, signature, extras)| EdxmlStatus {
                from,
                response_for,
                staff,
                status_code: t[0].clone(),
                description: t[1].clone(),
                timestamp: t[2].clone(),
                trace,
                signature,
                extras,
                lines: Default::default(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_documents_survive_write_then_parse(d in document()) {
        let m = Message::Document(d);
        let out = write(&m).unwrap();
        prop_assert_eq!(parse(&out).unwrap(), m);
    }

    #[test]
    fn generated_status_messages_survive_write_then_parse(s in status()) {
        let m = Message::Status(s);
        let out = write(&m).unwrap();
        prop_assert_eq!(parse(&out).unwrap(), m);
    }

    #[test]
    fn generated_documents_survive_import_then_export(mut d in document(), id in "[a-z0-9]{1,10}") {
        d.header.document_id = id;
        let m = Message::Document(d);
        let exported = write(&through_core(&m)).unwrap();
        prop_assert_eq!(parse(&exported).unwrap(), m);
    }

    #[test]
    fn generated_status_messages_survive_import_then_export(
        mut s in status(),
        code in prop::sample::select(vec!["01", "2", "03", "04", "05", "06", "13", "15", "16"]),
        ts in prop::option::of(0i64..4_000_000_000_000),
    ) {
        s.from.organ_id = "000.00.00.H41".into();
        s.response_for.organ_id = "000.00.00.g22".into();
        s.status_code = code.into();
        if let Some(at) = ts {
            s.timestamp = lienthong_edxml::time::format_timestamp(at);
        }
        let m = Message::Status(s);
        let exported = write(&through_core(&m)).unwrap();
        prop_assert_eq!(parse(&exported).unwrap(), m);
    }
}
