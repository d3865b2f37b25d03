//! Group commit: one committer thread turns the writes applied by the applier
//! ([`super::writer`]) into as few `Db::flush()` calls as possible, and answers each
//! writer only after a flush that covers its write.
//!
//! The applier sends each applied group *after* `apply_batch` returned. The committer takes
//! every group waiting, flushes once, then answers all of them: every write it answers was
//! in sled before that flush started, so the flush covers it. While it flushes, the
//! applier applies the next groups, which the next flush collects.
//!
//! Groups that wrote nothing (a duplicate, a failed ack) go through the same queue: their
//! answer may rest on an earlier write still in flight (the original of a duplicate), and
//! the queue is FIFO, so they are answered only once that write is durable.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::{Error, Result};

/// Where a writer waits for its answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// The answers of one applied group, to send once durable.
pub(crate) type Applied<T> = Vec<(Reply<T>, Result<T>)>;

/// The committer thread; it ends once every [`mpsc::Sender`] of its queue is gone and the
/// queue is drained.
pub(crate) struct Committer {
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the committer for `db`; applied groups go to the returned sender.
    pub(crate) fn start<T: Send + 'static>(
        db: sled::Db,
    ) -> std::io::Result<(Committer, mpsc::Sender<Applied<T>>)> {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || run(db, rx))?;
        Ok((
            Committer {
                handle: Some(handle),
            },
            tx,
        ))
    }

    /// Waits until the committer has answered every group and stopped. Drop every sender
    /// first, or this waits forever.
    pub(crate) fn join(&mut self) {
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("the store's commit thread panicked");
        }
    }
}

fn run<T>(db: sled::Db, applied: mpsc::Receiver<Applied<T>>) {
    let mut answers: Applied<T> = Vec::new();
    while let Ok(first) = applied.recv() {
        answers.extend(first);
        while let Ok(more) = applied.try_recv() {
            answers.extend(more);
        }
        let flushed = db.flush();
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "flushing the store failed");
        }
        for (reply, outcome) in answers.drain(..) {
            let answer = match (&flushed, outcome) {
                (Ok(_), outcome) => outcome,
                // The write may or may not survive a crash: the writer must not count on it.
                (Err(e), Ok(_)) => Err(Error::Sled(e.clone())),
                (Err(_), Err(e)) => Err(e),
            };
            // The writer may have stopped waiting (its future dropped); nothing to do.
            let _ = reply.send(answer);
        }
    }
}
