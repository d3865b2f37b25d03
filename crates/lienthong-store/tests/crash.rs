//! A real crash: a child process accepts documents under load and is SIGKILLed; every id
//! it reported as accepted must be in the reopened store, with its inbox entry.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};
use lienthong_store::{SledStore, Store};

/// Acks to see before the kill. With fewer (3,000 was tried) sled's log buffer can reach
/// the OS before the kill even with no flush at all, and a store that acknowledged before
/// flushing passed; at 20,000 that mutant loses acknowledged ids on every run. About 5 s in
/// a debug build.
const ACKS_BEFORE_KILL: usize = 20_000;

#[test]
fn every_acknowledged_accept_survives_sigkill() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();

    // Read on a thread so the deadline below holds even if the child stalls.
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                // A line cut short by the kill was never fully reported: skip it.
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_string()).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    });

    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while acked.len() < ACKS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(id) => acked.push(id),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "writer produced only {} acks before the deadline: {e}",
                    acked.len()
                );
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer must have been killed, not exited: {status}"
    );
    reader.join().unwrap();
    acked.extend(rx.try_iter());

    let store = SledStore::open(dir.path()).unwrap();
    let inbox: HashSet<String> = store
        .inbox(
            &AgencyCode::parse("000.00.00.H41").unwrap(),
            None,
            usize::MAX,
        )
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.to_string())
        .collect();
    let outbox: HashSet<String> = store
        .outbox(&NodeId::parse("national").unwrap(), usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.to_string())
        .collect();
    let mut missing = Vec::new();
    for id in &acked {
        let present = store
            .message(&MessageKey::sent_by(
                &AgencyCode::parse("000.00.00.H41").unwrap(),
                &DocumentId::parse(id).unwrap(),
            ))
            .unwrap()
            .is_some_and(|m| m.envelope.encoded.len() == 1024)
            && inbox.contains(id)
            && outbox.contains(id);
        if !present {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged accepts lost after SIGKILL, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // Every store-side structure agrees: no inbox entry without its message.
    let depths = store.queue_depths().unwrap();
    assert_eq!(depths.inboxes[0].1, inbox.len() as u64);
    assert_eq!(depths.outboxes[0].1, outbox.len() as u64);
    eprintln!(
        "{} acknowledged before/around the kill, {} stored in total",
        acked.len(),
        inbox.len()
    );
}
