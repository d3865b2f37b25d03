//! What a link keeps in flight: the items sent on the current connection and not yet
//! answered ([`Window`]), bounded by count and bytes, and the transport events read one
//! after another from the outbox on their way into one item ([`EventPack`]).

use std::collections::HashMap;
use std::time::Duration;

use lienthong_core::NodeId;
use lienthong_store::{MessageKind, OutboxEntry};
use tokio::sync::mpsc;

use super::item::{Handed, HandoffItem};
use crate::Error;

/// Items a sending link keeps unacknowledged.
pub const SEND_WINDOW: usize = 256;
/// Bytes a sending link keeps unacknowledged (one larger item still goes alone), and a
/// receiving stream admits at once: memory stays bounded with inline attachments.
pub const WINDOW_BYTES: usize = 64 * 1024 * 1024;

/// The slowest transfer a link allows for before it calls a silent neighbour frozen:
/// items in flight add their size at this rate to the acknowledgement deadline, so a
/// large document on a slow line is not mistaken for a dead peer.
pub const SLOWEST_BYTES_PER_SEC: f64 = 256.0 * 1024.0;

/// The outbox entries one item carries.
pub type Carried = Vec<(OutboxEntry, MessageKind)>;

/// The items a link has sent on its current connection and not yet seen answered.
pub struct Window {
    /// Sequence number → the outbox entries the item carries and its size.
    pub in_flight: HashMap<u64, (Carried, usize)>,
    /// Bytes in flight.
    bytes: usize,
    seq: u64,
    /// The last answer (or the first item after a quiet spell), plus `ack_timeout`.
    pub answered_by: tokio::time::Instant,
    pub ack_timeout: Duration,
}

impl Window {
    pub fn new(ack_timeout: Duration) -> Self {
        Window {
            in_flight: HashMap::new(),
            bytes: 0,
            seq: 0,
            answered_by: tokio::time::Instant::now(),
            ack_timeout,
        }
    }

    /// Numbers `item` and sends it; it stays in flight until answered.
    pub async fn send(
        &mut self,
        tx: &mpsc::Sender<HandoffItem>,
        hop: &NodeId,
        mut item: HandoffItem,
        entries: Carried,
    ) -> Result<(), Error> {
        self.seq += 1;
        item.seq = self.seq;
        if self.in_flight.is_empty() {
            self.answered_by = tokio::time::Instant::now() + self.ack_timeout;
        }
        let size = item.bytes;
        self.bytes += size;
        self.in_flight.insert(self.seq, (entries, size));
        tx.send(item)
            .await
            .map_err(|_| Error::Transport(format!("stream to {hop} closed")))
    }

    /// The entries of item `seq`, once answered; `None` for an unknown one.
    pub fn answered(&mut self, seq: u64) -> Option<Carried> {
        let (entries, size) = self.in_flight.remove(&seq)?;
        self.bytes -= size;
        self.answered_by = tokio::time::Instant::now() + self.ack_timeout;
        Some(entries)
    }

    /// Whether more items may go out: fewer than [`SEND_WINDOW`] and [`WINDOW_BYTES`].
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < SEND_WINDOW && self.bytes < WINDOW_BYTES
    }

    /// Room left by count.
    pub fn room(&self) -> usize {
        SEND_WINDOW - self.in_flight.len()
    }

    /// When the link gives the connection up unless something is answered before.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.answered_by + Duration::from_secs_f64(self.bytes as f64 / SLOWEST_BYTES_PER_SEC)
    }
}

/// Transport events read one after another from an outbox, on their way into one
/// hand-off item.
pub struct EventPack {
    pub item: HandoffItem,
    pub entries: Carried,
}

impl EventPack {
    pub fn new(entry: OutboxEntry, item: HandoffItem) -> Self {
        EventPack {
            item,
            entries: vec![(entry, MessageKind::Event)],
        }
    }

    /// Whether `item` can join without the pack outgrowing `max` bytes.
    pub fn fits(&self, item: &HandoffItem, max: usize) -> bool {
        self.item.bytes + item.bytes <= max
    }

    pub fn join(&mut self, entry: OutboxEntry, item: HandoffItem) {
        self.item.bytes += item.bytes;
        if let (Handed::Events(packed), Handed::Events(more)) =
            (&mut self.item.message, item.message)
        {
            packed.extend(more);
        }
        self.entries.push((entry, MessageKind::Event));
    }
}
