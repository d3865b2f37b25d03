//! The bridge to the national platform (#19), end to end: a 2-tier network whose national
//! gateway is a bridge to a platform stand-in written from vxp-rest.md alone
//! (`lienthong_testkit::vxp_platform`), with a second system on that platform playing the
//! rest of the country. Everything runs for real: HTTPS, HMAC-signed headers checked by
//! the stand-in's own code, mutual TLS inside lienthong, sled in temporary folders.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lienthong_client::{DmsClient, InboxKind, Incoming};
use lienthong_core::{AgencyCode, StatusCode, StatusNotice};
use lienthong_devnet::{RunningNetwork, Shape, with_bridge};
use lienthong_node::config::UpstreamConfig;
use lienthong_proto::pb;
use lienthong_testkit::bridged::{bridged_network, eventually};
use lienthong_testkit::vxp_platform::{
    AgencySpec, DeliveryStatus, Platform, PlatformConfig, SystemSpec,
};
use lienthong_vxp::{ClientConfig, MessageType, Secret, VxpClient};

/// The lienthong deployment's system on the platform.
const LT: &str = "LT.SYSTEM";
const LT_SECRET: &str = "lt-secret+/base64-looking==";
/// Another province's system on the platform, with one agency.
const EXT: &str = "EXT.SYSTEM";
const EXT_SECRET: &str = "ext-secret";
const EXT_AGENCY: &str = "000.00.00.H29";
/// A commune agency of the dev network (H41-C1).
const COMMUNE: &str = "001.00.20.H41";

const EDOC: &[u8] =
    include_bytes!("../../crates/lienthong-vxp/tests/fixtures/edoc_attachment.edxml");

/// The reference's sample document from `from` to `to`.
fn edoc(from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(EDOC.to_vec())
        .unwrap()
        .replacen(
            "<edXML:OrganId>002.00.20.H13</edXML:OrganId>",
            &format!("<edXML:OrganId>{from}</edXML:OrganId>"),
            1,
        )
        .replacen(
            "<edXML:OrganId>000.00.15.H51</edXML:OrganId>",
            &format!("<edXML:OrganId>{to}</edXML:OrganId>"),
            1,
        )
        .into_bytes()
}

/// A status `code` from `from` about document `doc_id` of `to`, as a platform DMS writes it.
fn status(from: &str, to: &str, doc_id: &str, code: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>{from}</edXML:OrganId>
          <edXML:OrganName>UBND thành phố Hà Nội</edXML:OrganName>
        </edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>{to}</edXML:OrganId>
          <edXML:Code>1/UBND</edXML:Code>
          <edXML:PromulgationDate>2026/12/05</edXML:PromulgationDate>
          <edXML:DocumentId>{doc_id}</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StatusCode>{code}</edXML:StatusCode>
        <edXML:Description>Văn thư: đã vào sổ văn bản đến</edXML:Description>
        <edXML:Timestamp>2026/12/05 09:30:00</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"#
    )
    .into_bytes()
}

/// The text of the first `<edXML:{tag}>` element of `bytes`.
fn element(bytes: &[u8], tag: &str) -> String {
    let text = String::from_utf8_lossy(bytes);
    let open = format!("<edXML:{tag}>");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {text}"))
        + open.len();
    let end = text[start..].find('<').unwrap() + start;
    text[start..end].to_string()
}

struct World {
    _dir: tempfile::TempDir,
    platform: Platform,
    net: RunningNetwork,
    /// The other province's system on the platform.
    ext: VxpClient,
}

fn tls_trusting(ca: &Path) -> Arc<rustls::ClientConfig> {
    Arc::new(lienthong_pki::web_client_config(ca).unwrap())
}

async fn world() -> World {
    let dir = tempfile::TempDir::new().unwrap();
    let ours: Vec<AgencySpec> = [COMMUNE, "002.00.20.H41", "000.00.00.H41", "000.00.00.G22"]
        .into_iter()
        .map(|c| AgencySpec::new(c, format!("lienthong {c}")))
        .collect();
    let mut config = PlatformConfig::new(dir.path().join("platform"));
    config.systems = vec![
        SystemSpec::new(LT, LT_SECRET, ours),
        SystemSpec::new(
            EXT,
            EXT_SECRET,
            [AgencySpec::new(EXT_AGENCY, "UBND thành phố Hà Nội").with_old_code("01.01.H29")],
        ),
    ];
    let platform = Platform::start(config).await.unwrap();
    let net = bridged_network(
        &dir.path().join("net"),
        &platform,
        LT,
        LT_SECRET,
        Shape::new(2),
        |_| {},
    )
    .await
    .unwrap();
    let ext = VxpClient::new(ClientConfig::new(
        platform.url(),
        EXT,
        Secret::new(EXT_SECRET),
        tls_trusting(platform.ca_pem_path()),
    ))
    .unwrap();
    World {
        _dir: dir,
        platform,
        net,
        ext,
    }
}

/// Sends a document from `client` to `to` once the sender's node knows `to` (the
/// platform's agency list travels down the tree after the bridge fetched it).
async fn send_when_known(client: &DmsClient, to: &str, subject: &str) -> String {
    let to = AgencyCode::parse(to).unwrap();
    eventually(
        20,
        "the platform's agency list reaching the commune",
        async || {
            let mut d = client.new_document(vec![to.clone()], subject);
            match client.send(&mut d, &[]).await {
                Ok(_) => Some(d.id.to_string()),
                Err(e) if e.reason() == Some("unknown-recipient") => None,
                Err(e) => panic!("send refused: {e}"),
            }
        },
    )
    .await
}

fn platform_file(edxml: Vec<u8>, dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, edxml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commune_and_an_agency_on_the_platform_exchange_documents_and_statuses() {
    let w = world().await;
    let commune = w.net.client(COMMUNE).unwrap();
    let files = tempfile::TempDir::new().unwrap();

    // 1. Commune → platform: through the tree to the bridge, out with sendEdoc.
    let id = send_when_known(&commune, EXT_AGENCY, "Công văn gửi Hà Nội").await;
    let arrived = eventually(
        20,
        "the document in the platform mailbox of EXT",
        async || {
            w.platform
                .mailbox(EXT)
                .into_iter()
                .find(|m| m.message_type == "edoc")
        },
    )
    .await;
    assert_eq!(arrived.to, vec![EXT_AGENCY.to_string()]);
    assert_eq!(arrived.from, COMMUNE);
    let text = String::from_utf8_lossy(&arrived.bytes).to_string();
    assert!(text.contains("Công văn gửi Hà Nội"), "{text}");
    assert_eq!(element(&arrived.bytes, "OrganId"), COMMUNE);
    let tracked = eventually(10, "the sender's track showing the platform", async || {
        let t = commune.track(&id).await.unwrap();
        let shown = format!("{t:?}");
        shown.contains("national platform").then_some(shown)
    })
    .await;
    assert!(tracked.contains(&arrived.sender_doc_id), "{tracked}");

    // 2. EXT answers with status 03; it reaches the commune as a notice vouched for by
    // the bridge.
    let ext_received = w.ext.received_edocs(MessageType::Edoc).await.unwrap();
    assert_eq!(ext_received.len(), 1);
    let doc_id_in_edxml = element(&arrived.bytes, "DocumentId");
    let path = platform_file(
        status(EXT_AGENCY, COMMUNE, &doc_id_in_edxml, "03"),
        files.path(),
        "status.edxml",
    );
    w.ext
        .send_edoc(EXT_AGENCY, MessageType::Status, None, &path)
        .await
        .unwrap();
    let notice = eventually(20, "status 03 in the commune's inbox", async || {
        let items = commune.list_inbox(0, 100).await.unwrap();
        items.into_iter().find(|i| i.kind == InboxKind::Status)
    })
    .await;
    match commune.fetch(&notice.id).await.unwrap() {
        Incoming::Status { notice, .. } => {
            assert_eq!(notice.code, StatusCode::Accepted);
            assert_eq!(notice.from.code.as_ref().unwrap().as_str(), EXT_AGENCY);
            let imported = notice.imported.expect("marked as imported");
            assert_eq!(imported.bridge.as_str(), "VN");
        }
        other => panic!("not a status: {other:?}"),
    }
    commune.ack(&notice.id).await.unwrap();

    // 3. EXT sends a document to the commune; it arrives, vouched for by the bridge, and
    // is acknowledged on the platform only after lienthong stored it.
    let path = platform_file(edoc(EXT_AGENCY, COMMUNE), files.path(), "edoc.edxml");
    let sent = w
        .ext
        .send_edoc(EXT_AGENCY, MessageType::Edoc, None, &path)
        .await
        .unwrap();
    let item = eventually(20, "EXT's document in the commune's inbox", async || {
        let items = commune.list_inbox(0, 100).await.unwrap();
        items
            .into_iter()
            .find(|i| i.kind == InboxKind::Document && i.from == EXT_AGENCY)
    })
    .await;
    let Incoming::Document(received) = commune.fetch(&item.id).await.unwrap() else {
        panic!("not a document");
    };
    let imported = received
        .document
        .imported
        .clone()
        .expect("marked as imported");
    assert_eq!(imported.bridge.as_str(), "VN");
    // The sample's XML-DSig covers the addresses this test changed: reported, not hidden.
    assert!(imported.dsig.starts_with("failed: "), "{}", imported.dsig);
    assert!(!received.contents.is_empty() && !received.contents[0].is_empty());
    commune.ack(&item.id).await.unwrap();

    // 3b. Another message under the same edXML DocumentId cannot be imported: it is
    // quarantined with its reason and answered `fail`, and nothing reaches the commune.
    let conflicting = String::from_utf8(edoc(EXT_AGENCY, COMMUNE))
        .unwrap()
        .replacen("<edXML:Subject>", "<edXML:Subject>[khác] ", 1);
    let path = platform_file(conflicting.into_bytes(), files.path(), "conflict.edxml");
    let refused = w
        .ext
        .send_edoc(EXT_AGENCY, MessageType::Edoc, None, &path)
        .await
        .unwrap();
    eventually(20, "the conflicting message answered fail", async || {
        w.platform
            .mailbox(LT)
            .iter()
            .find(|m| m.sender_doc_id == refused)
            .filter(|m| m.status == DeliveryStatus::Fail)
            .map(|_| ())
    })
    .await;
    let quarantine = w.net.net.nodes[0].config.data_dir.join("bridge/quarantine");
    let reasons: Vec<String> = std::fs::read_dir(&quarantine)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "reason"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("already accepted with different content"),
        "{reasons:?}"
    );
    let from_ext = commune
        .list_inbox(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.from == EXT_AGENCY && i.kind == InboxKind::Document)
        .count();
    assert_eq!(
        from_ext, 0,
        "the first was acknowledged, the second never admitted"
    );
    // Operators see it, with the reason, at the bridge.
    let platform_view = w
        .net
        .admin("VN")
        .unwrap()
        .platform(pb::PlatformRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(platform_view.quarantined.len(), 1, "{platform_view:?}");
    assert!(
        platform_view.quarantined[0]
            .reason
            .contains("different content")
    );
    assert!(Path::new(&platform_view.quarantined[0].file).exists());

    eventually(10, "the platform item acknowledged done", async || {
        w.platform
            .mailbox(LT)
            .iter()
            .find(|m| m.sender_doc_id == sent)
            .filter(|m| m.status == DeliveryStatus::Done)
            .map(|_| ())
    })
    .await;

    // 4. The commune answers the imported document; the status goes out to EXT.
    let mut answer = StatusNotice::new(
        AgencyCode::parse(COMMUNE).unwrap(),
        AgencyCode::parse(EXT_AGENCY).unwrap(),
        &received.document.id,
        StatusCode::Accepted,
    );
    answer.description = "Đã tiếp nhận".into();
    commune.send_status(answer).await.unwrap();
    let back = eventually(20, "the commune's status in EXT's mailbox", async || {
        w.platform
            .mailbox(EXT)
            .into_iter()
            .find(|m| m.message_type == "status")
    })
    .await;
    assert_eq!(element(&back.bytes, "StatusCode"), "03");

    // 5. Operators anywhere search the platform's agencies (the lists came down the tree);
    // our own agencies, registered on the platform too, are not among them.
    let found = w
        .net
        .admin("H41-C1")
        .unwrap()
        .platform(pb::PlatformRequest {
            search: "hà nội".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.matched, 1, "{found:?}");
    assert_eq!(found.agencies[0].code, EXT_AGENCY);
    assert_eq!(found.agencies[0].aliases, vec!["01.01.H29".to_string()]);
    assert_eq!(found.agencies[0].bridges, vec!["VN".to_string()]);
    let all = w
        .net
        .admin("H41-C1")
        .unwrap()
        .platform(pb::PlatformRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.matched, 1, "our agencies are never external: {all:?}");
    assert!(all.quarantined.is_empty(), "only a bridge quarantines");

    // 6. An address nobody knows is refused at once, at the commune's node.
    let mut d = commune.new_document(vec![AgencyCode::parse("000.00.00.H99").unwrap()], "?");
    let refused = commune.send(&mut d, &[]).await.unwrap_err();
    assert_eq!(refused.reason(), Some("unknown-recipient"), "{refused}");
    assert!(
        refused.to_string().contains("platform's agency list"),
        "{refused}"
    );

    // 7. Every request the bridge made carried a valid HMAC.
    let ours: Vec<_> = w
        .platform
        .requests()
        .into_iter()
        .filter(|r| r.system_id == LT)
        .collect();
    assert!(ours.len() >= 5, "{ours:?}");
    for r in &ours {
        assert!(r.hmac_ok && r.headers_ok, "{r}");
    }
    w.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_queued_while_the_platform_is_down_go_out_once_when_it_returns() {
    let w = world().await;
    let commune = w.net.client(COMMUNE).unwrap();
    send_when_known(&commune, EXT_AGENCY, "trước khi mất kết nối").await;
    let edocs = || {
        w.platform
            .mailbox(EXT)
            .into_iter()
            .filter(|m| m.message_type == "edoc")
            .collect::<Vec<_>>()
    };
    eventually(20, "the first document on the platform", async || {
        (edocs().len() == 1).then_some(())
    })
    .await;

    w.platform.set_down(true);
    let ext = AgencyCode::parse(EXT_AGENCY).unwrap();
    for i in 0..3 {
        let mut d = commune.new_document(vec![ext.clone()], &format!("trong lúc mất kết nối {i}"));
        commune.send(&mut d, &[]).await.unwrap();
    }
    // The bridge tries, finds the platform down, and keeps the documents.
    eventually(20, "a send attempt while down", async || {
        w.platform
            .requests()
            .iter()
            .any(|r| r.system_id == LT && r.op == "sendEdoc" && r.status == "DOWN")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        edocs().len(),
        1,
        "nothing can arrive while the platform is down"
    );
    // Operators see the platform's outbox and link as they see any link's.
    let queues = w
        .net
        .admin("VN")
        .unwrap()
        .queues(pb::QueuesRequest {})
        .await
        .unwrap()
        .into_inner();
    let outbox = queues.outboxes.iter().find(|q| q.name == "vxp-platform");
    assert_eq!(outbox.map(|q| q.depth), Some(3), "{queues:?}");
    let link = queues.links.iter().find(|l| l.peer == "vxp-platform");
    let link = link.unwrap_or_else(|| panic!("no platform link in {queues:?}"));
    assert!(link.consecutive_failures > 0, "{link:?}");
    assert!(link.last_error.contains("503"), "{link:?}");

    w.platform.set_down(false);
    eventually(
        30,
        "the three queued documents on the platform",
        async || (edocs().len() == 4).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let subjects: Vec<String> = edocs()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.bytes).to_string())
        .collect();
    assert_eq!(subjects.len(), 4, "each document once");
    for i in 0..3 {
        let subject = format!("trong lúc mất kết nối {i}");
        assert_eq!(
            subjects.iter().filter(|s| s.contains(&subject)).count(),
            1,
            "{subject} once"
        );
    }
    w.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_networks_that_share_no_certificate_exchange_through_the_platform_only() {
    let dir = tempfile::TempDir::new().unwrap();
    const A_COMMUNE: &str = "001.00.20.H41";
    const B_COMMUNE: &str = "001.00.20.H29";
    let mut config = PlatformConfig::new(dir.path().join("platform"));
    config.systems = vec![
        SystemSpec::new(
            "LT.A",
            "secret-a",
            [AgencySpec::new(A_COMMUNE, "UBND xã A")],
        ),
        SystemSpec::new(
            "LT.B",
            "secret-b",
            [AgencySpec::new(B_COMMUNE, "UBND xã B")],
        ),
    ];
    let platform = Platform::start(config).await.unwrap();
    let a = bridged_network(
        &dir.path().join("a"),
        &platform,
        "LT.A",
        "secret-a",
        Shape::new(2),
        |_| {},
    )
    .await
    .unwrap();
    let shape_b = Shape {
        provinces: [("H29", "Hà Nội"), ("H30", "Hải Dương")],
        ..Shape::new(2)
    };
    let b = bridged_network(
        &dir.path().join("b"),
        &platform,
        "LT.B",
        "secret-b",
        shape_b,
        |_| {},
    )
    .await
    .unwrap();
    assert_ne!(
        std::fs::read(a.net.dir.join("ca/ca.pem")).unwrap(),
        std::fs::read(b.net.dir.join("ca/ca.pem")).unwrap(),
        "each network has its own CA"
    );
    let sender = a.client(A_COMMUNE).unwrap();
    let receiver = b.client(B_COMMUNE).unwrap();

    let id = send_when_known(&sender, B_COMMUNE, "Từ mạng A sang mạng B").await;
    let item = eventually(30, "A's document in B's commune", async || {
        receiver
            .list_inbox(0, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.kind == InboxKind::Document)
    })
    .await;
    let Incoming::Document(got) = receiver.fetch(&item.id).await.unwrap() else {
        panic!("not a document");
    };
    assert_eq!(got.document.header.subject, "Từ mạng A sang mạng B");
    assert_eq!(got.document.sender().unwrap().as_str(), A_COMMUNE);
    assert_eq!(
        got.document.imported.as_ref().unwrap().bridge.as_str(),
        "VN"
    );
    receiver.ack(&item.id).await.unwrap();

    // B's commune routes its answer by the platform's list, which comes down B's tree on
    // its own schedule: wait for it (a notice sent before would be dead-lettered there).
    eventually(30, "the platform's list at B's commune", async || {
        let found = b
            .admin("H29-C1")
            .unwrap()
            .platform(pb::PlatformRequest {
                search: A_COMMUNE.into(),
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner();
        (found.matched == 1).then_some(())
    })
    .await;
    let mut answer = StatusNotice::new(
        AgencyCode::parse(B_COMMUNE).unwrap(),
        AgencyCode::parse(A_COMMUNE).unwrap(),
        &got.document.id,
        StatusCode::Accepted,
    );
    answer.description = "Đã vào sổ".into();
    receiver.send_status(answer).await.unwrap();
    let notice = eventually(30, "B's status back in A's commune", async || {
        sender
            .list_inbox(0, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.kind == InboxKind::Status)
    })
    .await;
    let Incoming::Status { notice, .. } = sender.fetch(&notice.id).await.unwrap() else {
        panic!("not a status");
    };
    assert_eq!(notice.code, StatusCode::Accepted);
    assert_eq!(notice.response_for.document_id, id);
    let tracked = sender.track(&id).await.unwrap();
    assert!(
        format!("{tracked:?}").contains("national platform"),
        "{tracked:?}"
    );
    for r in platform.requests() {
        assert!(r.hmac_ok && r.headers_ok, "{r}");
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// A VXP client of agency `code` on its node's gateway, as a DMS built on the SDK is.
fn gateway_client(net: &RunningNetwork, code: &str) -> VxpClient {
    let agency = AgencyCode::parse(code).unwrap();
    let i = net
        .net
        .nodes
        .iter()
        .position(|n| n.agencies.iter().any(|(a, _, _)| *a == agency))
        .unwrap();
    let secret =
        std::fs::read_to_string(lienthong_devnet::vxp_secret_file(&net.net.dir, &agency)).unwrap();
    let addr = net.vxp_addr(i).expect("the node runs a VXP gateway");
    VxpClient::new(ClientConfig::new(
        format!("https://{addr}"),
        code,
        Secret::new(secret.trim_end()),
        tls_trusting(&net.net.dir.join("ca").join("ca.pem")),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxp_clients_on_both_sides_exchange_a_document_a_status_and_a_failed_one() {
    let w = world().await;
    let dms = gateway_client(&w.net, COMMUNE);
    let files = tempfile::TempDir::new().unwrap();
    // Wait for the platform's agency list at the commune's node (a refusal changes nothing).
    send_when_known(&w.net.client(COMMUNE).unwrap(), EXT_AGENCY, "mồi").await;

    // The commune's DMS sends through its gateway; the platform's DMS receives it.
    let path = platform_file(edoc(COMMUNE, EXT_AGENCY), files.path(), "out.edxml");
    dms.send_edoc(COMMUNE, MessageType::Edoc, None, &path)
        .await
        .unwrap();
    let listed = eventually(20, "the document listed at EXT", async || {
        let list = w.ext.received_edocs(MessageType::Edoc).await.unwrap();
        (list.len() == 2).then_some(list)
    })
    .await;
    let mut doc_ids = Vec::new();
    for item in &listed {
        let id = item.doc_id.clone().unwrap();
        let mut bytes = Vec::new();
        w.ext.get_edoc(&id, &mut bytes).await.unwrap();
        w.ext
            .update_status(&id, lienthong_vxp::DeliveryStatus::Done)
            .await
            .unwrap();
        if String::from_utf8_lossy(&bytes).contains("PRO-TEST-CASE1") {
            doc_ids.push((id, element(&bytes, "DocumentId")));
        }
    }
    let [(_, edxml_id)] = doc_ids.as_slice() else {
        panic!("the gateway's document once among {listed:?}");
    };

    // The platform's DMS answers 03; the commune's DMS lists and downloads the status.
    let path = platform_file(
        status(EXT_AGENCY, COMMUNE, edxml_id, "03"),
        files.path(),
        "st.edxml",
    );
    w.ext
        .send_edoc(EXT_AGENCY, MessageType::Status, None, &path)
        .await
        .unwrap();
    let statuses = eventually(20, "the status at the commune's gateway", async || {
        let list = dms.received_edocs(MessageType::Status).await.unwrap();
        (!list.is_empty()).then_some(list)
    })
    .await;
    let status_id = statuses[0].doc_id.clone().unwrap();
    let mut bytes = Vec::new();
    dms.get_edoc(&status_id, &mut bytes).await.unwrap();
    assert_eq!(element(&bytes, "StatusCode"), "03");
    dms.update_status(&status_id, lienthong_vxp::DeliveryStatus::Done)
        .await
        .unwrap();

    // A second document, from the platform, is acknowledged as failed by the commune's
    // DMS: it stays in the commune's inbox and is listed again.
    let second = String::from_utf8(edoc(EXT_AGENCY, COMMUNE))
        .unwrap()
        .replace(
            "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb",
            "second-from-the-platform",
        );
    let path = platform_file(second.into_bytes(), files.path(), "in.edxml");
    w.ext
        .send_edoc(EXT_AGENCY, MessageType::Edoc, None, &path)
        .await
        .unwrap();
    let incoming = eventually(
        20,
        "the platform's document at the commune's gateway",
        async || {
            let list = dms.received_edocs(MessageType::Edoc).await.unwrap();
            list.into_iter()
                .find(|i| i.from.as_deref() == Some(EXT_AGENCY))
        },
    )
    .await;
    let id = incoming.doc_id.unwrap();
    let mut bytes = Vec::new();
    dms.get_edoc(&id, &mut bytes).await.unwrap();
    assert_eq!(element(&bytes, "OrganId"), EXT_AGENCY);
    dms.update_status(&id, lienthong_vxp::DeliveryStatus::Fail)
        .await
        .unwrap();
    let again = dms.received_edocs(MessageType::Edoc).await.unwrap();
    assert!(
        again
            .iter()
            .any(|i| i.doc_id.as_deref() == Some(id.as_str())),
        "a failed download is listed again: {again:?}"
    );
    for r in w.platform.requests() {
        assert!(r.hmac_ok && r.headers_ok, "{r}");
    }
    w.net.stop().await.unwrap();
}

/// Figures, not a check of speed: documents per second through the bridge each way, and
/// the time from a send on one side to the listing on the other. Run with
/// `cargo test --release -p lienthong-testkit --test bridge -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn bridge_figures() {
    const N: usize = 300;
    let w = world().await;
    let commune = w.net.client(COMMUNE).unwrap();
    send_when_known(&commune, EXT_AGENCY, "mồi").await;
    let ext_edocs = || {
        w.platform
            .mailbox(EXT)
            .iter()
            .filter(|m| m.message_type == "edoc")
            .count()
    };
    eventually(20, "the first", async || (ext_edocs() == 1).then_some(())).await;

    // Outbound: N documents from 8 concurrent senders of the commune.
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let client = w.net.client(COMMUNE).unwrap();
        tasks.push(tokio::spawn(async move {
            let to = AgencyCode::parse(EXT_AGENCY).unwrap();
            for i in (t..N).step_by(8) {
                let mut d = client.new_document(vec![to.clone()], &format!("ra {i}"));
                client.send(&mut d, &[]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eventually(300, "all outbound", async || {
        (ext_edocs() == N + 1).then_some(())
    })
    .await;
    let out_secs = start.elapsed().as_secs_f64();

    // Outbound latency: one send, until the platform's DMS lists it.
    let mut out_latency = Vec::new();
    for i in 0..5 {
        let listed_before = w.ext.received_edocs(MessageType::Edoc).await.unwrap().len();
        let t0 = tokio::time::Instant::now();
        let mut d = commune.new_document(
            vec![AgencyCode::parse(EXT_AGENCY).unwrap()],
            &format!("đo {i}"),
        );
        commune.send(&mut d, &[]).await.unwrap();
        loop {
            if w.ext.received_edocs(MessageType::Edoc).await.unwrap().len() > listed_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out_latency.push(t0.elapsed().as_millis());
    }

    // Inbound: N documents sent on the platform to the commune.
    let files = tempfile::TempDir::new().unwrap();
    let template = String::from_utf8(edoc(EXT_AGENCY, COMMUNE)).unwrap();
    let inbox_len = async || {
        let mut n = 0;
        let mut after = 0;
        loop {
            let page = commune.list_inbox(after, 1000).await.unwrap();
            let Some(last) = page.last() else { return n };
            after = last.cursor;
            n += page.iter().filter(|i| i.from == EXT_AGENCY).count();
        }
    };
    let start = tokio::time::Instant::now();
    for i in 0..N {
        let path = platform_file(
            template
                .replace("9fbfbad2-f1f8-4256-a2eb-50fb1061cddb", &format!("in-{i}"))
                .into_bytes(),
            files.path(),
            "in.edxml",
        );
        w.ext
            .send_edoc(EXT_AGENCY, MessageType::Edoc, None, &path)
            .await
            .unwrap();
    }
    let sent_secs = start.elapsed().as_secs_f64();
    eventually(600, "all inbound", async || {
        (inbox_len().await == N).then_some(())
    })
    .await;
    let in_secs = start.elapsed().as_secs_f64();

    let mut in_latency = Vec::new();
    for i in 0..5 {
        let path = platform_file(
            template
                .replace("9fbfbad2-f1f8-4256-a2eb-50fb1061cddb", &format!("lat-{i}"))
                .into_bytes(),
            files.path(),
            "lat.edxml",
        );
        let t0 = tokio::time::Instant::now();
        w.ext
            .send_edoc(EXT_AGENCY, MessageType::Edoc, None, &path)
            .await
            .unwrap();
        loop {
            if inbox_len().await == N + i + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        in_latency.push(t0.elapsed().as_millis());
    }
    out_latency.sort();
    in_latency.sort();
    println!(
        "bridge figures: outbound {N} documents in {out_secs:.2} s = {:.0} docs/s; \
         inbound {N} in {in_secs:.2} s = {:.0} docs/s (sending them on the platform took \
         {sent_secs:.2} s); send → listed on the platform: {out_latency:?} ms; send on the \
         platform → in the commune's inbox: {in_latency:?} ms (mailbox polled every 100 ms)",
        N as f64 / out_secs,
        N as f64 / in_secs,
    );
    w.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_platform_refuses_is_dead_lettered_and_an_operator_retries_it() {
    let mut w = world().await;
    let commune = w.net.client(COMMUNE).unwrap();
    send_when_known(&commune, EXT_AGENCY, "trước khi sai mật khẩu").await;
    eventually(20, "the first document on the platform", async || {
        (!w.platform.mailbox(EXT).is_empty()).then_some(())
    })
    .await;

    // The bridge restarts with a secret the platform does not know: the platform answers
    // every call FAIL, and the document is dead-lettered with the platform's reason.
    let secret_file = w.net.net.dir.join("platform.secret");
    std::fs::write(&secret_file, "not-the-secret").unwrap();
    w.net.restart_node("VN").await.unwrap();
    let mut d = commune.new_document(
        vec![AgencyCode::parse(EXT_AGENCY).unwrap()],
        "trong lúc sai mật khẩu",
    );
    commune.send(&mut d, &[]).await.unwrap();
    let id = d.id.to_string();
    let letter = eventually(
        20,
        "the refused document among the dead letters",
        async || {
            let list = w
                .net
                .admin("VN")
                .unwrap()
                .list_dead_letters(pb::DeadLetterFilter::default())
                .await
                .unwrap()
                .into_inner()
                .dead_letters;
            list.into_iter().find(|l| l.document_id == id)
        },
    )
    .await;
    assert_eq!(letter.peer, "vxp-platform");
    assert!(
        letter.reason.contains("national platform refused it"),
        "{letter:?}"
    );
    let tracked = format!("{:?}", commune.track(&id).await.unwrap());
    assert!(
        tracked.contains("national platform refused it"),
        "{tracked}"
    );

    // The operator fixes the secret, restarts the bridge and retries: it goes out once.
    std::fs::write(&secret_file, LT_SECRET).unwrap();
    w.net.restart_node("VN").await.unwrap();
    let retried = w
        .net
        .admin("VN")
        .unwrap()
        .retry_dead_letters(pb::DeadLetterAction {
            filter: Some(pb::DeadLetterFilter {
                peer: "vxp-platform".into(),
                ..Default::default()
            }),
            reason: "the platform secret was wrong".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.document_ids, vec![id.clone()], "{retried:?}");
    let arrived = eventually(20, "the retried document on the platform", async || {
        w.platform
            .mailbox(EXT)
            .into_iter()
            .find(|m| String::from_utf8_lossy(&m.bytes).contains("trong lúc sai mật khẩu"))
    })
    .await;
    assert_eq!(arrived.to, vec![EXT_AGENCY.to_string()]);
    let refused_calls = w
        .platform
        .requests()
        .iter()
        .filter(|r| r.system_id == LT && !r.hmac_ok)
        .count();
    assert!(
        refused_calls > 0,
        "the wrong secret was seen by the platform"
    );
    w.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_secret_others_can_read_stops_the_bridge_before_it_starts() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = PlatformConfig::new(dir.path().join("platform"));
    config.systems = vec![SystemSpec::new(
        LT,
        LT_SECRET,
        [AgencySpec::new(COMMUNE, "xã")],
    )];
    let platform = Platform::start(config).await.unwrap();
    let secret_file = dir.path().join("open.secret");
    std::fs::write(&secret_file, LT_SECRET).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let upstream = UpstreamConfig {
        endpoint: platform.url().to_string(),
        system_id: LT.into(),
        secret_file,
        ca: platform.ca_pem_path().to_path_buf(),
        poll_ms: 100,
        agencies_refresh_ms: 60_000,
        state_dir: None,
    };
    let started = RunningNetwork::start_with_directory(
        &dir.path().join("net"),
        Shape::new(2),
        0,
        100,
        move |c| {
            if c.node_id == "VN" {
                c.vxp_upstream = Some(upstream.clone());
            }
        },
        |source| with_bridge(&source, "VN", &[]),
    )
    .await;
    let error = format!("{:#}", started.expect_err("the bridge must not start"));
    assert!(
        error.contains("[vxp_upstream]") && error.contains("chmod 600"),
        "{error}"
    );
    assert!(
        platform.requests().is_empty(),
        "nothing was sent with a secret others could read"
    );
}
