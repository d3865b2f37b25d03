//! A node on a store whose write-ahead log is damaged refuses to start with one line that
//! names `lienthong store repair`, and that command repairs it — the built binary, on the
//! files of a generated node.

use std::path::Path;
use std::process::Output;

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey};
use lienthong_store::{Delivery, Envelope, MessageKind, SledStore, Store};

fn lienthong(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .output()
        .expect("the lienthong binary runs")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Four documents in four frames after the last checkpoint (the database is put back as it
/// was before them, as a SIGKILL before the next checkpoint leaves it), the first damaged.
/// The key of test document `doc-<i>`, sent by UBND tỉnh Nghệ An.
fn doc(i: u8) -> MessageKey {
    MessageKey::sent_by(
        &AgencyCode::parse("000.00.00.H41").unwrap(),
        &DocumentId::parse(&format!("doc-{i}")).unwrap(),
    )
}

async fn damaged_store(data: &Path) {
    drop(SledStore::open(data).unwrap());
    let before = tempfile::TempDir::new().unwrap();
    copy_dir(&data.join("db"), before.path());
    let store = SledStore::open(data).unwrap();
    for i in 0..4u8 {
        let envelope = Envelope {
            key: doc(i),
            kind: MessageKind::Document,
            priority: 0,
            content_digest: [i; 32],
            encoded: Bytes::from(format!("encoded body of doc-{i}")),
            received_at: 0,
        };
        let delivery = Delivery {
            inboxes: vec![AgencyCode::parse("000.00.00.H41").unwrap()],
            ..Default::default()
        };
        store
            .accept(envelope, delivery, Bytes::new(), Vec::new())
            .await
            .unwrap();
    }
    drop(store);
    std::fs::remove_dir_all(data.join("db")).unwrap();
    copy_dir(before.path(), &data.join("db"));
    let segment = data.join("wal").join("00000000.log");
    let mut log = std::fs::read(&segment).unwrap();
    let at = log
        .windows(20)
        .position(|w| w == b"encoded body of doc-")
        .unwrap();
    log[at + 3] ^= 0x01;
    std::fs::write(&segment, &log).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_refuses_to_start_on_a_damaged_log_with_one_line_naming_the_repair() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::TempDir::new().unwrap();
    let net = lienthong_testkit::generate(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        &lienthong_testkit::DEV_AGENCIES,
    )
    .unwrap();
    let data = net.config.data_dir.clone();
    damaged_store(&data).await;
    let data_arg = data.display().to_string();

    let out = lienthong(&["node", "--config", &net.config_path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("write-ahead log"), "{stderr}");
    assert!(
        stderr.contains(&format!("`lienthong store repair --data-dir {data_arg}`")),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("lienthong store repair").count(),
        1,
        "{stderr}"
    );

    let out = lienthong(&["store", "repair", "--data-dir", &data_arg, "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");
    let refused = lienthong(&["node", "--config", &net.config_path.display().to_string()]);
    assert_eq!(refused.status.code(), Some(64));

    let out = lienthong(&["store", "repair", "--data-dir", &data_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert!(stdout.contains("3 intact frames"), "{stdout}");
    assert!(stdout.contains("LOST: segment 0"), "{stdout}");
    assert!(stdout.contains(": frame 0: "), "{stdout}");
    assert!(
        stdout.contains("messages: doc-0 (from 000.00.00.H41)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kept: 3 intact frames after it"),
        "{stdout}"
    );

    let store = SledStore::open(&data).unwrap();
    for i in 1..4 {
        assert!(store.message(&doc(i)).unwrap().is_some(), "doc-{i} kept");
    }
    assert!(store.message(&doc(0)).unwrap().is_none());
}

#[test]
fn repair_of_a_directory_without_a_store_is_a_usage_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = lienthong(&[
        "store",
        "repair",
        "--data-dir",
        &dir.path().display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("holds no lienthong store"), "{stderr}");
}
