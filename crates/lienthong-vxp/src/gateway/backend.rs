//! [`VxpBackend`]: what the gateway needs from the bus behind it. The gateway has
//! verified the caller, checked the agencies it acts for and the message's digest before
//! it calls any method; a method's error becomes the `ErrorCode` of
//! [`BackendError`]'s variant and its message the `ErrorDesc`.
//!
//! The methods are plain `async fn`s returning `Result<_, BackendError>`, so that a
//! backend over a gRPC client (the lienthong node reached as a DMS) is a thin adapter.

use std::future::Future;
use std::path::Path;

use lienthong_core::AgencyCode;
use tempfile::TempPath;

use crate::body::EdocReader;
use crate::error::BackendError;
use crate::gateway::config::SystemScope;
use crate::ops::{DeliveryStatus, MessageType};
use crate::response::{AgencyEntry, AgencyQd20Entry, ReceivedEdoc, SentEdoc, SyncUnit};

/// A sendEdoc body the gateway has received whole, written to a temporary file and
/// checked against its signed `hash-file`. The file is removed when this is dropped
/// (keep it with [`SpooledEdoc::into_temp_path`]).
#[derive(Debug)]
pub struct SpooledEdoc {
    pub(crate) path: TempPath,
    pub(crate) len: u64,
    pub(crate) sha256: [u8; 32],
}

impl SpooledEdoc {
    /// The file holding exactly the edXML message (the SDK's trailing CRLF removed).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SHA-256 of the message, which the signed `hash-file` names.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Opens the message for reading.
    pub async fn open(&self) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(&self.path).await
    }

    /// Reads the whole message into memory; for backends that parse it at once (the edXML
    /// parser does), bounded by the gateway's `max_edoc_bytes`.
    pub async fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(&self.path).await
    }

    /// The temporary file, to keep beyond this value's life (`TempPath::keep`,
    /// `TempPath::persist`).
    pub fn into_temp_path(self) -> TempPath {
        self.path
    }
}

/// A message a system sends (sendEdoc), with its signed inputs, verified.
#[derive(Debug)]
pub struct EdocSubmission {
    /// The sending agency (signed `from`), one the system may act for.
    pub from: AgencyCode,
    pub message_type: MessageType,
    /// The signed `to`, raw (the caller's JSON text, e.g. `["000.00.00.G22"]`), when
    /// given; otherwise the recipients are in the edXML (`To`, or `ResponseFor` for a
    /// status).
    pub to: Option<String>,
    /// Names this message across re-sends: SHA-256 over `from`, `messagetype`, `to` and
    /// the message's SHA-256 (see [`idempotency_key`]). The SDK and the JDK re-send a
    /// POST after a dropped connection with the same headers and body, and a DMS may
    /// send the same file again: the backend must answer a submission whose key it has
    /// seen with the DocId it gave the first time, and change nothing.
    pub idempotency_key: [u8; 32],
    pub edoc: SpooledEdoc,
}

/// The idempotency key of a submission (see [`EdocSubmission::idempotency_key`]). The
/// timestamp and system id are left out on purpose: the same message from the same
/// agency is the same message whichever SDK object sent it.
pub fn idempotency_key(
    from: &AgencyCode,
    message_type: MessageType,
    to: Option<&str>,
    sha256: &[u8; 32],
) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"lienthong-vxp/sendEdoc/1\0");
    ctx.update(from.as_str().as_bytes());
    ctx.update(b"\0");
    ctx.update(message_type.as_str().as_bytes());
    ctx.update(b"\0");
    match to {
        Some(to) => {
            ctx.update(b"to\0");
            ctx.update(to.as_bytes());
        }
        None => ctx.update(b"-"),
    }
    ctx.update(b"\0");
    ctx.update(sha256);
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// A message to hand to a DMS (getEdoc, downloadEdoc): its edXML bytes as a stream.
pub struct EdocStream {
    /// The length in bytes, when known: a stream that then ends early or runs long breaks
    /// the connection rather than deliver a wrong message.
    pub len: Option<u64>,
    pub reader: EdocReader,
}

impl std::fmt::Debug for EdocStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdocStream")
            .field("len", &self.len)
            .finish()
    }
}

impl EdocStream {
    /// A message held in memory.
    pub fn from_bytes(bytes: impl Into<bytes::Bytes>) -> Self {
        let bytes: bytes::Bytes = bytes.into();
        EdocStream {
            len: Some(bytes.len() as u64),
            reader: Box::pin(std::io::Cursor::new(bytes)),
        }
    }

    /// A message in a file.
    pub async fn from_file(path: &Path) -> std::io::Result<Self> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        Ok(EdocStream {
            len: Some(len),
            reader: Box::pin(file),
        })
    }
}

/// The bus behind the gateway. Every method gets the calling system's scope (its id and
/// the agencies it may act for) and must not show or change anything outside it.
///
/// Required behaviour beyond the signatures:
/// - [`send_edoc`](VxpBackend::send_edoc) is idempotent on
///   [`EdocSubmission::idempotency_key`] and checks that the message's sender (edXML
///   `From/OrganId`) is `from`; a status message is routed by its `ResponseFor`;
/// - [`update_status`](VxpBackend::update_status) is idempotent: the same status again
///   answers `Ok` (the SDK re-sends POSTs);
/// - [`edoc`](VxpBackend::edoc) returns a stream, so a 500 MiB message needs no 500 MiB
///   of memory; content must be UTF-8 text (the SDK's getEdoc decodes it as UTF-8).
pub trait VxpBackend: Send + Sync + 'static {
    /// Accepts a message from an agency of the system; returns the DocId the sender gets.
    fn send_edoc(
        &self,
        scope: &SystemScope,
        submission: EdocSubmission,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;

    /// The messages of `message_type` waiting for the system's agencies (getReceivedEdocList).
    fn received_edocs(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
    ) -> impl Future<Output = Result<Vec<ReceivedEdoc>, BackendError>> + Send;

    /// How many messages of `message_type` wait (countReceiveEdoc / countReceiveStatus).
    /// The default counts [`received_edocs`](VxpBackend::received_edocs).
    fn count_received(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send {
        async move { Ok(self.received_edocs(scope, message_type).await?.len() as u64) }
    }

    /// One received message as edXML (getEdoc, downloadEdoc).
    fn edoc(
        &self,
        scope: &SystemScope,
        doc_id: &str,
    ) -> impl Future<Output = Result<EdocStream, BackendError>> + Send;

    /// What the receiving DMS did with a message (updateStatus).
    fn update_status(
        &self,
        scope: &SystemScope,
        doc_id: &str,
        status: DeliveryStatus,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Messages the system's agencies sent, per recipient; only `doc_id`'s when given
    /// (getSentEdocList).
    fn sent_edocs(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
        doc_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<SentEdoc>, BackendError>> + Send;

    /// The agencies reachable through the bus (getAgenciesList).
    fn agencies(
        &self,
        scope: &SystemScope,
    ) -> impl Future<Output = Result<Vec<AgencyEntry>, BackendError>> + Send;

    /// The agencies of one level of QĐ 20/2020 (getAgenciesListQD20; `level` as signed).
    fn agencies_qd20(
        &self,
        scope: &SystemScope,
        level: &str,
    ) -> impl Future<Output = Result<Vec<AgencyQd20Entry>, BackendError>> + Send;

    /// The agency an identifier that is not a QĐ 20/2020 code names (a platform account id
    /// or a legacy code a DMS puts in `from`), by the bus's directory; `None` when none.
    /// The default knows no aliases.
    fn resolve_agency(
        &self,
        _scope: &SystemScope,
        _identifier: &str,
    ) -> impl Future<Output = Result<Option<AgencyCode>, BackendError>> + Send {
        async { Ok(None) }
    }

    /// The units to synchronize (getSynchronizeUnit).
    fn synchronize_units(
        &self,
        scope: &SystemScope,
    ) -> impl Future<Output = Result<Vec<SyncUnit>, BackendError>> + Send;
}
