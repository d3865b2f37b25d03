//! The write path: one applier thread turns the writes waiting at a moment into one sled
//! batch, then hands the group to the committer ([`super::commit`]), which answers each
//! writer after a flush.
//!
//! Why a thread and not a mutex around per-write batches: a sled 0.34 batch rolls the log
//! buffer twice and takes sled's global write lock, and under a flush that is running all
//! the time (group commit under load) per-write batches topped out near 10k/s on the
//! 2-core machine. One batch per group keeps every write atomic (a group is applied all or
//! nothing, crash included) and makes its cost per group, not per write.
//!
//! Processing writes one at a time on this thread is also what makes them correct:
//! - the dedup check of an accept and its write cannot interleave with another accept of
//!   the same id (a same-id accept earlier in the same group counts as stored);
//! - sequence numbers are taken and applied in order, so the entries of an inbox lane
//!   become visible in cursor order and a subscriber reading a lane after cursor `c` never
//!   misses an entry that appears later with a smaller cursor.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, NodeId};

use super::codec;
use super::commit::{Applied, Committer, Reply};
use crate::{Digest, Envelope, Error, Handed, Result};

/// Most writes in one group: bounds a batch's size and the wait of the first writer.
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
        id: DocumentId,
        event: Bytes,
    },
    AppendEvents {
        logs: Vec<(DocumentId, Vec<Bytes>)>,
    },
    /// Outbox entries leave, and events about their hand-off are appended.
    OutboxRemove {
        handed: Vec<Handed>,
    },
    /// An outbox entry becomes a dead letter.
    DeadLetter {
        outbox_key: Vec<u8>,
        id: DocumentId,
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

/// Handle to the applier and committer threads; when dropped, stops them after the
/// writes already queued, so the database is closed when the store is.
pub(crate) struct Writer {
    requests: Option<mpsc::Sender<(Write, Reply<Written>)>>,
    applier: Option<JoinHandle<()>>,
    committer: Committer,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn start(db: sled::Db, tree: sled::Tree) -> std::io::Result<Writer> {
        let (committer, commit) = Committer::start(db.clone())?;
        let (tx, rx) = mpsc::channel();
        let applier = Applier { db, tree, commit };
        let handle = std::thread::Builder::new()
            .name("store-apply".into())
            .spawn(move || applier.run(rx))?;
        Ok(Writer {
            requests: Some(tx),
            applier: Some(handle),
            committer,
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
        // Closing the queue ends the applier once it has drained it; the applier's end
        // closes the committer's queue in turn.
        drop(self.requests.take());
        if let Some(handle) = self.applier.take()
            && handle.join().is_err()
        {
            tracing::error!("the store's apply thread panicked");
        }
        self.committer.join();
    }
}

struct Applier {
    db: sled::Db,
    tree: sled::Tree,
    commit: mpsc::Sender<Applied<Written>>,
}

/// What the writes of the group so far have done, for the writes after them in the group.
#[derive(Default)]
struct Group {
    batch: sled::Batch,
    /// Messages accepted in this group: key → digest and receipt.
    accepted: HashMap<Vec<u8>, (Digest, Bytes)>,
    /// Queue entries (inbox, outbox, dead letter) removed in this group.
    removed: HashSet<Vec<u8>>,
    /// Events appended to logs by `AppendEvents` in this group: message key → events.
    appended: HashMap<Vec<u8>, Vec<Bytes>>,
    wrote: bool,
}

impl Applier {
    fn run(self, requests: mpsc::Receiver<(Write, Reply<Written>)>) {
        while let Ok(first) = requests.recv() {
            let mut group = Group::default();
            let mut answers: Applied<Written> = Vec::new();
            let mut next = Some(first);
            while let Some((write, reply)) = next {
                let outcome = self.prepare(write, &mut group);
                answers.push((reply, outcome));
                next = if answers.len() < MAX_GROUP {
                    requests.try_recv().ok()
                } else {
                    None
                };
            }
            if group.wrote
                && let Err(e) = self.tree.apply_batch(group.batch)
            {
                for (_, outcome) in &mut answers {
                    if outcome.is_ok() {
                        *outcome = Err(Error::Sled(e.clone()));
                    }
                }
            }
            if self.commit.send(answers).is_err() {
                // Only if the committer died; the writers see their replies dropped.
                tracing::error!("the store's commit thread is gone");
                return;
            }
        }
    }

    /// Store-wide sequence numbers start at 1, so that cursor 0 always means "before the
    /// first entry" to a subscriber.
    fn next_seq(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Checks `write` against the store and the group, and adds its changes to the batch.
    fn prepare(&self, write: Write, group: &mut Group) -> Result<Written> {
        match write {
            Write::Accept {
                envelope,
                inboxes,
                outboxes,
                dead,
                receipt,
                events,
            } => {
                let id = &envelope.id;
                let key = codec::message_key(id);
                let existing = match group.accepted.get(&key) {
                    Some((digest, receipt)) => Some((*digest, receipt.clone())),
                    None => match self.tree.get(&key)? {
                        Some(v) => {
                            let m = codec::decode_message(&v)?;
                            Some((m.content_digest, Bytes::copy_from_slice(m.receipt)))
                        }
                        None => None,
                    },
                };
                if let Some((digest, original)) = existing {
                    return if digest == envelope.content_digest {
                        Ok(Written::Duplicate(original))
                    } else {
                        Err(Error::Conflict { id: id.to_string() })
                    };
                }
                let inbox_value = codec::encode_inbox(id, envelope.kind, envelope.priority);
                let mut cursors = Vec::with_capacity(inboxes.len());
                for agency in inboxes {
                    let cursor = self.next_seq()?;
                    group.batch.insert(
                        codec::inbox_key(&agency, envelope.priority, cursor),
                        inbox_value.as_slice(),
                    );
                    cursors.push((agency, cursor));
                }
                for (hop, recipients) in &outboxes {
                    group.batch.insert(
                        codec::outbox_key(hop, envelope.priority, self.next_seq()?),
                        codec::encode_outbox(id, envelope.priority, recipients),
                    );
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
                    group
                        .batch
                        .insert(codec::dead_letter_key(self.next_seq()?), letter);
                }
                let block = (self.next_seq()?, events.as_slice());
                group.batch.insert(
                    key.clone(),
                    codec::encode_message(&envelope, &receipt, block, &cursors),
                );
                group
                    .accepted
                    .insert(key, (envelope.content_digest, receipt));
                group.wrote = true;
                Ok(Written::Accepted)
            }
            Write::Ack { agency, id, event } => {
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
                self.log_event(group, &id, &event)?;
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
                        self.log_event(group, &id, &event)?;
                        added.push(event);
                    }
                    group.appended.entry(key).or_default().extend(added);
                }
                Ok(Written::Done)
            }
            Write::OutboxRemove { handed } => {
                for Handed { key, id, events } in handed {
                    // Removing an absent key (a retry) writes nothing.
                    if self.take(group, &key)? {
                        for event in events {
                            self.log_event(group, &id, &event)?;
                        }
                    }
                }
                Ok(Written::Done)
            }
            Write::DeadLetter {
                outbox_key,
                id,
                letter,
                events,
            } => {
                if !self.take(group, &outbox_key)? {
                    return Ok(Written::Moved(false));
                }
                group
                    .batch
                    .insert(codec::dead_letter_key(self.next_seq()?), letter);
                for event in events {
                    self.log_event(group, &id, &event)?;
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
                    group.batch.insert(
                        codec::outbox_key(hop, letter.priority, self.next_seq()?),
                        codec::encode_outbox(&letter.id, letter.priority, recipients),
                    );
                }
                self.log(group, &letter.id, event, action)?;
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
                self.log(group, &letter.id, event, action)?;
                Ok(Written::Moved(true))
            }
            Write::OperatorAction { action } => {
                group
                    .batch
                    .insert(codec::operator_key(self.next_seq()?), action.as_ref());
                group.wrote = true;
                Ok(Written::Done)
            }
        }
    }

    /// Removes the queue entry `key` in this group's batch; `false` if it is not in the
    /// tree or an earlier write of the group removed it.
    fn take(&self, group: &mut Group, key: &[u8]) -> Result<bool> {
        if group.removed.contains(key) || !self.tree.contains_key(key)? {
            return Ok(false);
        }
        group.batch.remove(key);
        group.removed.insert(key.to_vec());
        group.wrote = true;
        Ok(true)
    }

    /// Appends `event` to the log of message `id` in this group's batch.
    fn log_event(&self, group: &mut Group, id: &DocumentId, event: &[u8]) -> Result<()> {
        group
            .batch
            .insert(codec::event_key(id, self.next_seq()?), event);
        group.wrote = true;
        Ok(())
    }

    /// Appends a message event and an operator action.
    fn log(&self, group: &mut Group, id: &DocumentId, event: Bytes, action: Bytes) -> Result<()> {
        self.log_event(group, id, &event)?;
        group
            .batch
            .insert(codec::operator_key(self.next_seq()?), action.as_ref());
        group.wrote = true;
        Ok(())
    }
}
