//! Business status notices (edXML Status, the feedback a recipient sends the sender),
//! receipts, and the transport events the bus itself reports.

use std::fmt;

use crate::document::{Organization, ResponseFor, StaffInfo};
use crate::sign::Signature;
use crate::{AgencyCode, DocumentId, Error, NodeId, UnixMillis};

/// StatusCode — where a document stands in the recipient's office.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 01 — đã đến: arrived at the recipient's DMS.
    Arrived,
    /// 02 — từ chối: rejected; a reason is required.
    Rejected,
    /// 03 — đã tiếp nhận: accepted and registered (vào sổ).
    Accepted,
    /// 04 — phân công: assigned to a handler.
    Assigned,
    /// 05 — đang xử lý: being processed.
    Processing,
    /// 06 — hoàn thành: done.
    Done,
    /// 13 — the sender asks to withdraw (lấy lại) the document.
    WithdrawRequest,
    /// 15 — the recipient agrees to the update or withdraw request.
    ChangeAgreed,
    /// 16 — the recipient refuses the update or withdraw request.
    ChangeRefused,
}

impl StatusCode {
    pub const ALL: [StatusCode; 9] = [
        StatusCode::Arrived,
        StatusCode::Rejected,
        StatusCode::Accepted,
        StatusCode::Assigned,
        StatusCode::Processing,
        StatusCode::Done,
        StatusCode::WithdrawRequest,
        StatusCode::ChangeAgreed,
        StatusCode::ChangeRefused,
    ];

    /// The two-digit code of edXML.
    pub fn code(self) -> &'static str {
        match self {
            StatusCode::Arrived => "01",
            StatusCode::Rejected => "02",
            StatusCode::Accepted => "03",
            StatusCode::Assigned => "04",
            StatusCode::Processing => "05",
            StatusCode::Done => "06",
            StatusCode::WithdrawRequest => "13",
            StatusCode::ChangeAgreed => "15",
            StatusCode::ChangeRefused => "16",
        }
    }

    /// Parses `03`, or `3`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let t = input.trim();
        let padded = if t.len() == 1 {
            format!("0{t}")
        } else {
            t.to_string()
        };
        Self::ALL
            .into_iter()
            .find(|c| c.code() == padded)
            .ok_or_else(|| Error::UnknownStatusCode(input.to_string()))
    }

    /// Parses a code written exactly as [`StatusCode::code`] writes it (`03`, never `3`):
    /// for codes under a signature.
    pub fn parse_canonical(input: &str) -> Result<Self, Error> {
        let code = Self::parse(input)?;
        if code.code() != input {
            return Err(Error::NonCanonical {
                what: "status code",
                given: input.to_string(),
                canonical: code.code().to_string(),
            });
        }
        Ok(code)
    }

    /// A short English description for operators.
    pub fn describe(self) -> &'static str {
        match self {
            StatusCode::Arrived => "arrived",
            StatusCode::Rejected => "rejected",
            StatusCode::Accepted => "accepted and registered",
            StatusCode::Assigned => "assigned",
            StatusCode::Processing => "processing",
            StatusCode::Done => "done",
            StatusCode::WithdrawRequest => "sender asks to withdraw",
            StatusCode::ChangeAgreed => "recipient agrees to the change",
            StatusCode::ChangeRefused => "recipient refuses the change",
        }
    }

    /// Whether the original sender (rather than a recipient) sends this code.
    pub fn sent_by_original_sender(self) -> bool {
        self == StatusCode::WithdrawRequest
    }

    /// Whether the code reports the recipient's progress (01–06), as opposed to the
    /// change dialogue (13, 15, 16).
    pub fn is_progress(self) -> bool {
        !matches!(
            self,
            StatusCode::WithdrawRequest | StatusCode::ChangeAgreed | StatusCode::ChangeRefused
        )
    }

    /// Whether 15 or 16: an answer to a withdraw request (13) or an update.
    pub fn answers_a_change(self) -> bool {
        matches!(self, StatusCode::ChangeAgreed | StatusCode::ChangeRefused)
    }

    /// The allowed transitions of a recipient's progress: whether it may report `self`
    /// when the latest progress status it reported for the document is `previous`.
    ///
    /// Progress goes forward, 01 → 03 → 04 → 05 → 06, steps may be skipped and a code
    /// repeated; 02 (rejected: the document is not taken in) may come first or after 01
    /// only; after 02 or 06 the document is closed for that recipient. The error is the
    /// rule that was broken, in one sentence.
    pub fn may_follow(self, previous: Option<StatusCode>) -> Result<(), String> {
        debug_assert!(self.is_progress());
        let Some(previous) = previous else {
            return Ok(());
        };
        let refuse = |why: &str| {
            Err(format!(
                "status {} cannot follow {previous}: {why}",
                self.code()
            ))
        };
        match (previous, self) {
            (StatusCode::Rejected, _) => refuse("a rejected document is closed for its recipient"),
            (StatusCode::Done, _) => refuse("a done document is closed for its recipient"),
            (StatusCode::Arrived, StatusCode::Rejected) => Ok(()),
            (_, StatusCode::Rejected) => refuse(
                "02 refuses to take a document in, which is only possible before it is \
                 accepted and registered (03)",
            ),
            _ if self.rank() >= previous.rank() => Ok(()),
            _ => refuse("progress only goes forward (01, 03, 04, 05, 06)"),
        }
    }

    /// The place of a progress code in 01, 03, 04, 05, 06.
    fn rank(self) -> u8 {
        match self {
            StatusCode::Arrived => 1,
            StatusCode::Accepted => 3,
            StatusCode::Assigned => 4,
            StatusCode::Processing => 5,
            StatusCode::Done => 6,
            StatusCode::Rejected => 2,
            _ => 0,
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.describe())
    }
}

/// Thông điệp trạng thái — a status notice about one document, routed towards the agency
/// in `to` (the other party of `response_for`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusNotice {
    /// This notice's own id (deduplicated like a document id).
    pub id: DocumentId,
    pub from: Organization,
    /// The agency the notice is for: the original sender, or for 13 a recipient.
    pub to: AgencyCode,
    /// The document the notice is about.
    pub response_for: ResponseFor,
    pub staff: Option<StaffInfo>,
    pub code: StatusCode,
    /// Description; the reason for 02, 13 and 16.
    pub description: String,
    /// When the DMS set the status.
    pub at: UnixMillis,
    pub signature: Option<Signature>,
    pub trace: Vec<crate::document::TraceEntry>,
    /// As [`crate::Document::edxml_preserved`].
    pub edxml_preserved: Vec<u8>,
    /// As [`crate::Document::imported`].
    pub imported: Option<crate::document::Imported>,
}

impl StatusNotice {
    pub fn new(from: AgencyCode, to: AgencyCode, document: &DocumentId, code: StatusCode) -> Self {
        StatusNotice {
            id: DocumentId::generate(),
            from: Organization::with_code(from),
            to,
            response_for: ResponseFor {
                document_id: document.to_string(),
                ..Default::default()
            },
            staff: None,
            code,
            description: String::new(),
            at: crate::now_millis(),
            signature: None,
            trace: Vec::new(),
            edxml_preserved: Vec::new(),
            imported: None,
        }
    }

    pub fn sender(&self) -> Result<&AgencyCode, Error> {
        self.from
            .code
            .as_ref()
            .ok_or_else(|| Error::InvalidStatus("the sender (from) has no agency code".into()))
    }

    /// The document this notice is about.
    pub fn document_id(&self) -> Result<DocumentId, Error> {
        DocumentId::parse(&self.response_for.document_id).map_err(|e| {
            Error::InvalidStatus(format!("response_for.document_id is not usable: {e}"))
        })
    }

    /// How the bus names this notice: its id within its sender.
    pub fn key(&self) -> Result<crate::MessageKey, Error> {
        Ok(crate::MessageKey::sent_by(self.sender()?, &self.id))
    }

    /// Who sent the document this notice is about: the notice's own sender for a
    /// withdraw request (13), else the agency it goes to.
    pub fn document_sender(&self) -> Result<&AgencyCode, Error> {
        if self.code.sent_by_original_sender() {
            self.sender()
        } else {
            Ok(&self.to)
        }
    }

    /// The key of the document this notice is about.
    pub fn document_key(&self) -> Result<crate::MessageKey, Error> {
        Ok(crate::MessageKey::sent_by(
            self.document_sender()?,
            &self.document_id()?,
        ))
    }

    pub fn validate(&self) -> Result<(), Error> {
        self.sender()?;
        self.document_id()?;
        if self.code == StatusCode::Rejected && self.description.trim().is_empty() {
            return Err(Error::InvalidStatus(
                "status 02 (rejected) needs a reason in the description".into(),
            ));
        }
        Ok(())
    }
}

/// The node's signed proof that it durably accepted a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub document_id: DocumentId,
    /// SHA-256 of the message's canonical bytes, as the node computed it.
    pub content_digest: [u8; 32],
    pub node: NodeId,
    pub accepted_at: UnixMillis,
    /// The node's signature over [`crate::canonical::receipt_bytes`].
    pub signature: Option<Signature>,
}

/// A transport event on its way back to the home node of the sender of message `key`
/// (whose `sender` is always set), with the message's hop trace for a delivery: the
/// sender's home node learns every hop from one event instead of one per hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayedEvent {
    pub key: crate::MessageKey,
    pub event: TransportEvent,
    pub trace: Vec<crate::document::TraceEntry>,
}

impl RelayedEvent {
    /// The agency the event goes to: the message's sender.
    pub fn sender(&self) -> Result<&AgencyCode, Error> {
        self.key.sender.as_ref().ok_or_else(|| {
            Error::InvalidStatus(format!(
                "a transport event about {} names no sender to go to",
                self.key.id
            ))
        })
    }
}

/// What the bus did with a message, reported to its sender and shown by `track`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportEventKind {
    /// Durably accepted by the origin node.
    Accepted,
    /// Handed to the next hop.
    Forwarded,
    /// Stored in a recipient's inbox at its home node.
    Delivered,
    /// Fetched by the recipient's DMS.
    Fetched,
    /// Acknowledged by the recipient's DMS; removed from its inbox.
    Acknowledged,
    /// A business status notice about this document arrived.
    StatusReceived,
    /// Expired before delivery.
    Expired,
    /// Given up on, with a reason; kept as a dead letter until an operator acts.
    DeadLettered,
    /// Put back on its way from the dead letters by an operator.
    Retried,
    /// Dropped from the dead letters by an operator, with a reason.
    Dropped,
    /// Not something the bus did but a lifecycle index entry: the message whose id is the
    /// detail (a status notice about this document, or a revoke, update or replace of it)
    /// was admitted at this node. A node's lifecycle state of a document is read from the
    /// messages these entries name; `track` shows that state rather than the entries.
    Lifecycle,
}

impl TransportEventKind {
    pub const ALL: [TransportEventKind; 11] = [
        TransportEventKind::Accepted,
        TransportEventKind::Forwarded,
        TransportEventKind::Delivered,
        TransportEventKind::Fetched,
        TransportEventKind::Acknowledged,
        TransportEventKind::StatusReceived,
        TransportEventKind::Expired,
        TransportEventKind::DeadLettered,
        TransportEventKind::Retried,
        TransportEventKind::Dropped,
        TransportEventKind::Lifecycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransportEventKind::Accepted => "accepted",
            TransportEventKind::Forwarded => "forwarded",
            TransportEventKind::Delivered => "delivered",
            TransportEventKind::Fetched => "fetched",
            TransportEventKind::Acknowledged => "acknowledged",
            TransportEventKind::StatusReceived => "status-received",
            TransportEventKind::Expired => "expired",
            TransportEventKind::DeadLettered => "dead-lettered",
            TransportEventKind::Retried => "retried",
            TransportEventKind::Dropped => "dropped",
            TransportEventKind::Lifecycle => "lifecycle",
        }
    }
}

impl fmt::Display for TransportEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a message's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportEvent {
    pub kind: TransportEventKind,
    pub at: UnixMillis,
    /// The node that recorded it.
    pub node: NodeId,
    /// The recipient concerned, for per-recipient events.
    pub agency: Option<AgencyCode>,
    /// Free text: the next hop, the status code, the dead-letter reason …
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip_and_reject_unknown() {
        for c in StatusCode::ALL {
            assert_eq!(StatusCode::parse(c.code()).unwrap(), c);
        }
        assert_eq!(StatusCode::parse("3").unwrap(), StatusCode::Accepted);
        for bad in ["07", "14", "", "xx"] {
            let e = StatusCode::parse(bad).unwrap_err();
            assert!(e.to_string().contains("01-06, 13, 15 and 16"), "{e}");
        }
    }

    #[test]
    fn progress_goes_forward_and_closes_after_02_or_06() {
        use StatusCode::*;
        for (previous, next) in [
            (None, Arrived),
            (None, Rejected),
            (None, Done),
            (Some(Arrived), Rejected),
            (Some(Arrived), Accepted),
            (Some(Accepted), Processing),
            (Some(Processing), Processing),
            (Some(Assigned), Done),
        ] {
            next.may_follow(previous)
                .unwrap_or_else(|e| panic!("{previous:?} → {next:?}: {e}"));
        }
        for (previous, next, why) in [
            (Rejected, Accepted, "rejected document is closed"),
            (Done, Processing, "done document is closed"),
            (Accepted, Rejected, "before it is accepted and registered"),
            (Processing, Accepted, "only goes forward"),
        ] {
            let e = next.may_follow(Some(previous)).unwrap_err();
            assert!(e.contains(why), "{previous:?} → {next:?}: {e}");
        }
    }

    #[test]
    fn rejected_status_requires_a_reason() {
        let a = AgencyCode::parse("000.00.00.H41").unwrap();
        let b = AgencyCode::parse("000.00.00.G22").unwrap();
        let mut n = StatusNotice::new(a, b, &DocumentId::generate(), StatusCode::Rejected);
        assert!(
            n.validate()
                .unwrap_err()
                .to_string()
                .contains("needs a reason")
        );
        n.description = "sai thể thức".into();
        n.validate().unwrap();
    }
}
