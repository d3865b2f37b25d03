//! Storage faults on real nodes: a full disk (a small tmpfs), a stored document whose bytes
//! changed under the node, and a store that cannot be opened.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lienthong_client::Incoming;
use lienthong_client::Tracked;
use lienthong_core::{AgencyCode, TransportEventKind};
use lienthong_node::config::NodeConfig;
use lienthong_proto::pb;
use lienthong_testkit::{RunningNetwork, Shape, TestNetwork};
use tonic::Code;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A tmpfs of `mib` MiB mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason printed) where mounting is not allowed, outside CI; in CI
    /// (`CI` set) a failed mount fails the test, so that it never passes without running.
    fn mount(dir: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot mount a tmpfs for the disk-full test: {why}"
                );
                eprintln!("SKIPPED: cannot mount a tmpfs (needs root): {why}");
                None
            }
        }
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_documents_serves_the_rest_and_recovers() {
    init();
    let scratch = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&scratch.path().join("disk"), 160) else {
        return;
    };
    let data_dir = disk.0.join("data");
    let mut net = TestNetwork::start(|c| {
        c.data_dir = data_dir.clone();
        c.limits.min_free_disk_bytes = 64 * 1024 * 1024;
        // The node reads free space again only after `disk_recheck_ms` (250 ms by default),
        // on the std clock and next to real sockets, so tokio's paused time is no help:
        // the test shortens the period and waits a few of them after each change.
        c.limits.disk_recheck_ms = 20;
    })
    .await
    .unwrap();
    let (sender, recipient) = (net.client(0).unwrap(), net.client(1).unwrap());
    let to = vec![net.net.profiles[1].0.clone()];
    let mut before = sender.new_document(to.clone(), "Trước khi đầy đĩa");
    sender.send(&mut before, &[]).await.unwrap();

    // Fill the disk to 32 MiB free: below the 64 MiB reserve.
    let filler = disk.0.join("filler");
    let fill = disk.free_bytes() - 32 * 1024 * 1024;
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut during = sender.new_document(to.clone(), "Khi đĩa đầy");
    let sealed = sender.seal(&mut during, &[]).unwrap();
    let refused = sender.send_sealed(&sealed).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::ResourceExhausted), "{refused:?}");
    assert!(
        refused.message().contains("nearly full")
            && refused.message().contains("refused until space is freed"),
        "{}",
        refused.message()
    );
    // Fetches and acknowledgements go on.
    let listed = recipient.list_inbox(0, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(matches!(
        recipient.fetch(before.id.as_str()).await.unwrap(),
        Incoming::Document(_)
    ));
    recipient.ack(before.id.as_str()).await.unwrap();

    // Space returns: the node takes documents again by itself, the refused one included.
    std::fs::remove_file(&filler).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sender.send_sealed(&sealed).await.unwrap();
    let mut after = sender.new_document(to, "Sau khi giải phóng");
    sender.send(&mut after, &[]).await.unwrap();

    // Nothing acknowledged is lost, across a restart too.
    net.restart().await.unwrap();
    let ids: Vec<String> = recipient
        .list_inbox(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![during.id.to_string(), after.id.to_string()]);
    net.stop().await.unwrap();
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_document_changed_on_disk_is_quarantined_never_forwarded() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut net = RunningNetwork::start(dir.path(), Shape::new(2), 0, 100)
        .await
        .unwrap();
    net.stop_node("VN").await.unwrap();
    let sender = net.client("000.00.00.H41").unwrap();
    let to = vec![AgencyCode::parse("000.00.00.H42").unwrap()];
    let mut doc = sender.new_document(to.clone(), "Nguyen van ban goc");
    sender.send(&mut doc, &[]).await.unwrap();

    // Change one letter of the stored subject at H41 while the node is down. Message
    // bodies live in the store's write-ahead log, and the record in sled ends with where
    // (segment, offset, length) and the body's CRC-32. The CRC is made to match: the
    // storage layer sees nothing wrong, and the node's own check against the signed
    // digest must catch it. (A CRC mismatch is the store's `Corrupt`, quarantined alike.)
    net.stop_node("H41").await.unwrap();
    let data = net.net.node("H41").config.data_dir.clone();
    {
        let db = sled::open(data.join("db")).unwrap();
        let tree = db.open_tree("lienthong").unwrap();
        let key = tree
            .iter()
            .keys()
            .map(Result::unwrap)
            .find(|k| {
                let id = doc.id.as_str().as_bytes();
                k[0] == b'm' && k.windows(id.len()).any(|w| w == id)
            })
            .expect("the document's record");
        let mut record = tree.get(&key).unwrap().unwrap().to_vec();
        let body_ref = record.len() - 20;
        let number = |at: usize, n: usize| {
            record[body_ref + at..body_ref + at + n]
                .iter()
                .fold(0u64, |v, b| v << 8 | *b as u64)
        };
        let (offset, len) = (number(4, 8) as usize, number(12, 4) as usize);
        let segment = data.join("wal").join(format!("{:08}.log", number(0, 4)));
        let mut log = std::fs::read(&segment).unwrap();
        let body = &mut log[offset..offset + len];
        let at = body
            .windows(b"ban goc".len())
            .position(|w| w == b"ban goc")
            .expect("the subject in the body");
        body[at] = b'B';
        let crc = crc32fast::hash(body);
        std::fs::write(&segment, &log).unwrap();
        record[body_ref + 16..].copy_from_slice(&crc.to_be_bytes());
        tree.insert(&key, record).unwrap();
        db.flush().unwrap();
    }
    net.start_node("H41").await.unwrap();
    net.start_node("VN").await.unwrap();

    let events = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let Tracked {
                events,
                statuses: _,
                ..
            } = sender.track(doc.id.as_str()).await.unwrap();
            if events
                .iter()
                .any(|e| e.kind == TransportEventKind::DeadLettered)
            {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the sender hears of the quarantine");
    let dead = events
        .iter()
        .find(|e| e.kind == TransportEventKind::DeadLettered)
        .unwrap();
    assert!(
        dead.detail.contains("quarantined") && dead.detail.contains("no longer matches"),
        "{dead:?}"
    );
    // A later document flows; the damaged one never left H41.
    let mut later = sender.new_document(to, "Van ban sau");
    sender.send(&mut later, &[]).await.unwrap();
    let recipient = net.client("000.00.00.H42").unwrap();
    let ids = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ids: Vec<String> = recipient
                .list_inbox(0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect();
            if ids.contains(&later.id.to_string()) {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the later document arrives");
    assert!(!ids.contains(&doc.id.to_string()));
    let letters = net
        .admin("H41")
        .unwrap()
        .list_dead_letters(pb::DeadLetterFilter::default())
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(letters.len(), 1);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_opened_stops_the_node_with_a_clear_message() {
    init();
    let mut net = TestNetwork::start(|_: &mut NodeConfig| {}).await.unwrap();
    let config = net.net.config.clone();
    // Stop the node but keep its directory.
    net.node.take().unwrap().stop().await.unwrap();
    let db = config.data_dir.join("db");
    // Garble every file of the database.
    for entry in walk(&db) {
        let len = std::fs::metadata(&entry).unwrap().len().max(64);
        std::fs::write(&entry, vec![0xA5u8; len as usize]).unwrap();
    }
    let err = lienthong_node::server::build(&config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot open the store at") && err.contains(&db.display().to_string()),
        "{err}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
