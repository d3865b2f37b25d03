//! # The fault-injection suite
//!
//! Proves the delivery contract of DESIGN.md §4 — *an acknowledged document is never lost
//! and never delivered twice, whatever fails* — against real node processes on loopback:
//!
//! ```text
//! cargo run --release -p lienthong-testkit --bin chaos -- --docs 10000
//! ```
//!
//! It ends with the line `sent=N acked=N delivered=N lost=L duplicated=D` and exits
//! non-zero when a document was lost or duplicated, when the network did not drain, or when
//! a node crashed or would not restart.
//!
//! ## How a run goes
//! 1. **Network** ([`cluster`]): a generated two-tier tree (VN → H41, H42 → two communes
//!    each: 7 nodes, 9 agencies) with a fresh PKI under a temporary directory. Every node
//!    is a child process — the chaos binary itself, re-executed as `chaos node --config
//!    FILE` — behind a fault-injecting [`crate::proxy::FaultProxy`] that the directory
//!    names as its endpoint, so all node-to-node traffic crosses a proxy. DMS clients talk
//!    to their node directly.
//! 2. **Workload** ([`workload`]): senders at communes and provinces send signed ~1 KiB
//!    documents (some urgent, some with an attachment, some to two recipients), mostly to
//!    the other province so that paths cross the national gateway, `--concurrency` at a
//!    time, each retried with the same sealed bytes until a receipt comes back. Every
//!    agency's DMS takes its inbox out (half subscribe, half poll), fetching, verifying and
//!    acknowledging each document; while faults are on, a DMS sometimes crashes between
//!    fetch and ack and must be shown the entry again.
//!    Sending is paced (`--rate`; by default the documents are spread over the fault
//!    window) so that faults hit documents at every stage of their path.
//! 3. **Faults** ([`faults`]): while documents are sent and for at least `--fault-secs`,
//!    a seeded schedule kills (SIGKILL) and restarts nodes, stops them gracefully (SIGTERM)
//!    and restarts them, freezes them (SIGSTOP/SIGCONT) for longer than the DMS timeouts
//!    and, when the window allows, for longer than the relay links' keep-alive, partitions
//!    them, and delays links by 100 ms ± 50 ms. Every fault is printed when it happens.
//! 4. **Drain**: faults stop, everything is healed, and the run waits until every document
//!    has a receipt and every copy was fetched and acknowledged — or until nothing moved for
//!    `--stall-secs`, which fails the run. A few more seconds let late duplicates show.
//! 5. **Check** ([`check`]): every document is judged from the ledger the senders and
//!    receivers kept: acknowledged but not delivered to every recipient is *lost*; shown to
//!    a recipient again after its acknowledgement, or under a second inbox entry, is
//!    *duplicated*. Each bad document is printed with its end state and the transport
//!    events the nodes hold for it. Redeliveries of a not-yet-acknowledged entry (allowed
//!    by at-least-once hand-off) are printed as information.
//!
//! The run fails as well on anything else that should not happen: a document not
//! acknowledged to its sender when the drain ends, a fetched receipt that differs from the
//! sender's, an inbox entry that cannot be fetched, a node that exits by itself or will not
//! restart, an entry left in an inbox.
//!
//! `--seed` replays the same workload and fault schedule (the interleaving with traffic
//! still depends on timing). `--no-faults` gives a baseline. The hidden
//! `--sabotage-wipe-on-kill` deletes a killed node's data directory before its restart —
//! a lost disk, outside the contract — and so checks the checker: that run must fail
//! with lost documents. On failure, or with `--keep-dir`, the run directory (configs,
//! data, node logs in `logs/`) is kept.
//!
//! ## What it does not cover
//! - A partition is inbound: a node's proxy stops its neighbours from reaching it, while
//!   its own dials go out through the neighbours' proxies. Overlapping faults (up to
//!   [`faults::MAX_BUSY`] nodes at once) cut both directions of a link now and then.
//! - DMS connections bypass the proxies: the workload is never partitioned from its own
//!   node, only slowed down by it being killed or paused.
//! - Disk faults (full disk, failed fsync, torn writes beyond what SIGKILL gives), clock
//!   skew and power loss (sled's `flush` is weaker than fsync on Linux, STACK.md) are not
//!   injected.
//! - It asserts no retry timings: the other side of the contract (back-off, circuits,
//!   expiry) may change; only the drain's `--stall-secs` bounds how long recovery takes.

pub mod check;
pub mod cluster;
pub mod faults;
pub mod workload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use lienthong_client::{ClientProfile, DmsClient};
use lienthong_core::AgencyCode;
use tokio::sync::watch;
use tokio::time::Instant;

use self::check::Verdict;
use self::cluster::Cluster;
use self::faults::FaultLog;
use self::workload::{Ledger, ReceiveMode, Receiver, Tally};
use crate::Shape;

/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// After the drain, how long receivers keep listening for late duplicates.
const SETTLE: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Documents to send.
    pub docs: usize,
    /// Drives the workload and the fault schedule.
    pub seed: u64,
    /// Documents in flight at once (senders waiting for a receipt).
    pub concurrency: usize,
    /// Documents started per second at most; `None`: as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// Inject faults (off: a baseline run).
    pub faults: bool,
    /// Faults go on at least this long, and as long as documents are still being sent.
    pub fault_secs: u64,
    /// The drain fails when nothing moved for this long.
    pub stall_secs: u64,
    /// Where to put the network; a new temporary directory when absent.
    pub dir: Option<PathBuf>,
    /// Keep the directory after a successful run.
    pub keep_dir: bool,
    /// The network's shape.
    pub shape: Shape,
    /// The chaos binary, re-executed as `chaos node --config FILE` for each node.
    pub exe: PathBuf,
    /// Sabotage: delete a killed node's data directory before restarting it (a lost
    /// disk). The run must then fail; this proves the checker sees losses.
    pub wipe_on_kill: bool,
}

/// Runs the suite; returns whether the contract held. Prints as it goes and ends with the
/// final line.
pub async fn run(opts: Options) -> anyhow::Result<bool> {
    let start = Instant::now();
    let temp = match &opts.dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("lienthong-chaos-")
                .tempdir()?,
        ),
    };
    let dir = match (&opts.dir, &temp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => unreachable!("a directory was chosen above"),
    };
    let dir = std::path::absolute(&dir)?;
    println!(
        "chaos: seed={} docs={} concurrency={} rate={} faults={} fault-secs={} stall-secs={}",
        opts.seed,
        opts.docs,
        opts.concurrency,
        opts.rate
            .map(|r| format!("{r:.0}/s"))
            .unwrap_or_else(|| "unpaced".into()),
        if opts.faults { "on" } else { "off" },
        opts.fault_secs,
        opts.stall_secs
    );
    println!(
        "chaos: replay with --seed {}; network in {}",
        opts.seed,
        dir.display()
    );

    let cluster = Arc::new(
        Cluster::start(&dir, opts.shape, opts.exe.clone(), opts.seed)
            .await
            .context("starting the network")?,
    );
    println!(
        "[{:7.1}s] {} nodes up: {}",
        start.elapsed().as_secs_f64(),
        cluster.nodes.len(),
        cluster
            .nodes
            .iter()
            .map(|n| format!("{} {}→{}", n.id, n.proxy.addr(), n.listen))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let result = exercise(&opts, &cluster, start).await;
    cluster.shutdown().await;
    let passed = match result {
        Ok((passed, final_line)) => {
            let keep = opts.keep_dir || !passed;
            if keep && let Some(t) = temp {
                let kept = t.keep();
                println!("chaos: run directory kept: {}", kept.display());
            }
            println!(
                "chaos: {} in {:.1} s",
                if passed { "PASSED" } else { "FAILED" },
                start.elapsed().as_secs_f64()
            );
            println!("{final_line}");
            passed
        }
        Err(e) => {
            if let Some(t) = temp {
                let kept = t.keep();
                println!("chaos: run directory kept: {}", kept.display());
            }
            return Err(e);
        }
    };
    Ok(passed)
}

/// Workload, faults, drain and check on a started cluster; returns whether the contract
/// held and the final line.
async fn exercise(
    opts: &Options,
    cluster: &Arc<Cluster>,
    start: Instant,
) -> anyhow::Result<(bool, String)> {
    // Agencies and their clients: one set for senders, one for receivers (a DMS's sending
    // and receiving sides need not share a connection).
    let mut agencies = Vec::new();
    let mut node_of = HashMap::new();
    for node in &cluster.net.nodes {
        for (code, _, _) in &node.agencies {
            agencies.push(code.clone());
            node_of.insert(code.clone(), node.id.to_string());
        }
    }
    let client = |code: &AgencyCode| -> anyhow::Result<DmsClient> {
        let profile = ClientProfile::load(cluster.net.profile(code.as_str()))?;
        Ok(DmsClient::from_profile(&profile)?)
    };
    let mut senders = HashMap::new();
    let mut readers = HashMap::new();
    for code in &agencies {
        senders.insert(code.clone(), client(code)?);
        readers.insert(code.clone(), client(code)?);
    }
    let senders = Arc::new(senders);

    let ledger = Arc::new(Ledger::default());
    let log = Arc::new(FaultLog::new(start));
    let (stop_senders, senders_stop) = watch::channel(false);
    let (stop_receivers, receivers_stop) = watch::channel(false);
    let (stop_faults, faults_stop) = watch::channel(false);
    let (stop_watch, watch_stop) = watch::channel(false);

    // Receivers: alternately subscribing and polling; crashing between fetch and ack now
    // and then while faults are on.
    let dms_crashes = Arc::new(std::sync::atomic::AtomicBool::new(opts.faults));
    let mut receivers = tokio::task::JoinSet::new();
    for (i, code) in agencies.iter().enumerate() {
        let mode = if i % 2 == 0 {
            ReceiveMode::Subscribe
        } else {
            ReceiveMode::Poll
        };
        let r = Receiver::new(
            readers[code].clone(),
            mode,
            ledger.clone(),
            receivers_stop.clone(),
            dms_crashes.clone(),
            opts.seed ^ (0x5eed_0000 + i as u64),
        );
        receivers.spawn(r.run());
    }
    println!(
        "[{:7.1}s] receivers: {}",
        start.elapsed().as_secs_f64(),
        agencies
            .iter()
            .enumerate()
            .map(|(i, a)| format!(
                "{a}@{} ({})",
                node_of[a],
                if i % 2 == 0 { "subscribe" } else { "poll" }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let plans = workload::plan(
        &agencies,
        opts.docs,
        &mut fastrand::Rng::with_seed(opts.seed ^ 0x0001),
    );
    let sending = tokio::spawn(workload::send_all(
        senders.clone(),
        plans,
        opts.concurrency,
        opts.rate,
        ledger.clone(),
        senders_stop,
        opts.seed ^ 0x0002,
    ));
    let faults_until = start + Duration::from_secs(opts.fault_secs);
    let faulting = opts.faults.then(|| {
        tokio::spawn(faults::run(
            cluster.clone(),
            log.clone(),
            faults_stop,
            faults_until,
            opts.wipe_on_kill,
            opts.seed ^ 0x0003,
        ))
    });
    let watching = tokio::spawn(watch_nodes(
        cluster.clone(),
        ledger.clone(),
        log.clone(),
        watch_stop,
    ));

    // Phase 1: send under faults.
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let all_sent = ledger.tally().sent >= opts.docs || sending.is_finished();
        if all_sent && (!opts.faults || Instant::now() >= faults_until) {
            break;
        }
    }
    dms_crashes.store(false, Ordering::Relaxed);
    if let Some(faulting) = faulting {
        log.say("stopping faults");
        let _ = stop_faults.send(true);
        faulting.await?;
    }
    cluster.heal_all().await.context("healing the network")?;
    log.say(&format!(
        "all faults healed ({} injected: {}); draining",
        log.total(),
        log.summary()
    ));

    // Phase 2: drain until everything settled or nothing moved for `stall_secs`.
    let stall = Duration::from_secs(opts.stall_secs);
    let mut last = ledger.tally();
    let mut last_move = Instant::now();
    let drained = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = ledger.tally();
        if sending.is_finished() && settled(&ledger) {
            break true;
        }
        // Re-sends are not progress: a sender retrying forever must not hold the run.
        if (t.acked, t.delivered, t.activity) != (last.acked, last.delivered, last.activity) {
            last = t;
            last_move = Instant::now();
        } else if last_move.elapsed() >= stall {
            log.say(&format!(
                "DRAIN DEADLINE: nothing moved for {} s",
                stall.as_secs()
            ));
            break false;
        }
    };
    if drained {
        log.say("drained; settling for late duplicates");
        tokio::time::sleep(SETTLE).await;
    }
    let _ = stop_senders.send(true);
    let _ = stop_receivers.send(true);
    let _ = stop_watch.send(true);
    sending.await?;
    while receivers.join_next().await.is_some() {}
    watching.await?;

    // What is left in the inboxes: copies already acknowledged are duplicates the
    // receivers did not get to see; others were never taken out.
    let mut leftovers = Vec::new();
    for code in &agencies {
        match workload::leftovers(&readers[code]).await {
            Ok(entries) => {
                for e in entries {
                    let shown = ledger.shown(code, &e.id, e.cursor);
                    leftovers.push(format!(
                        "{code}: {} (cursor {}) left in the inbox: {shown:?}",
                        e.id, e.cursor
                    ));
                }
            }
            Err(e) => leftovers.push(format!("{code}: inbox unreadable: {e}")),
        }
    }

    // Check.
    let docs = ledger.snapshot();
    let verdict = Verdict::judge(&docs);
    let t = ledger.tally();
    println!(
        "chaos: {} faults injected ({}); node starts {}; proxies refused {} and cut {} connections",
        log.total(),
        log.summary(),
        cluster
            .nodes
            .iter()
            .zip(cluster.starts().await)
            .map(|(n, s)| format!("{}×{s}", n.id))
            .collect::<Vec<_>>()
            .join(" "),
        cluster
            .nodes
            .iter()
            .map(|n| n.proxy.control().stats().refused.load(Ordering::Relaxed))
            .sum::<u64>(),
        cluster
            .nodes
            .iter()
            .map(|n| n.proxy.control().stats().cut.load(Ordering::Relaxed))
            .sum::<u64>(),
    );
    println!(
        "chaos: information: {} re-sends by senders, {} receipts answered as duplicates, {} DMS crashes between fetch and ack, {} redeliveries of unacknowledged entries (at-least-once, allowed)",
        t.resends,
        docs.values().filter(|d| d.receipt_was_duplicate).count(),
        ledger.dms_crashes.load(Ordering::Relaxed),
        t.redeliveries
    );
    check::print_bad(&verdict, &docs, &senders, &node_of).await;
    let anomalies = ledger.anomalies.lock().unwrap().clone();
    let crashes = cluster.unexpected_exits.lock().unwrap().clone();
    let fault_failures = log.failures.lock().unwrap().clone();
    for (title, lines) in [
        ("ANOMALIES", &anomalies),
        ("NODE CRASHES", &crashes),
        ("FAULT INJECTION FAILURES", &fault_failures),
        ("LEFT IN INBOXES", &leftovers),
    ] {
        if !lines.is_empty() {
            println!("{title}: {}", lines.len());
            for l in lines.iter().take(50) {
                println!("  {l}");
            }
        }
    }
    let passed = drained
        && verdict.lost.is_empty()
        && verdict.duplicated.is_empty()
        && verdict.unacked.is_empty()
        && verdict.receipt_mismatch.is_empty()
        && verdict.never_acked.is_empty()
        && anomalies.is_empty()
        && crashes.is_empty()
        && fault_failures.is_empty()
        && leftovers.is_empty();
    if !passed {
        println!("chaos: node logs in {}", cluster.dir.join("logs").display());
    }
    Ok((passed, verdict.final_line()))
}

/// Whether every document has its receipt (or was given up) and every copy of every
/// acknowledged document was fetched and acknowledged.
fn settled(ledger: &Ledger) -> bool {
    let t: Tally = ledger.tally();
    t.acked + t.given_up == t.sent && ledger.all_copies_acked()
}

/// Prints the progress line every few seconds, and restarts a node that exited by itself
/// (recorded as a crash), until `stop`.
async fn watch_nodes(
    cluster: Arc<Cluster>,
    ledger: Arc<Ledger>,
    log: Arc<FaultLog>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for i in 0..cluster.nodes.len() {
            if let Some(status) = cluster.check_exited(i).await {
                log.say(&format!(
                    "NODE CRASH: {} exited on its own ({status}); restarting it",
                    cluster.nodes[i].id
                ));
                if let Err(e) = cluster.restart(i).await {
                    log.say(&format!("{} did not restart: {e:#}", cluster.nodes[i].id));
                }
            }
        }
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            let t = ledger.tally();
            let mut states = Vec::new();
            for (i, n) in cluster.nodes.iter().enumerate() {
                let s = cluster.state(i).await;
                let p = n.proxy.control().state();
                let mut marks = String::new();
                match s {
                    cluster::NodeState::Down => marks.push_str(" down"),
                    cluster::NodeState::Paused => marks.push_str(" paused"),
                    cluster::NodeState::Running => {}
                }
                if p.partitioned {
                    marks.push_str(" partitioned");
                }
                if p.delay.is_some() {
                    marks.push_str(" delayed");
                }
                if !marks.is_empty() {
                    states.push(format!("{}:{}", n.id, marks.trim_start()));
                }
            }
            log.say(&format!(
                "progress: sent={} acked={} delivered={} duplicated={} redelivered={} resends={} faults={}{}",
                t.sent,
                t.acked,
                t.delivered,
                t.duplicated,
                t.redeliveries,
                t.resends,
                log.total(),
                if states.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", states.join(", "))
                }
            ));
        }
    }
}

/// The hidden `chaos node --config FILE` mode: one node in this process until SIGTERM or
/// until standard input closes (the chaos run that started it is gone).
pub async fn node_process(config: PathBuf) -> anyhow::Result<()> {
    let config = lienthong_node::NodeConfig::load(&config)?;
    // The previous incarnation may have just died: give the port a moment to be free.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("cannot listen on {} yet: {e}", config.listen);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("cannot listen on {}: {e}", config.listen),
        }
    };
    eprintln!(
        "node {} pid {} on {}",
        config.node_id,
        std::process::id(),
        config.listen
    );
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let orphaned = async {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // SIGTERM's handler interrupts the blocking read: not a closed pipe.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        };
        tokio::select! {
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {
                eprintln!("SIGTERM: shutting down");
            }
            _ = orphaned => eprintln!("standard input closed: the chaos run is gone; shutting down"),
        }
    };
    lienthong_node::server::run(config, listener, shutdown).await?;
    Ok(())
}
