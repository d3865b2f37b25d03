//! The node's one error type, naming each failure, and the one function that maps it to a
//! gRPC status ([`Error::code`], [`Error::reason`]).
//!
//! Every status a node answers with carries, besides its code and a one-sentence message
//! saying what was wrong and what to do, a stable name of the failure in the metadata
//! entry [`REASON_KEY`] (`lienthong-reason: sender-mismatch`): what a client or a test
//! matches on, while the message may be reworded.

use lienthong_core::lifecycle::Rule;
use lienthong_pki::verify::Refused;
use tonic::{Code, Status};

/// The metadata key of a status that names the failure.
pub const REASON_KEY: &str = "lienthong-reason";

/// Why a node refused a request or could not start. Each message says what was wrong
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Config(String),
    #[error("{0}")]
    Pki(#[from] lienthong_pki::Error),

    // ---- who may ask
    /// The connection has no verified client certificate.
    #[error("{0}")]
    Unauthenticated(String),
    /// The connection's certificate does not allow this API here (an agency not homed
    /// here, a node certificate on the agency API, another node on the admin API).
    #[error("{0}")]
    NotAllowed(String),
    /// A relay connection from a node that is no neighbour in the directory.
    #[error("{0}")]
    NotNeighbour(String),
    /// A message whose sender is not the agency of the connection.
    #[error("{0}")]
    SenderMismatch(String),

    // ---- the message itself
    /// A signature that does not pass (see [`lienthong_pki::verify`]).
    #[error("{0}")]
    Signature(#[from] Refused),
    /// A message that claims a bridge imported it, which the directory does not bear out.
    #[error("{0}")]
    NotVouched(#[from] lienthong_pki::verify::NotVouched),
    /// An attachment whose bytes do not match its size or digest.
    #[error("{0}")]
    AttachmentMismatch(String),
    /// A recipient no directory knows.
    #[error("{0}")]
    UnknownRecipient(String),
    /// The same sender and id, other content: send changed content under a new id.
    #[error("{0}")]
    Conflict(String),
    /// The document lifecycle does not allow the message (see
    /// [`lienthong_core::lifecycle`]).
    #[error("{0}")]
    Lifecycle(#[from] lienthong_core::lifecycle::Refusal),
    /// A transport event a neighbour may not speak for.
    #[error("{0}")]
    ForgedEvent(String),
    /// A directory that is not signed by the national gateway, not valid, or older.
    #[error("{0}")]
    DirectoryRefused(String),
    /// An `edxml_preserved` part its recipients could not read back (past the edXML
    /// reader's limits): accepting it would stop their export for good.
    #[error("{0}")]
    Unexportable(String),
    /// Any other value that is not acceptable as sent.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("invalid message: {0}")]
    Wire(#[from] lienthong_proto::Error),

    // ---- what is held here
    /// A message not known to this node for the caller: unknown, or the caller is no
    /// party to it (the two are not told apart).
    #[error("{0}")]
    UnknownMessage(String),
    /// Messages of several senders with one id concern the caller: it names the sender.
    #[error("{0}")]
    AmbiguousId(String),
    /// An attachment sent without content whose bytes the sender has not uploaded.
    #[error("{0}")]
    AttachmentNotHeld(String),

    // ---- room
    /// The data directory's disk is below its reserve: new messages wait.
    #[error("{0}")]
    DiskFull(String),
    /// An upload larger than `limits.max_attachment_bytes`.
    #[error("{0}")]
    AttachmentTooLarge(String),
    /// An agency's uploads that no document names yet would pass its quota.
    #[error("{0}")]
    UploadQuota(String),

    // ---- the node's own trouble
    #[error("store: {0}")]
    Store(#[from] lienthong_store::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(String),
}

impl From<lienthong_core::Error> for Error {
    fn from(e: lienthong_core::Error) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}

impl Error {
    /// The gRPC code of the failure.
    pub fn code(&self) -> Code {
        match self {
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::NotAllowed(_)
            | Error::NotNeighbour(_)
            | Error::SenderMismatch(_)
            | Error::ForgedEvent(_)
            | Error::NotVouched(_)
            | Error::DirectoryRefused(_) => Code::PermissionDenied,
            Error::Signature(refused) => match refused {
                Refused::Unsigned { .. }
                | Refused::BadSignature { .. }
                | Refused::NoTrace { .. } => Code::InvalidArgument,
                Refused::Revoked { .. }
                | Refused::WrongSigner { .. }
                | Refused::WrongHop { .. } => Code::PermissionDenied,
            },
            Error::AttachmentMismatch(_)
            | Error::Unexportable(_)
            | Error::InvalidArgument(_)
            | Error::Wire(_) => Code::InvalidArgument,
            Error::UnknownRecipient(_) | Error::UnknownMessage(_) => Code::NotFound,
            Error::Conflict(_) => Code::AlreadyExists,
            Error::Lifecycle(refusal) => match refusal.rule {
                // What the message itself lacks, whatever came before it.
                Rule::ReasonRequired | Rule::MalformedReference => Code::InvalidArgument,
                _ => Code::FailedPrecondition,
            },
            Error::AmbiguousId(_) | Error::AttachmentNotHeld(_) => Code::FailedPrecondition,
            Error::DiskFull(_) | Error::AttachmentTooLarge(_) | Error::UploadQuota(_) => {
                Code::ResourceExhausted
            }
            Error::Store(lienthong_store::Error::Conflict { .. }) => Code::AlreadyExists,
            Error::Store(lienthong_store::Error::NotFound(_)) => Code::NotFound,
            Error::Store(lienthong_store::Error::DigestMismatch { .. }) => Code::InvalidArgument,
            Error::Store(
                lienthong_store::Error::Gap { .. } | lienthong_store::Error::Incomplete { .. },
            ) => Code::FailedPrecondition,
            Error::Store(_) | Error::Io(_) => Code::Unavailable,
            Error::Config(_) | Error::Pki(_) | Error::Transport(_) => Code::Internal,
        }
    }

    /// The stable name of the failure (see the module documentation).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Pki(_) => "pki",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::NotAllowed(_) => "not-allowed",
            Error::NotNeighbour(_) => "not-neighbour",
            Error::SenderMismatch(_) => "sender-mismatch",
            Error::Signature(refused) => match refused {
                Refused::Unsigned { .. } => "unsigned",
                Refused::BadSignature { .. } => "bad-signature",
                Refused::Revoked { .. } => "revoked-signer",
                Refused::WrongSigner { .. } => "wrong-signer",
                Refused::NoTrace { .. } => "no-trace",
                Refused::WrongHop { .. } => "wrong-hop",
            },
            Error::AttachmentMismatch(_) => "attachment-mismatch",
            Error::UnknownRecipient(_) => "unknown-recipient",
            Error::Conflict(_) => "conflict",
            Error::Lifecycle(refusal) => refusal.rule.as_str(),
            Error::ForgedEvent(_) => "forged-event",
            Error::NotVouched(_) => "not-vouched",
            Error::DirectoryRefused(_) => "directory-refused",
            Error::Unexportable(_) => "unexportable-edxml",
            Error::InvalidArgument(_) => "invalid-argument",
            Error::Wire(_) => "invalid-message",
            Error::UnknownMessage(_) => "unknown-message",
            Error::AmbiguousId(_) => "ambiguous-id",
            Error::AttachmentNotHeld(_) => "attachment-not-held",
            Error::DiskFull(_) => "disk-full",
            Error::AttachmentTooLarge(_) => "attachment-too-large",
            Error::UploadQuota(_) => "upload-quota",
            Error::Store(lienthong_store::Error::Conflict { .. }) => "conflict",
            Error::Store(_) => "store",
            Error::Io(_) => "io",
            Error::Transport(_) => "transport",
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = e.code();
        if code == Code::Unavailable || code == Code::Internal {
            tracing::error!(error = %e, "request failed");
        }
        let mut status = Status::new(code, e.to_string());
        status.metadata_mut().insert(
            REASON_KEY,
            tonic::metadata::MetadataValue::from_static(e.reason()),
        );
        status
    }
}
