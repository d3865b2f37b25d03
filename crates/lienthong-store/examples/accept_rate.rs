//! Measures durable `accept` throughput of [`SledStore`]: 1 KiB documents, each to one
//! inbox and one outbox, from N concurrent tokio tasks, on a fresh store per run.
//!
//! ```text
//! cargo run --release -p lienthong-store --example accept_rate -- [SECONDS] [TASKS...]
//! ```
//! Defaults: 5 seconds, 16 and 64 tasks. The store goes in a temporary directory under
//! `$TMPDIR` (use a directory on the disk you care about).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};
use lienthong_store::{AcceptOutcome, Delivery, Envelope, MessageKind, SledStore, Store};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args
        .next()
        .map_or(5, |s| s.parse().expect("SECONDS is a number"));
    let mut concurrency: Vec<usize> = args
        .map(|s| s.parse().expect("TASKS is a number"))
        .collect();
    if concurrency.is_empty() {
        concurrency = vec![16, 64];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for tasks in concurrency {
        let rate = runtime.block_on(run(tasks, Duration::from_secs(seconds)));
        println!("{tasks:>4} tasks: {rate:>8.0} docs/s (1 KiB, durable, {seconds} s)");
    }
}

async fn run(tasks: usize, duration: Duration) -> f64 {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open store"));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let body = Bytes::from(vec![b'x'; 1024]);
    let inbox = AgencyCode::parse("000.00.00.H41").expect("agency");
    let hop = NodeId::parse("national").expect("node");
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (store, stop, done, body, inbox, hop) = (
                store.clone(),
                stop.clone(),
                done.clone(),
                body.clone(),
                inbox.clone(),
                hop.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = DocumentId::parse(&format!("rate-{task}-{n}")).expect("id");
                    n += 1;
                    let mut digest = [0u8; 32];
                    digest[..16].copy_from_slice(
                        &(task as u64 * 1_000_000_000 + n).to_be_bytes().repeat(2),
                    );
                    let envelope = Envelope {
                        key: MessageKey::sent_by(&inbox, &id),
                        kind: MessageKind::Document,
                        priority: (n % 4) as u8,
                        content_digest: digest,
                        encoded: body.clone(),
                        received_at: lienthong_core::now_millis(),
                    };
                    let delivery = Delivery {
                        inboxes: vec![inbox.clone()],
                        outboxes: vec![(hop.clone(), vec![inbox.clone()])],
                        ..Default::default()
                    };
                    let outcome = store
                        .accept(
                            envelope,
                            delivery,
                            Bytes::from_static(b"receipt"),
                            vec![
                                Bytes::from_static(b"accepted"),
                                Bytes::from_static(b"delivered"),
                            ],
                        )
                        .await
                        .expect("accept");
                    assert!(matches!(outcome, AcceptOutcome::Accepted { .. }));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
