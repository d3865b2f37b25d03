//! The node's one error type, and the one function that maps it to a gRPC status.

use lienthong_core::lifecycle::Rule;
use tonic::{Code, Status};

/// Why a node refused a request or could not start. Each message says what was wrong
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Config(String),
    #[error("{0}")]
    Pki(#[from] lienthong_pki::Error),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request breaks a rule about the state of what it refers to (the document
    /// lifecycle: a status out of order, a revoke of an unknown document …), or needs
    /// something done first (an attachment uploaded).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid message: {0}")]
    Wire(#[from] lienthong_proto::Error),
    #[error("store: {0}")]
    Store(#[from] lienthong_store::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// The document lifecycle does not allow the message (see
    /// [`lienthong_core::lifecycle`]).
    #[error("{0}")]
    Lifecycle(#[from] lienthong_core::lifecycle::Refusal),
}

impl From<lienthong_core::Error> for Error {
    fn from(e: lienthong_core::Error) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::InvalidArgument(_) | Error::Wire(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Lifecycle(refusal) => match refusal.rule {
                // What the message itself lacks, whatever came before it.
                Rule::ReasonRequired | Rule::MalformedReference => Code::InvalidArgument,
                _ => Code::FailedPrecondition,
            },
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Store(lienthong_store::Error::Conflict { .. }) => Code::AlreadyExists,
            Error::Store(lienthong_store::Error::NotFound(_)) => Code::NotFound,
            Error::Store(lienthong_store::Error::DigestMismatch { .. }) => Code::InvalidArgument,
            Error::Store(
                lienthong_store::Error::Gap { .. } | lienthong_store::Error::Incomplete { .. },
            ) => Code::FailedPrecondition,
            Error::Store(_) | Error::Io(_) => Code::Unavailable,
            Error::Config(_) | Error::Pki(_) | Error::Transport(_) => Code::Internal,
        };
        if code == Code::Unavailable || code == Code::Internal {
            tracing::error!(error = %e, "request failed");
        }
        Status::new(code, e.to_string())
    }
}
