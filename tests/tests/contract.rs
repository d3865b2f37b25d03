//! The gRPC contract as a third-party DMS meets it (issue #12): what it sends is what its
//! signature covers, and the node says what it expects instead of rewriting.

use lienthong_client::ClientProfile;
use lienthong_client::Tracked;
use lienthong_core::sign::Signature;
use lienthong_core::{StatusCode, StatusNotice, canonical};
use lienthong_proto::pb;
use lienthong_testkit::RawRpc;
use lienthong_testkit::{TestNetwork, wire};
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A DMS that writes a recipient's code in another case, or with spaces, gets a refusal
/// that names the canonical form, whether it signed what it sent or the canonical code
/// (the node used to rewrite the code and verify the rewritten bytes: the first got "bad
/// signature" with no hint, the second was accepted with a `to` the sender never wrote).
#[tokio::test]
async fn refuses_a_non_canonical_agency_code_naming_the_canonical_form() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let canonical = b.agency().to_string();
    for written in [canonical.to_lowercase(), format!(" {canonical} ")] {
        let mut d = a.new_document(vec![b.agency().clone()], "viết thường");
        let mut sealed = wire(&a.seal(&mut d, &[]).unwrap());
        sealed.to[0].code = written.clone();
        let status = a
            .rpc()
            .send_document(pb::SendDocumentRequest {
                document: Some(sealed),
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(&format!(
                "agency code {written:?} is not written in its canonical form {canonical:?}"
            )),
            "{status:?}"
        );
    }
    assert!(b.list_inbox(0, 10).await.unwrap().is_empty());
    t.stop().await.unwrap();
}

/// A status code under a signature is taken as written: `3` is refused with `03` named.
#[tokio::test]
async fn refuses_a_status_code_not_written_as_two_digits() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "cần phản hồi");
    a.send(&mut d, &[]).await.unwrap();
    let profile = ClientProfile::load(&t.net.profiles[1].1).unwrap();
    let key = lienthong_pki::load_signing_key(&profile.key).unwrap();
    let cert = lienthong_pki::load_certs(&profile.cert).unwrap()[0].to_vec();
    let mut notice = StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Accepted,
    );
    notice.signature = Some(Signature {
        algorithm: key.algorithm(),
        signer_cert: cert,
        value: key.sign(&canonical::status_bytes(&notice)).unwrap(),
    });
    let mut wire: pb::StatusNotice = (&notice).into();
    wire.status_code = "3".into();
    let status = b
        .rpc()
        .send_status(pb::SendStatusRequest { notice: Some(wire) })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("status code \"3\" is not written in its canonical form \"03\""),
        "{status:?}"
    );
    t.stop().await.unwrap();
}

/// Acknowledging twice (a DMS retrying after a lost answer) gets the same answer; only an
/// agency the message was never for is refused.
#[tokio::test]
async fn ack_is_idempotent() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, outsider) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let mut d = a.new_document(vec![b.agency().clone()], "nhận hai lần");
    a.send(&mut d, &[]).await.unwrap();
    b.fetch(d.id.as_str()).await.unwrap();
    b.ack(d.id.as_str()).await.unwrap();
    b.ack(d.id.as_str()).await.unwrap();
    assert!(b.list_inbox(0, 10).await.unwrap().is_empty());
    let refused = outsider
        .ack(d.id.as_str())
        .await
        .expect_err("not its message");
    assert_eq!(refused.code(), Some(Code::NotFound), "{refused:?}");
    let Tracked {
        events,
        statuses: _,
        ..
    } = a.track(d.id.as_str()).await.unwrap();
    let acks = events
        .iter()
        .filter(|e| e.kind == lienthong_core::TransportEventKind::Acknowledged)
        .count();
    assert_eq!(acks, 1, "acknowledged once: {events:?}");
    t.stop().await.unwrap();
}

/// A stock gRPC client accepts responses of at most 4 MiB: a fetched document carries
/// at most 3 MiB of attachments inline, and the others come with FetchAttachment.
#[tokio::test]
async fn a_fetched_document_fits_the_default_message_size_of_stock_clients() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let part = |n: u8, size: usize| lienthong_client::OutgoingAttachment {
        name: format!("phan-{n}.pdf"),
        content_type: "application/pdf".into(),
        bytes: bytes::Bytes::from(vec![n; size]),
    };
    let parts = [part(1, 2 << 20), part(2, 2 << 20), part(3, 100 << 10)];
    let mut d = a.new_document(vec![b.agency().clone()], "ba tệp");
    a.send(&mut d, &parts).await.unwrap();
    // Default limits, as grpcio or grpc-java have them.
    let profile = ClientProfile::load(&t.net.profiles[1].1).unwrap();
    let mut stock = pb::agency_service_client::AgencyServiceClient::new(profile.channel().unwrap());
    let fetched = stock
        .fetch_document(pb::FetchDocumentRequest {
            id: d.id.to_string(),
            from: String::new(),
        })
        .await
        .expect("a response under 4 MiB")
        .into_inner();
    let Some(pb::fetch_document_response::Message::Document(doc)) = fetched.message else {
        panic!("expected a document")
    };
    let inline: Vec<usize> = doc.attachments.iter().map(|a| a.content.len()).collect();
    assert_eq!(inline, vec![2 << 20, 0, 100 << 10]);
    let mut chunks = stock
        .fetch_attachment(pb::FetchAttachmentRequest {
            document_id: d.id.to_string(),
            sha256: doc.attachments[1].sha256.clone(),
            offset: 0,
            from: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    while let Some(chunk) = chunks.message().await.unwrap() {
        assert!(chunk.data.iter().all(|&x| x == 2));
        got += chunk.data.len();
    }
    assert_eq!(got, 2 << 20);
    t.stop().await.unwrap();
}

/// Many stock clients (grpcurl before 1.8, grpcio's tools, Postman) speak reflection
/// v1alpha only: it is served beside v1.
#[tokio::test]
async fn serves_grpc_reflection_v1alpha_too() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
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
        .expect("v1alpha is served")
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "lienthong.v1.AgencyService"),
        "{names:?}"
    );
    t.stop().await.unwrap();
}
