//! The gRPC contract as a third-party DMS meets it (issue #12): what it sends is what its
//! signature covers, and the node says what it expects instead of rewriting.

use lienthong_core::sign::Signature;
use lienthong_core::{StatusCode, StatusNotice, canonical};
use lienthong_node::client::ClientProfile;
use lienthong_proto::pb;
use lienthong_testkit::TestNetwork;
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
        let mut sealed = a.seal(&mut d, &[]).unwrap();
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
