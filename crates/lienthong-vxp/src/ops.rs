//! The operations of the protocol as typed values: read from a verified signed set on
//! the gateway ([`Operation::from_signed`]) and turned into the signed set the SDK would
//! send on the client ([`Operation::signed_headers`]). One table of request shapes
//! (reference §2) serves both directions.
//!
//! Signed keys an operation does not use are ignored: a long-lived SDK object re-sends
//! the `hash-file`, `filePath`, `from`, `status` and `docId` of earlier calls.

use crate::error::{Result, VxpError};
use crate::headers::{SignedHeaders, java_hash_map_order};

/// `messagetype`: an official document or a status notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `edoc` — văn bản điện tử.
    Edoc,
    /// `status` — a business status notice (edXML status 01…16).
    Status,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Edoc => "edoc",
            MessageType::Status => "status",
        }
    }

    /// Reads a signed `messagetype` (letter case ignored: it names one of two values).
    pub fn parse(value: &str) -> Result<Self> {
        if value.eq_ignore_ascii_case("edoc") {
            Ok(MessageType::Edoc)
        } else if value.eq_ignore_ascii_case("status") {
            Ok(MessageType::Status)
        } else {
            Err(VxpError::InvalidInput {
                key: "messagetype",
                value: value.to_string(),
                expected: "edoc or status",
            })
        }
    }
}

/// `status` of updateStatus: what the receiving DMS did with a document it fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// `done` — stored by the DMS.
    Done,
    /// `fail` — the DMS could not take it.
    Fail,
    /// `processing` — the DMS is working on it.
    Processing,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Done => "done",
            DeliveryStatus::Fail => "fail",
            DeliveryStatus::Processing => "processing",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        for s in [
            DeliveryStatus::Done,
            DeliveryStatus::Fail,
            DeliveryStatus::Processing,
        ] {
            if value.eq_ignore_ascii_case(s.as_str()) {
                return Ok(s);
            }
        }
        Err(VxpError::InvalidInput {
            key: "status",
            value: value.to_string(),
            expected: "done, fail or processing",
        })
    }
}

/// The operations, by the path the SDK posts to (`endpoint + "/" + name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationKind {
    SendEdoc,
    GetReceivedEdocList,
    GetEdoc,
    DownloadEdoc,
    UpdateStatus,
    GetSentEdocList,
    GetAgenciesList,
    GetAgenciesListQD20,
    CountReceiveEdoc,
    CountReceiveStatus,
    GetSynchronizeUnit,
}

impl OperationKind {
    pub const ALL: [OperationKind; 11] = [
        OperationKind::SendEdoc,
        OperationKind::GetReceivedEdocList,
        OperationKind::GetEdoc,
        OperationKind::DownloadEdoc,
        OperationKind::UpdateStatus,
        OperationKind::GetSentEdocList,
        OperationKind::GetAgenciesList,
        OperationKind::GetAgenciesListQD20,
        OperationKind::CountReceiveEdoc,
        OperationKind::CountReceiveStatus,
        OperationKind::GetSynchronizeUnit,
    ];

    /// The path segment (and SDK method name).
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::SendEdoc => "sendEdoc",
            OperationKind::GetReceivedEdocList => "getReceivedEdocList",
            OperationKind::GetEdoc => "getEdoc",
            OperationKind::DownloadEdoc => "downloadEdoc",
            OperationKind::UpdateStatus => "updateStatus",
            OperationKind::GetSentEdocList => "getSentEdocList",
            OperationKind::GetAgenciesList => "getAgenciesList",
            OperationKind::GetAgenciesListQD20 => "getAgenciesListQD20",
            OperationKind::CountReceiveEdoc => "countReceiveEdoc",
            OperationKind::CountReceiveStatus => "countReceiveStatus",
            OperationKind::GetSynchronizeUnit => "getSynchronizeUnit",
        }
    }

    /// The operation posted to `/<name>` (exact case, as the SDK writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// `GET` for downloadEdoc, `POST` for everything else.
    pub fn method(self) -> http::Method {
        match self {
            OperationKind::DownloadEdoc => http::Method::GET,
            _ => http::Method::POST,
        }
    }

    /// The signed `Content-Type` (also sent as the plain header).
    pub fn content_type(self) -> &'static str {
        match self {
            OperationKind::SendEdoc => "application/octet-stream",
            _ => "application/json",
        }
    }

    /// The body the SDK sends for every operation but sendEdoc (whose body is the file and
    /// a CRLF).
    pub fn sdk_body(self) -> &'static [u8] {
        match self {
            OperationKind::CountReceiveEdoc
            | OperationKind::CountReceiveStatus
            | OperationKind::GetEdoc
            | OperationKind::UpdateStatus => b"{}",
            _ => b"",
        }
    }
}

/// sendEdoc's signed inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendEdoc {
    /// `from` — the sending agency's code as signed.
    pub from: String,
    pub message_type: MessageType,
    /// `hash-file` — the SHA-256 of the file as the SDK writes it (unpadded hex).
    pub hash_file: String,
    /// `to` — the raw JSON text the caller gave (e.g. an array of codes), when given.
    pub to: Option<String>,
}

/// A request, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    SendEdoc(SendEdoc),
    GetReceivedEdocList {
        message_type: MessageType,
    },
    GetEdoc {
        doc_id: String,
        /// `filePath` — the client's local folder, which the SDK signs; servers ignore it.
        file_path: Option<String>,
    },
    DownloadEdoc {
        doc_id: String,
        file_path: Option<String>,
    },
    UpdateStatus {
        status: DeliveryStatus,
        doc_id: String,
    },
    GetSentEdocList {
        message_type: MessageType,
        doc_id: Option<String>,
    },
    GetAgenciesList,
    GetAgenciesListQD20 {
        level: String,
    },
    CountReceiveEdoc,
    CountReceiveStatus,
    GetSynchronizeUnit,
}

fn required(signed: &SignedHeaders, op: OperationKind, key: &'static str) -> Result<String> {
    match signed.get(key)? {
        Some(v) if !v.trim().is_empty() => Ok(v.to_string()),
        _ => Err(VxpError::MissingInput { op: op.name(), key }),
    }
}

fn optional(signed: &SignedHeaders, key: &'static str) -> Result<Option<String>> {
    Ok(signed
        .get(key)?
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string))
}

impl Operation {
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::SendEdoc(_) => OperationKind::SendEdoc,
            Operation::GetReceivedEdocList { .. } => OperationKind::GetReceivedEdocList,
            Operation::GetEdoc { .. } => OperationKind::GetEdoc,
            Operation::DownloadEdoc { .. } => OperationKind::DownloadEdoc,
            Operation::UpdateStatus { .. } => OperationKind::UpdateStatus,
            Operation::GetSentEdocList { .. } => OperationKind::GetSentEdocList,
            Operation::GetAgenciesList => OperationKind::GetAgenciesList,
            Operation::GetAgenciesListQD20 { .. } => OperationKind::GetAgenciesListQD20,
            Operation::CountReceiveEdoc => OperationKind::CountReceiveEdoc,
            Operation::CountReceiveStatus => OperationKind::CountReceiveStatus,
            Operation::GetSynchronizeUnit => OperationKind::GetSynchronizeUnit,
        }
    }

    /// Reads the operation posted to `/<kind>` from its verified signed set.
    pub fn from_signed(kind: OperationKind, signed: &SignedHeaders) -> Result<Self> {
        let msg_type = || MessageType::parse(&required(signed, kind, "messagetype")?);
        Ok(match kind {
            OperationKind::SendEdoc => Operation::SendEdoc(SendEdoc {
                from: required(signed, kind, "from")?,
                message_type: msg_type()?,
                hash_file: required(signed, kind, "hash-file")?,
                to: optional(signed, "to")?,
            }),
            OperationKind::GetReceivedEdocList => Operation::GetReceivedEdocList {
                message_type: msg_type()?,
            },
            OperationKind::GetEdoc => Operation::GetEdoc {
                doc_id: required(signed, kind, "docId")?,
                file_path: optional(signed, "filePath")?,
            },
            OperationKind::DownloadEdoc => Operation::DownloadEdoc {
                doc_id: required(signed, kind, "docId")?,
                file_path: optional(signed, "filePath")?,
            },
            OperationKind::UpdateStatus => Operation::UpdateStatus {
                status: DeliveryStatus::parse(&required(signed, kind, "status")?)?,
                doc_id: required(signed, kind, "docId")?,
            },
            OperationKind::GetSentEdocList => Operation::GetSentEdocList {
                message_type: msg_type()?,
                doc_id: optional(signed, "docId")?,
            },
            OperationKind::GetAgenciesList => Operation::GetAgenciesList,
            OperationKind::GetAgenciesListQD20 => Operation::GetAgenciesListQD20 {
                level: required(signed, kind, "level")?,
            },
            OperationKind::CountReceiveEdoc => Operation::CountReceiveEdoc,
            OperationKind::CountReceiveStatus => Operation::CountReceiveStatus,
            OperationKind::GetSynchronizeUnit => Operation::GetSynchronizeUnit,
        })
    }

    /// The keys of the caller's JSON, in the order the SDK's callers write them, with the
    /// `hash-file` the SDK adds to sendEdoc.
    fn caller_entries(&self) -> Vec<(&'static str, String)> {
        let edoc = || ("servicetype", "eDoc".to_string());
        match self {
            Operation::SendEdoc(s) => {
                let mut e = vec![
                    ("from", s.from.clone()),
                    edoc(),
                    ("messagetype", s.message_type.as_str().to_string()),
                ];
                if let Some(to) = &s.to {
                    e.push(("to", to.clone()));
                }
                e.push(("hash-file", s.hash_file.clone()));
                e
            }
            Operation::GetReceivedEdocList { message_type } => {
                vec![edoc(), ("messagetype", message_type.as_str().to_string())]
            }
            Operation::GetEdoc { doc_id, file_path }
            | Operation::DownloadEdoc { doc_id, file_path } => {
                let mut e = Vec::new();
                if let Some(p) = file_path {
                    e.push(("filePath", p.clone()));
                }
                e.push(("docId", doc_id.clone()));
                e
            }
            Operation::UpdateStatus { status, doc_id } => vec![
                ("status", status.as_str().to_string()),
                ("docId", doc_id.clone()),
            ],
            Operation::GetSentEdocList {
                message_type,
                doc_id,
            } => {
                let mut e = vec![edoc(), ("messagetype", message_type.as_str().to_string())];
                if let Some(d) = doc_id {
                    e.push(("docId", d.clone()));
                }
                e
            }
            Operation::GetAgenciesListQD20 { level } => vec![("level", level.clone())],
            Operation::GetAgenciesList
            | Operation::CountReceiveEdoc
            | Operation::CountReceiveStatus
            | Operation::GetSynchronizeUnit => Vec::new(),
        }
    }

    /// The signed set the SDK would send for this operation from a fresh service object:
    /// `timestamp` and `systemid` (put in at construction), `Content-Type`, then the
    /// caller's keys, iterated in Java `HashMap` order.
    pub fn signed_headers(&self, system_id: &str, timestamp: &str) -> SignedHeaders {
        let mut entries: Vec<(String, String)> = vec![
            ("timestamp".into(), timestamp.into()),
            ("systemid".into(), system_id.into()),
            ("Content-Type".into(), self.kind().content_type().into()),
        ];
        entries.extend(
            self.caller_entries()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let order = java_hash_map_order(&keys);
        let mut slots: Vec<Option<(String, String)>> = entries.into_iter().map(Some).collect();
        SignedHeaders::new(order.into_iter().filter_map(|i| slots[i].take()).collect())
    }
}
