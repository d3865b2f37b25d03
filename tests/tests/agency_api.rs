//! End-to-end tests of one node over real mutual TLS, real sled and real certificates:
//! every refusal asserts its gRPC code and message, and that nothing changed.

use std::time::Duration;

use bytes::Bytes;
use lienthong_client::{Accepted, Tracked};
use lienthong_client::{ClientProfile, DmsClient, Incoming, OutgoingAttachment};
use lienthong_core::{AgencyCode, Document, StatusCode, StatusNotice, TransportEventKind};
use lienthong_pki::{CertificateAuthority, Identity};
use lienthong_proto::pb;
use lienthong_testkit::RawRpc;
use lienthong_testkit::{TestNetwork, assert_reason, wire};
use tokio_stream::StreamExt;
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn attachment(bytes: &[u8]) -> OutgoingAttachment {
    OutgoingAttachment {
        name: "cong-van.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: Bytes::copy_from_slice(bytes),
    }
}

/// The error and its causes, as text: with TLS 1.3 the server's alert is only there.
fn chain(status: &dyn std::error::Error) -> String {
    let mut out = status.to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        out.push_str(" / ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

async fn assert_inbox_empty(client: &DmsClient) {
    let entries = client.list_inbox(0, 100).await.unwrap();
    assert!(entries.is_empty(), "inbox should be untouched: {entries:?}");
}

/// Sends `document` as sealed by `signer` but over `via`'s connection.
async fn send_raw(
    via: &DmsClient,
    sealed: &lienthong_client::Sealed,
) -> Result<pb::SendDocumentResponse, tonic::Status> {
    send_raw_pb(via, wire(sealed)).await
}

/// Sends a wire document as it is over `via`'s connection.
async fn send_raw_pb(
    via: &DmsClient,
    sealed: pb::Document,
) -> Result<pb::SendDocumentResponse, tonic::Status> {
    via.rpc()
        .send_document(pb::SendDocumentRequest {
            document: Some(sealed),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn delivers_signed_document_with_attachment_by_pull() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "Về việc A");
    let Accepted {
        receipt,
        duplicate: dup,
    } = a
        .send(&mut d, &[attachment(b"%PDF-1.7 ...")])
        .await
        .unwrap();
    assert!(!dup);
    assert_eq!(receipt.document_id, d.id);
    assert_eq!(receipt.node.as_str(), "H41");

    let entries = b.list_inbox(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, d.id.as_str());
    assert_eq!(entries[0].from, a.agency().as_str());
    assert_eq!(entries[0].subject, "Về việc A");
    let Incoming::Document(got) = b.fetch(d.id.as_str()).await.unwrap() else {
        panic!("expected a document")
    };
    assert_eq!(got.contents, vec![Bytes::from_static(b"%PDF-1.7 ...")]);
    assert_eq!(got.document.header.subject, "Về việc A");
    assert_eq!(got.receipt, receipt);

    b.ack(d.id.as_str()).await.unwrap();
    assert_inbox_empty(&b).await;
    // Idempotent (see tests/contract.rs `ack_is_idempotent`).
    b.ack(d.id.as_str()).await.unwrap();
    t.stop().await.unwrap();
}

#[tokio::test]
async fn subscription_delivers_and_resumes_from_cursor() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut stream = b
        .rpc()
        .subscribe(pb::SubscribeRequest { after_cursor: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut d = a.new_document(vec![b.agency().clone()], &format!("số {i}"));
        a.send(&mut d, &[]).await.unwrap();
        ids.push(d.id.to_string());
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("entry within 10 s")
            .unwrap()
            .unwrap();
        seen.push(e);
    }
    assert_eq!(seen.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    drop(stream); // the DMS disconnects after the first entry was handled
    b.ack(&ids[0]).await.unwrap();

    let mut d = a.new_document(vec![b.agency().clone()], "số 3");
    a.send(&mut d, &[]).await.unwrap();
    ids.push(d.id.to_string());

    // Reconnecting after the first cursor gives everything after it, nothing acked.
    let mut resumed = b
        .rpc()
        .subscribe(pb::SubscribeRequest {
            after_cursor: seen[0].cursor,
        })
        .await
        .unwrap()
        .into_inner();
    let mut again = Vec::new();
    for _ in 0..3 {
        let e = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await
            .expect("entry within 10 s")
            .unwrap()
            .unwrap();
        again.push(e.id);
    }
    assert_eq!(again, ids[1..].to_vec());
    // And from the start: the acknowledged first document is gone.
    let all: Vec<String> = b
        .list_inbox(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all, ids[1..].to_vec());
    t.stop().await.unwrap();
}

#[tokio::test]
async fn status_routes_back_to_sender_and_track_shows_the_path() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let mut d = a.new_document(vec![b.agency().clone(), c.agency().clone()], "Gửi hai nơi");
    a.send(&mut d, &[]).await.unwrap();
    b.fetch(d.id.as_str()).await.unwrap();
    b.ack(d.id.as_str()).await.unwrap();

    let mut notice = StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Accepted,
    );
    notice.description = "đã vào sổ".into();
    b.send_status(notice.clone()).await.unwrap();

    let entries = a.list_inbox(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, lienthong_client::InboxKind::Status);
    let Incoming::Status { notice: got, .. } = a.fetch(&entries[0].id).await.unwrap() else {
        panic!("expected a status")
    };
    assert_eq!(got.code, StatusCode::Accepted);
    assert_eq!(got.response_for.document_id, d.id.as_str());

    let Tracked {
        events, statuses, ..
    } = a.track(d.id.as_str()).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.agency.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (TransportEventKind::Accepted, None),
            (TransportEventKind::Delivered, Some(b.agency().clone())),
            (TransportEventKind::Delivered, Some(c.agency().clone())),
            (TransportEventKind::Fetched, Some(b.agency().clone())),
            (TransportEventKind::Acknowledged, Some(b.agency().clone())),
            (TransportEventKind::StatusReceived, Some(b.agency().clone())),
        ]
    );
    assert!(
        events.windows(2).all(|w| w[0].at <= w[1].at),
        "timestamps in order"
    );
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].description, "đã vào sổ");
    // A recipient may track too; an outsider may not.
    assert!(c.track(d.id.as_str()).await.is_ok());
    let outsider = t.client(3).unwrap();
    assert_reason(
        outsider.track(d.id.as_str()).await,
        Code::NotFound,
        "unknown-message",
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn duplicate_with_same_content_gets_the_original_receipt() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "một lần");
    let Accepted {
        receipt: first,
        duplicate: _,
    } = a.send(&mut d, &[attachment(b"x")]).await.unwrap();
    let Accepted {
        receipt: second,
        duplicate: dup,
    } = a.send(&mut d.clone(), &[attachment(b"x")]).await.unwrap();
    assert!(dup);
    assert_eq!(first, second);
    assert_eq!(
        b.list_inbox(0, 10).await.unwrap().len(),
        1,
        "delivered once"
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_duplicate_id_with_different_content() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "bản gốc");
    a.send(&mut d, &[]).await.unwrap();
    let mut other = d.clone();
    other.header.subject = "bản khác".into();
    assert_reason(
        a.send(&mut other, &[]).await,
        Code::AlreadyExists,
        "conflict",
    );
    let entries = b.list_inbox(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].subject, "bản gốc");
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_sender_not_matching_cert() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    // b seals a document from b, but a's connection sends it.
    let mut d = b.new_document(vec![b.agency().clone()], "mạo danh");
    let sealed = b.seal(&mut d, &[]).unwrap();
    assert_reason(
        send_raw(&a, &sealed).await,
        Code::PermissionDenied,
        "sender-mismatch",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_document_signed_by_another_agency() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    // from = a, but signed with b's key.
    let mut d = b.new_document(vec![b.agency().clone()], "chữ ký sai người");
    d.from.code = Some(a.agency().clone());
    let sealed = b.seal(&mut d, &[]).unwrap();
    assert_reason(
        send_raw(&a, &sealed).await,
        Code::PermissionDenied,
        "wrong-signer",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_bad_signature() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "bản đã ký");
    let mut sealed = wire(&a.seal(&mut d, &[]).unwrap());
    sealed.header.as_mut().unwrap().subject = "bản bị sửa".into();
    assert_reason(
        send_raw_pb(&a, sealed).await,
        Code::InvalidArgument,
        "bad-signature",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_unsigned_document() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "chưa ký");
    let mut sealed = wire(&a.seal(&mut d, &[]).unwrap());
    sealed.signature = None;
    assert_reason(
        send_raw_pb(&a, sealed).await,
        Code::InvalidArgument,
        "unsigned",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_attachment_digest_mismatch() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "tệp bị đổi");
    let mut sealed = wire(&a.seal(&mut d, &[attachment(b"original bytes")]).unwrap());
    sealed.attachments[0].content = Bytes::from_static(b"modified bytes");
    assert_reason(
        send_raw_pb(&a, sealed).await,
        Code::InvalidArgument,
        "attachment-mismatch",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_unknown_recipient() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let nowhere = AgencyCode::parse("000.00.00.G99").unwrap();
    let mut d = a.new_document(vec![b.agency().clone(), nowhere], "gửi nơi không có");
    assert_reason(
        a.send(&mut d, &[]).await,
        Code::NotFound,
        "unknown-recipient",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_malformed_agency_code() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "mã sai");
    let mut sealed = wire(&a.seal(&mut d, &[]).unwrap());
    sealed.to[0].code = "01.02.G22".into();
    assert_reason(
        send_raw_pb(&a, sealed).await,
        Code::InvalidArgument,
        "invalid-message",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_oversized_message() {
    init();
    let t = TestNetwork::start(|c| c.limits.max_message_bytes = 64 * 1024)
        .await
        .unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "quá lớn");
    let big = vec![7u8; 200 * 1024];
    let result = a.send(&mut d, &[attachment(&big)]).await;
    let status = result.expect_err("oversized message must be refused");
    assert_eq!(status.code(), Some(Code::OutOfRange), "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{status:?}"
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_agency_not_homed_here() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let stranger = AgencyCode::parse("000.00.00.H29").unwrap();
    let profile = t
        .net
        .extra_profile(None, &Identity::Agency(stranger.clone()), "stranger")
        .unwrap();
    let client = DmsClient::from_profile(&ClientProfile::load(&profile).unwrap()).unwrap();
    let b = t.client(1).unwrap();
    let mut d = client.new_document(vec![b.agency().clone()], "không thuộc node này");
    assert_reason(
        client.send(&mut d, &[]).await,
        Code::PermissionDenied,
        "not-allowed",
    );
    assert_reason(
        client.list_inbox(0, 10).await,
        Code::PermissionDenied,
        "not-allowed",
    );
    assert_inbox_empty(&b).await;
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_client_from_wrong_ca() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let other_ca_dir = t.net.dir.join("other-ca");
    CertificateAuthority::generate("another CA")
        .unwrap()
        .save(&other_ca_dir)
        .unwrap();
    let a_code = t.client(0).unwrap().agency().clone();
    let profile = t
        .net
        .extra_profile(Some(&other_ca_dir), &Identity::Agency(a_code), "foreign")
        .unwrap();
    let client = DmsClient::from_profile(&ClientProfile::load(&profile).unwrap()).unwrap();
    let status = client
        .list_inbox(0, 10)
        .await
        .expect_err("foreign CA must be refused");
    // TLS 1.3 completes the client side before the server's alert; the RPC then fails,
    // and the alert is in the error's cause chain.
    assert!(
        chain(&status).contains("received fatal alert: UnknownCA"),
        "{}",
        chain(&status)
    );
    // The node itself is up and serves a client of its own CA.
    t.client(0).unwrap().list_inbox(0, 10).await.unwrap();
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_client_without_certificate() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in lienthong_pki::load_certs(t.net.dir.join("ca/ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(lienthong_pki::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let channel = lienthong_client::transport::channel(
        &format!("https://{}", t.net.config.listen),
        std::sync::Arc::new(config),
    )
    .unwrap();
    let status = pb::agency_service_client::AgencyServiceClient::new(channel)
        .list_inbox(pb::ListInboxRequest::default())
        .await
        .expect_err("a client without certificate must be refused");
    assert!(
        chain(&status).contains("received fatal alert: CertificateRequired"),
        "{}",
        chain(&status)
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_status_from_an_agency_that_did_not_receive_the_document() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let mut d = a.new_document(vec![b.agency().clone()], "chỉ gửi b");
    a.send(&mut d, &[]).await.unwrap();
    let notice = StatusNotice::new(
        c.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Done,
    );
    // The same answer as for a document that does not exist (see
    // `refusals_to_outsiders_reveal_neither_existence_nor_parties`).
    assert_reason(
        c.send_status(notice).await,
        Code::NotFound,
        "unknown-message",
    );
    assert_inbox_empty(&a).await;
    // 02 without a reason is refused before it reaches the node's rules.
    let notice = StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Rejected,
    );
    assert_reason(
        b.send_status(notice).await,
        Code::InvalidArgument,
        "invalid-message",
    );
    assert_inbox_empty(&a).await;
    t.stop().await.unwrap();
}

/// An `edxml_preserved` value as a custom DMS could send it: lienthong-edxml's first line,
/// then a message whose unknown element nests `depth` levels.
fn poisoned_preserved(depth: usize) -> Vec<u8> {
    format!(
        "lienthong-edxml-preserved/1\n<edXML><edXMLEnvelope><edXMLHeader><MessageHeader>{}{}\
         </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>",
        "<X>".repeat(depth),
        "</X>".repeat(depth)
    )
    .into_bytes()
}

#[tokio::test]
async fn rejects_an_edxml_preserved_part_nested_beyond_the_limit() {
    // Accepted, it crashed every `inbox --export-edxml` of the recipient at this entry.
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "phần giữ lại quá sâu");
    d.edxml_preserved = poisoned_preserved(20_000);
    let sealed = a.seal(&mut d, &[]).unwrap();
    let refused = send_raw(&a, &sealed).await;
    let message = refused
        .as_ref()
        .map(|_| ())
        .unwrap_err()
        .message()
        .to_string();
    assert!(
        message.contains("<X> is nested deeper than 260 levels, the most lienthong reads"),
        "{message}"
    );
    assert_reason(refused, Code::InvalidArgument, "unexportable-edxml");
    assert_inbox_empty(&b).await;

    // A status notice: the same check, before anything else is looked at.
    let mut d = a.new_document(vec![b.agency().clone()], "văn bản thật");
    a.send(&mut d, &[]).await.unwrap();
    let mut notice = StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Accepted,
    );
    notice.edxml_preserved = poisoned_preserved(20_000);
    assert_reason(
        b.send_status(notice.clone()).await,
        Code::InvalidArgument,
        "unexportable-edxml",
    );
    assert_inbox_empty(&a).await;
    // Without it the same notice goes through.
    notice.edxml_preserved = Vec::new();
    b.send_status(notice).await.unwrap();
    t.stop().await.unwrap();
}

#[tokio::test]
async fn admin_api_needs_the_node_certificate() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let mut admin = ClientProfile::load(&t.net.operator_profile)
        .unwrap()
        .admin()
        .unwrap();
    let health = admin
        .health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(health.store_ok);
    assert_eq!(health.agencies, 4);
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d: Document = a.new_document(vec![b.agency().clone()], "đếm hàng đợi");
    a.send(&mut d, &[]).await.unwrap();
    let queues = admin
        .queues(pb::QueuesRequest {})
        .await
        .unwrap()
        .into_inner();
    let depth = |code: &AgencyCode| {
        queues
            .inboxes
            .iter()
            .find(|q| q.name == code.as_str())
            .map(|q| q.depth)
    };
    assert_eq!(depth(b.agency()), Some(1));
    assert_eq!(depth(a.agency()), Some(0));

    let as_agency = ClientProfile::load(&t.net.profiles[0].1)
        .unwrap()
        .admin()
        .unwrap();
    assert_reason(
        as_agency.clone().health(pb::HealthRequest {}).await,
        Code::PermissionDenied,
        "not-allowed",
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn serves_standard_grpc_health() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let channel = ClientProfile::load(&t.net.profiles[0].1)
        .unwrap()
        .channel()
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "lienthong.v1.AgencyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn node_refuses_to_start_with_a_world_readable_key() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = lienthong_testkit::generate(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        &lienthong_testkit::DEV_AGENCIES,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&net.config.tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = lienthong_node::server::build(&net.config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("readable by group or others"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn documents_survive_a_node_restart() {
    init();
    let mut t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "qua khởi động lại");
    a.send(&mut d, &[attachment(b"bytes on disk")])
        .await
        .unwrap();
    t.restart().await.unwrap();
    let b = t.client(1).unwrap();
    let Incoming::Document(got) = b.fetch(d.id.as_str()).await.unwrap() else {
        panic!("expected a document")
    };
    assert_eq!(got.contents, vec![Bytes::from_static(b"bytes on disk")]);
    // The receipt given before the restart is still the one a re-send gets.
    let Accepted {
        receipt: again,
        duplicate: dup,
    } = a
        .send(&mut d.clone(), &[attachment(b"bytes on disk")])
        .await
        .unwrap();
    assert!(dup);
    assert_eq!(again, got.receipt);
    t.stop().await.unwrap();
}

#[tokio::test]
async fn closes_connections_that_do_not_finish_the_tls_handshake() {
    use tokio::io::AsyncReadExt;
    init();
    let t = TestNetwork::start(|c| c.limits.handshake_timeout_ms = 300)
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(t.net.config.listen)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    // The server never hears a ClientHello; it must hang up on its own.
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the node should close the idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed without data");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // And the node still serves others.
    assert!(t.client(0).unwrap().list_inbox(0, 1).await.is_ok());
    t.stop().await.unwrap();
}

#[tokio::test]
async fn serves_grpc_reflection() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let channel = ClientProfile::load(&t.net.profiles[0].1)
        .unwrap()
        .channel()
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "lienthong.v1.AgencyService",
        "lienthong.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    t.stop().await.unwrap();
}
