//! Test helper for `tests/crash.rs`: opens the store in the directory given as the only
//! argument and accepts documents from 32 concurrent tasks until killed, printing each
//! document id on its own line only after `accept` returned `Ok` — that is, only ids the
//! store promised are durable.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};
use lienthong_store::{Delivery, Envelope, MessageKind, SledStore, Store};

const TASKS: usize = 32;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: store-crash-writer DIR");
        std::process::exit(64);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(dir));
}

async fn run(dir: String) {
    let store = Arc::new(SledStore::open(std::path::Path::new(&dir)).expect("open store"));
    let inbox = AgencyCode::parse("000.00.00.H41").expect("agency code");
    let hop = NodeId::parse("national").expect("node id");
    let body = Bytes::from(vec![b'x'; 1024]);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            let inbox = inbox.clone();
            let hop = hop.clone();
            let body = body.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
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
}
