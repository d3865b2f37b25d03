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
