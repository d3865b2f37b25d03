//! End-to-end tests across whole networks of in-process nodes on port 0 — 9 nodes in the
//! two-tier shape, 15 in the three-tier shape — with real mTLS, real sled and a real PKI.

use std::time::Duration;

use lienthong_client::{Accepted, Tracked};
use lienthong_client::{ClientProfile, DmsClient, Incoming};
use lienthong_core::{StatusCode, StatusNotice, TransportEventKind};
use lienthong_pki::{CachedTrust, TrustRoots};
use lienthong_proto::pb;
use lienthong_testkit::RunningNetwork;
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn start(tiers: u8) -> (tempfile::TempDir, RunningNetwork) {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = RunningNetwork::start(dir.path(), lienthong_testkit::Shape::new(tiers), 0, 100)
        .await
        .unwrap();
    (dir, net)
}

/// Polls `client`'s inbox until `id` is in it.
async fn wait_for_entry(client: &DmsClient, id: &str) -> lienthong_client::InboxItem {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = client
            .list_inbox(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.id == id)
        {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never reached {}",
            client.agency()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `track` at the sender until `done` holds for its events.
async fn wait_for_track(
    client: &DmsClient,
    id: &str,
    done: impl Fn(&[lienthong_core::TransportEvent]) -> bool,
) -> Vec<lienthong_core::TransportEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Tracked {
            events,
            statuses: _,
            ..
        } = client.track(id).await.unwrap();
        if done(&events) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "track of {id} incomplete: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn commune_to_commune_of_another_province(tiers: u8, from: &str, to: &str, path: &[&str]) {
    let (_dir, net) = start(tiers).await;
    let (a, b) = (net.client(from).unwrap(), net.client(to).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "Liên thông giữa hai tỉnh");
    let Accepted {
        receipt,
        duplicate: _,
    } = a
        .send(
            &mut d,
            &[lienthong_client::OutgoingAttachment {
                name: "vb.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: bytes::Bytes::from_static(b"%PDF signed bytes"),
            }],
        )
        .await
        .unwrap();
    wait_for_entry(&b, d.id.as_str()).await;
    let Incoming::Document(got) = b.fetch(d.id.as_str()).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        got.receipt, receipt,
        "the origin node's receipt travels with the document"
    );
    assert_eq!(got.contents[0].as_ref(), b"%PDF signed bytes");
    let trace: Vec<&str> = got.document.trace.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(trace, path, "hop trace");
    b.ack(d.id.as_str()).await.unwrap();

    // Status 03 goes back the same way.
    let notice = StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Accepted,
    );
    b.send_status(notice.clone()).await.unwrap();
    wait_for_entry(&a, notice.id.as_str()).await;
    let Incoming::Status { notice: back, .. } = a.fetch(notice.id.as_str()).await.unwrap() else {
        panic!()
    };
    assert_eq!(back.code, StatusCode::Accepted);
    let status_trace: Vec<&str> = back.trace.iter().map(|t| t.node.as_str()).collect();
    let reversed: Vec<&str> = path.iter().rev().copied().collect();
    assert_eq!(status_trace, reversed);

    // The sender's track shows every hop, delivery, fetch, acknowledgement and the status.
    let hops = path.len();
    let events = wait_for_track(&a, d.id.as_str(), |ev| {
        let count = |k| ev.iter().filter(|e| e.kind == k).count();
        count(TransportEventKind::Forwarded) == hops
            && count(TransportEventKind::Delivered) == 1
            && count(TransportEventKind::Fetched) == 1
            && count(TransportEventKind::Acknowledged) == 1
            && count(TransportEventKind::StatusReceived) == 1
    })
    .await;
    let delivered = events
        .iter()
        .find(|e| e.kind == TransportEventKind::Delivered)
        .unwrap();
    assert_eq!(delivered.node.as_str(), *path.last().unwrap());
    assert!(
        events.windows(2).all(|w| w[0].at <= w[1].at),
        "track is in time order"
    );
    assert_eq!(events[0].kind, TransportEventKind::Accepted);
    assert_eq!(events[0].node.as_str(), path[0]);
    // One hop line per node: the origin's hand-off, then each later node's reception,
    // learnt from the signed trace that came back with the delivery.
    for (i, hop) in path.iter().enumerate() {
        let expected = if i == 0 {
            format!("to {}", path[1])
        } else {
            format!("received from {}", path[i - 1])
        };
        assert!(
            events
                .iter()
                .any(|e| e.kind == TransportEventKind::Forwarded
                    && e.node.as_str() == *hop
                    && e.detail == expected),
            "no forwarded event {expected:?} at {hop}: {events:#?}"
        );
    }
    net.stop().await.unwrap();
}

/// Transport events travel back packed (many documents' events per hand-off item and
/// per stored message): a burst of documents, with the national gateway restarted while
/// the packs flow (so some are re-sent and packed again), still gives the sender's node
/// every hop and one delivery event per document, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_documents_tells_the_sender_every_hop_of_each_once() {
    const DOCS: usize = 200;
    let (_dir, mut net) = start(2).await;
    let (a, b) = (
        net.client("001.00.20.H41").unwrap(),
        net.client("001.00.20.H42").unwrap(),
    );
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..DOCS {
        let (a, to) = (a.clone(), b.agency().clone());
        sends.spawn(async move {
            let mut d = a.new_document(vec![to], &format!("Đợt số {i}"));
            a.send(&mut d, &[]).await.unwrap();
            d.id.to_string()
        });
    }
    let ids = sends.join_all().await;
    wait_for_track(&a, &ids[DOCS / 2], |ev| {
        ev.iter().any(|e| e.kind == TransportEventKind::Delivered)
    })
    .await;
    net.restart_node("VN").await.unwrap();
    let path = ["H41-C1", "H41", "VN", "H42", "H42-C1"];
    let mut settled = Vec::new();
    for id in &ids {
        let events = wait_for_track(&a, id, |ev| {
            ev.iter()
                .filter(|e| e.kind == TransportEventKind::Forwarded)
                .count()
                >= path.len()
                && ev.iter().any(|e| e.kind == TransportEventKind::Delivered)
        })
        .await;
        let count = |k| events.iter().filter(|e| e.kind == k).count();
        assert_eq!(count(TransportEventKind::Delivered), 1, "{id}: {events:#?}");
        assert_eq!(
            count(TransportEventKind::Forwarded),
            path.len(),
            "{id}: {events:#?}"
        );
        for hop in path {
            assert_eq!(
                events
                    .iter()
                    .filter(|e| e.kind == TransportEventKind::Forwarded && e.node.as_str() == hop)
                    .count(),
                1,
                "{id}: one hop line at {hop}"
            );
        }
        settled.push(events.len());
    }
    // Nothing comes twice later either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (id, n) in ids.iter().zip(settled) {
        let Tracked {
            events,
            statuses: _,
            ..
        } = a.track(id).await.unwrap();
        assert_eq!(events.len(), n, "{id}: {events:#?}");
    }
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tier_commune_reaches_commune_of_another_province() {
    commune_to_commune_of_another_province(
        2,
        "001.00.20.H41",
        "002.00.20.H42",
        &["H41-C1", "H41", "VN", "H42", "H42-C2"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tier_commune_reaches_commune_of_another_province() {
    commune_to_commune_of_another_province(
        3,
        "011.00.20.H41",
        "022.00.20.H42",
        &[
            "H41-D1-C1",
            "H41-D1",
            "H41",
            "VN",
            "H42",
            "H42-D2",
            "H42-D2-C2",
        ],
    )
    .await;
}

async fn province_fans_out_to_its_communes(tiers: u8, communes: &[&str]) {
    let (_dir, net) = start(tiers).await;
    let a = net.client("000.00.00.H41").unwrap();
    let recipients: Vec<_> = communes
        .iter()
        .map(|c| lienthong_core::AgencyCode::parse(c).unwrap())
        .collect();
    let mut d = a.new_document(recipients, "Gửi tất cả các xã");
    a.send(&mut d, &[]).await.unwrap();
    for c in communes {
        let client = net.client(c).unwrap();
        wait_for_entry(&client, d.id.as_str()).await;
        assert_eq!(
            client.list_inbox(0, 100).await.unwrap().len(),
            1,
            "{c} got exactly one copy"
        );
        let Incoming::Document(got) = client.fetch(d.id.as_str()).await.unwrap() else {
            panic!()
        };
        assert_eq!(got.document.trace.first().unwrap().node.as_str(), "H41");
    }
    let events = wait_for_track(&a, d.id.as_str(), |ev| {
        ev.iter()
            .filter(|e| e.kind == TransportEventKind::Delivered)
            .count()
            == communes.len()
    })
    .await;
    let mut delivered: Vec<String> = events
        .iter()
        .filter(|e| e.kind == TransportEventKind::Delivered)
        .map(|e| e.agency.as_ref().unwrap().to_string())
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        communes.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "tracked per recipient"
    );
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tier_province_fans_out_to_its_communes() {
    province_fans_out_to_its_communes(2, &["001.00.20.H41", "002.00.20.H41"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tier_province_fans_out_to_its_communes() {
    province_fans_out_to_its_communes(
        3,
        &[
            "011.00.20.H41",
            "012.00.20.H41",
            "021.00.20.H41",
            "022.00.20.H41",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_relay_from_a_node_that_is_not_a_neighbour() {
    let (_dir, net) = start(2).await;
    // H42-C1 is a node of the network, but not a neighbour of H41.
    let h42c1 = net.net.node("H42-C1");
    let h41 = net.net.node("H41");
    let mut profile = ClientProfile::load(&h42c1.operator_profile).unwrap();
    profile.endpoint = format!("https://{}", h41.config.listen);
    profile.node = "H41".into();
    let mut relay = pb::relay_service_client::RelayServiceClient::new(profile.channel().unwrap());
    let status = relay
        .handoff(tokio_stream::iter(Vec::<pb::RelayItem>::new()))
        .await
        .expect_err("a non-neighbour must be refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("node:H42-C1 is not a neighbour of node H41"),
        "{status:?}"
    );
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_a_node_certificate_presenting_another_node_id() {
    let (_dir, net) = start(2).await;
    // Dial H42's address while expecting H41: the TLS identity check must fail.
    let h41 = net.net.node("H41");
    let h42 = net.net.node("H42");
    let mut profile = ClientProfile::load(&h41.operator_profile).unwrap();
    profile.endpoint = format!("https://{}", h42.config.listen);
    profile.node = "H41".into();
    let status = profile
        .admin()
        .unwrap()
        .health(pb::HealthRequest {})
        .await
        .expect_err("a server presenting another node id must be refused");
    // The client's identity check refuses the handshake, naming both identities.
    let chain = format!("{:?}", std::error::Error::source(&status));
    assert!(
        chain.contains("WrongPeer { expected: Node(NodeId(H41)), actual: Node(NodeId(H42)) }"),
        "{chain}"
    );
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_directory_with_a_bad_signature_or_an_older_version() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = RunningNetwork::start(dir.path(), lienthong_testkit::Shape::new(2), 0, 100)
        .await
        .unwrap();
    let national = net.net.node("VN");
    let h41 = net.net.node("H41");
    let trust = CachedTrust::new(TrustRoots::load(&national.config.tls.ca).unwrap());
    let mut directory = lienthong_node::directory::load_source(
        national
            .config
            .network
            .as_ref()
            .unwrap()
            .directory_file
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    directory.version = 5;
    let national_key = lienthong_pki::load_signing_key(&national.config.tls.key).unwrap();
    let national_cert = lienthong_pki::load_certs(&national.config.tls.cert).unwrap()[0].to_vec();
    let holder = |version: u64| {
        let mut d = directory.clone();
        d.version = version;
        lienthong_node::directory::sign(&mut d, &national_key, &national_cert).unwrap();
        lienthong_node::directory::DirectoryHolder::new(d, Some(national.id.clone()), None).unwrap()
    };

    // Signed by a province instead of the national gateway.
    let h41_key = lienthong_pki::load_signing_key(&h41.config.tls.key).unwrap();
    let h41_cert = lienthong_pki::load_certs(&h41.config.tls.cert).unwrap()[0].to_vec();
    let mut forged = directory.clone();
    lienthong_node::directory::sign(&mut forged, &h41_key, &h41_cert).unwrap();
    let err = holder(2).offer(forged, &trust).unwrap_err().to_string();
    assert!(err.contains("not by the national gateway VN"), "{err}");

    // Signed by the national gateway, then altered.
    let mut tampered = directory.clone();
    lienthong_node::directory::sign(&mut tampered, &national_key, &national_cert).unwrap();
    tampered.agencies.pop();
    let err = holder(2).offer(tampered, &trust).unwrap_err().to_string();
    assert!(err.contains("bad signature"), "{err}");

    // Correctly signed but older than the copy in use.
    let mut older = directory.clone();
    older.version = 1;
    lienthong_node::directory::sign(&mut older, &national_key, &national_cert).unwrap();
    let err = holder(2).offer(older, &trust).unwrap_err().to_string();
    assert!(err.contains("older than version 2"), "{err}");

    // And a newer, good one is taken.
    let mut newer = directory.clone();
    newer.version = 3;
    lienthong_node::directory::sign(&mut newer, &national_key, &national_cert).unwrap();
    assert!(holder(2).offer(newer, &trust).unwrap());
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_propagates_down_and_nodes_work_from_cache_when_the_parent_is_down() {
    let (_dir, mut net) = start(2).await;
    // A new version at the national gateway reaches a commune two levels down.
    let source = net.net.directory_source().to_path_buf();
    let text = std::fs::read_to_string(&source).unwrap();
    let text = text.replacen("version = 1", "version = 2", 1)
        + "\n[[agencies]]\ncode = \"003.00.20.H42\"\nname = \"UBND xã mới\"\nhome = \"H42-C1\"\n";
    std::fs::write(&source, text).unwrap();
    net.restart_node("VN").await.unwrap();
    let commune = net.net.node("H42-C1");
    let mut admin = ClientProfile::load(&commune.operator_profile)
        .unwrap()
        .admin()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while admin
        .health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner()
        .agencies
        != 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "version 2 never reached H42-C1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // With the national gateway down, a province still routes between its own communes,
    // and a restarted commune serves from its cached directory.
    net.stop_node("VN").await.unwrap();
    net.restart_node("H41-C1").await.unwrap();
    let (a, b) = (
        net.client("001.00.20.H41").unwrap(),
        net.client("002.00.20.H41").unwrap(),
    );
    let mut d = a.new_document(vec![b.agency().clone()], "Khi trục quốc gia ngừng");
    a.send(&mut d, &[]).await.unwrap();
    wait_for_entry(&b, d.id.as_str()).await;
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_a_recipient_that_exists_nowhere_and_tells_the_sender() {
    init();
    let dir = tempfile::tempdir().unwrap();
    // Children fetch the directory once at start and then not for a minute, so the
    // communes and provinces keep version 1 while the national gateway moves on.
    let mut net = RunningNetwork::start(dir.path(), lienthong_testkit::Shape::new(2), 0, 60_000)
        .await
        .unwrap();
    let gone = "002.00.20.H42";
    // Version 2 removes agency `gone`: it exists nowhere any more.
    let source = net.net.directory_source().to_path_buf();
    let text = std::fs::read_to_string(&source).unwrap();
    let block = format!("\n[[agencies]]\ncode = \"{gone}\"\n");
    let start = text.find(&block).expect("agency block in the source");
    let end = text[start + 1..]
        .find("\n[[")
        .map(|i| start + 1 + i)
        .unwrap_or(text.len());
    let text =
        format!("{}{}", &text[..start], &text[end..]).replacen("version = 1", "version = 2", 1);
    std::fs::write(&source, text).unwrap();
    net.restart_node("VN").await.unwrap();

    // H41-C1 still knows `gone` (version 1) and accepts; the national gateway cannot route.
    let a = net.client("001.00.20.H41").unwrap();
    let mut d = a.new_document(
        vec![lienthong_core::AgencyCode::parse(gone).unwrap()],
        "Gửi nơi đã giải thể",
    );
    a.send(&mut d, &[]).await.unwrap();
    let events = wait_for_track(&a, d.id.as_str(), |ev| {
        ev.iter()
            .any(|e| e.kind == TransportEventKind::DeadLettered)
    })
    .await;
    let dead = events
        .iter()
        .find(|e| e.kind == TransportEventKind::DeadLettered)
        .unwrap();
    assert_eq!(dead.node.as_str(), "VN");
    assert_eq!(dead.agency.as_ref().unwrap().as_str(), gone);
    assert!(
        dead.detail
            .contains("not in the directory (version 2) of node VN"),
        "{dead:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.kind == TransportEventKind::Delivered),
        "{events:#?}"
    );
    net.stop().await.unwrap();
}

/// The next directory on a watch stream, within 20 s.
async fn next_directory(
    stream: &mut tonic::Streaming<pb::Directory>,
) -> lienthong_core::directory::Directory {
    let d = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("a directory within 20 s")
        .unwrap()
        .expect("the stream stays open");
    lienthong_core::directory::Directory::try_from(d).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_watching_its_parent_gets_each_new_signed_directory() {
    let (_dir, mut net) = start(2).await;
    // H41-C1, with its node certificate, watches its parent H41.
    let mut profile = ClientProfile::load(&net.net.node("H41-C1").operator_profile).unwrap();
    profile.endpoint = format!("https://{}", net.net.node("H41").config.listen);
    profile.node = "H41".into();
    let channel = profile.channel().unwrap();
    let mut client = pb::directory_service_client::DirectoryServiceClient::new(channel);
    let trust = CachedTrust::new(TrustRoots::load(&profile.ca).unwrap());
    let national = lienthong_core::NodeId::parse("VN").unwrap();
    let mut stream = client
        .watch_directory(pb::WatchDirectoryRequest { known_version: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = next_directory(&mut stream).await;
    assert_eq!(first.version, 1);
    assert_eq!(first.agencies.len(), 9);
    lienthong_node::directory::verify(&first, &trust, &national).unwrap();

    // Nothing newer: GetDirectory answers with the version only.
    let current = client
        .get_directory(pb::GetDirectoryRequest {
            known_version: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.version, 1);
    assert!(current.directory.is_none());

    // The national gateway publishes version 2; H41 pulls it and pushes it to the watcher.
    let source = net.net.directory_source().to_path_buf();
    let text = std::fs::read_to_string(&source)
        .unwrap()
        .replacen("version = 1", "version = 2", 1)
        + "\n[[agencies]]\ncode = \"003.00.20.H41\"\nname = \"UBND xã mới\"\nhome = \"H41-C1\"\n";
    std::fs::write(&source, text).unwrap();
    net.restart_node("VN").await.unwrap();
    let second = next_directory(&mut stream).await;
    assert_eq!(second.version, 2);
    assert_eq!(second.agencies.len(), 10);
    lienthong_node::directory::verify(&second, &trust, &national).unwrap();
    drop(stream);
    net.stop().await.unwrap();
}
