//! What happens to messages that cannot simply go on:
//!
//! - **expiry**: every document and status notice has a deadline (its own, or the time
//!   its origin node accepted it plus `delivery.default_expiry_secs`); past it, it is
//!   dead-lettered as
//!   expired, whether its link is up (checked before each hand-off by the link) or
//!   down (the outboxes are swept, [`sweep_expired`]);
//! - **dead letters**: messages that cannot go further to some recipients, with the
//!   reason, until an operator retries (re-routed over the current directory) or drops
//!   them ([`act`]). Each operator action is written to the operator log atomically with
//!   its effect, and the sender hears of every dead letter, retry and drop as a transport
//!   event.

use std::time::Duration;

use bytes::Bytes;
use lienthong_core::{DocumentId, NodeId, TransportEventKind, UnixMillis, now_millis};
use lienthong_pki::Identity;
use lienthong_proto::stored;
use lienthong_store::{DeadLetter, MessageKind, OutboxEntry, StoredMessage};

use crate::Error;
use crate::config::DeliveryConfig;
use crate::context::Context;
use crate::events;
use crate::link::health::LinkPhase;

/// When a stored message expires: its own deadline, or the default lifetime counted from
/// when the bus took it in (the origin node's trace entry). Not from the time the sender
/// wrote in it: an edXML message keeps the date its first system gave it, which may be
/// days or years old when a DMS hands it to lienthong. Transport events do not expire.
pub fn expires_at(
    message: &StoredMessage,
    config: &DeliveryConfig,
) -> Result<Option<UnixMillis>, Error> {
    let default =
        i64::try_from(config.default_expiry_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(match message.envelope.kind {
        MessageKind::Document => {
            let d = stored::decode_document(&message.envelope.encoded)?;
            let accepted = d.trace.first().map_or(d.created_at, |t| t.at);
            Some(d.expires_at.unwrap_or(accepted.saturating_add(default)))
        }
        MessageKind::Status => {
            let n = stored::decode_status(&message.envelope.encoded)?;
            let accepted = n.trace.first().map_or(n.at, |t| t.at);
            Some(accepted.saturating_add(default))
        }
        MessageKind::Event => None,
    })
}

/// Dead-letters every message in the outboxes of links that are not up whose deadline
/// has passed; a link that is up checks each message before handing it off.
pub async fn sweep_expired(ctx: &Context) -> Result<usize, Error> {
    const PAGE: usize = 512;
    let now = now_millis();
    let mut expired = 0;
    for hop in ctx.neighbours() {
        if ctx.links.get(&hop).phase == LinkPhase::Up {
            continue;
        }
        for priority in 0..=3u8 {
            let mut after: Option<Bytes> = None;
            loop {
                let page = ctx
                    .store
                    .outbox_lane(&hop, priority, after.as_deref(), PAGE)?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                for entry in &page {
                    let Some(message) = ctx.store.message(&entry.message)? else {
                        continue;
                    };
                    // A copy that does not decode is left to the link, which quarantines it.
                    if let Ok(Some(deadline)) = expires_at(&message, &ctx.delivery)
                        && deadline <= now
                        && dead_letter(ctx, &hop, entry, Undeliverable::Expired(deadline)).await?
                    {
                        expired += 1;
                    }
                }
                if page.len() < PAGE {
                    break;
                }
            }
        }
    }
    Ok(expired)
}

/// Why a message leaves an outbox without being handed off.
#[derive(Debug)]
pub enum Undeliverable {
    /// Its deadline passed.
    Expired(UnixMillis),
    /// The neighbour refused the message itself.
    Refused { by: NodeId, reason: String },
    /// The stored copy fails its digest check: quarantined, never forwarded.
    Corrupt(String),
}

impl Undeliverable {
    fn kind(&self) -> TransportEventKind {
        match self {
            Undeliverable::Expired(_) => TransportEventKind::Expired,
            _ => TransportEventKind::DeadLettered,
        }
    }

    fn reason(&self) -> String {
        match self {
            Undeliverable::Expired(at) => {
                format!(
                    "expired at {} before it could be handed off",
                    format_millis(*at)
                )
            }
            Undeliverable::Refused { by, reason } => format!("refused by {by}: {reason}"),
            Undeliverable::Corrupt(why) => {
                format!("quarantined: the stored copy is corrupt: {why}")
            }
        }
    }
}

fn format_millis(at: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{at} ms"))
}

/// Moves an outbox entry to the dead letters, with one event per recipient recorded here
/// and sent to the sender's home node. `false` if the entry had left the outbox already.
pub async fn dead_letter(
    ctx: &Context,
    hop: &NodeId,
    entry: &OutboxEntry,
    why: Undeliverable,
) -> Result<bool, Error> {
    let reason = why.reason();
    match &why {
        Undeliverable::Corrupt(_) => {
            tracing::error!(node = %ctx.id, id = %entry.message, %hop, %reason, "message quarantined")
        }
        _ => {
            tracing::warn!(node = %ctx.id, id = %entry.message, %hop, %reason, "message dead-lettered")
        }
    }
    let events: Vec<_> = entry
        .recipients
        .iter()
        .map(|r| ctx.event(why.kind(), Some(r), reason.clone()))
        .collect();
    let moved = ctx
        .store
        .dead_letter(
            hop,
            entry,
            &reason,
            events
                .iter()
                .map(|e| stored::encode_event(e).into())
                .collect(),
        )
        .await?;
    if moved {
        for event in events {
            events::tell_sender_home(ctx, &entry.message, event).await?;
        }
    }
    Ok(moved)
}

/// Which dead letters an operator means; `None` fields match everything.
#[derive(Clone, Debug, Default)]
pub struct DeadLetterFilter {
    pub document_id: Option<DocumentId>,
    pub peer: Option<NodeId>,
    pub older_than: Option<Duration>,
    pub reason_contains: Option<String>,
}

impl DeadLetterFilter {
    /// The filter as the operator log records it.
    pub fn to_record(&self) -> stored::ActionFilter {
        stored::ActionFilter {
            document_id: self
                .document_id
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            peer: self
                .peer
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            older_than_ms: self.older_than.map_or(0, |d| d.as_millis() as u64),
            reason_contains: self.reason_contains.clone().unwrap_or_default(),
        }
    }

    fn matches(&self, letter: &DeadLetter, now: UnixMillis) -> bool {
        self.document_id
            .as_ref()
            .is_none_or(|id| *id == letter.message.id)
            && self
                .peer
                .as_ref()
                .is_none_or(|p| letter.hop.as_ref() == Some(p))
            && self.older_than.is_none_or(|age| {
                now.saturating_sub(letter.at) >= i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
            })
            && self
                .reason_contains
                .as_ref()
                .is_none_or(|r| letter.reason.contains(r.as_str()))
    }
}

/// Up to `limit` dead letters matching `filter`, oldest first.
pub fn list(
    ctx: &Context,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<DeadLetter>, Error> {
    const PAGE: usize = 1024;
    let now = now_millis();
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = ctx.store.dead_letters(after.as_deref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let full = page.len() == PAGE;
        for letter in page {
            if out.len() >= limit {
                return Ok(out);
            }
            if filter.matches(&letter, now) {
                out.push(letter);
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// What an operator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorVerb {
    Retry,
    Drop,
}

impl OperatorVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorVerb::Retry => "retry",
            OperatorVerb::Drop => "drop",
        }
    }
}

/// The outcome of an operator action.
#[derive(Debug, Default)]
pub struct ActionOutcome {
    pub done: Vec<DocumentId>,
    /// Matched but left as they were, with why.
    pub skipped: Vec<String>,
}

/// Retries or drops every dead letter matching `filter`. A retry re-routes the recipients
/// over the current directory and puts the message back in the outboxes; a letter whose
/// recipients still have no route (or are now homed here) is skipped with the reason.
pub async fn act(
    ctx: &Context,
    operator: &Identity,
    verb: OperatorVerb,
    filter: &DeadLetterFilter,
    reason: &str,
) -> Result<ActionOutcome, Error> {
    if verb == OperatorVerb::Drop && reason.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "dropping dead letters needs a reason (--reason); it is recorded and sent to the \
             senders"
                .into(),
        ));
    }
    let mut outcome = ActionOutcome::default();
    let directory = ctx.directory.current();
    for letter in list(ctx, filter, usize::MAX)? {
        let action = stored::encode_operator_action(&stored::OperatorAction {
            at: now_millis(),
            operator: operator.to_string(),
            action: verb.as_str().to_string(),
            filter: filter.to_record(),
            reason: reason.to_string(),
            document_ids: vec![letter.message.id.to_string()],
        });
        let detail = match reason {
            "" => format!("{} by {operator}", verb.as_str()),
            r => format!("{} by {operator}: {r}", verb.as_str()),
        };
        let (kind, done) = match verb {
            OperatorVerb::Retry => {
                let routed = match crate::admission::plan::route(
                    ctx,
                    &directory,
                    letter.message.sender.as_ref(),
                    &letter.recipients,
                ) {
                    Ok(routed) => routed,
                    Err(e) => {
                        outcome.skipped.push(format!("{}: {e}", letter.message));
                        continue;
                    }
                };
                if let Some(r) = routed.unknown.first() {
                    outcome.skipped.push(format!(
                        "{}: recipient {r} is still not in the directory (version {})",
                        letter.message, directory.version
                    ));
                    continue;
                }
                if let Some(r) = routed.local.first() {
                    outcome.skipped.push(format!(
                        "{}: recipient {r} is homed at this node now; ask the sender to \
                         send it again",
                        letter.message
                    ));
                    continue;
                }
                let event = ctx.event(TransportEventKind::Retried, None, detail.clone());
                let hops: Vec<NodeId> = routed.via.iter().map(|(h, _)| h.clone()).collect();
                let done = ctx
                    .store
                    .requeue_dead_letter(
                        &letter.key,
                        routed.via,
                        stored::encode_event(&event).into(),
                        action.into(),
                    )
                    .await?;
                ctx.signals.hops(&hops);
                (TransportEventKind::Retried, done)
            }
            OperatorVerb::Drop => {
                let event = ctx.event(TransportEventKind::Dropped, None, detail.clone());
                let done = ctx
                    .store
                    .drop_dead_letter(
                        &letter.key,
                        stored::encode_event(&event).into(),
                        action.into(),
                    )
                    .await?;
                (TransportEventKind::Dropped, done)
            }
        };
        if !done {
            // Another operator acted on it in the meantime.
            continue;
        }
        tracing::info!(node = %ctx.id, id = %letter.message, %operator, action = verb.as_str(), reason, "operator action on a dead letter");
        for r in &letter.recipients {
            let event = ctx.event(kind, Some(r), detail.clone());
            events::tell_sender_home(ctx, &letter.message, event).await?;
        }
        outcome.done.push(letter.message.id);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matches_peer_age_reason_and_id() {
        let letter = DeadLetter {
            key: Bytes::new(),
            message: lienthong_core::MessageKey::node_own(DocumentId::parse("doc-1").unwrap()),
            priority: 0,
            recipients: vec![],
            hop: Some(NodeId::parse("VN").unwrap()),
            reason: "refused by VN: bad signature".into(),
            at: 1_000,
        };
        let all = DeadLetterFilter::default();
        assert!(all.matches(&letter, 2_000));
        let by_peer = DeadLetterFilter {
            peer: Some(NodeId::parse("H41").unwrap()),
            ..Default::default()
        };
        assert!(!by_peer.matches(&letter, 2_000));
        let old = DeadLetterFilter {
            older_than: Some(Duration::from_millis(5_000)),
            ..Default::default()
        };
        assert!(!old.matches(&letter, 2_000));
        assert!(old.matches(&letter, 6_000));
        let reason = DeadLetterFilter {
            reason_contains: Some("signature".into()),
            document_id: Some(DocumentId::parse("doc-1").unwrap()),
            ..Default::default()
        };
        assert!(reason.matches(&letter, 2_000));
    }
}
