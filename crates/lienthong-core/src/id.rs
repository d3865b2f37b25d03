//! Identifiers: agency codes (mã định danh, QĐ 20/2020/QĐ-TTg), node ids, document ids.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Mã định danh cơ quan — an agency's code as defined by QĐ 20/2020/QĐ-TTg, written lowest
/// level first: `000.00.00.H41` (UBND tỉnh Nghệ An), `000.00.14.H20` (a Sở of Đồng Tháp),
/// `002.00.20.H13` (a commune).
///
/// Invariant: four dot-separated parts of 3 digits, 2 digits, 2 digits, and one ASCII
/// uppercase letter followed by 2 digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode(String);

impl AgencyCode {
    /// Parses a code, accepting surrounding whitespace and a lowercase level-1 letter.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let err = |reason| Error::MalformedAgencyCode {
            code: input.to_string(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        let parts: Vec<&str> = trimmed.split('.').collect();
        if parts.len() != 4 {
            return Err(err("it must have exactly four parts"));
        }
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(parts[0], 3) {
            return Err(err("the first part must be 3 digits"));
        }
        if !digits(parts[1], 2) {
            return Err(err("the second part must be 2 digits"));
        }
        if !digits(parts[2], 2) {
            return Err(err("the third part must be 2 digits"));
        }
        let last = parts[3].as_bytes();
        if last.len() != 3 || !last[0].is_ascii_alphabetic() || !digits(&parts[3][1..], 2) {
            return Err(err(
                "the fourth part must be a letter followed by 2 digits, such as H41",
            ));
        }
        Ok(AgencyCode(format!(
            "{}.{}.{}.{}{}",
            parts[0],
            parts[1],
            parts[2],
            (last[0] as char).to_ascii_uppercase(),
            &parts[3][1..]
        )))
    }

    /// Parses a code that must already be written canonically (no surrounding
    /// whitespace, an uppercase letter): for values under a signature, which are
    /// verified as they were sent and so are never rewritten.
    pub fn parse_canonical(input: &str) -> Result<Self, Error> {
        let code = Self::parse(input)?;
        if code.0 != input {
            return Err(Error::NonCanonical {
                what: "agency code",
                given: input.to_string(),
                canonical: code.0,
            });
        }
        Ok(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The highest-level unit of the code (`H41` in `000.00.00.H41`): a ministry or a
    /// province.
    pub fn level1(&self) -> &str {
        &self.0[10..]
    }
}

impl FromStr for AgencyCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgencyCode({})", self.0)
    }
}

/// An agency known to a node: its code, its name and the other names it answers to —
/// older codes (`01.02.G22`) and local system ids that DMSs still send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agency {
    pub code: AgencyCode,
    /// Tên cơ quan — the agency's official name.
    pub name: String,
    /// Legacy codes and local ids; compared exactly, after trimming.
    pub aliases: Vec<String>,
    /// The identifier an edXML message written for a DMS gives this agency (in From,
    /// To, a status's ResponseFor): the one the agency's own system expects, such as a
    /// legacy code or a platform account id. One of `aliases`; `None` writes the code.
    pub edxml_id: Option<String>,
}

fn check_token(s: &str, max: usize, extra: &[u8]) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("it is empty");
    }
    if s.len() > max {
        return Err("it is too long");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    {
        return Err(
            "it contains characters other than letters, digits and the allowed punctuation",
        );
    }
    Ok(())
}

/// A node of the network (national gateway, province, district or commune), e.g.
/// `national`, `H41`, `H41-C002`.
///
/// Invariant: 1–64 ASCII letters, digits, `-`, `_` or `.`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(input: &str) -> Result<Self, Error> {
        check_token(input, 64, b"-_.").map_err(|reason| Error::MalformedNodeId {
            id: input.to_string(),
            reason,
        })?;
        Ok(NodeId(input.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A document's id, chosen by the sending DMS and kept unchanged across every hop and
/// retry; the key of deduplication.
///
/// Real DMSs use UUIDs as well as ids such as `000.00.00.G22,2014/01/30,7806/VPCP-TTĐT`,
/// so any printable text is allowed.
///
/// Invariant: 1–256 bytes of UTF-8, no control characters, no leading or trailing
/// whitespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId(String);

impl DocumentId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(input: &str) -> Result<Self, Error> {
        let err = |reason| Error::MalformedDocumentId {
            id: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err("it is empty"));
        }
        if input.len() > Self::MAX_LEN {
            return Err(err("it is longer than 256 bytes"));
        }
        if input.chars().any(char::is_control) {
            return Err(err("it contains control characters"));
        }
        if input.trim() != input {
            return Err(err("it has leading or trailing whitespace"));
        }
        Ok(DocumentId(input.to_string()))
    }

    /// A fresh random id (UUID v4).
    pub fn generate() -> Self {
        DocumentId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DocumentId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({})", self.0)
    }
}

/// How the bus names a message: the id its sender gave it, within that sender.
///
/// Ids are chosen by senders (edXML ids such as `000.00.00.G22,2014/01/30,7806/VPCP-TTĐT`
/// are predictable), so two agencies may use the same one. Deduplication, conflicts and
/// every lookup are scoped to the sender: one agency can never take, block or read
/// another agency's message by naming its id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey {
    pub id: DocumentId,
    /// The sending agency; `None` for a node's own messages (packs of transport events),
    /// which no agency sends.
    pub sender: Option<AgencyCode>,
}

impl MessageKey {
    /// The key of a message `sender` sent under `id`.
    pub fn sent_by(sender: &AgencyCode, id: &DocumentId) -> Self {
        MessageKey {
            id: id.clone(),
            sender: Some(sender.clone()),
        }
    }

    /// The key of a node's own message.
    pub fn node_own(id: DocumentId) -> Self {
        MessageKey { id, sender: None }
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sender {
            Some(sender) => write!(f, "{} (from {sender})", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qd20_codes() {
        for c in [
            "000.00.00.G22",
            "000.00.00.H41",
            "000.00.14.H20",
            "002.00.20.H13",
        ] {
            assert_eq!(AgencyCode::parse(c).unwrap().as_str(), c);
        }
        assert_eq!(
            AgencyCode::parse(" 000.00.00.h41 ").unwrap().as_str(),
            "000.00.00.H41"
        );
        assert_eq!(AgencyCode::parse("002.00.20.H13").unwrap().level1(), "H13");
    }

    #[test]
    fn canonical_parsing_refuses_what_lenient_parsing_would_rewrite() {
        for (input, canonical) in [
            (" 001.00.20.h42 ", "001.00.20.H42"),
            ("001.00.20.h42", "001.00.20.H42"),
        ] {
            assert_eq!(AgencyCode::parse(input).unwrap().as_str(), canonical);
            let e = AgencyCode::parse_canonical(input).unwrap_err();
            assert_eq!(
                e,
                Error::NonCanonical {
                    what: "agency code",
                    given: input.into(),
                    canonical: canonical.into()
                }
            );
        }
        assert!(AgencyCode::parse_canonical("001.00.20.H42").is_ok());
    }

    #[test]
    fn rejects_malformed_agency_codes_with_the_reason() {
        let cases = [
            ("", "it is empty"),
            ("01.02.G22", "exactly four parts"),
            ("00.00.00.H41", "first part must be 3 digits"),
            ("000.0.00.H41", "second part must be 2 digits"),
            ("000.00.0a.H41", "third part must be 2 digits"),
            ("000.00.00.41", "fourth part must be a letter"),
            ("000.00.00.HH1", "fourth part must be a letter"),
            ("000.00.00.H41.1", "exactly four parts"),
        ];
        for (input, reason) in cases {
            let msg = AgencyCode::parse(input).unwrap_err().to_string();
            assert!(msg.contains(reason), "{input:?}: {msg}");
            assert!(msg.contains("malformed agency code"), "{msg}");
        }
    }

    #[test]
    fn node_and_document_ids_are_validated() {
        assert!(NodeId::parse("H41-C002").is_ok());
        assert!(NodeId::parse("bad id").is_err());
        assert!(NodeId::parse("").is_err());
        assert!(DocumentId::parse(&"x".repeat(257)).is_err());
        assert!(DocumentId::parse("000.00.00.G22,2014/01/30,7806/VPCP-TTĐT").is_ok());
        assert!(DocumentId::parse("a\nb").is_err());
        assert!(DocumentId::parse(" a").is_err());
        let id = DocumentId::generate();
        assert_eq!(DocumentId::parse(id.as_str()).unwrap(), id);
    }
}
