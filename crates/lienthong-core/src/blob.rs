//! Attachment bytes in transit: chunks of a blob named by its SHA-256, and what a party
//! holds of one. The same values serve a DMS uploading or fetching, and two nodes pushing
//! a blob between them.

use bytes::Bytes;

/// SHA-256 digest: the name of a blob.
pub type Digest = [u8; 32];

/// One chunk of blob `sha256`, of `size` bytes in all, starting at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobChunk {
    pub sha256: Digest,
    /// The blob's total size; the same on every chunk of a transfer.
    pub size: u64,
    /// Where `data` starts: at most what the receiver holds.
    pub offset: u64,
    pub data: Bytes,
}

/// What a party holds of blob `sha256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobStatus {
    pub sha256: Digest,
    /// Bytes held durably: a transfer resumes from here.
    pub durable_bytes: u64,
    /// All bytes held and verified against the digest.
    pub complete: bool,
}
