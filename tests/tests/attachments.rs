//! Large attachments end to end over real mTLS and real sled: chunked uploads that resume
//! after a broken stream, blobs pushed node to node across four hops when they are larger
//! than a gRPC message may be, and chunked, resumable downloads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use lienthong_client::{Accepted, Tracked};
use lienthong_client::{AttachmentSource, DmsClient, FileAttachment, Incoming, OutgoingAttachment};
use lienthong_core::AgencyCode;
use lienthong_core::sign::sha256;
use lienthong_proto::pb;
use lienthong_testkit::RawRpc;
use lienthong_testkit::{RunningNetwork, Shape};

/// The nodes' largest gRPC message: every large attachment here is bigger.
const MAX_MESSAGE: usize = 1024 * 1024;
/// The DMS's upload chunks.
const CHUNK: usize = 256 * 1024;
/// commune of Nghệ An → H41 → VN → H42 → commune of Hà Tĩnh.
const SENDER: &str = "001.00.20.H41";
const RECIPIENT: &str = "001.00.20.H42";
const PATH: [&str; 5] = ["H41-C1", "H41", "VN", "H42", "H42-C1"];

async fn start(dir: &Path) -> RunningNetwork {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shape = Shape {
        fanout: 1,
        ..Shape::new(2)
    };
    RunningNetwork::start_with(dir, shape, 0, 100, |c| {
        c.limits.max_message_bytes = MAX_MESSAGE;
    })
    .await
    .unwrap()
}

/// A file of `len` pseudo-random bytes (so that no chunk repeats another).
fn write_file(path: &Path, len: usize) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(len as u64);
    let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    std::fs::write(path, &data).unwrap();
    data.into()
}

/// Polls `client`'s inbox until `id` is in it.
async fn wait_for_entry(client: &DmsClient, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !client
        .list_inbox(0, 1000)
        .await
        .unwrap()
        .iter()
        .any(|e| e.id == id)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never reached {}",
            client.agency()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn blob_file(net: &RunningNetwork, node: &str, digest: &[u8; 32]) -> PathBuf {
    net.net
        .node(node)
        .config
        .data_dir
        .join("blobs")
        .join(hex::encode(digest))
}

/// Sends the first `chunks` chunks of `file` on an upload stream, waits until the node
/// reports them durable, then breaks the stream (the call is dropped mid-stream, as when
/// a connection dies). Returns the durable offset the node reports afterwards.
async fn upload_then_break(client: &DmsClient, file: &FileAttachment, chunks: usize) -> u64 {
    let data = std::fs::read(&file.path).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BlobChunk>(chunks);
    for i in 0..chunks {
        tx.send(pb::BlobChunk {
            sha256: Bytes::copy_from_slice(&file.sha256),
            size: file.size,
            offset: (i * CHUNK) as u64,
            data: Bytes::copy_from_slice(&data[i * CHUNK..(i + 1) * CHUNK]),
        })
        .await
        .unwrap();
    }
    let mut rpc = client.rpc();
    // `tx` stays open: the stream never ends by itself.
    let call = tokio::spawn(async move {
        rpc.upload_attachment(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let want = (chunks * CHUNK) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = client.attachment_status(&file.sha256).await.unwrap();
        assert!(!s.complete);
        if s.durable_bytes >= want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never held the chunks sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    drop(tx);
    let _ = call.await;
    let s = client.attachment_status(&file.sha256).await.unwrap();
    assert!(!s.complete, "a broken upload must not complete the blob");
    s.durable_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upload_resumes_from_the_last_acknowledged_chunk_and_arrives_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = start(dir.path()).await;
    let sender = net.client(SENDER).unwrap().with_chunk_bytes(CHUNK);
    let recipient = net.client(RECIPIENT).unwrap();

    // 3 MiB and a bit: more than three gRPC messages' worth.
    let path = dir.path().join("quyet-dinh-phu-luc.pdf");
    let data = write_file(&path, 3 * MAX_MESSAGE + 12_345);
    let file = FileAttachment::from_file(&path).unwrap();
    assert_eq!(file.sha256, sha256(&data));
    // A document naming the attachment before its bytes are there is refused.
    let mut early = sender.new_document(vec![AgencyCode::parse(RECIPIENT).unwrap()], "sớm");
    let err = sender
        .send_sealed(
            &sender
                .seal_sources(&mut early, &[AttachmentSource::File(file.clone())])
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err:?}");
    // A chunk that does not follow the bytes held is refused and changes nothing.
    let mut rpc = sender.rpc();
    let err = rpc
        .upload_attachment(tokio_stream::iter([pb::BlobChunk {
            sha256: Bytes::copy_from_slice(&file.sha256),
            size: file.size,
            offset: CHUNK as u64,
            data: data.slice(CHUNK..2 * CHUNK),
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        sender
            .attachment_status(&file.sha256)
            .await
            .unwrap()
            .durable_bytes,
        0
    );

    // The upload breaks after 5 chunks: exactly those are durable.
    let held = upload_then_break(&sender, &file, 5).await;
    assert_eq!(held, (5 * CHUNK) as u64);
    let before = std::fs::read_dir(
        net.net
            .node("H41-C1")
            .config
            .data_dir
            .join("blobs")
            .join("partial"),
    )
    .unwrap()
    .count();
    assert_eq!(before, 1, "the partial upload is kept for resumption");
    assert!(!blob_file(&net, "H41-C1", &file.sha256).exists());
    // It survives a restart of the node.
    net.restart_node("H41-C1").await.unwrap();
    net.wait_for_directory(Duration::from_secs(30))
        .await
        .unwrap();
    let status = sender.attachment_status(&file.sha256).await.unwrap();
    assert_eq!((status.durable_bytes, status.complete), (held, false));

    // Sending resumes from there: only the rest travels again.
    let mut document = sender.new_document(
        vec![AgencyCode::parse(RECIPIENT).unwrap()],
        "Quyết định kèm phụ lục lớn",
    );
    let (Accepted { receipt, duplicate }, reports) = sender
        .send_sources(&mut document, &[AttachmentSource::File(file.clone())])
        .await
        .unwrap();
    assert!(!duplicate);
    assert_eq!(receipt.node.as_str(), "H41-C1");
    // Once complete, the node holds it verified.
    let held = sender.attachment_status(&file.sha256).await.unwrap();
    assert!(held.complete);
    assert_eq!(held.durable_bytes, file.size);
    let report = &reports[0];
    assert_eq!(report.resumed_from, (5 * CHUNK) as u64);
    assert_eq!(report.bytes_sent, file.size - report.resumed_from);
    assert!(report.bytes_sent < file.size);
    assert_eq!(report.attempts, 1);

    // Four hops later the recipient's node holds it; every node on the path has the blob
    // under its digest (pushed in chunks: it is larger than a message may be).
    let id = document.id.to_string();
    wait_for_entry(&recipient, &id).await;
    for node in PATH {
        let blob = blob_file(&net, node, &file.sha256);
        assert_eq!(
            std::fs::read(&blob).map(|b| sha256(&b)).ok(),
            Some(file.sha256),
            "blob at {node}"
        );
    }

    // FetchDocument leaves the content out: `size` > 0 with no bytes.
    let raw = recipient
        .rpc()
        .fetch_document(pb::FetchDocumentRequest {
            id: id.clone(),
            from: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::fetch_document_response::Message::Document(d)) = raw.message else {
        panic!("not a document");
    };
    assert_eq!(d.attachments[0].size, file.size);
    assert!(d.attachments[0].content.is_empty());

    // A download interrupted after 1 MiB resumes from there, and the file is intact.
    let out = dir.path().join("received");
    std::fs::create_dir_all(&out).unwrap();
    let attachment = &document.attachments[0];
    let target = out.join("phu-luc.pdf");
    std::fs::write(out.join("phu-luc.pdf.part"), &data[..MAX_MESSAGE]).unwrap();
    let resumed = recipient
        .fetch_attachment_to_file(&id, attachment, &target)
        .await
        .unwrap();
    assert_eq!(resumed, MAX_MESSAGE as u64);
    assert_eq!(sha256(&std::fs::read(&target).unwrap()), file.sha256);

    // The whole fetch, verified end to end, to files.
    let out2 = dir.path().join("received2");
    std::fs::create_dir_all(&out2).unwrap();
    let dest = |_: usize, a: &lienthong_core::Attachment| out2.join(&a.name);
    let Incoming::Document(v) = recipient.fetch_to_files(&id, &dest).await.unwrap() else {
        panic!("not a document");
    };
    assert_eq!(v.document.id, document.id);
    let written = std::fs::read(out2.join("quyet-dinh-phu-luc.pdf")).unwrap();
    assert_eq!(sha256(&written), file.sha256);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_larger_than_a_message_crosses_four_hops_next_to_inline_ones() {
    let dir = tempfile::tempdir().unwrap();
    let net = start(dir.path()).await;
    let sender = net.client(SENDER).unwrap().with_chunk_bytes(CHUNK);
    let recipient = net.client(RECIPIENT).unwrap();

    let path = dir.path().join("ho-so.zip");
    let large = write_file(&path, 2 * MAX_MESSAGE + 777);
    let small = Bytes::from_static(b"%PDF-1.7 to trinh");
    let sources = [
        AttachmentSource::Inline(OutgoingAttachment {
            name: "to-trinh.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: small.clone(),
        }),
        AttachmentSource::File(FileAttachment::from_file(&path).unwrap()),
    ];
    let mut document = sender.new_document(
        vec![AgencyCode::parse(RECIPIENT).unwrap()],
        "Hồ sơ kèm tệp lớn",
    );
    // A document declaring another size for uploaded bytes is refused.
    let AttachmentSource::File(large_file) = &sources[1] else {
        unreachable!()
    };
    sender.upload_file(large_file).await.unwrap();
    let mut wrong = large_file.clone();
    wrong.size += 1;
    let mut bad = sender.new_document(vec![AgencyCode::parse(RECIPIENT).unwrap()], "sai");
    let err = sender
        .send_sources(&mut bad, &[AttachmentSource::File(wrong)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err:?}");

    let (_, reports) = sender.send_sources(&mut document, &sources).await.unwrap();
    assert_eq!(reports[0].resumed_from, large.len() as u64);
    assert_eq!(reports[0].bytes_sent, 0);
    assert_eq!(reports[0].attempts, 0);
    // Sending the same document again is a duplicate and uploads nothing.
    let (Accepted { duplicate, .. }, again) =
        sender.send_sources(&mut document, &sources).await.unwrap();
    assert!(duplicate);
    assert_eq!(again[0].bytes_sent, 0);

    let id = document.id.to_string();
    wait_for_entry(&recipient, &id).await;
    // Fetched into memory: the small one inline, the large one streamed; both verified.
    let Incoming::Document(v) = recipient.fetch(&id).await.unwrap() else {
        panic!("not a document");
    };
    assert_eq!(v.contents[0], small);
    assert_eq!(v.contents[1].len(), large.len());
    assert_eq!(sha256(&v.contents[1]), sha256(&large));
    // The trace names every hop.
    let hops: Vec<&str> = v.document.trace.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(hops, PATH);
    net.stop().await.unwrap();
}

/// The log lines of every node in this test process, to see what a link did.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let _ = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
        logs
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_between_nodes_broken_mid_way_resumes_from_the_neighbours_durable_offset() {
    let logs = logs();
    let dir = tempfile::tempdir().unwrap();
    let net = start(dir.path()).await;
    let sender = net.client(SENDER).unwrap().with_chunk_bytes(CHUNK);
    let recipient = net.client(RECIPIENT).unwrap();
    let path = dir.path().join("ban-do.tif");
    let data = write_file(&path, 3 * MAX_MESSAGE + 99);
    let file = FileAttachment::from_file(&path).unwrap();
    let digest = Bytes::copy_from_slice(&file.sha256);

    // A push from H41-C1 to H41 breaks after 4 chunks (the test speaks for H41-C1 with its
    // node certificate, as its link would, and drops the stream mid-way).
    let commune = &net.net.node("H41-C1").config;
    let province = &net.net.node("H41").config;
    let channel = lienthong_client::transport::connect(
        &format!("https://{}", province.listen),
        &commune.tls_files(),
        Some(lienthong_pki::Identity::Node(
            lienthong_core::NodeId::parse("H41").unwrap(),
        )),
    )
    .unwrap();
    let relay = pb::relay_service_client::RelayServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BlobChunk>(4);
    for i in 0..4 {
        tx.send(pb::BlobChunk {
            sha256: digest.clone(),
            size: file.size,
            offset: (i * CHUNK) as u64,
            data: data.slice(i * CHUNK..(i + 1) * CHUNK),
        })
        .await
        .unwrap();
    }
    let mut pushing = relay.clone();
    let call = tokio::spawn(async move {
        pushing
            .push_blob(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let held = (4 * CHUNK) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = relay
            .clone()
            .blob_status(pb::BlobStatusRequest {
                sha256: digest.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if s.durable_bytes >= held {
            assert!(!s.complete);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    drop(tx);
    let _ = call.await;

    // A DMS agency may not push between nodes.
    let err = pb::relay_service_client::RelayServiceClient::new(
        lienthong_client::transport::connect(
            &format!("https://{}", province.listen),
            &lienthong_client::ClientProfile::load(net.net.profile(SENDER))
                .unwrap()
                .tls_files(),
            None,
        )
        .unwrap(),
    )
    .blob_status(pb::BlobStatusRequest {
        sha256: digest.clone(),
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    // Now the document goes for real: H41-C1's link finds H41 holding 4 chunks and sends
    // only the rest; the next hops get the whole blob.
    let mut document = sender.new_document(
        vec![AgencyCode::parse(RECIPIENT).unwrap()],
        "Bản đồ quy hoạch",
    );
    sender
        .send_sources(&mut document, &[AttachmentSource::File(file.clone())])
        .await
        .unwrap();
    let id = document.id.to_string();
    wait_for_entry(&recipient, &id).await;
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let hex = hex::encode(file.sha256);
    let pushed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("blob pushed") && l.contains(&hex))
        .collect();
    let first_hop = pushed
        .iter()
        .find(|l| l.contains("node=H41-C1"))
        .unwrap_or_else(|| panic!("no push from H41-C1 logged:\n{}", pushed.join("\n")));
    assert!(first_hop.contains(&format!("from={held}")), "{first_hop}");
    assert!(
        first_hop.contains(&format!("sent={}", file.size - held)),
        "{first_hop}"
    );
    for node in ["H41", "VN", "H42"] {
        assert!(
            pushed
                .iter()
                .any(|l| l.contains(&format!("node={node} ")) && l.contains("from=0")),
            "{node} pushed the whole blob on:\n{}",
            pushed.join("\n")
        );
    }
    let Incoming::Document(v) = recipient.fetch(&id).await.unwrap() else {
        panic!("not a document");
    };
    assert_eq!(sha256(&v.contents[0]), file.sha256);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_damaged_on_disk_is_quarantined_not_pushed_forever() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = start(dir.path()).await;
    let sender = net.client(SENDER).unwrap().with_chunk_bytes(CHUNK);
    let path = dir.path().join("hu-hong.pdf");
    write_file(&path, 2 * MAX_MESSAGE + 5);
    let file = FileAttachment::from_file(&path).unwrap();

    // The parent is down: the document waits at H41-C1 while its blob is damaged there.
    net.stop_node("H41").await.unwrap();
    let mut document =
        sender.new_document(vec![AgencyCode::parse(RECIPIENT).unwrap()], "Tệp hư hỏng");
    sender
        .send_sources(&mut document, &[AttachmentSource::File(file.clone())])
        .await
        .unwrap();
    let blob = blob_file(&net, "H41-C1", &file.sha256);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[MAX_MESSAGE] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    net.start_node("H41").await.unwrap();

    // H41 hashes what arrived, refuses it, and H41-C1 quarantines the document.
    let mut admin = net.admin("H41-C1").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let list = admin
            .list_dead_letters(pb::DeadLetterFilter::default())
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if let Some(d) = list
            .into_iter()
            .find(|d| d.document_id == document.id.to_string())
        {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the document was never quarantined"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dead.reason.contains("quarantined"), "{}", dead.reason);
    assert!(
        dead.reason.contains(&hex::encode(file.sha256)),
        "{}",
        dead.reason
    );
    assert!(!blob_file(&net, "H41", &file.sha256).exists());
    net.stop().await.unwrap();
}

/// A large attachment is pushed to the next node on the side: while it streams, an urgent
/// document sent after it overtakes it on every link and reaches the recipient first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_document_overtakes_a_large_attachment_being_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let net = start(dir.path()).await;
    let sender = net.client(SENDER).unwrap().with_chunk_bytes(CHUNK);
    let recipient = net.client(RECIPIENT).unwrap();
    let to = vec![AgencyCode::parse(RECIPIENT).unwrap()];

    let path = dir.path().join("ban-do.tif");
    write_file(&path, 64 * MAX_MESSAGE);
    let file = FileAttachment::from_file(&path).unwrap();
    let digest = file.sha256;
    let mut large = sender.new_document(to.clone(), "Bản đồ quy hoạch");
    sender
        .send_sources(&mut large, &[AttachmentSource::File(file)])
        .await
        .unwrap();
    // Wait until H41-C1 is pushing the blob to H41.
    let partial = net
        .net
        .node("H41")
        .config
        .data_dir
        .join("blobs")
        .join("partial")
        .join(hex::encode(digest));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the push to H41 never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let mut urgent = sender.new_document(to, "Hỏa tốc: triệu tập họp");
    urgent.header.other.priority = lienthong_core::Priority::Flash;
    sender.send(&mut urgent, &[]).await.unwrap();
    // H41-C1 hands it to H41 while the blob is still streaming there.
    loop {
        let Tracked {
            events,
            statuses: _,
            ..
        } = sender.track(urgent.id.as_str()).await.unwrap();
        let handed = events.iter().any(|e| {
            e.kind == lienthong_core::TransportEventKind::Forwarded && e.node.as_str() == "H41-C1"
        });
        if handed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the urgent document never left H41-C1"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        !blob_file(&net, "H41", &digest).exists(),
        "the urgent document waited for the whole blob to reach H41"
    );

    wait_for_entry(&recipient, urgent.id.as_str()).await;
    wait_for_entry(&recipient, large.id.as_str()).await;
    let entries = recipient.list_inbox_by_arrival(0, 10).await.unwrap();
    let arrived: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        arrived,
        vec![urgent.id.as_str(), large.id.as_str()],
        "the urgent document arrives first"
    );
    net.stop().await.unwrap();
}

/// Bytes uploaded by one agency are not another's to name or probe: another DMS of the
/// same node that learnt the digest sees nothing held and cannot send a document naming
/// them until it uploads them itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dms_may_name_only_attachment_bytes_it_uploaded_itself() {
    let dir = tempfile::tempdir().unwrap();
    let net = start(dir.path()).await;
    // Both homed at H41.
    let owner = net.client("000.00.00.H41").unwrap().with_chunk_bytes(CHUNK);
    let other = net.client("000.00.14.H41").unwrap().with_chunk_bytes(CHUNK);
    let to = vec![AgencyCode::parse(RECIPIENT).unwrap()];

    let path = dir.path().join("mat.pdf");
    write_file(&path, 2 * MAX_MESSAGE + 1);
    let file = FileAttachment::from_file(&path).unwrap();
    let report = owner.upload_file(&file).await.unwrap();
    assert_eq!(report.bytes_sent, file.size);
    assert!(
        owner
            .attachment_status(&file.sha256)
            .await
            .unwrap()
            .complete
    );

    let seen = other.attachment_status(&file.sha256).await.unwrap();
    assert_eq!((seen.complete, seen.durable_bytes), (false, 0));
    let mut doc = other.new_document(to.clone(), "mượn tệp");
    let err = other
        .send_sealed(
            &other
                .seal_sources(&mut doc, &[AttachmentSource::File(file.clone())])
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err:?}");

    // Once it has uploaded the bytes itself (the node, holding them, ends the upload at
    // its first chunk), it may.
    let (Accepted { duplicate, .. }, _) = other
        .send_sources(&mut doc, &[AttachmentSource::File(file.clone())])
        .await
        .unwrap();
    assert!(!duplicate);
    assert!(
        other
            .attachment_status(&file.sha256)
            .await
            .unwrap()
            .complete
    );
    net.stop().await.unwrap();
}
