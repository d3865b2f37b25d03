//! Regression tests of the defects found from outside (issue #16): a malicious DMS or a
//! compromised neighbour node, over real mutual TLS, against real nodes. Each test is
//! named after what it proves and failed on the code before its fix.

use std::time::Duration;

use bytes::Bytes;
use lienthong_client::{Accepted, Tracked};
use lienthong_client::{
    AttachmentSource, ClientProfile, DmsClient, FileAttachment, OutgoingAttachment,
};
use lienthong_core::{
    AgencyCode, DocumentId, StatusCode, StatusNotice, TransportEventKind, sign::sha256,
};
use lienthong_proto::pb;
use lienthong_testkit::RawRpc;
use lienthong_testkit::{RunningNetwork, Shape, TestNetwork, assert_refused};
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Streams `chunks` (offset, bytes) of a blob of `size` bytes named `digest` with
/// `UploadAttachment` over `client`'s connection.
async fn upload(
    client: &DmsClient,
    digest: [u8; 32],
    size: u64,
    chunks: Vec<(u64, Bytes)>,
) -> Result<pb::BlobStatus, tonic::Status> {
    let chunks: Vec<pb::BlobChunk> = chunks
        .into_iter()
        .map(|(offset, data)| pb::BlobChunk {
            sha256: Bytes::copy_from_slice(&digest),
            size,
            offset,
            data,
        })
        .collect();
    client
        .rpc()
        .upload_attachment(tokio_stream::iter(chunks))
        .await
        .map(|r| r.into_inner())
}

async fn attachment_status(client: &DmsClient, digest: [u8; 32]) -> pb::BlobStatus {
    client
        .rpc()
        .attachment_status(pb::BlobStatusRequest {
            sha256: Bytes::copy_from_slice(&digest),
        })
        .await
        .unwrap()
        .into_inner()
}

/// A document from `client` naming an attachment of `size` bytes with digest `digest`
/// whose content it does not carry (as for an uploaded one).
fn naming_without_content(
    client: &DmsClient,
    to: &AgencyCode,
    digest: [u8; 32],
    size: u64,
) -> lienthong_client::Sealed {
    let mut d = client.new_document(vec![to.clone()], "tài liệu mượn");
    let source = AttachmentSource::File(FileAttachment {
        name: "bi-mat.pdf".into(),
        content_type: "application/pdf".into(),
        path: "/nonexistent".into(),
        size,
        sha256: digest,
    });
    client.seal_sources(&mut d, &[source]).unwrap()
}

/// Item 1: knowing the SHA-256 of another agency's attachment (uploaded in chunks, or
/// sent inline) opens nothing and tells nothing: not its existence, not its size, not
/// its bytes.
#[tokio::test]
async fn an_agency_cannot_read_or_probe_another_agencys_attachment_by_its_digest() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (victim, peer, thief) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    // The victim uploads 300 KB in chunks, and sends 1 KiB inline in a document.
    let large = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let large_digest = sha256(&large);
    let size = large.len() as u64;
    let done = upload(&victim, large_digest, size, vec![(0, large.clone())])
        .await
        .unwrap();
    assert!(done.complete);
    let small = Bytes::from(vec![42u8; 1024]);
    let mut d = victim.new_document(vec![peer.agency().clone()], "có tệp nhỏ");
    victim
        .send(
            &mut d,
            &[OutgoingAttachment {
                name: "nho.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: small.clone(),
            }],
        )
        .await
        .unwrap();

    for (digest, size) in [(large_digest, size), (sha256(&small), 1024)] {
        // No oracle: the thief's status is that of a blob nobody has.
        let status = attachment_status(&thief, digest).await;
        assert_eq!((status.durable_bytes, status.complete), (0, false));
        // An empty chunk naming the digest proves nothing and completes nothing.
        let status = upload(&thief, digest, size, vec![(0, Bytes::new())])
            .await
            .unwrap();
        assert_eq!((status.durable_bytes, status.complete), (0, false));
        let status = attachment_status(&thief, digest).await;
        assert!(!status.complete);
        // So a document naming it without its bytes is refused,
        let sealed = naming_without_content(&thief, thief.agency(), digest, size);
        assert_refused(
            thief.send_sealed(&sealed).await,
            Code::FailedPrecondition,
            "you have not uploaded its bytes",
        );
        // and no document of the thief's serves the victim's bytes.
        assert!(thief.list_inbox(0, 10).await.unwrap().is_empty());
    }

    // A partial upload is its writer's: no resuming from the victim's offset.
    let other = Bytes::from(vec![9u8; 200_000]);
    let other_digest = sha256(&other);
    upload(
        &victim,
        other_digest,
        200_000,
        vec![(0, other.slice(..50_000))],
    )
    .await
    .unwrap();
    assert_eq!(
        attachment_status(&victim, other_digest).await.durable_bytes,
        50_000
    );
    assert_eq!(
        attachment_status(&thief, other_digest).await.durable_bytes,
        0
    );
    assert_refused(
        upload(
            &thief,
            other_digest,
            200_000,
            vec![(50_000, other.slice(50_000..))],
        )
        .await,
        Code::FailedPrecondition,
        "",
    );

    // Proving possession works as it should: the thief uploads the real bytes itself.
    let status = upload(&thief, large_digest, size, vec![(0, large.clone())])
        .await
        .unwrap();
    assert!(status.complete);
    let sealed = naming_without_content(&thief, peer.agency(), large_digest, size);
    thief.send_sealed(&sealed).await.unwrap();
    t.stop().await.unwrap();
}

/// Item 6: a declared size beyond the node's limit is refused at once, and uploads no
/// document names yet are bounded per agency; sending the documents frees the quota.
/// Upload marks are files only the node's user can read.
#[tokio::test]
async fn uploads_are_bounded_by_a_size_limit_and_a_quota_per_agency() {
    init();
    let t = TestNetwork::start(|c| {
        c.limits.max_attachment_bytes = 1024 * 1024;
        c.limits.upload_quota_bytes = 2 * 1024 * 1024;
    })
    .await
    .unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let tib = 1u64 << 40;
    assert_refused(
        upload(&a, [1; 32], tib, vec![(0, Bytes::from_static(b"x"))]).await,
        Code::ResourceExhausted,
        "is larger than node",
    );
    let blob = |n: u8| Bytes::from(vec![n; 900 * 1024]);
    for n in 0..2u8 {
        let data = blob(n);
        upload(&a, sha256(&data), data.len() as u64, vec![(0, data)])
            .await
            .unwrap();
    }
    // A third blob, even in part, would pass the quota.
    let third = blob(2);
    assert_refused(
        upload(
            &a,
            sha256(&third),
            third.len() as u64,
            vec![(0, third.slice(..1000))],
        )
        .await,
        Code::ResourceExhausted,
        "would pass its quota",
    );
    // Another agency has a quota of its own.
    upload(
        &b,
        sha256(&third),
        third.len() as u64,
        vec![(0, third.clone())],
    )
    .await
    .unwrap();
    // Once a document names the first blob, it no longer counts.
    let first = blob(0);
    let sealed = naming_without_content(&a, b.agency(), sha256(&first), first.len() as u64);
    a.send_sealed(&sealed).await.unwrap();
    upload(
        &a,
        sha256(&third),
        third.len() as u64,
        vec![(0, third.clone())],
    )
    .await
    .unwrap();

    use std::os::unix::fs::PermissionsExt;
    let uploads = t.net.config.data_dir.join("uploads");
    let mut seen = 0;
    for entry in walk(&uploads) {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        let expected = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{}", entry.display());
        seen += 1;
    }
    assert!(seen >= 4, "marks and their directories: {seen}");
    t.stop().await.unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The relay client of node `as_node`'s certificate, dialling node `to`.
fn relay_as(
    net: &RunningNetwork,
    as_node: &str,
    to: &str,
) -> pb::relay_service_client::RelayServiceClient<tonic::transport::Channel> {
    let mut profile = ClientProfile::load(&net.net.node(as_node).operator_profile).unwrap();
    profile.endpoint = format!("https://{}", net.net.node(to).config.listen);
    profile.node = to.into();
    pb::relay_service_client::RelayServiceClient::new(profile.channel().unwrap())
}

fn forged_event(
    id: &DocumentId,
    sender: &AgencyCode,
    kind: pb::TransportEventKind,
    at: &str,
    agency: &AgencyCode,
) -> pb::RelayEvent {
    pb::RelayEvent {
        document_id: id.to_string(),
        sender: sender.to_string(),
        event: Some(pb::TransportEvent {
            kind: kind as i32,
            at_unix_ms: lienthong_core::now_millis(),
            node: at.into(),
            agency: agency.to_string(),
            detail: String::new(),
        }),
        trace: Vec::new(),
    }
}

/// Item 2: a commune node (H41-C1) cannot make its province H41 believe that a
/// document was fetched and acknowledged at a commune of another province (H42-C1), nor
/// at itself by an agency it does not serve: the sender's `track` shows only what
/// happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_cannot_forge_transport_events_about_nodes_not_behind_it() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = RunningNetwork::start(dir.path(), Shape::new(2), 0, 100)
        .await
        .unwrap();
    let sender = net.client("000.00.00.H41").unwrap();
    let recipient_code = AgencyCode::parse("001.00.20.H42").unwrap();
    let mut doc = sender.new_document(vec![recipient_code.clone()], "Công văn liên tỉnh");
    sender.send(&mut doc, &[]).await.unwrap();

    let forged = pb::RelayEvents {
        events: vec![
            forged_event(
                &doc.id,
                sender.agency(),
                pb::TransportEventKind::Fetched,
                "H42-C1",
                &recipient_code,
            ),
            forged_event(
                &doc.id,
                sender.agency(),
                pb::TransportEventKind::Acknowledged,
                "H42-C1",
                &recipient_code,
            ),
            // Behind the link, but not where that agency lives.
            forged_event(
                &doc.id,
                sender.agency(),
                pb::TransportEventKind::Acknowledged,
                "H41-C1",
                &recipient_code,
            ),
        ],
    };
    let item = pb::RelayItem {
        seq: 1,
        message: Some(pb::relay_item::Message::Events(forged)),
        id: "ev-forged".into(),
        recipients: Vec::new(),
        origin_receipt: None,
    };
    let mut relay = relay_as(&net, "H41-C1", "H41");
    let mut acks = relay
        .handoff(tokio_stream::iter(vec![item]))
        .await
        .unwrap()
        .into_inner();
    // The pack is answered (its unusable events are dropped one by one).
    let ack = acks.message().await.unwrap().expect("an answer");
    assert_eq!(ack.seq, 1);

    // The real recipient has not fetched it: the document waits in its inbox, and the
    // sender's track says delivered, not fetched or acknowledged.
    let recipient = net.client(recipient_code.as_str()).unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let Tracked {
                events,
                statuses: _,
                ..
            } = sender.track(doc.id.as_str()).await.unwrap();
            if events
                .iter()
                .any(|e| e.kind == TransportEventKind::Delivered)
            {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the delivery event reaches the sender's home");
    assert!(
        !delivered.iter().any(|e| matches!(
            e.kind,
            TransportEventKind::Fetched | TransportEventKind::Acknowledged
        )),
        "forged events were taken: {delivered:?}"
    );
    assert_eq!(recipient.list_inbox(0, 10).await.unwrap().len(), 1);

    // The genuine ones still come through.
    recipient.fetch(doc.id.as_str()).await.unwrap();
    recipient.ack(doc.id.as_str()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let Tracked {
                events,
                statuses: _,
                ..
            } = sender.track(doc.id.as_str()).await.unwrap();
            if events
                .iter()
                .any(|e| e.kind == TransportEventKind::Acknowledged && e.node.as_str() == "H42-C1")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the real acknowledgement reaches the sender's home");
    net.stop().await.unwrap();
}

/// Item 3: document ids are predictable (edXML: `<organ>,<date>,<number>/<notation>`);
/// an agency that takes another's id first blocks nothing: the real sender's document is
/// accepted, each sender's re-send is its own duplicate, and the recipient tells the two
/// apart by their sender.
#[tokio::test]
async fn another_agency_cannot_squat_a_document_id() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (owner, recipient, squatter) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let id = DocumentId::parse(&format!("{},2026/12/05,17/UBND", owner.agency())).unwrap();
    let mut squat = squatter.new_document(vec![recipient.agency().clone()], "chiếm chỗ");
    squat.id = id.clone();
    squatter.send(&mut squat, &[]).await.unwrap();

    let mut real = owner.new_document(vec![recipient.agency().clone()], "bản thật");
    real.id = id.clone();
    let Accepted { receipt, duplicate } = owner.send(&mut real, &[]).await.unwrap();
    assert!(!duplicate);
    let Accepted {
        receipt: again,
        duplicate,
    } = owner.send(&mut real.clone(), &[]).await.unwrap();
    assert!(duplicate);
    assert_eq!(again, receipt);
    // Still a conflict within one sender.
    let mut changed = real.clone();
    changed.header.subject = "bản sửa".into();
    assert_refused(
        owner.send(&mut changed, &[]).await,
        Code::AlreadyExists,
        "different content",
    );

    let entries = recipient.list_inbox(0, 10).await.unwrap();
    let mut froms: Vec<_> = entries
        .iter()
        .map(|e| (e.id.clone(), e.from.clone()))
        .collect();
    froms.sort();
    let mut expected = vec![
        (id.to_string(), owner.agency().to_string()),
        (id.to_string(), squatter.agency().to_string()),
    ];
    expected.sort();
    assert_eq!(froms, expected);
    // Without a sender the id is ambiguous for the recipient, and the node says so.
    assert_refused(
        recipient.fetch(id.as_str()).await,
        Code::FailedPrecondition,
        "name the sender",
    );
    let fetched = recipient
        .rpc()
        .fetch_document(pb::FetchDocumentRequest {
            id: id.to_string(),
            from: owner.agency().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::fetch_document_response::Message::Document(d)) = fetched.message else {
        panic!("expected a document")
    };
    assert_eq!(d.header.unwrap().subject, "bản thật");
    // Each sender tracks its own: the recipient fetched the owner's, not the squatter's.
    let fetched = |events: &[lienthong_core::TransportEvent]| {
        events.iter().any(|e| e.kind == TransportEventKind::Fetched)
    };
    assert!(fetched(&owner.track(id.as_str()).await.unwrap().events));
    assert!(!fetched(&squatter.track(id.as_str()).await.unwrap().events));
    t.stop().await.unwrap();
}

/// Item 4: a recipient's `track` shows its own part: not when a co-recipient fetched the
/// document, nor the 02 (rejected) a co-recipient sent the sender with its reason.
#[tokio::test]
async fn a_recipient_tracks_its_own_part_not_its_co_recipients() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let mut d = sender.new_document(vec![b.agency().clone(), c.agency().clone()], "Gửi hai nơi");
    sender.send(&mut d, &[]).await.unwrap();
    b.fetch(d.id.as_str()).await.unwrap();
    b.ack(d.id.as_str()).await.unwrap();
    let mut rejected = StatusNotice::new(
        b.agency().clone(),
        sender.agency().clone(),
        &d.id,
        StatusCode::Rejected,
    );
    rejected.description = "lý do riêng gửi bên gửi".into();
    b.send_status(rejected).await.unwrap();

    let Tracked {
        events, statuses, ..
    } = c.track(d.id.as_str()).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.agency.as_ref().is_none_or(|a| a == c.agency())),
        "a co-recipient's events leak: {events:?}"
    );
    assert!(
        statuses.is_empty(),
        "a co-recipient's status leaks: {statuses:?}"
    );
    let full = c
        .rpc()
        .track(pb::TrackRequest {
            id: d.id.to_string(),
            from: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let agencies: Vec<_> = full.recipients.iter().map(|r| r.agency.as_str()).collect();
    assert_eq!(agencies, vec![c.agency().as_str()]);

    // The sender sees all of it.
    let Tracked {
        events, statuses, ..
    } = sender.track(d.id.as_str()).await.unwrap();
    assert!(events.iter().any(|e| e.kind == TransportEventKind::Fetched
        && e.agency.as_ref() == Some(b.agency())));
    assert_eq!(statuses.len(), 1);
    t.stop().await.unwrap();
}

/// Item 5: a status notice about a document the caller is no party to is refused
/// exactly as one about an id that does not exist, and a refused 13 does not name the
/// document's real sender.
#[tokio::test]
async fn refusals_to_outsiders_reveal_neither_existence_nor_parties() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (sender, recipient, outsider) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let mut d = sender.new_document(vec![recipient.agency().clone()], "kín");
    sender.send(&mut d, &[]).await.unwrap();
    let missing = DocumentId::parse("khong-co-van-ban-nay").unwrap();
    let refusal = |id: &DocumentId, code: StatusCode, to: &AgencyCode, by: &DmsClient| {
        let notice = StatusNotice::new(by.agency().clone(), to.clone(), id, code);
        let by = by.clone();
        async move { by.send_status(notice).await.expect_err("refused") }
    };
    for code in [StatusCode::Accepted, StatusCode::WithdrawRequest] {
        let existing = refusal(&d.id, code, sender.agency(), &outsider).await;
        let unknown = refusal(&missing, code, sender.agency(), &outsider).await;
        assert_eq!(existing.code(), Some(Code::NotFound), "{existing:?}");
        assert_eq!(existing.code(), unknown.code());
        assert_eq!(
            existing.message().replace(d.id.as_str(), "ID"),
            unknown.message().replace(missing.as_str(), "ID"),
            "the answer differs between an existing and an unknown id"
        );
    }
    // A recipient asking to withdraw the sender's document learns nothing either.
    let by_recipient = refusal(
        &d.id,
        StatusCode::WithdrawRequest,
        outsider.agency(),
        &recipient,
    )
    .await;
    assert_eq!(by_recipient.code(), Some(Code::NotFound));
    assert!(
        !by_recipient.message().contains(sender.agency().as_str()),
        "{by_recipient:?}"
    );
    t.stop().await.unwrap();
}

/// Item 8: one message damaged on disk (a byte of its body flipped in the write-ahead
/// log, after it was checkpointed) is quarantined: the agency's other messages are
/// listed, subscribed and fetched as before, fetching the damaged one fails clearly, and
/// health reports it.
#[tokio::test]
async fn a_damaged_stored_message_is_quarantined_and_the_rest_served() {
    init();
    let mut t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut ids = Vec::new();
    for subject in ["truoc", "HONG-DAU-DAY", "sau"] {
        let mut d = a.new_document(vec![b.agency().clone()], subject);
        a.send(&mut d, &[]).await.unwrap();
        ids.push(d.id.to_string());
    }
    t.node.take().unwrap().stop().await.unwrap();
    // Flip one byte of the subject where the body lies in the log.
    let wal = t.net.config.data_dir.join("wal");
    let mut flipped = 0;
    for entry in std::fs::read_dir(&wal).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(12).position(|w| w == b"HONG-DAU-DAY") {
            bytes[at] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 1, "the body is in one segment");
    t.restart().await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let listed: Vec<_> = b
        .list_inbox(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, vec![ids[0].clone(), ids[2].clone()]);
    let mut stream = b
        .rpc()
        .subscribe(pb::SubscribeRequest { after_cursor: 0 })
        .await
        .unwrap()
        .into_inner();
    for expected in [&ids[0], &ids[2]] {
        let entry = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&entry.id, expected);
    }
    b.fetch(&ids[2]).await.unwrap();
    let err = b.fetch(&ids[1]).await.expect_err("the damaged one");
    assert_ne!(err.code(), Some(Code::Ok));
    let mut admin = ClientProfile::load(&t.net.operator_profile)
        .unwrap()
        .admin()
        .unwrap();
    let health = admin
        .health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!health.store_ok);
    assert_eq!(health.damaged.len(), 1, "{:?}", health.damaged);
    assert!(
        health.damaged[0].starts_with(&ids[1]),
        "{:?}",
        health.damaged
    );
    drop(a);
    t.stop().await.unwrap();
}
