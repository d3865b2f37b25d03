//! The client's one error type: what a caller matches on to decide whether to fix the
//! message, retry, or look at its own side.

use tonic::Code;

/// The metadata key in which a node names the failure of a refused request
/// (`lienthong-reason: sender-mismatch`); the node's README lists every value.
pub const REASON_KEY: &str = "lienthong-reason";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node answered and refused: `code` is the gRPC code, `reason` the stable name of
    /// the failure (empty when the refusal came from the gRPC layer rather than the node's
    /// logic), `message` what was wrong and what to do.
    #[error("refused by the node ({code:?}, {reason}): {message}")]
    Refused {
        code: Code,
        reason: String,
        message: String,
    },
    /// The node could not be reached or the connection broke: worth retrying.
    #[error("cannot reach the node ({code:?}): {message}")]
    Transport { code: Code, message: String },
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// What the node handed back does not verify: a signature, a digest, a receipt, a
    /// message that is not what was asked for.
    #[error("verification failed: {0}")]
    Verification(String),
    /// A signer whose certificate is revoked (by the CRLs of the profile).
    #[error("{0}")]
    Revoked(String),
    /// A profile, key, certificate or argument that cannot be used.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The gRPC code of a refusal or a transport failure; `None` for local failures.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Refused { code, .. } | Error::Transport { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The stable name of a refusal (`sender-mismatch`, `unknown-recipient`, …).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Refused { reason, .. } if !reason.is_empty() => Some(reason),
            _ => None,
        }
    }

    /// What the node said of a refusal or a transport failure; the whole description
    /// otherwise.
    pub fn message(&self) -> String {
        match self {
            Error::Refused { message, .. } | Error::Transport { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether trying again later may succeed: the link or the node, not the message.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Refused { code, .. } => matches!(
                code,
                Code::Unavailable
                    | Code::Internal
                    | Code::Aborted
                    | Code::ResourceExhausted
                    | Code::FailedPrecondition
            ),
            _ => false,
        }
    }

    pub(crate) fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    }
}

/// A status from the node: a refusal when the node named the failure or the code is one
/// a server gives on purpose, a transport failure otherwise.
impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let reason = status
            .metadata()
            .get(REASON_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let code = status.code();
        // A transport failure's cause (a TLS alert, a refused connection) is only in the
        // source chain: keep it in the message.
        let mut message = status.message().to_string();
        let mut source = std::error::Error::source(&status);
        while let Some(cause) = source {
            message.push_str(" / ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        let broken = matches!(
            code,
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
        );
        if reason.is_empty() && broken {
            Error::Transport { code, message }
        } else {
            Error::Refused {
                code,
                reason,
                message,
            }
        }
    }
}

impl From<lienthong_pki::Error> for Error {
    fn from(e: lienthong_pki::Error) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<lienthong_core::Error> for Error {
    fn from(e: lienthong_core::Error) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<lienthong_pki::verify::Refused> for Error {
    fn from(e: lienthong_pki::verify::Refused) -> Self {
        match e {
            lienthong_pki::verify::Refused::Revoked { .. } => Error::Revoked(e.to_string()),
            e => Error::Verification(e.to_string()),
        }
    }
}

/// A message from the node that does not decode is not what a node sends.
impl From<lienthong_proto::Error> for Error {
    fn from(e: lienthong_proto::Error) -> Self {
        Error::Verification(format!("the node sent a message that does not decode: {e}"))
    }
}
