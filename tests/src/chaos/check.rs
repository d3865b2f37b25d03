//! The checker: after the drain, every document the workload tried to send is judged from
//! the ledger, and each bad one is shown with its end state — who sent it to whom, the
//! receipt, what each recipient's DMS saw, and the transport events the sender's and the
//! recipients' nodes hold for it.

use std::collections::HashMap;
use std::fmt::Write;

use lienthong_client::DmsClient;
use lienthong_core::AgencyCode;

use super::workload::{DocRecord, RPC_TIMEOUT};

/// Bad documents shown with their transport events.
const DETAILED: usize = 20;
/// Bad documents shown at all; the rest are counted.
const SHOWN: usize = 200;

/// The counts of the final line, and the documents behind the bad ones.
#[derive(Debug, Default)]
pub struct Verdict {
    pub sent: usize,
    pub acked: usize,
    pub delivered: usize,
    /// Acknowledged to the sender, not delivered to every recipient.
    pub lost: Vec<String>,
    /// Shown to a recipient's DMS twice (a second inbox entry, or again after its ack).
    pub duplicated: Vec<String>,
    /// Never acknowledged to the sender although the drain ended (refused or still
    /// retrying): not a loss by the contract, but the run did not finish.
    pub unacked: Vec<String>,
    /// Delivered, but the receipt that came with it differs from the sender's.
    pub receipt_mismatch: Vec<String>,
    /// Fetched by a recipient whose acknowledgement never went through: after a DMS
    /// crash between fetch and ack, the entry was not shown again.
    pub never_acked: Vec<String>,
}

impl Verdict {
    pub fn judge(docs: &HashMap<String, DocRecord>) -> Self {
        let mut v = Verdict {
            sent: docs.len(),
            ..Verdict::default()
        };
        let mut ids: Vec<(&String, &DocRecord)> = docs.iter().collect();
        ids.sort_by_key(|(_, d)| d.index);
        for (id, d) in ids {
            let delivered = d.delivered();
            v.delivered += usize::from(delivered);
            match &d.receipt {
                Some(receipt) => {
                    v.acked += 1;
                    if !delivered {
                        v.lost.push(id.clone());
                    }
                    if d.copies
                        .values()
                        .filter_map(|c| c.receipt.as_ref())
                        .any(|r| r != receipt)
                    {
                        v.receipt_mismatch.push(id.clone());
                    }
                }
                None => v.unacked.push(id.clone()),
            }
            if d.duplicated() {
                v.duplicated.push(id.clone());
            }
            if d.copies.values().any(|c| c.fetched > 0 && !c.acked) {
                v.never_acked.push(id.clone());
            }
        }
        v
    }

    /// `sent=N acked=N delivered=N lost=L duplicated=D`
    pub fn final_line(&self) -> String {
        format!(
            "sent={} acked={} delivered={} lost={} duplicated={}",
            self.sent,
            self.acked,
            self.delivered,
            self.lost.len(),
            self.duplicated.len()
        )
    }
}

/// The end state of document `id`, several lines, asking the nodes of the sender and of
/// each recipient for its transport events (they may be unreachable).
pub async fn end_state(
    id: &str,
    d: &DocRecord,
    clients: &HashMap<AgencyCode, DmsClient>,
    node_of: &HashMap<AgencyCode, String>,
    detailed: bool,
) -> String {
    let mut out = String::new();
    let home = |a: &AgencyCode| node_of.get(a).map(String::as_str).unwrap_or("?");
    let to: Vec<String> = d.to.iter().map(|r| format!("{r} ({})", home(r))).collect();
    let _ = writeln!(
        out,
        "  document {id} (#{}) from {} ({}) to {}",
        d.index,
        d.from,
        home(&d.from),
        to.join(", ")
    );
    match &d.receipt {
        Some(r) => {
            let _ = writeln!(
                out,
                "    receipt: node {} at {} (after {} attempt(s){})",
                r.node,
                r.accepted_at,
                d.attempts,
                if d.receipt_was_duplicate {
                    ", the last answered as a duplicate"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "    no receipt after {} attempt(s); last error: {}{}",
                d.attempts,
                d.last_error.as_deref().unwrap_or("none"),
                if d.given_up { " (given up)" } else { "" }
            );
        }
    }
    for refusal in &d.refusals {
        let _ = writeln!(out, "    refused: {refusal}");
    }
    for r in &d.to {
        match d.copies.get(r) {
            None => {
                let _ = writeln!(out, "    {r}: never shown in its inbox");
            }
            Some(c) => {
                let _ = writeln!(
                    out,
                    "    {r}: inbox entries (cursors) {:?}, shown {}×, fetched {}×, acked {}, shown after ack {}×{}",
                    c.cursors,
                    c.shown,
                    c.fetched,
                    c.acked,
                    c.after_ack,
                    match (&c.receipt, &d.receipt) {
                        (Some(a), Some(b)) if a != b => format!(
                            ", fetched receipt differs: node {} at {}",
                            a.node, a.accepted_at
                        ),
                        _ => String::new(),
                    }
                );
                for note in &c.notes {
                    let _ = writeln!(out, "      {note}");
                }
            }
        }
    }
    if detailed {
        let mut askers = vec![&d.from];
        askers.extend(d.to.iter());
        for agency in askers {
            let Some(client) = clients.get(agency) else {
                continue;
            };
            let _ = writeln!(out, "    track at {} (asked as {agency}):", home(agency));
            match tokio::time::timeout(RPC_TIMEOUT, client.track(id)).await {
                Ok(Ok(tracked)) => {
                    let events = tracked.events;
                    if events.is_empty() {
                        let _ = writeln!(out, "      (no events)");
                    }
                    for e in events {
                        let _ = writeln!(
                            out,
                            "      {} {:<14} at {:<8} {} {}",
                            e.at,
                            e.kind.to_string(),
                            e.node.as_str(),
                            e.agency.map(|a| a.to_string()).unwrap_or_default(),
                            e.detail
                        );
                    }
                }
                Ok(Err(s)) => {
                    let _ = writeln!(out, "      unavailable: {s}");
                }
                Err(_) => {
                    let _ = writeln!(out, "      unavailable: no answer within {RPC_TIMEOUT:?}");
                }
            }
        }
    }
    out
}

/// Prints the bad documents of `verdict`: the first [`DETAILED`] with their tracks, at
/// most [`SHOWN`] in all.
pub async fn print_bad(
    verdict: &Verdict,
    docs: &HashMap<String, DocRecord>,
    clients: &HashMap<AgencyCode, DmsClient>,
    node_of: &HashMap<AgencyCode, String>,
) {
    let groups = [
        ("LOST (acknowledged, not delivered)", &verdict.lost),
        ("DUPLICATED (delivered twice)", &verdict.duplicated),
        ("NOT ACKNOWLEDGED to the sender", &verdict.unacked),
        ("RECEIPT MISMATCH", &verdict.receipt_mismatch),
        (
            "FETCHED, NEVER ACKNOWLEDGED (not shown again after a DMS crash)",
            &verdict.never_acked,
        ),
    ];
    let mut shown = 0;
    for (title, ids) in groups {
        if ids.is_empty() {
            continue;
        }
        println!("{title}: {} document(s)", ids.len());
        for (i, id) in ids.iter().enumerate() {
            if shown >= SHOWN {
                println!("  … and {} more", ids.len() - i);
                break;
            }
            let Some(d) = docs.get(id) else { continue };
            let detailed = shown < DETAILED;
            shown += 1;
            print!("{}", end_state(id, d, clients, node_of, detailed).await);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::workload::Copy;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn record(index: usize, receipt: bool, copy: Option<Copy>) -> DocRecord {
        let to = code("001.00.20.H42");
        let receipt = receipt.then(|| lienthong_core::Receipt {
            document_id: lienthong_core::DocumentId::generate(),
            content_digest: [0; 32],
            node: lienthong_core::NodeId::parse("H41-C1").unwrap(),
            accepted_at: 1,
            signature: None,
        });
        DocRecord {
            index,
            from: code("001.00.20.H41"),
            to: vec![to.clone()],
            attempts: 1,
            last_error: None,
            refusals: Vec::new(),
            receipt: receipt.clone(),
            receipt_was_duplicate: false,
            given_up: false,
            copies: copy
                .map(|c| {
                    HashMap::from([(
                        to,
                        Copy {
                            receipt: receipt.clone(),
                            ..c
                        },
                    )])
                })
                .unwrap_or_default(),
        }
    }

    fn fetched(cursors: Vec<u64>, after_ack: u32) -> Copy {
        Copy {
            cursors,
            shown: 1,
            fetched: 1,
            acked: true,
            after_ack,
            ..Copy::default()
        }
    }

    #[test]
    fn judges_lost_duplicated_and_unacknowledged_documents() {
        let docs = HashMap::from([
            ("ok".to_string(), record(0, true, Some(fetched(vec![1], 0)))),
            ("lost".to_string(), record(1, true, None)),
            (
                "twice".to_string(),
                record(2, true, Some(fetched(vec![2, 3], 0))),
            ),
            (
                "again".to_string(),
                record(3, true, Some(fetched(vec![4], 1))),
            ),
            (
                "unacked".to_string(),
                record(4, false, Some(fetched(vec![5], 0))),
            ),
            (
                "crashed".to_string(),
                record(
                    5,
                    true,
                    Some(Copy {
                        acked: false,
                        ..fetched(vec![6], 0)
                    }),
                ),
            ),
        ]);
        let v = Verdict::judge(&docs);
        assert_eq!(v.lost, ["lost"]);
        assert_eq!(v.duplicated, ["twice", "again"]);
        assert_eq!(v.unacked, ["unacked"]);
        assert_eq!(v.never_acked, ["crashed"]);
        assert!(v.receipt_mismatch.is_empty());
        assert_eq!(
            v.final_line(),
            "sent=6 acked=5 delivered=5 lost=1 duplicated=2"
        );
    }
}
