//! `lienthong edxml check` on the edxml crate's fixtures, running the built binary.

use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    format!(
        "{}/../lienthong-edxml/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn check(path: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["edxml", "check", path])
        .output()
        .expect("the lienthong binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn summarizes_a_document_with_its_attachment_and_business_type() {
    let out = check(&fixture("edoc_update.edxml"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for expected in [
        "kind:        document (văn bản điện tử)",
        "from:        000.00.32.H40 Sở Thử Nghiệm tỉnh Mẫu",
        "to:          000.00.00.H40 UBND tỉnh Mẫu",
        "             003.01.32.H40 UBND xã Thử",
        "document id: 000.00.32.H40,2024/03/01,123/STN-VP",
        "code:        123/STN-VP",
        "subject:     V/v thử nghiệm trục liên thông văn bản & phần mềm QLVB",
        "business:    2 cập nhật (update) of 000.00.32.H40,2024/02/20,98/STN-VP",
        "  - cong-van-123.zip (application/zip), ",
        "      zip: cong-van-123.pdf (660 bytes)",
        "      zip: phu-luc.txt",
        "signature:   absent",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
}

#[test]
fn summarizes_a_status_with_its_vietnamese_meaning_and_a_verified_signature() {
    let out = check(&fixture("status_02.edxml"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("kind:        status (thông điệp trạng thái)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("status:      02 Từ chối tiếp nhận (rejected)"),
        "{stdout}"
    );

    let out = check(&fixture("edoc_signed_sha1.edxml"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("signature:   verified (rsa-sha1, signed by C=VN, O=lienthong test, CN=Van thu So Thu Nghiem)"),
        "{stdout}"
    );
}

#[test]
fn a_truncated_file_fails_with_file_and_line() {
    let path = fixture("broken_truncated.edxml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{path}:79: the message ends inside <edXML:MessageHeader>"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_failed_signature_is_reported_with_the_line_of_the_signature() {
    let path = fixture("edoc_revoke.edxml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("signature:   failed: the digest"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{path}:99: the signature does not verify")),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let out = check("/nonexistent/message.edxml");
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/message.edxml"));
}

/// A routable document whose MessageHeader holds `extra` on line 3.
fn document_with(extra: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><edXMLHeader><MessageHeader>\
         <From><OrganId>000.00.00.H41</OrganId></From><To><OrganId>000.00.14.H41</OrganId></To>\
         <DocumentId>000.00.00.H41,2026/11/24,15/UBND-VP</DocumentId>\n{extra}\n\
         </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>\n"
    )
}

#[test]
fn refuses_a_file_nested_a_million_deep_with_file_line_and_limit() {
    // Before the limit this crashed the process with a stack overflow (exit 134).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.edxml");
    let n = 1_000_000;
    std::fs::write(
        &path,
        document_with(&format!("{}{}", "<X>".repeat(n), "</X>".repeat(n))),
    )
    .unwrap();
    let path = path.display().to_string();
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{path}:3: <X> is nested deeper than {} levels, the most lienthong reads",
            lienthong_edxml::MAX_DEPTH
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
