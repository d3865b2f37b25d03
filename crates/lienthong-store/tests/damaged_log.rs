//! Damage to the write-ahead log on real files: a synced frame that is damaged stops the
//! store from opening, without a byte cut, and the repair keeps every intact frame and
//! names what was lost; a frame torn by a crash before it was synced is cut and the store
//! opens.
//!
//! "After a crash" is made by putting back a copy of the sled database taken before the
//! writes: what a SIGKILL before the next checkpoint leaves (sled flushed none of them),
//! so that the frames are after the last checkpoint and an open replays them.

use std::path::Path;

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey};
use lienthong_store::{AcceptOutcome, Delivery, Envelope, Error, MessageKind, SledStore, Store};

const H41: &str = "000.00.00.H41";

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

fn replace_dir(with: &Path, dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    copy_dir(with, dir);
}

/// The key of test document `id`, sent by UBND tỉnh Nghệ An.
fn key(id: &str) -> MessageKey {
    MessageKey::sent_by(
        &AgencyCode::parse(H41).unwrap(),
        &DocumentId::parse(id).unwrap(),
    )
}

fn body(id: &str) -> String {
    format!("encoded body of {id}")
}

async fn accept(store: &SledStore, id: &str) -> AcceptOutcome {
    let envelope = Envelope {
        key: key(id),
        kind: MessageKind::Document,
        priority: 0,
        content_digest: ring::digest::digest(&ring::digest::SHA256, id.as_bytes())
            .as_ref()
            .try_into()
            .unwrap(),
        encoded: Bytes::from(body(id)),
        received_at: 0,
    };
    let delivery = Delivery {
        inboxes: vec![AgencyCode::parse(H41).unwrap()],
        ..Default::default()
    };
    store
        .accept(
            envelope,
            delivery,
            Bytes::from_static(b"receipt"),
            Vec::new(),
        )
        .await
        .unwrap()
}

fn stored(store: &SledStore, id: &str) -> bool {
    let in_inbox = store
        .inbox(&AgencyCode::parse(H41).unwrap(), None, 100)
        .unwrap()
        .iter()
        .any(|e| e.message.id.as_str() == id);
    let message = store.message(&key(id)).unwrap();
    match message {
        Some(m) => {
            assert_eq!(m.envelope.encoded, body(id).as_bytes());
            assert!(in_inbox, "{id} has its message but no inbox entry");
            true
        }
        None => {
            assert!(!in_inbox, "{id} has an inbox entry without its message");
            false
        }
    }
}

fn segment0(dir: &Path) -> std::path::PathBuf {
    dir.join("wal").join("00000000.log")
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

/// The case: one flipped byte in the first of four new frames made the store drop
/// all four, cut the log and open with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_open_over_a_damaged_frame_and_repair_keeps_the_three_intact_ones() {
    let dir = tempfile::TempDir::new().unwrap();
    let before = tempfile::TempDir::new().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    copy_dir(&dir.path().join("db"), before.path());
    let store = SledStore::open(dir.path()).unwrap();
    // One at a time: four groups, four frames.
    for i in 0..4 {
        accept(&store, &format!("doc-{i}")).await;
    }
    drop(store);
    replace_dir(before.path(), &dir.path().join("db"));

    let mut log = std::fs::read(segment0(dir.path())).unwrap();
    let at = find(&log, body("doc-0").as_bytes()) + 3;
    log[at] ^= 0x01;
    std::fs::write(segment0(dir.path()), &log).unwrap();

    let err = SledStore::open(dir.path()).unwrap_err();
    let Error::DamagedLog {
        segment, offset, ..
    } = &err
    else {
        panic!("expected a damaged log: {err}");
    };
    assert_eq!(*segment, 0);
    assert_eq!(*offset, find(&log, b"LTf2") as u64, "{err}");
    let message = err.to_string();
    assert!(message.contains("a valid frame follows"), "{message}");
    assert!(
        message.contains(&format!(
            "run `lienthong store repair --data-dir {}`",
            dir.path().display()
        )),
        "{message}"
    );
    // Nothing was cut or changed.
    assert_eq!(std::fs::read(segment0(dir.path())).unwrap(), log);

    let dry = SledStore::repair(dir.path(), true).unwrap();
    assert!(!dry.changed);
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(Error::DamagedLog { .. })
    ));

    let report = SledStore::repair(dir.path(), false).unwrap();
    eprintln!("{report}");
    assert_eq!(report.frames, 3, "{report}");
    assert_eq!(report.lost.len(), 1, "{report}");
    let lost = &report.lost[0];
    assert_eq!((lost.segment, lost.start), (0, *offset));
    assert_eq!(lost.frames, Some((0, Some(0))));
    assert_eq!(
        lost.messages,
        vec!["doc-0 (from 000.00.00.H41)".to_string()]
    );
    assert_eq!(lost.frames_after, 3);
    // Exactly the first frame: from its start to where the second starts.
    let first = find(&log, b"LTf2");
    let second = first + 1 + find(&log[first + 1..], b"LTf2");
    assert_eq!((lost.start, lost.end), (first as u64, second as u64));
    let shown = report.to_string();
    assert!(shown.contains("LOST: segment 0"), "{shown}");
    assert!(shown.contains("messages: doc-0"), "{shown}");
    // The damaged bytes stay on disk as they were.
    assert_eq!(std::fs::read(segment0(dir.path())).unwrap(), log);

    let store = SledStore::open(dir.path()).unwrap();
    assert!(!stored(&store, "doc-0"));
    for i in 1..4 {
        assert!(stored(&store, &format!("doc-{i}")), "doc-{i} kept");
    }
    // The lost document can be sent again, and everything survives another reopen.
    assert!(matches!(
        accept(&store, "doc-0").await,
        AcceptOutcome::Accepted { .. }
    ));
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    for i in 0..4 {
        assert!(stored(&store, &format!("doc-{i}")));
    }
    drop(store);
    // Nothing left to repair.
    let again = SledStore::repair(dir.path(), false).unwrap();
    assert!(!again.found_damage(), "{again}");
    assert_eq!(again.earlier_holes, 1);
}

/// A crash (power loss) while the fourth frame was being written, before its sync: its
/// writer never heard `Ok`, the synced mark still ends at the third, and the half frame
/// is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_that_was_never_acknowledged_is_cut_and_the_store_opens() {
    let dir = tempfile::TempDir::new().unwrap();
    let before = tempfile::TempDir::new().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    for i in 0..3 {
        accept(&store, &format!("doc-{i}")).await;
    }
    drop(store);
    copy_dir(dir.path(), before.path());
    let synced_len = std::fs::metadata(segment0(dir.path())).unwrap().len();
    let store = SledStore::open(dir.path()).unwrap();
    accept(&store, "never-acknowledged").await;
    drop(store);
    let log = std::fs::read(segment0(dir.path())).unwrap();
    let frame = &log[synced_len as usize..];

    // Back to the moment before the fourth frame, plus half of its bytes.
    replace_dir(before.path(), dir.path());
    let mut torn = std::fs::read(segment0(dir.path())).unwrap();
    torn.extend_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(segment0(dir.path()), &torn).unwrap();

    let store = SledStore::open(dir.path()).unwrap();
    for i in 0..3 {
        assert!(stored(&store, &format!("doc-{i}")));
    }
    assert!(!stored(&store, "never-acknowledged"));
    assert_eq!(
        std::fs::metadata(segment0(dir.path())).unwrap().len(),
        synced_len
    );
    // The log goes on from there.
    accept(&store, "after").await;
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert!(stored(&store, "after"));
}
