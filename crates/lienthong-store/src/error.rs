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
