//! `lienthong send --edxml` and `lienthong inbox --export-edxml`, running the built binary
//! against an in-process node over real mutual TLS. The edXML fixtures are written here,
//! shaped like the messages DMSs exchange (CRLF, stray bytes before the declaration, a
//! namespace prefix of their own, `cid:` ids, an element lienthong does not model).

use std::path::{Path, PathBuf};
use std::process::Output;

use lienthong_testkit::TestNetwork;

const SENDER: &str = "000.00.00.H41";
const RECIPIENT: &str = "000.00.14.H41";
const DOC_ID: &str = "000.00.00.H41,2026/11/24,15/UBND-VP";
/// base64 of the attachment's bytes.
const PDF_B64: &str = "JVBERi0xLjcgY29uZyB2YW4gMTUgdGh1IG5naGllbQ==";
const PDF: &[u8] = b"%PDF-1.7 cong van 15 thu nghiem";

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn document_xml(from: &str) -> String {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <ns1:edXMLEnvelope xmlns:ns1="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <ns1:edXMLHeader>
      <ns1:MessageHeader>
        <ns1:From>
          <ns1:OrganId>{from}</ns1:OrganId>
          <ns1:OrganName>UBND tỉnh Nghệ An</ns1:OrganName>
        </ns1:From>
        <ns1:To>
          <ns1:OrganId>{RECIPIENT}</ns1:OrganId>
          <ns1:OrganName>Sở Thông tin và Truyền thông</ns1:OrganName>
        </ns1:To>
        <ns1:Code>
          <ns1:CodeNumber>15</ns1:CodeNumber>
          <ns1:CodeNotation>UBND-VP</ns1:CodeNotation>
        </ns1:Code>
        <ns1:PromulgationInfo>
          <ns1:Place>Vinh</ns1:Place>
          <ns1:PromulgationDate>2026/11/24</ns1:PromulgationDate>
        </ns1:PromulgationInfo>
        <ns1:DocumentType>
          <ns1:Type>2</ns1:Type>
          <ns1:TypeName>Công văn</ns1:TypeName>
        </ns1:DocumentType>
        <ns1:Subject>V/v thử nghiệm nhập edXML</ns1:Subject>
        <ns1:OtherInfo>
          <ns1:Priority>1</ns1:Priority>
        </ns1:OtherInfo>
        <ns1:ResponseFor/>
        <ns1:MaHoSoRieng>HS-2026-0042</ns1:MaHoSoRieng>
        <ns1:DocumentId>{DOC_ID}</ns1:DocumentId>
      </ns1:MessageHeader>
      <ns1:TraceHeaderList>
        <ns1:TraceHeader>
          <ns1:OrganId>{from}</ns1:OrganId>
          <ns1:Timestamp>2026/11/24 09:30:00</ns1:Timestamp>
        </ns1:TraceHeader>
      </ns1:TraceHeaderList>
    </ns1:edXMLHeader>
    <ns1:edXMLBody>
      <ns1:edXMLManifest version="1.0">
        <ns1:Reference>
          <ns1:ContentId>cid:cv15</ns1:ContentId>
          <ns1:AttachmentName>cong-van-15.pdf</ns1:AttachmentName>
        </ns1:Reference>
      </ns1:edXMLManifest>
    </ns1:edXMLBody>
  </ns1:edXMLEnvelope>
  <ns1:AttachmentEncoded xmlns:ns1="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <ns1:Attachment>
      <ns1:ContentId>cv15</ns1:ContentId>
      <ns1:AttachmentName>cong-van-15.pdf</ns1:AttachmentName>
      <ns1:ContentType>application/pdf</ns1:ContentType>
      <ns1:ContentTransferEncoded>{PDF_B64}</ns1:ContentTransferEncoded>
    </ns1:Attachment>
  </ns1:AttachmentEncoded>
</edXML>
"#
    );
    // Stray bytes before the declaration and CRLF, as some DMSs write them.
    format!("\u{feff}{}", xml.replace('\n', "\r\n"))
}

fn status_xml(code: &str, description: &str) -> String {
    status_xml_from(RECIPIENT, code, description)
}

fn status_xml_from(from: &str, code: &str, description: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>{from}</edXML:OrganId>
        </edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>{SENDER}</edXML:OrganId>
          <edXML:Code>15/UBND-VP</edXML:Code>
          <edXML:PromulgationDate>2026/11/24</edXML:PromulgationDate>
          <edXML:DocumentId>{DOC_ID}</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StatusCode>{code}</edXML:StatusCode>
        <edXML:Description>{description}</edXML:Description>
        <edXML:Timestamp>2026/11/24 10:05:02</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"#
    )
}

/// Runs the binary off the runtime's threads (the node runs on them).
async fn lienthong(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(&args)
            .output()
            .expect("the lienthong binary runs")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn args(parts: &[&str], profile: &Path) -> Vec<String> {
    let mut out: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    out.push("-p".into());
    out.push(profile.display().to_string());
    out
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn exported(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_an_edxml_document_and_exports_it_back_as_it_was_written() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, recipient) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let work = tempfile::tempdir().unwrap();
    let original = document_xml(SENDER);
    let file = write(work.path(), "cv15.edxml", &original);

    let out = lienthong(args(&["send", "--edxml", file.to_str().unwrap()], sender)).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("sent {DOC_ID} accepted by node H41")),
        "{stdout}"
    );

    // The recipient lists it and exports it; without --ack it stays in the inbox.
    let export = work.path().join("export");
    let out = lienthong(args(
        &["inbox", "--export-edxml", export.to_str().unwrap()],
        recipient,
    ))
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("exported as edXML:"), "{stdout}");
    assert!(!stdout.contains("acknowledged"), "{stdout}");
    let files = exported(&export);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].ends_with("000.00.00.H41_2026_11_24_15_UBND-VP.edxml"),
        "{files:?}"
    );

    // Everything the DMS wrote comes back, the unknown element and the attachment bytes
    // included; the bus only appended its hop to the trace.
    let before = match lienthong_edxml::parse(original.as_bytes()).unwrap() {
        lienthong_edxml::Message::Document(d) => d,
        other => panic!("{other:?}"),
    };
    let after = match lienthong_edxml::parse(&std::fs::read(&files[0]).unwrap()).unwrap() {
        lienthong_edxml::Message::Document(d) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(after.header, before.header);
    assert_eq!(after.business, before.business);
    assert_eq!(after.extras, before.extras);
    assert_eq!(after.attachments, before.attachments);
    assert_eq!(after.attachments[0].content, PDF);
    assert_eq!(after.trace[..before.trace.len()], before.trace[..]);
    assert_eq!(after.trace.last().unwrap().organ_id, "H41");

    // Sending the same file again is a re-send with the original receipt.
    let out = lienthong(args(&["send", "--edxml", file.to_str().unwrap()], sender)).await;
    assert!(
        text(&out.stdout).contains("re-sent"),
        "{}",
        text(&out.stdout)
    );

    // With --ack the entry is acknowledged after it was written.
    let out = lienthong(args(
        &["inbox", "--export-edxml", export.to_str().unwrap(), "--ack"],
        recipient,
    ))
    .await;
    assert!(text(&out.stdout).contains("acknowledged"));
    let out = lienthong(args(&["inbox"], recipient)).await;
    assert!(
        text(&out.stdout).contains("is empty"),
        "{}",
        text(&out.stdout)
    );
    t.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_an_edxml_status_message_as_a_status_notice_and_exports_it() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, recipient) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let work = tempfile::tempdir().unwrap();
    let doc = write(work.path(), "cv15.edxml", &document_xml(SENDER));
    let out = lienthong(args(&["send", "--edxml", doc.to_str().unwrap()], sender)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let status = write(
        work.path(),
        "status03.edxml",
        &status_xml("03", "Đã vào sổ"),
    );
    let out = lienthong(args(
        &["send", "--edxml", status.to_str().unwrap()],
        recipient,
    ))
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "status 03 (accepted and registered) for {DOC_ID} sent"
        )),
        "{stdout}"
    );

    let export = work.path().join("export");
    let out = lienthong(args(
        &["inbox", "--export-edxml", export.to_str().unwrap()],
        sender,
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files = exported(&export);
    assert_eq!(files.len(), 1, "{files:?}");
    let lienthong_edxml::Message::Status(back) =
        lienthong_edxml::parse(&std::fs::read(&files[0]).unwrap()).unwrap()
    else {
        panic!("not a status message")
    };
    assert_eq!(back.status_code, "03");
    assert_eq!(back.description, "Đã vào sổ");
    assert_eq!(back.response_for.document_id, DOC_ID);
    assert_eq!(back.from.organ_id, RECIPIENT);

    // A withdraw request from the sender names its own document in ResponseFor: it goes
    // to each recipient of the document, and only then may the recipient answer 15.
    let w = write(
        work.path(),
        "status13.edxml",
        &status_xml_from(SENDER, "13", "Xin rút lại để sửa"),
    );
    let out = lienthong(args(&["send", "--edxml", w.to_str().unwrap()], sender)).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(&format!("sent to {RECIPIENT}")), "{stdout}");
    let answer = write(work.path(), "status15.edxml", &status_xml("15", "Đồng ý"));
    let out = lienthong(args(
        &["send", "--edxml", answer.to_str().unwrap()],
        recipient,
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lienthong(args(&["send", "--edxml", w.to_str().unwrap()], sender)).await;
    assert!(
        text(&out.stdout).contains("re-sent"),
        "{}",
        text(&out.stdout)
    );
    t.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_unusable_edxml_file_with_its_line_and_reason() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let sender = &t.net.profiles[0].1;
    let work = tempfile::tempdir().unwrap();

    // Cut off in the middle: the parser's line and reason, exit code 64.
    let full = document_xml(SENDER);
    let cut = write(work.path(), "cut.edxml", &full[..full.len() / 2]);
    let out = lienthong(args(&["send", "--edxml", cut.to_str().unwrap()], sender)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:", cut.display())),
        "names the file: {stderr}"
    );

    // A recipient that is no agency code: the line of its OrganId.
    let bad_to = write(
        work.path(),
        "bad-to.edxml",
        &document_xml(SENDER).replace(
            &format!("<ns1:OrganId>{RECIPIENT}</ns1:OrganId>"),
            "<ns1:OrganId>vxp.saas.03</ns1:OrganId>",
        ),
    );
    let out = lienthong(args(&["send", "--edxml", bad_to.to_str().unwrap()], sender)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:11:", bad_to.display())) && stderr.contains("vxp.saas.03"),
        "{stderr}"
    );

    // From another agency than the profile's: refused before anything is sent.
    let other = write(work.path(), "other.edxml", &document_xml("000.00.20.H41"));
    let out = lienthong(args(&["send", "--edxml", other.to_str().unwrap()], sender)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("only as its own agency"), "{stderr}");
    let recipient = t.client(1).unwrap();
    assert!(recipient.list_inbox(0, 10).await.unwrap().is_empty());
    t.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_deeply_nested_edxml_file_before_sending() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let sender = &t.net.profiles[0].1;
    let work = tempfile::tempdir().unwrap();
    // An unknown element nested 20,000 deep after the subject: this crashed `send
    // --edxml` with a stack overflow before the limit.
    let n = 20_000;
    let deep = document_xml(SENDER).replacen(
        "</ns1:Subject>",
        &format!("</ns1:Subject>{}{}", "<X>".repeat(n), "</X>".repeat(n)),
        1,
    );
    let line = deep[..deep.find("<X>").unwrap()].matches('\n').count() + 1;
    let file = write(work.path(), "deep.edxml", &deep);
    let out = lienthong(args(&["send", "--edxml", file.to_str().unwrap()], sender)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:{line}: <X> is nested deeper than {} levels",
            file.display(),
            lienthong_edxml::MAX_DEPTH
        )),
        "{stderr}"
    );
    let recipient = t.client(1).unwrap();
    assert!(recipient.list_inbox(0, 10).await.unwrap().is_empty());
    t.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_cannot_be_exported_does_not_block_the_others() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, recipient) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let work = tempfile::tempdir().unwrap();
    // Two documents; the first one listed cannot be written: a directory stands where
    // its export goes. (The node refuses an edxml_preserved part nobody could export, so
    // a failing write is how an entry fails here.)
    let second_id = "000.00.00.H41,2026/11/24,16/UBND-VP";
    for (name, xml) in [
        ("cv15.edxml", document_xml(SENDER)),
        (
            "cv16.edxml",
            document_xml(SENDER).replace(DOC_ID, second_id),
        ),
    ] {
        let file = write(work.path(), name, &xml);
        let out = lienthong(args(&["send", "--edxml", file.to_str().unwrap()], sender)).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let export = work.path().join("export");
    let blocked = export.join("000.00.00.H41_2026_11_24_15_UBND-VP.edxml");
    std::fs::create_dir_all(&blocked).unwrap();

    let out = lienthong(args(
        &["inbox", "--export-edxml", export.to_str().unwrap(), "--ack"],
        recipient,
    ))
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: entry {DOC_ID}: writing {}",
            blocked.display()
        )) && stderr.contains("it stays in the inbox, not acknowledged"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "1 entry could not be handled and stay in the inbox: {DOC_ID}"
        )),
        "{stderr}"
    );
    // The second one was exported and acknowledged all the same.
    assert!(
        export
            .join("000.00.00.H41_2026_11_24_16_UBND-VP.edxml")
            .is_file()
    );
    assert_eq!(stdout.matches("acknowledged").count(), 1, "{stdout}");
    let left: Vec<String> = t
        .client(1)
        .unwrap()
        .list_inbox(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![DOC_ID.to_string()]);
    t.stop().await.unwrap();
}

/// A revoke of [`DOC_ID`] from [`SENDER`] to `to`, with its Bussiness block where many
/// DMSs put it: inside the TraceHeaderList.
fn revoke_xml(id: &str, to: &[&str]) -> String {
    let to: String = to
        .iter()
        .map(|t| format!("<edXML:To><edXML:OrganId>{t}</edXML:OrganId></edXML:To>\n"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>{SENDER}</edXML:OrganId></edXML:From>
        {to}
        <edXML:Subject>Thu hồi công văn 15/UBND-VP</edXML:Subject>
        <edXML:DocumentId>{id}</edXML:DocumentId>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:Bussiness>
          <edXML:DocumentId>{DOC_ID}</edXML:DocumentId>
          <edXML:BussinessDocType>1</edXML:BussinessDocType>
          <edXML:BussinessDocReason>Ban hành nhầm</edXML:BussinessDocReason>
        </edXML:Bussiness>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edxml_revoke_must_reach_every_recipient_and_marks_the_original_revoked() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, recipient) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let work = tempfile::tempdir().unwrap();
    let doc = write(work.path(), "cv15.edxml", &document_xml(SENDER));
    let out = lienthong(args(&["send", "--edxml", doc.to_str().unwrap()], sender)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // To a recipient the original never had, and not to the one it had: refused by the
    // node, with the rule.
    let revoke_id = "000.00.00.H41,2026/11/25,16/UBND-VP";
    let wrong = write(
        work.path(),
        "wrong.edxml",
        &revoke_xml(revoke_id, &["000.00.20.H41"]),
    );
    let out = lienthong(args(&["send", "--edxml", wrong.to_str().unwrap()], sender)).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("FailedPrecondition")
            && stderr.contains("must reach every recipient")
            && stderr.contains(&format!("add {RECIPIENT} to To")),
        "{stderr}"
    );

    let revoke = write(
        work.path(),
        "revoke.edxml",
        &revoke_xml(revoke_id, &[RECIPIENT]),
    );
    let out = lienthong(args(&["send", "--edxml", revoke.to_str().unwrap()], sender)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lienthong(args(&["inbox"], recipient)).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("[REVOKED by {revoke_id}]")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("(revokes {DOC_ID})")), "{stdout}");

    // Exported, the revoke keeps its Bussiness block.
    let export = work.path().join("export");
    let out = lienthong(args(
        &["inbox", "--export-edxml", export.to_str().unwrap()],
        recipient,
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = export.join("000.00.00.H41_2026_11_25_16_UBND-VP.edxml");
    let lienthong_edxml::Message::Document(back) =
        lienthong_edxml::parse(&std::fs::read(&path).unwrap()).unwrap()
    else {
        panic!("not a document")
    };
    let business = back.business.expect("the Bussiness block");
    assert_eq!(business.doc_type, "1");
    assert_eq!(business.document_id, DOC_ID);
    assert_eq!(business.reason, "Ban hành nhầm");
    t.stop().await.unwrap();
}

/// An imported edXML message with an attachment too large to travel inline: `send
/// --edxml` uploads it in chunks first, and the recipient saves it intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_an_edxml_document_with_a_large_attachment() {
    use base64::Engine;
    init();
    // Smaller than the attachment: it cannot travel inline.
    let t = TestNetwork::start(|c| c.limits.max_message_bytes = 4 * 1024 * 1024)
        .await
        .unwrap();
    let (sender, recipient) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let work = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 3).map(|_| rng.u8(..)).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
    let file = write(
        work.path(),
        "large.edxml",
        &document_xml(SENDER).replace(PDF_B64, &b64),
    );
    let out = lienthong(args(&["send", "--edxml", file.to_str().unwrap()], sender)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let (save, export) = (work.path().join("saved"), work.path().join("export"));
    let out = lienthong(args(
        &[
            "inbox",
            "--save",
            save.to_str().unwrap(),
            "--export-edxml",
            export.to_str().unwrap(),
        ],
        recipient,
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let saved = save
        .join("000.00.00.H41_2026_11_24_15_UBND-VP")
        .join("01-cong-van-15.pdf");
    assert!(
        std::fs::read(&saved).unwrap() == big,
        "the saved attachment differs"
    );
    // The export carries it too, though it was streamed to its file.
    let files = exported(&export);
    let lienthong_edxml::Message::Document(back) =
        lienthong_edxml::parse(&std::fs::read(&files[0]).unwrap()).unwrap()
    else {
        panic!("not a document")
    };
    assert!(
        back.attachments[0].content == big,
        "the exported attachment differs"
    );
    t.stop().await.unwrap();
}

/// Runs the binary, reading its peak resident memory (`VmHWM`, KiB) from /proc while it
/// runs. `VmHWM` only grows, so the last reading is the peak as long as one comes after
/// it: the exchange with the node that follows the reading of the file lasts far longer
/// than the polling interval.
async fn lienthong_peak_kib(args: Vec<String>) -> (Output, u64) {
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the lienthong binary runs");
        let status = format!("/proc/{}/status", child.id());
        let mut peak = 0;
        while child.try_wait().unwrap().is_none() {
            let hwm = std::fs::read_to_string(&status)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(hwm.unwrap_or(0));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        (child.wait_with_output().unwrap(), peak)
    })
    .await
    .unwrap()
}

/// A document (id number `number`) whose attachment is `content`, as one line of base64.
fn large_document_xml(number: u32, content: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    document_xml(SENDER)
        .replace(
            DOC_ID,
            &format!("000.00.00.H41,2026/11/24,{number}/UBND-VP"),
        )
        .replace(PDF_B64, &b64)
}

/// `send --edxml` reads a message as a stream: its memory does not grow with the size of
/// the attachments (before, a message cost about three times its size), and the attachment
/// comes back intact through `inbox --export-edxml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_edxml_memory_does_not_grow_with_the_message_and_it_round_trips() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, recipient) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let work = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(12);
    // Both above the 8 MiB at which attachments are uploaded in chunks, so that both take
    // the same path; the second is 27 MiB larger.
    let mut peaks = Vec::new();
    let mut big = Vec::new();
    for (number, mib) in [(31, 9), (32, 36)] {
        let content: Vec<u8> = (0..mib * 1024 * 1024 + 5).map(|_| rng.u8(..)).collect();
        let file = write(
            work.path(),
            &format!("{number}.edxml"),
            &large_document_xml(number, &content),
        );
        let (out, peak) =
            lienthong_peak_kib(args(&["send", "--edxml", file.to_str().unwrap()], sender)).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(peak > 0, "no reading of the process's memory");
        peaks.push(peak);
        big = content;
    }
    let grown_kib = peaks[1].saturating_sub(peaks[0]);
    assert!(
        grown_kib < 8 * 1024,
        "peak {} KiB with a 9 MiB attachment, {} KiB with a 36 MiB one",
        peaks[0],
        peaks[1]
    );

    let export = work.path().join("export");
    let out = lienthong(args(
        &["inbox", "--export-edxml", export.to_str().unwrap(), "--ack"],
        recipient,
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let back = std::fs::read(export.join("000.00.00.H41_2026_11_24_32_UBND-VP.edxml")).unwrap();
    let lienthong_edxml::Message::Document(back) = lienthong_edxml::parse(&back).unwrap() else {
        panic!("not a document")
    };
    assert!(
        back.attachments[0].content == big,
        "the exported attachment differs"
    );
    t.stop().await.unwrap();
}

/// A document as a DMS on the national platform writes it, stamped now (a network
/// expires what is a week old): From its platform account id, To a legacy code.
fn aliased_document_xml(doc_id: &str) -> String {
    let now = lienthong_edxml::time::format_timestamp(lienthong_core::now_millis());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><edXMLHeader><MessageHeader>\r\n\
         <From><OrganId>vxp.saas.03</OrganId><OrganName>UBND xã số 1, Nghệ An</OrganName></From>\r\n\
         <To><OrganId>28.22.H17</OrganId><OrganName>UBND xã số 1, Hà Tĩnh</OrganName></To>\r\n\
         <Subject>V/v liên thông văn bản giữa hai tỉnh</Subject><DocumentId>{doc_id}</DocumentId>\r\n\
         </MessageHeader><TraceHeaderList><TraceHeader><OrganId>vxp.saas.03</OrganId>\
         <Timestamp>{now}</Timestamp></TraceHeader></TraceHeaderList></edXMLHeader></edXMLEnvelope></edXML>\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_placed_by_send_and_check_and_exported_as_each_system_expects() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let (sender, recipient) = ("001.00.20.H41", "001.00.20.H42");
    let net = lienthong_testkit::RunningNetwork::start_with_directory(
        dir.path(),
        lienthong_testkit::Shape::new(2),
        0,
        100,
        |_| {},
        |source| {
            let source = lienthong_testkit::with_aliases(
                &source,
                sender,
                &["vxp.saas.03"],
                Some("vxp.saas.03"),
            );
            lienthong_testkit::with_aliases(&source, recipient, &["28.22.H17"], Some("28.22.H17"))
        },
    )
    .await
    .unwrap();
    let (sender_profile, recipient_profile) = (net.net.profile(sender), net.net.profile(recipient));
    let work = tempfile::tempdir().unwrap();
    let doc_id = "001.00.20.H41,2026/11/24,16/UBND-VP";
    let file = write(work.path(), "cv16.edxml", &aliased_document_xml(doc_id));
    let file = file.to_str().unwrap();

    // `edxml check` places the aliases with the directory of the profile's node.
    let out = lienthong(args(&["edxml", "check", file], sender_profile)).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    for line in [
        "identifier:  From/OrganId \"vxp.saas.03\" is agency 001.00.20.H41",
        "identifier:  To #1 OrganId \"28.22.H17\" is agency 001.00.20.H42",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }

    let out = lienthong(args(&["send", "--edxml", file], sender_profile)).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("sent {doc_id} accepted by node H41-C1")),
        "{stdout}"
    );
    // `send --to` takes an alias as well.
    let out = lienthong(args(
        &["send", "--to", "28.22.H17", "--subject", "Giấy mời họp"],
        sender_profile,
    ))
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let native_id = stdout.lines().last().unwrap().to_string();
    let out = lienthong(args(&["send", "--to", "28.99.H17"], sender_profile)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "--to \"28.99.H17\": not a QĐ 20/2020 code (it must have exactly four parts), and no \
             agency of directory version 1 has it as an alias"
        ),
        "{stderr}"
    );

    // Both arrive in Hà Tĩnh and are exported with the identifiers the directory sets.
    let export = work.path().join("export");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while exported(&export).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "exported only {:?}",
            exported(&export)
        );
        let out = lienthong(args(
            &["inbox", "--export-edxml", export.to_str().unwrap(), "--ack"],
            recipient_profile,
        ))
        .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for file in exported(&export) {
        let doc = match lienthong_edxml::parse(&std::fs::read(&file).unwrap()).unwrap() {
            lienthong_edxml::Message::Document(d) => d,
            other => panic!("{other:?}"),
        };
        assert!(
            [doc_id, native_id.as_str()].contains(&doc.header.document_id.as_str()),
            "{file:?}"
        );
        assert_eq!(doc.header.from.organ_id, "vxp.saas.03", "{file:?}");
        assert_eq!(doc.header.to[0].organ_id, "28.22.H17", "{file:?}");
        assert_eq!(doc.trace[0].organ_id, "vxp.saas.03", "{file:?}");
    }
    net.stop().await.unwrap();
}
