//! Test helper for `tests/crash.rs`: opens the store in the directory given as the first
//! argument and accepts documents from 32 concurrent tasks until killed, printing each
//! document id on its own line only after `accept` returned `Ok` — that is, only ids the
//! store promised are durable. Given a count as second argument, it stops after that many
//! accepts, prints `idle`, and waits to be killed.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};
use lienthong_store::{Delivery, Envelope, MessageKind, SledStore, Store};

const TASKS: usize = 32;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: store-crash-writer DIR [COUNT]");
        std::process::exit(64);
    };
    let count = match std::env::args().nth(2).map(|c| c.parse::<u64>()) {
        None => u64::MAX,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("store-crash-writer: COUNT: {e}");
            std::process::exit(64);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(dir, count));
}

async fn run(dir: String, count: u64) {
    let store = Arc::new(SledStore::open(std::path::Path::new(&dir)).expect("open store"));
    let inbox = AgencyCode::parse("000.00.00.H41").expect("agency code");
    let hop = NodeId::parse("national").expect("node id");
    let body = Bytes::from(vec![b'x'; 1024]);
    let started = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let started = started.clone();
            let store = store.clone();
            let inbox = inbox.clone();
            let hop = hop.clone();
            let body = body.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
                    if started.fetch_add(1, Ordering::Relaxed) >= count {
                        break;
                    }
                    let id = DocumentId::parse(&format!("crash-{task}-{n}")).expect("id");
                    let envelope = Envelope {
                        key: MessageKey::sent_by(&inbox, &id),
                        kind: MessageKind::Document,
                        priority: (n % 4) as u8,
                        content_digest: ring::digest::digest(
                            &ring::digest::SHA256,
                            id.as_str().as_bytes(),
                        )
                        .as_ref()
                        .try_into()
                        .expect("32 bytes"),
                        encoded: body.clone(),
                        received_at: lienthong_core::now_millis(),
                    };
                    let delivery = Delivery {
                        inboxes: vec![inbox.clone()],
                        outboxes: vec![(hop.clone(), vec![inbox.clone()])],
                        ..Default::default()
                    };
                    store
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
                    // One write per line, flushed, so the parent sees it even if we die
                    // right after.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{id}")
                        .and_then(|()| out.flush())
                        .expect("stdout");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "idle")
        .and_then(|()| out.flush())
        .expect("stdout");
    drop(out);
    // Killed here, with the store open.
    std::future::pending::<()>().await;
}
