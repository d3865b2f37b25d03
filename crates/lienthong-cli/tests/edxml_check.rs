//! `lienthong edxml check` on the edxml crate's fixtures, running the built binary.

use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    format!(
        "{}/../lienthong-edxml/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn check(path: &str) -> Output {
    check_with(path, &[])
}

fn check_with(path: &str, options: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["edxml", "check", path])
        .args(options)
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
fn a_failed_signature_is_a_warning_with_its_line_and_a_refusal_when_required() {
    let path = fixture("edoc_revoke.edxml");
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(text(&out.stdout).contains("signature:   failed: the digest"));
    assert!(
        stderr.starts_with(&format!(
            "{path}:99: warning: the signature does not verify"
        )),
        "{stderr}"
    );

    let out = check_with(&path, &["--require-signature"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{path}:99: the signature does not verify")),
        "{stderr}"
    );
}

#[test]
fn require_signature_refuses_an_unsigned_message_and_accepts_a_verified_one() {
    let path = fixture("edoc_update.edxml");
    let out = check_with(&path, &["--require-signature"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{path}:0: the message carries no XML-DSig signature, and --require-signature asks for one"
        )),
        "{stderr}"
    );
    let out = check_with(&fixture("edoc_signed_sha1.edxml"), &["--require-signature"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// A document from `from` to `to`, with one attachment whose encoded content is
/// `content`; `from` is on line 3, `to` on line 4, the content on line 9.
fn message(from: &str, to: &str, content: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><edXMLHeader><MessageHeader>\n\
         <From><OrganId>{from}</OrganId><OrganName>UBND xã Thử</OrganName></From>\n\
         <To><OrganId>{to}</OrganId><OrganName>UBND xã Mẫu</OrganName></To>\n\
         <DocumentId>000.00.00.H41,2026/11/24,15/UBND-VP</DocumentId>\n\
         </MessageHeader></edXMLHeader><edXMLBody><edXMLManifest><Reference><ContentId>cid:a1</ContentId>\n\
         <AttachmentName>cong-van.pdf</AttachmentName></Reference></edXMLManifest></edXMLBody></edXMLEnvelope>\n\
         <AttachmentEncoded><Attachment><ContentId>a1</ContentId><AttachmentName>cong-van.pdf</AttachmentName>\n\
         <ContentType>application/pdf</ContentType><ContentTransferEncoded>\n\
         {content}</ContentTransferEncoded></Attachment></AttachmentEncoded></edXML>\n"
    )
}

fn write_message(dir: &std::path::Path, name: &str, xml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path.display().to_string()
}

#[test]
fn identifiers_it_cannot_place_are_warnings_with_the_reason_not_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_message(
        dir.path(),
        "aliases.edxml",
        &message("vxp.saas.03", "28.22.H17", "JVBERi0xLjc="),
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("from:        vxp.saas.03 UBND xã Thử"),
        "{stdout}"
    );
    assert!(
        stdout.contains("to:          28.22.H17 UBND xã Mẫu"),
        "{stdout}"
    );
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        warnings,
        [
            format!(
                "{path}:3: warning: From/OrganId \"vxp.saas.03\" names no agency: not a QĐ 20/2020 \
                 code (it must have exactly four parts), and without the directory lienthong cannot \
                 tell which agency it names; this message cannot be routed until the directory lists \
                 \"vxp.saas.03\" as an alias of its agency, or the message names the agency by its \
                 QĐ 20/2020 code"
            ),
            format!(
                "{path}:4: warning: To #1 OrganId \"28.22.H17\" names no agency: not a QĐ 20/2020 \
                 code (it must have exactly four parts), and without the directory lienthong cannot \
                 tell which agency it names; this message cannot be routed until the directory lists \
                 \"28.22.H17\" as an alias of its agency, or the message names the agency by its \
                 QĐ 20/2020 code"
            ),
        ]
    );
}

#[test]
fn a_template_left_in_place_of_attachment_content_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_message(
        dir.path(),
        "template.edxml",
        &message(
            "000.00.00.H41",
            "000.00.14.H41",
            "${__StringFromFile(test.txt,,,)}",
        ),
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("{path}:9: ")), "{stderr}");
    assert!(
        stderr.contains(
            "ContentTransferEncoded is not base64: it holds the template \"${__StringFromFile(test.txt,,,)}\" where \
             the attachment's base64 content should be: the software or test plan that wrote the \
             message did not fill it in"
        ),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
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
