//! The one error type of the crate, and the parse error that carries a position.

use std::fmt;

/// Why a message could not be read, and where: line and column (1-based, the column in
/// characters) in the input as given, stray leading bytes included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub column: u32,
    pub reason: String,
}

impl ParseError {
    pub fn new(line: u32, column: u32, reason: impl Into<String>) -> Self {
        ParseError {
            line,
            column,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// Everything that can go wrong in this crate. Each message says what was wrong and what
/// to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the edXML message: {0}")]
    Parse(#[from] ParseError),
    /// A routing field names no agency: it is not a QĐ 20/2020 code, and no directory
    /// at hand lists it as an alias, so the bus cannot deliver the message.
    #[error(
        "{field} {value:?} names no agency: {reason}; this message cannot be routed until the directory lists {value:?} as an alias of its agency, or the message names the agency by its QĐ 20/2020 code"
    )]
    Unroutable {
        field: String,
        value: String,
        line: u32,
        reason: String,
    },
    /// The message lacks something lienthong needs to carry it.
    #[error("{reason}")]
    Import { line: u32, reason: String },
    /// The preserved part of a core document or notice is not one this crate wrote, or
    /// not within the limits it reads.
    #[error("the message's edxml_preserved part is unreadable: {0}")]
    Preserved(String),
    #[error("cannot sign the message: {0}")]
    Sign(String),
    #[error("I/O error while writing edXML: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The line of the input the error is about, when it is about one (0 if unknown).
    pub fn line(&self) -> Option<u32> {
        match self {
            Error::Parse(p) => Some(p.line),
            Error::Unroutable { line, .. } | Error::Import { line, .. } => Some(*line),
            _ => None,
        }
    }
}
