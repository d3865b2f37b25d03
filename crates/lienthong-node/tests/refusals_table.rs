//! The README's table of refusals ("### Refusals") is what the node answers: every
//! failure of [`lienthong_node::Error`] has a row with its gRPC code and its
//! `lienthong-reason`, and every row names a failure that exists.
//!
//! The failures are listed once, below, each as a pattern and a sample. The patterns
//! also form a `match` without a catch-all over `Error`, `Refused` or `Rule`, so a new
//! failure does not compile until it is listed here — and then it needs its row.

use lienthong_core::lifecycle::{Refusal, Rule};
use lienthong_core::{AgencyCode, DocumentId, NodeId};
use lienthong_node::Error;
use lienthong_node::error::REASON_KEY;
use lienthong_pki::Identity;
use lienthong_pki::verify::Refused;

fn agency() -> Identity {
    Identity::Agency(AgencyCode::parse("000.00.00.H41").unwrap())
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).unwrap()
}

fn id() -> DocumentId {
    DocumentId::parse("doc-1").unwrap()
}

fn rule(rule: Rule) -> Error {
    Error::Lifecycle(Refusal {
        rule,
        detail: "why".into(),
    })
}

fn s() -> String {
    "why".into()
}

macro_rules! every_failure {
    ($($pattern:pat => $sample:expr,)*) => {
        /// One sample of each failure.
        fn samples() -> Vec<Error> {
            vec![$($sample),*]
        }

        /// Does not compile when a failure is missing above.
        fn listed(e: &Error) {
            match e {
                $($pattern => {})*
            }
        }

        /// Each sample is the failure its pattern names.
        fn samples_match_their_patterns() {
            $(assert!(matches!($sample, $pattern), "{}", stringify!($pattern));)*
        }
    };
}

every_failure! {
    Error::Config(_) => Error::Config(s()),
    Error::Pki(_) => Error::Pki(lienthong_pki::Error::NoIdentity),
    Error::Unauthenticated(_) => Error::Unauthenticated(s()),
    Error::NotAllowed(_) => Error::NotAllowed(s()),
    Error::NotNeighbour(_) => Error::NotNeighbour(s()),
    Error::SenderMismatch(_) => Error::SenderMismatch(s()),
    Error::Signature(Refused::Unsigned { .. }) =>
        Error::Signature(Refused::Unsigned { what: "document", expected: agency() }),
    Error::Signature(Refused::BadSignature { .. }) => Error::Signature(Refused::BadSignature {
        what: "document",
        source: lienthong_pki::Error::NoIdentity,
    }),
    Error::Signature(Refused::Revoked { .. }) => Error::Signature(Refused::Revoked {
        what: "document",
        source: lienthong_pki::Error::RevokedSigner { serial: "01".into(), signer: s() },
    }),
    Error::Signature(Refused::WrongSigner { .. }) => Error::Signature(Refused::WrongSigner {
        what: "document",
        signer: Identity::Node(node("H41")),
        expected: agency(),
    }),
    Error::Signature(Refused::NoTrace { .. }) => Error::Signature(Refused::NoTrace { id: id() }),
    Error::Signature(Refused::WrongHop { .. }) => Error::Signature(Refused::WrongHop {
        id: id(),
        named: node("H41"),
        from: node("H42"),
    }),
    Error::AttachmentMismatch(_) => Error::AttachmentMismatch(s()),
    Error::UnknownRecipient(_) => Error::UnknownRecipient(s()),
    Error::Conflict(_) => Error::Conflict(s()),
    Error::Lifecycle(Refusal { rule: Rule::ReasonRequired, .. }) => rule(Rule::ReasonRequired),
    Error::Lifecycle(Refusal { rule: Rule::ProgressForward, .. }) => rule(Rule::ProgressForward),
    Error::Lifecycle(Refusal { rule: Rule::AnswerNeedsRequest, .. }) =>
        rule(Rule::AnswerNeedsRequest),
    Error::Lifecycle(Refusal { rule: Rule::ReferencesOwnDocument, .. }) =>
        rule(Rule::ReferencesOwnDocument),
    Error::Lifecycle(Refusal { rule: Rule::RevokeIsFinal, .. }) => rule(Rule::RevokeIsFinal),
    Error::Lifecycle(Refusal { rule: Rule::AlreadySuperseded, .. }) =>
        rule(Rule::AlreadySuperseded),
    Error::Lifecycle(Refusal { rule: Rule::ReachesEveryRecipient, .. }) =>
        rule(Rule::ReachesEveryRecipient),
    Error::Lifecycle(Refusal { rule: Rule::MalformedReference, .. }) =>
        rule(Rule::MalformedReference),
    Error::ForgedEvent(_) => Error::ForgedEvent(s()),
    Error::NotVouched(_) => Error::NotVouched(lienthong_pki::verify::NotVouched::OurAgency {
        sender: AgencyCode::parse("000.00.00.H41").unwrap(),
    }),
    Error::DirectoryRefused(_) => Error::DirectoryRefused(s()),
    Error::Unexportable(_) => Error::Unexportable(s()),
    Error::InvalidArgument(_) => Error::InvalidArgument(s()),
    Error::Wire(_) => Error::Wire(lienthong_proto::Error::Missing { field: "from" }),
    Error::UnknownMessage(_) => Error::UnknownMessage(s()),
    Error::AmbiguousId(_) => Error::AmbiguousId(s()),
    Error::AttachmentNotHeld(_) => Error::AttachmentNotHeld(s()),
    Error::DiskFull(_) => Error::DiskFull(s()),
    Error::AttachmentTooLarge(_) => Error::AttachmentTooLarge(s()),
    Error::UploadQuota(_) => Error::UploadQuota(s()),
    // The store's failures that the node tells apart (`Error::code`); the rest alike.
    Error::Store(lienthong_store::Error::Conflict { .. }) =>
        Error::Store(lienthong_store::Error::Conflict { id: "doc-1".into() }),
    Error::Store(lienthong_store::Error::NotFound(_)) =>
        Error::Store(lienthong_store::Error::NotFound(s())),
    Error::Store(lienthong_store::Error::DigestMismatch { .. }) =>
        Error::Store(lienthong_store::Error::DigestMismatch { expected: s() }),
    Error::Store(lienthong_store::Error::Gap { .. }) =>
        Error::Store(lienthong_store::Error::Gap { digest: s(), offset: 2, held: 1 }),
    Error::Store(lienthong_store::Error::Incomplete { .. }) =>
        Error::Store(lienthong_store::Error::Incomplete { digest: s(), held: 1, size: 2 }),
    Error::Store(_) => Error::Store(lienthong_store::Error::Corrupt(s())),
    Error::Io(_) => Error::Io(std::io::Error::other("disk")),
    Error::Transport(_) => Error::Transport(s()),
}

/// `InvalidArgument` → `INVALID_ARGUMENT`, as gRPC names its codes.
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// (code, reason) of each row of the README's refusal table.
fn table_rows() -> Vec<(String, String)> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n### Refusals\n")
        .nth(1)
        .expect("the README has a section `### Refusals`");
    let rows: Vec<(String, String)> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let unquote = |c: &str| c.trim_matches('`').to_string();
            (unquote(cells[1]), unquote(cells[2]))
        })
        .collect();
    assert!(rows.len() > 10, "the refusal table has {} rows", rows.len());
    rows
}

#[test]
fn every_failure_has_its_row_in_the_readme_and_every_row_a_failure() {
    samples_match_their_patterns();
    let answered: Vec<(String, String)> = samples()
        .iter()
        .map(|e| {
            listed(e);
            (code_name(e.code()), e.reason().to_string())
        })
        .collect();
    let rows = table_rows();

    let missing: Vec<String> = answered
        .iter()
        .filter(|a| !rows.contains(a))
        .map(|(code, reason)| format!("| `{code}` | `{reason}` | when … |"))
        .collect();
    assert!(
        missing.is_empty(),
        "the README's refusal table lacks these rows (add them under `### Refusals`):\n{}",
        missing.join("\n")
    );
    let stale: Vec<&(String, String)> = rows.iter().filter(|r| !answered.contains(r)).collect();
    assert!(
        stale.is_empty(),
        "rows of the README's refusal table that no failure answers with: {stale:?}"
    );
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "a row appears twice: {rows:?}");
}

#[test]
fn every_refusal_carries_its_reason_as_metadata() {
    for e in samples() {
        let (code, reason) = (e.code(), e.reason());
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), code);
        assert_eq!(
            status
                .metadata()
                .get(REASON_KEY)
                .and_then(|v| v.to_str().ok()),
            Some(reason)
        );
    }
}

#[test]
fn code_names_are_grpc_names() {
    assert_eq!(code_name(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
    assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
    assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
}
