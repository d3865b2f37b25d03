//! Real agency identifiers across a network: an edXML message whose sender is a platform
//! account id and whose recipients are a legacy three-part code and a local id — each an
//! alias in the signed directory — is sent as `lienthong send --edxml` sends it, routed
//! from a commune of Nghệ An to two communes of Hà Tĩnh, and exported there with the
//! identifiers each agency's directory entry says its system expects; the status goes
//! back the same way. Two-tier network, real mTLS, real sled, real PKI.

use std::time::Duration;

use lienthong_client::edxml::{EdxmlError, SentEdxml, write_edxml_with};
use lienthong_client::{DmsClient, Incoming};
use lienthong_core::AgencyCode;
use lienthong_edxml::Message;
use lienthong_testkit::{RunningNetwork, Shape, with_aliases};

const SENDER: &str = "001.00.20.H41"; // UBND xã số 1, Nghệ An (H41-C1)
const SENDER_ACCOUNT: &str = "vxp.saas.03"; // its account on the national platform
const FIRST: &str = "001.00.20.H42"; // UBND xã số 1, Hà Tĩnh (H42-C1)
const FIRST_LEGACY: &str = "28.22.H17"; // the legacy code its system still expects
const SECOND: &str = "002.00.20.H42"; // UBND xã số 2, Hà Tĩnh (H42-C2)
const SECOND_LOCAL: &str = "xa-so-2.ha-tinh"; // a local id; its system expects the code
const DOC_ID: &str = "001.00.20.H41,2026/11/24,15/UBND-VP";

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

async fn start() -> (tempfile::TempDir, RunningNetwork) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let net = RunningNetwork::start_with_directory(
        dir.path(),
        Shape::new(2),
        0,
        100,
        |_| {},
        |source| {
            let source = with_aliases(&source, SENDER, &[SENDER_ACCOUNT], Some(SENDER_ACCOUNT));
            let source = with_aliases(&source, FIRST, &[FIRST_LEGACY], Some(FIRST_LEGACY));
            with_aliases(&source, SECOND, &[SECOND_LOCAL], None)
        },
    )
    .await
    .unwrap();
    (dir, net)
}

/// A document as a DMS writes it, naming agencies by the identifiers it knows them by,
/// stamped now (its TraceHeader is its creation time, and so starts its expiry).
fn document(from: &str, to: &[&str]) -> String {
    let now = lienthong_edxml::time::format_timestamp(lienthong_core::now_millis());
    let to: String = to
        .iter()
        .map(|t| format!("<To><OrganId>{t}</OrganId><OrganName>UBND xã</OrganName></To>\r\n"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><edXMLHeader><MessageHeader>\r\n\
         <From><OrganId>{from}</OrganId><OrganName>UBND xã số 1, Nghệ An</OrganName></From>\r\n\
         {to}\
         <Code><CodeNumber>15</CodeNumber><CodeNotation>UBND-VP</CodeNotation></Code>\r\n\
         <Subject>V/v liên thông văn bản giữa hai tỉnh</Subject>\r\n\
         <DocumentId>{DOC_ID}</DocumentId>\r\n\
         </MessageHeader>\r\n\
         <TraceHeaderList><TraceHeader><OrganId>{from}</OrganId><Timestamp>{now}</Timestamp></TraceHeader></TraceHeaderList>\r\n\
         </edXMLHeader><edXMLBody><edXMLManifest><Reference><ContentId>cid:cv15</ContentId>\
         <AttachmentName>cong-van-15.pdf</AttachmentName></Reference></edXMLManifest></edXMLBody></edXMLEnvelope>\r\n\
         <AttachmentEncoded><Attachment><ContentId>cv15</ContentId><AttachmentName>cong-van-15.pdf</AttachmentName>\
         <ContentType>application/pdf</ContentType><ContentTransferEncoded>JVBERi0xLjcgY29uZyB2YW4gMTU=</ContentTransferEncoded>\
         </Attachment></AttachmentEncoded></edXML>\r\n"
    )
}

/// A status message 03 (accepted) about the document, as the first recipient's DMS
/// writes it, stamped now.
fn status(from: &str, to: &str) -> String {
    let now = lienthong_edxml::time::format_timestamp(lienthong_core::now_millis());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><edXMLHeader><MessageHeader>\r\n\
         <From><OrganId>{from}</OrganId><OrganName>UBND xã số 1, Hà Tĩnh</OrganName></From>\r\n\
         <ResponseFor><OrganId>{to}</OrganId><Code>15/UBND-VP</Code><DocumentId>{DOC_ID}</DocumentId></ResponseFor>\r\n\
         <StatusCode>03</StatusCode><Description>Đã tiếp nhận, vào sổ</Description>\r\n\
         <Timestamp>{now}</Timestamp>\r\n\
         </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>\r\n"
    )
}

/// Polls `client`'s inbox until an entry arrives, and fetches it.
async fn next_entry(client: &DmsClient) -> Incoming {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = client.list_inbox(0, 10).await.unwrap().into_iter().next() {
            let incoming = client.fetch(&e.id).await.unwrap();
            client.ack(&e.id).await.unwrap();
            return incoming;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("nothing reached {}", client.agency());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `incoming` exported as `inbox --export-edxml` exports it, with the client's
/// directory, and read back.
async fn export(client: &DmsClient, incoming: &Incoming) -> Message {
    let directory = client.current_directory().await.unwrap();
    assert!(directory.is_some(), "a network node serves its directory");
    let mut out = Vec::new();
    write_edxml_with(
        &mut out,
        incoming,
        &|_, _| unreachable!("attachments are small"),
        directory.as_deref(),
    )
    .unwrap();
    lienthong_edxml::parse(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_route_across_provinces_and_export_as_each_system_expects() {
    let (dir, net) = start().await;
    let sender = net.client(SENDER).unwrap();
    let first = net.client(FIRST).unwrap();
    let second = net.client(SECOND).unwrap();

    let file = dir.path().join("outgoing.edxml");
    std::fs::write(
        &file,
        document(SENDER_ACCOUNT, &[FIRST_LEGACY, SECOND_LOCAL]),
    )
    .unwrap();
    // The client places the aliases before it signs: the document on the bus names codes.
    let SentEdxml::Document { document, accepted } = sender.send_edxml_file(&file).await.unwrap()
    else {
        panic!("a document was sent");
    };
    assert!(!accepted.duplicate);
    assert_eq!(document.from.code, Some(code(SENDER)));
    assert_eq!(
        document.recipients().unwrap(),
        vec![code(FIRST), code(SECOND)]
    );

    for recipient in [&first, &second] {
        let incoming = next_entry(recipient).await;
        let Incoming::Document(v) = &incoming else {
            panic!("{} got a status, not the document", recipient.agency());
        };
        assert_eq!(v.document.id.as_str(), DOC_ID);
        assert_eq!(v.contents[0].as_ref(), b"%PDF-1.7 cong van 15");
        let Message::Document(out) = export(recipient, &incoming).await else {
            panic!("exported a status");
        };
        // The sender and the first recipient set the identifier their systems expect;
        // the second did not, so it is written by its code.
        assert_eq!(out.header.from.organ_id, SENDER_ACCOUNT);
        let to: Vec<&str> = out.header.to.iter().map(|o| o.organ_id.as_str()).collect();
        assert_eq!(to, [FIRST_LEGACY, SECOND]);
        // The TraceHeaderList as written, then the hops: up to the national gateway and
        // down into Hà Tĩnh.
        assert_eq!(out.trace[0].organ_id, SENDER_ACCOUNT);
        let hops: Vec<&str> = out.trace[1..].iter().map(|t| t.organ_id.as_str()).collect();
        assert_eq!(hops[..4], ["H41-C1", "H41", "VN", "H42"], "{hops:?}");
    }

    // The status back: the first recipient's DMS names itself by its legacy code and the
    // sender by its platform account.
    let file = dir.path().join("status.edxml");
    std::fs::write(&file, status(FIRST_LEGACY, SENDER_ACCOUNT)).unwrap();
    let SentEdxml::Statuses(sent) = first.send_edxml_file(&file).await.unwrap() else {
        panic!("a status was sent");
    };
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.to, code(SENDER));
    assert_eq!(sent[0].0.from.code, Some(code(FIRST)));

    let incoming = next_entry(&sender).await;
    let Incoming::Status { notice, .. } = &incoming else {
        panic!("the sender got a document, not the status");
    };
    assert_eq!(notice.response_for.document_id, DOC_ID);
    let Message::Status(out) = export(&sender, &incoming).await else {
        panic!("exported a document");
    };
    assert_eq!(out.from.organ_id, FIRST_LEGACY);
    assert_eq!(out.response_for.organ_id, SENDER_ACCOUNT);
    assert_eq!(out.status_code, "03");

    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identifier_no_directory_entry_lists_is_refused_before_anything_is_sent() {
    let (dir, net) = start().await;
    let sender = net.client(SENDER).unwrap();
    let file = dir.path().join("outgoing.edxml");
    std::fs::write(
        &file,
        document(SENDER_ACCOUNT, &[FIRST_LEGACY, "28.99.H17"]),
    )
    .unwrap();
    let err = sender.send_edxml_file(&file).await.unwrap_err();
    let EdxmlError::Unusable { line, reason } = err else {
        panic!("expected an unusable message, got {err}");
    };
    assert_eq!(line, 5);
    assert_eq!(
        reason,
        "To #2 OrganId \"28.99.H17\" names no agency: not a QĐ 20/2020 code (it must have \
         exactly four parts), and no agency of directory version 1 has it as an alias; this \
         message cannot be routed until the directory lists \"28.99.H17\" as an alias of its \
         agency, or the message names the agency by its QĐ 20/2020 code"
    );
    // Another agency's alias as From is not this client's agency.
    std::fs::write(&file, document(FIRST_LEGACY, &[SECOND_LOCAL])).unwrap();
    let err = sender.send_edxml_file(&file).await.unwrap_err();
    assert!(
        matches!(&err, EdxmlError::NotOurs { from, .. } if *from == code(FIRST)),
        "{err}"
    );
    let first = net.client(FIRST).unwrap();
    assert!(first.list_inbox(0, 10).await.unwrap().is_empty());
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_keeps_its_directory_until_the_node_holds_a_newer_one() {
    let (dir, mut net) = start().await;
    let sender = net.client(SENDER).unwrap();
    let kept = sender.current_directory().await.unwrap().unwrap();
    assert_eq!(kept.version, 1);
    let again = sender.current_directory().await.unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&kept, &again), "version 1 is kept");

    // Version 2 gives the second commune one more alias; once it reaches the sender's
    // node, the client takes it and the alias is placed.
    let source = net.net.directory_source().to_path_buf();
    let text = std::fs::read_to_string(&source).unwrap();
    let text = text.replacen("version = 1", "version = 2", 1).replacen(
        &format!("aliases = [\"{SECOND_LOCAL}\"]"),
        &format!("aliases = [\"{SECOND_LOCAL}\", \"27.02.H42\"]"),
        1,
    );
    std::fs::write(&source, text).unwrap();
    net.restart_node("VN").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let newer = loop {
        let d = sender.current_directory().await.unwrap().unwrap();
        if d.version == 2 {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "version 2 never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(newer.resolve("27.02.H42"), Some(code(SECOND)));
    let file = dir.path().join("outgoing.edxml");
    std::fs::write(&file, document(SENDER_ACCOUNT, &["27.02.H42"])).unwrap();
    let SentEdxml::Document { document, .. } = sender.send_edxml_file(&file).await.unwrap() else {
        panic!("a document was sent");
    };
    assert_eq!(document.recipients().unwrap(), vec![code(SECOND)]);
    let Incoming::Document(v) = next_entry(&net.client(SECOND).unwrap()).await else {
        panic!("expected the document");
    };
    assert_eq!(v.document.id.as_str(), DOC_ID);
    net.stop().await.unwrap();
}
