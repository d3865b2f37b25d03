//! The crate's one error type, [`VxpError`], and the one place where each error becomes the
//! `ErrorCode` a VXP response carries ([`VxpError::code`], [`ErrorCode`]).
//!
//! The SDK never interprets `ErrorCode` (it copies it to the caller, who tests for `"0"`),
//! and the national platform's own codes are not documented; these are lienthong's. They
//! are stable: DMS integrators may match on them.

use std::path::PathBuf;

/// The `ErrorCode` of a VXP response. `"0"` is success; every failure has its own code
/// so that a DMS log says what went wrong without parsing `ErrorDesc`.
///
/// The 1xx codes refuse a request before anything is done with it; the 2xx codes report
/// what the bus behind the gateway answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `0` — the operation succeeded.
    Success,
    /// `101` — a header the protocol requires (`XroadVnpt-systemid`, `-sign-header`,
    /// `-hash-header`, or a header named in the signed set) is absent.
    MissingHeader,
    /// `102` — `XroadVnpt-sign-header` is not a flat JSON object of strings, does not sign
    /// `systemid`, or disagrees with `XroadVnpt-sign-header-key`; or a protocol header is
    /// sent twice.
    MalformedSignHeader,
    /// `103` — the `XroadVnpt-systemid` is not a system this gateway knows.
    UnknownSystem,
    /// `104` — `XroadVnpt-hash-header` is not the HMAC of the sign-header under the
    /// system's secret (a wrong secret, or a sign-header changed in transit).
    BadSignature,
    /// `105` — a signed `XroadVnpt-<key>` value differs from the header actually sent.
    TamperedHeader,
    /// `106` — the signed timestamp is outside the configured freshness window (off by
    /// default) or unreadable while a window is configured.
    StaleTimestamp,
    /// `107` — an input the operation needs (`from`, `messagetype`, `docId`, `status`,
    /// `hash-file`, `level`) is not in the signed set or has a value the protocol does not
    /// allow.
    InvalidInput,
    /// `108` — the system may not act for the agency named in `from`.
    AgencyNotAllowed,
    /// `109` — the SHA-256 of the sendEdoc body does not match the signed `hash-file`.
    HashFileMismatch,
    /// `110` — the sendEdoc body is larger than the gateway accepts.
    BodyTooLarge,
    /// `111` — the request body could not be read (the connection broke, or it could not be
    /// spooled to disk).
    BodyUnreadable,
    /// `112` — the operation is not one this gateway serves.
    UnsupportedOperation,
    /// `201` — the document, status or agency asked for does not exist for this system.
    NotFound,
    /// `202` — the bus refused the request (the message is not valid, the sender does not
    /// match, a lifecycle rule forbids it …).
    Refused,
    /// `203` — the request conflicts with what the bus holds (the same id with other
    /// content).
    Conflict,
    /// `204` — the bus is unavailable for now; the DMS should retry later.
    Unavailable,
    /// `205` — an unexpected error inside the gateway or the bus.
    Internal,
}

impl ErrorCode {
    /// The code as the wire carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Success => "0",
            ErrorCode::MissingHeader => "101",
            ErrorCode::MalformedSignHeader => "102",
            ErrorCode::UnknownSystem => "103",
            ErrorCode::BadSignature => "104",
            ErrorCode::TamperedHeader => "105",
            ErrorCode::StaleTimestamp => "106",
            ErrorCode::InvalidInput => "107",
            ErrorCode::AgencyNotAllowed => "108",
            ErrorCode::HashFileMismatch => "109",
            ErrorCode::BodyTooLarge => "110",
            ErrorCode::BodyUnreadable => "111",
            ErrorCode::UnsupportedOperation => "112",
            ErrorCode::NotFound => "201",
            ErrorCode::Refused => "202",
            ErrorCode::Conflict => "203",
            ErrorCode::Unavailable => "204",
            ErrorCode::Internal => "205",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`crate::gateway::VxpBackend`] answers when it cannot do what was asked. The
/// message is shown to the DMS as `ErrorDesc`: one sentence saying what was wrong and
/// what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The document, status or agency does not exist for this system.
    #[error("{0}")]
    NotFound(String),
    /// The bus refuses the request as it stands.
    #[error("{0}")]
    Refused(String),
    /// The same id is already held with other content.
    #[error("{0}")]
    Conflict(String),
    /// The bus cannot answer now; the DMS should retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

/// Everything that can go wrong in this crate: a refused request (gateway side), a
/// failed call (client side), a configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum VxpError {
    #[error("the request has no {name} header; send it as the VXP SDK does")]
    MissingHeader { name: String },
    #[error("the {name} header is sent more than once; send it once")]
    DuplicateHeader { name: String },
    #[error(
        "XroadVnpt-sign-header is malformed: {reason}; send the compact JSON object the VXP SDK writes"
    )]
    MalformedSignHeader { reason: String },
    #[error(
        "system '{system_id}' is not known to this gateway; ask its operator to register the system and its secret"
    )]
    UnknownSystem { system_id: String },
    #[error(
        "XroadVnpt-hash-header is not the HMAC-SHA256 of XroadVnpt-sign-header under the secret of system '{system_id}'; check the secret configured in the DMS"
    )]
    BadMac { system_id: String },
    #[error(
        "header XroadVnpt-{key} is {actual:?} but the signed value is {signed:?}; send the headers exactly as signed"
    )]
    TamperedHeader {
        key: String,
        signed: String,
        actual: String,
    },
    #[error(
        "the signed timestamp '{timestamp}' {reason}; check the DMS clock or create a new service object"
    )]
    StaleTimestamp { timestamp: String, reason: String },
    #[error("the signed header '{key}' is missing; operation {op} needs it")]
    MissingInput { op: &'static str, key: &'static str },
    #[error("the signed header '{key}' is {value:?} but must be {expected}")]
    InvalidInput {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "system '{system_id}' may not act for agency '{agency}'; ask the gateway operator to add the agency to the system"
    )]
    AgencyNotAllowed { system_id: String, agency: String },
    #[error(
        "the body's SHA-256 is {computed} but the signed hash-file is {signed}; send the file unchanged after computing hash-file"
    )]
    HashFileMismatch { signed: String, computed: String },
    #[error(
        "the body is larger than the {limit} bytes this gateway accepts; send a smaller message or ask the operator to raise max_edoc_bytes"
    )]
    BodyTooLarge { limit: u64 },
    #[error("the request body could not be read ({reason}); send the request again")]
    BodyUnreadable { reason: String },
    #[error(
        "operation '{op}' is not served by this gateway; use one of the VXP SDK 2.0.1 operations"
    )]
    UnsupportedOperation { op: String },
    #[error(transparent)]
    Backend(#[from] BackendError),

    // Client side.
    #[error(
        "header {name} cannot carry {value:?}; use values without line breaks or control characters"
    )]
    BadHeader { name: String, value: String },
    #[error("endpoint {endpoint:?} is not usable: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error(
        "the request to {url} failed: {reason}; check the endpoint and the network, then retry"
    )]
    Transport { url: String, reason: String },
    #[error("the answer of {op} is not a VXP response: {reason}")]
    BadResponse { op: &'static str, reason: String },
    #[error("{op} failed with ErrorCode {error_code}: {error_desc}")]
    Remote {
        op: &'static str,
        error_code: String,
        error_desc: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    // Configuration.
    #[error(
        "the secrets file {path} can be read by group or others (mode {mode:o}); run chmod 600 on it"
    )]
    SecretFileTooOpen { path: PathBuf, mode: u32 },
    #[error("the secrets file {path} cannot be read: {source}")]
    SecretFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secrets file {path} is not a TOML table of system id = \"secret\": {reason}")]
    SecretFileParse { path: PathBuf, reason: String },
    #[error("the gateway configuration is not valid: {0}")]
    Config(String),
}

impl VxpError {
    /// The `ErrorCode` a VXP response carries for this error: the one mapping.
    pub fn code(&self) -> ErrorCode {
        match self {
            VxpError::MissingHeader { .. } => ErrorCode::MissingHeader,
            VxpError::DuplicateHeader { .. } | VxpError::MalformedSignHeader { .. } => {
                ErrorCode::MalformedSignHeader
            }
            VxpError::UnknownSystem { .. } => ErrorCode::UnknownSystem,
            VxpError::BadMac { .. } => ErrorCode::BadSignature,
            VxpError::TamperedHeader { .. } => ErrorCode::TamperedHeader,
            VxpError::StaleTimestamp { .. } => ErrorCode::StaleTimestamp,
            VxpError::MissingInput { .. } | VxpError::InvalidInput { .. } => {
                ErrorCode::InvalidInput
            }
            VxpError::AgencyNotAllowed { .. } => ErrorCode::AgencyNotAllowed,
            VxpError::HashFileMismatch { .. } => ErrorCode::HashFileMismatch,
            VxpError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            VxpError::BodyUnreadable { .. } => ErrorCode::BodyUnreadable,
            VxpError::UnsupportedOperation { .. } => ErrorCode::UnsupportedOperation,
            VxpError::Backend(e) => match e {
                BackendError::NotFound(_) => ErrorCode::NotFound,
                BackendError::Refused(_) => ErrorCode::Refused,
                BackendError::Conflict(_) => ErrorCode::Conflict,
                BackendError::Unavailable(_) => ErrorCode::Unavailable,
                BackendError::Internal(_) => ErrorCode::Internal,
            },
            VxpError::BadEndpoint { .. }
            | VxpError::BadHeader { .. }
            | VxpError::Transport { .. }
            | VxpError::BadResponse { .. }
            | VxpError::Remote { .. }
            | VxpError::Io { .. }
            | VxpError::SecretFileTooOpen { .. }
            | VxpError::SecretFileRead { .. }
            | VxpError::SecretFileParse { .. }
            | VxpError::Config(_) => ErrorCode::Internal,
        }
    }
}

pub type Result<T, E = VxpError> = std::result::Result<T, E>;
