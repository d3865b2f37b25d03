//! The encoding a node keeps in its store: the protobuf messages of the contract, with
//! attachment bytes left out (they live in blob files). Decoding re-validates, so a
//! damaged record is reported rather than used.

use lienthong_core as core;
use prost::Message;

use crate::{Error, pb};

pub fn encode_document(d: &core::Document) -> Vec<u8> {
    crate::document_to_pb(d, None).encode_to_vec()
}

pub fn decode_document(bytes: &[u8]) -> Result<core::Document, Error> {
    let pb = pb::Document::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    pb.try_into()
}

pub fn encode_status(n: &core::StatusNotice) -> Vec<u8> {
    pb::StatusNotice::from(n).encode_to_vec()
}

pub fn decode_status(bytes: &[u8]) -> Result<core::StatusNotice, Error> {
    let pb = pb::StatusNotice::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    pb.try_into()
}

pub fn encode_receipt(r: &core::Receipt) -> Vec<u8> {
    pb::Receipt::from(r).encode_to_vec()
}

pub fn decode_receipt(bytes: &[u8]) -> Result<core::Receipt, Error> {
    let pb = pb::Receipt::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    pb.try_into()
}

pub fn encode_event(e: &core::TransportEvent) -> Vec<u8> {
    pb::TransportEvent::from(e).encode_to_vec()
}

pub fn decode_event(bytes: &[u8]) -> Result<core::TransportEvent, Error> {
    let pb = pb::TransportEvent::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    pb.try_into()
}

/// A pack of transport events on their way back, as a node queues it for a neighbour:
/// the relay protocol's `RelayEvents`.
pub fn encode_event_pack(events: &[core::RelayedEvent]) -> Vec<u8> {
    pb::RelayEvents {
        events: events.iter().map(Into::into).collect(),
    }
    .encode_to_vec()
}

/// The events of a stored pack, each decoded on its own: one unusable event (an older
/// node's, a damaged one) costs only itself.
pub fn decode_event_pack(bytes: &[u8]) -> Result<Vec<Result<core::RelayedEvent, Error>>, Error> {
    let pack = pb::RelayEvents::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    Ok(pack.events.into_iter().map(TryInto::try_into).collect())
}

/// Which dead letters an operator action was about, as the operator log keeps it; empty
/// fields and 0 match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionFilter {
    pub document_id: String,
    pub peer: String,
    pub older_than_ms: u64,
    pub reason_contains: String,
}

/// One operator action on dead letters, as the operator log keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorAction {
    pub at: core::UnixMillis,
    /// The identity of the operator's certificate.
    pub operator: String,
    /// `retry` or `drop`.
    pub action: String,
    pub filter: ActionFilter,
    pub reason: String,
    pub document_ids: Vec<String>,
}

impl From<&ActionFilter> for pb::DeadLetterFilter {
    fn from(f: &ActionFilter) -> Self {
        pb::DeadLetterFilter {
            document_id: f.document_id.clone(),
            peer: f.peer.clone(),
            older_than_ms: f.older_than_ms,
            reason_contains: f.reason_contains.clone(),
            limit: 0,
        }
    }
}

impl From<&OperatorAction> for pb::OperatorAction {
    fn from(a: &OperatorAction) -> Self {
        pb::OperatorAction {
            at_unix_ms: a.at,
            operator: a.operator.clone(),
            action: a.action.clone(),
            filter: Some((&a.filter).into()),
            reason: a.reason.clone(),
            document_ids: a.document_ids.clone(),
        }
    }
}

pub fn encode_operator_action(a: &OperatorAction) -> Vec<u8> {
    pb::OperatorAction::from(a).encode_to_vec()
}

pub fn decode_operator_action(bytes: &[u8]) -> Result<OperatorAction, Error> {
    let a = pb::OperatorAction::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    let f = a.filter.unwrap_or_default();
    Ok(OperatorAction {
        at: a.at_unix_ms,
        operator: a.operator,
        action: a.action,
        filter: ActionFilter {
            document_id: f.document_id,
            peer: f.peer,
            older_than_ms: f.older_than_ms,
            reason_contains: f.reason_contains,
        },
        reason: a.reason,
        document_ids: a.document_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_core::{AgencyCode, Document};

    #[test]
    fn documents_round_trip_through_the_stored_encoding() {
        let mut d = Document::new(
            AgencyCode::parse("000.00.00.G22").unwrap(),
            vec![
                AgencyCode::parse("000.00.00.H41").unwrap(),
                AgencyCode::parse("002.00.20.H13").unwrap(),
            ],
        );
        d.header.subject = "Về việc A".into();
        d.header.other.priority = core::Priority::Flash;
        d.header.other.appendixes = vec!["Phụ lục I".into()];
        d.business.business_type = core::BusinessType::Replace;
        d.business.referenced_document_id = "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT".into();
        d.business.replacements.push(core::ReplacementInfo {
            document_id: "x".into(),
            organ_ids: vec!["000.00.00.H41".into()],
        });
        d.business.staff = Some(core::StaffInfo {
            staff: "Trâm".into(),
            ..Default::default()
        });
        d.attachments.push(core::Attachment {
            name: "a.pdf".into(),
            size: 1,
            sha256: [7; 32],
            ..Default::default()
        });
        d.expires_at = Some(99);
        let back = decode_document(&encode_document(&d)).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            core::canonical::document_bytes(&back),
            core::canonical::document_bytes(&d)
        );
    }

    #[test]
    fn rejects_malformed_agency_code_naming_the_field() {
        let d = Document::new(
            AgencyCode::parse("000.00.00.G22").unwrap(),
            vec![AgencyCode::parse("000.00.00.H41").unwrap()],
        );
        let mut pb = crate::document_to_pb(&d, None);
        pb.to[0].code = "H41".into();
        let err = core::Document::try_from(pb).unwrap_err().to_string();
        assert!(
            err.contains("to.code") && err.contains("malformed agency code"),
            "{err}"
        );
    }
}
