//! hash-file and the sendEdoc body, the timestamp, the JSON answers and getEdoc's
//! streamed answer, against values computed with Python (each constant says how).

use base64::Engine;
use lienthong_vxp::ErrorCode;
use lienthong_vxp::get_edoc::{Base64Chunker, GetEdocDecoder, TAIL, success_head};
use lienthong_vxp::hash_file::{
    BodyFraming, EdocHasher, hash_file_hex, hash_file_matches, hash_file_of, strip_body_crlf,
};
use lienthong_vxp::response::{
    AgencyEntry, CountResponse, DataResponse, Outcome, ReceivedEdoc, SendEdocResponse, SentEdoc,
    SyncUnit, to_ascii_json,
};
use lienthong_vxp::timestamp::{VIETNAM, check_freshness, format_timestamp, parse_timestamp};
use lienthong_vxp::{VxpError, error::BackendError};
use time::macros::datetime;

const EDOC: &[u8] = include_bytes!("fixtures/edoc.edxml");

/// `''.join('%x' % b for b in hashlib.sha256(b"vxp-43").digest())`: 58 characters, six
/// bytes below 0x10. Padded: `hashlib.sha256(b"vxp-43").hexdigest()`.
const VXP43_HASH_FILE: &str = "fc3d872d3c5d60156630e7fe9e8fb3dcd3a2920e2ff77ebde1d442dda9";
const VXP43_PADDED: &str = "fc3d8702d3c50d60156630e70fe9e80fb3dc0d3a2920e2ff77ebde1d0442dda9";
/// The same for the published edoc.edxml (61 characters).
const EDOC_HASH_FILE: &str = "7e4a746b898d9b54749de74b58e7bd24c8b86287a386653f6593adf9db5eb";

#[test]
fn hash_file_is_unpadded_hex() {
    assert_eq!(hash_file_of(b"vxp-43"), VXP43_HASH_FILE);
    assert_eq!(hash_file_of(EDOC), EDOC_HASH_FILE);
    // SHA-256("") has no byte below 0x10: both forms agree.
    assert_eq!(
        hash_file_of(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn hash_file_matches_the_sdk_form_the_padded_form_and_either_case() {
    let digest = hex::decode(VXP43_PADDED).unwrap();
    assert!(hash_file_matches(VXP43_HASH_FILE, &digest));
    assert!(hash_file_matches(VXP43_PADDED, &digest));
    assert!(hash_file_matches(&VXP43_HASH_FILE.to_uppercase(), &digest));
    assert!(!hash_file_matches(&VXP43_HASH_FILE[1..], &digest));
    assert_eq!(hash_file_hex(&digest), VXP43_HASH_FILE);
}

#[test]
fn strips_exactly_one_trailing_crlf() {
    assert_eq!(strip_body_crlf(b"abc\r\n\r\n"), b"abc\r\n");
    assert_eq!(strip_body_crlf(b"abc\n"), b"abc\n");
    assert_eq!(strip_body_crlf(b"\r\n"), b"");
}

/// Feeds `body` to an [`EdocHasher`] in chunks of `size`, returning what it released
/// and its verdict.
fn hash_in_chunks(
    body: &[u8],
    size: usize,
    hash_file: &str,
) -> (
    Vec<u8>,
    Result<lienthong_vxp::hash_file::EdocDigest, [u8; 32]>,
) {
    let mut hasher = EdocHasher::new();
    let mut released = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        released.extend(hasher.update(chunk));
    }
    let verdict = hasher.finish(hash_file);
    if let Ok(d) = &verdict {
        released.extend_from_slice(&d.tail);
    }
    (released, verdict)
}

#[test]
fn edoc_hasher_strips_the_sdk_crlf_in_any_chunking() {
    // The published file itself ends in CRLF; the SDK adds one more.
    assert!(EDOC.ends_with(b"\r\n"));
    let mut body = EDOC.to_vec();
    body.extend_from_slice(b"\r\n");
    for size in [1, 2, 3, 7, 1000, body.len()] {
        let (file, verdict) = hash_in_chunks(&body, size, EDOC_HASH_FILE);
        let digest = verdict.unwrap();
        assert_eq!(digest.framing, BodyFraming::TrailingCrlf);
        assert_eq!(file, EDOC, "chunks of {size}");
        assert_eq!(digest.len, EDOC.len() as u64);
    }
}

#[test]
fn edoc_hasher_takes_a_body_without_crlf_whole() {
    let (file, verdict) = hash_in_chunks(b"vxp-43", 4, VXP43_HASH_FILE);
    let digest = verdict.unwrap();
    assert_eq!(digest.framing, BodyFraming::Bare);
    assert_eq!(file, b"vxp-43");
}

#[test]
fn edoc_hasher_rejects_a_body_not_matching_hash_file() {
    let mut body = EDOC.to_vec();
    body[10] ^= 1;
    body.extend_from_slice(b"\r\n");
    let (_, verdict) = hash_in_chunks(&body, 100, EDOC_HASH_FILE);
    let computed = verdict.unwrap_err();
    assert_eq!(
        hash_file_hex(&computed),
        hash_file_of(&body[..body.len() - 2])
    );
}

#[test]
fn formats_and_parses_the_reference_timestamp() {
    // vxp-rest.md §1: 05122026T075731+0423 = 5 Dec 2026 07:57:31.423.
    let t = datetime!(2026-12-05 07:57:31.423);
    assert_eq!(format_timestamp(t), "05122026T075731+0423");
    assert_eq!(parse_timestamp("05122026T075731+0423").unwrap(), t);
    assert_eq!(
        format_timestamp(datetime!(2019-01-07 00:00:00.005)),
        "07012019T000000+0005"
    );
}

#[test]
fn rejects_malformed_timestamps() {
    for bad in [
        "",
        "05122026 075731+0423",
        "05122026T075731+04",
        "32122026T075731+0423",
        "05132026T075731+0423",
        "05122026T245731+0423",
        "05122026T075731+1000",
        "0512202aT075731+0423",
    ] {
        let err = parse_timestamp(bad).unwrap_err();
        assert!(
            matches!(&err, VxpError::InvalidInput { key: "timestamp", value, .. } if value == bad),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn freshness_window_compares_in_the_configured_zone() {
    let window = std::time::Duration::from_secs(300);
    // 07:57:31 in Vietnam is 00:57:31 UTC.
    let now = datetime!(2026-12-05 00:59:00 UTC);
    check_freshness("05122026T075731+0423", VIETNAM, window, now).unwrap();
    let err = check_freshness("05122026T074731+0423", VIETNAM, window, now).unwrap_err();
    assert!(
        matches!(&err, VxpError::StaleTimestamp { reason, .. } if reason.contains("300 s")),
        "{err:?}"
    );
    // In the future as well.
    let err = check_freshness("05122026T081731+0423", VIETNAM, window, now).unwrap_err();
    assert!(matches!(err, VxpError::StaleTimestamp { .. }), "{err:?}");
}

#[test]
fn success_and_failure_have_the_sdk_fields() {
    let ok = to_ascii_json(&Outcome::success());
    assert_eq!(
        ok,
        r#"{"status":"OK","ErrorCode":"0","ErrorDesc":"Success"}"#
    );
    let fail = to_ascii_json(&SendEdocResponse {
        outcome: Outcome::from_error(&VxpError::BadMac {
            system_id: "dms".into(),
        }),
        doc_id: String::new(),
    });
    let v: serde_json::Value = serde_json::from_str(&fail).unwrap();
    assert_eq!(v["status"], "FAIL");
    assert_eq!(v["ErrorCode"], "104");
    assert_eq!(v["DocId"], "", "DocId is present on a sendEdoc failure");
    assert!(v["ErrorDesc"].as_str().unwrap().contains("secret"));
}

#[test]
fn error_codes_are_distinct_and_never_zero_for_failures() {
    let errors = [
        VxpError::MissingHeader { name: "x".into() },
        VxpError::MalformedSignHeader { reason: "x".into() },
        VxpError::UnknownSystem {
            system_id: "x".into(),
        },
        VxpError::BadMac {
            system_id: "x".into(),
        },
        VxpError::TamperedHeader {
            key: "x".into(),
            signed: "a".into(),
            actual: "b".into(),
        },
        VxpError::StaleTimestamp {
            timestamp: "x".into(),
            reason: "x".into(),
        },
        VxpError::MissingInput { op: "o", key: "k" },
        VxpError::AgencyNotAllowed {
            system_id: "s".into(),
            agency: "a".into(),
        },
        VxpError::HashFileMismatch {
            signed: "a".into(),
            computed: "b".into(),
        },
        VxpError::BodyTooLarge { limit: 1 },
        VxpError::BodyUnreadable { reason: "x".into() },
        VxpError::UnsupportedOperation { op: "x".into() },
        VxpError::Backend(BackendError::NotFound("x".into())),
        VxpError::Backend(BackendError::Refused("x".into())),
        VxpError::Backend(BackendError::Conflict("x".into())),
        VxpError::Backend(BackendError::Unavailable("x".into())),
        VxpError::Backend(BackendError::Internal("x".into())),
    ];
    let codes: std::collections::HashSet<&str> = errors.iter().map(|e| e.code().as_str()).collect();
    assert_eq!(codes.len(), errors.len());
    assert!(!codes.contains(ErrorCode::Success.as_str()));
}

#[test]
fn json_is_ascii_with_unicode_escapes() {
    let json = to_ascii_json(&Outcome::failure(
        ErrorCode::Refused,
        "Thành công? Không: văn bản 𝄞",
    ));
    assert!(json.is_ascii(), "{json}");
    assert!(json.contains(r"Th\u00e0nh c\u00f4ng"), "{json}");
    assert!(
        json.contains(r"\ud834\udd1e"),
        "a surrogate pair above U+FFFF: {json}"
    );
    let back: Outcome = serde_json::from_str(&json).unwrap();
    assert_eq!(back.error_desc, "Thành công? Không: văn bản 𝄞");
}

fn assert_no_null(v: &serde_json::Value, path: &str) {
    match v {
        serde_json::Value::Null => panic!("null at {path}"),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, x)| assert_no_null(x, &format!("{path}[{i}]"))),
        serde_json::Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| assert_no_null(x, &format!("{path}.{k}"))),
        _ => {}
    }
}

#[test]
fn never_writes_null() {
    let answers = [
        to_ascii_json(&DataResponse {
            outcome: Outcome::success(),
            data: Some(vec![
                ReceivedEdoc::default(),
                ReceivedEdoc {
                    doc_id: Some("D".into()),
                    ..Default::default()
                },
            ]),
        }),
        to_ascii_json(&DataResponse {
            outcome: Outcome::success(),
            data: Some(vec![SentEdoc::default()]),
        }),
        to_ascii_json(&DataResponse {
            outcome: Outcome::success(),
            data: Some(vec![SyncUnit::default()]),
        }),
        to_ascii_json(&DataResponse::<AgencyEntry> {
            outcome: Outcome::failure(ErrorCode::Internal, "x"),
            data: None,
        }),
        to_ascii_json(&CountResponse {
            outcome: Outcome::failure(ErrorCode::Internal, "x"),
            count: None,
        }),
    ];
    for json in answers {
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_no_null(&v, "$");
        for field in ["status", "ErrorCode", "ErrorDesc"] {
            assert!(v[field].is_string(), "{field} in {json}");
        }
    }
    // An empty item is an empty object, which the SDK reads as all fields absent.
    let json = to_ascii_json(&DataResponse {
        outcome: Outcome::success(),
        data: Some(vec![ReceivedEdoc::default()]),
    });
    assert!(json.ends_with(r#""data":[{}]}"#), "{json}");
}

#[test]
fn reads_answers_as_leniently_as_the_sdk() {
    let count: CountResponse =
        serde_json::from_str(r#"{"status":"OK","ErrorCode":0,"ErrorDesc":true,"count":"3"}"#)
            .unwrap();
    assert_eq!(count.outcome.error_code, "0");
    assert_eq!(count.outcome.error_desc, "true");
    assert_eq!(count.count, Some(3));
    assert!(count.outcome.is_success());

    let units: DataResponse<SyncUnit> = serde_json::from_str(
        r#"{"status":"OK","ErrorCode":"0","ErrorDesc":"","data":[{"code":"X","id":12,"version":"2","deleted":"false","isAgency":true,"pid":null},null]}"#,
    )
    .unwrap();
    let data = units.data.unwrap();
    assert_eq!(data.len(), 1, "a null item is skipped");
    assert_eq!(data[0].id.as_deref(), Some("12"));
    assert_eq!(data[0].version, Some(2));
    assert_eq!(data[0].deleted, Some(false));
    assert_eq!(data[0].pid, None);

    let missing: Result<Outcome, _> = serde_json::from_str(r#"{"status":"OK","errorCode":"0"}"#);
    assert!(
        missing.unwrap_err().to_string().contains("ErrorCode"),
        "lower-case errorCode is not ErrorCode"
    );
}

/// The getEdoc answer the gateway writes, in chunks of `chunk`.
fn encoded_answer(content: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = success_head().into_bytes();
    let mut b64 = Base64Chunker::default();
    for piece in content.chunks(chunk.max(1)) {
        out.extend_from_slice(b64.encode(piece).as_bytes());
    }
    out.extend_from_slice(b64.finish().as_bytes());
    out.extend_from_slice(TAIL);
    out
}

fn decode_in_pieces(
    answer: &[u8],
    piece: usize,
) -> (Vec<u8>, lienthong_vxp::get_edoc::GetEdocAnswer) {
    let mut decoder = GetEdocDecoder::new();
    let mut out = Vec::new();
    for p in answer.chunks(piece.max(1)) {
        decoder.push(p, &mut out).unwrap();
    }
    (out, decoder.finish().unwrap())
}

#[test]
fn get_edoc_answer_streams_both_ways() {
    let content: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    for (chunk, piece) in [(1, 1), (2, 7), (3, 4096), (4099, 13), (40_000, 40_000)] {
        let answer = encoded_answer(&content, chunk);
        // It is the JSON a whole-body encoder writes.
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            v["data"].as_str().unwrap(),
            base64::engine::general_purpose::STANDARD.encode(&content)
        );
        let (decoded, result) = decode_in_pieces(&answer, piece);
        assert_eq!(decoded, content, "chunk {chunk}, piece {piece}");
        assert!(result.outcome.is_success());
        assert!(result.had_data);
    }
}

#[test]
fn get_edoc_decoder_reads_what_other_servers_write() {
    // data first, outcome last, MIME line breaks, an escaped slash, URL-safe letters,
    // a number ErrorCode, unknown fields of every kind.
    let content = b"\xfb\xff\xbf<edXML/>".to_vec();
    let std = base64::engine::general_purpose::STANDARD.encode(&content);
    let mime = format!("{}\\r\\n{}", &std[..8], &std[8..]).replace('/', "\\/");
    let url_safe = base64::engine::general_purpose::URL_SAFE.encode(&content);
    for data in [mime, url_safe] {
        let answer = format!(
            r#" {{ "data" : "{data}", "extra": {{"a":[1,"}}"]}}, "n": -1.5e3, "ok": null, "status":"OK","ErrorCode":0,"ErrorDesc":"Th\u00e0nh c\u00f4ng" }} "#
        );
        let (decoded, result) = decode_in_pieces(answer.as_bytes(), 5);
        assert_eq!(decoded, content, "{answer}");
        assert_eq!(result.outcome.error_code, "0");
        assert_eq!(result.outcome.error_desc, "Thành công");
        assert!(result.outcome.is_success());
    }
}

#[test]
fn get_edoc_decoder_reports_a_failure_without_data() {
    let answer = to_ascii_json(&Outcome::failure(ErrorCode::NotFound, "no such document"));
    let (decoded, result) = decode_in_pieces(answer.as_bytes(), 3);
    assert!(decoded.is_empty());
    assert!(!result.had_data);
    assert_eq!(result.outcome.error_code, "201");
}

#[test]
fn get_edoc_decoder_rejects_a_truncated_or_incomplete_answer() {
    let answer = encoded_answer(b"hello", 5);
    let mut decoder = GetEdocDecoder::new();
    decoder
        .push(&answer[..answer.len() - 1], &mut Vec::new())
        .unwrap();
    let err = decoder.finish().unwrap_err();
    assert!(
        matches!(&err, VxpError::BadResponse { reason, .. } if reason.contains("closing brace")),
        "{err:?}"
    );

    let mut decoder = GetEdocDecoder::new();
    decoder
        .push(br#"{"status":"OK","data":"aGk="}"#, &mut Vec::new())
        .unwrap();
    let err = decoder.finish().unwrap_err();
    assert!(
        matches!(&err, VxpError::BadResponse { reason, .. } if reason.contains("ErrorCode")),
        "{err:?}"
    );

    let mut decoder = GetEdocDecoder::new();
    let err = decoder.push(b"<html>", &mut Vec::new()).unwrap_err();
    assert!(matches!(err, VxpError::BadResponse { .. }), "{err:?}");
}

mod reader_body {
    use base64::Engine;
    use http_body::Body;
    use http_body_util::BodyExt;
    use lienthong_vxp::body::ReaderBody;

    fn reader(bytes: &'static [u8]) -> lienthong_vxp::body::EdocReader {
        Box::pin(std::io::Cursor::new(bytes))
    }

    #[tokio::test]
    async fn base64_body_is_head_encoding_tail_with_an_exact_length() {
        let content: &'static [u8] = b"<edXML>Th\xc3\xa0nh c\xc3\xb4ng</edXML>";
        let body = ReaderBody::base64(
            "{\"data\":\"",
            reader(content),
            Some(content.len() as u64),
            "\"}",
        );
        let expected = format!(
            "{{\"data\":\"{}\"}}",
            base64::engine::general_purpose::STANDARD.encode(content)
        );
        assert_eq!(body.size_hint().exact(), Some(expected.len() as u64));
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(out, expected.as_bytes());
    }

    #[tokio::test]
    async fn rejects_a_message_that_ends_before_its_length() {
        let body = ReaderBody::raw("", reader(b"0123456789"), Some(20), "");
        let err = body.collect().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("10 of its 20 bytes"), "{err}");
    }

    #[tokio::test]
    async fn rejects_a_message_longer_than_its_length() {
        let body = ReaderBody::base64("", reader(b"0123456789"), Some(4), "");
        let err = body.collect().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
