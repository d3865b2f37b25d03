//! Checking a message for use on the bus, and the one-screen summary
//! `lienthong edxml check` prints.

use std::fmt::Write as _;

use lienthong_core::directory::DirectoryIndex;
use lienthong_core::{AgencyCode, StatusCode};

use crate::attachment::zip_entries;
use crate::core_map::RoutingId;
use crate::dsig::{SignatureCheck, verify_signature};
use crate::error::Error;
use crate::model::*;

/// What [`check`] found in a usable message.
#[derive(Debug)]
pub struct CheckReport {
    pub message: Message,
    pub signature: SignatureCheck,
    /// The line of the `Signature` element, 0 without one.
    pub signature_line: u32,
    /// Each identifier the bus routes the message by, with the agency it names or, as
    /// [`Error::Unroutable`], why it names none.
    pub identifiers: Vec<(RoutingId, Result<AgencyCode, Error>)>,
}

impl CheckReport {
    /// The identifiers that name no agency, with the reason: the node routes by the
    /// directory, so these are warnings, not refusals.
    pub fn unplaced(&self) -> impl Iterator<Item = &Error> {
        self.identifiers
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
    }
}

/// Reads `input` and checks that lienthong can carry it: a well-formed edXML message,
/// attachments that decode (a template left where the content should be is refused),
/// a DocumentId and at least one To, a known StatusCode. Each routing identifier (From
/// and To of a document; From and ResponseFor/OrganId of a status) is placed with
/// `directory` when given, else only QĐ 20/2020 codes are: one that names no agency is
/// reported in [`CheckReport::identifiers`], not refused. The XML-DSig signature is
/// verified and reported, not required.
pub fn check(input: &[u8], directory: Option<&DirectoryIndex>) -> Result<CheckReport, Error> {
    let message = crate::parse::parse(input)?;
    match &message {
        Message::Document(d) => {
            d.to_core_lenient(0)?;
            d.require_recipients()?;
        }
        Message::Status(s) => {
            s.status_code()?;
        }
    }
    let identifiers = message
        .routing_ids()
        .into_iter()
        .map(|id| {
            let placed = id.place(directory);
            (id, placed)
        })
        .collect();
    let signature_line = message.signature().map(|s| s.line).unwrap_or(0);
    Ok(CheckReport {
        signature: verify_signature(input),
        message,
        signature_line,
        identifiers,
    })
}

/// Trạng thái — the Vietnamese meaning of a status code.
pub fn status_meaning(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Arrived => "Đã đến",
        StatusCode::Rejected => "Từ chối tiếp nhận",
        StatusCode::Accepted => "Đã tiếp nhận, vào sổ",
        StatusCode::Assigned => "Phân công xử lý",
        StatusCode::Processing => "Đang xử lý",
        StatusCode::Done => "Hoàn thành",
        StatusCode::WithdrawRequest => "Yêu cầu lấy lại văn bản",
        StatusCode::ChangeAgreed => "Đồng ý cập nhật, lấy lại",
        StatusCode::ChangeRefused => "Từ chối cập nhật, lấy lại",
    }
}

fn business_meaning(doc_type: &str) -> &'static str {
    match doc_type.trim() {
        "0" => "văn bản mới (new)",
        "1" => "thu hồi (revoke)",
        "2" => "cập nhật (update)",
        "3" => "thay thế (replace)",
        _ => "unknown business type",
    }
}

fn priority_meaning(p: &str) -> &'static str {
    match p.trim() {
        "" | "0" => "thường",
        "1" => "khẩn",
        "2" => "thượng khẩn",
        "3" => "hỏa tốc",
        _ => "unknown",
    }
}

fn org(o: &Organization) -> String {
    let id = if o.organ_id.is_empty() {
        "(no OrganId)"
    } else {
        &o.organ_id
    };
    if o.name.is_empty() {
        id.to_string()
    } else {
        format!("{id} {}", o.name)
    }
}

/// A one-screen description of a message and its signature check.
pub fn summary(message: &Message, signature: &SignatureCheck) -> String {
    let mut s = String::new();
    let line = |s: &mut String, k: &str, v: &str| {
        let _ = writeln!(s, "{k:<12} {v}");
    };
    match message {
        Message::Document(d) => {
            let h = &d.header;
            line(&mut s, "kind:", "document (văn bản điện tử)");
            line(&mut s, "from:", &org(&h.from));
            for (i, to) in h.to.iter().enumerate() {
                line(&mut s, if i == 0 { "to:" } else { "" }, &org(to));
            }
            line(&mut s, "document id:", &h.document_id);
            line(
                &mut s,
                "code:",
                format!("{}/{}", h.code_number, h.code_notation).trim_matches('/'),
            );
            line(&mut s, "subject:", &h.subject);
            if !h.promulgation_date.is_empty() || !h.promulgation_place.is_empty() {
                line(
                    &mut s,
                    "promulgated:",
                    format!("{} {}", h.promulgation_place, h.promulgation_date).trim(),
                );
            }
            line(
                &mut s,
                "priority:",
                format!(
                    "{} ({})",
                    h.other.priority,
                    priority_meaning(&h.other.priority)
                )
                .trim(),
            );
            match &d.business {
                Some(b) => {
                    let mut v = format!("{} {}", b.doc_type, business_meaning(&b.doc_type));
                    if !b.document_id.is_empty() {
                        let _ = write!(v, " of {}", b.document_id);
                    }
                    if !b.reason.is_empty() {
                        let _ = write!(v, " — {}", b.reason);
                    }
                    line(&mut s, "business:", &v);
                }
                None => line(
                    &mut s,
                    "business:",
                    "0 văn bản mới (new; no Bussiness block)",
                ),
            }
            line(&mut s, "attachments:", &d.attachments.len().to_string());
            for a in &d.attachments {
                let _ = writeln!(
                    s,
                    "  - {} ({}), {} bytes, sha256 {}",
                    a.name,
                    if a.content_type.is_empty() {
                        "no content type"
                    } else {
                        &a.content_type
                    },
                    a.size,
                    a.sha256[..8]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                if let Some(entries) = zip_entries(&a.content) {
                    for e in entries {
                        let _ = writeln!(s, "      zip: {} ({} bytes)", e.name, e.size);
                    }
                }
            }
        }
        Message::Status(st) => {
            line(&mut s, "kind:", "status (thông điệp trạng thái)");
            line(&mut s, "from:", &org(&st.from));
            line(&mut s, "to:", &st.response_for.organ_id);
            line(&mut s, "document id:", &st.response_for.document_id);
            line(&mut s, "code:", &st.response_for.code);
            let status = match StatusCode::parse(&st.status_code) {
                Ok(c) => format!(
                    "{} {} ({})",
                    st.status_code,
                    status_meaning(c),
                    c.describe()
                ),
                Err(_) => format!("{} (unknown status code)", st.status_code),
            };
            line(&mut s, "status:", &status);
            line(&mut s, "description:", &st.description);
            line(&mut s, "timestamp:", &st.timestamp);
        }
    }
    let sig = match signature {
        SignatureCheck::Absent => "absent".to_string(),
        SignatureCheck::Verified { algorithm, signer } => {
            format!("verified ({algorithm}, signed by {signer})")
        }
        SignatureCheck::Failed { reason } => format!("failed: {reason}"),
    };
    line(&mut s, "signature:", &sig);
    if !message.extras().is_empty() {
        line(
            &mut s,
            "unknown:",
            &format!("{} element(s) kept as read", message.extras().len()),
        );
    }
    s
}
