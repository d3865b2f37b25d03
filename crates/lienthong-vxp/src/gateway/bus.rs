//! [`BusBackend`]: the gateway's backend over the lienthong node, reached as a DMS.
//!
//! For each agency a system acts for, the backend holds a [`DmsClient`] of that agency
//! (its certificate and a custodial key the operator keeps for it) connected to the node
//! over mutual TLS. A document that arrives as edXML is imported by the one edXML mapping
//! of `lienthong-client` and signed for the bus with the custodial key; the node then
//! makes every check it makes for any DMS. What a system downloads is written back as
//! edXML by the same mapping, large attachments streamed through files.
//!
//! VXP operations on the bus:
//! - sendEdoc: import, sign, send; the DocId is the message id, so a re-send (the SDK's
//!   or a DMS's) is deduplicated by the node and answered with the same DocId. The DMS's
//!   own XML-DSig, when present, is verified and the outcome recorded (it travels byte
//!   for byte in the message's preserved part either way). Each sent message is noted in
//!   a small journal for getSentEdocList (the agency API lists inboxes, not what was
//!   sent);
//! - getReceivedEdocList / count: the inboxes of the system's agencies, in arrival order;
//! - getEdoc: fetch, verify end to end, write edXML;
//! - updateStatus: `done` acknowledges (the node then records `acknowledged` and tells the
//!   sender); `fail` and `processing` leave the message in the inbox, so that the DMS
//!   gets it again (a failed download loses nothing);
//! - getAgenciesList, getAgenciesListQD20, getSynchronizeUnit: the node's signed
//!   directory, aliases as old codes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lienthong_client::edxml::{EdxmlError, ImportedEdxml, ImportedMessage, SentEdxml};
use lienthong_client::{DmsClient, InboxItem, InboxKind};
use lienthong_core::AgencyCode;
use serde::{Deserialize, Serialize};
use tonic::Code;

use crate::error::BackendError;
use crate::gateway::backend::{EdocStream, EdocSubmission, VxpBackend};
use crate::gateway::config::SystemScope;
use crate::ops::{DeliveryStatus, MessageType};
use crate::response::{AgencyEntry, AgencyQd20Entry, ReceivedEdoc, SentEdoc, SyncUnit};

/// The journal file of sent messages, under the backend's state directory.
const SENT_JOURNAL: &str = "sent.jsonl";

/// The largest message whose XML-DSig the gateway checks (the check reads the message
/// whole); a larger one is recorded as not checked.
pub const DSIG_CHECK_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The gateway's backend over a lienthong node.
#[derive(Debug)]
pub struct BusBackend {
    clients: HashMap<AgencyCode, DmsClient>,
    /// Where edXML bodies and downloads are staged.
    spool_dir: PathBuf,
    sent: SentJournal,
}

impl BusBackend {
    /// A backend acting through `clients` (one per agency, each with the agency's custodial
    /// key), keeping its journal in `state_dir` and staging files in `spool_dir`.
    pub fn new(
        clients: impl IntoIterator<Item = DmsClient>,
        state_dir: &Path,
        spool_dir: PathBuf,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        std::fs::create_dir_all(&spool_dir)?;
        Ok(BusBackend {
            clients: clients
                .into_iter()
                .map(|c| (c.agency().clone(), c))
                .collect(),
            spool_dir,
            sent: SentJournal::open(&state_dir.join(SENT_JOURNAL))?,
        })
    }

    /// The agencies the backend can act for.
    pub fn agencies(&self) -> impl Iterator<Item = &AgencyCode> {
        self.clients.keys()
    }

    fn client(&self, agency: &AgencyCode) -> Result<&DmsClient, BackendError> {
        self.clients.get(agency).ok_or_else(|| {
            BackendError::Refused(format!(
                "the gateway holds no key for agency {agency}; ask its operator to configure one"
            ))
        })
    }

    /// The clients of the scope's agencies that the backend holds.
    fn scoped<'a>(
        &'a self,
        scope: &'a SystemScope,
    ) -> impl Iterator<Item = (&'a AgencyCode, &'a DmsClient)> + 'a {
        scope
            .agencies
            .iter()
            .filter_map(|a| self.clients.get(a).map(|c| (a, c)))
    }

    /// Every entry of one agency's inbox, in arrival order.
    async fn inbox(client: &DmsClient) -> Result<Vec<InboxItem>, BackendError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = client
                .list_inbox_by_arrival(after, 1000)
                .await
                .map_err(backend_error)?;
            let Some(last) = page.last().map(|e| e.cursor) else {
                return Ok(all);
            };
            after = last;
            all.extend(page);
        }
    }
}

/// A client error as the gateway reports it to the DMS.
fn backend_error(e: lienthong_client::Error) -> BackendError {
    use lienthong_client::Error as E;
    match &e {
        E::Refused { code, .. } => match code {
            Code::NotFound => BackendError::NotFound(e.message()),
            Code::AlreadyExists => BackendError::Conflict(e.message()),
            Code::Unavailable | Code::ResourceExhausted => BackendError::Unavailable(e.message()),
            _ => BackendError::Refused(e.message()),
        },
        E::Transport { .. } => BackendError::Unavailable(e.to_string()),
        E::Verification(_) | E::Revoked(_) => BackendError::Refused(e.to_string()),
        E::Io { .. } | E::Config(_) => BackendError::Internal(e.to_string()),
    }
}

fn edxml_error(e: EdxmlError) -> BackendError {
    match e {
        EdxmlError::Unusable { line, reason } => BackendError::Refused(format!(
            "the edXML message cannot be sent: line {line}: {reason}"
        )),
        e @ EdxmlError::NotOurs { .. } => BackendError::Refused(e.to_string()),
        EdxmlError::Client(e) => backend_error(e),
    }
}

fn internal(what: &str) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |e| BackendError::Internal(format!("{what}: {e}"))
}

/// The DMS's own XML-DSig on a received message, checked (up to
/// [`DSIG_CHECK_MAX_BYTES`]), as the journal records it.
async fn dms_signature(edoc: &crate::gateway::SpooledEdoc) -> String {
    dms_signature_of(edoc.path(), edoc.len()).await
}

/// The XML-DSig finding for the edXML file at `path` of `len` bytes: `verified …`,
/// `absent`, `failed: …` or `not checked: …` (past [`DSIG_CHECK_MAX_BYTES`]).
pub async fn dms_signature_of(path: &Path, len: u64) -> String {
    if len > DSIG_CHECK_MAX_BYTES {
        return format!(
            "not checked: the message has {len} bytes, more than {DSIG_CHECK_MAX_BYTES}"
        );
    }
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => return format!("not checked: {e}"),
    };
    match tokio::task::spawn_blocking(move || lienthong_edxml::verify_signature(&bytes)).await {
        Ok(lienthong_edxml::SignatureCheck::Verified { algorithm, signer }) => {
            format!("verified {algorithm} by {signer}")
        }
        Ok(lienthong_edxml::SignatureCheck::Absent) => "absent".into(),
        Ok(lienthong_edxml::SignatureCheck::Failed { reason }) => format!("failed: {reason}"),
        Err(e) => format!("not checked: {e}"),
    }
}

/// Where a download stages attachment `i` of a message.
fn staged_attachment(staging: &Path, i: usize) -> PathBuf {
    staging.join(format!("attachment-{i}"))
}

/// Unix milliseconds as the VXP lists show times: `dd/MM/yyyy HH:mm:ss`, in the offset
/// DMS clocks use (Vietnam's, as the gateway's default).
fn vxp_time(unix_ms: i64) -> String {
    let offset = time::UtcOffset::from_whole_seconds(
        crate::gateway::config::DEFAULT_UTC_OFFSET_MINUTES * 60,
    )
    .expect("the default offset is an offset");
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000) {
        Ok(t) => {
            let t = t.to_offset(offset);
            format!(
                "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
                t.day(),
                u8::from(t.month()),
                t.year(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => String::new(),
    }
}

/// The QĐ 20/2020 level of a code `D.C.B.A`: 1 for `000.00.00.A`, 2 when `B` is set, 3
/// when `C` is, 4 when `D` is.
fn qd20_level(code: &AgencyCode) -> u8 {
    let parts: Vec<&str> = code.as_str().split('.').collect();
    let set = |p: &str| p.chars().any(|c| c != '0');
    match parts.as_slice() {
        [d, _, _, _] if set(d) => 4,
        [_, c, _, _] if set(c) => 3,
        [_, _, b, _] if set(b) => 2,
        _ => 1,
    }
}

impl VxpBackend for BusBackend {
    async fn send_edoc(
        &self,
        _scope: &SystemScope,
        submission: EdocSubmission,
    ) -> Result<String, BackendError> {
        let client = self.client(&submission.from)?;
        let file = submission
            .edoc
            .open()
            .await
            .map_err(internal("opening the received message"))?
            .into_std()
            .await;
        let spool = self.spool_dir.clone();
        // Identifiers that are aliases (legacy codes, platform account ids) are placed
        // with the node's directory.
        let directory = client.current_directory().await.map_err(backend_error)?;
        let dms_signature = dms_signature(&submission.edoc).await;
        let imported = tokio::task::spawn_blocking(move || {
            ImportedEdxml::read(file, Some(&spool), directory.as_deref())
        })
        .await
        .map_err(|e| BackendError::Internal(format!("reading the edXML: {e}")))?
        .map_err(edxml_error)?;
        let kind_matches = matches!(
            (&imported.message, submission.message_type),
            (ImportedMessage::Document { .. }, MessageType::Edoc)
                | (ImportedMessage::Status(_), MessageType::Status)
        );
        if !kind_matches {
            return Err(BackendError::Refused(format!(
                "messagetype is {} but the edXML holds {}; send documents as edoc and status messages as status",
                submission.message_type.as_str(),
                match imported.message {
                    ImportedMessage::Document { .. } => "a document",
                    ImportedMessage::Status(_) => "a status message",
                }
            )));
        }
        let sent = client.send_imported(&imported).await.map_err(edxml_error)?;
        let (doc_id, record) = match &sent {
            SentEdxml::Document { document, accepted } => (
                document.id.to_string(),
                SentRecord {
                    agency: submission.from.to_string(),
                    doc_id: document.id.to_string(),
                    message_type: MessageType::Edoc.as_str().into(),
                    to: document
                        .recipients()
                        .unwrap_or_default()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    title: document.header.subject.clone(),
                    notation: format!(
                        "{}/{}",
                        document.header.code.number, document.header.code.notation
                    ),
                    sent_at: accepted.receipt.accepted_at,
                    dms_signature: dms_signature.clone(),
                },
            ),
            SentEdxml::Statuses(notices) => {
                let Some((first, accepted)) = notices.first() else {
                    return Err(BackendError::Internal("no notice was sent".into()));
                };
                (
                    first.id.to_string(),
                    SentRecord {
                        agency: submission.from.to_string(),
                        doc_id: first.id.to_string(),
                        message_type: MessageType::Status.as_str().into(),
                        to: notices.iter().map(|(n, _)| n.to.to_string()).collect(),
                        title: format!("{} {}", first.code, first.response_for.document_id),
                        notation: String::new(),
                        sent_at: accepted.receipt.accepted_at,
                        dms_signature: dms_signature.clone(),
                    },
                )
            }
        };
        tracing::info!(
            agency = %submission.from,
            doc_id,
            dms_signature = %record.dms_signature,
            "vxp: message accepted from a DMS"
        );
        self.sent
            .note(record)
            .map_err(internal("noting the sent message"))?;
        Ok(doc_id)
    }

    async fn received_edocs(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
    ) -> Result<Vec<ReceivedEdoc>, BackendError> {
        let wanted = match message_type {
            MessageType::Edoc => InboxKind::Document,
            MessageType::Status => InboxKind::Status,
        };
        let mut out = Vec::new();
        for (agency, client) in self.scoped(scope) {
            for entry in Self::inbox(client).await? {
                if entry.kind != wanted {
                    continue;
                }
                let at = vxp_time(entry.received_at_unix_ms);
                out.push(ReceivedEdoc {
                    doc_id: Some(entry.id),
                    service_type: Some("eDoc".into()),
                    message_type: Some(message_type.as_str().into()),
                    created_time: Some(at.clone()),
                    updated_time: Some(at),
                    from: Some(entry.from),
                    to: Some(agency.to_string()),
                    status: Some("initial".into()),
                    status_desc: Some("Chưa nhận".into()),
                });
            }
        }
        Ok(out)
    }

    async fn edoc(&self, scope: &SystemScope, doc_id: &str) -> Result<EdocStream, BackendError> {
        let mut last = None;
        for (_, client) in self.scoped(scope) {
            let staging = tempfile::tempdir_in(&self.spool_dir)
                .map_err(internal("creating a staging folder"))?;
            let incoming = match client
                .fetch_to_files(doc_id, &|i, _| staged_attachment(staging.path(), i))
                .await
            {
                Ok(incoming) => incoming,
                Err(e) if e.code() == Some(Code::NotFound) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(backend_error(e)),
            };
            // Agencies are written as their systems expect them (the directory's edxml_id).
            let directory = client.current_directory().await.map_err(backend_error)?;
            // Written on a blocking thread, attachments encoded from their files, then
            // read back from the start through the same handle; the folder is removed
            // at once, the file lives until it is read.
            let file = tokio::task::spawn_blocking(move || {
                use std::io::{Seek, SeekFrom};
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(staging.path().join("message.edxml"))
                    .map_err(internal("staging the edXML"))?;
                let mut out = std::io::BufWriter::new(file);
                lienthong_client::edxml::write_edxml_with(
                    &mut out,
                    &incoming,
                    &|i, _| staged_attachment(staging.path(), i),
                    directory.as_deref(),
                )
                .map_err(edxml_error)?;
                let mut file = out
                    .into_inner()
                    .map_err(|e| internal("staging the edXML")(e.into_error()))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(internal("staging the edXML"))?;
                Ok::<_, BackendError>(file)
            })
            .await
            .map_err(|e| BackendError::Internal(format!("writing the edXML: {e}")))??;
            let file = tokio::fs::File::from_std(file);
            let len = file
                .metadata()
                .await
                .map_err(internal("staging the edXML"))?
                .len();
            return Ok(EdocStream {
                len: Some(len),
                reader: Box::pin(file),
            });
        }
        Err(match last {
            Some(e) => backend_error(e),
            None => BackendError::NotFound(format!(
                "no message {doc_id} waits for the agencies of system '{}'",
                scope.system_id
            )),
        })
    }

    async fn update_status(
        &self,
        scope: &SystemScope,
        doc_id: &str,
        status: DeliveryStatus,
    ) -> Result<(), BackendError> {
        let mut held = false;
        for (agency, client) in self.scoped(scope) {
            match status {
                DeliveryStatus::Done => match client.ack(doc_id).await {
                    Ok(()) => held = true,
                    Err(e) if e.code() == Some(Code::NotFound) => {}
                    Err(e) => return Err(backend_error(e)),
                },
                // The message stays in the inbox: listed again, downloaded again.
                DeliveryStatus::Fail | DeliveryStatus::Processing => {
                    // Looked up in the inbox, not fetched: a fetch would record that the
                    // DMS fetched what it may never have read.
                    if Self::inbox(client).await?.iter().any(|e| e.id == doc_id) {
                        held = true;
                        tracing::info!(%agency, doc_id, ?status, "vxp: updateStatus leaves the message in the inbox");
                    }
                }
            }
        }
        if held {
            Ok(())
        } else {
            Err(BackendError::NotFound(format!(
                "no message {doc_id} was received by the agencies of system '{}'",
                scope.system_id
            )))
        }
    }

    async fn sent_edocs(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
        doc_id: Option<&str>,
    ) -> Result<Vec<SentEdoc>, BackendError> {
        let records = self.sent.matching(|r| {
            r.message_type == message_type.as_str()
                && doc_id.is_none_or(|id| r.doc_id == id)
                && scope.agencies.iter().any(|a| a.as_str() == r.agency)
        });
        let mut out = Vec::new();
        for record in records {
            let Ok(agency) = AgencyCode::parse(&record.agency) else {
                continue;
            };
            let client = self.client(&agency)?;
            let tracked = match message_type {
                MessageType::Edoc => {
                    Some(client.track(&record.doc_id).await.map_err(backend_error)?)
                }
                MessageType::Status => None,
            };
            for to in &record.to {
                let state = tracked
                    .as_ref()
                    .and_then(|t| t.recipients.iter().find(|r| &r.agency == to));
                let transport = state
                    .map(|s| s.transport.clone())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "accepted".into());
                let received = tracked.as_ref().and_then(|t| {
                    t.events
                        .iter()
                        .filter(|e| e.agency.as_ref().is_some_and(|a| a.as_str() == to))
                        .map(|e| e.at)
                        .max()
                });
                out.push(SentEdoc {
                    sender_doc_id: Some(record.doc_id.clone()),
                    receiver_doc_id: Some(record.doc_id.clone()),
                    from_code: Some(record.agency.clone()),
                    to_code: Some(to.clone()),
                    title: Some(record.title.clone()),
                    notation: Some(record.notation.clone()),
                    sent_time: Some(vxp_time(record.sent_at)),
                    received_time: received.map(vxp_time),
                    // Accepted by the bus: the sending side is done.
                    send_status: Some("done".into()),
                    send_status_desc: Some(format!(
                        "accepted by the bus; the DMS's XML signature: {}",
                        record.dms_signature
                    )),
                    // How far it got at the recipient, and its latest business status.
                    receive_status: Some(transport),
                    receive_status_desc: state
                        .map(|s| s.status_code.clone())
                        .filter(|c| !c.is_empty())
                        .map(|c| format!("status {c}")),
                    service_type: Some("eDoc".into()),
                    message_type: Some(record.message_type.clone()),
                });
            }
        }
        Ok(out)
    }

    async fn agencies(&self, scope: &SystemScope) -> Result<Vec<AgencyEntry>, BackendError> {
        let directory = self.directory(scope).await?;
        Ok(directory
            .agencies
            .iter()
            .map(|a| AgencyEntry {
                code: Some(a.agency.code.to_string()),
                id: Some(a.agency.code.to_string()),
                mail: None,
                name: Some(a.agency.name.clone()),
                pid: None,
                old_code: a
                    .agency
                    .edxml_id
                    .clone()
                    .or_else(|| a.agency.aliases.first().cloned()),
            })
            .collect())
    }

    async fn agencies_qd20(
        &self,
        scope: &SystemScope,
        level: &str,
    ) -> Result<Vec<AgencyQd20Entry>, BackendError> {
        let level: u8 = level.trim().parse().map_err(|_| {
            BackendError::Refused(format!(
                "level {level:?} is not a QĐ 20/2020 level (1 to 4)"
            ))
        })?;
        let directory = self.directory(scope).await?;
        Ok(directory
            .agencies
            .iter()
            .filter(|a| qd20_level(&a.agency.code) == level)
            .map(|a| AgencyQd20Entry {
                code: Some(a.agency.code.to_string()),
                id: Some(a.agency.code.to_string()),
                mail: None,
                name: Some(a.agency.name.clone()),
                code102: a
                    .agency
                    .edxml_id
                    .clone()
                    .or_else(|| a.agency.aliases.first().cloned()),
            })
            .collect())
    }

    async fn resolve_agency(
        &self,
        scope: &SystemScope,
        identifier: &str,
    ) -> Result<Option<AgencyCode>, BackendError> {
        let Some((_, client)) = self.scoped(scope).next() else {
            return Ok(None);
        };
        Ok(client
            .current_directory()
            .await
            .map_err(backend_error)?
            .and_then(|d| d.resolve(identifier)))
    }

    async fn synchronize_units(&self, scope: &SystemScope) -> Result<Vec<SyncUnit>, BackendError> {
        let directory = self.directory(scope).await?;
        let version = i64::try_from(directory.version).unwrap_or(i64::MAX);
        Ok(directory
            .agencies
            .iter()
            .map(|a| SyncUnit {
                code: Some(a.agency.code.to_string()),
                id: Some(a.agency.code.to_string()),
                name: Some(a.agency.name.clone()),
                version: Some(version),
                deleted: Some(false),
                is_agency: Some(true),
                ..SyncUnit::default()
            })
            .collect())
    }
}

impl BusBackend {
    /// The node's directory, verified, read through a client of the scope.
    async fn directory(
        &self,
        scope: &SystemScope,
    ) -> Result<lienthong_core::directory::DirectoryIndex, BackendError> {
        let (_, client) = self.scoped(scope).next().ok_or_else(|| {
            BackendError::Refused(format!(
                "the gateway holds no key for any agency of system '{}'",
                scope.system_id
            ))
        })?;
        client.directory().await.map_err(backend_error)
    }
}

/// One message sent through the gateway, as getSentEdocList shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct SentRecord {
    agency: String,
    doc_id: String,
    message_type: String,
    to: Vec<String>,
    title: String,
    notation: String,
    sent_at: i64,
    /// What the check of the DMS's own XML-DSig found (`verified rsa-sha256 by …`,
    /// `absent`, `failed: …`, `not checked: …`).
    #[serde(default)]
    dms_signature: String,
}

/// The journal of sent messages: one JSON line each, appended and synced before the
/// sender gets its DocId, read whole at start. A message sent again is noted once.
#[derive(Debug)]
struct SentJournal {
    path: PathBuf,
    records: Mutex<Vec<SentRecord>>,
}

impl SentJournal {
    /// Reads the journal; a last line a crash cut short (it has no newline) is cut off,
    /// so that every note after it starts on a line of its own.
    fn open(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(whole as u64)?;
        }
        let records = text[..whole]
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        Ok(SentJournal {
            path: path.to_path_buf(),
            records: Mutex::new(records),
        })
    }

    /// Appends `record` and syncs it, unless the message is noted already.
    fn note(&self, record: SentRecord) -> std::io::Result<()> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records
            .iter()
            .any(|r| r.agency == record.agency && r.doc_id == record.doc_id)
        {
            return Ok(());
        }
        let mut line = serde_json::to_string(&record).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        records.push(record);
        Ok(())
    }

    fn matching(&self, keep: impl Fn(&SentRecord) -> bool) -> Vec<SentRecord> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.iter().filter(|r| keep(r)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qd20_levels_follow_the_deepest_part_set() {
        let level = |c: &str| qd20_level(&AgencyCode::parse(c).unwrap());
        assert_eq!(level("000.00.00.H41"), 1);
        assert_eq!(level("000.00.20.H41"), 2);
        assert_eq!(level("000.03.20.H41"), 3);
        assert_eq!(level("001.00.20.H41"), 4);
    }

    #[test]
    fn the_sent_journal_survives_a_restart_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SENT_JOURNAL);
        let record = |id: &str| SentRecord {
            agency: "000.00.00.H41".into(),
            doc_id: id.into(),
            message_type: "edoc".into(),
            to: vec!["000.00.00.G22".into()],
            title: "Công văn".into(),
            notation: "1/UBND".into(),
            sent_at: 1,
            dms_signature: "absent".into(),
        };
        let journal = SentJournal::open(&path).unwrap();
        journal.note(record("a")).unwrap();
        journal.note(record("a")).unwrap();
        // A crash cut the next line short.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"agency\":\"000.0")
            .unwrap();
        let journal = SentJournal::open(&path).unwrap();
        assert_eq!(journal.matching(|_| true), vec![record("a")]);
        journal.note(record("b")).unwrap();
        let journal = SentJournal::open(&path).unwrap();
        assert_eq!(journal.matching(|_| true), vec![record("a"), record("b")]);
    }
}
