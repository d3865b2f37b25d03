//! Revoked certificates do not sign: a node refuses a document whose signer its CRLs
//! revoke, whatever path it came by (the agency's own connection with another, valid
//! certificate; a relay link from a neighbour that has no CRL), and refuses a trace
//! entry signed by a revoked node certificate; a DMS refuses to verify a fetched document
//! whose signer is in its profile's CRLs. Real nodes, real mutual TLS, real CRLs from the
//! CA's revocation database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lienthong_client::Tracked;
use lienthong_client::{ClientProfile, DmsClient};
use lienthong_core::sign::{SigningKey, sha256};
use lienthong_core::{
    AgencyCode, NodeId, Receipt, Signature, TraceEntry, TransportEventKind, canonical, now_millis,
};
use lienthong_pki::revocation::{self, Reason};
use lienthong_pki::{CertificateAuthority, Identity, KeyKind};
use lienthong_proto::{DocumentWithContent, document_to_pb, pb};
use lienthong_testkit::RawRpc;
use lienthong_testkit::{RunningNetwork, Shape, TestNetwork, assert_refused, wire};
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn code(c: &str) -> AgencyCode {
    AgencyCode::parse(c).unwrap()
}

/// The DER certificate and its serial (hex) of a PEM file.
fn cert_of(path: &Path) -> (Vec<u8>, String) {
    let der = lienthong_pki::load_certs(path).unwrap().remove(0).to_vec();
    let serial = hex::encode(lienthong_pki::cert_serial(&der).unwrap());
    (der, serial)
}

/// Revokes `serial` with the CA in `ca_dir` and returns the CRL written beside it.
fn revoke(ca_dir: &Path, serial: &str) -> PathBuf {
    let crl = ca_dir.parent().unwrap().join("crl.pem");
    revocation::revoke(
        ca_dir,
        &[hex::decode(serial).unwrap()],
        Reason::KeyCompromise,
        &crl,
    )
    .unwrap();
    crl
}

/// Polls until `check` returns `Some`, for at most 30 s.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An agency whose old certificate was revoked connects with its new, valid one and
/// sends a document signed with the old key: the TLS layer lets it in, the signature
/// check does not.
#[tokio::test]
async fn refuses_document_signed_by_revoked_certificate_over_a_valid_connection() {
    init();
    let mut t = TestNetwork::start(|_| {}).await.unwrap();
    let (old, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let old_profile = ClientProfile::load(&t.net.profiles[0].1).unwrap();
    let (_, serial) = cert_of(&old_profile.cert);
    let renewed = t
        .net
        .extra_profile(None, &Identity::Agency(old.agency().clone()), "renewed")
        .unwrap();
    t.net.config.tls.crls = vec![revoke(&t.net.dir.join("ca"), &serial)];
    t.restart().await.unwrap();

    let renewed = DmsClient::from_profile(&ClientProfile::load(&renewed).unwrap()).unwrap();
    let mut d = old.new_document(vec![b.agency().clone()], "ký bằng khóa đã thu hồi");
    let sealed = old.seal(&mut d, &[]).unwrap();
    assert_refused(
        renewed
            .rpc()
            .send_document(pb::SendDocumentRequest {
                document: Some(wire(&sealed)),
            })
            .await,
        Code::PermissionDenied,
        &format!(
            "certificate with serial {serial} (urn:lienthong:agency:{}) was revoked",
            old.agency()
        ),
    );
    assert!(b.list_inbox(0, 10).await.unwrap().is_empty());

    // The same agency signing with its new key gets through.
    let mut d = renewed.new_document(vec![b.agency().clone()], "ký bằng khóa mới");
    renewed.send(&mut d, &[]).await.unwrap();
    assert_eq!(b.list_inbox(0, 10).await.unwrap().len(), 1);
    t.stop().await.unwrap();
}

/// The commune node has no CRL yet and takes the revoked agency's document; the province
/// node, which has it, refuses the relayed document, and the sender learns why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_relayed_document_whose_signer_is_revoked() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut net = RunningNetwork::start_with(dir.path(), Shape::new(2), 0, 100, |c| {
        c.delivery.retry_min_ms = 20;
        c.delivery.retry_max_ms = 200;
    })
    .await
    .unwrap();
    let (sender_code, recipient_code) = ("001.00.20.H41", "000.00.00.H41");
    let (_, serial) = cert_of(
        &ClientProfile::load(net.net.profile(sender_code))
            .unwrap()
            .cert,
    );
    let crl = revoke(&net.net.dir.join("ca"), &serial);
    let h41 = net
        .net
        .nodes
        .iter()
        .position(|n| n.id.as_str() == "H41")
        .unwrap();
    net.net.nodes[h41].config.tls.crls = vec![crl];
    net.restart_node("H41").await.unwrap();

    let sender = net.client(sender_code).unwrap();
    let recipient = net.client(recipient_code).unwrap();
    let mut d = sender.new_document(vec![code(recipient_code)], "gửi qua xã");
    sender.send(&mut d, &[]).await.unwrap();
    let event = eventually("the relayed document is refused or delivered", || async {
        let Tracked {
            events,
            statuses: _,
            ..
        } = sender.track(d.id.as_str()).await.ok()?;
        events.into_iter().find(|e| {
            matches!(
                e.kind,
                TransportEventKind::DeadLettered | TransportEventKind::Delivered
            )
        })
    })
    .await;
    assert_eq!(event.kind, TransportEventKind::DeadLettered, "{event:?}");
    assert!(
        event.detail.contains(&format!(
            "certificate with serial {serial} (urn:lienthong:agency:{sender_code}) was revoked"
        )),
        "{event:?}"
    );
    assert!(recipient.list_inbox(0, 10).await.unwrap().is_empty());
    net.stop().await.unwrap();
}

/// A neighbour connects with its valid certificate but hands over a document whose trace
/// entry is signed with an old certificate of its own that the CA revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_relayed_trace_entry_signed_by_revoked_node_certificate() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut net = RunningNetwork::start(dir.path(), Shape::new(2), 0, 100)
        .await
        .unwrap();
    let commune = NodeId::parse("H41-C1").unwrap();
    let ca_dir = net.net.dir.join("ca");
    let old = CertificateAuthority::load(&ca_dir)
        .unwrap()
        .issue(
            &Identity::Node(commune.clone()),
            &[],
            &[],
            KeyKind::EcdsaP256,
            30,
        )
        .unwrap();
    let crl = revoke(&ca_dir, &hex::encode(&old.serial));
    let h41 = net
        .net
        .nodes
        .iter()
        .position(|n| n.id.as_str() == "H41")
        .unwrap();
    net.net.nodes[h41].config.tls.crls = vec![crl];
    net.restart_node("H41").await.unwrap();

    // A document of the commune's agency, as the commune node would hand it over, but
    // with the trace entry signed by the revoked certificate.
    let sender = net.client("001.00.20.H41").unwrap();
    let mut document = sender.new_document(vec![code("000.00.00.H41")], "vết chuyển giả");
    let sealed = sender.seal(&mut document, &[]).unwrap();
    let DocumentWithContent {
        mut document,
        contents,
    } = DocumentWithContent::try_from(wire(&sealed)).unwrap();
    let digest = sha256(&canonical::document_bytes(&document));
    let at = now_millis();
    let old_key = SigningKey::from_pkcs8(&old.key_der).unwrap();
    document.trace.push(TraceEntry {
        node: commune.clone(),
        at,
        signature: Some(Signature {
            algorithm: old_key.algorithm(),
            signer_cert: old.cert_der.clone(),
            value: old_key
                .sign(&canonical::trace_entry_bytes(
                    &document.id,
                    &digest,
                    &commune,
                    at,
                ))
                .unwrap(),
        }),
    });
    let commune_config = &net.net.node("H41-C1").config;
    let commune_key = lienthong_pki::load_signing_key(&commune_config.tls.key).unwrap();
    let (commune_cert, _) = cert_of(&commune_config.tls.cert);
    let mut receipt = Receipt {
        document_id: document.id.clone(),
        content_digest: digest,
        node: commune.clone(),
        accepted_at: at,
        signature: None,
    };
    receipt.signature = Some(Signature {
        algorithm: commune_key.algorithm(),
        signer_cert: commune_cert,
        value: commune_key
            .sign(&canonical::receipt_bytes(&receipt))
            .unwrap(),
    });
    let item = pb::RelayItem {
        seq: 1,
        id: document.id.to_string(),
        recipients: vec!["000.00.00.H41".into()],
        origin_receipt: Some((&receipt).into()),
        message: Some(pb::relay_item::Message::Document(document_to_pb(
            &document,
            Some(&contents),
        ))),
    };

    // The commune's own, valid TLS certificate opens the relay stream.
    let config = lienthong_pki::client_config(
        &commune_config.tls_files(),
        Some(Identity::Node(NodeId::parse("H41").unwrap())),
    )
    .unwrap();
    let endpoint = format!("https://{}", net.net.node("H41").config.listen);
    let channel = lienthong_client::transport::channel(&endpoint, config).unwrap();
    let mut acks = pb::relay_service_client::RelayServiceClient::new(channel)
        .handoff(tokio_stream::iter([item]))
        .await
        .unwrap()
        .into_inner();
    let ack = tokio::time::timeout(Duration::from_secs(20), acks.message())
        .await
        .expect("an acknowledgement within 20 s")
        .unwrap()
        .expect("one acknowledgement");
    assert_eq!(ack.refused_code, Code::PermissionDenied as i32, "{ack:?}");
    assert!(
        ack.refused_reason.contains(&format!(
            "trace entry refused: the signer certificate with serial {} \
             (urn:lienthong:node:H41-C1) was revoked",
            hex::encode(&old.serial)
        )),
        "{ack:?}"
    );
    let recipient = net.client("000.00.00.H41").unwrap();
    assert!(recipient.list_inbox(0, 10).await.unwrap().is_empty());
    net.stop().await.unwrap();
}

/// The node has no CRL and delivers; the recipient's DMS has one naming the sender's
/// certificate, and refuses to call the fetched document verified.
#[tokio::test]
async fn client_refuses_fetched_document_whose_signer_is_in_its_crl() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "người ký đã bị thu hồi");
    a.send(&mut d, &[]).await.unwrap();
    // Before the CRL, the document verifies.
    b.fetch(d.id.as_str()).await.unwrap();

    let (_, serial) = cert_of(&ClientProfile::load(&t.net.profiles[0].1).unwrap().cert);
    let crl = revoke(&t.net.dir.join("ca"), &serial);
    let mut profile = ClientProfile::load(&t.net.profiles[1].1).unwrap();
    profile.crls = vec![crl];
    let path = t.net.dir.join("profiles").join("with-crl.toml");
    std::fs::write(&path, toml::to_string_pretty(&profile).unwrap()).unwrap();
    let b = DmsClient::from_profile(&ClientProfile::load(&path).unwrap()).unwrap();
    let error = b.fetch(d.id.as_str()).await.expect_err("a revoked signer");
    let revoked = format!(
        "certificate with serial {serial} (urn:lienthong:agency:{}) was revoked",
        a.agency()
    );
    assert!(
        matches!(&error, lienthong_client::Error::Revoked(m) if m.contains(&revoked)),
        "{error:?}"
    );
    t.stop().await.unwrap();
}
