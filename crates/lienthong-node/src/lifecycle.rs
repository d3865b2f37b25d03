//! The document lifecycle (DESIGN §3) as one node sees it: business statuses 01–06, 13,
//! 15 and 16, and revoke (1), update (2) and replace (3) documents — the rules the node
//! that accepts from a DMS enforces, and the state inboxes and `track` show.
//!
//! # What a node keeps
//! Only an index next to the messages themselves. When a node admits (from a DMS or a
//! neighbour) a status notice about document D, or a revoke, update or replace
//! referencing D, it appends a [`TransportEventKind::Lifecycle`] entry naming that message
//! to D's event log, in a durable write made *before* the message is stored. D's
//! [`BusinessState`] is folded from the messages those entries name, read from the store:
//!
//! - an entry whose message was never stored (a crash between the two writes, or a
//!   refusal after the entry) counts for nothing; the sender re-sends what it holds no
//!   receipt for, the entry is written again and counted once;
//! - a stored message always has its entry, so no state is lost, and the state can never
//!   say more than the messages do;
//! - the entry is written whether D is here yet or not: a revoke that overtakes its
//!   original on a priority lane still marks it when the original arrives.
//!
//! Every node on the path keeps the index, so the recipient's home node marks the
//! original in the recipient's inbox when a revoke arrives by relay, and the sender's home
//! node knows every recipient's latest status for `track`.
//!
//! # The rules (at the node that accepts from the DMS)
//! - 02 needs a reason; a recipient's progress goes forward ([`StatusCode::may_follow`]);
//! - 13 only from the document's sender, to one of its recipients;
//! - 15 and 16 only from a recipient with an unanswered withdraw request (13) or update
//!   (business type 2) of the document known here (or answering the update itself);
//! - a revoke, update or replace references documents its sender sent through this node,
//!   not already revoked or replaced, and reaches every one of their recipients (refused
//!   otherwise: the recipient list is signed, so the node cannot complete it).
//!
//! A check and the admission it allows run under the documents' `LifecycleLocks`, so
//! two concurrent messages cannot both pass a rule only one of them may; a re-send of a
//! stored message is answered from the store and not checked again.

use std::collections::BTreeMap;

use lienthong_core::{
    AgencyCode, BusinessType, Document, DocumentId, MessageKey, StatusCode, StatusNotice,
    TransportEventKind,
};
use lienthong_proto::stored;
use lienthong_store::MessageKind;

use crate::Error;
use crate::node::Node;

/// What became of a document through revoke, replace or update documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusinessMark {
    /// Thu hồi — a revoke (business type 1) of it was admitted.
    Revoked,
    /// Thay thế — a replacement (business type 3) was admitted.
    Replaced,
    /// Cập nhật — an update (business type 2) was admitted.
    Updated,
}

impl BusinessMark {
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessMark::Revoked => "revoked",
            BusinessMark::Replaced => "replaced",
            BusinessMark::Updated => "updated",
        }
    }
}

/// The latest business status one agency reported (or, for 13, was sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatestStatus {
    pub code: StatusCode,
    pub notice: DocumentId,
    /// When its sender made it (relayed notices may be admitted out of order).
    pub at: lienthong_core::UnixMillis,
}

/// A document's lifecycle at this node, folded from the messages its index names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessState {
    pub revoked_by: Option<DocumentId>,
    pub replaced_by: Option<DocumentId>,
    /// Updates, in the order they were admitted here.
    pub updated_by: Vec<DocumentId>,
    /// Per recipient, the latest status about the document: the one it reported, or a 13
    /// sent to it, whichever came last here.
    pub latest: BTreeMap<AgencyCode, LatestStatus>,
    /// Per recipient, the latest progress status (01–06) it reported.
    pub progress: BTreeMap<AgencyCode, StatusCode>,
    /// Per recipient, withdraw requests (13) sent to it (an update is its own request:
    /// it is answered under its own id).
    pub change_requests: BTreeMap<AgencyCode, usize>,
    /// Per recipient, its answers (15, 16) to those.
    pub change_answers: BTreeMap<AgencyCode, usize>,
}

impl BusinessState {
    /// Revoked or replaced wins over updated; the message that made it so.
    pub fn mark(&self) -> Option<(BusinessMark, &DocumentId)> {
        if let Some(r) = &self.revoked_by {
            Some((BusinessMark::Revoked, r))
        } else if let Some(r) = &self.replaced_by {
            Some((BusinessMark::Replaced, r))
        } else {
            self.updated_by.last().map(|u| (BusinessMark::Updated, u))
        }
    }

    fn count(map: &BTreeMap<AgencyCode, usize>, agency: &AgencyCode) -> usize {
        map.get(agency).copied().unwrap_or(0)
    }

    fn apply_document(&mut self, d: &Document) {
        match d.business.business_type {
            BusinessType::New => {}
            BusinessType::Revoke => {
                self.revoked_by.get_or_insert_with(|| d.id.clone());
            }
            BusinessType::Replace => {
                self.replaced_by.get_or_insert_with(|| d.id.clone());
            }
            // An update is answered under its own id (see `check_status_lifecycle`), so
            // that one update takes one answer.
            BusinessType::Update => self.updated_by.push(d.id.clone()),
        }
    }

    fn apply_status(&mut self, n: &StatusNotice) {
        let Ok(from) = n.sender() else { return };
        let recipient = if n.code.sent_by_original_sender() {
            *self.change_requests.entry(n.to.clone()).or_default() += 1;
            n.to.clone()
        } else {
            if n.code.answers_a_change() {
                *self.change_answers.entry(from.clone()).or_default() += 1;
            } else {
                // Relayed notices can be admitted out of order: progress only goes
                // forward (a 01 admitted after its 03 does not undo it).
                let before = self.progress.get(from).copied();
                if n.code.may_follow(before).is_ok() {
                    self.progress.insert(from.clone(), n.code);
                }
            }
            from.clone()
        };
        let newer = self.latest.get(&recipient).is_none_or(|l| l.at <= n.at);
        if newer {
            self.latest.insert(
                recipient,
                LatestStatus {
                    code: n.code,
                    notice: n.id.clone(),
                    at: n.at,
                },
            );
        }
    }
}

/// The documents a revoke, update or replace refers to: Bussiness/DocumentId and the
/// ReplacementInfo ids, without repeats; none for a new document.
pub fn references(document: &Document) -> Result<Vec<DocumentId>, Error> {
    let b = &document.business;
    if b.business_type == BusinessType::New {
        return Ok(Vec::new());
    }
    let mut out: Vec<DocumentId> = Vec::new();
    let texts = std::iter::once(b.referenced_document_id.as_str())
        .chain(b.replacements.iter().map(|r| r.document_id.as_str()))
        .filter(|t| !t.trim().is_empty());
    for text in texts {
        let id = DocumentId::parse(text).map_err(|e| {
            Error::InvalidArgument(format!(
                "the business block references {text:?}, which is not a document id: {e}"
            ))
        })?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Locks striped by document id: a lifecycle check and the admission it allows run under
/// the locks of the documents concerned, so that two concurrent messages cannot both pass
/// a rule only one of them may (two answers to one withdraw request, a revoke and a
/// replace of one document). Documents that share a stripe only wait for each other.
#[derive(Debug)]
pub(crate) struct LifecycleLocks(Vec<tokio::sync::Mutex<()>>);

impl Default for LifecycleLocks {
    fn default() -> Self {
        LifecycleLocks((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl LifecycleLocks {
    /// Holds the stripes of `ids`, taken in stripe order (no deadlock between callers).
    pub(crate) async fn lock(&self, ids: &[DocumentId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids
            .iter()
            .map(|id| {
                let digest = lienthong_core::sign::sha256(id.as_str().as_bytes());
                digest[0] as usize % self.0.len()
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.0[s].lock().await);
        }
        guards
    }
}

fn business_name(t: BusinessType) -> &'static str {
    match t {
        BusinessType::New => "new document (0)",
        BusinessType::Revoke => "revoke (1)",
        BusinessType::Update => "update (2)",
        BusinessType::Replace => "replace (3)",
    }
}

fn refuse(rule: String) -> Error {
    Error::FailedPrecondition(format!("lifecycle: {rule}"))
}

impl Node {
    /// Writes the lifecycle index entries saying that `message` concerns each of
    /// `targets`, durably; called before `message` itself is stored. An entry names the
    /// message by its id (the detail) and its sender (the agency).
    pub(crate) async fn index_lifecycle(
        &self,
        message: &MessageKey,
        targets: &[MessageKey],
    ) -> Result<(), Error> {
        for target in targets {
            let entry = self.event(
                TransportEventKind::Lifecycle,
                message.sender.as_ref(),
                message.id.to_string(),
            );
            self.store()
                .append_event(target, stored::encode_event(&entry).into())
                .await?;
        }
        Ok(())
    }

    /// The lifecycle of document `key` at this node.
    pub fn business_state(&self, key: &MessageKey) -> Result<BusinessState, Error> {
        let mut state = BusinessState::default();
        let mut seen: Vec<MessageKey> = Vec::new();
        for raw in self.store().events(key)? {
            let event = stored::decode_event(&raw)?;
            if event.kind != TransportEventKind::Lifecycle {
                continue;
            }
            let (Ok(message), Some(sender)) = (DocumentId::parse(&event.detail), &event.agency)
            else {
                continue;
            };
            let message = MessageKey::sent_by(sender, &message);
            if seen.contains(&message) {
                continue;
            }
            // No message, no state: see the module documentation.
            let Some(stored_message) = self.store().message(&message)? else {
                continue;
            };
            seen.push(message);
            match stored_message.envelope.kind {
                // Only what the message itself says counts: a revoke, update or replace by
                // the document's own sender, a notice about this sender's document.
                MessageKind::Document => {
                    let d = stored::decode_document(&stored_message.envelope.encoded)?;
                    if key.sender.as_ref() == d.sender().ok()
                        && references(&d).is_ok_and(|r| r.contains(&key.id))
                    {
                        state.apply_document(&d);
                    }
                }
                MessageKind::Status => {
                    let n = stored::decode_status(&stored_message.envelope.encoded)?;
                    if n.document_key().is_ok_and(|d| d == *key) {
                        state.apply_status(&n);
                    }
                }
                MessageKind::Event => {}
            }
        }
        Ok(state)
    }

    /// The lifecycle rules for a status notice from a DMS about `original` (already
    /// checked: the caller is its sender for 13, else one of its recipients).
    pub(crate) fn check_status_lifecycle(
        &self,
        caller: &AgencyCode,
        notice: &StatusNotice,
        original: &Document,
    ) -> Result<(), Error> {
        let code = notice.code;
        if code == StatusCode::Rejected && notice.description.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "lifecycle: status 02 (rejected) needs a reason in the description".into(),
            ));
        }
        if code == StatusCode::WithdrawRequest {
            return Ok(()); // who may send it was checked with the other routing rules
        }
        let state = self.business_state(&original.key()?)?;
        if code.is_progress() {
            return code
                .may_follow(state.progress.get(caller).copied())
                .map_err(|why| refuse(format!("{why} ({caller}, document {})", original.id)));
        }
        // 15 or 16: there must be a change request for the caller not yet answered.
        let update_itself = original.business.business_type == BusinessType::Update
            && original.recipients()?.contains(caller);
        let requests =
            BusinessState::count(&state.change_requests, caller) + update_itself as usize;
        let answers = BusinessState::count(&state.change_answers, caller);
        if answers >= requests {
            return Err(refuse(format!(
                "status {} answers a withdraw request (13) or an update (business type 2), \
                 but node {} knows no unanswered one for {caller} about document {}",
                code.code(),
                self.id(),
                original.id
            )));
        }
        Ok(())
    }

    /// The lifecycle rules for a revoke, update or replace from the DMS of `caller`.
    pub(crate) fn check_document_lifecycle(
        &self,
        caller: &AgencyCode,
        document: &Document,
    ) -> Result<(), Error> {
        let kind = business_name(document.business.business_type);
        let recipients = document.recipients()?;
        for target in references(document)? {
            // Looked up among the caller's own documents: a document of another sender
            // with this id is not the caller's to act on, nor its business to learn of.
            let target_key = MessageKey::sent_by(caller, &target);
            let original = self.load_document(&target_key)?.ok_or_else(|| {
                refuse(format!(
                    "the {kind} references document {target}, which node {} does not know \
                     as sent by {caller}; a {kind} must reference a document its sender sent \
                     through its home node",
                    self.id()
                ))
            })?;
            if original.business.business_type == BusinessType::Revoke {
                return Err(refuse(format!(
                    "document {target} is itself a revoke and cannot be revoked, updated or \
                     replaced"
                )));
            }
            let state = self.business_state(&target_key)?;
            if let Some((mark @ (BusinessMark::Revoked | BusinessMark::Replaced), by)) =
                state.mark()
            {
                return Err(refuse(format!(
                    "document {target} was already {} by {by}; act on that one instead",
                    mark.as_str()
                )));
            }
            let missing: Vec<String> = original
                .recipients()?
                .into_iter()
                .filter(|r| !recipients.contains(r))
                .map(|r| r.to_string())
                .collect();
            if !missing.is_empty() {
                return Err(refuse(format!(
                    "a {kind} must reach every recipient of document {target}; add {} to To",
                    missing.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::BusinessState;
    use lienthong_core::{AgencyCode, DocumentId, StatusCode, StatusNotice};

    /// Relayed notices reach the sender's home node in any order: the state folds them
    /// by their own time and progress only goes forward.
    #[test]
    fn notices_admitted_out_of_order_fold_by_their_time() {
        let sender = AgencyCode::parse("000.00.00.H41").unwrap();
        let recipient = AgencyCode::parse("000.00.00.H42").unwrap();
        let document = DocumentId::generate();
        let notice = |code, at| {
            let mut n = StatusNotice::new(recipient.clone(), sender.clone(), &document, code);
            n.at = at;
            n
        };
        let (arrived, accepted) = (
            notice(StatusCode::Arrived, 1_000),
            notice(StatusCode::Accepted, 2_000),
        );
        let mut state = BusinessState::default();
        state.apply_status(&accepted);
        state.apply_status(&arrived);
        assert_eq!(state.progress[&recipient], StatusCode::Accepted);
        let latest = &state.latest[&recipient];
        assert_eq!(
            (latest.code, &latest.notice),
            (StatusCode::Accepted, &accepted.id)
        );
    }
}
