//! [`SledStore`]: the [`Store`] on sled (`dir/db`) and plain files (`dir/blobs/`).
//!
//! # How a write works
//! Reads go straight to sled. Writes go to one applier thread ([`writer`]) that turns the
//! writes waiting at a moment into one frame of a write-ahead log ([`wal`]), synced once
//! for all of them (group commit), and then into changes to sled. Only `Ok` after
//! that sync: a returned write survives a crash. sled is flushed in the background
//! ([`checkpoint`]); opening the store applies the log written since the last flush.
//!
//! A log damaged where it was synced stops the store from opening
//! ([`Error::DamagedLog`]) until [`SledStore::repair`] has kept what is intact and said
//! what was lost ([`repair`]).

mod blob;
mod checkpoint;
mod codec;
mod private;
mod repair;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};

use crate::{
    AcceptOutcome, BlobWriter, Cursor, DeadLetter, Delivery, Digest, Envelope, Error, Handed,
    InboxEntry, OutboxEntry, QueueDepths, Result, Store, StoredMessage,
};
use blob::BlobDir;
use wal::Wal;
use writer::{Write, Writer, Written};

pub use repair::{LostRange, RepairReport};

/// A [`Store`] on sled, with a write-ahead log for group commit and fsynced blob files.
///
/// Dropping it stops its two threads (applier and checkpoint) after the writes already
/// queued and a last checkpoint, which takes at most a sled flush; then the database is
/// closed and the directory can be opened again.
pub struct SledStore {
    dir: PathBuf,
    tree: sled::Tree,
    writer: Writer,
    blobs: Arc<BlobDir>,
    /// Message bodies are read from the log.
    wal: Arc<Wal>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`: the sled database in `dir/db`, the
    /// write-ahead log with the message bodies in `dir/wal/`, and attachment blobs in
    /// `dir/blobs/`, every file readable by its owner only ([`private`]). Writes the log holds past the last checkpoint are applied again. Only
    /// one process can have a store open: a store another owner holds is refused after
    /// [`DEFAULT_LOCK_WAIT`] (see [`SledStore::open_waiting`]).
    pub fn open(dir: &Path) -> Result<SledStore> {
        Self::open_waiting(dir, DEFAULT_LOCK_WAIT)
    }

    /// Opens like [`SledStore::open`], waiting at most `lock_wait` for the database's lock:
    /// a store closed a moment ago in this process can hold it a little longer; a lock
    /// still held after `lock_wait` is another owner's, and [`Error::Open`] says so.
    pub fn open_waiting(dir: &Path, lock_wait: std::time::Duration) -> Result<SledStore> {
        private::create_dir(dir)?;
        let db_path = dir.join("db");
        private::create_dir(&db_path)?;
        let db = open_sled(&db_path, lock_wait).map_err(|source| Error::Open {
            path: db_path.display().to_string(),
            source,
        })?;
        private::narrow_tree(&db_path)?;
        let tree = db.open_tree("lienthong")?;
        check_format(&tree, &db_path)?;
        let blobs = Arc::new(BlobDir::open(dir.join("blobs"))?);
        let from = checkpoint::last(&tree)?;
        let (wal, appender, replayed) = Wal::open(dir.join("wal"), from, &tree)?;
        if replayed > 0 {
            checkpoint::checkpoint(&db, &tree, appender.position())?;
            tracing::info!(frames = replayed, dir = %dir.display(), "store: applied the write-ahead log written since the last checkpoint");
        }
        let writer = Writer::start(db.clone(), db_path, tree.clone(), (wal.clone(), appender))?;
        Ok(SledStore {
            dir: dir.to_path_buf(),
            tree,
            writer,
            blobs,
            wal,
        })
    }

    /// Repairs the store in `dir` after [`Error::DamagedLog`], with no node running on it:
    /// every intact frame of the write-ahead log is kept and applied, every damaged range
    /// is recorded as lost so that the store opens again, and the report says what was
    /// lost (byte ranges, frames, message ids). With `dry_run`, nothing is changed.
    pub fn repair(dir: &Path, dry_run: bool) -> Result<RepairReport> {
        repair::run(dir, dry_run)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BlobDir) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || f(&blobs))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// A write answered with the outcome of another kind of write: a bug in [`writer`].
fn unexpected(written: Written) -> Error {
    Error::Corrupt(format!(
        "internal error: unexpected write outcome {written:?}"
    ))
}

/// Where a message goes, as the applier writes it.
type Normalised = (
    Vec<AgencyCode>,
    Vec<(NodeId, Vec<AgencyCode>)>,
    Vec<(String, Vec<AgencyCode>)>,
);

/// The inboxes of `delivery` without repeats, its outboxes with the recipients of a hop
/// named twice merged, so each queue gets one entry per message, and its dead letters
/// with one entry per reason.
fn normalise(delivery: Delivery) -> Normalised {
    let mut inboxes: Vec<AgencyCode> = Vec::with_capacity(delivery.inboxes.len());
    for a in delivery.inboxes {
        if !inboxes.contains(&a) {
            inboxes.push(a);
        }
    }
    let mut outboxes: Vec<(NodeId, Vec<AgencyCode>)> = Vec::with_capacity(delivery.outboxes.len());
    for (hop, recipients) in delivery.outboxes {
        let slot = match outboxes.iter().position(|(h, _)| *h == hop) {
            Some(i) => &mut outboxes[i].1,
            None => {
                outboxes.push((hop, Vec::new()));
                &mut outboxes.last_mut().expect("just pushed").1
            }
        };
        for r in recipients {
            if !slot.contains(&r) {
                slot.push(r);
            }
        }
    }
    let mut dead: Vec<(String, Vec<AgencyCode>)> = Vec::new();
    for (recipient, reason) in delivery.dead {
        match dead.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, rs)) if rs.contains(&recipient) => {}
            Some((_, rs)) => rs.push(recipient),
            None => dead.push((reason, vec![recipient])),
        }
    }
    (inboxes, outboxes, dead)
}

#[async_trait]
impl Store for SledStore {
    async fn accept(
        &self,
        envelope: Envelope,
        delivery: Delivery,
        receipt: Bytes,
        events: Vec<Bytes>,
    ) -> Result<AcceptOutcome> {
        let (inboxes, outboxes, dead) = normalise(delivery);
        let write = Write::Accept {
            envelope,
            inboxes,
            outboxes,
            dead,
            receipt: receipt.clone(),
            events,
        };
        match self.writer.write(write).await? {
            Written::Accepted => Ok(AcceptOutcome::Accepted { receipt }),
            Written::Duplicate(original) => Ok(AcceptOutcome::Duplicate { receipt: original }),
            other => Err(unexpected(other)),
        }
    }

    fn message(&self, key: &MessageKey) -> Result<Option<StoredMessage>> {
        let Some(value) = self.tree.get(codec::message_key(key))? else {
            return Ok(None);
        };
        let record = codec::decode_message(&value)?;
        let body = self.wal.read(&record.body)?;
        record.to_stored(key, &body).map(Some)
    }

    fn has_message(&self, key: &MessageKey) -> Result<bool> {
        Ok(self.tree.contains_key(codec::message_key(key))?)
    }

    fn messages_with_id(&self, id: &DocumentId) -> Result<Vec<MessageKey>> {
        self.tree
            .scan_prefix(codec::message_id_prefix(id))
            .keys()
            .map(|key| codec::decode_message_key(&key?))
            .collect()
    }

    fn inbox(
        &self,
        agency: &AgencyCode,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let mut entries = Vec::new();
        for priority in (0..=3u8).rev() {
            let room = limit - entries.len();
            if room == 0 {
                break;
            }
            entries.extend(self.inbox_lane(agency, priority, after, room)?);
        }
        Ok(entries)
    }

    fn inbox_by_arrival(
        &self,
        agency: &AgencyCode,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        // The `limit` smallest cursors are among the first `limit` of each lane.
        let mut entries = Vec::new();
        for priority in 0..=3u8 {
            entries.extend(self.inbox_lane(agency, priority, after, limit)?);
        }
        entries.sort_by_key(|e| e.cursor);
        entries.truncate(limit);
        Ok(entries)
    }

    fn inbox_lane(
        &self,
        agency: &AgencyCode,
        priority: u8,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let start = match after {
            None => 0,
            Some(Cursor::MAX) => return Ok(Vec::new()),
            Some(c) => c + 1,
        };
        let prefix = codec::inbox_lane_prefix(agency, priority);
        let mut entries = Vec::new();
        for item in self.tree.range(codec::inbox_key(agency, priority, start)..) {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (message, kind, priority) = codec::decode_inbox(&value)?;
            entries.push(InboxEntry {
                cursor: codec::trailing_seq(&key)?,
                message,
                kind,
                priority,
            });
        }
        Ok(entries)
    }

    async fn ack(&self, agency: &AgencyCode, key: &MessageKey, event: Bytes) -> Result<bool> {
        let write = Write::Ack {
            agency: agency.clone(),
            message: key.clone(),
            event,
        };
        match self.writer.write(write).await? {
            Written::Acked(removed) => Ok(removed),
            other => Err(unexpected(other)),
        }
    }

    async fn append_event_logs(&self, logs: Vec<(MessageKey, Vec<Bytes>)>) -> Result<()> {
        self.writer
            .write(Write::AppendEvents { logs })
            .await
            .map(drop)
    }

    fn events(&self, key: &MessageKey) -> Result<Vec<Bytes>> {
        read_events(&self.tree, key)
    }

    fn outbox(&self, hop: &NodeId, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.tree
            .scan_prefix(codec::outbox_prefix(hop))
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                let (message, priority, recipients) = codec::decode_outbox(&value)?;
                Ok(OutboxEntry {
                    key: Bytes::copy_from_slice(&key),
                    message,
                    priority,
                    recipients,
                })
            })
            .collect()
    }

    fn outbox_lane(
        &self,
        hop: &NodeId,
        priority: u8,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        let lane = codec::outbox_lane_prefix(hop, priority);
        // key ++ [0] is the smallest key after `key`.
        let start = match after {
            Some(k) if k.starts_with(&lane) => [k, &[0u8][..]].concat(),
            _ => lane.clone(),
        };
        let mut out = Vec::new();
        for item in self.tree.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&lane) {
                break;
            }
            let (message, priority, recipients) = codec::decode_outbox(&value)?;
            out.push(OutboxEntry {
                key: Bytes::copy_from_slice(&key),
                message,
                priority,
                recipients,
            });
        }
        Ok(out)
    }

    async fn outbox_remove(&self, hop: &NodeId, handed: Vec<Handed>) -> Result<()> {
        for h in &handed {
            self.check_outbox_key(hop, &h.key)?;
        }
        let write = Write::OutboxRemove { handed };
        self.writer.write(write).await.map(drop)
    }

    fn queue_depths(&self) -> Result<QueueDepths> {
        Ok(QueueDepths {
            inboxes: self.count_queues(&codec::all_inboxes(), AgencyCode::parse)?,
            outboxes: self.count_queues(&codec::all_outboxes(), NodeId::parse)?,
            dead_letters: self.tree.scan_prefix(codec::dead_letter_prefix()).count() as u64,
        })
    }

    async fn dead_letter(
        &self,
        hop: &NodeId,
        entry: &OutboxEntry,
        reason: &str,
        events: Vec<Bytes>,
    ) -> Result<bool> {
        self.check_outbox_key(hop, &entry.key)?;
        let write = Write::DeadLetter {
            outbox_key: entry.key.to_vec(),
            message: entry.message.clone(),
            letter: codec::encode_dead_letter(
                &entry.message,
                entry.priority,
                Some(hop),
                lienthong_core::now_millis(),
                reason,
                &entry.recipients,
            ),
            events,
        };
        moved(self.writer.write(write).await?)
    }

    fn dead_letters(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<DeadLetter>> {
        let prefix = codec::dead_letter_prefix();
        let start = match after {
            Some(k) => [k, &[0u8][..]].concat(),
            None => prefix.to_vec(),
        };
        let mut out = Vec::new();
        for item in self.tree.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(codec::decode_dead_letter(&key, &value)?);
        }
        Ok(out)
    }

    async fn requeue_dead_letter(
        &self,
        key: &[u8],
        outboxes: Vec<(NodeId, Vec<AgencyCode>)>,
        event: Bytes,
        action: Bytes,
    ) -> Result<bool> {
        let write = Write::Requeue {
            key: key.to_vec(),
            outboxes,
            event,
            action,
        };
        moved(self.writer.write(write).await?)
    }

    async fn drop_dead_letter(&self, key: &[u8], event: Bytes, action: Bytes) -> Result<bool> {
        let write = Write::DropDeadLetter {
            key: key.to_vec(),
            event,
            action,
        };
        moved(self.writer.write(write).await?)
    }

    async fn log_operator_action(&self, action: Bytes) -> Result<()> {
        self.writer
            .write(Write::OperatorAction { action })
            .await
            .map(drop)
    }

    fn operator_log(&self, after: u64, limit: usize) -> Result<Vec<(u64, Bytes)>> {
        let prefix = codec::operator_prefix();
        let mut out = Vec::new();
        for item in self
            .tree
            .range(codec::operator_key(after.saturating_add(1))..)
        {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            out.push((codec::trailing_seq(&key)?, Bytes::copy_from_slice(&value)));
        }
        Ok(out)
    }

    async fn put_blob(&self, digest: Digest, data: Bytes) -> Result<()> {
        self.blocking(move |blobs| blobs.put(&digest, &data)).await
    }

    async fn blob(&self, digest: Digest) -> Result<Bytes> {
        self.blocking(move |blobs| blobs.get(&digest)).await
    }

    async fn blob_len(&self, digest: Digest) -> Result<Option<u64>> {
        self.blocking(move |blobs| blobs.len(&digest)).await
    }

    async fn partial_blob_len(&self, digest: Digest, writer: &BlobWriter) -> Result<u64> {
        let writer = writer.clone();
        self.blocking(move |blobs| blobs.partial_len(&digest, &writer))
            .await
    }

    async fn partial_blobs(&self, writer: &BlobWriter) -> Result<Vec<(Digest, u64)>> {
        let writer = writer.clone();
        self.blocking(move |blobs| blobs.partials_of(&writer)).await
    }

    async fn write_blob_chunk(
        &self,
        digest: Digest,
        writer: &BlobWriter,
        offset: u64,
        data: Bytes,
    ) -> Result<u64> {
        let writer = writer.clone();
        self.blocking(move |blobs| blobs.write_partial(&digest, &writer, offset, &data))
            .await
    }

    async fn complete_blob(&self, digest: Digest, writer: &BlobWriter, size: u64) -> Result<()> {
        let writer = writer.clone();
        self.blocking(move |blobs| blobs.complete_partial(&digest, &writer, size))
            .await
    }

    async fn read_blob(&self, digest: Digest, offset: u64, max: usize) -> Result<Bytes> {
        self.blocking(move |blobs| blobs.read_range(&digest, offset, max))
            .await
    }
}

/// The answer of a dead-letter write.
fn moved(written: Written) -> Result<bool> {
    match written {
        Written::Moved(found) => Ok(found),
        other => Err(unexpected(other)),
    }
}

impl SledStore {
    fn check_outbox_key(&self, hop: &NodeId, key: &[u8]) -> Result<()> {
        if key.starts_with(&codec::outbox_prefix(hop)) {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "outbox entry {} towards {hop} (the key belongs to another outbox or is not an outbox key)",
            hex::encode(key)
        )))
    }

    /// Entries per queue under `prefix` (all inboxes or all outboxes), sorted by queue
    /// name; one pass over the entries.
    fn count_queues<Q: Ord, E: std::fmt::Display>(
        &self,
        prefix: &[u8],
        parse: impl Fn(&str) -> Result<Q, E>,
    ) -> Result<Vec<(Q, u64)>> {
        let mut counts: Vec<(String, u64)> = Vec::new();
        for key in self.tree.scan_prefix(prefix).keys() {
            let key = key?;
            let name = codec::queue_name(&key)?;
            match counts.last_mut() {
                Some((last, n)) if last == name => *n += 1,
                _ => counts.push((name.to_string(), 1)),
            }
        }
        let mut queues = counts
            .into_iter()
            .map(|(name, n)| {
                let queue = parse(&name)
                    .map_err(|e| Error::Corrupt(format!("queue key names {name:?}: {e}")))?;
                Ok((queue, n))
            })
            .collect::<Result<Vec<_>>>()?;
        // Keys sort by name length first (length prefix); the admin API wants name order.
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(queues)
    }

    /// Path of the file holding blob `digest` (it may not exist); for operators and tests.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.path(digest)
    }
}

/// The event log of message `id` in `tree`, in order.
pub(crate) fn read_events(tree: &sled::Tree, id: &MessageKey) -> Result<Vec<Bytes>> {
    let mut events = Vec::new();
    for item in tree.scan_prefix(codec::event_prefix(id)) {
        let (key, value) = item?;
        events.push((codec::trailing_seq(&key)?, Bytes::copy_from_slice(&value)));
    }
    // The events given to `accept` live in the message record (see `codec`); they go
    // where their sequence number puts them, normally first.
    if let Some(message) = tree.get(codec::message_key(id))? {
        let (seq, block) = codec::decode_message(&message)?.events;
        let at = events.partition_point(|(s, _)| *s < seq);
        events.splice(
            at..at,
            block.into_iter().map(|e| (seq, Bytes::copy_from_slice(e))),
        );
    }
    Ok(events.into_iter().map(|(_, e)| e).collect())
}

/// How long [`SledStore::open`] waits for the lock of a database that is being closed.
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled at `path`. A store closed a moment ago in this process (a node restarted in
/// place) can hold the database's file lock a little longer: sled's I/O threads let go
/// of it after the last flush has returned. A lock still held after `lock_wait` is
/// another owner, and the error says so.
fn open_sled(path: &Path, lock_wait: std::time::Duration) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + lock_wait;
    loop {
        let opened = sled::Config::new()
            .path(path)
            // The write-ahead log makes writes durable, checkpoints flush sled; sled's own
            // periodic flush would only add I/O.
            .flush_every_ms(None)
            .open();
        match opened {
            // sled 0.34 reports it as an `Other` error with this text around the
            // `WouldBlock` of `flock`.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Checks that `tree` holds data in [`codec::FORMAT_VERSION`], writing the mark into a new
/// store. A store of another format is refused rather than misread.
fn check_format(tree: &sled::Tree, path: &Path) -> Result<()> {
    let expected = codec::FORMAT_VERSION;
    match tree.get(codec::format_key())? {
        Some(v) if v.as_ref() == [expected] => Ok(()),
        None if tree.is_empty() => {
            tree.insert(codec::format_key(), &[expected])?;
            tree.flush()?;
            Ok(())
        }
        found => Err(Error::Format {
            path: path.display().to_string(),
            found: match found {
                Some(v) => format!("{v:?}"),
                // Written before the mark existed: inbox keys without priority lanes.
                None => "1 (unmarked)".into(),
            },
            expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_waits_for_a_store_being_closed_and_refuses_one_held_open() {
        let dir = tempfile::tempdir().unwrap();
        let agency = AgencyCode::parse("000.00.00.H41").unwrap();
        for round in 0..20u32 {
            let store = SledStore::open(dir.path()).unwrap();
            for i in 0..50u32 {
                let id = DocumentId::parse(&format!("doc-{round}-{i}")).unwrap();
                let envelope = Envelope {
                    key: MessageKey::sent_by(&agency, &id),
                    kind: crate::MessageKind::Document,
                    priority: 0,
                    content_digest: [round as u8; 32],
                    encoded: Bytes::from(vec![b'x'; 2048]),
                    received_at: 0,
                };
                let delivery = Delivery {
                    inboxes: vec![agency.clone()],
                    outboxes: Vec::new(),
                    dead: Vec::new(),
                };
                store
                    .accept(envelope, delivery, Bytes::new(), Vec::new())
                    .await
                    .unwrap();
            }
            if round == 0 {
                // Another owner: refused once the wait is over (a short one: the lock is
                // a real file lock, so the wait is real time, injected here).
                let held =
                    SledStore::open_waiting(dir.path(), std::time::Duration::from_millis(50));
                assert!(matches!(held, Err(Error::Open { .. })), "{held:?}");
            }
            drop(store);
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.inbox(&agency, None, 2000).unwrap().len(), 1000);
        // An open while the store is still closing waits for it, as a node restarted in
        // place does.
        let closing = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(store);
        });
        let reopened = SledStore::open(dir.path());
        closing.join().unwrap();
        assert_eq!(
            reopened.unwrap().inbox(&agency, None, 2000).unwrap().len(),
            1000
        );
    }

    #[tokio::test]
    async fn a_write_that_fails_leaves_none_of_its_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        // A dead letter whose value does not decode: requeueing it fails after its removal
        // was staged.
        let key = codec::dead_letter_key(7);
        store.tree.insert(&key, &b"garbage"[..]).unwrap();
        let hop = NodeId::parse("H41").unwrap();
        let recipient = AgencyCode::parse("000.00.00.H41").unwrap();
        let requeued = store
            .requeue_dead_letter(
                &key,
                vec![(hop.clone(), vec![recipient])],
                Bytes::from_static(b"event"),
                Bytes::from_static(b"action"),
            )
            .await;
        assert!(matches!(requeued, Err(Error::Corrupt(_))), "{requeued:?}");
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert!(
            store.tree.contains_key(&key).unwrap(),
            "the dead letter stays"
        );
        assert!(store.outbox(&hop, 10).unwrap().is_empty());
        assert!(store.operator_log(0, 10).unwrap().is_empty());
    }
}
