//! Hand-off towards one neighbour: one long-lived stream per link, fed from the durable
//! outbox towards it; an entry leaves the outbox only after the neighbour's
//! acknowledgement.
//!
//! [`run_link`] keeps the link: after a failure it reconnects with back-off, jitter and a
//! circuit ([`health::LinkHealth`]) and re-sends what was not acknowledged, with the same
//! ids. One connection's life is a [`LinkSession`]: it refills the window from the
//! outbox (urgent lanes first), takes the answers, pushes large attachments on the side
//! ([`push`]) while other items go on, and drains on shutdown (waiting up to
//! [`DRAIN_GRACE`] for the answers of items in flight). Before each hand-off the stored
//! message is checked ([`prepare`]): an expired one is dead-lettered, a corrupt one
//! quarantined, neither is sent.

pub mod health;
pub mod item;
pub(crate) mod prepare;
pub(crate) mod push;
pub(crate) mod window;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lienthong_core::NodeId;
use lienthong_core::TransportEventKind;
use lienthong_proto::stored;
use lienthong_store::{Handed as HandedEntry, MessageKind, OutboxEntry};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::{Stream, StreamExt};

use crate::Error;
use crate::context::Context;
use crate::dead_letters::{self, Undeliverable};
use crate::services::relay::LinkClient;
pub use health::{LinkHealth, LinkPhase, LinkStatus, Links};
pub use item::{Handed, HandoffAck, HandoffItem};
use prepare::{Blobs, Prepared, prepare};
use window::{Carried, EventPack, SEND_WINDOW, Window};

/// Large-attachment pushes a link runs at once, each on its own stream next to the
/// hand-off stream; a document past them waits in its lane.
const PUSHES_PER_LINK: usize = 2;
/// How long a stopping link waits for the acknowledgements of items in flight.
pub const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// Keeps the link towards neighbour `hop` until `stop` turns true.
pub async fn run_link(ctx: Arc<Context>, hop: NodeId, mut stop: watch::Receiver<bool>) {
    let mut health = LinkHealth::new(ctx.delivery.clone());
    loop {
        if *stop.borrow() {
            return;
        }
        let mut delivered = false;
        let error = match serve_link(&ctx, &hop, &mut stop, &mut delivered).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if delivered {
            health.succeeded();
        }
        let (wait, phase) = ctx.links.failed(&hop, &mut health, &error.to_string());
        let failures = health.failures();
        if phase == LinkPhase::Open {
            tracing::warn!(node = %ctx.id, %hop, %error, failures, wait_ms = wait.as_millis() as u64, "link circuit open");
        } else {
            tracing::info!(node = %ctx.id, %hop, %error, failures, wait_ms = wait.as_millis() as u64, "link down; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if health.circuit_open() {
            ctx.links.set(&hop, |s| s.phase = LinkPhase::HalfOpen);
        }
    }
}

/// One connection: waits for work, dials, and runs a [`LinkSession`]. Returns `Ok` on
/// shutdown, `Err` when the link broke; sets `delivered` once the neighbour has
/// acknowledged an item.
async fn serve_link(
    ctx: &Arc<Context>,
    hop: &NodeId,
    stop: &mut watch::Receiver<bool>,
    delivered: &mut bool,
) -> Result<(), Error> {
    let mut signal = ctx.signals.watch_outbox(hop);
    // Wait for work before dialling, so idle links cost nothing.
    if ctx.store.outbox(hop, 1)?.is_empty() {
        ctx.links.set(hop, |s| {
            if s.phase == LinkPhase::Up {
                s.phase = LinkPhase::Idle;
            }
        });
    }
    while ctx.store.outbox(hop, 1)?.is_empty() {
        tokio::select! {
            _ = signal.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    let mut client = LinkClient::connect(ctx, hop)?;
    let (tx, rx) = mpsc::channel::<HandoffItem>(SEND_WINDOW + PUSHES_PER_LINK);
    let acks = client
        .handoff(rx)
        .await
        .map_err(|s| Error::Transport(format!("hand-off to {hop} refused: {s}")))?;
    tracing::info!(node = %ctx.id, %hop, "link up");
    ctx.links.set(hop, |s| {
        s.phase = LinkPhase::Up;
        s.retry_at = None;
    });
    let mut session = LinkSession::new(ctx.clone(), hop.clone(), tx);
    let result = session.run(acks, &mut signal, stop).await;
    *delivered |= session.delivered;
    result
}

/// One connection's life: the window of items in flight, where each priority lane was
/// read up to, the answers waiting to be recorded, and the blob pushes on the side.
struct LinkSession {
    ctx: Arc<Context>,
    hop: NodeId,
    tx: mpsc::Sender<HandoffItem>,
    window: Window,
    /// The last key read per priority on this connection: a refill reads only entries
    /// after it, so nothing is read twice (new entries of a priority sort after its old
    /// ones). A new connection starts from the head and re-sends whatever is still
    /// unacknowledged; the neighbour deduplicates.
    cursors: [Option<Bytes>; 4],
    /// Answered items leave the outbox in one write per round: while a round is being
    /// written, the answers that arrive wait for the next.
    finishing: JoinSet<Result<(), Error>>,
    answered: Vec<(Carried, HandoffAck)>,
    /// Documents whose large attachments are being pushed on the side, so that the link
    /// goes on with other items (urgent ones first) meanwhile.
    pushing: JoinSet<(OutboxEntry, Result<Prepared, Error>)>,
    /// Set on shutdown: no new items; the session ends once those in flight are answered.
    draining: Option<tokio::time::Instant>,
    /// Event packs stay well inside the neighbour's message size limit.
    max_pack: usize,
    /// The neighbour acknowledged something on this connection.
    delivered: bool,
}

impl LinkSession {
    fn new(ctx: Arc<Context>, hop: NodeId, tx: mpsc::Sender<HandoffItem>) -> Self {
        let window = Window::new(Duration::from_millis(ctx.delivery.ack_timeout_ms));
        let max_pack = ctx.limits.max_message_bytes / 4;
        LinkSession {
            ctx,
            hop,
            tx,
            window,
            cursors: Default::default(),
            finishing: JoinSet::new(),
            answered: Vec::new(),
            pushing: JoinSet::new(),
            draining: None,
            max_pack,
            delivered: false,
        }
    }

    async fn run(
        &mut self,
        mut acks: impl Stream<Item = Result<HandoffAck, Error>> + Unpin,
        signal: &mut watch::Receiver<()>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        loop {
            self.record_answers();
            if let Some(done) = self.drained() {
                return done;
            }
            if self.draining.is_none() && self.window.has_room() {
                signal.borrow_and_update();
                self.refill().await?;
            }
            let has_room = self.window.has_room();
            let in_flight = !self.window.in_flight.is_empty();
            let deadline = self.window.deadline();
            tokio::select! {
                ack = acks.next() => match ack {
                    Some(Ok(ack)) => self.on_ack(ack),
                    Some(Err(e)) => return Err(e),
                    None => return Err(Error::Transport(format!("{} closed the stream", self.hop))),
                },
                Some(done) = self.finishing.join_next(), if !self.finishing.is_empty() => {
                    if let Ok(result) = done {
                        result?;
                    }
                }
                Some(pushed) = self.pushing.join_next(), if !self.pushing.is_empty() && self.draining.is_none() => {
                    let pushed = pushed.map_err(|e| {
                        Error::Transport(format!("blob push to {} stopped: {e}", self.hop))
                    })?;
                    self.on_pushed(pushed).await?;
                }
                _ = signal.changed(), if self.draining.is_none() && has_room => {}
                _ = tokio::time::sleep(Duration::from_secs(1)), if !in_flight => {}
                // A neighbour that stops answering (frozen, or its disk stuck) while items
                // are in flight: give the connection up and reconnect after the back-off.
                _ = tokio::time::sleep_until(deadline), if in_flight && self.draining.is_none() => {
                    return Err(Error::Transport(format!(
                        "{} acknowledged nothing for {} ms with {} items in flight",
                        self.hop,
                        self.window.ack_timeout.as_millis(),
                        self.window.in_flight.len()
                    )));
                }
                _ = tokio::time::sleep(Duration::from_millis(50)), if self.draining.is_some() => {}
                _ = stop.changed(), if self.draining.is_none() => {
                    self.draining = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                }
            }
        }
    }

    /// Starts writing the answers received since the last round, unless a round is
    /// still being written.
    fn record_answers(&mut self) {
        if self.finishing.is_empty() && !self.answered.is_empty() {
            let (ctx, hop, round) = (
                self.ctx.clone(),
                self.hop.clone(),
                std::mem::take(&mut self.answered),
            );
            self.finishing
                .spawn(async move { finish(&ctx, &hop, round).await });
        }
    }

    /// While draining: `Some` once the session may end (everything answered and
    /// recorded, or the grace period over).
    fn drained(&self) -> Option<Result<(), Error>> {
        let deadline = self.draining?;
        if self.window.in_flight.is_empty() && self.finishing.is_empty() && self.answered.is_empty()
        {
            return Some(Ok(()));
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(node = %self.ctx.id, hop = %self.hop, unanswered = self.window.in_flight.len(), answered_unrecorded = self.answered.len(), "shutdown: items still unacknowledged, or answered but not yet recorded; they stay queued and go again later");
            return Some(Ok(()));
        }
        None
    }

    /// Fills the window from the outbox, urgent priorities first.
    async fn refill(&mut self) -> Result<(), Error> {
        // Time spent here (reading and checking stored messages) is not the neighbour's.
        let refilling = tokio::time::Instant::now();
        for priority in (0..=3u8).rev() {
            if !self.window.has_room() {
                break;
            }
            let entries = self.ctx.store.outbox_lane(
                &self.hop,
                priority,
                self.cursors[priority as usize].as_deref(),
                self.window.room(),
            )?;
            // Transport events read one after another travel as one item.
            let mut pack: Option<EventPack> = None;
            for entry in entries {
                if !self.window.has_room() {
                    break; // the rest of the lane waits for answers
                }
                let prepared = prepare(&self.ctx, &self.hop, &entry, Blobs::Defer).await?;
                if matches!(prepared, Prepared::AwaitsBlobs)
                    && self.pushing.len() >= PUSHES_PER_LINK
                {
                    break; // this lane waits for a push to finish
                }
                self.cursors[priority as usize] = Some(entry.key.clone());
                let (item, kind) = match prepared {
                    Prepared::Item(item, kind) => (*item, kind),
                    Prepared::Undeliverable(why) => {
                        dead_letters::dead_letter(&self.ctx, &self.hop, &entry, why).await?;
                        continue;
                    }
                    Prepared::AwaitsBlobs => {
                        let (ctx, hop) = (self.ctx.clone(), self.hop.clone());
                        self.pushing.spawn(async move {
                            let prepared = prepare(&ctx, &hop, &entry, Blobs::Push).await;
                            (entry, prepared)
                        });
                        continue;
                    }
                };
                if kind == MessageKind::Event {
                    match &mut pack {
                        Some(p) if p.fits(&item, self.max_pack) => p.join(entry, item),
                        _ => {
                            if let Some(p) = pack.take() {
                                self.send(p.item, p.entries).await?;
                            }
                            pack = Some(EventPack::new(entry, item));
                        }
                    }
                    continue;
                }
                if let Some(p) = pack.take() {
                    self.send(p.item, p.entries).await?;
                }
                self.send(item, vec![(entry, kind)]).await?;
            }
            if let Some(p) = pack.take() {
                self.send(p.item, p.entries).await?;
            }
        }
        self.window.answered_by += refilling.elapsed();
        Ok(())
    }

    async fn send(&mut self, item: HandoffItem, entries: Carried) -> Result<(), Error> {
        self.window.send(&self.tx, &self.hop, item, entries).await
    }

    /// The neighbour answered an item: its entries wait for the next recording round.
    fn on_ack(&mut self, ack: HandoffAck) {
        let Some(entries) = self.window.answered(ack.seq) else {
            return;
        };
        self.delivered = true;
        self.answered.push((entries, ack));
    }

    /// A document's large attachments were pushed (or its push found it undeliverable).
    async fn on_pushed(
        &mut self,
        (entry, prepared): (OutboxEntry, Result<Prepared, Error>),
    ) -> Result<(), Error> {
        match prepared? {
            Prepared::Item(item, kind) => self.send(*item, vec![(entry, kind)]).await,
            Prepared::Undeliverable(why) => {
                dead_letters::dead_letter(&self.ctx, &self.hop, &entry, why).await?;
                Ok(())
            }
            Prepared::AwaitsBlobs => Err(Error::Transport(format!(
                "{} still awaits its attachments after a push to {}",
                entry.message, self.hop
            ))),
        }
    }
}

/// Whether a refusal code means "try again later" rather than "this message is wrong".
fn is_transient(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Cancelled
    )
}

/// After the neighbour answered items: the entries it took leave the outbox and the
/// hand-offs are recorded, in one write for the whole round; then those it refused for
/// good are dead-lettered.
async fn finish(
    ctx: &Context,
    hop: &NodeId,
    round: Vec<(Carried, HandoffAck)>,
) -> Result<(), Error> {
    let mut handed = Vec::new();
    let mut refused = Vec::new();
    let mut transient = None;
    for (entries, ack) in round {
        match ack.refused {
            None => handed.extend(entries),
            // A refusal for a passing reason on the neighbour's side (its store
            // unavailable, its disk full) is not the message's fault: keep it, break the
            // link, and re-send after the back-off.
            Some((code, reason)) if is_transient(code) => {
                transient.get_or_insert(Error::Transport(format!(
                    "{hop} could not take {} for now: {reason}",
                    ack.id
                )));
            }
            // Only a refusal of the message itself dead-letters it.
            Some((_, reason)) => refused.extend(
                entries
                    .into_iter()
                    .map(|(entry, _)| (entry, reason.clone())),
            ),
        }
    }
    // A hand-off is recorded here; the sender's home node learns every hop from the
    // trace that comes back with the delivery. Transport events have no log of their own.
    let handed: Vec<HandedEntry> = handed
        .into_iter()
        .map(|(entry, kind)| {
            let events = match kind {
                MessageKind::Event => Vec::new(),
                MessageKind::Document | MessageKind::Status => entry
                    .recipients
                    .iter()
                    .map(|r| {
                        let e =
                            ctx.event(TransportEventKind::Forwarded, Some(r), format!("to {hop}"));
                        stored::encode_event(&e).into()
                    })
                    .collect(),
            };
            HandedEntry {
                key: entry.key,
                message: entry.message,
                events,
            }
        })
        .collect();
    if !handed.is_empty() {
        ctx.store.outbox_remove(hop, handed).await?;
    }
    for (entry, reason) in refused {
        let why = Undeliverable::Refused {
            by: hop.clone(),
            reason,
        };
        dead_letters::dead_letter(ctx, hop, &entry, why).await?;
    }
    transient.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::is_transient;
    use tonic::Code;

    #[test]
    fn only_refusals_of_the_message_itself_dead_letter_it() {
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Aborted,
        ] {
            assert!(is_transient(code), "{code:?} must be retried");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::AlreadyExists,
            Code::NotFound,
        ] {
            assert!(!is_transient(code), "{code:?} must be dead-lettered");
        }
    }
}
