//! Attachments on the client's side: what to send (inline bytes or a file streamed in
//! chunks), uploads that resume from the node's durable offset, and downloads of large
//! attachments into memory or into files that resume from what they hold.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lienthong_core::{Attachment, BlobStatus, Document};
use lienthong_proto::pb;

use crate::{DmsClient, Error};

/// An attachment to send: its description and bytes.
#[derive(Debug, Clone)]
pub struct OutgoingAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Bytes,
}

impl OutgoingAttachment {
    /// Reads a file, guessing the content type from its extension.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let bytes =
            std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))?;
        let name = file_name(path);
        let content_type = content_type(path);
        Ok(OutgoingAttachment {
            name,
            content_type,
            bytes: bytes.into(),
        })
    }
}

/// Attachments at least this large are streamed in chunks by [`AttachmentSource::from_path`]
/// (and so by `lienthong send`) instead of travelling inline.
pub const STREAM_THRESHOLD_BYTES: u64 = 8 * 1024 * 1024;
/// The largest attachment [`DmsClient::fetch`] streams into memory; larger ones need
/// [`DmsClient::fetch_to_files`].
pub const FETCH_IN_MEMORY_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Attempts of a chunked upload or download before it gives up, each resuming where the
/// last left off.
const TRANSFER_ATTEMPTS: u32 = 8;

/// A large attachment sent from a file: described (size and SHA-256, hashed in blocks)
/// without loading it; its bytes are streamed in chunks.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    pub name: String,
    pub content_type: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
}

impl FileAttachment {
    /// Describes a file: its name, content type from the extension, size and SHA-256.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let (size, sha256) = hash_file(path)?;
        Ok(FileAttachment {
            name: file_name(path),
            content_type: content_type(path),
            path: path.to_path_buf(),
            size,
            sha256,
        })
    }
}

/// An attachment to send: inline bytes, or a (large) file streamed in chunks.
#[derive(Debug, Clone)]
pub enum AttachmentSource {
    Inline(OutgoingAttachment),
    File(FileAttachment),
}

impl AttachmentSource {
    /// A file below [`STREAM_THRESHOLD_BYTES`] inline, a larger one streamed.
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let len = std::fs::metadata(path)
            .map_err(Error::io(format!("reading {}", path.display())))?
            .len();
        Ok(if len >= STREAM_THRESHOLD_BYTES {
            AttachmentSource::File(FileAttachment::from_file(path)?)
        } else {
            AttachmentSource::Inline(OutgoingAttachment::from_file(path)?)
        })
    }
}

/// How a chunked upload went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// The node's durable offset when this upload began (bytes not sent again).
    pub resumed_from: u64,
    /// Bytes sent, over every attempt.
    pub bytes_sent: u64,
    /// Streams opened (1 when nothing broke, 0 when the node held it all already).
    pub attempts: u32,
}

/// The size and SHA-256 of a file, read in blocks.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), Error> {
    use std::io::Read;
    let io = |e| Error::io(format!("reading {}", path.display()))(e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    let digest = ctx
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes");
    Ok((size, digest))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into())
}

fn content_type(path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("xml") | Some("edxml") => "application/xml",
        Some("txt") => "text/plain",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
    .to_string()
}

async fn backoff(attempt: u32) {
    let ms = 100u64 << attempt.min(6);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

impl DmsClient {
    /// How many bytes of attachment `sha256` the node holds durably, and whether it is
    /// complete.
    pub async fn attachment_status(&self, sha256: &[u8; 32]) -> Result<BlobStatus, Error> {
        Ok(self
            .rpc
            .clone()
            .attachment_status(pb::BlobStatusRequest {
                sha256: Bytes::copy_from_slice(sha256),
            })
            .await?
            .into_inner()
            .try_into()?)
    }

    /// Streams a file to the node in chunks, from the node's durable offset; after an
    /// error asks again where the node stands and resumes from there. Memory: a few
    /// chunks.
    pub async fn upload_file(&self, file: &FileAttachment) -> Result<UploadReport, Error> {
        let mut report = UploadReport::default();
        let mut last_error = None;
        for attempt in 0..TRANSFER_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let status = match self.attachment_status(&file.sha256).await {
                Ok(s) => s,
                Err(e) if e.is_retryable() => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if attempt == 0 {
                report.resumed_from = if status.complete {
                    file.size
                } else {
                    status.durable_bytes
                };
            }
            if status.complete {
                return Ok(report);
            }
            report.attempts += 1;
            let (result, sent) = self.upload_from(file, status.durable_bytes).await;
            report.bytes_sent += sent;
            match result {
                Ok(s) if s.complete => return Ok(report),
                Ok(s) => {
                    last_error = Some(Error::Transport {
                        code: tonic::Code::Unavailable,
                        message: format!(
                            "the node holds {} of {} bytes after the upload stream ended",
                            s.durable_bytes, file.size
                        ),
                    })
                }
                Err(e) if e.is_retryable() => {
                    tracing::info!(file = %file.path.display(), error = %e, "upload broken; resuming");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Transport {
            code: tonic::Code::Unavailable,
            message: "upload failed".into(),
        }))
    }

    /// One upload stream from `offset`; returns its outcome and the bytes handed to it.
    async fn upload_from(
        &self,
        file: &FileAttachment,
        offset: u64,
    ) -> (Result<BlobStatus, Error>, u64) {
        use std::os::unix::fs::FileExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::BlobChunk>(2);
        let (path, size, digest, chunk) =
            (file.path.clone(), file.size, file.sha256, self.chunk_bytes);
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let f = std::fs::File::open(&path)?;
            let mut at = offset;
            // At least one chunk, empty when the node already holds every byte but has
            // not completed the blob (its completion was cut short): it completes then.
            let mut first = true;
            while at < size || first {
                first = false;
                let len = chunk.min(size.saturating_sub(at) as usize);
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, at)?;
                let c = pb::BlobChunk {
                    sha256: Bytes::copy_from_slice(&digest),
                    size,
                    offset: at,
                    data: buf.into(),
                };
                if tx.blocking_send(c).is_err() {
                    break;
                }
                at += len as u64;
            }
            Ok(at - offset)
        });
        let result = self
            .rpc
            .clone()
            .upload_attachment(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(Error::from)
            .and_then(|r| Ok(r.into_inner().try_into()?));
        let sent = match reader.await {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) => {
                return (
                    Err(Error::io(format!("reading {}", file.path.display()))(e)),
                    0,
                );
            }
            Err(e) => {
                return (
                    Err(Error::Io {
                        context: "the file reader".into(),
                        source: std::io::Error::other(e),
                    }),
                    0,
                );
            }
        };
        (result, sent)
    }

    /// Uploads the [`AttachmentSource::File`]s of `sources` (resuming where the node
    /// stands), then seals and sends the document; returns the receipt, whether it was a
    /// duplicate, and one report per uploaded file.
    pub async fn send_sources(
        &self,
        document: &mut Document,
        sources: &[AttachmentSource],
    ) -> Result<(crate::Accepted, Vec<UploadReport>), Error> {
        let mut reports = Vec::new();
        for source in sources {
            if let AttachmentSource::File(f) = source {
                reports.push(self.upload_file(f).await?);
            }
        }
        let sealed = self.seal_sources(document, sources)?;
        Ok((self.send_sealed(&sealed).await?, reports))
    }

    /// The bytes of a large attachment of document `id`, in memory.
    pub(crate) async fn fetch_attachment_bytes(
        &self,
        id: &str,
        a: &Attachment,
    ) -> Result<Bytes, Error> {
        let mut stream = self
            .rpc
            .clone()
            .fetch_attachment(pb::FetchAttachmentRequest {
                document_id: id.to_string(),
                sha256: Bytes::copy_from_slice(&a.sha256),
                offset: 0,
                from: String::new(),
            })
            .await?
            .into_inner();
        let mut out = Vec::with_capacity(a.size.min(64 << 20) as usize);
        while let Some(c) = stream.message().await? {
            if c.offset != out.len() as u64 {
                return Err(Error::Verification("chunks arrived out of order".into()));
            }
            out.extend_from_slice(&c.data);
        }
        Ok(out.into())
    }

    /// Streams attachment `a` of document `id` to `path`, through `<path>.part`: resumes
    /// from the bytes already in that file after an error (or a previous run), checks
    /// size and SHA-256 at the end, then renames. Returns the offset it resumed from.
    pub async fn fetch_attachment_to_file(
        &self,
        id: &str,
        a: &Attachment,
        path: &Path,
    ) -> Result<u64, Error> {
        use std::io::Write;
        let io = |e| Error::io(format!("writing {}", path.display()))(e);
        let part = PathBuf::from(format!("{}.part", path.display()));
        let mut resumed_from = None;
        let mut last_error = None;
        for attempt in 0..TRANSFER_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&part)
                .map_err(io)?;
            let mut offset = f.metadata().map_err(io)?.len();
            if offset > a.size {
                f.set_len(0).map_err(io)?;
                offset = 0;
            }
            resumed_from.get_or_insert(offset);
            if offset < a.size {
                let result = async {
                    let mut stream = self
                        .rpc
                        .clone()
                        .fetch_attachment(pb::FetchAttachmentRequest {
                            document_id: id.to_string(),
                            sha256: Bytes::copy_from_slice(&a.sha256),
                            offset,
                            from: String::new(),
                        })
                        .await?
                        .into_inner();
                    while let Some(c) = stream.message().await? {
                        if c.offset != offset {
                            return Err(Error::Verification("chunks arrived out of order".into()));
                        }
                        f.write_all(&c.data).map_err(io)?;
                        offset += c.data.len() as u64;
                    }
                    Ok(())
                }
                .await;
                f.sync_data().map_err(io)?;
                match result {
                    Ok(()) => {}
                    Err(e) if e.is_retryable() => {
                        last_error = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            drop(f);
            let (size, digest) = hash_file(&part)?;
            if size != a.size || digest != a.sha256 {
                let _ = std::fs::remove_file(&part);
                return Err(Error::Verification(format!(
                    "attachment {:?} arrived with {size} bytes not matching its digest",
                    a.name
                )));
            }
            std::fs::rename(&part, path).map_err(io)?;
            return Ok(resumed_from.unwrap_or(0));
        }
        Err(last_error.unwrap_or_else(|| Error::Transport {
            code: tonic::Code::Unavailable,
            message: "download failed".into(),
        }))
    }
}
