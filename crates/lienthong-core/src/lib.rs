//! # lienthong-core
//!
//! The domain of the document-exchange bus (*trục liên thông văn bản*), free of I/O and of
//! any wire format:
//!
//! - [`id`]: agency codes (QĐ 20/2020/QĐ-TTg), node ids and document ids;
//! - [`document`]: the official document (edoc) with its header, business block,
//!   attachments, signature and hop trace, mirroring edXML (QCVN 102:2016);
//! - [`status`]: business status notices (01–06, 13, 15, 16) and transport events;
//! - [`lifecycle`]: the document lifecycle as pure rules: a document's business state
//!   folded from the messages about it, and which message may follow;
//! - [`canonical`]: the canonical bytes a sender signs, independent of protobuf encoding;
//! - [`directory`]: the signed directory of nodes and agencies, and tree routing over it;
//! - [`external`]: the agencies outside the directory that a bridge reaches on the
//!   national platform, as the bridge publishes them;
//! - [`blob`]: attachment bytes in transit (chunks and what is held of a blob);
//! - [`sign`]: signing and verification with ring (Ed25519, ECDSA P-256, RSA-2048 SHA-256).
#![forbid(unsafe_code)]

pub mod blob;
pub mod canonical;
pub mod directory;
pub mod document;
pub mod error;
pub mod external;
pub mod id;
pub mod lifecycle;
pub mod sign;
pub mod status;

pub use blob::{BlobChunk, BlobStatus, Digest};
pub use directory::{
    AgencyEntry, BridgeEntry, Directory, DirectoryIndex, NodeEntry, Route, RoutePlan,
};
pub use document::*;
pub use error::Error;
pub use id::{AgencyCode, DocumentId, MessageKey, NodeId};
pub use sign::{Signature, SignatureAlgorithm};
pub use status::*;

/// Milliseconds since the Unix epoch, the one time representation of the domain.
pub type UnixMillis = i64;

/// The current wall-clock time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
