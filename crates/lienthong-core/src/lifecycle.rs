//! The document lifecycle (DESIGN §3) as pure rules: business statuses 01–06, 13, 15 and
//! 16, and revoke (1), update (2) and replace (3) documents. A document's
//! [`BusinessState`] is folded from the messages about it; the checks say whether a new
//! message may follow. Where the messages come from (a node's store and its index) is the
//! node's business.
//!
//! The rules:
//! - 02 needs a reason; a recipient's progress goes forward ([`StatusCode::may_follow`]);
//! - 13 only from the document's sender, to one of its recipients;
//! - 15 and 16 only from a recipient with an unanswered withdraw request (13) or update
//!   (business type 2) of the document (or answering the update itself);
//! - a revoke, update or replace references documents of its own sender, not already
//!   revoked or replaced and not a revoke themselves, and reaches every one of their
//!   recipients (the recipient list is signed, so a node cannot complete it).

use std::collections::BTreeMap;

use crate::document::{BusinessType, Document};
use crate::status::{StatusCode, StatusNotice};
use crate::{AgencyCode, DocumentId, UnixMillis};

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
    pub at: UnixMillis,
}

/// A document's lifecycle, folded from the messages about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessState {
    pub revoked_by: Option<DocumentId>,
    pub replaced_by: Option<DocumentId>,
    /// Updates, in the order they were folded in.
    pub updated_by: Vec<DocumentId>,
    /// Per recipient, the latest status about the document: the one it reported, or a 13
    /// sent to it, whichever is newer.
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

    /// The state as `agency`, one recipient, may see it: its own statuses only.
    pub fn seen_by(mut self, agency: &AgencyCode) -> Self {
        self.latest.retain(|a, _| a == agency);
        self.progress.retain(|a, _| a == agency);
        self.change_requests.retain(|a, _| a == agency);
        self.change_answers.retain(|a, _| a == agency);
        self
    }

    fn count(map: &BTreeMap<AgencyCode, usize>, agency: &AgencyCode) -> usize {
        map.get(agency).copied().unwrap_or(0)
    }

    /// Folds in a revoke, update or replace of the document.
    pub fn apply_document(&mut self, d: &Document) {
        match d.business.business_type {
            BusinessType::New => {}
            BusinessType::Revoke => {
                self.revoked_by.get_or_insert_with(|| d.id.clone());
            }
            BusinessType::Replace => {
                self.replaced_by.get_or_insert_with(|| d.id.clone());
            }
            // An update is answered under its own id (see `check_status`), so that one
            // update takes one answer.
            BusinessType::Update => self.updated_by.push(d.id.clone()),
        }
    }

    /// Folds in a status notice about the document.
    pub fn apply_status(&mut self, n: &StatusNotice) {
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

/// Which rule a message breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// 02 (rejected) needs a reason in the description.
    ReasonRequired,
    /// A recipient's progress goes forward (01 → 03 → 04 → 05 → 06; 02 only first or
    /// after 01; nothing after 02 or 06).
    ProgressForward,
    /// 15 and 16 answer an unanswered withdraw request (13) or update.
    AnswerNeedsRequest,
    /// A revoke, update or replace references a document its sender sent.
    ReferencesOwnDocument,
    /// A revoke cannot itself be revoked, updated or replaced.
    RevokeIsFinal,
    /// A revoked or replaced document cannot be revoked, updated or replaced again.
    AlreadySuperseded,
    /// A revoke, update or replace reaches every recipient of what it references.
    ReachesEveryRecipient,
    /// The business block references something that is not a document id.
    MalformedReference,
}

impl Rule {
    /// A stable name, for error reasons a client can match.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ReasonRequired => "reason-required",
            Rule::ProgressForward => "progress-forward",
            Rule::AnswerNeedsRequest => "answer-needs-request",
            Rule::ReferencesOwnDocument => "references-own-document",
            Rule::RevokeIsFinal => "revoke-is-final",
            Rule::AlreadySuperseded => "already-superseded",
            Rule::ReachesEveryRecipient => "reaches-every-recipient",
            Rule::MalformedReference => "malformed-reference",
        }
    }
}

/// A message the lifecycle does not allow: the rule and, in one sentence, why. Shown as
/// `lifecycle: <rule>: <why>`, the rule's stable name first (see [`Rule::as_str`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("lifecycle: {}: {detail}", rule.as_str())]
pub struct Refusal {
    pub rule: Rule,
    pub detail: String,
}

fn refuse(rule: Rule, detail: String) -> Refusal {
    Refusal { rule, detail }
}

/// The name of a business type, for messages.
pub fn business_name(t: BusinessType) -> &'static str {
    match t {
        BusinessType::New => "new document (0)",
        BusinessType::Revoke => "revoke (1)",
        BusinessType::Update => "update (2)",
        BusinessType::Replace => "replace (3)",
    }
}

/// The documents a revoke, update or replace refers to: Bussiness/DocumentId and the
/// ReplacementInfo ids, without repeats; none for a new document.
pub fn references(document: &Document) -> Result<Vec<DocumentId>, Refusal> {
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
            refuse(
                Rule::MalformedReference,
                format!("the business block references {text:?}, which is not a document id: {e}"),
            )
        })?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Whether `caller` may send `notice` about `original`, whose state is `state` (who may
/// send a 13, and to whom, is a routing question checked before).
pub fn check_status(
    caller: &AgencyCode,
    notice: &StatusNotice,
    original: &Document,
    state: &BusinessState,
) -> Result<(), Refusal> {
    let code = notice.code;
    if code == StatusCode::Rejected && notice.description.trim().is_empty() {
        return Err(refuse(
            Rule::ReasonRequired,
            "status 02 (rejected) needs a reason in the description".into(),
        ));
    }
    if code == StatusCode::WithdrawRequest {
        return Ok(());
    }
    if code.is_progress() {
        return code
            .may_follow(state.progress.get(caller).copied())
            .map_err(|why| {
                refuse(
                    Rule::ProgressForward,
                    format!("{why} ({caller}, document {})", original.id),
                )
            });
    }
    // 15 or 16: there must be a change request for the caller not yet answered.
    let update_itself = original.business.business_type == BusinessType::Update
        && original.recipients().is_ok_and(|r| r.contains(caller));
    let requests = BusinessState::count(&state.change_requests, caller) + update_itself as usize;
    let answers = BusinessState::count(&state.change_answers, caller);
    if answers >= requests {
        return Err(refuse(
            Rule::AnswerNeedsRequest,
            format!(
                "status {} answers a withdraw request (13) or an update (business type 2), \
                 but no unanswered one is known for {caller} about document {}",
                code.code(),
                original.id
            ),
        ));
    }
    Ok(())
}

/// Whether `document` (a revoke, update or replace) may act on `original`, a document of
/// the same sender whose state is `state`.
pub fn check_reference(
    document: &Document,
    original: &Document,
    state: &BusinessState,
) -> Result<(), Refusal> {
    let kind = business_name(document.business.business_type);
    let target = &original.id;
    if original.business.business_type == BusinessType::Revoke {
        return Err(refuse(
            Rule::RevokeIsFinal,
            format!(
                "document {target} is itself a revoke and cannot be revoked, updated or \
                 replaced"
            ),
        ));
    }
    if let Some((mark @ (BusinessMark::Revoked | BusinessMark::Replaced), by)) = state.mark() {
        return Err(refuse(
            Rule::AlreadySuperseded,
            format!(
                "document {target} was already {} by {by}; act on that one instead",
                mark.as_str()
            ),
        ));
    }
    let recipients = document.recipients().unwrap_or_default();
    let missing: Vec<String> = original
        .recipients()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !recipients.contains(r))
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(refuse(
            Rule::ReachesEveryRecipient,
            format!(
                "a {kind} must reach every recipient of document {target}; add {} to To",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The refusal of a revoke, update or replace whose referenced document is not one of
/// its sender's (unknown, or another agency's: a refusal that names no one).
pub fn unknown_reference(document: &Document, target: &DocumentId, node: &str) -> Refusal {
    let kind = business_name(document.business.business_type);
    let sender = document
        .sender()
        .map_or_else(|_| "its sender".to_string(), |s| s.to_string());
    refuse(
        Rule::ReferencesOwnDocument,
        format!(
            "the {kind} references document {target}, which node {node} does not know as \
             sent by {sender}; a {kind} must reference a document its sender sent through \
             its home node"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn refusals_name_their_rule() {
        let a = AgencyCode::parse("000.00.00.H41").unwrap();
        let b = AgencyCode::parse("000.00.00.H42").unwrap();
        let original = Document::new(a.clone(), vec![b.clone()]);
        let state = BusinessState::default();
        let rejected = StatusNotice::new(b.clone(), a.clone(), &original.id, StatusCode::Rejected);
        assert_eq!(
            check_status(&b, &rejected, &original, &state)
                .unwrap_err()
                .rule,
            Rule::ReasonRequired
        );
        let agreed =
            StatusNotice::new(b.clone(), a.clone(), &original.id, StatusCode::ChangeAgreed);
        assert_eq!(
            check_status(&b, &agreed, &original, &state)
                .unwrap_err()
                .rule,
            Rule::AnswerNeedsRequest
        );
        let mut revoke = Document::new(a.clone(), vec![]);
        revoke.business.business_type = BusinessType::Revoke;
        assert_eq!(
            check_reference(&revoke, &original, &state)
                .unwrap_err()
                .rule,
            Rule::ReachesEveryRecipient
        );
    }
}
