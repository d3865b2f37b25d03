//! Large attachments, in chunks with bounded memory, resumable at every stage.
//!
//! An attachment is named by its SHA-256. Small ones travel inline, as always (in
//! `SendDocument`, in relay items, in `FetchDocument`). A large one travels on its own
//! streams, in chunks of at most [`CHUNK_BYTES`]:
//!
//! - DMS → node: `UploadAttachment`, then `SendDocument` names it without content. The
//!   node writes each chunk to a partial file and fsyncs it before reading the next, so
//!   `AttachmentStatus` tells a client where to resume after any error; the attachment
//!   becomes usable only once complete and its SHA-256 verified ([`receive`]).
//! - node → node: before a document leaves on a link, the link pushes each attachment that
//!   does not travel inline and the neighbour lacks (see the link module), from the
//!   neighbour's durable offset, and the neighbour receives it here ([`receive`]); the
//!   relay item then carries no content for it.
//! - node → DMS: `FetchDocument` leaves out the content of the attachments that do not
//!   travel inline ([`inline_flags`]); the DMS sees `size` > 0 with empty `content` and
//!   streams them with `FetchAttachment` from any offset ([`serve`]).
//!
//! Memory per transfer is a few chunks: one being written or read, and what HTTP/2 flow
//! control lets through.

use std::pin::Pin;
use std::sync::Arc;

use lienthong_core::{AgencyCode, Attachment, BlobChunk, BlobStatus};
use lienthong_store::{BlobWriter, Digest};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};

use crate::Error;
use crate::context::Context;

/// The largest chunk sent; smaller when `limits.max_message_bytes` asks for it.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// The largest attachment that travels inline in a relay item or a fetched document.
pub const INLINE_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Chunks read ahead of the network when sending.
const READ_AHEAD: usize = 2;

/// The chunk size under `max_message_bytes` (room left for the other fields).
pub fn chunk_bytes(max_message_bytes: usize) -> usize {
    CHUNK_BYTES
        .min(max_message_bytes.saturating_sub(1024) / 2)
        .max(1024)
}

/// What attachments a document fetched by a DMS carries inline, together (at most, and
/// no more than half of `limits.max_message_bytes`): small enough that the whole
/// response stays under the 4 MiB that stock gRPC clients accept by default. The others
/// come with `FetchAttachment`.
pub const FETCH_INLINE_BYTES: u64 = 3 * 1024 * 1024;

/// The inline budget of a relay item under `max_message_bytes`: half of it.
pub fn relay_inline_budget(max_message_bytes: usize) -> u64 {
    (max_message_bytes / 2) as u64
}

/// Which attachments travel inline, in order: each of at most [`INLINE_MAX_BYTES`], as
/// long as together they take at most `budget` bytes. The others travel on their own
/// streams.
pub fn inline_flags(attachments: &[Attachment], budget: u64) -> Vec<bool> {
    let mut budget = budget;
    attachments
        .iter()
        .map(|a| {
            if a.size <= INLINE_MAX_BYTES && a.size <= budget {
                budget -= a.size;
                true
            } else {
                false
            }
        })
        .collect()
}

/// What the node holds of blob `digest`; for a DMS (`asker`), only what its agency
/// uploaded: the bytes of other agencies, complete or partial, are not its business.
pub async fn status(
    ctx: &Context,
    digest: &Digest,
    asker: Option<&AgencyCode>,
) -> Result<BlobStatus, Error> {
    let digest = *digest;
    let store = &ctx.store;
    let (durable_bytes, complete) = match asker {
        Some(agency) if ctx.uploads.proven(&digest, agency) => {
            match store.blob_len(digest).await? {
                Some(len) => (len, true),
                None => (0, false),
            }
        }
        Some(agency) => (
            store
                .partial_blob_len(digest, &BlobWriter::Agency(agency.clone()))
                .await?,
            false,
        ),
        None => match store.blob_len(digest).await? {
            Some(len) => (len, true),
            None => (
                store.partial_blob_len(digest, &BlobWriter::Relay).await?,
                false,
            ),
        },
    };
    Ok(BlobStatus {
        sha256: digest,
        durable_bytes,
        complete,
    })
}

/// Checks that an attachment sent without content is held complete here and, from the
/// DMS of `uploader`, that its agency proved it holds it (uploaded all of it).
pub async fn check_held(
    ctx: &Context,
    attachment: &Attachment,
    uploader: Option<&AgencyCode>,
) -> Result<(), Error> {
    let held = match uploader {
        Some(agency) if !ctx.uploads.proven(&attachment.sha256, agency) => None,
        _ => ctx.store.blob_len(attachment.sha256).await?,
    };
    match held {
        Some(len) if len == attachment.size => Ok(()),
        Some(len) => Err(Error::AttachmentMismatch(format!(
            "attachment {:?} declares {} bytes but the bytes uploaded under its digest are {len}",
            attachment.name, attachment.size
        ))),
        None => Err(Error::AttachmentNotHeld(format!(
            "attachment {:?} carries no content and you have not uploaded its bytes \
             (SHA-256 {}) to node {}: upload them with UploadAttachment first (ask \
             AttachmentStatus where to resume)",
            attachment.name,
            hex::encode(attachment.sha256),
            ctx.id
        ))),
    }
}

/// Whether `agency` may start uploading a blob of `size` bytes: not larger than
/// `limits.max_attachment_bytes`, and within its quota of bytes that no document of its
/// names yet (`limits.upload_quota_bytes`, partial uploads included).
async fn admit_upload(
    ctx: &Context,
    agency: &AgencyCode,
    digest: &Digest,
    size: u64,
) -> Result<(), Error> {
    let limits = &ctx.limits;
    if size > limits.max_attachment_bytes {
        return Err(Error::AttachmentTooLarge(format!(
            "an attachment of {size} bytes is larger than node {} takes ({} bytes); \
             send a smaller file",
            ctx.id, limits.max_attachment_bytes
        )));
    }
    let writer = BlobWriter::Agency(agency.clone());
    let partial: u64 = ctx
        .store
        .partial_blobs(&writer)
        .await?
        .iter()
        .filter(|(d, _)| d != digest)
        .map(|(_, len)| len)
        .sum();
    let held = partial.saturating_add(ctx.uploads.unsent_bytes(agency)?);
    if held.saturating_add(size) > limits.upload_quota_bytes {
        return Err(Error::UploadQuota(format!(
            "{agency} holds {held} bytes of uploads at node {} that no document names yet; \
             {size} more would pass its quota of {} bytes: send the documents that name \
             them first",
            ctx.id, limits.upload_quota_bytes
        )));
    }
    Ok(())
}

/// Receives the chunks of one blob (`UploadAttachment` from the DMS of `uploader`,
/// `PushBlob` from a neighbour when `None`): each is fsynced before the next is read.
/// Completes the blob when its last byte arrives. Returns what is held when the stream
/// ends; a broken stream keeps every chunk written before it.
///
/// An agency's upload goes to a partial file of its own and counts only once all its
/// bytes arrived and hashed to the digest, even when the blob is stored already: that
/// is how it proves it holds the bytes it may then name in a document.
pub async fn receive(
    ctx: &Context,
    mut chunks: impl Stream<Item = Result<BlobChunk, Error>> + Unpin,
    uploader: Option<&AgencyCode>,
) -> Result<BlobStatus, Error> {
    let writer = uploader.map_or(BlobWriter::Relay, |a| BlobWriter::Agency(a.clone()));
    let mut named: Option<(Digest, u64)> = None;
    let mut held = 0u64;
    loop {
        let chunk = match chunks.next().await {
            Some(Ok(chunk)) => chunk,
            None => break,
            Some(Err(e)) => {
                tracing::debug!(node = %ctx.id, held, error = %e, "blob stream broken");
                return Err(match e {
                    Error::Transport(e) => Error::Transport(format!(
                        "the chunk stream broke after {held} durable bytes: {e}"
                    )),
                    e => e,
                });
            }
        };
        let digest = chunk.sha256;
        match named {
            None => {
                match uploader {
                    // Proven before: nothing more to send.
                    Some(agency) if ctx.uploads.proven(&digest, agency) => {
                        return status(ctx, &digest, uploader).await;
                    }
                    Some(agency) => admit_upload(ctx, agency, &digest, chunk.size).await?,
                    None => {
                        if ctx.store.blob_len(digest).await?.is_some() {
                            return status(ctx, &digest, None).await;
                        }
                    }
                }
                named = Some((digest, chunk.size));
            }
            Some((d, size)) if d != digest || size != chunk.size => {
                return Err(Error::InvalidArgument(
                    "every chunk of a stream must name the same sha256 and size".into(),
                ));
            }
            Some(_) => {}
        }
        // Cheap (the free space is read at most every 250 ms): a long upload stops
        // before it fills the disk.
        ctx.check_disk_space()?;
        let size = chunk.size;
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > size {
            return Err(Error::InvalidArgument(format!(
                "a chunk ends at byte {end}, beyond the declared size {size}"
            )));
        }
        held = ctx
            .store
            .write_blob_chunk(digest, &writer, chunk.offset, chunk.data)
            .await?;
        // `>=`: a partial file already whole (its completion cut short by a crash) is
        // completed by the sender's one empty chunk at its end; a longer one fails its
        // hash there and is dropped.
        if held >= size {
            ctx.store.complete_blob(digest, &writer, size).await?;
            if let Some(agency) = uploader {
                ctx.uploads.note_proven(&digest, agency, size)?;
            }
            break;
        }
    }
    match named {
        Some((digest, _)) => status(ctx, &digest, uploader).await,
        None => Err(Error::InvalidArgument("the stream carried no chunk".into())),
    }
}

/// The chunks of blob `digest` from `offset`, read ahead of the network by a few chunks.
pub fn read_chunks(
    ctx: Arc<Context>,
    digest: Digest,
    size: u64,
    mut offset: u64,
    chunk: usize,
) -> mpsc::Receiver<Result<BlobChunk, Error>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        if offset >= size {
            // The receiver holds every byte but has not completed the blob (a crash cut
            // its completion short): one empty chunk at the end lets it complete.
            let end = BlobChunk {
                sha256: digest,
                size,
                offset,
                data: bytes::Bytes::new(),
            };
            let _ = tx.send(Ok(end)).await;
            return;
        }
        while offset < size {
            let data = match ctx.store.read_blob(digest, offset, chunk).await {
                Ok(data) if data.is_empty() => {
                    let _ = tx
                        .send(Err(Error::Store(lienthong_store::Error::Corrupt(format!(
                            "blob {} is shorter than its {size} bytes",
                            hex::encode(digest)
                        )))))
                        .await;
                    return;
                }
                Ok(data) => data,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let len = data.len() as u64;
            let c = BlobChunk {
                sha256: digest,
                size,
                offset,
                data,
            };
            if tx.send(Ok(c)).await.is_err() {
                return;
            }
            offset += len;
        }
    });
    rx
}

/// The chunks of a blob being served.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<BlobChunk, Error>> + Send>>;
