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
//! - node → node: before a document leaves on a link, [`push`] sends each attachment that
//!   does not travel inline and the neighbour lacks (`RelayService.BlobStatus`,
//!   `PushBlob`), from the neighbour's durable offset; the relay item then carries no
//!   content for it. A broken push fails the link, which retries after its back-off and
//!   resumes from the neighbour's offset.
//! - node → DMS: `FetchDocument` leaves out the content of the attachments that do not
//!   travel inline ([`inline_flags`]); the DMS sees `size` > 0 with empty `content` and
//!   streams them with `FetchAttachment` from any offset ([`serve`]).
//!
//! Memory per transfer is a few chunks: one being written or read, and what HTTP/2 flow
//! control lets through.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use lienthong_core::{AgencyCode, Attachment, DocumentId, NodeId};
use lienthong_proto::pb;
use lienthong_store::{BlobWriter, Digest};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::Error;
use crate::node::{Fetched, Node, Origin};

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

fn digest_of(bytes: &[u8]) -> Result<Digest, Error> {
    bytes.try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "sha256 must be 32 bytes, not {}; it names the attachment",
            bytes.len()
        ))
    })
}

/// What each agency proved it holds here: `<dir>/<agency code>/<sha256 hex>`, a file
/// holding the blob's size, written once the agency streamed every byte of the blob and
/// they hashed to the digest — renamed `<hex>.sent` once a document of the agency names
/// it. A DMS may name in a document, or ask about, only blobs its agency proved it holds,
/// so a digest learnt elsewhere opens nothing and tells nothing. Marks not yet sent count
/// against the agency's upload quota. A mark lost in a crash costs one re-upload.
#[derive(Debug)]
pub struct Uploads {
    dir: PathBuf,
}

impl Uploads {
    /// Opens (creating) `dir`, readable by the node's user only.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        Ok(Uploads { dir })
    }

    fn agency_dir(&self, agency: &AgencyCode) -> PathBuf {
        self.dir.join(agency.as_str())
    }

    fn mark(&self, digest: &Digest, agency: &AgencyCode) -> PathBuf {
        self.agency_dir(agency).join(hex::encode(digest))
    }

    fn sent_mark(&self, digest: &Digest, agency: &AgencyCode) -> PathBuf {
        self.agency_dir(agency)
            .join(format!("{}.sent", hex::encode(digest)))
    }

    /// Whether `agency` proved here that it holds blob `digest`.
    pub fn proven(&self, digest: &Digest, agency: &AgencyCode) -> bool {
        self.mark(digest, agency).exists() || self.sent_mark(digest, agency).exists()
    }

    /// Notes, durably, that `agency` streamed all `size` bytes of blob `digest` and they
    /// hashed to it.
    pub fn note_proven(
        &self,
        digest: &Digest,
        agency: &AgencyCode,
        size: u64,
    ) -> std::io::Result<()> {
        if self.proven(digest, agency) {
            return Ok(());
        }
        let dir = self.agency_dir(agency);
        create_private_dir(&dir)?;
        let mut f = private_file(&self.mark(digest, agency))?;
        std::io::Write::write_all(&mut f, size.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::File::open(&dir)?.sync_all()
    }

    /// Notes that a document of `agency` names blob `digest`: it no longer counts
    /// against the agency's quota.
    pub fn note_sent(&self, digest: &Digest, agency: &AgencyCode) -> std::io::Result<()> {
        match std::fs::rename(self.mark(digest, agency), self.sent_mark(digest, agency)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes of the blobs `agency` proved it holds that no document of its names yet.
    pub fn unsent_bytes(&self, agency: &AgencyCode) -> std::io::Result<u64> {
        let entries = match std::fs::read_dir(self.agency_dir(agency)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut total = 0u64;
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".sent") {
                continue;
            }
            let size = std::fs::read_to_string(entry.path())?;
            total = total.saturating_add(size.trim().parse().unwrap_or(0));
        }
        Ok(total)
    }
}

/// Creates `dir` (and its parents) with mode 0700, and makes an existing one 0700.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates (truncating) a file with mode 0600.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// What the node holds of blob `digest`; for a DMS (`asker`), only what its agency
/// uploaded: the bytes of other agencies, complete or partial, are not its business.
pub async fn status(
    node: &Node,
    sha256: &[u8],
    asker: Option<&AgencyCode>,
) -> Result<pb::BlobStatus, Error> {
    let digest = digest_of(sha256)?;
    let store = node.store();
    let (durable_bytes, complete) = match asker {
        Some(agency) if node.uploads().proven(&digest, agency) => {
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
    Ok(pb::BlobStatus {
        sha256: bytes::Bytes::copy_from_slice(&digest),
        durable_bytes,
        complete,
    })
}

/// Checks that an attachment sent without content is held complete here and, from a
/// DMS, that its agency proved it holds it (uploaded all of it).
pub(crate) async fn check_held(
    node: &Node,
    attachment: &Attachment,
    origin: &Origin,
) -> Result<(), Error> {
    let held = match origin {
        Origin::Agency(agency) if !node.uploads().proven(&attachment.sha256, agency) => None,
        _ => node.store().blob_len(attachment.sha256).await?,
    };
    match held {
        Some(len) if len == attachment.size => Ok(()),
        Some(len) => Err(Error::InvalidArgument(format!(
            "attachment {:?} declares {} bytes but the bytes uploaded under its digest are {len}",
            attachment.name, attachment.size
        ))),
        None => Err(Error::FailedPrecondition(format!(
            "attachment {:?} carries no content and you have not uploaded its bytes \
             (SHA-256 {}) to node {}: upload them with UploadAttachment first (ask \
             AttachmentStatus where to resume)",
            attachment.name,
            hex::encode(attachment.sha256),
            node.id()
        ))),
    }
}

/// Whether `agency` may start uploading a blob of `size` bytes: not larger than
/// `limits.max_attachment_bytes`, and within its quota of bytes that no document of its
/// names yet (`limits.upload_quota_bytes`, partial uploads included).
async fn admit_upload(
    node: &Node,
    agency: &AgencyCode,
    digest: &Digest,
    size: u64,
) -> Result<(), Error> {
    let limits = node.limits();
    if size > limits.max_attachment_bytes {
        return Err(Error::ResourceExhausted(format!(
            "an attachment of {size} bytes is larger than node {} takes ({} bytes); \
             send a smaller file",
            node.id(),
            limits.max_attachment_bytes
        )));
    }
    let writer = BlobWriter::Agency(agency.clone());
    let partial: u64 = node
        .store()
        .partial_blobs(&writer)
        .await?
        .iter()
        .filter(|(d, _)| d != digest)
        .map(|(_, len)| len)
        .sum();
    let held = partial.saturating_add(node.uploads().unsent_bytes(agency)?);
    if held.saturating_add(size) > limits.upload_quota_bytes {
        return Err(Error::ResourceExhausted(format!(
            "{agency} holds {held} bytes of uploads at node {} that no document names yet; \
             {size} more would pass its quota of {} bytes: send the documents that name \
             them first",
            node.id(),
            limits.upload_quota_bytes
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
    node: &Node,
    mut chunks: Streaming<pb::BlobChunk>,
    uploader: Option<&AgencyCode>,
) -> Result<pb::BlobStatus, Error> {
    let writer = uploader.map_or(BlobWriter::Relay, |a| BlobWriter::Agency(a.clone()));
    let mut named: Option<(Digest, u64)> = None;
    let mut held = 0u64;
    loop {
        let chunk = match chunks.message().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(s) => {
                tracing::debug!(node = %node.id(), held, error = %s, "blob stream broken");
                return Err(Error::Transport(format!(
                    "the chunk stream broke after {held} durable bytes: {s}"
                )));
            }
        };
        let digest = digest_of(&chunk.sha256)?;
        match named {
            None => {
                match uploader {
                    // Proven before: nothing more to send.
                    Some(agency) if node.uploads().proven(&digest, agency) => {
                        return status(node, &digest, uploader).await;
                    }
                    Some(agency) => admit_upload(node, agency, &digest, chunk.size).await?,
                    None => {
                        if node.store().blob_len(digest).await?.is_some() {
                            return status(node, &digest, None).await;
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
        node.check_disk_space()?;
        let size = chunk.size;
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > size {
            return Err(Error::InvalidArgument(format!(
                "a chunk ends at byte {end}, beyond the declared size {size}"
            )));
        }
        held = node
            .store()
            .write_blob_chunk(digest, &writer, chunk.offset, chunk.data)
            .await?;
        // `>=`: a partial file already whole (its completion cut short by a crash) is
        // completed by the sender's one empty chunk at its end; a longer one fails its
        // hash there and is dropped.
        if held >= size {
            node.store().complete_blob(digest, &writer, size).await?;
            if let Some(agency) = uploader {
                node.uploads().note_proven(&digest, agency, size)?;
            }
            break;
        }
    }
    match named {
        Some((digest, _)) => status(node, &digest, uploader).await,
        None => Err(Error::InvalidArgument("the stream carried no chunk".into())),
    }
}

/// The chunks of blob `digest` from `offset`, read ahead of the network by a few chunks.
pub fn read_chunks(
    node: std::sync::Arc<Node>,
    digest: Digest,
    size: u64,
    mut offset: u64,
    chunk: usize,
) -> mpsc::Receiver<Result<pb::BlobChunk, Error>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        if offset >= size {
            // The receiver holds every byte but has not completed the blob (a crash cut
            // its completion short): one empty chunk at the end lets it complete.
            let end = pb::BlobChunk {
                sha256: bytes::Bytes::copy_from_slice(&digest),
                size,
                offset,
                data: bytes::Bytes::new(),
            };
            let _ = tx.send(Ok(end)).await;
            return;
        }
        while offset < size {
            let data = match node.store().read_blob(digest, offset, chunk).await {
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
            let c = pb::BlobChunk {
                sha256: bytes::Bytes::copy_from_slice(&digest),
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

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::BlobChunk, Status>> + Send>>;

/// `FetchAttachment`: the bytes of attachment `sha256` of document `id` from `offset`,
/// for a party to the document.
pub async fn serve(
    node: &std::sync::Arc<Node>,
    caller: &AgencyCode,
    id: &DocumentId,
    from: Option<&AgencyCode>,
    sha256: &[u8],
    offset: u64,
) -> Result<ChunkStream, Error> {
    let digest = digest_of(sha256)?;
    let found = match node.find_for(caller, id, from) {
        Ok(found) => Some(found),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let attachment = match found {
        Some((_, Fetched::Document { document, .. })) => document
            .attachments
            .into_iter()
            .find(|a| a.sha256 == digest),
        _ => None,
    }
    .ok_or_else(|| {
        Error::NotFound(format!(
            "document {id} with an attachment of SHA-256 {} is not known to node {} for you",
            hex::encode(digest),
            node.id()
        ))
    })?;
    if offset > attachment.size {
        return Err(Error::InvalidArgument(format!(
            "offset {offset} is beyond the attachment's {} bytes",
            attachment.size
        )));
    }
    let chunk = chunk_bytes(node.limits().max_message_bytes);
    let rx = read_chunks(node.clone(), digest, attachment.size, offset, chunk);
    Ok(Box::pin(tokio_stream::StreamExt::map(
        ReceiverStream::new(rx),
        |r| r.map_err(Status::from),
    )))
}

/// Pushes blob `attachment` to neighbour `hop` unless it holds it already, resuming from
/// its durable offset. Returns the bytes sent.
pub async fn push(
    node: &std::sync::Arc<Node>,
    hop: &NodeId,
    attachment: &Attachment,
) -> Result<u64, Error> {
    let max = node.limits().max_message_bytes;
    let mut client = crate::relay::relay_client(node, hop)?;
    let digest = attachment.sha256;
    let there = client
        .blob_status(pb::BlobStatusRequest {
            sha256: bytes::Bytes::copy_from_slice(&digest),
        })
        .await
        .map_err(|s| Error::Transport(format!("blob status at {hop}: {s}")))?
        .into_inner();
    if there.complete {
        return Ok(0);
    }
    let from = there.durable_bytes.min(attachment.size);
    if from > 0 {
        tracing::info!(node = %node.id(), %hop, digest = %hex::encode(digest), from, size = attachment.size, "resuming blob push");
    }
    let mut rx = read_chunks(
        node.clone(),
        digest,
        attachment.size,
        from,
        chunk_bytes(max),
    );
    let (tx, out) = mpsc::channel::<pb::BlobChunk>(1);
    // Read errors end the stream early; the neighbour then holds what came and reports
    // the blob incomplete, and the error is returned below.
    let reader = tokio::spawn(async move {
        while let Some(next) = rx.recv().await {
            match next {
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    // A neighbour that stops reading mid-push must not hold the push for ever: allow the
    // link's acknowledgement timeout plus the transfer at the slowest rate a link expects.
    let allowed = Duration::from_millis(node.delivery().ack_timeout_ms)
        + Duration::from_secs_f64(
            (attachment.size - from) as f64 / crate::relay::SLOWEST_BYTES_PER_SEC,
        );
    let result =
        match tokio::time::timeout(allowed, client.push_blob(ReceiverStream::new(out))).await {
            Ok(result) => result,
            Err(_) => {
                return Err(Error::Transport(format!(
                    "pushing blob {} to {hop} took longer than {allowed:?}",
                    hex::encode(digest)
                )));
            }
        };
    let read = reader
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    read?;
    let answer = match result {
        Ok(answer) => answer.into_inner(),
        // The neighbour's bytes do not hash to the digest. Its partial file may have
        // started with bytes from elsewhere (an earlier push, a crash mid-write), so this
        // node's copy is damaged only if it fails the hash here too; otherwise the
        // neighbour dropped its partial file and the next attempt starts over.
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            return Err(if blob_intact(node, &digest, attachment.size).await? {
                Error::Transport(format!(
                    "{hop} refused blob {} ({}); it starts over",
                    hex::encode(digest),
                    s.message()
                ))
            } else {
                Error::Store(lienthong_store::Error::Corrupt(format!(
                    "blob {} as stored here no longer matches its digest ({hop} refused it: {})",
                    hex::encode(digest),
                    s.message()
                )))
            });
        }
        Err(s) => return Err(Error::Transport(format!("pushing blob to {hop}: {s}"))),
    };
    if !answer.complete {
        return Err(Error::Transport(format!(
            "{hop} holds {} of the {} bytes of blob {} after a push",
            answer.durable_bytes,
            attachment.size,
            hex::encode(digest)
        )));
    }
    let sent = attachment.size - from;
    tracing::info!(node = %node.id(), %hop, digest = %hex::encode(digest), from, sent, "blob pushed");
    Ok(sent)
}

/// Whether this node's copy of blob `digest` still has its `size` bytes and hashes to
/// `digest`; read in chunks, never whole.
async fn blob_intact(node: &Node, digest: &Digest, size: u64) -> Result<bool, Error> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut at = 0u64;
    while at < size {
        let data = node.store().read_blob(*digest, at, 1024 * 1024).await?;
        if data.is_empty() {
            return Ok(false);
        }
        ctx.update(&data);
        at += data.len() as u64;
    }
    Ok(at == size && ctx.finish().as_ref() == digest)
}
