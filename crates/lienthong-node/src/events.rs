//! Transport events: recorded where they happen, and carried back to the home node of the
//! message's sender, where `track` shows them.
//!
//! An event about a message whose sender is homed here joins the message's log at once.
//! Otherwise it is queued, as a pack, in the outbox towards the next hop on the way to the
//! sender's home: the link packs the events waiting there into one hand-off item, so a
//! burst of deliveries costs a few writes per hop on the way back, not one per document.
//! A node that receives a pack keeps the events whose sender is homed here and queues the
//! rest on. A delivery's event carries the message's hop trace, from which the sender's
//! home node logs one "forwarded" event per hop.
//!
//! Events are not signed yet, so a node takes from a neighbour only what the nodes behind
//! that link can have seen ([`check_source`]).

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use lienthong_core::directory::DirectoryIndex;
use lienthong_core::sign::sha256;
use lienthong_core::{
    AgencyCode, DocumentId, MessageKey, NodeId, RelayedEvent, TraceEntry, TransportEvent,
    TransportEventKind, now_millis,
};
use lienthong_proto::stored;
use lienthong_store::{Delivery, Envelope, MessageKind};

use crate::Error;
use crate::context::Context;

/// Records `event` about message `key`: appended here if its sender is homed here (or
/// unknown), else queued towards the sender's home node.
pub async fn record(ctx: &Context, key: &MessageKey, event: TransportEvent) -> Result<(), Error> {
    let d = ctx.directory.current();
    match &key.sender {
        Some(sender) if ctx.towards_sender(&d, sender).is_some() => {
            forward(ctx, &d, key, sender, event, &[]).await
        }
        _ => {
            ctx.store
                .append_event(key, stored::encode_event(&event).into())
                .await?;
            Ok(())
        }
    }
}

/// Sends `event`, already recorded here, on to the home node of the sender of message
/// `key` if that is another node.
pub async fn tell_sender_home(
    ctx: &Context,
    key: &MessageKey,
    event: TransportEvent,
) -> Result<(), Error> {
    let d = ctx.directory.current();
    match &key.sender {
        Some(sender) if ctx.towards_sender(&d, sender).is_some() => {
            forward(ctx, &d, key, sender, event, &[]).await
        }
        _ => Ok(()),
    }
}

/// Queues `event` (with the message's hop `trace` for a delivery) towards the home node
/// of `sender`, who sent message `key`; keeps it here when there is no way there.
pub async fn forward(
    ctx: &Context,
    d: &DirectoryIndex,
    key: &MessageKey,
    sender: &AgencyCode,
    event: TransportEvent,
    trace: &[TraceEntry],
) -> Result<(), Error> {
    let relayed = RelayedEvent {
        key: MessageKey::sent_by(sender, &key.id),
        event,
        trace: trace.to_vec(),
    };
    match ctx.towards_sender(d, sender) {
        Some(hop) => queue(ctx, hop, vec![relayed]).await,
        // Nowhere to send it: keep it here rather than lose it.
        None => keep(ctx, vec![relayed]).await,
    }
}

/// Stores `events` as one message (a pack, keyed by its digest) in the outbox towards
/// `hop`.
async fn queue(ctx: &Context, hop: NodeId, events: Vec<RelayedEvent>) -> Result<(), Error> {
    let senders = events
        .iter()
        .map(|e| e.sender().cloned())
        .collect::<Result<BTreeSet<_>, _>>()?;
    let encoded = stored::encode_event_pack(&events);
    let digest = sha256(&encoded);
    let pack_id = DocumentId::parse(&format!("ev-{}", hex::encode(&digest[..16])))?;
    let envelope = Envelope {
        key: MessageKey::node_own(pack_id),
        kind: MessageKind::Event,
        priority: 0,
        content_digest: digest,
        encoded: encoded.into(),
        received_at: now_millis(),
    };
    let delivery = Delivery {
        outboxes: vec![(hop.clone(), senders.into_iter().collect())],
        ..Delivery::default()
    };
    ctx.store
        .accept(envelope, delivery, Bytes::new(), Vec::new())
        .await?;
    ctx.signals.hops(&[hop]);
    Ok(())
}

/// Appends `events` to the logs of their messages here: at the sender's home node, or
/// wherever an event can go no further. A delivery's trace adds one "forwarded" event per
/// hop. An event already in the log (a re-sent pack) is not added again.
async fn keep(ctx: &Context, events: Vec<RelayedEvent>) -> Result<(), Error> {
    // A pack holds many documents' events: group them by document in one pass.
    let mut by_message: Vec<(MessageKey, Vec<Bytes>)> = Vec::new();
    let mut position: HashMap<MessageKey, usize> = HashMap::new();
    for e in events {
        let mut encoded: Vec<Bytes> = e
            .trace
            .windows(2)
            .map(|pair| {
                stored::encode_event(&TransportEvent {
                    kind: TransportEventKind::Forwarded,
                    at: pair[1].at,
                    node: pair[1].node.clone(),
                    agency: e.event.agency.clone(),
                    detail: format!("received from {}", pair[0].node),
                })
                .into()
            })
            .collect();
        encoded.push(stored::encode_event(&e.event).into());
        match position.get(&e.key) {
            Some(&at) => by_message[at].1.extend(encoded),
            None => {
                position.insert(e.key.clone(), by_message.len());
                by_message.push((e.key, encoded));
            }
        }
    }
    // The store leaves out events already logged (a pack re-sent after a broken link).
    if !by_message.is_empty() {
        ctx.store.append_event_logs(by_message).await?;
    }
    Ok(())
}

/// A pack of transport events handed over by neighbour `from`: those whose sender is
/// homed here join their logs; the others go on, one pack per next hop. One unusable
/// event (it does not decode, or `from` may not speak for it) is dropped, with a log
/// line, and costs the others of its pack nothing.
pub async fn admit_pack(
    ctx: &Context,
    pack: Vec<Result<RelayedEvent, Error>>,
    from: &NodeId,
) -> Result<(), Error> {
    let d = ctx.directory.current();
    let mut here = Vec::new();
    let mut onwards: Vec<(NodeId, Vec<RelayedEvent>)> = Vec::new();
    for event in pack {
        let checked = event.and_then(|e| {
            check_source(ctx, &d, from, &e)?;
            Ok(e)
        });
        let event = match checked {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(node = %ctx.id, %from, error = %e, "unusable transport event dropped");
                continue;
            }
        };
        let sender = event.sender()?.clone();
        match ctx.towards_sender(&d, &sender) {
            None => here.push(event),
            Some(hop) => match onwards.iter_mut().find(|(h, _)| *h == hop) {
                Some((_, events)) => events.push(event),
                None => onwards.push((hop, vec![event])),
            },
        }
    }
    for (hop, events) in onwards {
        queue(ctx, hop, events).await?;
    }
    keep(ctx, here).await
}

/// Whether neighbour `from` may speak for `event`: the event happened at a node behind
/// `from` (the recipient's home for a delivery, a fetch or an acknowledgement, which must
/// then be that agency's home, or a bridge for an agency outside the directory), its trace is a path through the tree ending there, and it
/// travels towards the sender's home node, which is not behind `from`. Lifecycle index
/// entries belong to the node that wrote them and never travel.
fn check_source(
    ctx: &Context,
    d: &DirectoryIndex,
    from: &NodeId,
    relayed: &RelayedEvent,
) -> Result<(), Error> {
    let refuse = |why: String| Error::ForgedEvent(format!("transport event from {from}: {why}"));
    let event = &relayed.event;
    if event.kind == TransportEventKind::Lifecycle {
        return Err(refuse(
            "a lifecycle index entry is not a transport event to relay".into(),
        ));
    }
    let at = &event.node;
    if d.next_hop_towards(&ctx.id, at).as_ref() != Some(from) {
        return Err(refuse(format!(
            "it happened at {at}, which is not behind {from}"
        )));
    }
    let at_recipient_home = matches!(
        event.kind,
        TransportEventKind::Delivered
            | TransportEventKind::Fetched
            | TransportEventKind::Acknowledged
            | TransportEventKind::StatusReceived
    );
    if at_recipient_home {
        let agency = event
            .agency
            .as_ref()
            .ok_or_else(|| refuse(format!("a {} event names no agency", event.kind.as_str())))?;
        // An agency outside the directory is reached on the national platform: the
        // bridge that sent it there speaks for its delivery.
        let home = d.home_of(agency);
        if home != Some(at) && !(home.is_none() && d.is_bridge(at)) {
            return Err(refuse(format!(
                "it says {agency} {} at {at}, which is not {agency}'s home",
                event.kind.as_str()
            )));
        }
    }
    if let Some(last) = relayed.trace.last()
        && &last.node != at
    {
        return Err(refuse(format!(
            "its trace ends at {}, not at {at}",
            last.node
        )));
    }
    if let Some(pair) = relayed
        .trace
        .windows(2)
        .find(|p| !d.is_neighbour(&p[0].node, &p[1].node))
    {
        return Err(refuse(format!(
            "its trace goes from {} to {}, which are not neighbours",
            pair[0].node, pair[1].node
        )));
    }
    let sender = relayed.sender()?;
    if let Some(home) = d.home_of(sender)
        && d.next_hop_towards(&ctx.id, home).as_ref() == Some(from)
    {
        return Err(refuse(format!(
            "it is about a message of {sender}, whose home {home} is behind {from}: \
             events travel towards the sender, not away from it"
        )));
    }
    Ok(())
}
