//! The document lifecycle over real mutual TLS and real sled: one test per rule the node
//! that accepts from a DMS enforces (each refusal asserts its gRPC code and the rule in
//! the message), the inbox and `track` showing revoked and replaced originals, and the
//! same across the two-tier network, where the revoke and the withdraw request reach the
//! other province's commune by relay.

use std::time::Duration;

use lienthong_client::Accepted;
use lienthong_client::{DmsClient, InboxItem};
use lienthong_core::{BusinessType, Document, ReplacementInfo, StatusCode, StatusNotice};
use lienthong_proto::pb;
use lienthong_testkit::RawRpc;
use lienthong_testkit::{RunningNetwork, TestNetwork, assert_refused};
use tokio_stream::StreamExt;
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sends a new document from `from` to `to`; returns it.
async fn send_new(from: &DmsClient, to: &[&DmsClient], subject: &str) -> Document {
    let mut d = from.new_document(to.iter().map(|c| c.agency().clone()).collect(), subject);
    from.send(&mut d, &[]).await.unwrap();
    d
}

/// A revoke, update or replace of `original` from `from` to `to`, not yet sent.
fn successor(
    from: &DmsClient,
    to: &[&DmsClient],
    kind: BusinessType,
    original: &Document,
) -> Document {
    let mut d = from.new_document(
        to.iter().map(|c| c.agency().clone()).collect(),
        "Thu hồi / thay thế văn bản",
    );
    d.business.business_type = kind;
    d.business.reason = "Sai sót về thể thức".into();
    d.business.referenced_document_id = original.id.to_string();
    d
}

async fn status(
    from: &DmsClient,
    to: &DmsClient,
    about: &Document,
    code: StatusCode,
    description: &str,
) -> Result<(), lienthong_client::Error> {
    let mut n = StatusNotice::new(from.agency().clone(), to.agency().clone(), &about.id, code);
    n.description = description.into();
    from.send_status(n).await.map(drop)
}

async fn track(client: &DmsClient, id: &str) -> pb::TrackResponse {
    client
        .rpc()
        .track(pb::TrackRequest {
            id: id.into(),
            from: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Polls `client`'s inbox until `id` is in it and `done` holds for its entry.
async fn wait_for_entry(
    client: &DmsClient,
    id: &str,
    done: impl Fn(&InboxItem) -> bool,
) -> InboxItem {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let entries = client.list_inbox(0, 1000).await.unwrap();
        if let Some(e) = entries.iter().find(|e| e.id == id && done(e)) {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never reached {} as expected: {entries:#?}",
            client.agency()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- statuses --------------------------------------------------------------------------

#[tokio::test]
async fn rejects_status_02_without_a_reason() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    assert_refused(
        status(&b, &a, &d, StatusCode::Rejected, "  ").await,
        Code::InvalidArgument,
        "status 02 (rejected) needs a reason",
    );
    status(&b, &a, &d, StatusCode::Rejected, "Sai thể thức")
        .await
        .unwrap();
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_progress_status_going_backwards() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    for code in [StatusCode::Arrived, StatusCode::Processing] {
        status(&b, &a, &d, code, "").await.unwrap();
    }
    assert_refused(
        status(&b, &a, &d, StatusCode::Accepted, "").await,
        Code::FailedPrecondition,
        "lifecycle: progress-forward: status 03 cannot follow 05",
    );
    assert_refused(
        status(&b, &a, &d, StatusCode::Rejected, "muộn").await,
        Code::FailedPrecondition,
        "lifecycle: progress-forward:",
    );
    // Repeating the latest step is allowed.
    status(&b, &a, &d, StatusCode::Processing, "")
        .await
        .unwrap();
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_progress_status_after_02_or_06() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let d = send_new(&a, &[&b, &c], "Công văn").await;
    let mut rejected = StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Rejected,
    );
    rejected.description = "Sai thể thức".into();
    b.send_status(rejected.clone()).await.unwrap();
    assert_refused(
        status(&b, &a, &d, StatusCode::Accepted, "").await,
        Code::FailedPrecondition,
        "lifecycle: progress-forward:",
    );
    // Per recipient: c's progress is its own.
    status(&c, &a, &d, StatusCode::Done, "").await.unwrap();
    assert_refused(
        status(&c, &a, &d, StatusCode::Processing, "").await,
        Code::FailedPrecondition,
        "lifecycle: progress-forward:",
    );
    // A re-send of an accepted notice is answered with its receipt, not judged again.
    let Accepted {
        receipt: _,
        duplicate,
    } = b.send_status(rejected).await.unwrap();
    assert!(duplicate);
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_withdraw_request_not_from_the_original_sender() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    // Looked up among b's own documents: not there, and the refusal does not name the
    // document's real sender (issue #16, item 5).
    let refused = status(&b, &a, &d, StatusCode::WithdrawRequest, "xin rút").await;
    assert!(
        !format!("{refused:?}").contains(a.agency().as_str()),
        "{refused:?}"
    );
    assert_refused(refused, Code::NotFound, "is not known to node");
    status(&a, &b, &d, StatusCode::WithdrawRequest, "xin rút lại")
        .await
        .unwrap();
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_change_answer_without_a_withdraw_request_or_update() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    assert_refused(
        status(&b, &a, &d, StatusCode::ChangeAgreed, "").await,
        Code::FailedPrecondition,
        "lifecycle: answer-needs-request:",
    );
    status(&a, &b, &d, StatusCode::WithdrawRequest, "xin rút lại")
        .await
        .unwrap();
    status(&b, &a, &d, StatusCode::ChangeAgreed, "đồng ý")
        .await
        .unwrap();
    // One request, one answer.
    assert_refused(
        status(&b, &a, &d, StatusCode::ChangeRefused, "không").await,
        Code::FailedPrecondition,
        "lifecycle: answer-needs-request:",
    );
    t.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_answers_to_one_withdraw_request_accept_exactly_one() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    status(&a, &b, &d, StatusCode::WithdrawRequest, "xin rút lại")
        .await
        .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let answers: Vec<_> = (0..32)
        .map(|i| {
            let (a, b, d, start) = (a.clone(), b.clone(), d.clone(), start.clone());
            let code = if i % 2 == 0 {
                StatusCode::ChangeAgreed
            } else {
                StatusCode::ChangeRefused
            };
            tokio::spawn(async move {
                start.wait().await;
                status(&b, &a, &d, code, &format!("lần {i}")).await
            })
        })
        .collect();
    let mut accepted = 0;
    for answer in answers {
        match answer.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(e) => assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e:?}"),
        }
    }
    assert_eq!(accepted, 1, "one withdraw request, one answer");
    t.stop().await.unwrap();
}

#[tokio::test]
async fn accepts_change_answer_to_an_update() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    let mut u = successor(&a, &[&b], BusinessType::Update, &d);
    a.send(&mut u, &[]).await.unwrap();
    // An update is answered under its own id, once; the original has no withdraw
    // request (13) to answer.
    assert_refused(
        status(&b, &a, &d, StatusCode::ChangeRefused, "giữ nguyên").await,
        Code::FailedPrecondition,
        "lifecycle: answer-needs-request:",
    );
    status(&b, &a, &u, StatusCode::ChangeAgreed, "đồng ý")
        .await
        .unwrap();
    assert_refused(
        status(&b, &a, &u, StatusCode::ChangeRefused, "đổi ý").await,
        Code::FailedPrecondition,
        "lifecycle: answer-needs-request:",
    );
    let entry = wait_for_entry(&b, d.id.as_str(), |_| true).await;
    assert_eq!(entry.business_state, "updated");
    assert_eq!(entry.superseded_by, u.id.as_str());
    t.stop().await.unwrap();
}

// ---- revoke, update, replace -----------------------------------------------------------

#[tokio::test]
async fn rejects_revoke_that_misses_an_original_recipient() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let d = send_new(&a, &[&b, &c], "Công văn").await;
    for kind in [
        BusinessType::Revoke,
        BusinessType::Update,
        BusinessType::Replace,
    ] {
        let mut r = successor(&a, &[&b], kind, &d);
        assert_refused(
            a.send(&mut r, &[]).await,
            Code::FailedPrecondition,
            "lifecycle: reaches-every-recipient:",
        );
    }
    let mut r = successor(&a, &[&b], BusinessType::Revoke, &d);
    let e = a.send(&mut r, &[]).await.unwrap_err();
    assert!(e.message().contains("add 000.00.20.H41 to To"), "{e:?}");
    assert_eq!(track(&a, d.id.as_str()).await.business_state, "");
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_revoke_of_a_document_unknown_here() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut ghost = a.new_document(vec![b.agency().clone()], "never sent");
    ghost.id = lienthong_core::DocumentId::parse("000.00.00.H41,2020/01/01,1/UBND").unwrap();
    let mut r = successor(&a, &[&b], BusinessType::Revoke, &ghost);
    assert_refused(
        a.send(&mut r, &[]).await,
        Code::FailedPrecondition,
        "lifecycle: references-own-document:",
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn rejects_revoke_not_from_the_original_sender() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let d = send_new(&a, &[&b, &c], "Công văn").await;
    // c received it and tries to revoke it for everyone.
    let mut r = successor(&c, &[&a, &b, &c], BusinessType::Revoke, &d);
    // Looked up among c's own documents; the refusal does not name the real sender.
    let refused = c.send(&mut r, &[]).await;
    assert!(
        !format!("{refused:?}").contains(a.agency().as_str()),
        "{refused:?}"
    );
    assert_refused(
        refused,
        Code::FailedPrecondition,
        "lifecycle: references-own-document:",
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn revoke_marks_the_original_revoked_in_inbox_subscription_and_track() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let d = send_new(&a, &[&b, &c], "Quyết định số 7").await;
    status(&b, &a, &d, StatusCode::Accepted, "").await.unwrap();
    let mut r = successor(&a, &[&b, &c], BusinessType::Revoke, &d);
    a.send(&mut r, &[]).await.unwrap();

    for recipient in [&b, &c] {
        let entry = wait_for_entry(recipient, d.id.as_str(), |_| true).await;
        assert_eq!(entry.business_state, "revoked");
        assert_eq!(entry.superseded_by, r.id.as_str());
        // The revoke's own entry says what it revokes.
        let entry = wait_for_entry(recipient, r.id.as_str(), |_| true).await;
        assert_eq!(entry.business_state, "");
        assert_eq!(entry.business_type, 1);
        assert_eq!(entry.references, [d.id.to_string()]);
    }
    // A subscription shows the same.
    let mut stream = b
        .rpc()
        .subscribe(pb::SubscribeRequest { after_cursor: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.id, d.id.as_str());
    assert_eq!(first.business_state, "revoked");

    // The sender's track: business state next to the transport state, per recipient.
    let tr = track(&a, d.id.as_str()).await;
    assert_eq!(tr.business_state, "revoked");
    assert_eq!(tr.superseded_by, r.id.as_str());
    let per: Vec<(&str, &str, &str)> = tr
        .recipients
        .iter()
        .map(|x| {
            (
                x.agency.as_str(),
                x.transport.as_str(),
                x.status_code.as_str(),
            )
        })
        .collect();
    assert_eq!(
        per,
        [
            ("000.00.14.H41", "delivered", "03"),
            ("000.00.20.H41", "delivered", "")
        ]
    );
    // Revoked once is enough.
    let mut again = successor(&a, &[&b, &c], BusinessType::Replace, &d);
    assert_refused(
        a.send(&mut again, &[]).await,
        Code::FailedPrecondition,
        "lifecycle: already-superseded:",
    );
    // A re-send of the revoke itself still gets its original receipt.
    let Accepted {
        receipt: _,
        duplicate,
    } = a.send(&mut r, &[]).await.unwrap();
    assert!(duplicate);
    t.stop().await.unwrap();
}

#[tokio::test]
async fn replace_by_replacement_info_marks_the_original_replaced() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Kế hoạch").await;
    let mut r = successor(&a, &[&b], BusinessType::Replace, &d);
    // Referenced through ReplacementInfo only.
    r.business.referenced_document_id.clear();
    r.business.replacements = vec![ReplacementInfo {
        document_id: d.id.to_string(),
        organ_ids: vec![b.agency().to_string()],
    }];
    a.send(&mut r, &[]).await.unwrap();
    let entry = wait_for_entry(&b, d.id.as_str(), |_| true).await;
    assert_eq!(entry.business_state, "replaced");
    assert_eq!(entry.superseded_by, r.id.as_str());
    t.stop().await.unwrap();
}

#[tokio::test]
async fn lifecycle_state_survives_a_restart() {
    init();
    let mut t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    status(&b, &a, &d, StatusCode::Done, "").await.unwrap();
    let mut r = successor(&a, &[&b], BusinessType::Revoke, &d);
    a.send(&mut r, &[]).await.unwrap();
    t.restart().await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let entry = wait_for_entry(&b, d.id.as_str(), |_| true).await;
    assert_eq!(entry.business_state, "revoked");
    assert_refused(
        status(&b, &a, &d, StatusCode::Processing, "").await,
        Code::FailedPrecondition,
        "lifecycle: progress-forward:",
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn an_index_entry_whose_message_was_never_stored_marks_nothing() {
    init();
    let mut t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let d = send_new(&a, &[&b], "Công văn").await;
    // What a crash between the index write and the revoke's own write leaves behind.
    t.node.take().unwrap().stop().await.unwrap();
    let ghost = lienthong_core::DocumentId::generate();
    {
        use lienthong_store::Store;
        let store = lienthong_store::SledStore::open(&t.net.config.data_dir).unwrap();
        let entry = lienthong_core::TransportEvent {
            kind: lienthong_core::TransportEventKind::Lifecycle,
            at: lienthong_core::now_millis(),
            node: lienthong_core::NodeId::parse("H41").unwrap(),
            // The index names a message by its sender (the agency) and id (the detail).
            agency: Some(d.sender().unwrap().clone()),
            detail: ghost.to_string(),
        };
        store
            .append_event(
                &d.key().unwrap(),
                lienthong_proto::stored::encode_event(&entry).into(),
            )
            .await
            .unwrap();
    }
    t.restart().await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let entry = wait_for_entry(&b, d.id.as_str(), |_| true).await;
    assert_eq!(entry.business_state, "", "no revoke is stored");
    // The revoke the DMS sends again (it holds no receipt) then counts, once.
    let mut r = successor(&a, &[&b], BusinessType::Revoke, &d);
    r.id = ghost;
    a.send(&mut r, &[]).await.unwrap();
    let entry = wait_for_entry(&b, d.id.as_str(), |_| true).await;
    assert_eq!(entry.business_state, "revoked");
    assert_eq!(entry.superseded_by, r.id.as_str());
    t.stop().await.unwrap();
}

// ---- across the two-tier network -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_from_one_province_commune_marks_the_original_in_the_other_province() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = RunningNetwork::start(dir.path(), lienthong_testkit::Shape::new(2), 0, 100)
        .await
        .unwrap();
    // Commune H41-C1 to commune H42-C2: five hops each way.
    let (a, b) = (
        net.client("001.00.20.H41").unwrap(),
        net.client("002.00.20.H42").unwrap(),
    );
    let d = send_new(&a, &[&b], "Liên thông giữa hai tỉnh").await;
    wait_for_entry(&b, d.id.as_str(), |_| true).await;

    // Statuses keep their order rule at the recipient's home node, and reach the
    // sender's home node, whose track shows them per recipient.
    status(&b, &a, &d, StatusCode::Processing, "")
        .await
        .unwrap();
    assert_refused(
        status(&b, &a, &d, StatusCode::Arrived, "").await,
        Code::FailedPrecondition,
        "lifecycle: progress-forward:",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tr = track(&a, d.id.as_str()).await;
        if tr.recipients.first().is_some_and(|r| r.status_code == "05") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{tr:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The withdraw request crosses to the other province; only then may b answer it.
    assert_refused(
        status(&b, &a, &d, StatusCode::ChangeAgreed, "").await,
        Code::FailedPrecondition,
        "lifecycle: answer-needs-request:",
    );
    let mut w = StatusNotice::new(
        a.agency().clone(),
        b.agency().clone(),
        &d.id,
        StatusCode::WithdrawRequest,
    );
    w.description = "xin rút lại".into();
    a.send_status(w.clone()).await.unwrap();
    wait_for_entry(&b, w.id.as_str(), |_| true).await;
    status(&b, &a, &d, StatusCode::ChangeAgreed, "đồng ý")
        .await
        .unwrap();

    // The revoke arrives by relay; the recipient's home node marks the original.
    let mut r = successor(&a, &[&b], BusinessType::Revoke, &d);
    a.send(&mut r, &[]).await.unwrap();
    let entry = wait_for_entry(&b, d.id.as_str(), |e| e.business_state == "revoked").await;
    assert_eq!(entry.superseded_by, r.id.as_str());
    let tr = track(&b, d.id.as_str()).await;
    assert_eq!(tr.business_state, "revoked");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tr = track(&a, d.id.as_str()).await;
        if tr.recipients[0].status_code == "15" {
            assert_eq!(tr.business_state, "revoked");
            assert_eq!(tr.recipients[0].agency, "002.00.20.H42");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{tr:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    net.stop().await.unwrap();
}
