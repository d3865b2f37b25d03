//! edXML on the client's side, the one mapping between an edXML file and the bus that
//! `lienthong send --edxml`, `inbox --export-edxml` and the VXP gateway share:
//! [`ImportedEdxml::read`] imports a message strictly, decoding each attachment into a
//! staging folder as it is read (memory holds the message without its attachments);
//! [`DmsClient::send_imported`] signs and sends it; [`write_edxml_with`] writes a
//! received message back as edXML, from the original when it came in as edXML (the bus's
//! hops appended to its TraceHeaderList unless its DMS signed it), attachments streamed from memory or from files.
//!
//! Agency identifiers that are not QĐ 20/2020 codes (legacy three-part codes, platform
//! account ids) are placed with the directory ([`DmsClient::current_directory`]) on
//! import: the client resolves them to codes before it signs, so the bus signature covers
//! the codes the node routes by, while the text as written travels in `edxml_preserved`.
//! On export each agency is written with the identifier its directory entry says its
//! system expects (`edxml_id`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use lienthong_core::directory::DirectoryIndex;
use lienthong_core::{AgencyCode, Attachment, Document, StatusNotice};

use crate::{Accepted, DmsClient, Error, FileAttachment, Incoming, STREAM_THRESHOLD_BYTES};

/// Why an edXML message was not sent or written.
#[derive(Debug, thiserror::Error)]
pub enum EdxmlError {
    /// The message cannot be sent as it is (malformed, past a limit, an identifier that
    /// cannot be routed, an attachment without content); `line` is where, 0 when unknown.
    #[error("line {line}: {reason}")]
    Unusable { line: u32, reason: String },
    /// The message's sender (`From/OrganId`) is not the client's agency.
    #[error(
        "From/OrganId is {from} but this client is agency {agency}; a DMS sends only as its own agency"
    )]
    NotOurs {
        from: AgencyCode,
        agency: AgencyCode,
    },
    #[error(transparent)]
    Client(#[from] Error),
}

impl From<lienthong_edxml::Error> for EdxmlError {
    fn from(e: lienthong_edxml::Error) -> Self {
        let reason = match &e {
            lienthong_edxml::Error::Parse(p) => format!("{} (column {})", p.reason, p.column),
            other => other.to_string(),
        };
        EdxmlError::Unusable {
            line: e.line().unwrap_or(0),
            reason,
        }
    }
}

/// An edXML message imported for sending, its large attachments in a staging folder
/// that lives as long as this value.
#[derive(Debug)]
pub struct ImportedEdxml {
    pub message: ImportedMessage,
    _staging: tempfile::TempDir,
}

/// What an imported edXML message is on the bus.
#[derive(Debug)]
// One per imported file; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum ImportedMessage {
    /// A document, every header, business and attachment field as written (what
    /// lienthong does not model travels in `edxml_preserved`), with its attachments:
    /// inline bytes below [`STREAM_THRESHOLD_BYTES`], files to upload above.
    Document {
        document: Document,
        inline: Vec<Bytes>,
        uploads: Vec<FileAttachment>,
    },
    Status(StatusNotice),
}

/// A file an attachment is decoded into while the message is read.
struct SpoolFile {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl ImportedEdxml {
    /// Reads and imports an edXML message. Blocking: it reads the whole input, decoding
    /// and hashing each attachment's base64 into a file of its own in a temporary folder
    /// under `staging_in` (the system's temporary folder when `None`). Each agency
    /// identifier must be a QĐ 20/2020 code or an alias `directory` lists (pass the one
    /// [`DmsClient::current_directory`] gives); an alias becomes its agency's code.
    pub fn read(
        input: impl Read,
        staging_in: Option<&Path>,
        directory: Option<&DirectoryIndex>,
    ) -> Result<Self, EdxmlError> {
        let staging = match staging_in {
            Some(dir) => tempfile::tempdir_in(dir),
            None => tempfile::tempdir(),
        }
        .map_err(Error::io("creating a staging folder for attachments"))?;
        let mut spools = 0usize;
        let streamed = lienthong_edxml::parse_stream(input, || {
            spools += 1;
            let path = staging.path().join(format!("attachment-{spools}"));
            let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            Ok(SpoolFile { path, file })
        })
        .map_err(lienthong_edxml::Error::from)?;
        let now = lienthong_core::now_millis();
        let message = match streamed.message {
            lienthong_edxml::Message::Document(edoc) => {
                // Strict: every From and To must name an agency.
                let document = edoc.to_core_with(now, directory)?;
                let mut inline = Vec::with_capacity(edoc.attachments.len());
                let mut uploads = Vec::new();
                for (a, spool) in edoc.attachments.iter().zip(streamed.contents) {
                    let Some(spool) = spool else {
                        return Err(EdxmlError::Unusable {
                            line: 0,
                            reason: format!(
                                "attachment {:?} ({}) has no content in AttachmentEncoded; \
                                 include its base64 or leave its Reference out",
                                a.name, a.content_id
                            ),
                        });
                    };
                    // Decoded, hashed and flushed by the parser; closed here.
                    let path = spool.path;
                    drop(spool.file);
                    if a.size < STREAM_THRESHOLD_BYTES {
                        inline.push(Bytes::from(
                            std::fs::read(&path)
                                .map_err(Error::io("reading a staged attachment"))?,
                        ));
                    } else {
                        // Uploaded in chunks first, as `send --file` does; no content inline.
                        inline.push(Bytes::new());
                        uploads.push(FileAttachment {
                            name: a.name.clone(),
                            content_type: a.content_type.clone(),
                            path,
                            size: a.size,
                            sha256: a.sha256,
                        });
                    }
                }
                document.validate().map_err(|e| EdxmlError::Unusable {
                    line: 0,
                    reason: e.to_string(),
                })?;
                ImportedMessage::Document {
                    document,
                    inline,
                    uploads,
                }
            }
            lienthong_edxml::Message::Status(status) => {
                ImportedMessage::Status(status.to_core_with(now, directory)?)
            }
        };
        Ok(ImportedEdxml {
            message,
            _staging: staging,
        })
    }

    /// The sending agency (`From/OrganId`).
    pub fn sender(&self) -> Result<&AgencyCode, EdxmlError> {
        let from = match &self.message {
            ImportedMessage::Document { document, .. } => document.sender(),
            ImportedMessage::Status(notice) => notice.sender(),
        };
        from.map_err(|e| EdxmlError::Unusable {
            line: 0,
            reason: e.to_string(),
        })
    }
}

/// What sending an imported edXML message did.
#[derive(Debug, Clone)]
// One per sent file; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum SentEdxml {
    Document {
        document: Document,
        accepted: Accepted,
    },
    /// One or more notices: a withdraw request goes to every recipient of the document.
    Statuses(Vec<(StatusNotice, Accepted)>),
}

impl DmsClient {
    /// Signs and sends an imported edXML message: large attachments are uploaded first
    /// (resuming where the node stands), then the document; a status message becomes the
    /// notices it stands for. Sending the same message again gets the original receipts.
    pub async fn send_imported(&self, imported: &ImportedEdxml) -> Result<SentEdxml, EdxmlError> {
        let from = imported.sender()?;
        if from != self.agency() {
            return Err(EdxmlError::NotOurs {
                from: from.clone(),
                agency: self.agency().clone(),
            });
        }
        match &imported.message {
            ImportedMessage::Document {
                document,
                inline,
                uploads,
            } => {
                let mut document = document.clone();
                let sealed = self.seal_described(&mut document, inline.clone())?;
                for upload in uploads {
                    self.upload_file(upload).await?;
                }
                let accepted = self.send_sealed(&sealed).await?;
                Ok(SentEdxml::Document { document, accepted })
            }
            ImportedMessage::Status(notice) => {
                let mut sent = Vec::new();
                for notice in self.addressed(notice.clone()).await? {
                    let accepted = self.send_status(notice.clone()).await?;
                    sent.push((notice, accepted));
                }
                Ok(SentEdxml::Statuses(sent))
            }
        }
    }

    /// Reads an edXML file (on a blocking thread), its agency identifiers placed with
    /// the node's directory, and sends it.
    pub async fn send_edxml_file(&self, path: &Path) -> Result<SentEdxml, EdxmlError> {
        let file =
            std::fs::File::open(path).map_err(Error::io(format!("reading {}", path.display())))?;
        let directory = self.current_directory().await?;
        let imported = tokio::task::spawn_blocking(move || {
            ImportedEdxml::read(file, None, directory.as_deref())
        })
        .await
        .map_err(|e| Error::io("reading edXML")(std::io::Error::other(e)))??;
        self.send_imported(&imported).await
    }
}

/// [`write_edxml_with`] without a directory: agencies are written by their codes.
pub fn write_edxml(
    out: &mut dyn Write,
    incoming: &Incoming,
    streamed: &dyn Fn(usize, &Attachment) -> PathBuf,
) -> Result<(), EdxmlError> {
    write_edxml_with(out, incoming, streamed, None)
}

/// Writes a verified message as edXML. An imported message is given back from its
/// `edxml_preserved` part with the bus's hops appended to its TraceHeaderList (not when
/// the sending DMS signed it with XML-DSig: it goes out exactly as signed); a native
/// one is written by the strict writer. Each agency is written with the identifier
/// `directory` says its system expects (its `edxml_id`), else by its code. Each
/// attachment is encoded straight from its fetched bytes or, when they were streamed to a
/// file (`contents` entry empty), from the file `streamed` names for it: memory never
/// holds a large attachment.
pub fn write_edxml_with(
    out: &mut dyn Write,
    incoming: &Incoming,
    streamed: &dyn Fn(usize, &Attachment) -> PathBuf,
    directory: Option<&DirectoryIndex>,
) -> Result<(), EdxmlError> {
    let message = match incoming {
        Incoming::Document(v) => lienthong_edxml::Message::Document(
            lienthong_edxml::EdxmlDocument::from_core_with(&v.document, directory)?,
        ),
        Incoming::Status { notice, .. } => lienthong_edxml::Message::Status(
            lienthong_edxml::EdxmlStatus::from_core_with(notice, directory)?,
        ),
    };
    // The attachments by digest and size (from_core describes each attachment of the
    // document, without content).
    let by_digest: std::collections::HashMap<([u8; 32], u64), usize> = match incoming {
        Incoming::Document(v) => v
            .document
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.sha256, a.size), i))
            .collect(),
        Incoming::Status { .. } => Default::default(),
    };
    lienthong_edxml::write_with(out, &message, &mut |a| {
        let (Incoming::Document(v), Some(&i)) = (incoming, by_digest.get(&(a.sha256, a.size)))
        else {
            return Err(std::io::Error::other(format!(
                "attachment {:?} was not fetched",
                a.name
            )));
        };
        let content = &v.contents[i];
        if content.is_empty() && a.size > 0 {
            let file = std::fs::File::open(streamed(i, &v.document.attachments[i]))?;
            Ok(Box::new(std::io::BufReader::new(file)) as Box<dyn Read>)
        } else {
            Ok(Box::new(std::io::Cursor::new(content.clone())))
        }
    })?;
    Ok(())
}

/// [`write_edxml_with`] into the file `path`, through `<path>.part` synced and renamed
/// once complete: a reader never sees half a message.
pub fn export_edxml(
    path: &Path,
    incoming: &Incoming,
    streamed: &dyn Fn(usize, &Attachment) -> PathBuf,
    directory: Option<&DirectoryIndex>,
) -> Result<(), EdxmlError> {
    let part = PathBuf::from(format!("{}.part", path.display()));
    let io = |e| Error::io(format!("writing {}", path.display()))(e);
    let written = (|| -> Result<(), EdxmlError> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&part).map_err(io)?);
        write_edxml_with(&mut out, incoming, streamed, directory)?;
        out.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        std::fs::rename(&part, path).map_err(io)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}
