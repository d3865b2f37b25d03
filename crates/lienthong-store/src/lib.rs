//! # lienthong-store
//!
//! Everything a node keeps on disk, behind the [`Store`] trait:
//!
//! - **messages**: every accepted document or status notice, as the node's own encoding
//!   (opaque bytes here), with the signed receipt the node gave for it;
//! - **dedup index**: message id → content digest, kept for the whole retention period, so
//!   a re-send with the same id and content gets the original receipt and the same id with
//!   other content is refused ([`Error::Conflict`]);
//! - **inboxes**, one per agency homed at the node, ordered by a cursor so a subscriber
//!   can resume;
//! - **outboxes**, one per next hop, urgent documents first;
//! - **event logs**, one per message, in order;
//! - **blobs**: attachment bytes in their own fsynced files, named by SHA-256.
//!
//! ## Durability contract
//! A method that returns `Ok` after a write means the write survives a crash (SIGKILL or
//! power loss within what the OS promises). Concurrent writers share one flush: the
//! [`sled_store`] implementation batches them into a group commit.
//!
//! The same conformance tests (`tests/conformance.rs`) run against every implementation.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, NodeId, UnixMillis};

pub mod error;
pub mod sled_store;

pub use error::Error;
pub use sled_store::SledStore;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SHA-256 digest.
pub type Digest = [u8; 32];

/// Position in an inbox; strictly increasing in the order entries were added, and never 0,
/// so that 0 means "before the first entry". A subscriber resumes by asking for entries
/// after the last cursor it saw.
pub type Cursor = u64;

/// Whether a stored message is an official document, a status notice, or a transport
/// event travelling back to a sender's home node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Document,
    Status,
    Event,
}

/// A message as the store keeps it. The store does not interpret `encoded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: DocumentId,
    pub kind: MessageKind,
    /// 0 routine (thường) … 3 flash (hỏa tốc); higher leaves outboxes first.
    pub priority: u8,
    /// SHA-256 of the message's canonical bytes: two sends with the same id are the same
    /// message exactly when their digests are equal.
    pub content_digest: Digest,
    /// The full message in the node's encoding.
    pub encoded: Bytes,
    pub received_at: UnixMillis,
}

/// Where an accepted message goes: inboxes of agencies homed here, and outboxes towards
/// next hops (each with the recipients reached through it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub inboxes: Vec<AgencyCode>,
    pub outboxes: Vec<(NodeId, Vec<AgencyCode>)>,
}

/// The answer to [`Store::accept`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Newly stored and durable; carries the receipt passed in.
    Accepted { receipt: Bytes },
    /// Stored before with the same content; carries the original receipt. Nothing changed.
    Duplicate { receipt: Bytes },
}

impl AcceptOutcome {
    pub fn receipt(&self) -> &Bytes {
        match self {
            AcceptOutcome::Accepted { receipt } | AcceptOutcome::Duplicate { receipt } => receipt,
        }
    }
}

/// A stored message with the receipt the node gave for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub envelope: Envelope,
    pub receipt: Bytes,
}

/// One entry of an agency's inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    pub cursor: Cursor,
    pub id: DocumentId,
    pub kind: MessageKind,
    pub priority: u8,
}

/// One entry of an outbox towards a next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Opaque key that [`Store::outbox_remove`] takes back.
    pub key: Bytes,
    pub id: DocumentId,
    pub priority: u8,
    /// Recipients reached through this hop.
    pub recipients: Vec<AgencyCode>,
}

/// Queue depths, for the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Sorted by agency code; agencies with empty inboxes may be omitted.
    pub inboxes: Vec<(AgencyCode, u64)>,
    /// Sorted by node id; empty outboxes may be omitted.
    pub outboxes: Vec<(NodeId, u64)>,
}

/// The durable state of one node. Every `async` method that writes returns only after the
/// write is durable; reads see every completed write.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new message atomically with its receipt, its first events (opaque bytes,
    /// appended in order to the message's event log — e.g. "accepted" and one "delivered"
    /// per local recipient) and its delivery (inbox and outbox entries),
    /// unless a message with this id exists:
    /// - same `content_digest` → [`AcceptOutcome::Duplicate`] with the original receipt,
    ///   nothing written;
    /// - different digest → [`Error::Conflict`], nothing written.
    ///
    /// Concurrent calls with the same id: exactly one is `Accepted`.
    async fn accept(
        &self,
        envelope: Envelope,
        delivery: Delivery,
        receipt: Bytes,
        events: Vec<Bytes>,
    ) -> Result<AcceptOutcome>;

    /// The stored message with this id, if any.
    fn message(&self, id: &DocumentId) -> Result<Option<StoredMessage>>;

    /// Up to `limit` entries of `agency`'s inbox with a cursor greater than `after`
    /// (all when `None`), in cursor order.
    fn inbox(
        &self,
        agency: &AgencyCode,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;

    /// Removes message `id` from `agency`'s inbox and appends `event` to its event log,
    /// atomically. Returns `false` (and writes nothing) if it was not in that inbox.
    async fn ack(&self, agency: &AgencyCode, id: &DocumentId, event: Bytes) -> Result<bool>;

    /// Appends events (opaque bytes) to a message's log, in order, in one durable write.
    async fn append_events(&self, id: &DocumentId, events: Vec<Bytes>) -> Result<()>;

    /// Appends one event (opaque bytes) to a message's log.
    async fn append_event(&self, id: &DocumentId, event: Bytes) -> Result<()> {
        self.append_events(id, vec![event]).await
    }

    /// The message's events in the order they were appended.
    fn events(&self, id: &DocumentId) -> Result<Vec<Bytes>>;

    /// Up to `limit` entries of the outbox towards `hop`: higher priority first, then in
    /// the order they were added.
    fn outbox(&self, hop: &NodeId, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// Up to `limit` entries of the outbox towards `hop` with priority `priority`, in the
    /// order they were added, after the entry whose key is `after` (from the first when
    /// `None`). New entries of a priority always come after its existing ones, so a sender
    /// that remembers the last key it read per priority never reads an entry twice.
    fn outbox_lane(
        &self,
        hop: &NodeId,
        priority: u8,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>>;

    /// Removes an outbox entry once the next hop has durably acknowledged it. Removing an
    /// entry that is already gone is a no-op (a retry after a crash).
    async fn outbox_remove(&self, hop: &NodeId, key: &[u8]) -> Result<()>;

    fn queue_depths(&self) -> Result<QueueDepths>;

    /// Writes attachment bytes to their own file, fsynced (file and directory) before
    /// returning. Fails with [`Error::DigestMismatch`] if `data` does not hash to
    /// `digest`. Writing a blob that exists already is a no-op.
    async fn put_blob(&self, digest: Digest, data: Bytes) -> Result<()>;

    /// The bytes of a stored blob; [`Error::NotFound`] if absent; [`Error::Corrupt`] if the
    /// file no longer hashes to its name.
    async fn blob(&self, digest: Digest) -> Result<Bytes>;
}
