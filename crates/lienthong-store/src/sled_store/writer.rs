//! The write path: one applier thread turns the writes waiting at a moment into one group:
//! one frame of the write-ahead log, synced once ([`super::wal`]), then applies the frame's
//! changes to sled; then it answers every writer of the group. That is group commit: one
//! `fdatasync` for all the writers waiting at that moment, whatever their number, and a
//! group is all or nothing across a crash (the frame is).
//!
//! Processing writes one at a time on this thread is also what makes them correct:
//! - the dedup check of an accept and its write cannot interleave with another accept of
//!   the same message key (one accepted earlier in the same group counts as stored);
//! - sequence numbers are taken and applied in order, so the entries of an inbox lane
//!   become visible in cursor order and a subscriber reading a lane after cursor `c` never
//!   misses an entry that appears later with a smaller cursor.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use lienthong_core::{AgencyCode, MessageKey, NodeId};

use super::checkpoint::{Applied, Checkpointer};
use super::codec;
use super::wal::{Appender, GROUP_BYTES, Wal};
use crate::{Digest, Envelope, Error, Handed, Result};

/// Most writes in one group: bounds a frame's size and the wait of the first writer.
const MAX_GROUP: usize = 512;

/// A write the applier performs.
#[derive(Debug)]
pub(crate) enum Write {
    Accept {
        envelope: Envelope,
        inboxes: Vec<AgencyCode>,
        outboxes: Vec<(NodeId, Vec<AgencyCode>)>,
        /// Dead letters: the recipients sharing each reason.
        dead: Vec<(String, Vec<AgencyCode>)>,
        receipt: Bytes,
        events: Vec<Bytes>,
    },
    Ack {
        agency: AgencyCode,
        message: MessageKey,
        event: Bytes,
    },
    AppendEvents {
        logs: Vec<(MessageKey, Vec<Bytes>)>,
    },
    /// Outbox entries leave, and events about their hand-off are appended.
    OutboxRemove {
        handed: Vec<Handed>,
    },
    /// An outbox entry becomes a dead letter.
    DeadLetter {
        outbox_key: Vec<u8>,
        message: MessageKey,
        letter: Vec<u8>,
        events: Vec<Bytes>,
    },
    /// A dead letter goes back to outboxes.
    Requeue {
        key: Vec<u8>,
        outboxes: Vec<(NodeId, Vec<AgencyCode>)>,
        event: Bytes,
        action: Bytes,
    },
    DropDeadLetter {
        key: Vec<u8>,
        event: Bytes,
        action: Bytes,
    },
    OperatorAction {
        action: Bytes,
    },
}

/// What a write did, before it is durable.
#[derive(Debug)]
pub(crate) enum Written {
    Accepted,
    /// The message existed with the same digest; its original receipt.
    Duplicate(Bytes),
    Acked(bool),
    /// Whether a dead-letter write found its entry.
    Moved(bool),
    Done,
}

/// Where a writer waits for its answer.
type Reply = tokio::sync::oneshot::Sender<Result<Written>>;

/// Handle to the applier and checkpoint threads; when dropped, stops them after the
/// writes already queued and a last checkpoint, so the database is closed when the store
/// is.
pub(crate) struct Writer {
    requests: Option<mpsc::Sender<(Write, Reply)>>,
    applier: Option<JoinHandle<()>>,
    checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts writing to `tree` (of `db`, in `db_dir`) through the log (`wal` and its
    /// appender).
    pub(crate) fn start(
        db: sled::Db,
        db_dir: std::path::PathBuf,
        tree: sled::Tree,
        (log, wal): (Arc<Wal>, Appender),
    ) -> std::io::Result<Writer> {
        let applied: Applied = Arc::new(std::sync::Mutex::new(wal.position()));
        let checkpointer = Checkpointer::start(db.clone(), db_dir, tree.clone(), applied.clone())?;
        let (tx, rx) = mpsc::channel();
        let applier = Applier {
            db,
            tree,
            wal,
            log,
            applied,
        };
        let handle = std::thread::Builder::new()
            .name("store-apply".into())
            .spawn(move || applier.run(rx))?;
        Ok(Writer {
            requests: Some(tx),
            applier: Some(handle),
            checkpointer: Some(checkpointer),
        })
    }

    /// Performs `write` and returns once it is durable.
    pub(crate) async fn write(&self, write: Write) -> Result<Written> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests
            .as_ref()
            .ok_or(Error::Closed)?
            .send((write, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the applier once it has drained it; then the last
        // checkpoint.
        drop(self.requests.take());
        if let Some(handle) = self.applier.take()
            && handle.join().is_err()
        {
            tracing::error!("the store's apply thread panicked");
        }
        drop(self.checkpointer.take());
    }
}

struct Applier {
    db: sled::Db,
    tree: sled::Tree,
    /// Every change of a group goes through here: staged, then committed.
    wal: Appender,
    /// For the original receipt of a duplicate.
    log: Arc<Wal>,
    /// Where the log is applied up to, for checkpoints.
    applied: Applied,
}

/// What the writes of the group so far have done, for the writes after them in the group.
#[derive(Default)]
struct Group {
    /// Messages accepted in this group: key → digest and receipt.
    accepted: HashMap<Vec<u8>, (Digest, Bytes)>,
    /// Queue entries (inbox, outbox, dead letter) removed in this group.
    removed: HashSet<Vec<u8>>,
    /// Events appended to logs by `AppendEvents` in this group: message key → events.
    appended: HashMap<Vec<u8>, Vec<Bytes>>,
    /// What the write being prepared added to `removed` and `appended` (with the length
    /// the key's events had before), to take back if it fails.
    removed_now: Vec<Vec<u8>>,
    appended_now: Vec<(Vec<u8>, Option<usize>)>,
}

impl Group {
    /// Ends the write being prepared: what it added stays if it succeeded, and is
    /// forgotten if it failed.
    fn settle(&mut self, succeeded: bool) {
        if succeeded {
            self.removed_now.clear();
            self.appended_now.clear();
            return;
        }
        for key in self.removed_now.drain(..) {
            self.removed.remove(&key);
        }
        for (key, before) in self.appended_now.drain(..).rev() {
            match before {
                Some(len) => self.appended.entry(key).or_default().truncate(len),
                None => {
                    self.appended.remove(&key);
                }
            }
        }
    }
}

impl Applier {
    fn run(mut self, requests: mpsc::Receiver<(Write, Reply)>) {
        while let Ok(first) = requests.recv() {
            let mut group = Group::default();
            let mut answers: Vec<(Reply, Result<Written>)> = Vec::new();
            let mut next = Some(first);
            while let Some((write, reply)) = next {
                // A write that fails leaves nothing behind, not even part of its changes.
                let mark = self.wal.staged_bytes();
                let outcome = self.prepare(write, &mut group);
                if outcome.is_err() {
                    self.wal.unstage(mark);
                }
                group.settle(outcome.is_ok());
                answers.push((reply, outcome));
                next = if answers.len() < MAX_GROUP && self.wal.staged_bytes() < GROUP_BYTES {
                    requests.try_recv().ok()
                } else {
                    None
                };
            }
            // Durable first (the log), then visible (sled), then answered. A group that
            // wrote nothing (duplicates, failed acks) is answered in turn too: an answer
            // may rest on a write of an earlier group, durable by now.
            // After a failure, checkpoints stay before the failed group: one that is in the
            // log but not wholly in sled is applied again when the store next opens.
            match self.wal.commit(&self.tree) {
                Ok(at) => *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = at,
                Err(failed) => {
                    tracing::error!(error = ?failed, "store write failed");
                    for (_, outcome) in &mut answers {
                        if outcome.is_ok() {
                            *outcome = Err(failed.error());
                        }
                    }
                }
            }
            for (reply, outcome) in answers {
                // The writer may have stopped waiting (its future dropped); nothing to do.
                let _ = reply.send(outcome);
            }
        }
    }

    /// Store-wide sequence numbers start at 1, so that cursor 0 always means "before the
    /// first entry" to a subscriber.
    fn next_seq(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Checks `write` against the store and the group, and stages its changes.
    fn prepare(&mut self, write: Write, group: &mut Group) -> Result<Written> {
        match write {
            Write::Accept {
                envelope,
                inboxes,
                outboxes,
                dead,
                receipt,
                events,
            } => {
                let id = &envelope.key;
                let key = codec::message_key(id);
                let existing = match group.accepted.get(&key) {
                    Some((digest, receipt)) => Some((*digest, receipt.clone())),
                    None => match self.tree.get(&key)? {
                        Some(v) => {
                            let m = codec::decode_message(&v)?;
                            let body = self.log.read(&m.body)?;
                            let (receipt, _) = codec::decode_body(&body)?;
                            Some((m.content_digest, Bytes::copy_from_slice(receipt)))
                        }
                        None => None,
                    },
                };
                if let Some((digest, original)) = existing {
                    return if digest == envelope.content_digest {
                        Ok(Written::Duplicate(original))
                    } else {
                        Err(Error::Conflict {
                            id: id.id.to_string(),
                        })
                    };
                }
                // Numbers first (the only step that can fail), then the changes: the
                // record before the queue entries that name it, because sled applies the
                // changes one by one and a reader must never find an entry without its
                // message.
                let mut cursors = Vec::with_capacity(inboxes.len());
                for agency in inboxes {
                    cursors.push((agency, self.next_seq()?));
                }
                let mut entries = Vec::with_capacity(outboxes.len() + dead.len());
                for (hop, recipients) in &outboxes {
                    entries.push((
                        codec::outbox_key(hop, envelope.priority, self.next_seq()?),
                        codec::encode_outbox(id, envelope.priority, recipients),
                    ));
                }
                for (reason, recipients) in &dead {
                    let letter = codec::encode_dead_letter(
                        id,
                        envelope.priority,
                        None,
                        envelope.received_at,
                        reason,
                        recipients,
                    );
                    entries.push((codec::dead_letter_key(self.next_seq()?), letter));
                }
                let block = (self.next_seq()?, events.as_slice());
                let mut len = [0; 4];
                let body =
                    self.wal
                        .body(&codec::encode_body(&mut len, &receipt, &envelope.encoded));
                self.wal.insert(
                    key.clone(),
                    codec::encode_message(&envelope, block, &cursors, &body),
                );
                let inbox_value = codec::encode_inbox(id, envelope.kind, envelope.priority);
                for (agency, cursor) in &cursors {
                    self.wal.insert(
                        codec::inbox_key(agency, envelope.priority, *cursor),
                        inbox_value.as_slice(),
                    );
                }
                for (key, value) in entries {
                    self.wal.insert(key, value);
                }
                group
                    .accepted
                    .insert(key, (envelope.content_digest, receipt));
                Ok(Written::Accepted)
            }
            Write::Ack {
                agency,
                message: id,
                event,
            } => {
                // A message accepted in this same group is not visible yet, so not
                // ackable yet: the tree is the only place to look.
                let entry = match self.tree.get(codec::message_key(&id))? {
                    Some(m) => {
                        let m = codec::decode_message(&m)?;
                        m.inbox_cursor(&agency)
                            .map(|c| codec::inbox_key(&agency, m.priority, c))
                    }
                    None => None,
                };
                let Some(entry) = entry else {
                    return Ok(Written::Acked(false));
                };
                if !self.take(group, &entry)? {
                    return Ok(Written::Acked(false));
                }
                self.log_event(&id, &event)?;
                Ok(Written::Acked(true))
            }
            Write::AppendEvents { logs } => {
                for (id, events) in logs {
                    // An event already in the log (byte for byte) is not added again.
                    let key = codec::message_key(&id);
                    let mut logged = super::read_events(&self.tree, &id)?;
                    logged.extend(group.appended.get(&key).into_iter().flatten().cloned());
                    let mut added = Vec::new();
                    for event in events {
                        if logged.contains(&event) || added.contains(&event) {
                            continue;
                        }
                        self.log_event(&id, &event)?;
                        added.push(event);
                    }
                    let before = group.appended.get(&key).map(Vec::len);
                    group.appended_now.push((key.clone(), before));
                    group.appended.entry(key).or_default().extend(added);
                }
                Ok(Written::Done)
            }
            Write::OutboxRemove { handed } => {
                for Handed {
                    key,
                    message: id,
                    events,
                } in handed
                {
                    // Removing an absent key (a retry) writes nothing.
                    if self.take(group, &key)? {
                        for event in events {
                            self.log_event(&id, &event)?;
                        }
                    }
                }
                Ok(Written::Done)
            }
            Write::DeadLetter {
                outbox_key,
                message: id,
                letter,
                events,
            } => {
                if !self.take(group, &outbox_key)? {
                    return Ok(Written::Moved(false));
                }
                self.wal
                    .insert(codec::dead_letter_key(self.next_seq()?), letter);
                for event in events {
                    self.log_event(&id, &event)?;
                }
                Ok(Written::Moved(true))
            }
            Write::Requeue {
                key,
                outboxes,
                event,
                action,
            } => {
                let Some(value) = self.tree.get(&key)? else {
                    return Ok(Written::Moved(false));
                };
                if !self.take(group, &key)? {
                    return Ok(Written::Moved(false));
                }
                let letter = codec::decode_dead_letter(&key, &value)?;
                for (hop, recipients) in &outboxes {
                    self.wal.insert(
                        codec::outbox_key(hop, letter.priority, self.next_seq()?),
                        codec::encode_outbox(&letter.message, letter.priority, recipients),
                    );
                }
                self.log(&letter.message, event, action)?;
                Ok(Written::Moved(true))
            }
            Write::DropDeadLetter { key, event, action } => {
                let Some(value) = self.tree.get(&key)? else {
                    return Ok(Written::Moved(false));
                };
                if !self.take(group, &key)? {
                    return Ok(Written::Moved(false));
                }
                let letter = codec::decode_dead_letter(&key, &value)?;
                self.log(&letter.message, event, action)?;
                Ok(Written::Moved(true))
            }
            Write::OperatorAction { action } => {
                self.wal
                    .insert(codec::operator_key(self.next_seq()?), action.as_ref());
                Ok(Written::Done)
            }
        }
    }

    /// Stages the removal of queue entry `key`; `false` if it is not in the
    /// tree or an earlier write of the group removed it.
    fn take(&mut self, group: &mut Group, key: &[u8]) -> Result<bool> {
        if group.removed.contains(key) || !self.tree.contains_key(key)? {
            return Ok(false);
        }
        self.wal.remove(key);
        group.removed.insert(key.to_vec());
        group.removed_now.push(key.to_vec());
        Ok(true)
    }

    /// Stages `event` at the end of the log of message `id`.
    fn log_event(&mut self, id: &MessageKey, event: &[u8]) -> Result<()> {
        self.wal
            .insert(codec::event_key(id, self.next_seq()?), event);
        Ok(())
    }

    /// Appends a message event and an operator action.
    fn log(&mut self, id: &MessageKey, event: Bytes, action: Bytes) -> Result<()> {
        self.log_event(id, &event)?;
        self.wal
            .insert(codec::operator_key(self.next_seq()?), action.as_ref());
        Ok(())
    }
}
