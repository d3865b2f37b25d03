//! The workload: DMS senders and receivers that behave like real ones, and the ledger in
//! which they write down everything they see, for the checker.
//!
//! **Senders** seal each document once and send that same sealed message (same id, same
//! signature) until the node answers with a receipt, retrying after any error or timeout:
//! the node deduplicates and answers a re-send with the original receipt. A document
//! counts as *sent* when its first attempt starts and as *acked* when a receipt signed by
//! the sender's home node, naming the document, came back.
//!
//! **Receivers**, one per agency, take documents out of the inbox one at a time: fetch
//! (which verifies the sender's signature and the attachment digests end to end), note
//! it, acknowledge. Half of them hold a `Subscribe` stream and resume after their last
//! acknowledged cursor when it breaks or stays idle; the other half poll `ListInbox` from
//! the start. Every inbox entry they are shown is classified:
//! - the first entry of a document for that agency: a *delivery*;
//! - the same entry (same cursor) again before the acknowledgement went through: a
//!   *redelivery*, which at-least-once hand-off allows (information only);
//! - a second entry (another cursor) for the same document, or any entry after the
//!   acknowledgement succeeded: a *duplicate*, which the contract forbids.
//!
//! While faults are on, a receiver also **crashes** now and then (one entry in
//! [`DMS_CRASH_ONE_IN`]) between fetching a document and acknowledging it: it drops the
//! entry and its stream and starts over from its last acknowledged cursor. The node must
//! show that entry again (a redelivery); a copy fetched but never acknowledged fails the
//! run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use lienthong_client::{Accepted, DmsClient, Error, InboxItem, Incoming, OutgoingAttachment};
use lienthong_core::{AgencyCode, Priority, Receipt};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tonic::Code;

/// Time a DMS gives one call before it gives up and retries. The SIGSTOP fault pauses a
/// node for longer than this.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// A subscription that brings nothing for this long is dropped and made again from the
/// cursor: a node that was paused or partitioned may hold a stream that never moves.
const IDLE_RESUBSCRIBE: Duration = Duration::from_secs(8);
/// How often a polling receiver lists its inbox when it found nothing.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// While faults are on, a receiver crashes between fetch and ack once in this many entries.
pub const DMS_CRASH_ONE_IN: u32 = 50;
/// A document refused this many times for a reason that is not transient is given up:
/// the node said the message itself is wrong.
const MAX_REFUSALS: u32 = 10;

/// What happened to one recipient's copy of a document.
#[derive(Debug, Default, Clone)]
pub struct Copy {
    /// Distinct inbox entries (cursors) the agency's DMS was shown for this document.
    pub cursors: Vec<u64>,
    /// Times the DMS was shown an entry of it (redeliveries included).
    pub shown: u32,
    /// Successful fetches.
    pub fetched: u32,
    /// The acknowledgement went through.
    pub acked: bool,
    /// Entries shown after the acknowledgement went through.
    pub after_ack: u32,
    /// The receipt that came with the fetched document.
    pub receipt: Option<Receipt>,
    /// The node the copy was read from and what it said, when something was off.
    pub notes: Vec<String>,
}

impl Copy {
    pub fn duplicated(&self) -> bool {
        self.cursors.len() > 1 || self.after_ack > 0
    }
    pub fn delivered(&self) -> bool {
        self.fetched > 0
    }
}

/// Everything known about one document.
#[derive(Debug, Clone)]
pub struct DocRecord {
    pub index: usize,
    pub from: AgencyCode,
    pub to: Vec<AgencyCode>,
    /// Send attempts.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Refusals of the message itself (not transient), with the node's message.
    pub refusals: Vec<String>,
    /// The verified receipt of the sender's home node.
    pub receipt: Option<Receipt>,
    /// Whether the receipt came back marked as a duplicate (a re-send was recognised).
    pub receipt_was_duplicate: bool,
    pub given_up: bool,
    pub copies: HashMap<AgencyCode, Copy>,
}

impl DocRecord {
    pub fn delivered(&self) -> bool {
        self.to
            .iter()
            .all(|r| self.copies.get(r).is_some_and(Copy::delivered))
    }
    pub fn duplicated(&self) -> bool {
        self.copies.values().any(Copy::duplicated)
    }
}

/// How an inbox entry shown to a DMS relates to what it saw before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    First,
    Redelivery,
    SecondEntry,
    AfterAck,
    /// A message this workload never sent.
    Unknown,
}

/// Counters for the progress line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: usize,
    pub acked: usize,
    pub delivered: usize,
    pub duplicated: usize,
    pub redeliveries: usize,
    pub given_up: usize,
    /// Send attempts beyond the first.
    pub resends: usize,
    /// Entries fetched plus acknowledged: moves while the network drains.
    pub activity: usize,
}

/// The ledger all senders and receivers write to.
#[derive(Debug, Default)]
pub struct Ledger {
    docs: Mutex<HashMap<String, DocRecord>>,
    redeliveries: Mutex<usize>,
    /// Receivers that crashed between fetch and ack.
    pub dms_crashes: std::sync::atomic::AtomicUsize,
    /// Things that should not happen and are neither loss nor duplication.
    pub anomalies: Mutex<Vec<String>>,
}

impl Ledger {
    pub fn anomaly(&self, what: String) {
        let mut a = self.anomalies.lock().unwrap();
        if a.len() < 1000 {
            a.push(what);
        }
    }

    fn sent(&self, id: &str, index: usize, from: &AgencyCode, to: &[AgencyCode]) {
        self.docs.lock().unwrap().insert(
            id.to_string(),
            DocRecord {
                index,
                from: from.clone(),
                to: to.to_vec(),
                attempts: 0,
                last_error: None,
                refusals: Vec::new(),
                receipt: None,
                receipt_was_duplicate: false,
                given_up: false,
                copies: HashMap::new(),
            },
        );
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut DocRecord)) {
        if let Some(d) = self.docs.lock().unwrap().get_mut(id) {
            f(d);
        }
    }

    /// Records an inbox entry shown to `agency`'s DMS and says what it was.
    pub fn shown(&self, agency: &AgencyCode, id: &str, cursor: u64) -> Shown {
        let mut docs = self.docs.lock().unwrap();
        let Some(doc) = docs.get_mut(id) else {
            return Shown::Unknown;
        };
        let copy = doc.copies.entry(agency.clone()).or_default();
        copy.shown += 1;
        let shown = if copy.acked {
            copy.after_ack += 1;
            Shown::AfterAck
        } else if copy.cursors.is_empty() {
            Shown::First
        } else if copy.cursors.contains(&cursor) {
            Shown::Redelivery
        } else {
            Shown::SecondEntry
        };
        if !copy.cursors.contains(&cursor) {
            copy.cursors.push(cursor);
        }
        if shown == Shown::Redelivery {
            *self.redeliveries.lock().unwrap() += 1;
        }
        shown
    }

    /// Whether every recipient of every acknowledged document fetched and acknowledged it.
    pub fn all_copies_acked(&self) -> bool {
        self.docs.lock().unwrap().values().all(|d| {
            d.receipt.is_none()
                || d.to
                    .iter()
                    .all(|r| d.copies.get(r).is_some_and(|c| c.fetched > 0 && c.acked))
        })
    }

    pub fn snapshot(&self) -> HashMap<String, DocRecord> {
        self.docs.lock().unwrap().clone()
    }

    pub fn tally(&self) -> Tally {
        let docs = self.docs.lock().unwrap();
        let mut t = Tally {
            sent: docs.len(),
            redeliveries: *self.redeliveries.lock().unwrap(),
            ..Tally::default()
        };
        for d in docs.values() {
            t.acked += usize::from(d.receipt.is_some());
            t.delivered += usize::from(d.delivered());
            t.duplicated += usize::from(d.duplicated());
            t.given_up += usize::from(d.given_up);
            t.resends += d.attempts.saturating_sub(1) as usize;
            t.activity += d
                .copies
                .values()
                .map(|c| c.fetched as usize + usize::from(c.acked))
                .sum::<usize>();
        }
        t
    }
}

/// One document to send: who sends it to whom.
#[derive(Debug, Clone)]
pub struct Plan {
    pub from: AgencyCode,
    pub to: Vec<AgencyCode>,
    pub priority: Priority,
    /// A small attachment, so that blobs are written and relayed too.
    pub attachment: bool,
}

/// Draws the workload: senders at communes and provinces; recipients mostly in the other
/// province (paths cross the national gateway), some in the same province, some at the
/// national gateway; one document in ten to two recipients of different provinces (the
/// copies split at the gateway).
pub fn plan(agencies: &[AgencyCode], docs: usize, rng: &mut fastrand::Rng) -> Vec<Plan> {
    let province = |a: &AgencyCode| a.as_str().rsplit('.').next().unwrap_or("").to_string();
    let senders: Vec<&AgencyCode> = agencies
        .iter()
        .filter(|a| !a.as_str().ends_with("G22"))
        .collect();
    let national: Vec<&AgencyCode> = agencies
        .iter()
        .filter(|a| a.as_str().ends_with("G22"))
        .collect();
    let pick =
        |rng: &mut fastrand::Rng, from: &[&AgencyCode]| from[rng.usize(..from.len())].clone();
    (0..docs)
        .map(|_| {
            let from = pick(rng, &senders);
            let p = province(&from);
            let other: Vec<&AgencyCode> = senders
                .iter()
                .copied()
                .filter(|a| province(a) != p)
                .collect();
            let same: Vec<&AgencyCode> = senders
                .iter()
                .copied()
                .filter(|a| province(a) == p && **a != from)
                .collect();
            let roll = rng.u32(0..100);
            let to = if roll < 10 && !same.is_empty() && !other.is_empty() {
                vec![pick(rng, &other), pick(rng, &same)]
            } else if roll < 20 && !same.is_empty() {
                vec![pick(rng, &same)]
            } else if roll < 25 && !national.is_empty() {
                vec![pick(rng, &national)]
            } else {
                vec![pick(rng, &other)]
            };
            Plan {
                from,
                to,
                priority: if rng.u32(0..10) == 0 {
                    Priority::Urgent
                } else {
                    Priority::Routine
                },
                attachment: rng.u32(0..20) == 0,
            }
        })
        .collect()
}

fn backoff(attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1 << attempt.min(5))
        .min(BACKOFF_MAX);
    base / 2 + Duration::from_millis(rng.u64(0..=base.as_millis() as u64 / 2))
}

/// Whether a refusal says the message itself is wrong, rather than "try later".
fn refuses_the_message(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
    )
}

/// Sends every planned document with at most `concurrency` in flight, starting at most
/// `rate` per second (unpaced when `None`); returns when each has a receipt, was given up,
/// or `stop` turned true.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub async fn send_all(
    clients: Arc<HashMap<AgencyCode, DmsClient>>,
    plans: Vec<Plan>,
    concurrency: usize,
    rate: Option<f64>,
    ledger: Arc<Ledger>,
    stop: watch::Receiver<bool>,
    seed: u64,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let content: String = "Nội dung công văn gửi liên thông. "
        .repeat(40)
        .chars()
        .take(1000)
        .collect();
    let started = Instant::now();
    for (index, plan) in plans.into_iter().enumerate() {
        if *stop.borrow() {
            break;
        }
        if let Some(rate) = rate {
            tokio::time::sleep_until(started + Duration::from_secs_f64(index as f64 / rate)).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let client = clients[&plan.from].clone();
        let (ledger, stop, content) = (ledger.clone(), stop.clone(), content.clone());
        tasks.spawn(async move {
            send_one(&client, index, plan, &content, &ledger, stop, seed).await;
            drop(permit);
        });
        // Reap finished senders as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn send_one(
    client: &DmsClient,
    index: usize,
    plan: Plan,
    content: &str,
    ledger: &Ledger,
    stop: watch::Receiver<bool>,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let mut document = client.new_document(plan.to.clone(), &format!("Chaos văn bản số {index}"));
    document.header.content = content.to_string();
    document.header.other.priority = plan.priority;
    let attachments = if plan.attachment {
        vec![OutgoingAttachment {
            name: format!("phu-luc-{index}.pdf"),
            content_type: "application/pdf".into(),
            bytes: Bytes::from(format!("%PDF-1.4 chaos attachment {index} ").repeat(16)),
        }]
    } else {
        Vec::new()
    };
    let id = document.id.to_string();
    let sealed = match client.seal(&mut document, &attachments) {
        Ok(s) => s,
        Err(e) => {
            ledger.anomaly(format!("document #{index}: cannot seal: {e}"));
            return;
        }
    };
    ledger.sent(&id, index, &plan.from, &plan.to);
    let mut attempt = 0u32;
    let mut refusals = 0u32;
    loop {
        attempt += 1;
        ledger.update(&id, |d| d.attempts = attempt);
        let result = tokio::time::timeout(RPC_TIMEOUT, client.send_sealed(&sealed)).await;
        match result {
            Ok(Ok(Accepted { receipt, duplicate })) => {
                if receipt.document_id.as_str() != id {
                    ledger.anomaly(format!(
                        "{id}: receipt names document {}",
                        receipt.document_id
                    ));
                }
                ledger.update(&id, |d| {
                    d.receipt = Some(receipt);
                    d.receipt_was_duplicate = duplicate;
                });
                return;
            }
            Ok(Err(status)) => {
                let what = status.to_string();
                let refused = status.code().is_some_and(refuses_the_message)
                    || matches!(status, Error::Verification(_));
                ledger.update(&id, |d| {
                    if refused {
                        d.refusals.push(what.clone());
                    }
                    d.last_error = Some(what);
                });
                if refused {
                    refusals += 1;
                    if refusals >= MAX_REFUSALS {
                        ledger.update(&id, |d| d.given_up = true);
                        return;
                    }
                }
            }
            Err(_) => ledger.update(&id, |d| {
                d.last_error = Some(format!("no answer within {RPC_TIMEOUT:?}"))
            }),
        }
        if *stop.borrow() {
            return;
        }
        tokio::time::sleep(backoff(attempt, &mut rng)).await;
    }
}

/// How a receiver learns about new inbox entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    Subscribe,
    Poll,
}

impl std::fmt::Display for ReceiveMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReceiveMode::Subscribe => "subscribe",
            ReceiveMode::Poll => "poll",
        })
    }
}

/// How handling one inbox entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    Done,
    /// The simulated DMS crash between fetch and ack.
    Crashed,
    Stopping,
}

/// One agency's DMS taking documents out of its inbox until `stop`.
#[derive(Debug)]
pub struct Receiver {
    pub client: DmsClient,
    pub mode: ReceiveMode,
    pub ledger: Arc<Ledger>,
    pub stop: watch::Receiver<bool>,
    pub rng: fastrand::Rng,
    /// Whether to crash between fetch and ack now and then (while faults are on).
    pub crashes: Arc<std::sync::atomic::AtomicBool>,
    /// Cursors of entries not to handle again in a polling pass: duplicates and entries
    /// that could not be read (each is counted once).
    skip: HashSet<u64>,
}

impl Receiver {
    pub fn new(
        client: DmsClient,
        mode: ReceiveMode,
        ledger: Arc<Ledger>,
        stop: watch::Receiver<bool>,
        crashes: Arc<std::sync::atomic::AtomicBool>,
        seed: u64,
    ) -> Self {
        Receiver {
            client,
            mode,
            ledger,
            stop,
            crashes,
            rng: fastrand::Rng::with_seed(seed),
            skip: HashSet::new(),
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    pub async fn run(mut self) {
        match self.mode {
            ReceiveMode::Subscribe => self.run_subscribed().await,
            ReceiveMode::Poll => self.run_polling().await,
        }
    }

    async fn pause(&mut self, attempt: u32) {
        let wait = backoff(attempt, &mut self.rng);
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    async fn run_subscribed(&mut self) {
        // The last entry handled (fetched and acknowledged): a new subscription resumes
        // after it.
        let mut cursor = 0u64;
        let mut failures = 0u32;
        while !self.stopped() {
            let subscribed = tokio::time::timeout(RPC_TIMEOUT, self.client.subscribe(cursor)).await;
            let mut stream = match subscribed {
                Ok(Ok(s)) => s,
                _ => {
                    failures += 1;
                    self.pause(failures).await;
                    continue;
                }
            };
            failures = 0;
            loop {
                let mut stop = self.stop.clone();
                let next = tokio::select! {
                    next = tokio::time::timeout(IDLE_RESUBSCRIBE, tokio_stream::StreamExt::next(&mut stream)) => next,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let entry = match next {
                    Ok(Some(Ok(entry))) => entry,
                    // Broken, ended, or idle for long: subscribe again from the cursor.
                    _ => break,
                };
                let at = entry.cursor;
                match self.handle(entry).await {
                    Handled::Done => cursor = cursor.max(at),
                    // Start over after the last acknowledged entry.
                    Handled::Crashed => break,
                    Handled::Stopping => return,
                }
            }
        }
    }

    async fn run_polling(&mut self) {
        let mut failures = 0u32;
        while !self.stopped() {
            // One pass over the whole inbox, oldest first.
            let mut after = 0u64;
            let mut handled = 0usize;
            loop {
                let listed = tokio::time::timeout(
                    RPC_TIMEOUT,
                    self.client.list_inbox_by_arrival(after, 500),
                )
                .await;
                let entries = match listed {
                    Ok(Ok(entries)) => entries,
                    _ => {
                        failures += 1;
                        self.pause(failures).await;
                        break;
                    }
                };
                failures = 0;
                let Some(last) = entries.last().map(|e| e.cursor) else {
                    break;
                };
                let mut crashed = false;
                for entry in entries {
                    if self.skip.contains(&entry.cursor) {
                        continue;
                    }
                    handled += 1;
                    match self.handle(entry).await {
                        Handled::Done => {}
                        Handled::Crashed => {
                            crashed = true;
                            break;
                        }
                        Handled::Stopping => return,
                    }
                }
                if crashed {
                    break; // a new pass from the start
                }
                after = last;
            }
            if handled == 0 {
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
        }
    }

    /// Fetches, notes and acknowledges one entry.
    async fn handle(&mut self, entry: InboxItem) -> Handled {
        let agency = self.client.agency().clone();
        let id = entry.id.clone();
        let shown = self.ledger.shown(&agency, &id, entry.cursor);
        match shown {
            Shown::Unknown => {
                self.ledger
                    .anomaly(format!("{agency} was shown {id}, which nobody here sent"));
                self.skip.insert(entry.cursor);
            }
            Shown::SecondEntry | Shown::AfterAck => {
                self.skip.insert(entry.cursor);
            }
            Shown::First | Shown::Redelivery => {}
        }
        // Fetch, and check what came.
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match tokio::time::timeout(RPC_TIMEOUT, self.client.fetch(&id)).await {
                Ok(Ok(Incoming::Document(got))) => {
                    let ok_id = got.document.id.as_str() == id;
                    self.ledger.update(&id, |d| {
                        let copy = d.copies.entry(agency.clone()).or_default();
                        copy.fetched += 1;
                        copy.receipt = Some(got.receipt.clone());
                        if !ok_id {
                            copy.notes
                                .push(format!("fetch returned document {}", got.document.id));
                        }
                    });
                    break;
                }
                Ok(Ok(Incoming::Status { .. })) => {
                    self.ledger
                        .anomaly(format!("{agency}: {id} is a status notice; none was sent"));
                    break;
                }
                Ok(Err(status)) if status.code() == Some(Code::NotFound) => {
                    self.ledger.anomaly(format!(
                        "{agency}: entry {id} (cursor {}) listed but fetch says: {}",
                        entry.cursor, status
                    ));
                    self.skip.insert(entry.cursor);
                    break;
                }
                Ok(Err(status @ Error::Verification(_))) => {
                    // The document failed end-to-end verification: as bad as a loss.
                    self.ledger
                        .anomaly(format!("{agency}: {id} failed verification: {}", status));
                    self.skip.insert(entry.cursor);
                    break;
                }
                _ => {
                    if self.stopped() {
                        return Handled::Stopping;
                    }
                    self.pause(attempt).await;
                }
            }
        }
        if self.crashes.load(std::sync::atomic::Ordering::Relaxed)
            && self.rng.u32(0..DMS_CRASH_ONE_IN) == 0
        {
            self.ledger
                .dms_crashes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Handled::Crashed;
        }
        // Acknowledge. A NotFound after an attempt that may have gone through means it
        // did; on the first attempt it is worth a note.
        let mut attempt = 0u32;
        let mut uncertain = false;
        loop {
            attempt += 1;
            match tokio::time::timeout(RPC_TIMEOUT, self.client.ack(&id)).await {
                Ok(Ok(())) => break,
                Ok(Err(status)) if status.code() == Some(Code::NotFound) => {
                    if !uncertain && matches!(shown, Shown::First | Shown::Redelivery) {
                        self.ledger.anomaly(format!(
                            "{agency}: ack of {id} (cursor {}) refused on the first try: {}",
                            entry.cursor, status
                        ));
                    }
                    break;
                }
                _ => {
                    uncertain = true;
                    if self.stopped() {
                        return Handled::Stopping;
                    }
                    self.pause(attempt).await;
                }
            }
        }
        self.ledger.update(&id, |d| {
            d.copies.entry(agency.clone()).or_default().acked = true;
        });
        Handled::Done
    }
}

/// Lists what is left in an inbox (all of it, oldest first).
pub async fn leftovers(client: &DmsClient) -> Result<Vec<InboxItem>, String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let entries = tokio::time::timeout(RPC_TIMEOUT, client.list_inbox_by_arrival(after, 1000))
            .await
            .map_err(|_| format!("no answer within {RPC_TIMEOUT:?}"))?
            .map_err(|s| s.to_string())?;
        let Some(last) = entries.last().map(|e| e.cursor) else {
            return Ok(out);
        };
        after = last;
        out.extend(entries);
    }
}

/// Seconds since `start`, for log lines.
pub fn since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    #[test]
    fn an_entry_shown_again_before_its_ack_is_a_redelivery_not_a_duplicate() {
        let ledger = Ledger::default();
        let to = code("001.00.20.H42");
        ledger.sent("d1", 0, &code("001.00.20.H41"), std::slice::from_ref(&to));
        assert_eq!(ledger.shown(&to, "d1", 7), Shown::First);
        assert_eq!(ledger.shown(&to, "d1", 7), Shown::Redelivery);
        let t = ledger.tally();
        assert_eq!((t.duplicated, t.redeliveries), (0, 1));
    }

    #[test]
    fn a_second_inbox_entry_or_an_entry_after_the_ack_is_a_duplicate() {
        let ledger = Ledger::default();
        let to = code("001.00.20.H42");
        let from = code("001.00.20.H41");
        ledger.sent("d1", 0, &from, std::slice::from_ref(&to));
        ledger.sent("d2", 1, &from, std::slice::from_ref(&to));
        assert_eq!(ledger.shown(&to, "d1", 7), Shown::First);
        assert_eq!(ledger.shown(&to, "d1", 9), Shown::SecondEntry);
        assert_eq!(ledger.shown(&to, "d2", 8), Shown::First);
        ledger.update("d2", |d| d.copies.get_mut(&to).unwrap().acked = true);
        assert_eq!(ledger.shown(&to, "d2", 8), Shown::AfterAck);
        assert_eq!(ledger.tally().duplicated, 2);
        assert_eq!(ledger.shown(&to, "nobody-sent-this", 1), Shown::Unknown);
    }

    #[test]
    fn the_plan_sends_mostly_across_provinces_from_communes_and_provinces() {
        let agencies: Vec<AgencyCode> = [
            "000.00.00.G22",
            "000.00.00.H41",
            "001.00.20.H41",
            "002.00.20.H41",
            "000.00.00.H42",
            "001.00.20.H42",
        ]
        .into_iter()
        .map(code)
        .collect();
        let plans = plan(&agencies, 1000, &mut fastrand::Rng::with_seed(1));
        let province = |a: &AgencyCode| a.as_str()[a.as_str().len() - 3..].to_string();
        assert!(plans.iter().all(|p| !p.from.as_str().ends_with("G22")));
        assert!(plans.iter().all(|p| !p.to.contains(&p.from)));
        let across = plans
            .iter()
            .filter(|p| p.to.iter().any(|t| province(t) != province(&p.from)))
            .count();
        assert!(across > 700, "{across} of 1000 cross provinces");
        assert!(plans.iter().any(|p| p.to.len() == 2));
    }
}
