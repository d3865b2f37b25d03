//! What happens to messages that cannot simply go on:
//!
//! - **link health**: each neighbour link retries with exponential back-off and jitter,
//!   and a circuit per neighbour stops dialling a dead peer for a while after repeated
//!   failures ([`LinkHealth`], driven by [`crate::relay::run_link`]);
//! - **expiry**: every document and status notice has a deadline (its own, or its
//!   creation time plus `delivery.default_expiry_secs`); past it, it is dead-lettered
//!   as expired, whether its link is up (checked before each hand-off) or down (the
//!   outboxes are swept);
//! - **dead letters**: messages that cannot go further to some recipients, with the
//!   reason, until an operator retries (re-routed over the current directory) or drops
//!   them. Each operator action is written to the operator log atomically with its
//!   effect, and the sender hears of every dead letter, retry and drop as a transport
//!   event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use lienthong_core::{DocumentId, NodeId, TransportEventKind, UnixMillis, now_millis};
use lienthong_pki::Identity;
use lienthong_proto::{pb, stored};
use lienthong_store::{DeadLetter, MessageKind, OutboxEntry, StoredMessage};
use prost::Message;

use crate::Error;
use crate::config::DeliveryConfig;
use crate::node::Node;

// ---- link health -------------------------------------------------------------------------

/// Where a link stands, for operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkPhase {
    /// Nothing to send; not connected.
    #[default]
    Idle,
    Up,
    /// Waiting to try again after a failure.
    Retrying,
    /// Circuit open: no attempt until the wait is over.
    Open,
    /// One trial connection after an open circuit.
    HalfOpen,
}

impl LinkPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPhase::Idle => "idle",
            LinkPhase::Up => "up",
            LinkPhase::Retrying => "retrying",
            LinkPhase::Open => "open",
            LinkPhase::HalfOpen => "half-open",
        }
    }
}

/// One link's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub phase: LinkPhase,
    pub consecutive_failures: u32,
    /// When the next attempt is due, while retrying or open.
    pub retry_at: Option<UnixMillis>,
    pub last_error: String,
}

/// The state of every link of a node, written by the link workers.
#[derive(Debug, Default)]
pub struct Links {
    states: Mutex<HashMap<NodeId, LinkStatus>>,
}

impl Links {
    pub fn set(&self, hop: &NodeId, update: impl FnOnce(&mut LinkStatus)) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        update(states.entry(hop.clone()).or_default());
    }

    pub fn get(&self, hop: &NodeId) -> LinkStatus {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(hop).cloned().unwrap_or_default()
    }

    /// Every link, sorted by neighbour.
    pub fn all(&self) -> Vec<(NodeId, LinkStatus)> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = states.iter().map(|(h, s)| (h.clone(), s.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The retry policy of one link: after the `n`th failure in a row it waits
/// `retry_min · 2ⁿ⁻¹` (at most `retry_max`), jittered down by up to half so that links
/// failing together do not retry together; after `circuit_failures` failures in a row the
/// circuit opens for `circuit_open_ms`, then one trial connection decides.
#[derive(Debug)]
pub struct LinkHealth {
    config: DeliveryConfig,
    failures: u32,
}

impl LinkHealth {
    pub fn new(config: DeliveryConfig) -> Self {
        LinkHealth {
            config,
            failures: 0,
        }
    }

    /// The link delivered something: the next failure starts the back-off afresh.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// A connection attempt or a connection failed: how long to wait, and in which phase.
    pub fn failed(&mut self) -> (Duration, LinkPhase) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.config.circuit_failures {
            return (
                Duration::from_millis(self.config.circuit_open_ms),
                LinkPhase::Open,
            );
        }
        let exp = self.failures.saturating_sub(1).min(30);
        let full = self
            .config
            .retry_min_ms
            .saturating_mul(1u64 << exp)
            .min(self.config.retry_max_ms);
        let jittered = full - random_below(full / 2 + 1);
        (Duration::from_millis(jittered), LinkPhase::Retrying)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the next attempt is the trial of an open circuit.
    pub fn circuit_open(&self) -> bool {
        self.failures >= self.config.circuit_failures
    }
}

/// A random number below `bound` (0 when `bound` is 0), from the system's generator.
fn random_below(bound: u64) -> u64 {
    use ring::rand::SecureRandom;
    if bound == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return bound / 2;
    }
    u64::from_le_bytes(bytes) % bound
}

// ---- expiry ------------------------------------------------------------------------------

/// When a stored message expires: its own deadline, or its creation time plus the default
/// lifetime. Transport events do not expire.
pub fn expires_at(
    message: &StoredMessage,
    config: &DeliveryConfig,
) -> Result<Option<UnixMillis>, Error> {
    let default =
        i64::try_from(config.default_expiry_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(match message.envelope.kind {
        MessageKind::Document => {
            let d = stored::decode_document(&message.envelope.encoded)?;
            Some(d.expires_at.unwrap_or(d.created_at.saturating_add(default)))
        }
        MessageKind::Status => {
            let n = stored::decode_status(&message.envelope.encoded)?;
            Some(n.at.saturating_add(default))
        }
        MessageKind::Event => None,
    })
}

/// Dead-letters every message in the outboxes of links that are not up whose deadline
/// has passed; a link that is up checks each message before handing it off.
pub async fn sweep_expired(node: &Node) -> Result<usize, Error> {
    const PAGE: usize = 512;
    let now = now_millis();
    let mut expired = 0;
    for hop in node.neighbours() {
        if node.links().get(&hop).phase == LinkPhase::Up {
            continue;
        }
        for priority in 0..=3u8 {
            let mut after: Option<Bytes> = None;
            loop {
                let page = node
                    .store()
                    .outbox_lane(&hop, priority, after.as_deref(), PAGE)?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                for entry in &page {
                    let Some(message) = node.store().message(&entry.message)? else {
                        continue;
                    };
                    // A copy that does not decode is left to the link, which quarantines it.
                    if let Ok(Some(deadline)) = expires_at(&message, node.delivery())
                        && deadline <= now
                        && dead_letter(node, &hop, entry, Undeliverable::Expired(deadline)).await?
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

// ---- dead letters ------------------------------------------------------------------------

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
    node: &Node,
    hop: &NodeId,
    entry: &OutboxEntry,
    why: Undeliverable,
) -> Result<bool, Error> {
    let reason = why.reason();
    match &why {
        Undeliverable::Corrupt(_) => {
            tracing::error!(node = %node.id(), id = %entry.message, %hop, %reason, "message quarantined")
        }
        _ => {
            tracing::warn!(node = %node.id(), id = %entry.message, %hop, %reason, "message dead-lettered")
        }
    }
    let events: Vec<_> = entry
        .recipients
        .iter()
        .map(|r| node.event(why.kind(), Some(r), reason.clone()))
        .collect();
    let moved = node
        .store()
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
            node.tell_sender_home(&entry.message, event).await?;
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
    pub fn from_pb(f: &pb::DeadLetterFilter) -> Result<Self, Error> {
        Ok(DeadLetterFilter {
            document_id: non_empty(&f.document_id)
                .map(DocumentId::parse)
                .transpose()?,
            peer: non_empty(&f.peer)
                .map(|p| NodeId::parse(p).map_err(|e| Error::InvalidArgument(format!("peer: {e}"))))
                .transpose()?,
            older_than: (f.older_than_ms > 0).then(|| Duration::from_millis(f.older_than_ms)),
            reason_contains: non_empty(&f.reason_contains).map(str::to_string),
        })
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

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Up to `limit` dead letters matching `filter`, oldest first.
pub fn list(
    node: &Node,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<DeadLetter>, Error> {
    const PAGE: usize = 1024;
    let now = now_millis();
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = node.store().dead_letters(after.as_deref(), PAGE)?;
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

/// A dead letter as the admin API shows it.
pub fn to_pb(node: &Node, letter: &DeadLetter) -> pb::DeadLetter {
    let kind = match node.store().message(&letter.message) {
        Ok(Some(m)) => match m.envelope.kind {
            MessageKind::Document => "document",
            MessageKind::Status => "status",
            MessageKind::Event => "event",
        },
        _ => "unknown",
    };
    let sender = letter
        .message
        .sender
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    pb::DeadLetter {
        document_id: letter.message.id.to_string(),
        kind: kind.to_string(),
        priority: u32::from(letter.priority),
        recipients: letter.recipients.iter().map(|r| r.to_string()).collect(),
        peer: letter
            .hop
            .as_ref()
            .map(|h| h.to_string())
            .unwrap_or_default(),
        reason: letter.reason.clone(),
        at_unix_ms: letter.at,
        sender: sender.to_string(),
    }
}

/// What an operator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorVerb {
    Retry,
    Drop,
}

impl OperatorVerb {
    fn as_str(self) -> &'static str {
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
    node: &Node,
    operator: &Identity,
    verb: OperatorVerb,
    filter_pb: &pb::DeadLetterFilter,
    reason: &str,
) -> Result<ActionOutcome, Error> {
    if verb == OperatorVerb::Drop && reason.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "dropping dead letters needs a reason (--reason); it is recorded and sent to the \
             senders"
                .into(),
        ));
    }
    let filter = DeadLetterFilter::from_pb(filter_pb)?;
    let mut outcome = ActionOutcome::default();
    let directory = node.directory().current();
    for letter in list(node, &filter, usize::MAX)? {
        let action = pb::OperatorAction {
            at_unix_ms: now_millis(),
            operator: operator.to_string(),
            action: verb.as_str().to_string(),
            filter: Some(filter_pb.clone()),
            reason: reason.to_string(),
            document_ids: vec![letter.message.id.to_string()],
        }
        .encode_to_vec();
        let detail = match reason {
            "" => format!("{} by {operator}", verb.as_str()),
            r => format!("{} by {operator}: {r}", verb.as_str()),
        };
        let (kind, done) = match verb {
            OperatorVerb::Retry => {
                let routed = match directory.plan(node.id(), &letter.recipients) {
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
                let event = node.event(TransportEventKind::Retried, None, detail.clone());
                let hops: Vec<NodeId> = routed.via.iter().map(|(h, _)| h.clone()).collect();
                let done = node
                    .store()
                    .requeue_dead_letter(
                        &letter.key,
                        routed.via,
                        stored::encode_event(&event).into(),
                        action.into(),
                    )
                    .await?;
                node.signal_hops(&hops);
                (TransportEventKind::Retried, done)
            }
            OperatorVerb::Drop => {
                let event = node.event(TransportEventKind::Dropped, None, detail.clone());
                let done = node
                    .store()
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
        tracing::info!(node = %node.id(), id = %letter.message, %operator, action = verb.as_str(), reason, "operator action on a dead letter");
        for r in &letter.recipients {
            let event = node.event(kind, Some(r), detail.clone());
            node.tell_sender_home(&letter.message, event).await?;
        }
        outcome.done.push(letter.message.id);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeliveryConfig {
        DeliveryConfig {
            retry_min_ms: 100,
            retry_max_ms: 1_000,
            circuit_failures: 6,
            circuit_open_ms: 30_000,
            ..DeliveryConfig::default()
        }
    }

    #[test]
    fn back_off_doubles_with_jitter_up_to_the_cap_then_the_circuit_opens() {
        let mut health = LinkHealth::new(config());
        // Full delays 100, 200, 400, 800, 1000 (capped); jitter takes off at most half.
        for full in [100u64, 200, 400, 800, 1_000] {
            let (wait, phase) = health.failed();
            assert_eq!(phase, LinkPhase::Retrying);
            let ms = wait.as_millis() as u64;
            assert!(
                ms <= full && ms >= full / 2,
                "{ms} ms for a full delay of {full}"
            );
        }
        assert!(!health.circuit_open());
        let (wait, phase) = health.failed();
        assert_eq!(
            (wait, phase),
            (Duration::from_millis(30_000), LinkPhase::Open)
        );
        assert!(health.circuit_open());
        // The trial after the open period fails: the circuit stays open.
        assert_eq!(health.failed().1, LinkPhase::Open);
        // A link that delivered starts afresh.
        health.succeeded();
        assert!(!health.circuit_open());
        let (wait, phase) = health.failed();
        assert_eq!(phase, LinkPhase::Retrying);
        assert!(wait <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut waits = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut health = LinkHealth::new(config());
            health.failed();
            health.failed();
            health.failed();
            waits.insert(health.failed().0);
        }
        assert!(
            waits.len() > 10,
            "50 links failing together retry at {} moments",
            waits.len()
        );
    }

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
