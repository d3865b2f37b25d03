//! Checkpoints: sled is flushed in the background, not per write (the write-ahead log
//! makes writes durable, see [`super::wal`]). A checkpoint notes in sled how far the log
//! had been applied, then flushes sled; the next open replays the log from there.
//!
//! The checkpoint thread wakes every [`EVERY`], and once more when the store closes, so a
//! store closed in order reopens with nothing to replay.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wal::LogEnd;
use super::{codec, private};
use crate::Result;

/// How often sled is flushed; it bounds what an open has to replay.
const EVERY: Duration = Duration::from_millis(1000);

/// Where the applier has applied the log up to; the applier moves it, checkpoints read it.
pub(crate) type Applied = Arc<Mutex<LogEnd>>;

/// The checkpoint thread; dropping the handle makes a last checkpoint and stops it.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer").finish_non_exhaustive()
    }
}

/// Notes `at` in `tree` and flushes: everything applied before is durable in sled, and
/// an open replays from `at`.
pub(crate) fn checkpoint(db: &sled::Db, tree: &sled::Tree, at: LogEnd) -> Result<()> {
    tree.insert(codec::checkpoint_key(), &at.encode())?;
    db.flush()?;
    Ok(())
}

/// Where the last checkpoint of `tree` left the log (its start for a new store).
pub(crate) fn last(tree: &sled::Tree) -> Result<LogEnd> {
    match tree.get(codec::checkpoint_key())? {
        Some(v) => LogEnd::decode(&v),
        None => Ok(LogEnd::default()),
    }
}

impl Checkpointer {
    /// Starts checkpointing `tree` of `db`, whose files are in `db_dir`.
    pub(crate) fn start(
        db: sled::Db,
        db_dir: std::path::PathBuf,
        tree: sled::Tree,
        applied: Applied,
    ) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                let mut done = *applied.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let last_round = match stopped.recv_timeout(EVERY) {
                        Err(RecvTimeoutError::Timeout) => false,
                        // Stopped, or the store dropped.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    let at = *applied.lock().unwrap_or_else(|p| p.into_inner());
                    if at != done {
                        match checkpoint(&db, &tree, at) {
                            Ok(()) => {
                                done = at;
                                // sled may have added a file (a large page) since.
                                if let Err(e) = private::narrow_tree(&db_dir) {
                                    tracing::error!(error = %e, dir = %db_dir.display(), "cannot make the database's files private");
                                }
                            }
                            // The log still holds everything; the next round tries again.
                            Err(e) => tracing::error!(error = %e, "store checkpoint failed"),
                        }
                    }
                    if last_round {
                        return;
                    }
                }
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("the store's checkpoint thread panicked");
        }
    }
}
