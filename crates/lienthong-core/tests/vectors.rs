//! The signing test vectors of `docs/vectors/*.json` (specified in `docs/signing.md`)
//! checked against the code: each vector's message, read from its JSON (proto3 JSON
//! field names, as `google.protobuf.json_format` reads them), gives exactly the
//! canonical bytes and digest the vector states, and its signature verifies with its
//! public key (and, for deterministic algorithms, is what the private key makes). So the
//! specification cannot drift from the code.
//!
//! `LIENTHONG_WRITE_VECTORS=1 cargo test -p lienthong-core --test vectors` writes the
//! vectors afresh from the messages built below and the keys in the existing files.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lienthong_core::canonical::{document_bytes, status_bytes};
use lienthong_core::document::*;
use lienthong_core::sign::{SigningKey, sha256, verify};
use lienthong_core::{AgencyCode, DocumentId, SignatureAlgorithm, StatusCode, StatusNotice};
use serde_json::{Value, json};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors")
}

// ---- JSON <-> domain, with the proto field names ----------------------------------------

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn n(v: &Value, k: &str) -> u64 {
    match v.get(k) {
        Some(Value::Number(x)) => x.as_u64().unwrap(),
        Some(Value::String(x)) => x.parse().unwrap(),
        _ => 0,
    }
}

fn i(v: &Value, k: &str) -> i64 {
    match v.get(k) {
        Some(Value::Number(x)) => x.as_i64().unwrap(),
        Some(Value::String(x)) => x.parse().unwrap(),
        _ => 0,
    }
}

fn b(v: &Value, k: &str) -> Vec<u8> {
    B64.decode(s(v, k)).unwrap()
}

fn strs(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn list<'a>(v: &'a Value, k: &str) -> Vec<&'a Value> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn obj<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| x.is_object())
}

fn organization(v: &Value) -> Organization {
    Organization {
        code: Some(AgencyCode::parse_canonical(&s(v, "code")).unwrap()),
        in_charge: s(v, "in_charge"),
        name: s(v, "name"),
        address: s(v, "address"),
        email: s(v, "email"),
        telephone: s(v, "telephone"),
        fax: s(v, "fax"),
        website: s(v, "website"),
    }
}

fn organization_json(o: &Organization) -> Value {
    json!({
        "code": o.code.as_ref().unwrap().as_str(), "in_charge": o.in_charge, "name": o.name,
        "address": o.address, "email": o.email, "telephone": o.telephone, "fax": o.fax,
        "website": o.website,
    })
}

fn response_for(v: &Value) -> ResponseFor {
    ResponseFor {
        organ_id: s(v, "organ_id"),
        code: s(v, "code"),
        promulgation_date: s(v, "promulgation_date"),
        document_id: s(v, "document_id"),
    }
}

fn response_for_json(r: &ResponseFor) -> Value {
    json!({"organ_id": r.organ_id, "code": r.code, "promulgation_date": r.promulgation_date,
           "document_id": r.document_id})
}

fn staff(v: &Value) -> StaffInfo {
    StaffInfo {
        department: s(v, "department"),
        staff: s(v, "staff"),
        email: s(v, "email"),
        mobile: s(v, "mobile"),
    }
}

fn staff_json(st: &StaffInfo) -> Value {
    json!({"department": st.department, "staff": st.staff, "email": st.email, "mobile": st.mobile})
}

fn document(v: &Value) -> Document {
    let h = obj(v, "header").cloned().unwrap_or(json!({}));
    let other = obj(&h, "other").cloned().unwrap_or(json!({}));
    let bz = obj(v, "business").cloned().unwrap_or(json!({}));
    let expires = i(v, "expires_at_unix_ms");
    Document {
        id: DocumentId::parse(&s(v, "id")).unwrap(),
        from: organization(&v["from"]),
        to: list(v, "to").into_iter().map(organization).collect(),
        header: DocumentHeader {
            code: obj(&h, "code").map_or_else(CodeInfo::default, |c| CodeInfo {
                number: s(c, "number"),
                notation: s(c, "notation"),
            }),
            promulgation: obj(&h, "promulgation").map_or_else(Default::default, |p| {
                PromulgationInfo {
                    place: s(p, "place"),
                    date: s(p, "date"),
                }
            }),
            document_type: obj(&h, "document_type").map_or_else(Default::default, |t| {
                DocumentType {
                    kind: n(t, "kind") as u32,
                    detail: n(t, "detail") as u32,
                    name: s(t, "name"),
                }
            }),
            subject: s(&h, "subject"),
            content: s(&h, "content"),
            signer: obj(&h, "signer").map_or_else(Default::default, |x| SignerInfo {
                competence: s(x, "competence"),
                position: s(x, "position"),
                full_name: s(x, "full_name"),
            }),
            due_date: s(&h, "due_date"),
            to_places: strs(&h, "to_places"),
            other: OtherInfo {
                priority: Priority::from_u8(n(&other, "priority") as u8).unwrap(),
                sphere_of_promulgation: s(&other, "sphere_of_promulgation"),
                typist_notation: s(&other, "typist_notation"),
                promulgation_amount: n(&other, "promulgation_amount") as u32,
                page_amount: n(&other, "page_amount") as u32,
                appendixes: strs(&other, "appendixes"),
            },
            response_for: list(&h, "response_for")
                .into_iter()
                .map(response_for)
                .collect(),
            steering_type: n(&h, "steering_type") as u32,
        },
        business: Business {
            business_type: BusinessType::from_u8(n(&bz, "business_type") as u8).unwrap(),
            reason: s(&bz, "reason"),
            referenced_document_id: s(&bz, "referenced_document_id"),
            paper: n(&bz, "paper") as u32,
            document_info: obj(&bz, "document_info").map(|d| BusinessDocumentInfo {
                document_info: n(d, "document_info") as u32,
                document_receiver: n(d, "document_receiver") as u32,
                receivers: list(d, "receivers")
                    .into_iter()
                    .map(|r| Receiver {
                        organ_id: s(r, "organ_id"),
                        receiver_type: n(r, "receiver_type") as u32,
                    })
                    .collect(),
            }),
            replacements: list(&bz, "replacements")
                .into_iter()
                .map(|r| ReplacementInfo {
                    document_id: s(r, "document_id"),
                    organ_ids: strs(r, "organ_ids"),
                })
                .collect(),
            staff: obj(&bz, "staff").map(staff),
        },
        attachments: list(v, "attachments")
            .into_iter()
            .map(|a| Attachment {
                content_id: s(a, "content_id"),
                name: s(a, "name"),
                content_type: s(a, "content_type"),
                description: s(a, "description"),
                size: n(a, "size"),
                sha256: b(a, "sha256").try_into().unwrap(),
            })
            .collect(),
        signature: None,
        trace: Vec::new(),
        created_at: i(v, "created_at_unix_ms"),
        expires_at: (expires != 0).then_some(expires),
        edxml_preserved: b(v, "edxml_preserved"),
        imported: None,
    }
}

fn document_json(d: &Document) -> Value {
    let h = &d.header;
    let bz = &d.business;
    let mut business = json!({
        "business_type": bz.business_type as u8, "reason": bz.reason,
        "referenced_document_id": bz.referenced_document_id, "paper": bz.paper,
        "replacements": bz.replacements.iter().map(|r| json!({
            "document_id": r.document_id, "organ_ids": r.organ_ids})).collect::<Vec<_>>(),
    });
    if let Some(info) = &bz.document_info {
        business["document_info"] = json!({
            "document_info": info.document_info, "document_receiver": info.document_receiver,
            "receivers": info.receivers.iter().map(|r| json!({
                "organ_id": r.organ_id, "receiver_type": r.receiver_type})).collect::<Vec<_>>(),
        });
    }
    if let Some(st) = &bz.staff {
        business["staff"] = staff_json(st);
    }
    json!({
        "id": d.id.as_str(),
        "from": organization_json(&d.from),
        "to": d.to.iter().map(organization_json).collect::<Vec<_>>(),
        "header": {
            "code": {"number": h.code.number, "notation": h.code.notation},
            "promulgation": {"place": h.promulgation.place, "date": h.promulgation.date},
            "document_type": {"kind": h.document_type.kind, "detail": h.document_type.detail,
                              "name": h.document_type.name},
            "subject": h.subject, "content": h.content,
            "signer": {"competence": h.signer.competence, "position": h.signer.position,
                       "full_name": h.signer.full_name},
            "due_date": h.due_date, "to_places": h.to_places,
            "other": {"priority": h.other.priority as u8,
                      "sphere_of_promulgation": h.other.sphere_of_promulgation,
                      "typist_notation": h.other.typist_notation,
                      "promulgation_amount": h.other.promulgation_amount,
                      "page_amount": h.other.page_amount, "appendixes": h.other.appendixes},
            "response_for": h.response_for.iter().map(response_for_json).collect::<Vec<_>>(),
            "steering_type": h.steering_type,
        },
        "business": business,
        "attachments": d.attachments.iter().map(|a| json!({
            "content_id": a.content_id, "name": a.name, "content_type": a.content_type,
            "description": a.description, "size": a.size, "sha256": B64.encode(a.sha256),
        })).collect::<Vec<_>>(),
        "created_at_unix_ms": d.created_at,
        "expires_at_unix_ms": d.expires_at.unwrap_or(0),
        "edxml_preserved": B64.encode(&d.edxml_preserved),
    })
}

fn status(v: &Value) -> StatusNotice {
    StatusNotice {
        id: DocumentId::parse(&s(v, "id")).unwrap(),
        from: organization(&v["from"]),
        to: AgencyCode::parse_canonical(&s(v, "to")).unwrap(),
        response_for: response_for(&v["response_for"]),
        staff: obj(v, "staff").map(staff),
        code: StatusCode::parse_canonical(&s(v, "status_code")).unwrap(),
        description: s(v, "description"),
        at: i(v, "at_unix_ms"),
        signature: None,
        trace: Vec::new(),
        edxml_preserved: b(v, "edxml_preserved"),
        imported: None,
    }
}

fn status_json(n: &StatusNotice) -> Value {
    let mut v = json!({
        "id": n.id.as_str(), "from": organization_json(&n.from), "to": n.to.as_str(),
        "response_for": response_for_json(&n.response_for), "status_code": n.code.code(),
        "description": n.description, "at_unix_ms": n.at,
        "edxml_preserved": B64.encode(&n.edxml_preserved),
    });
    if let Some(st) = &n.staff {
        v["staff"] = staff_json(st);
    }
    v
}

// ---- keys --------------------------------------------------------------------------------

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(body).unwrap()
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

// ---- the check ---------------------------------------------------------------------------

fn canonical_of(v: &Value) -> Vec<u8> {
    match v["kind"].as_str().unwrap() {
        "document" => {
            let d = document(&v["message"]);
            assert_eq!(
                document_json(&d),
                v["message"],
                "{}: the JSON maps completely",
                v["name"]
            );
            document_bytes(&d)
        }
        "status_notice" => {
            let n = status(&v["message"]);
            assert_eq!(
                status_json(&n),
                v["message"],
                "{}: the JSON maps completely",
                v["name"]
            );
            status_bytes(&n)
        }
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn signing_vectors_match_the_code() {
    if std::env::var_os("LIENTHONG_WRITE_VECTORS").is_some() {
        write_vectors();
    }
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = v["name"].as_str().unwrap().to_string();
        let canonical = canonical_of(&v);
        assert_eq!(
            hex::encode(&canonical),
            v["canonical_hex"],
            "{name}: canonical bytes"
        );
        assert_eq!(
            hex::encode(sha256(&canonical)),
            v["sha256_hex"],
            "{name}: digest"
        );
        let algorithm = SignatureAlgorithm::parse(v["algorithm"].as_str().unwrap()).unwrap();
        let key = SigningKey::from_pkcs8(&pem_to_der(v["private_key_pkcs8_pem"].as_str().unwrap()))
            .unwrap();
        assert_eq!(key.algorithm(), algorithm, "{name}");
        assert_eq!(
            hex::encode(key.public_key()),
            v["public_key_hex"],
            "{name}: public key"
        );
        let signature = hex::decode(v["signature_hex"].as_str().unwrap()).unwrap();
        verify(algorithm, &key.public_key(), &canonical, &signature)
            .unwrap_or_else(|e| panic!("{name}: the signature does not verify: {e}"));
        // Deterministic algorithms: the key makes exactly this signature.
        if algorithm != SignatureAlgorithm::EcdsaP256Sha256 {
            assert_eq!(
                hex::encode(key.sign(&canonical).unwrap()),
                v["signature_hex"],
                "{name}"
            );
        }
        // And one changed byte fails.
        let mut other = canonical.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(
            verify(algorithm, &key.public_key(), &other, &signature).is_err(),
            "{name}"
        );
        checked += 1;
    }
    assert!(
        checked >= 4,
        "expected the vectors of docs/vectors, found {checked}"
    );
}

// ---- writing the vectors ------------------------------------------------------------------

fn code(c: &str) -> AgencyCode {
    AgencyCode::parse_canonical(c).unwrap()
}

fn minimal_document() -> Document {
    let mut d = Document::new(code("000.00.00.H41"), vec![code("001.00.20.H42")]);
    d.id = DocumentId::parse("000.00.00.H41,2026/12/05,17/UBND-VP").unwrap();
    d.header.subject = "Về việc thử nghiệm trục liên thông".into();
    d.created_at = 1_796_486_400_000;
    d
}

fn full_document() -> Document {
    let mut d = minimal_document();
    d.id = DocumentId::parse("c0ffee00-0000-4000-8000-000000000001").unwrap();
    d.from.in_charge = "UBND tỉnh Nghệ An".into();
    d.from.name = "Văn phòng UBND tỉnh".into();
    d.from.address = "16 Trường Thi, Vinh".into();
    d.from.email = "vanthu@nghean.gov.vn".into();
    d.from.telephone = "0238 3844 000".into();
    d.from.fax = "0238 3844 001".into();
    d.from.website = "https://nghean.gov.vn".into();
    d.to.push(Organization::with_code(code("000.00.00.G22")));
    let h = &mut d.header;
    h.code = CodeInfo {
        number: "17".into(),
        notation: "UBND-VP".into(),
    };
    h.promulgation = PromulgationInfo {
        place: "Nghệ An".into(),
        date: "2026/12/05".into(),
    };
    h.document_type = DocumentType {
        kind: 2,
        detail: 41,
        name: "Công văn".into(),
    };
    h.content = "Nội dung".into();
    h.signer = SignerInfo {
        competence: "KT. CHỦ TỊCH".into(),
        position: "Phó Chủ tịch".into(),
        full_name: "Nguyễn Văn A".into(),
    };
    h.due_date = "2026/12/31".into();
    h.to_places = vec!["Như trên".into(), "Lưu: VT".into()];
    h.other = OtherInfo {
        priority: Priority::Urgent,
        sphere_of_promulgation: "Toàn tỉnh".into(),
        typist_notation: "NVB".into(),
        promulgation_amount: 3,
        page_amount: 2,
        appendixes: vec!["Phụ lục I".into()],
    };
    h.response_for = vec![ResponseFor {
        organ_id: "000.00.00.G22".into(),
        code: "123/VPCP-KSTT".into(),
        promulgation_date: "2026/11/20".into(),
        document_id: "000.00.00.G22,2026/11/20,123/VPCP-KSTT".into(),
    }];
    h.steering_type = 1;
    d.business = Business {
        business_type: BusinessType::Update,
        reason: "Bổ sung nơi nhận".into(),
        referenced_document_id: "000.00.00.H41,2026/12/01,12/UBND-VP".into(),
        paper: 1,
        document_info: Some(BusinessDocumentInfo {
            document_info: 1,
            document_receiver: 1,
            receivers: vec![Receiver {
                organ_id: "000.00.00.G22".into(),
                receiver_type: 1,
            }],
        }),
        replacements: vec![ReplacementInfo {
            document_id: "000.00.00.H41,2026/11/01,5/UBND-VP".into(),
            organ_ids: vec!["001.00.20.H42".into()],
        }],
        staff: Some(StaffInfo {
            department: "Phòng Hành chính".into(),
            staff: "Trần Thị B".into(),
            email: "b@nghean.gov.vn".into(),
            mobile: "0912 000 000".into(),
        }),
    };
    d.attachments = vec![
        Attachment {
            content_id: "0-qd".into(),
            name: "quyet-dinh.pdf".into(),
            content_type: "application/pdf".into(),
            description: "Bản ký số".into(),
            size: 3,
            sha256: sha256(b"pdf"),
        },
        Attachment {
            content_id: "1-pl".into(),
            name: "phu-luc.docx".into(),
            content_type: String::new(),
            description: String::new(),
            size: 0,
            sha256: sha256(b""),
        },
    ];
    d.expires_at = Some(1_797_091_200_000);
    d.edxml_preserved = b"lienthong-edxml-preserved/1\n<edXML/>".to_vec();
    d
}

fn status_notice() -> StatusNotice {
    let mut n = StatusNotice::new(
        code("001.00.20.H42"),
        code("000.00.00.H41"),
        &minimal_document().id,
        StatusCode::Accepted,
    );
    n.id = DocumentId::parse("status-0001").unwrap();
    n.description = "Đã vào sổ".into();
    n.at = 1_796_490_000_000;
    n.staff = Some(StaffInfo {
        department: "Văn thư".into(),
        ..Default::default()
    });
    n
}

fn write_vectors() {
    let dir = vectors_dir();
    let existing_key = |file: &str| -> Option<String> {
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some(v["private_key_pkcs8_pem"].as_str()?.to_string())
    };
    let rsa = der_to_pem(include_bytes!("fixtures/rsa2048.pk8"));
    let cases: Vec<(&str, &str, &str, Value, Vec<u8>)> = vec![
        (
            "document-ed25519-minimal",
            "A document with one recipient and nothing else set: every absent field in its canonical form.",
            "document",
            document_json(&minimal_document()),
            document_bytes(&minimal_document()),
        ),
        (
            "document-ecdsa-p256-full",
            "Every field of a document set, two recipients and two attachments (one empty), an expiry, an update's business block.",
            "document",
            document_json(&full_document()),
            document_bytes(&full_document()),
        ),
        (
            "document-rsa-pkcs1-full",
            "The same document signed with an RSA-2048 key, as government CAs issue.",
            "document",
            document_json(&full_document()),
            document_bytes(&full_document()),
        ),
        (
            "status-ed25519-accepted",
            "A status notice 03 (accepted and registered) from the recipient back to the sender.",
            "status_notice",
            status_json(&status_notice()),
            status_bytes(&status_notice()),
        ),
    ];
    for (name, description, kind, message, canonical) in cases {
        let file = format!("{name}.json");
        let pem = existing_key(&file).unwrap_or_else(|| {
            if name.contains("rsa") {
                rsa.clone()
            } else {
                panic!("{file}: put a key in it first (openssl genpkey -algorithm ed25519 | EC -pkeyopt ec_paramgen_curve:P-256)")
            }
        });
        let key = SigningKey::from_pkcs8(&pem_to_der(&pem)).unwrap();
        let v = json!({
            "name": name,
            "description": description,
            "kind": kind,
            "message": message,
            "canonical_hex": hex::encode(&canonical),
            "sha256_hex": hex::encode(sha256(&canonical)),
            "algorithm": key.algorithm().as_str(),
            "private_key_pkcs8_pem": pem,
            "public_key_hex": hex::encode(key.public_key()),
            "signature_hex": hex::encode(key.sign(&canonical).unwrap()),
        });
        std::fs::write(
            dir.join(file),
            serde_json::to_string_pretty(&v).unwrap() + "\n",
        )
        .unwrap();
    }
}
