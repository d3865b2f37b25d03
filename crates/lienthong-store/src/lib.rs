//! # lienthong-store
//!
//! Everything a node keeps on disk, behind the [`Store`] trait:
//!
//! - **messages**: every accepted document or status notice, as the node's own encoding
//!   (opaque bytes here), with the signed receipt the node gave for it, keyed by
//!   [`MessageKey`]: the id within its sender;
//! - **dedup index**: message key → content digest, kept for the whole retention period,
//!   so a re-send with the same id and content gets the original receipt and the same id
//!   with other content is refused ([`Error::Conflict`]) — from the same sender only: two
//!   agencies that chose one id have two messages;
//! - **inboxes**, one per agency homed at the node, ordered by a cursor so a subscriber
//!   can resume;
//! - **outboxes**, one per next hop, urgent documents first;
//! - **event logs**, one per message, in order;
//! - **dead letters**: messages that cannot go further to some recipients, each with its
//!   reason, until an operator requeues or drops them;
//! - **operator log**: every operator action, in order;
//! - **blobs**: attachment bytes in their own fsynced files, named by SHA-256.
//!
//! ## Durability contract
//! A method that returns `Ok` after a write means the write survives a crash (SIGKILL or
//! power loss within what the OS promises). Concurrent writers share one flush: the
//! [`sled_store`] implementation batches them into a group commit.
//!
//! "Atomically" below means all or nothing across a crash, and for the writer: a write
//! that fails leaves none of its changes. A concurrent reader may see a write applied in
//! part (an acknowledged entry gone before its event is logged, say), never an entry
//! without the message it names.
//!
//! The same conformance tests (`tests/conformance.rs`) run against every implementation.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId, UnixMillis};

pub mod error;
pub mod sled_store;

pub use error::Error;
pub use sled_store::SledStore;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SHA-256 digest.
pub type Digest = [u8; 32];

/// Who writes a blob in chunks. Each writer has partial files of its own: an agency's
/// upload never shows in, resumes from, nor completes with bytes that another agency or a
/// neighbour sent — an agency proves it holds an attachment by streaming all of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BlobWriter {
    /// A neighbouring node pushing a blob it holds.
    Relay,
    /// The DMS of an agency homed here, uploading.
    Agency(AgencyCode),
}

/// Position in an inbox; strictly increasing in the order entries were added, and never 0,
/// so that 0 means "before the first entry". Entries are served by priority lane (urgent
/// first) and within a lane in cursor order.
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
    pub key: MessageKey,
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

/// Where an accepted message goes: inboxes of agencies homed here, outboxes towards
/// next hops (each with the recipients reached through it), and dead letters for the
/// recipients it cannot reach (each with the reason).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub inboxes: Vec<AgencyCode>,
    pub outboxes: Vec<(NodeId, Vec<AgencyCode>)>,
    pub dead: Vec<(AgencyCode, String)>,
}

/// A message that cannot go further to some of its recipients, kept with the reason until
/// an operator requeues it ([`Store::requeue_dead_letter`]) or drops it
/// ([`Store::drop_dead_letter`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Opaque key that the requeue and drop methods take back; dead letters list in the
    /// order they were made.
    pub key: Bytes,
    pub message: MessageKey,
    pub priority: u8,
    pub recipients: Vec<AgencyCode>,
    /// The next hop it was leaving through, if it had one.
    pub hop: Option<NodeId>,
    pub reason: String,
    pub at: UnixMillis,
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
    pub message: MessageKey,
    pub kind: MessageKind,
    pub priority: u8,
}

/// One entry of an outbox towards a next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Opaque key that [`Store::outbox_remove`] takes back.
    pub key: Bytes,
    pub message: MessageKey,
    pub priority: u8,
    /// Recipients reached through this hop.
    pub recipients: Vec<AgencyCode>,
}

/// An outbox entry the next hop acknowledged, and what to log about the hand-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handed {
    /// [`OutboxEntry::key`].
    pub key: Bytes,
    pub message: MessageKey,
    /// Appended to the message's log with the removal.
    pub events: Vec<Bytes>,
}

/// Queue depths, for the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Sorted by agency code; agencies with empty inboxes may be omitted.
    pub inboxes: Vec<(AgencyCode, u64)>,
    /// Sorted by node id; empty outboxes may be omitted.
    pub outboxes: Vec<(NodeId, u64)>,
    pub dead_letters: u64,
}

/// The durable state of one node. Every `async` method that writes returns only after the
/// write is durable; reads see every completed write.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new message atomically with its receipt, its first events (opaque bytes,
    /// appended in order to the message's event log — e.g. "accepted" and one "delivered"
    /// per local recipient) and its delivery (inbox and outbox entries),
    /// unless a message with this key exists:
    /// - same `content_digest` → [`AcceptOutcome::Duplicate`] with the original receipt,
    ///   nothing written;
    /// - different digest → [`Error::Conflict`], nothing written.
    ///
    /// Concurrent calls with the same key: exactly one is `Accepted`.
    async fn accept(
        &self,
        envelope: Envelope,
        delivery: Delivery,
        receipt: Bytes,
        events: Vec<Bytes>,
    ) -> Result<AcceptOutcome>;

    /// The stored message with this key, if any.
    fn message(&self, key: &MessageKey) -> Result<Option<StoredMessage>>;

    /// Whether a message with this key is stored, without reading it.
    fn has_message(&self, key: &MessageKey) -> Result<bool> {
        Ok(self.message(key)?.is_some())
    }

    /// The keys of the stored messages with this id, whatever their sender: for a reader
    /// that knows only the id (the caller then checks which of them it may see).
    fn messages_with_id(&self, id: &DocumentId) -> Result<Vec<MessageKey>>;

    /// Up to `limit` entries of `agency`'s inbox with a cursor greater than `after`
    /// (all when `None`): higher priority first, then in cursor order.
    fn inbox(
        &self,
        agency: &AgencyCode,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;

    /// Up to `limit` entries of `agency`'s inbox with a cursor greater than `after` (all
    /// when `None`), in cursor (arrival) order whatever their priority: for paging through
    /// an inbox with the last cursor of each page.
    fn inbox_by_arrival(
        &self,
        agency: &AgencyCode,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;

    /// Up to `limit` entries of `agency`'s inbox with priority `priority` and a cursor
    /// greater than `after`, in cursor order. The entries of a priority appear in cursor
    /// order, so a reader that remembers the last cursor it read per priority never
    /// misses one.
    fn inbox_lane(
        &self,
        agency: &AgencyCode,
        priority: u8,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;

    /// Removes message `key` from `agency`'s inbox and appends `event` to its event log,
    /// atomically. Returns `false` (and writes nothing) if it was not in that inbox.
    async fn ack(&self, agency: &AgencyCode, key: &MessageKey, event: Bytes) -> Result<bool>;

    /// Appends events (opaque bytes) to the logs of several messages, each in order, in
    /// one durable write. An event already in its log, byte for byte, is not appended
    /// again (events carry their time, so only a re-sent one repeats); the check and the
    /// write cannot interleave with another append.
    async fn append_event_logs(&self, logs: Vec<(MessageKey, Vec<Bytes>)>) -> Result<()>;

    /// Appends events (opaque bytes) to a message's log, in order, in one durable write;
    /// as [`Store::append_event_logs`], an event already logged is not added again.
    async fn append_events(&self, key: &MessageKey, events: Vec<Bytes>) -> Result<()> {
        self.append_event_logs(vec![(key.clone(), events)]).await
    }

    /// Appends one event (opaque bytes) to a message's log.
    async fn append_event(&self, key: &MessageKey, event: Bytes) -> Result<()> {
        self.append_events(key, vec![event]).await
    }

    /// The message's events in the order they were appended.
    fn events(&self, key: &MessageKey) -> Result<Vec<Bytes>>;

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

    /// Removes outbox entries once the next hop has durably acknowledged them, and
    /// appends each one's events to its message's log, all in one write. An entry that is
    /// already gone (a retry after a crash) is skipped, its events too.
    async fn outbox_remove(&self, hop: &NodeId, handed: Vec<Handed>) -> Result<()>;

    fn queue_depths(&self) -> Result<QueueDepths>;

    /// Moves an outbox entry towards `hop` to the dead letters with `reason`, appending
    /// `events` to the message's log, atomically. Returns `false` (and writes nothing) if
    /// the entry is no longer in the outbox.
    async fn dead_letter(
        &self,
        hop: &NodeId,
        entry: &OutboxEntry,
        reason: &str,
        events: Vec<Bytes>,
    ) -> Result<bool>;

    /// Up to `limit` dead letters after the one whose key is `after`, oldest first.
    fn dead_letters(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Puts a dead letter back into outboxes (`outboxes`: next hop and the recipients
    /// reached through it), appends `event` to the message's log and `action` to the
    /// operator log, atomically. Returns `false` (and writes nothing) if the dead letter
    /// is gone.
    async fn requeue_dead_letter(
        &self,
        key: &[u8],
        outboxes: Vec<(NodeId, Vec<AgencyCode>)>,
        event: Bytes,
        action: Bytes,
    ) -> Result<bool>;

    /// Removes a dead letter for good, appending `event` to the message's log and `action`
    /// to the operator log, atomically. Returns `false` if it is gone.
    async fn drop_dead_letter(&self, key: &[u8], event: Bytes, action: Bytes) -> Result<bool>;

    /// Appends an operator action (opaque bytes) to the operator log.
    async fn log_operator_action(&self, action: Bytes) -> Result<()>;

    /// Up to `limit` operator actions with a sequence number greater than `after`, oldest
    /// first, each with its sequence number.
    fn operator_log(&self, after: u64, limit: usize) -> Result<Vec<(u64, Bytes)>>;

    /// Writes attachment bytes to their own file, fsynced (file and directory) before
    /// returning. Fails with [`Error::DigestMismatch`] if `data` does not hash to
    /// `digest`. Writing a blob that exists already is a no-op.
    async fn put_blob(&self, digest: Digest, data: Bytes) -> Result<()>;

    /// The bytes of a stored blob; [`Error::NotFound`] if absent; [`Error::Corrupt`] if the
    /// file no longer hashes to its name.
    async fn blob(&self, digest: Digest) -> Result<Bytes>;

    // ---- large blobs, in chunks ----------------------------------------------------------

    /// The size of blob `digest` if it is stored complete (and so verified), else `None`.
    async fn blob_len(&self, digest: Digest) -> Result<Option<u64>>;

    /// How many bytes of `writer`'s chunked write of blob `digest` are durable: it
    /// resumes from there. 0 when none started (or it completed).
    async fn partial_blob_len(&self, digest: Digest, writer: &BlobWriter) -> Result<u64>;

    /// The chunked writes `writer` has in progress: digest and durable length.
    async fn partial_blobs(&self, writer: &BlobWriter) -> Result<Vec<(Digest, u64)>>;

    /// Writes `data` at `offset` of `writer`'s chunked write of blob `digest` and
    /// returns the durable length once the bytes are fsynced. Fails with [`Error::Gap`] if
    /// `offset` lies beyond the bytes held. Memory: only `data`.
    async fn write_blob_chunk(
        &self,
        digest: Digest,
        writer: &BlobWriter,
        offset: u64,
        data: Bytes,
    ) -> Result<u64>;

    /// Makes `writer`'s chunked write of `digest` visible as a blob once it holds `size`
    /// bytes hashing to `digest` (hashed in blocks, not loaded whole), durable before
    /// returning. [`Error::Incomplete`] if bytes are missing; [`Error::DigestMismatch`]
    /// (and the partial bytes are dropped) if they hash to something else. If the blob is
    /// already stored, the writer's bytes are still checked when it has any (an agency
    /// proves it holds them), then dropped; a neighbour with none has nothing to prove.
    async fn complete_blob(&self, digest: Digest, writer: &BlobWriter, size: u64) -> Result<()>;

    /// Up to `max` bytes of the stored blob `digest` from `offset` (empty at its end);
    /// [`Error::NotFound`] if absent. Ranges are not checked against the digest: the
    /// reader checks the whole.
    async fn read_blob(&self, digest: Digest, offset: u64, max: usize) -> Result<Bytes>;
}
