//! The store's one error type.

/// What can go wrong in the store. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("message {id} was stored before with different content; send it with a new id")]
    Conflict { id: String },
    #[error("attachment bytes do not match their SHA-256 digest {expected}")]
    DigestMismatch { expected: String },
    #[error(
        "a chunk of blob {digest} starts at byte {offset} but only {held} bytes are held; \
         resume from {held}"
    )]
    Gap {
        digest: String,
        offset: u64,
        held: u64,
    },
    #[error("blob {digest} holds {held} of its {size} bytes; send the rest before completing it")]
    Incomplete {
        digest: String,
        held: u64,
        size: u64,
    },
    #[error("{0} not found in the store")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Bytes of the write-ahead log that were synced (so acknowledged writes may be in
    /// them) are damaged or missing. Opening over them would drop those writes without a
    /// word, so the store does not open until `lienthong store repair` has kept what is
    /// intact and said what was lost.
    #[error(
        "the store's write-ahead log {path} is damaged at byte {offset}: {what}. Writes \
         acknowledged there would be lost, so the store does not open: stop the node and run \
         `lienthong store repair --data-dir {data_dir}`, which keeps every intact frame and \
         reports what was lost"
    )]
    DamagedLog {
        segment: u32,
        offset: u64,
        /// The segment file.
        path: String,
        /// What is wrong there.
        what: String,
        /// The store's data directory, for the repair command.
        data_dir: String,
    },
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error(
        "the store at {path} has data format {found}, and this lienthong reads format \
         {expected}: drain its queues with the lienthong that wrote it, or start this node \
         on a new data directory"
    )]
    Format {
        path: String,
        found: String,
        expected: u8,
    },
    #[error("storage engine error: {0}")]
    Sled(#[from] sled::Error),
    #[error("disk I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store is shutting down")]
    Closed,
}
