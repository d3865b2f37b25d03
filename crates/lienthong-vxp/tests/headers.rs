//! The signed headers, both directions, against the reference's worked example and HMACs
//! computed with Python (each constant says how).

use http::{HeaderMap, HeaderName, HeaderValue};
use lienthong_vxp::headers::{
    SignedHeaders, gson_object, java_hash_map_order, parse_flat_object, verify,
};
use lienthong_vxp::ops::{MessageType, Operation, OperationKind, SendEdoc};
use lienthong_vxp::{DeliveryStatus, Secret, VxpError};

/// The reference's worked example (vxp-rest.md §1), recorded from the SDK.
const EXAMPLE_SIGN_HEADER: &str = r#"{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-timestamp":"05122026T075928+0200","XroadVnpt-Content-Type":"application/json"}"#;
const EXAMPLE_HASH: &str = "17bf2a0735f9a10d057d93daa3128dee4d94c00be374e182731eb60dc3bfa1fd";

/// A sendEdoc sign-header and its HMAC under the secret `bí-mật/Zm9vYmFy+==` (non-ASCII:
/// the key is the secret's UTF-8 bytes), computed with
/// `python3 -c 'import hmac,hashlib;print(hmac.new("bí-mật/Zm9vYmFy+==".encode(),
/// SIGN_HEADER.encode(),hashlib.sha256).hexdigest())'`.
const SEND_SECRET: &str = "bí-mật/Zm9vYmFy+==";
const SEND_SIGN_HEADER: &str = r#"{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-servicetype":"eDoc","XroadVnpt-messagetype":"edoc","XroadVnpt-hash-file":"7e4a746b898d9b54749de74b58e7bd24c8b86287a386653f6593adf9db5eb","XroadVnpt-from":"000.00.00.H41","XroadVnpt-timestamp":"05122026T075731+0423","XroadVnpt-Content-Type":"application/octet-stream"}"#;
const SEND_HASH: &str = "95647d4245d1791ebd0f40c5c737349bc44756a6f0d8ec54eb604bda3ded47fe";

fn secrets(id: &'static str, secret: &'static str) -> impl Fn(&str) -> Option<Secret> {
    move |system| (system == id).then(|| Secret::new(secret))
}

fn example_entries() -> Vec<(String, String)> {
    vec![
        ("systemid".into(), "000.00.00.H41".into()),
        ("timestamp".into(), "05122026T075928+0200".into()),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// The headers of the worked example as they were recorded, not built by the crate.
fn example_headers() -> HeaderMap {
    headers(&[
        ("XroadVnpt-systemid", "000.00.00.H41"),
        ("XroadVnpt-timestamp", "05122026T075928+0200"),
        ("XroadVnpt-Content-Type", "application/json"),
        ("Content-Type", "application/json"),
        (
            "XroadVnpt-sign-header-key",
            "systemid;timestamp;Content-Type",
        ),
        ("XroadVnpt-sign-header", EXAMPLE_SIGN_HEADER),
        ("XroadVnpt-hash-header", EXAMPLE_HASH),
        ("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP"),
        ("XroadVnpt-version", "3.0.201608"),
    ])
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    map
}

fn set(map: &mut HeaderMap, name: &'static str, value: &str) {
    map.insert(name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
}

#[test]
fn builds_the_reference_worked_example() {
    let signed = SignedHeaders::new(example_entries());
    assert_eq!(signed.sign_header(), EXAMPLE_SIGN_HEADER);
    assert_eq!(signed.sign_header_key(), "systemid;timestamp;Content-Type");
    let built = signed.to_http_headers(&Secret::new("test-secret"));
    let expected: Vec<(String, String)> = [
        ("XroadVnpt-systemid", "000.00.00.H41"),
        ("XroadVnpt-timestamp", "05122026T075928+0200"),
        ("XroadVnpt-Content-Type", "application/json"),
        ("Content-Type", "application/json"),
        (
            "XroadVnpt-sign-header-key",
            "systemid;timestamp;Content-Type",
        ),
        ("XroadVnpt-sign-header", EXAMPLE_SIGN_HEADER),
        ("XroadVnpt-hash-header", EXAMPLE_HASH),
        ("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP"),
        ("XroadVnpt-version", "3.0.201608"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(built, expected);
}

#[test]
fn signs_with_the_utf8_bytes_of_a_non_ascii_secret() {
    let secret = Secret::new(SEND_SECRET);
    assert_eq!(secret.hash_header(SEND_SIGN_HEADER.as_bytes()), SEND_HASH);
    // And the operation builds that very sign-header.
    let op = Operation::SendEdoc(SendEdoc {
        from: "000.00.00.H41".into(),
        message_type: MessageType::Edoc,
        hash_file: "7e4a746b898d9b54749de74b58e7bd24c8b86287a386653f6593adf9db5eb".into(),
        to: None,
    });
    let signed = op.signed_headers("000.00.00.H41", "05122026T075731+0423");
    assert_eq!(signed.sign_header(), SEND_SIGN_HEADER);
}

#[test]
fn sdk_key_order_matches_the_recorded_orders() {
    let send = Operation::SendEdoc(SendEdoc {
        from: "000.00.00.H41".into(),
        message_type: MessageType::Edoc,
        hash_file: "ab".into(),
        to: None,
    });
    // Recorded by the reference (§1 step 5 and the worked example).
    assert_eq!(
        send.signed_headers("s", "t").sign_header_key(),
        "systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type"
    );
    assert_eq!(
        Operation::GetAgenciesList
            .signed_headers("s", "t")
            .sign_header_key(),
        "systemid;timestamp;Content-Type"
    );
    // Bucket indexes computed with Python from String.hashCode, (h ^ h >>> 16) & 15:
    // systemid 2, docId 6, timestamp 15, Content-Type 15, status 15 (inserted last).
    let update = Operation::UpdateStatus {
        status: DeliveryStatus::Done,
        doc_id: "d".into(),
    };
    assert_eq!(
        update.signed_headers("s", "t").sign_header_key(),
        "systemid;docId;timestamp;Content-Type;status"
    );
}

#[test]
fn java_hash_map_order_grows_the_table_past_twelve_keys() {
    // 13 keys exceed 16 * 0.75, so Java doubles the table to 32 buckets. Expected order
    // computed with Python from String.hashCode and (h ^ h >>> 16) & 31.
    let keys = [
        "timestamp",
        "systemid",
        "Content-Type",
        "from",
        "servicetype",
        "messagetype",
        "hash-file",
        "to",
        "docId",
        "filePath",
        "status",
        "level",
        "AgencyCode",
    ];
    let order: Vec<&str> = java_hash_map_order(&keys)
        .into_iter()
        .map(|i| keys[i])
        .collect();
    assert_eq!(
        order.join(";"),
        "systemid;messagetype;level;docId;filePath;servicetype;hash-file;AgencyCode;from;to;timestamp;Content-Type;status"
    );
}

#[test]
fn gson_escapes_as_gson_does_without_html_escaping() {
    let json = gson_object([("XroadVnpt-k", "a\"b\\c\td\u{1}e\u{2028}ỉ<>&=' /")]);
    assert_eq!(
        json,
        "{\"XroadVnpt-k\":\"a\\\"b\\\\c\\td\\u0001e\\u2028ỉ<>&=' /\"}"
    );
    let parsed = parse_flat_object(&json).unwrap();
    assert_eq!(parsed[0].1, "a\"b\\c\td\u{1}e\u{2028}ỉ<>&=' /");
}

#[test]
fn verifies_the_recorded_worked_example() {
    let verified = verify(&example_headers(), &secrets("000.00.00.H41", "test-secret")).unwrap();
    assert_eq!(verified.system_id, "000.00.00.H41");
    assert_eq!(verified.signed.entries(), example_entries().as_slice());
}

#[test]
fn verifies_an_uppercase_hash_header_and_lowercase_header_names() {
    let mut map = HeaderMap::new();
    for (k, v) in example_headers().iter() {
        // HTTP/1.1 header names arrive in any case; hyper lowercases them.
        map.append(k.clone(), v.clone());
    }
    set(
        &mut map,
        "xroadvnpt-hash-header",
        &EXAMPLE_HASH.to_uppercase(),
    );
    verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap();
}

#[test]
fn rejects_unknown_system() {
    let err = verify(&example_headers(), &secrets("someone-else", "test-secret")).unwrap_err();
    assert!(
        matches!(&err, VxpError::UnknownSystem { system_id } if system_id == "000.00.00.H41"),
        "{err:?}"
    );
}

#[test]
fn rejects_bad_mac_from_a_wrong_secret() {
    let err = verify(&example_headers(), &secrets("000.00.00.H41", "Test-secret")).unwrap_err();
    assert!(matches!(err, VxpError::BadMac { .. }), "{err:?}");
}

#[test]
fn rejects_bad_mac_when_the_sign_header_changed() {
    let mut map = example_headers();
    // Same meaning, one space more: the MAC is over the received bytes.
    set(
        &mut map,
        "XroadVnpt-sign-header",
        &EXAMPLE_SIGN_HEADER.replace(",", ", "),
    );
    let err = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap_err();
    assert!(matches!(err, VxpError::BadMac { .. }), "{err:?}");
}

#[test]
fn rejects_tampered_header() {
    let mut map = example_headers();
    set(&mut map, "XroadVnpt-timestamp", "06122026T075928+0200");
    let err = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap_err();
    assert!(
        matches!(&err, VxpError::TamperedHeader { key, signed, actual }
            if key == "timestamp" && signed == "05122026T075928+0200" && actual == "06122026T075928+0200"),
        "{err:?}"
    );
}

#[test]
fn rejects_missing_signed_header() {
    let mut map = example_headers();
    map.remove("XroadVnpt-Content-Type");
    let err = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap_err();
    assert!(
        matches!(&err, VxpError::MissingHeader { name } if name == "XroadVnpt-Content-Type"),
        "{err:?}"
    );
}

#[test]
fn rejects_missing_hash_header() {
    let mut map = example_headers();
    map.remove("XroadVnpt-hash-header");
    let err = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap_err();
    assert!(
        matches!(&err, VxpError::MissingHeader { name } if name == "XroadVnpt-hash-header"),
        "{err:?}"
    );
}

/// Headers whose sign-header is `sign_header`, MACed with ring directly (not the crate).
fn with_sign_header(sign_header: &str, secret: &str) -> HeaderMap {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hex::encode(ring::hmac::sign(&key, sign_header.as_bytes()).as_ref());
    let mut map = example_headers();
    set(&mut map, "XroadVnpt-sign-header", sign_header);
    set(&mut map, "XroadVnpt-hash-header", &tag);
    map
}

#[test]
fn rejects_malformed_sign_header() {
    let store = secrets("000.00.00.H41", "test-secret");
    for (sign_header, reason) in [
        (r#"["XroadVnpt-systemid","000.00.00.H41"]"#, "expected '{'"),
        (r#"{"XroadVnpt-systemid":1}"#, "is not a string"),
        (
            r#"{"systemid":"000.00.00.H41"}"#,
            "does not start with XroadVnpt-",
        ),
        (
            r#"{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-systemid":"x"}"#,
            "appears twice",
        ),
        (
            r#"{"XroadVnpt-timestamp":"05122026T075928+0200"}"#,
            "does not sign systemid",
        ),
        (
            r#"{"XroadVnpt-systemid":"000.00.00.H41""#,
            "expected , or }",
        ),
    ] {
        let err = verify(&with_sign_header(sign_header, "test-secret"), &store).unwrap_err();
        match &err {
            VxpError::MalformedSignHeader { reason: got } => {
                assert!(got.contains(reason), "{sign_header}: {got}")
            }
            other => panic!("{sign_header}: {other:?}"),
        }
    }
}

#[test]
fn rejects_sign_header_key_that_disagrees_with_the_sign_header() {
    let mut map = example_headers();
    set(
        &mut map,
        "XroadVnpt-sign-header-key",
        "timestamp;systemid;Content-Type",
    );
    let err = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap_err();
    assert!(
        matches!(&err, VxpError::MalformedSignHeader { reason } if reason.contains("sign-header-key")),
        "{err:?}"
    );
}

#[test]
fn rejects_a_second_systemid_header() {
    let mut map = example_headers();
    map.append("XroadVnpt-systemid", HeaderValue::from_static("other"));
    let err = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap_err();
    assert!(
        matches!(&err, VxpError::DuplicateHeader { name } if name == "XroadVnpt-systemid"),
        "{err:?}"
    );
}

#[test]
fn keeps_the_received_key_order() {
    // Not the SDK's order: a server must not sort, and must verify it as received.
    let sign_header = r#"{"XroadVnpt-timestamp":"05122026T075928+0200","XroadVnpt-Content-Type":"application/json","XroadVnpt-systemid":"000.00.00.H41"}"#;
    let mut map = with_sign_header(sign_header, "test-secret");
    set(
        &mut map,
        "XroadVnpt-sign-header-key",
        "timestamp;Content-Type;systemid",
    );
    let verified = verify(&map, &secrets("000.00.00.H41", "test-secret")).unwrap();
    let keys: Vec<&str> = verified
        .signed
        .entries()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["timestamp", "Content-Type", "systemid"]);
}

#[test]
fn reads_inputs_case_insensitively_and_ignores_stale_keys() {
    let signed = SignedHeaders::new(vec![
        ("systemid".into(), "s".into()),
        ("hash-file".into(), "stale".into()),
        ("docid".into(), "D1".into()),
        ("status".into(), "DONE".into()),
        ("messagetype".into(), "edoc".into()),
    ]);
    let op = Operation::from_signed(OperationKind::UpdateStatus, &signed).unwrap();
    assert_eq!(
        op,
        Operation::UpdateStatus {
            status: DeliveryStatus::Done,
            doc_id: "D1".into()
        }
    );
}

#[test]
fn refuses_two_case_variants_with_different_values() {
    let signed = SignedHeaders::new(vec![
        ("docid".into(), "OLD".into()),
        ("docId".into(), "NEW".into()),
        ("status".into(), "done".into()),
    ]);
    let err = Operation::from_signed(OperationKind::UpdateStatus, &signed).unwrap_err();
    assert!(
        matches!(&err, VxpError::InvalidInput { key: "docId", value, .. } if value == "OLD and NEW"),
        "{err:?}"
    );
}

#[test]
fn rejects_messagetype_outside_the_protocol() {
    let signed = SignedHeaders::new(vec![("messagetype".into(), "fax".into())]);
    let err = Operation::from_signed(OperationKind::GetReceivedEdocList, &signed).unwrap_err();
    assert!(
        matches!(&err, VxpError::InvalidInput { key: "messagetype", value, .. } if value == "fax"),
        "{err:?}"
    );
}

#[test]
fn every_operation_survives_signing_and_verification() {
    let ops = vec![
        Operation::SendEdoc(SendEdoc {
            from: "000.00.00.H41".into(),
            message_type: MessageType::Status,
            hash_file: "abc".into(),
            to: Some(r#"["000.00.00.G22"]"#.into()),
        }),
        Operation::GetReceivedEdocList {
            message_type: MessageType::Edoc,
        },
        Operation::GetEdoc {
            doc_id: "D".into(),
            file_path: Some("C:\\edoc\\in".into()),
        },
        Operation::DownloadEdoc {
            doc_id: "D".into(),
            file_path: None,
        },
        Operation::UpdateStatus {
            status: DeliveryStatus::Processing,
            doc_id: "D".into(),
        },
        Operation::GetSentEdocList {
            message_type: MessageType::Edoc,
            doc_id: Some("D".into()),
        },
        Operation::GetSentEdocList {
            message_type: MessageType::Status,
            doc_id: None,
        },
        Operation::GetAgenciesList,
        Operation::GetAgenciesListQD20 { level: "1".into() },
        Operation::CountReceiveEdoc,
        Operation::CountReceiveStatus,
        Operation::GetSynchronizeUnit,
    ];
    for op in ops {
        let built = op
            .signed_headers("sys-1", "05122026T075731+0423")
            .to_http_headers(&Secret::new("k"));
        let mut map = HeaderMap::new();
        for (k, v) in &built {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        let verified = verify(&map, &secrets("sys-1", "k")).unwrap();
        let read = Operation::from_signed(op.kind(), &verified.signed).unwrap();
        assert_eq!(read, op);
        assert_eq!(
            map["content-type"],
            op.kind().content_type(),
            "{}",
            op.kind().name()
        );
    }
}
