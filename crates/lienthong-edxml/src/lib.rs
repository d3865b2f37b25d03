//! # lienthong-edxml
//!
//! edXML (QCVN 102:2016/BTTTT), the format Vietnamese DMSs exchange official documents
//! and status messages in, for lienthong: read leniently, written strictly, mapped to and
//! from lienthong's domain types.
//!
//! # Layout
//! - [`dom`]: the lenient XML reader (stray leading bytes, CRLF, prefix variants) and the
//!   element tree kept for unknown elements and the XML-DSig `Signature`;
//! - [`limits`]: how deep, how many and how long what the reader accepts may be;
//! - [`model`]: the parsed message ([`Message`]: [`EdxmlDocument`] or [`EdxmlStatus`]);
//! - [`parse`](mod@parse): element tree → model, attachments decoded as a stream;
//! - [`stream`]: the reader of a message from a file, attachment contents decoded into
//!   spools as they are read, never held;
//! - [`write`](mod@write): model → edXML in the QCVN namespace;
//! - [`attachment`]: streaming base64, SHA-256, the file names inside a ZIP;
//! - [`c14n`] and [`dsig`]: XML canonicalization and XML-DSig verification (RSA-SHA1,
//!   RSA-SHA256, with ring);
//! - [`core_map`]: edXML ⇄ `lienthong_core::{Document, StatusNotice}`, with the parts
//!   lienthong does not model kept in `edxml_preserved`;
//! - [`summary`]: the one-screen description `lienthong edxml check` prints.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod c14n;
pub mod core_map;
pub mod dom;
pub mod dsig;
pub mod error;
pub mod limits;
pub mod model;
pub mod parse;
pub mod stream;
pub mod summary;
pub mod time;
pub mod write;

pub use attachment::{ZipEntry, zip_entries};
pub use core_map::RoutingId;
pub use dom::{EDXML_NS, XmlElement};

pub use dsig::{SignatureCheck, SignatureMethod, sign, verify_signature};
pub use error::{Error, ParseError};
pub use limits::{
    MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS, MAX_NAME_BYTES, MAX_NAMESPACES_IN_SCOPE,
    MAX_SIGNATURE_REFERENCES,
};
pub use model::*;
pub use parse::{AttachmentSink, StreamedMessage, parse, parse_stream, parse_with, parse_written};
pub use summary::{CheckReport, check, summary};

pub use write::{AttachmentSource, write, write_to, write_with};
