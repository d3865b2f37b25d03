//! The conformance suite of [`Store`]: every case is a function generic over the
//! implementation, given a way to open the store at one fixed place (so it can drop it and
//! open it again). `sled_store_conformance!` at the bottom runs each on a fresh
//! [`SledStore`] in a temporary directory; another implementation reuses the cases by
//! invoking the same macro with its own opener.

use std::sync::Arc;

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};
use lienthong_store::{
    AcceptOutcome, BlobWriter, Delivery, Digest, Envelope, Error, Handed, InboxEntry, MessageKind,
    QueueDepths, SledStore, Store,
};

fn sha256(data: &[u8]) -> Digest {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .try_into()
        .unwrap()
}

fn agency(code: &str) -> AgencyCode {
    AgencyCode::parse(code).unwrap()
}

fn hop(id: &str) -> NodeId {
    NodeId::parse(id).unwrap()
}

/// The key of message `id` sent by [`SENDER`].
fn doc_id(id: &str) -> MessageKey {
    MessageKey::sent_by(&agency(SENDER), &DocumentId::parse(id).unwrap())
}

fn envelope(id: &str, priority: u8, content: &str) -> Envelope {
    Envelope {
        key: doc_id(id),
        kind: MessageKind::Document,
        priority,
        content_digest: sha256(content.as_bytes()),
        encoded: Bytes::from(format!("encoded:{content}")),
        received_at: 1_700_000_000_000,
    }
}

fn to_inboxes(codes: &[&str]) -> Delivery {
    Delivery {
        inboxes: codes.iter().map(|c| agency(c)).collect(),
        outboxes: Vec::new(),
        ..Default::default()
    }
}

fn to_outbox(node: &str, recipients: &[&str]) -> Delivery {
    Delivery {
        inboxes: Vec::new(),
        outboxes: vec![(hop(node), recipients.iter().map(|c| agency(c)).collect())],
        ..Default::default()
    }
}

const H41: &str = "000.00.00.H41";
const G22: &str = "000.00.00.G22";
const H20: &str = "000.00.14.H20";
/// The agency that sends the test messages.
const SENDER: &str = "000.00.20.H42";

fn receipt(s: &str) -> Bytes {
    Bytes::from(format!("receipt:{s}"))
}

fn event(s: &str) -> Bytes {
    Bytes::from(format!("event:{s}"))
}

fn ids_of_outbox<S: Store>(s: &S, node: &str) -> Vec<String> {
    s.outbox(&hop(node), 100)
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.to_string())
        .collect()
}

fn handed(entry: &lienthong_store::OutboxEntry, event_text: &str) -> Handed {
    Handed {
        key: entry.key.clone(),
        message: entry.message.clone(),
        events: vec![event(event_text)],
    }
}

fn ids(entries: &[InboxEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.message.id.as_str()).collect()
}

/// Depths with empty queues left out, since implementations may list them as zero.
fn nonzero(d: QueueDepths) -> QueueDepths {
    QueueDepths {
        inboxes: d.inboxes.into_iter().filter(|(_, n)| *n > 0).collect(),
        outboxes: d.outboxes.into_iter().filter(|(_, n)| *n > 0).collect(),
        dead_letters: d.dead_letters,
    }
}

async fn accept_to<S: Store>(s: &S, id: &str, priority: u8, delivery: Delivery) {
    let outcome = s
        .accept(
            envelope(id, priority, id),
            delivery,
            receipt(id),
            vec![event(&format!("{id}:accepted"))],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AcceptOutcome::Accepted {
            receipt: receipt(id)
        }
    );
}

// ---------------------------------------------------------------------------------------
// Cases

pub async fn accept_then_duplicate_returns_original_receipt<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let env = envelope("doc-1", 1, "hello");
    let first = s
        .accept(
            env.clone(),
            to_inboxes(&[H41]),
            receipt("first"),
            vec![event("accepted")],
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        AcceptOutcome::Accepted {
            receipt: receipt("first")
        }
    );

    let again = s
        .accept(
            env.clone(),
            to_inboxes(&[H41, G22]),
            receipt("second"),
            vec![event("again"), event("delivered")],
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        AcceptOutcome::Duplicate {
            receipt: receipt("first")
        }
    );

    let stored = s.message(&env.key).unwrap().unwrap();
    assert_eq!(stored.envelope, env);
    assert_eq!(stored.receipt, receipt("first"));
    // The duplicate wrote nothing: one event, one inbox entry, no entry for G22.
    assert_eq!(s.events(&env.key).unwrap(), vec![event("accepted")]);
    assert_eq!(
        ids(&s.inbox(&agency(H41), None, 10).unwrap()),
        vec!["doc-1"]
    );
    assert!(s.inbox(&agency(G22), None, 10).unwrap().is_empty());
}

pub async fn accept_of_same_id_with_other_content_is_conflict<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    accept_to(&s, "doc-1", 0, to_inboxes(&[H41])).await;
    let err = s
        .accept(
            envelope("doc-1", 0, "other content"),
            to_inboxes(&[G22]),
            receipt("x"),
            vec![event("x")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { id } if id == "doc-1"),
        "{err:?}"
    );
    let stored = s.message(&doc_id("doc-1")).unwrap().unwrap();
    assert_eq!(stored.envelope.content_digest, sha256(b"doc-1"));
    assert_eq!(stored.receipt, receipt("doc-1"));
    assert_eq!(s.events(&doc_id("doc-1")).unwrap().len(), 1);
    assert!(s.inbox(&agency(G22), None, 10).unwrap().is_empty());
}

pub async fn message_of_unknown_id_is_none<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    assert_eq!(s.message(&doc_id("nope")).unwrap(), None);
    assert!(!s.has_message(&doc_id("nope")).unwrap());
    assert!(s.events(&doc_id("nope")).unwrap().is_empty());
    accept_to(&s, "there", 0, to_inboxes(&[H41])).await;
    assert!(s.has_message(&doc_id("there")).unwrap());
    assert!(!s.has_message(&doc_id("nope")).unwrap());
}

/// Ids are chosen by senders: another agency that uses the same id (by chance, or to
/// squat on a predictable edXML id) gets a message of its own, and neither blocks nor
/// answers for the other.
pub async fn one_id_from_two_senders_is_two_messages<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let id = DocumentId::parse("000.00.20.H42,2026/12/05,17/UBND").unwrap();
    let squatter = MessageKey::sent_by(&agency(G22), &id);
    let owner = MessageKey::sent_by(&agency(SENDER), &id);
    let mut first = envelope("unused", 0, "squatter's content");
    first.key = squatter.clone();
    let mut second = envelope("unused", 0, "owner's content");
    second.key = owner.clone();
    for (env, name) in [(first.clone(), "squatter"), (second, "owner")] {
        let outcome = s
            .accept(env, to_inboxes(&[H41]), receipt(name), vec![event(name)])
            .await
            .unwrap();
        assert_eq!(
            outcome,
            AcceptOutcome::Accepted {
                receipt: receipt(name)
            }
        );
    }
    // Each sender's re-send is its own duplicate.
    let again = s
        .accept(first, Delivery::default(), receipt("x"), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        again,
        AcceptOutcome::Duplicate {
            receipt: receipt("squatter")
        }
    );
    assert_eq!(
        s.message(&owner).unwrap().unwrap().receipt,
        receipt("owner")
    );
    assert_eq!(s.events(&owner).unwrap(), vec![event("owner")]);
    let mut both = s.messages_with_id(&id).unwrap();
    both.sort();
    let mut expected = vec![squatter, owner.clone()];
    expected.sort();
    assert_eq!(both, expected);
    // An id that merely starts like another is not the same id.
    let longer = DocumentId::parse(&format!("{id}-2")).unwrap();
    assert!(s.messages_with_id(&longer).unwrap().is_empty());
    let inbox = s.inbox(&agency(H41), None, 10).unwrap();
    assert_eq!(inbox.len(), 2);
    assert!(s.ack(&agency(H41), &owner, event("acked")).await.unwrap());
    assert_eq!(s.inbox(&agency(H41), None, 10).unwrap().len(), 1);
}

pub async fn concurrent_accepts_of_one_id_accept_exactly_once<S: Store>(open: &dyn Fn() -> S) {
    let s = Arc::new(open());
    let env = envelope("race", 2, "same content");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            let env = env.clone();
            tokio::spawn(async move {
                s.accept(
                    env,
                    to_inboxes(&[H41]),
                    receipt(&format!("r{i}")),
                    vec![event(&format!("e{i}"))],
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let accepted: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, AcceptOutcome::Accepted { .. }))
        .collect();
    assert_eq!(accepted.len(), 1, "{outcomes:?}");
    let winner = accepted[0].receipt().clone();
    for o in &outcomes {
        assert_eq!(
            o.receipt(),
            &winner,
            "every duplicate carries the winner's receipt"
        );
    }
    assert_eq!(s.message(&env.key).unwrap().unwrap().receipt, winner);
    assert_eq!(s.events(&env.key).unwrap().len(), 1);
    assert_eq!(s.inbox(&agency(H41), None, 100).unwrap().len(), 1);
}

pub async fn inbox_is_in_cursor_order_and_resumes_after_a_cursor<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    for i in 0..5 {
        accept_to(&s, &format!("a{i}"), 0, to_inboxes(&[H41])).await;
        if i % 2 == 0 {
            accept_to(&s, &format!("b{i}"), 0, to_inboxes(&[G22])).await;
        }
    }
    let all = s.inbox(&agency(H41), None, 100).unwrap();
    assert_eq!(ids(&all), vec!["a0", "a1", "a2", "a3", "a4"]);
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor), "{all:?}");
    assert_eq!(all[3].kind, MessageKind::Document);

    let after = s.inbox(&agency(H41), Some(all[2].cursor), 100).unwrap();
    assert_eq!(after, all[3..].to_vec());
    let limited = s.inbox(&agency(H41), None, 2).unwrap();
    assert_eq!(limited, all[..2].to_vec());
    let page = s.inbox(&agency(H41), Some(all[0].cursor), 2).unwrap();
    assert_eq!(ids(&page), vec!["a1", "a2"]);
    assert!(
        s.inbox(&agency(H41), Some(all[4].cursor), 100)
            .unwrap()
            .is_empty()
    );
    assert!(s.inbox(&agency(H41), None, 0).unwrap().is_empty());
    assert_eq!(
        s.inbox_lane(&agency(H41), 0, Some(all[1].cursor), 100)
            .unwrap(),
        all[2..].to_vec()
    );
    assert!(s.inbox_lane(&agency(H41), 3, None, 100).unwrap().is_empty());

    assert_eq!(
        ids(&s.inbox(&agency(G22), None, 100).unwrap()),
        vec!["b0", "b2", "b4"]
    );
    assert!(s.inbox(&agency(H20), None, 100).unwrap().is_empty());
}

/// Urgent entries come before routine ones whatever their age; an ack finds an entry in
/// its lane; each lane reads in cursor order from its own position.
pub async fn inbox_serves_urgent_lanes_first<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    // Priorities 0,1,2,3,0,3: the inbox serves 3s, then the 2, the 1, then the 0s.
    for (i, p) in [0u8, 1, 2, 3, 0, 3].into_iter().enumerate() {
        accept_to(&s, &format!("a{i}"), p, to_inboxes(&[H41])).await;
    }
    let all = s.inbox(&agency(H41), None, 100).unwrap();
    assert_eq!(ids(&all), vec!["a3", "a5", "a2", "a1", "a0", "a4"]);
    assert_eq!(
        all.iter().map(|e| e.priority).collect::<Vec<_>>(),
        vec![3, 3, 2, 1, 0, 0]
    );
    assert_eq!(
        ids(&s.inbox(&agency(H41), None, 3).unwrap()),
        vec!["a3", "a5", "a2"]
    );
    let urgent = s.inbox_lane(&agency(H41), 3, None, 100).unwrap();
    assert_eq!(ids(&urgent), vec!["a3", "a5"]);
    assert_eq!(
        ids(&s
            .inbox_lane(&agency(H41), 3, Some(urgent[0].cursor), 100)
            .unwrap()),
        vec!["a5"]
    );
    // After a cursor: only newer entries, still urgent first.
    let after = s.inbox(&agency(H41), Some(all[2].cursor), 100).unwrap();
    assert_eq!(ids(&after), vec!["a3", "a5", "a4"]);
    // Paging by arrival sees every entry once, whatever the lanes.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.inbox_by_arrival(&agency(H41), cursor, 2).unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor);
        paged.extend(page);
    }
    assert_eq!(ids(&paged), vec!["a0", "a1", "a2", "a3", "a4", "a5"]);
    assert!(paged.windows(2).all(|w| w[0].cursor < w[1].cursor));

    assert!(
        s.ack(&agency(H41), &doc_id("a5"), event("fetched"))
            .await
            .unwrap()
    );
    assert!(
        s.ack(&agency(H41), &doc_id("a0"), event("fetched"))
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&s.inbox(&agency(H41), None, 100).unwrap()),
        vec!["a3", "a2", "a1", "a4"]
    );
}

pub async fn one_message_reaches_every_inbox_and_outbox_of_its_delivery<S: Store>(
    open: &dyn Fn() -> S,
) {
    let s = open();
    let delivery = Delivery {
        inboxes: vec![agency(H41), agency(G22)],
        outboxes: vec![(hop("national"), vec![agency(H20), agency("000.00.00.H13")])],
        ..Default::default()
    };
    accept_to(&s, "multi", 2, delivery).await;
    assert_eq!(
        ids(&s.inbox(&agency(H41), None, 10).unwrap()),
        vec!["multi"]
    );
    assert_eq!(
        ids(&s.inbox(&agency(G22), None, 10).unwrap()),
        vec!["multi"]
    );
    let out = s.outbox(&hop("national"), 10).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message.id.as_str(), "multi");
    assert_eq!(out[0].priority, 2);
    assert_eq!(
        out[0].recipients,
        vec![agency(H20), agency("000.00.00.H13")]
    );
}

pub async fn ack_removes_the_entry_and_appends_the_event<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    accept_to(&s, "d1", 0, to_inboxes(&[H41, G22])).await;
    accept_to(&s, "d2", 0, to_inboxes(&[H41])).await;
    let id = doc_id("d1");

    assert!(
        s.ack(&agency(H41), &id, event("fetched by H41"))
            .await
            .unwrap()
    );
    assert_eq!(ids(&s.inbox(&agency(H41), None, 10).unwrap()), vec!["d2"]);
    // Still in the other recipient's inbox.
    assert_eq!(ids(&s.inbox(&agency(G22), None, 10).unwrap()), vec!["d1"]);
    assert_eq!(
        s.events(&id).unwrap(),
        vec![event("d1:accepted"), event("fetched by H41")]
    );

    assert!(!s.ack(&agency(H41), &id, event("again")).await.unwrap());
    assert!(!s.ack(&agency(H20), &id, event("not mine")).await.unwrap());
    assert!(
        !s.ack(&agency(H41), &doc_id("unknown"), event("?"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.events(&id).unwrap().len(),
        2,
        "a failed ack writes no event"
    );

    // Acked ids stay in the dedup index.
    let again = s
        .accept(
            envelope("d1", 0, "d1"),
            to_inboxes(&[H41]),
            receipt("new"),
            vec![event("new")],
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        AcceptOutcome::Duplicate {
            receipt: receipt("d1")
        }
    );
    assert_eq!(ids(&s.inbox(&agency(H41), None, 10).unwrap()), vec!["d2"]);
}

pub async fn concurrent_acks_of_one_entry_remove_it_once<S: Store>(open: &dyn Fn() -> S) {
    let s = Arc::new(open());
    accept_to(&*s, "d1", 0, to_inboxes(&[H41])).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.ack(&agency(H41), &doc_id("d1"), event(&format!("ack {i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut removed = 0;
    for t in tasks {
        removed += usize::from(t.await.unwrap());
    }
    assert_eq!(removed, 1);
    assert_eq!(
        s.events(&doc_id("d1")).unwrap().len(),
        2,
        "accepted + one ack"
    );
    assert!(s.inbox(&agency(H41), None, 10).unwrap().is_empty());
}

pub async fn events_are_returned_in_append_order<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let first = vec![
        event("accepted"),
        event("delivered to H41"),
        event("delivered to G22"),
    ];
    let outcome = s
        .accept(
            envelope("d1", 0, "d1"),
            to_inboxes(&[H41, G22]),
            receipt("d1"),
            first.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AcceptOutcome::Accepted {
            receipt: receipt("d1")
        }
    );
    accept_to(&s, "d2", 0, Delivery::default()).await;
    let id = doc_id("d1");
    let mut expected = first;
    for i in 0..12 {
        let e = event(&format!("hop {i}"));
        s.append_event(&id, e.clone()).await.unwrap();
        expected.push(e);
        if i % 3 == 0 {
            s.append_event(&doc_id("d2"), event(&format!("other {i}")))
                .await
                .unwrap();
        }
    }
    assert_eq!(s.events(&id).unwrap(), expected);
    assert_eq!(s.events(&doc_id("d2")).unwrap().len(), 5);

    // Several logs in one write, each in its order.
    s.append_event_logs(vec![
        (id.clone(), vec![event("x1"), event("x2")]),
        (doc_id("d2"), vec![event("y1")]),
    ])
    .await
    .unwrap();
    expected.extend([event("x1"), event("x2")]);
    assert_eq!(s.events(&id).unwrap(), expected);

    // A re-sent event, alone or next to new ones, is logged once; also within one call.
    s.append_event_logs(vec![(
        id.clone(),
        vec![event("x2"), event("x3"), event("x3"), event("hop 0")],
    )])
    .await
    .unwrap();
    expected.push(event("x3"));
    assert_eq!(s.events(&id).unwrap(), expected);
    // Also when the same event comes twice in one group of concurrent writes.
    let (one, two) = tokio::join!(
        s.append_event(&id, event("x4")),
        s.append_event(&id, event("x4"))
    );
    one.unwrap();
    two.unwrap();
    expected.push(event("x4"));
    assert_eq!(s.events(&id).unwrap(), expected);
    assert_eq!(s.events(&doc_id("d2")).unwrap().last(), Some(&event("y1")));
}

pub async fn outbox_is_in_priority_then_insertion_order<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    for (id, priority) in [("a", 0), ("b", 3), ("c", 1), ("d", 3), ("e", 0), ("f", 2)] {
        accept_to(&s, id, priority, to_outbox("H41", &[H41])).await;
    }
    accept_to(&s, "elsewhere", 3, to_outbox("G22", &[G22])).await;

    let out = s.outbox(&hop("H41"), 100).unwrap();
    let order: Vec<_> = out.iter().map(|e| e.message.id.as_str()).collect();
    assert_eq!(order, vec!["b", "d", "f", "c", "a", "e"]);
    assert!(out.iter().all(|e| e.recipients == vec![agency(H41)]));
    let first_two: Vec<_> = s.outbox(&hop("H41"), 2).unwrap();
    assert_eq!(first_two, out[..2].to_vec());
    assert!(s.outbox(&hop("H20"), 100).unwrap().is_empty());

    s.outbox_remove(&hop("H41"), vec![handed(&out[1], "to H41")])
        .await
        .unwrap();
    let order: Vec<_> = s
        .outbox(&hop("H41"), 100)
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.to_string())
        .collect();
    assert_eq!(order, vec!["b", "f", "c", "a", "e"]);
    assert_eq!(
        s.events(&out[1].message).unwrap(),
        vec![event("d:accepted"), event("to H41")]
    );
    // Removing again (a retry) is harmless.
    s.outbox_remove(&hop("H41"), vec![handed(&out[1], "to H41")])
        .await
        .unwrap();
    assert_eq!(s.outbox(&hop("H41"), 100).unwrap().len(), 5);
    assert_eq!(
        s.events(&out[1].message).unwrap().len(),
        2,
        "no event twice"
    );
    assert_eq!(s.outbox(&hop("G22"), 100).unwrap().len(), 1);
}

pub async fn outbox_lane_reads_one_priority_after_a_cursor<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    for (id, priority) in [("a", 0), ("b", 3), ("c", 0), ("d", 3), ("e", 0)] {
        accept_to(&s, id, priority, to_outbox("H41", &[H41])).await;
    }
    accept_to(&s, "elsewhere", 0, to_outbox("G22", &[G22])).await;
    let ids = |v: Vec<lienthong_store::OutboxEntry>| -> Vec<String> {
        v.into_iter().map(|e| e.message.id.to_string()).collect()
    };
    let routine = s.outbox_lane(&hop("H41"), 0, None, 100).unwrap();
    assert_eq!(ids(routine.clone()), vec!["a", "c", "e"]);
    assert_eq!(
        ids(s.outbox_lane(&hop("H41"), 3, None, 100).unwrap()),
        vec!["b", "d"]
    );
    assert!(s.outbox_lane(&hop("H41"), 2, None, 100).unwrap().is_empty());
    // After a cursor: only what follows it, within the lane.
    let after_a = s
        .outbox_lane(&hop("H41"), 0, Some(&routine[0].key), 100)
        .unwrap();
    assert_eq!(ids(after_a), vec!["c", "e"]);
    assert!(
        s.outbox_lane(&hop("H41"), 0, Some(&routine[2].key), 100)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(s.outbox_lane(&hop("H41"), 0, None, 1).unwrap()),
        vec!["a"]
    );
    // A new entry of the lane comes after every cursor already handed out.
    accept_to(&s, "f", 0, to_outbox("H41", &[H41])).await;
    let after_e = s
        .outbox_lane(&hop("H41"), 0, Some(&routine[2].key), 100)
        .unwrap();
    assert_eq!(ids(after_e), vec!["f"]);
}

pub async fn queue_depths_count_inboxes_and_outboxes<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    assert_eq!(nonzero(s.queue_depths().unwrap()), QueueDepths::default());
    for i in 0..3 {
        let delivery = Delivery {
            inboxes: vec![agency(H41)],
            outboxes: vec![(hop("national"), vec![agency(G22)])],
            ..Default::default()
        };
        accept_to(&s, &format!("x{i}"), 1, delivery).await;
    }
    accept_to(&s, "y", 1, to_inboxes(&[G22])).await;
    accept_to(&s, "z", 1, to_outbox("H20-C1", &[H20])).await;
    assert_eq!(
        nonzero(s.queue_depths().unwrap()),
        QueueDepths {
            inboxes: vec![(agency(G22), 1), (agency(H41), 3)],
            outboxes: vec![(hop("H20-C1"), 1), (hop("national"), 3)],
            dead_letters: 0,
        }
    );

    assert!(
        s.ack(&agency(G22), &doc_id("y"), event("acked"))
            .await
            .unwrap()
    );
    assert!(
        s.ack(&agency(H41), &doc_id("x0"), event("acked"))
            .await
            .unwrap()
    );
    let key = s.outbox(&hop("H20-C1"), 1).unwrap()[0].key.clone();
    s.outbox_remove(
        &hop("H20-C1"),
        vec![Handed {
            key: key.clone(),
            message: doc_id("z"),
            events: vec![],
        }],
    )
    .await
    .unwrap();
    s.outbox_remove(
        &hop("H20-C1"),
        vec![Handed {
            key: key.clone(),
            message: doc_id("z"),
            events: vec![],
        }],
    )
    .await
    .unwrap();
    assert_eq!(
        nonzero(s.queue_depths().unwrap()),
        QueueDepths {
            inboxes: vec![(agency(H41), 2)],
            outboxes: vec![(hop("national"), 3)],
            dead_letters: 0,
        }
    );
}

pub async fn dead_letters_keep_their_reason_hop_and_order<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let mut delivery = to_outbox("national", &[H20]);
    delivery.dead = vec![
        (agency(G22), "not in the directory".into()),
        (agency(H41), "not in the directory".into()),
    ];
    accept_to(&s, "a", 0, delivery).await;
    accept_to(&s, "b", 3, to_outbox("national", &[G22])).await;

    let outbox = s.outbox(&hop("national"), 10).unwrap();
    let b = outbox
        .iter()
        .find(|e| e.message.id.as_str() == "b")
        .unwrap()
        .clone();
    assert!(
        s.dead_letter(
            &hop("national"),
            &b,
            "refused: bad signature",
            vec![event("dead")]
        )
        .await
        .unwrap()
    );
    // The entry is gone: a second move (a retry after a crash) writes nothing.
    assert!(
        !s.dead_letter(&hop("national"), &b, "refused again", vec![event("dead2")])
            .await
            .unwrap()
    );
    assert_eq!(ids_of_outbox(&s, "national"), vec!["a"]);

    let letters = s.dead_letters(None, 10).unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].message.id.as_str(), "a");
    assert_eq!(letters[0].recipients, vec![agency(G22), agency(H41)]);
    assert_eq!(letters[0].reason, "not in the directory");
    assert_eq!(letters[0].hop, None);
    assert_eq!(letters[1].message.id.as_str(), "b");
    assert_eq!(letters[1].priority, 3);
    assert_eq!(letters[1].recipients, vec![agency(G22)]);
    assert_eq!(letters[1].hop, Some(hop("national")));
    assert_eq!(letters[1].reason, "refused: bad signature");
    assert!(letters[1].at > 0);
    // Paging resumes after a key.
    let rest = s.dead_letters(Some(&letters[0].key), 10).unwrap();
    assert_eq!(rest, letters[1..].to_vec());
    assert!(s.dead_letters(None, 1).unwrap().len() == 1);

    let events = s.events(&doc_id("b")).unwrap();
    assert_eq!(events.last().unwrap(), &event("dead"));
    assert_eq!(events.iter().filter(|e| **e == event("dead2")).count(), 0);
    assert_eq!(s.queue_depths().unwrap().dead_letters, 2);
}

pub async fn requeue_and_drop_of_dead_letters_are_logged<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    accept_to(&s, "a", 2, to_outbox("national", &[H20, G22])).await;
    accept_to(&s, "b", 0, to_outbox("national", &[G22])).await;
    for e in s.outbox(&hop("national"), 10).unwrap() {
        assert!(
            s.dead_letter(&hop("national"), &e, "link expired", vec![event("dead")])
                .await
                .unwrap()
        );
    }
    let letters = s.dead_letters(None, 10).unwrap();
    assert_eq!(letters.len(), 2);

    // Requeue "a" split over two hops, as a re-routed retry would.
    let outboxes = vec![
        (hop("H20-C1"), vec![agency(H20)]),
        (hop("national"), vec![agency(G22)]),
    ];
    assert!(
        s.requeue_dead_letter(
            &letters[0].key,
            outboxes.clone(),
            event("retried"),
            event("op: retry a")
        )
        .await
        .unwrap()
    );
    assert!(
        !s.requeue_dead_letter(
            &letters[0].key,
            outboxes,
            event("retried"),
            event("op: again")
        )
        .await
        .unwrap(),
        "a requeued dead letter is gone"
    );
    let lane = s.outbox_lane(&hop("H20-C1"), 2, None, 10).unwrap();
    assert_eq!(lane.len(), 1);
    assert_eq!(lane[0].message.id.as_str(), "a");
    assert_eq!(lane[0].recipients, vec![agency(H20)]);
    assert_eq!(ids_of_outbox(&s, "national"), vec!["a"]);

    assert!(
        s.drop_dead_letter(&letters[1].key, event("dropped"), event("op: drop b"))
            .await
            .unwrap()
    );
    assert!(
        !s.drop_dead_letter(&letters[1].key, event("dropped"), event("op: drop b again"))
            .await
            .unwrap()
    );
    assert!(s.dead_letters(None, 10).unwrap().is_empty());
    assert_eq!(
        s.events(&doc_id("a")).unwrap().last().unwrap(),
        &event("retried")
    );
    assert_eq!(
        s.events(&doc_id("b")).unwrap().last().unwrap(),
        &event("dropped")
    );

    s.log_operator_action(event("op: note")).await.unwrap();
    let log = s.operator_log(0, 10).unwrap();
    let actions: Vec<_> = log.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(
        actions,
        vec![event("op: retry a"), event("op: drop b"), event("op: note")]
    );
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(s.operator_log(log[0].0, 10).unwrap(), log[1..].to_vec());
}

pub async fn blob_roundtrips_and_rewrite_is_a_no_op<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let data = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let digest = sha256(&data);
    s.put_blob(digest, data.clone()).await.unwrap();
    s.put_blob(digest, data.clone()).await.unwrap();
    assert_eq!(s.blob(digest).await.unwrap(), data);
    let empty = Bytes::new();
    s.put_blob(sha256(&empty), empty.clone()).await.unwrap();
    assert_eq!(s.blob(sha256(&empty)).await.unwrap(), empty);
}

pub async fn blob_with_wrong_digest_is_rejected<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let claimed = sha256(b"what the sender announced");
    let err = s
        .put_blob(claimed, Bytes::from_static(b"what arrived"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected } if *expected == hex::encode(claimed)),
        "{err:?}"
    );
    let err = s.blob(claimed).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

pub async fn missing_blob_is_not_found<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let err = s.blob(sha256(b"never stored")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

pub async fn chunked_blob_resumes_across_reopen_and_appears_only_when_complete<S: Store>(
    open: &dyn Fn() -> S,
) {
    let data = Bytes::from((0..300_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>());
    let digest = sha256(&data);
    let size = data.len() as u64;
    {
        let s = open();
        assert_eq!(
            s.partial_blob_len(digest, &BlobWriter::Relay)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.write_blob_chunk(digest, &BlobWriter::Relay, 0, data.slice(..100_000))
                .await
                .unwrap(),
            100_000
        );
        // A chunk beyond what is held is refused; nothing is visible yet.
        let err = s
            .write_blob_chunk(digest, &BlobWriter::Relay, 200_000, data.slice(200_000..))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Gap { held: 100_000, .. }), "{err:?}");
        assert_eq!(s.blob_len(digest).await.unwrap(), None);
        let err = s
            .complete_blob(digest, &BlobWriter::Relay, size)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Incomplete { held: 100_000, .. }),
            "{err:?}"
        );
    }
    // The durable offset survives a reopen; a chunk re-sent from an earlier offset is fine.
    let s = open();
    assert_eq!(
        s.partial_blob_len(digest, &BlobWriter::Relay)
            .await
            .unwrap(),
        100_000
    );
    s.write_blob_chunk(
        digest,
        &BlobWriter::Relay,
        50_000,
        data.slice(50_000..250_000),
    )
    .await
    .unwrap();
    assert_eq!(
        s.write_blob_chunk(digest, &BlobWriter::Relay, 250_000, data.slice(250_000..))
            .await
            .unwrap(),
        size
    );
    s.complete_blob(digest, &BlobWriter::Relay, size)
        .await
        .unwrap();
    assert_eq!(s.blob_len(digest).await.unwrap(), Some(size));
    assert_eq!(
        s.partial_blob_len(digest, &BlobWriter::Relay)
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.blob(digest).await.unwrap(), data);
    assert_eq!(
        s.read_blob(digest, 299_990, 1 << 20).await.unwrap(),
        data.slice(299_990..)
    );
    assert_eq!(
        s.read_blob(digest, 10, 5).await.unwrap(),
        data.slice(10..15)
    );
    assert!(s.read_blob(digest, size, 10).await.unwrap().is_empty());
    // Completing again is a no-op.
    s.complete_blob(digest, &BlobWriter::Relay, size)
        .await
        .unwrap();
}

pub async fn chunked_blob_with_wrong_bytes_is_dropped<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let claimed = sha256(b"the announced attachment");
    s.write_blob_chunk(
        claimed,
        &BlobWriter::Relay,
        0,
        Bytes::from_static(b"other attachment bytes!!"),
    )
    .await
    .unwrap();
    let err = s
        .complete_blob(claimed, &BlobWriter::Relay, 24)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert_eq!(s.blob_len(claimed).await.unwrap(), None);
    // The bad bytes are gone: the upload starts over.
    assert_eq!(
        s.partial_blob_len(claimed, &BlobWriter::Relay)
            .await
            .unwrap(),
        0
    );
    let err = s.read_blob(claimed, 0, 10).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    // A partial file with more bytes than the blob has is dropped as damaged.
    let data = Bytes::from_static(b"exactly these bytes");
    let digest = sha256(&data);
    s.write_blob_chunk(digest, &BlobWriter::Relay, 0, data.clone())
        .await
        .unwrap();
    s.write_blob_chunk(
        digest,
        &BlobWriter::Relay,
        data.len() as u64,
        Bytes::from_static(b"+more"),
    )
    .await
    .unwrap();
    let err = s
        .complete_blob(digest, &BlobWriter::Relay, data.len() as u64)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert_eq!(
        s.partial_blob_len(digest, &BlobWriter::Relay)
            .await
            .unwrap(),
        0
    );
    // A chunk past offset 0 does not start a partial file.
    let err = s
        .write_blob_chunk(digest, &BlobWriter::Relay, 5, Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gap { held: 0, .. }), "{err:?}");
}

/// A partial file that holds every byte but was never completed (a crash cut the
/// completion short) takes one empty chunk at its end, then completes.
/// An agency proves it holds an attachment by streaming all of it: its upload has a
/// partial file of its own (no resuming from another writer's bytes), and completing an
/// upload of a blob stored already still checks the agency's bytes.
pub async fn an_agency_upload_is_its_own_and_proves_possession<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let data = Bytes::from(vec![7u8; 300_000]);
    let digest = sha256(&data);
    let size = data.len() as u64;
    let victim = BlobWriter::Agency(agency(H41));
    let thief = BlobWriter::Agency(agency(G22));
    s.write_blob_chunk(digest, &victim, 0, data.slice(..100_000))
        .await
        .unwrap();
    assert_eq!(s.partial_blob_len(digest, &victim).await.unwrap(), 100_000);
    assert_eq!(s.partial_blob_len(digest, &thief).await.unwrap(), 0);
    assert_eq!(
        s.partial_blob_len(digest, &BlobWriter::Relay)
            .await
            .unwrap(),
        0
    );
    // No resuming from the victim's offset.
    let gap = s
        .write_blob_chunk(digest, &thief, 100_000, data.slice(100_000..))
        .await
        .unwrap_err();
    assert!(matches!(gap, Error::Gap { held: 0, .. }), "{gap:?}");
    s.write_blob_chunk(digest, &victim, 100_000, data.slice(100_000..))
        .await
        .unwrap();
    s.complete_blob(digest, &victim, size).await.unwrap();
    assert_eq!(s.blob_len(digest).await.unwrap(), Some(size));
    // The blob is stored, but the thief holds no bytes of it: nothing to complete.
    let none = s.complete_blob(digest, &thief, size).await.unwrap_err();
    assert!(matches!(none, Error::NotFound(_)), "{none:?}");
    // Other bytes of the right length do not pass either, and are dropped.
    s.write_blob_chunk(digest, &thief, 0, Bytes::from(vec![8u8; 300_000]))
        .await
        .unwrap();
    let wrong = s.complete_blob(digest, &thief, size).await.unwrap_err();
    assert!(matches!(wrong, Error::DigestMismatch { .. }), "{wrong:?}");
    assert_eq!(s.partial_blob_len(digest, &thief).await.unwrap(), 0);
    // The real bytes do, and leave no partial file behind.
    s.write_blob_chunk(digest, &thief, 0, data.clone())
        .await
        .unwrap();
    assert_eq!(s.partial_blobs(&thief).await.unwrap(), vec![(digest, size)]);
    s.complete_blob(digest, &thief, size).await.unwrap();
    assert!(s.partial_blobs(&thief).await.unwrap().is_empty());
    assert_eq!(s.blob(digest).await.unwrap(), data);
}

pub async fn a_whole_partial_blob_completes_after_an_empty_last_chunk<S: Store>(
    open: &dyn Fn() -> S,
) {
    let s = open();
    let data = Bytes::from_static(b"every byte is here already");
    let digest = sha256(&data);
    let size = data.len() as u64;
    assert_eq!(
        s.write_blob_chunk(digest, &BlobWriter::Relay, 0, data.clone())
            .await
            .unwrap(),
        size
    );
    assert_eq!(
        s.write_blob_chunk(digest, &BlobWriter::Relay, size, Bytes::new())
            .await
            .unwrap(),
        size
    );
    s.complete_blob(digest, &BlobWriter::Relay, size)
        .await
        .unwrap();
    assert_eq!(s.blob_len(digest).await.unwrap(), Some(size));
    assert_eq!(s.read_blob(digest, 0, 100).await.unwrap(), data);
}

pub async fn everything_survives_reopen_and_cursors_keep_increasing<S: Store>(
    open: &dyn Fn() -> S,
) {
    let blob = Bytes::from_static(b"%PDF-1.7 attachment");
    let (inbox_before, outbox_before, depths_before) = {
        let s = open();
        for i in 0..4 {
            let delivery = Delivery {
                inboxes: vec![agency(H41)],
                outboxes: vec![(hop("national"), vec![agency(G22)])],
                ..Default::default()
            };
            accept_to(&s, &format!("d{i}"), i as u8, delivery).await;
        }
        s.append_event(&doc_id("d1"), event("forwarded"))
            .await
            .unwrap();
        assert!(
            s.ack(&agency(H41), &doc_id("d2"), event("fetched"))
                .await
                .unwrap()
        );
        s.put_blob(sha256(&blob), blob.clone()).await.unwrap();
        (
            s.inbox(&agency(H41), None, 100).unwrap(),
            s.outbox(&hop("national"), 100).unwrap(),
            s.queue_depths().unwrap(),
        )
    };

    let s = open();
    assert_eq!(s.inbox(&agency(H41), None, 100).unwrap(), inbox_before);
    assert_eq!(ids(&inbox_before), vec!["d3", "d1", "d0"]);
    assert_eq!(s.outbox(&hop("national"), 100).unwrap(), outbox_before);
    assert_eq!(s.queue_depths().unwrap(), depths_before);
    let stored = s.message(&doc_id("d3")).unwrap().unwrap();
    assert_eq!(stored.envelope, envelope("d3", 3, "d3"));
    assert_eq!(stored.receipt, receipt("d3"));
    assert_eq!(
        s.events(&doc_id("d1")).unwrap(),
        vec![event("d1:accepted"), event("forwarded")]
    );
    assert_eq!(
        s.events(&doc_id("d2")).unwrap(),
        vec![event("d2:accepted"), event("fetched")]
    );
    assert_eq!(s.blob(sha256(&blob)).await.unwrap(), blob);

    // Dedup survives, and new cursors come after every cursor handed out before.
    let dup = s
        .accept(
            envelope("d0", 0, "d0"),
            to_inboxes(&[H41]),
            receipt("late"),
            vec![event("late")],
        )
        .await
        .unwrap();
    assert_eq!(
        dup,
        AcceptOutcome::Duplicate {
            receipt: receipt("d0")
        }
    );
    accept_to(&s, "after-reopen", 0, to_inboxes(&[H41])).await;
    let last_before = inbox_before.iter().map(|e| e.cursor).max().unwrap();
    let new = s.inbox(&agency(H41), Some(last_before), 100).unwrap();
    assert_eq!(ids(&new), vec!["after-reopen"]);
    assert!(new[0].cursor > last_before);
    accept_to(&s, "after-reopen-2", 0, to_outbox("national", &[G22])).await;
    let order: Vec<_> = s
        .outbox(&hop("national"), 100)
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.to_string())
        .collect();
    // Same priority (0): the entry added after reopen comes after the one added before.
    assert_eq!(order, vec!["d3", "d2", "d1", "d0", "after-reopen-2"]);
}

// ---------------------------------------------------------------------------------------
// SledStore

fn sled_opener(dir: &tempfile::TempDir) -> impl Fn() -> SledStore + '_ {
    move || SledStore::open(dir.path()).unwrap()
}

macro_rules! sled_store_conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::TempDir::new().unwrap();
                super::$case(&sled_opener(&dir)).await;
            }
        )*
    };
}

mod sled_store {
    use super::sled_opener;
    use lienthong_store::Store;
    sled_store_conformance!(
        accept_then_duplicate_returns_original_receipt,
        accept_of_same_id_with_other_content_is_conflict,
        message_of_unknown_id_is_none,
        one_id_from_two_senders_is_two_messages,
        concurrent_accepts_of_one_id_accept_exactly_once,
        inbox_is_in_cursor_order_and_resumes_after_a_cursor,
        inbox_serves_urgent_lanes_first,
        one_message_reaches_every_inbox_and_outbox_of_its_delivery,
        ack_removes_the_entry_and_appends_the_event,
        concurrent_acks_of_one_entry_remove_it_once,
        events_are_returned_in_append_order,
        outbox_is_in_priority_then_insertion_order,
        outbox_lane_reads_one_priority_after_a_cursor,
        queue_depths_count_inboxes_and_outboxes,
        blob_roundtrips_and_rewrite_is_a_no_op,
        blob_with_wrong_digest_is_rejected,
        missing_blob_is_not_found,
        chunked_blob_resumes_across_reopen_and_appears_only_when_complete,
        chunked_blob_with_wrong_bytes_is_dropped,
        a_whole_partial_blob_completes_after_an_empty_last_chunk,
        an_agency_upload_is_its_own_and_proves_possession,
        everything_survives_reopen_and_cursors_keep_increasing,
        dead_letters_keep_their_reason_hop_and_order,
        requeue_and_drop_of_dead_letters_are_logged,
    );

    /// Implementation-specific: needs the blob's file to damage it.
    #[tokio::test]
    async fn blob_overwritten_on_disk_is_reported_corrupt() {
        let dir = tempfile::TempDir::new().unwrap();
        let s = sled_opener(&dir)();
        let data = bytes::Bytes::from_static(b"original attachment bytes");
        let digest = super::sha256(&data);
        s.put_blob(digest, data.clone()).await.unwrap();
        std::fs::write(s.blob_path(&digest), b"tampered attachment bytes").unwrap();
        let err = s.blob(digest).await.unwrap_err();
        assert!(matches!(err, lienthong_store::Error::Corrupt(_)), "{err:?}");
    }

    /// Every file under `dir` with a mode other than 0600, every directory (`dir`
    /// included) with one other than 0700.
    fn not_private(dir: &std::path::Path) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut found = Vec::new();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
        if mode != 0o700 {
            found.push(format!("{} {mode:o}", dir.display()));
        }
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                found.extend(not_private(&entry.path()));
            } else if meta.permissions().mode() & 0o7777 != 0o600 {
                found.push(format!(
                    "{} {:o}",
                    entry.path().display(),
                    meta.permissions().mode() & 0o7777
                ));
            }
        }
        found
    }

    /// The store holds whole documents and attachments: no file of it may be readable by
    /// another account, whatever the umask (blob files were created 0644).
    #[tokio::test]
    async fn every_file_of_the_store_is_private_to_its_owner() {
        let parent = tempfile::TempDir::new().unwrap();
        let dir = parent.path().join("data");
        let s = lienthong_store::SledStore::open(&dir).unwrap();
        super::accept_to(&s, "d1", 0, super::to_inboxes(&[super::H41])).await;
        let data = bytes::Bytes::from_static(b"attachment bytes");
        s.put_blob(super::sha256(&data), data).await.unwrap();
        let chunked = bytes::Bytes::from_static(b"chunked attachment");
        let digest = super::sha256(&chunked);
        s.write_blob_chunk(
            digest,
            &lienthong_store::BlobWriter::Relay,
            0,
            chunked.slice(..7),
        )
        .await
        .unwrap();
        let walked = dir.clone();
        let open = tokio::task::spawn_blocking(move || not_private(&walked))
            .await
            .unwrap();
        assert!(open.is_empty(), "not private while open: {open:#?}");
        s.write_blob_chunk(
            digest,
            &lienthong_store::BlobWriter::Relay,
            7,
            chunked.slice(7..),
        )
        .await
        .unwrap();
        s.complete_blob(
            digest,
            &lienthong_store::BlobWriter::Relay,
            chunked.len() as u64,
        )
        .await
        .unwrap();
        drop(s);
        drop(lienthong_store::SledStore::open(&dir).unwrap());
        let closed = not_private(&dir);
        assert!(
            closed.is_empty(),
            "not private after reopening: {closed:#?}"
        );
        // Files of every kind were looked at.
        let names: Vec<String> = walk_names(&dir);
        for expected in ["db/conf", "wal/00000000.log", "wal/synced", "blobs/"] {
            assert!(
                names.iter().any(|n| n.contains(expected)),
                "{expected} in {names:#?}"
            );
        }
    }

    fn walk_names(dir: &std::path::Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            names.push(path.display().to_string());
            if path.is_dir() {
                names.extend(walk_names(&path));
            }
        }
        names
    }

    #[tokio::test]
    async fn open_fails_clearly_when_the_store_is_already_open() {
        let dir = tempfile::TempDir::new().unwrap();
        let _first = sled_opener(&dir)();
        // The lock is a real file lock and the wait for it real time (`std::thread::sleep`,
        // not a tokio timer to pause): the test injects a short wait instead of
        // `open`'s 5 s default.
        let err = lienthong_store::SledStore::open_waiting(
            dir.path(),
            std::time::Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(
            matches!(err, lienthong_store::Error::Open { .. }),
            "{err:?}"
        );
    }

    /// A store written in another key layout (here: an older one, without the format
    /// mark) is refused with a message that says what to do, never misread.
    #[tokio::test]
    async fn a_store_of_another_format_is_refused_clearly() {
        let dir = tempfile::TempDir::new().unwrap();
        drop(sled_opener(&dir)());
        {
            // No background flusher: its thread would hold the lock past the drop.
            let db = sled::Config::new()
                .path(dir.path().join("db"))
                .flush_every_ms(None)
                .open()
                .unwrap();
            let tree = db.open_tree("lienthong").unwrap();
            tree.remove(b"!").unwrap();
            tree.insert(
                b"i\x0d000.00.00.H41\x00\x00\x00\x00\x00\x00\x00\x01",
                &b"old"[..],
            )
            .unwrap();
            db.flush().unwrap();
        }
        let err = lienthong_store::SledStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, lienthong_store::Error::Format { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("new data directory"), "{message}");
        // A fresh store opens again and again.
        let fresh = tempfile::TempDir::new().unwrap();
        drop(sled_opener(&fresh)());
        drop(sled_opener(&fresh)());
    }
}
