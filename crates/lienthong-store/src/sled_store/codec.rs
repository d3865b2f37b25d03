//! Key layout and value encoding of the one sled tree.
//!
//! Everything lives in a single tree; the write-ahead log (`wal`) makes each group of
//! writes atomic, crash included. The first byte of a key names its
//! family; variable-length parts are length-prefixed, so no prefix of one key is the
//! prefix of another family member by accident, and numbers are big-endian so that byte
//! order is numeric order.
//!
//! | family | key | value |
//! |---|---|---|
//! | message (and dedup index) | `m` id sender | [`MessageRecord`], pointing into the write-ahead log |
//! | inbox | `i` agency (3 - priority) cursor | [`encode_inbox`] |
//! | outbox | `o` hop (3 - priority) seq | [`encode_outbox`] |
//! | event | `e` id sender seq | event bytes |
//! | dead letter | `d` seq | [`encode_dead_letter`] |
//! | operator log | `a` seq | action bytes |
//! | format mark | `!` | [`FORMAT_VERSION`] |
//! | checkpoint | `!c` | write-ahead log position |
//!
//! A message is keyed by its id and its sender ([`MessageKey`]): the id first, so the
//! messages of all senders that used one id sit together (`messages_with_id`). Ids are
//! written with a two-byte length (they may be 256 bytes long), the sender with one (an
//! empty one for a node's own messages).
//!
//! Sequence numbers (`cursor`, `seq`) come from sled's `generate_id`: store-wide, strictly
//! increasing, never reused after a crash. They give inbox cursors, outbox insertion order
//! and event order.
//!
//! `accept` is the hot path and each sled key costs (about 12 µs of CPU for a small one on
//! the 2-core machine), so the message record carries what would otherwise be keys of
//! their own: the cursor of each of its inbox entries (how `ack` finds the entry) and the
//! events given to `accept`. Those events take one sequence number for the block; events
//! appended later have event keys with greater numbers and so come after them.

use bytes::Bytes;
use lienthong_core::{AgencyCode, DocumentId, MessageKey, NodeId};

use super::wal::BodyRef;
use crate::{DeadLetter, Digest, Envelope, Error, MessageKind, Result, StoredMessage};

/// Version byte in front of every encoded value, so a later format can be told apart.
const FORMAT: u8 = 1;

/// Version of the key layout and values as a whole, marked in every store: 2 since inbox
/// keys carry a priority lane, 3 since changes go through a write-ahead log that also keeps
/// receipts and message bodies, 4 since messages are keyed by id and sender.
pub(crate) const FORMAT_VERSION: u8 = 4;

pub(crate) fn format_key() -> [u8; 1] {
    [b'!']
}

/// Where the last checkpoint left the write-ahead log (see `checkpoint`).
pub(crate) fn checkpoint_key() -> [u8; 2] {
    [b'!', b'c']
}

const MESSAGE: u8 = b'm';
const INBOX: u8 = b'i';
const OUTBOX: u8 = b'o';
const EVENT: u8 = b'e';
const DEAD: u8 = b'd';
const OPERATOR: u8 = b'a';

fn push_str(buf: &mut Vec<u8>, s: &str) {
    // Agency codes, node ids and document ids are at most 128 ASCII bytes (core invariant).
    debug_assert!(s.len() <= u8::MAX as usize);
    buf.push(s.len() as u8);
    buf.extend_from_slice(s.as_bytes());
}

/// A message key: the id with a two-byte length, then the sender ("" for none).
fn push_message_key(buf: &mut Vec<u8>, key: &MessageKey) {
    push_id(buf, &key.id);
    push_str(buf, key.sender.as_ref().map_or("", |s| s.as_str()));
}

fn push_id(buf: &mut Vec<u8>, id: &DocumentId) {
    buf.extend_from_slice(&(id.as_str().len() as u16).to_be_bytes());
    buf.extend_from_slice(id.as_str().as_bytes());
}

fn push_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
    buf.extend_from_slice(b);
}

fn key(family: u8, parts: &[&str], seq: Option<u64>, extra: usize) -> Vec<u8> {
    let mut k =
        Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 1).sum::<usize>() + 9 + extra);
    k.push(family);
    for p in parts {
        push_str(&mut k, p);
    }
    if let Some(seq) = seq {
        k.extend_from_slice(&seq.to_be_bytes());
    }
    k
}

pub(crate) fn message_key(key: &MessageKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.id.as_str().len() + 14);
    k.push(MESSAGE);
    push_message_key(&mut k, key);
    k
}

/// The keys of the messages of every sender that used `id`.
pub(crate) fn message_id_prefix(id: &DocumentId) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + id.as_str().len());
    k.push(MESSAGE);
    push_id(&mut k, id);
    k
}

/// The message key in a message record's key.
pub(crate) fn decode_message_key(key: &[u8]) -> Result<MessageKey> {
    let mut r = Reader::new(key);
    match r.u8()? {
        MESSAGE => r.message_key(),
        other => Err(Error::Corrupt(format!(
            "not a message key (family {other})"
        ))),
    }
}

/// What every message record's key starts with (for `repair`, which looks for records
/// whose bodies were lost).
pub(crate) fn message_prefix() -> [u8; 1] {
    [MESSAGE]
}

/// The message key in a message record's key, [`message_key`] read back; `None` for any
/// other key (for `repair`, which names the messages of a damaged frame).
pub(crate) fn message_id(key: &[u8]) -> Option<MessageKey> {
    decode_message_key(key).ok()
}

pub(crate) fn inbox_prefix(agency: &AgencyCode) -> Vec<u8> {
    key(INBOX, &[agency.as_str()], None, 9)
}

pub(crate) fn inbox_key(agency: &AgencyCode, priority: u8, cursor: u64) -> Vec<u8> {
    let mut k = inbox_lane_prefix(agency, priority);
    k.extend_from_slice(&cursor.to_be_bytes());
    k
}

/// The keys of one priority of an inbox: urgent lanes sort first, as in outboxes.
pub(crate) fn inbox_lane_prefix(agency: &AgencyCode, priority: u8) -> Vec<u8> {
    let mut k = inbox_prefix(agency);
    k.push(lane(priority));
    k
}

/// The lane byte of a priority: higher priority sorts first; above 3 counts as 3.
fn lane(priority: u8) -> u8 {
    3 - priority.min(3)
}

pub(crate) fn outbox_prefix(hop: &NodeId) -> Vec<u8> {
    key(OUTBOX, &[hop.as_str()], None, 9)
}

pub(crate) fn outbox_key(hop: &NodeId, priority: u8, seq: u64) -> Vec<u8> {
    let mut k = outbox_lane_prefix(hop, priority);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The keys of one priority of an outbox.
pub(crate) fn outbox_lane_prefix(hop: &NodeId, priority: u8) -> Vec<u8> {
    let mut k = outbox_prefix(hop);
    k.push(lane(priority));
    k
}

pub(crate) fn event_prefix(key: &MessageKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.id.as_str().len() + 14 + 8);
    k.push(EVENT);
    push_message_key(&mut k, key);
    k
}

pub(crate) fn event_key(key: &MessageKey, seq: u64) -> Vec<u8> {
    let mut k = event_prefix(key);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn dead_letter_prefix() -> [u8; 1] {
    [DEAD]
}

pub(crate) fn dead_letter_key(seq: u64) -> Vec<u8> {
    key(DEAD, &[], Some(seq), 0)
}

pub(crate) fn operator_prefix() -> [u8; 1] {
    [OPERATOR]
}

pub(crate) fn operator_key(seq: u64) -> Vec<u8> {
    key(OPERATOR, &[], Some(seq), 0)
}

/// All inboxes' keys, or all outboxes' keys.
pub(crate) fn all_inboxes() -> [u8; 1] {
    [INBOX]
}

pub(crate) fn all_outboxes() -> [u8; 1] {
    [OUTBOX]
}

/// The queue name (agency code or hop) in an inbox or outbox key.
pub(crate) fn queue_name(key: &[u8]) -> Result<&str> {
    let mut r = Reader::new(key);
    r.u8()?;
    r.str()
}

/// The sequence number at the end of an inbox key (the cursor) or outbox key.
pub(crate) fn trailing_seq(key: &[u8]) -> Result<u64> {
    let tail = key
        .len()
        .checked_sub(8)
        .map(|start| &key[start..])
        .ok_or_else(|| Error::Corrupt("queue key too short".into()))?;
    decode_u64(tail)
}

pub(crate) fn decode_u64(value: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        Error::Corrupt(format!(
            "expected 8-byte number, found {} bytes",
            value.len()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

fn kind_byte(kind: MessageKind) -> u8 {
    match kind {
        MessageKind::Document => 0,
        MessageKind::Status => 1,
        MessageKind::Event => 2,
    }
}

fn byte_kind(b: u8) -> Result<MessageKind> {
    match b {
        0 => Ok(MessageKind::Document),
        1 => Ok(MessageKind::Status),
        2 => Ok(MessageKind::Event),
        other => Err(Error::Corrupt(format!("unknown message kind {other}"))),
    }
}

/// A decoded message record, borrowing the stored bytes.
#[derive(Debug)]
pub(crate) struct MessageRecord<'a> {
    pub kind: MessageKind,
    pub priority: u8,
    pub content_digest: Digest,
    pub received_at: i64,
    /// The events given to `accept`, in order, and the sequence number of the block.
    pub events: (u64, Vec<&'a [u8]>),
    /// Inbox entries made by `accept`: agency code and cursor. Kept after an ack (the
    /// entry itself is gone then).
    pub inboxes: Vec<(&'a str, u64)>,
    /// The receipt and the encoded message, in the write-ahead log ([`encode_body`]).
    pub body: BodyRef,
}

impl MessageRecord<'_> {
    /// The cursor `accept` gave the message in `agency`'s inbox, if it went there.
    pub(crate) fn inbox_cursor(&self, agency: &AgencyCode) -> Option<u64> {
        self.inboxes
            .iter()
            .find(|(a, _)| *a == agency.as_str())
            .map(|(_, c)| *c)
    }

    /// The stored message, given its body as read from the write-ahead log.
    pub(crate) fn to_stored(&self, key: &MessageKey, body: &[u8]) -> Result<StoredMessage> {
        let (receipt, encoded) = decode_body(body)?;
        Ok(StoredMessage {
            envelope: Envelope {
                key: key.clone(),
                kind: self.kind,
                priority: self.priority,
                content_digest: self.content_digest,
                encoded: Bytes::copy_from_slice(encoded),
                received_at: self.received_at,
            },
            receipt: Bytes::copy_from_slice(receipt),
        })
    }
}

/// A message body in the write-ahead log, as parts to concatenate: `receipt_len(u32) receipt
/// encoded`.
pub(crate) fn encode_body<'a>(
    len: &'a mut [u8; 4],
    receipt: &'a [u8],
    encoded: &'a [u8],
) -> [&'a [u8]; 3] {
    *len = (receipt.len() as u32).to_be_bytes();
    [&len[..], receipt, encoded]
}

/// The receipt and the encoded message of a body.
pub(crate) fn decode_body(body: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut r = Reader::new(body);
    let receipt = r.bytes()?;
    Ok((receipt, r.rest()))
}

/// `FORMAT kind priority digest[32] received_at(i64) events_seq(u64) event_count(u16)
/// (event_len(u32) event)* inbox_count(u16) (agency cursor)* body_ref`
pub(crate) fn encode_message(
    envelope: &Envelope,
    events: (u64, &[Bytes]),
    inboxes: &[(AgencyCode, u64)],
    body: &BodyRef,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(
        3 + 32
            + 8
            + 10
            + events.1.iter().map(|e| 4 + e.len()).sum::<usize>()
            + 2
            + inboxes.len() * 22
            + BodyRef::ENCODED_LEN,
    );
    v.push(FORMAT);
    v.push(kind_byte(envelope.kind));
    v.push(envelope.priority);
    v.extend_from_slice(&envelope.content_digest);
    v.extend_from_slice(&envelope.received_at.to_be_bytes());
    v.extend_from_slice(&events.0.to_be_bytes());
    v.extend_from_slice(&(events.1.len() as u16).to_be_bytes());
    for e in events.1 {
        push_bytes(&mut v, e);
    }
    v.extend_from_slice(&(inboxes.len() as u16).to_be_bytes());
    for (agency, cursor) in inboxes {
        push_str(&mut v, agency.as_str());
        v.extend_from_slice(&cursor.to_be_bytes());
    }
    body.encode_into(&mut v);
    v
}

pub(crate) fn decode_message(value: &[u8]) -> Result<MessageRecord<'_>> {
    let mut r = Reader::new(value);
    r.format()?;
    let kind = byte_kind(r.u8()?)?;
    let priority = r.u8()?;
    let content_digest: Digest = r.take(32)?.try_into().map_err(corrupt)?;
    let received_at = i64::from_be_bytes(r.take(8)?.try_into().map_err(corrupt)?);
    let events_seq = r.u64()?;
    let event_count = u16::from_be_bytes(r.take(2)?.try_into().map_err(corrupt)?);
    let events = (0..event_count)
        .map(|_| r.bytes())
        .collect::<Result<Vec<_>>>()?;
    let count = u16::from_be_bytes(r.take(2)?.try_into().map_err(corrupt)?);
    let inboxes = (0..count)
        .map(|_| Ok((r.str()?, r.u64()?)))
        .collect::<Result<Vec<_>>>()?;
    let body = BodyRef::decode(r.rest())?;
    Ok(MessageRecord {
        kind,
        priority,
        content_digest,
        received_at,
        events: (events_seq, events),
        inboxes,
        body,
    })
}

/// `FORMAT key kind priority`
pub(crate) fn encode_inbox(key: &MessageKey, kind: MessageKind, priority: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + key.id.as_str().len() + 14);
    v.push(FORMAT);
    push_message_key(&mut v, key);
    v.push(kind_byte(kind));
    v.push(priority);
    v
}

pub(crate) fn decode_inbox(value: &[u8]) -> Result<(MessageKey, MessageKind, u8)> {
    let mut r = Reader::new(value);
    r.format()?;
    let id = r.message_key()?;
    let kind = byte_kind(r.u8()?)?;
    let priority = r.u8()?;
    Ok((id, kind, priority))
}

/// `FORMAT key priority count (agency)*`
pub(crate) fn encode_outbox(key: &MessageKey, priority: u8, recipients: &[AgencyCode]) -> Vec<u8> {
    let mut v = Vec::with_capacity(7 + key.id.as_str().len() + 14 + recipients.len() * 14);
    v.push(FORMAT);
    push_message_key(&mut v, key);
    v.push(priority);
    v.extend_from_slice(&(recipients.len() as u16).to_be_bytes());
    for r in recipients {
        push_str(&mut v, r.as_str());
    }
    v
}

pub(crate) fn decode_outbox(value: &[u8]) -> Result<(MessageKey, u8, Vec<AgencyCode>)> {
    let mut r = Reader::new(value);
    r.format()?;
    let id = r.message_key()?;
    let priority = r.u8()?;
    let count = u16::from_be_bytes(r.take(2)?.try_into().map_err(corrupt)?);
    let recipients = (0..count)
        .map(|_| AgencyCode::parse(r.str()?).map_err(corrupt))
        .collect::<Result<Vec<_>>>()?;
    Ok((id, priority, recipients))
}

/// `FORMAT key priority count (agency)* hop("" for none) at(i64) reason_len(u32) reason`
pub(crate) fn encode_dead_letter(
    id: &MessageKey,
    priority: u8,
    hop: Option<&NodeId>,
    at: i64,
    reason: &str,
    recipients: &[AgencyCode],
) -> Vec<u8> {
    let mut v = encode_outbox(id, priority, recipients);
    push_str(&mut v, hop.map_or("", |h| h.as_str()));
    v.extend_from_slice(&at.to_be_bytes());
    push_bytes(&mut v, reason.as_bytes());
    v
}

pub(crate) fn decode_dead_letter(key: &[u8], value: &[u8]) -> Result<DeadLetter> {
    let mut r = Reader::new(value);
    r.format()?;
    let message = r.message_key()?;
    let priority = r.u8()?;
    let count = u16::from_be_bytes(r.take(2)?.try_into().map_err(corrupt)?);
    let recipients = (0..count)
        .map(|_| AgencyCode::parse(r.str()?).map_err(corrupt))
        .collect::<Result<Vec<_>>>()?;
    let hop = match r.str()? {
        "" => None,
        h => Some(NodeId::parse(h).map_err(corrupt)?),
    };
    let at = i64::from_be_bytes(r.take(8)?.try_into().map_err(corrupt)?);
    let reason = String::from_utf8(r.bytes()?.to_vec()).map_err(corrupt)?;
    Ok(DeadLetter {
        key: Bytes::copy_from_slice(key),
        message,
        priority,
        recipients,
        hop,
        reason,
        at,
    })
}

/// A bounds-checked cursor over stored bytes: a short or garbled value is
/// [`Error::Corrupt`], never a panic.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::Corrupt(format!(
                "stored value truncated: needed {n} more bytes, found {}",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn format(&mut self) -> Result<()> {
        match self.u8()? {
            FORMAT => Ok(()),
            other => Err(Error::Corrupt(format!("unknown value format {other}"))),
        }
    }

    fn u64(&mut self) -> Result<u64> {
        decode_u64(self.take(8)?)
    }

    fn str(&mut self) -> Result<&'a str> {
        let len = self.u8()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(corrupt)
    }

    fn message_key(&mut self) -> Result<MessageKey> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().map_err(corrupt)?) as usize;
        let id = std::str::from_utf8(self.take(len)?).map_err(corrupt)?;
        let id = DocumentId::parse(id).map_err(corrupt)?;
        let sender = match self.str()? {
            "" => None,
            s => Some(AgencyCode::parse(s).map_err(corrupt)?),
        };
        Ok(MessageKey { id, sender })
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().map_err(corrupt)?) as usize;
        self.take(len)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            key: MessageKey::sent_by(
                &AgencyCode::parse("000.00.00.H41").unwrap(),
                &DocumentId::parse("doc-1").unwrap(),
            ),
            kind: MessageKind::Status,
            priority: 2,
            content_digest: [7; 32],
            encoded: Bytes::from_static(b"encoded bytes"),
            received_at: -5,
        }
    }

    fn body_ref() -> BodyRef {
        BodyRef {
            segment: 3,
            offset: 1 << 33,
            len: 700,
            crc: 0xdead_beef,
        }
    }

    #[test]
    fn message_record_roundtrips() {
        let env = envelope();
        let agency = AgencyCode::parse("000.00.00.H41").unwrap();
        let events = [Bytes::from_static(b"accepted"), Bytes::new()];
        let v = encode_message(&env, (42, &events), &[(agency.clone(), 9)], &body_ref());
        let m = decode_message(&v).unwrap();
        assert_eq!(m.body, body_ref());
        let mut len = [0; 4];
        let body = encode_body(&mut len, b"receipt", &env.encoded).concat();
        let stored = m.to_stored(&env.key, &body).unwrap();
        assert_eq!(stored.envelope, env);
        assert_eq!(stored.receipt, &b"receipt"[..]);
        assert_eq!(m.events, (42, vec![&b"accepted"[..], &b""[..]]));
        assert_eq!(m.inbox_cursor(&agency), Some(9));
        assert_eq!(
            m.inbox_cursor(&AgencyCode::parse("000.00.00.G22").unwrap()),
            None
        );
    }

    #[test]
    fn truncated_or_unknown_values_are_corrupt_not_panics() {
        let v = encode_message(&envelope(), (1, &[]), &[], &body_ref());
        // Every cut loses a field.
        for cut in 0..v.len() {
            assert!(
                matches!(decode_message(&v[..cut]), Err(Error::Corrupt(_))),
                "cut {cut}"
            );
        }
        let mut future = v.clone();
        future[0] = 99;
        assert!(matches!(decode_message(&future), Err(Error::Corrupt(_))));
        assert!(matches!(decode_body(&[0, 0, 1]), Err(Error::Corrupt(_))));
        let outbox = encode_outbox(
            &envelope().key,
            1,
            &[AgencyCode::parse("000.00.00.H41").unwrap()],
        );
        assert!(matches!(
            decode_outbox(&outbox[..outbox.len() - 1]),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            decode_inbox(&[FORMAT, 5, b'a']),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn message_keys_of_one_id_share_a_prefix_and_roundtrip_long_ids() {
        let id = DocumentId::parse(&"x".repeat(DocumentId::MAX_LEN)).unwrap();
        let a = MessageKey::sent_by(&AgencyCode::parse("000.00.00.H41").unwrap(), &id);
        let b = MessageKey::node_own(id.clone());
        for key in [&a, &b] {
            let k = message_key(key);
            assert!(k.starts_with(&message_id_prefix(&id)));
            assert_eq!(&decode_message_key(&k).unwrap(), key);
            let v = encode_inbox(key, MessageKind::Document, 1);
            assert_eq!(&decode_inbox(&v).unwrap().0, key);
        }
        // An id that is a prefix of another does not share its messages' prefix.
        let short = DocumentId::parse(&"x".repeat(10)).unwrap();
        assert!(!message_key(&a).starts_with(&message_id_prefix(&short)));
    }

    #[test]
    fn a_message_key_gives_its_key_back_and_no_other_key_does() {
        let key = envelope().key;
        assert_eq!(message_id(&message_key(&key)), Some(key.clone()));
        assert!(message_key(&key).starts_with(&message_prefix()));
        assert_eq!(message_id(&event_key(&key, 1)), None);
        let k = message_key(&key);
        assert_eq!(message_id(&k[..k.len() - 1]), None);
    }

    #[test]
    fn outbox_keys_sort_by_priority_then_sequence_and_stay_in_their_hop() {
        let hop = NodeId::parse("H41").unwrap();
        let mut keys = [
            outbox_key(&hop, 0, 1),
            outbox_key(&hop, 3, 5),
            outbox_key(&hop, 3, 2),
            outbox_key(&hop, 1, 0),
        ];
        keys.sort();
        let seqs: Vec<u64> = keys.iter().map(|k| trailing_seq(k).unwrap()).collect();
        assert_eq!(seqs, vec![2, 5, 0, 1]);
        let other = NodeId::parse("H41-C1").unwrap();
        assert!(!outbox_key(&other, 3, 1).starts_with(&outbox_prefix(&hop)));
        assert_eq!(queue_name(&outbox_key(&other, 3, 1)).unwrap(), "H41-C1");
    }
}
