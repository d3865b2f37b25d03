//! The fault schedule: a seeded RNG draws, every 0.5–2.5 s, one fault and its target among
//! the nodes not already under a fault (at most [`MAX_BUSY`] at once), and runs it as its
//! own task, so faults overlap:
//!
//! | fault | what | how long |
//! |---|---|---|
//! | `kill` | SIGKILL the node process, restart it on the same data directory and port | down 0.2–3 s |
//! | `term` | SIGTERM (graceful drain), restart | down 0.2–2 s |
//! | `pause` | SIGSTOP, then SIGCONT: sockets stay open, nothing answers | 6–10 s, longer than the DMS call timeout |
//! | `long-pause` | the same, longer than the relay links' HTTP/2 keep-alive (30 s) and its timeout (20 s), so that neighbours give the link up and dial again | 60 s; once per run, at a random time, when the fault window is long enough (`--fault-secs` ≥ 65) |
//! | `partition` | the node's proxy refuses new connections and cuts open ones: neighbours cannot reach it | 2–8 s |
//! | `delay` | 100 ms ± 50 ms per chunk on the proxies of a random half of the nodes | 5–15 s |
//!
//! When `stop` turns true every running fault is cut short and healed. The same seed
//! replays the same schedule of faults (kinds, targets, durations); the interleaving with
//! the traffic still depends on timing.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cluster::Cluster;
use crate::proxy::Delay;

/// Nodes under a fault at the same time, at most.
pub const MAX_BUSY: usize = 3;
/// How long a `long-pause` freezes a node: past the relay links' keep-alive interval
/// (30 s) plus its timeout (tonic's default, 20 s).
pub const LONG_PAUSE: Duration = Duration::from_secs(60);

/// What faults were injected and when; prints each line as it happens.
#[derive(Debug)]
pub struct FaultLog {
    start: Instant,
    counts: Mutex<BTreeMap<&'static str, u32>>,
    /// Things that went wrong while injecting or healing (a node that would not restart).
    pub failures: Mutex<Vec<String>>,
}

impl FaultLog {
    pub fn new(start: Instant) -> Self {
        FaultLog {
            start,
            counts: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    pub fn say(&self, line: &str) {
        println!("[{:7.1}s] {line}", self.start.elapsed().as_secs_f64());
    }

    fn count(&self, kind: &'static str) {
        *self.counts.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn fail(&self, what: String) {
        self.say(&format!("FAULT FAILURE: {what}"));
        self.failures.lock().unwrap().push(what);
    }

    pub fn total(&self) -> u32 {
        self.counts.lock().unwrap().values().sum()
    }

    /// `kill 4, partition 3, …`
    pub fn summary(&self) -> String {
        let counts = self.counts.lock().unwrap();
        if counts.is_empty() {
            return "none".into();
        }
        counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Kill,
    Term,
    Pause,
    Partition,
    Delay,
}

const WEIGHTS: [(Kind, u32); 5] = [
    (Kind::Kill, 3),
    (Kind::Term, 1),
    (Kind::Pause, 2),
    (Kind::Partition, 3),
    (Kind::Delay, 2),
];

fn draw_kind(rng: &mut fastrand::Rng) -> Kind {
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.u32(0..total);
    for (kind, w) in WEIGHTS {
        if roll < w {
            return kind;
        }
        roll -= w;
    }
    Kind::Kill
}

fn millis(rng: &mut fastrand::Rng, from: u64, to: u64) -> Duration {
    Duration::from_millis(rng.u64(from..=to))
}

/// Sleeps `d` or until `stop`; returns whether it was cut short.
async fn hold(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Runs the schedule until `stop`, then waits for every fault to heal. `window_end` is
/// the earliest the schedule will be stopped: the long pause is placed to fit before it.
/// `wipe_on_kill` deletes the data directory of every killed node before its restart: a
/// fault outside the contract, to prove the checker reports the loss.
pub async fn run(
    cluster: Arc<Cluster>,
    log: Arc<FaultLog>,
    mut stop: watch::Receiver<bool>,
    window_end: Instant,
    wipe_on_kill: bool,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let busy: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let delaying = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u32;
    // The long pause: at a random time that leaves it room before the window ends.
    let room = window_end.saturating_duration_since(Instant::now());
    let mut long_pause_at = (room >= LONG_PAUSE + Duration::from_secs(5)).then(|| {
        let slack = (room - LONG_PAUSE - Duration::from_secs(4)).as_millis() as u64;
        Instant::now() + Duration::from_secs(2) + Duration::from_millis(rng.u64(0..=slack))
    });
    loop {
        if hold(millis(&mut rng, 500, 2500), &mut stop).await {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let long = long_pause_at.is_some_and(|at| Instant::now() >= at);
        let kind = draw_kind(&mut rng);
        let task_seed = rng.u64(..);
        if !long && let Kind::Delay = kind {
            if delaying.swap(true, std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            n += 1;
            let (cluster, log, stop, delaying) =
                (cluster.clone(), log.clone(), stop.clone(), delaying.clone());
            tasks.spawn(async move {
                delay(&cluster, &log, n, stop, task_seed).await;
                delaying.store(false, std::sync::atomic::Ordering::SeqCst);
            });
            continue;
        }
        let target = {
            let mut b = busy.lock().unwrap();
            let free: Vec<usize> = (0..cluster.nodes.len())
                .filter(|i| !b.contains(i))
                .collect();
            if b.len() >= MAX_BUSY || free.is_empty() {
                continue;
            }
            let i = free[rng.usize(..free.len())];
            b.insert(i);
            i
        };
        if long {
            long_pause_at = None;
        }
        n += 1;
        let (cluster, log, stop, busy) = (cluster.clone(), log.clone(), stop.clone(), busy.clone());
        tasks.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task_seed);
            if long {
                pause(&cluster, &log, n, target, stop, LONG_PAUSE, "long-pause").await;
                busy.lock().unwrap().remove(&target);
                return;
            }
            match kind {
                Kind::Kill => kill(&cluster, &log, n, target, stop, wipe_on_kill, &mut rng).await,
                Kind::Term => term(&cluster, &log, n, target, stop, &mut rng).await,
                Kind::Pause => {
                    let frozen = millis(&mut rng, 6000, 10000);
                    pause(&cluster, &log, n, target, stop, frozen, "pause").await
                }
                Kind::Partition => partition(&cluster, &log, n, target, stop, &mut rng).await,
                Kind::Delay => {}
            }
            busy.lock().unwrap().remove(&target);
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn restart(cluster: &Cluster, log: &FaultLog, i: usize) {
    let id = &cluster.nodes[i].id;
    match cluster.restart(i).await {
        Ok((pid, ready)) => log.say(&format!(
            "        {id} restarted (pid {pid}), answering after {:.2} s",
            ready.as_secs_f64()
        )),
        Err(e) => log.fail(format!("{id} did not restart: {e:#}")),
    }
}

async fn kill(
    cluster: &Cluster,
    log: &FaultLog,
    n: u32,
    i: usize,
    mut stop: watch::Receiver<bool>,
    wipe: bool,
    rng: &mut fastrand::Rng,
) {
    let id = &cluster.nodes[i].id;
    let down = millis(rng, 200, 3000);
    match cluster.kill(i).await {
        Ok(Some(pid)) => {
            log.count("kill");
            log.say(&format!(
                "fault {n}: SIGKILL {id} (pid {pid}); down for {:.1} s",
                down.as_secs_f64()
            ));
        }
        Ok(None) => return,
        Err(e) => return log.fail(format!("SIGKILL {id}: {e:#}")),
    }
    if wipe {
        match cluster.wipe(i).await {
            Ok(()) => log.say(&format!(
                "        SABOTAGE: wiped the data directory of {id}"
            )),
            Err(e) => log.fail(format!("wiping {id}: {e:#}")),
        }
    }
    hold(down, &mut stop).await;
    restart(cluster, log, i).await;
}

async fn term(
    cluster: &Cluster,
    log: &FaultLog,
    n: u32,
    i: usize,
    mut stop: watch::Receiver<bool>,
    rng: &mut fastrand::Rng,
) {
    let id = &cluster.nodes[i].id;
    let down = millis(rng, 200, 2000);
    log.count("term");
    log.say(&format!(
        "fault {n}: SIGTERM {id}; down for {:.1} s after it stops",
        down.as_secs_f64()
    ));
    let started = Instant::now();
    match cluster.terminate(i).await {
        Ok(true) => log.say(&format!(
            "        {id} stopped cleanly in {:.2} s",
            started.elapsed().as_secs_f64()
        )),
        Ok(false) => log.say(&format!(
            "        {id} did not exit cleanly after SIGTERM within {:.1} s (killed)",
            started.elapsed().as_secs_f64()
        )),
        Err(e) => return log.fail(format!("SIGTERM {id}: {e:#}")),
    }
    hold(down, &mut stop).await;
    restart(cluster, log, i).await;
}

async fn pause(
    cluster: &Cluster,
    log: &FaultLog,
    n: u32,
    i: usize,
    mut stop: watch::Receiver<bool>,
    frozen: Duration,
    kind: &'static str,
) {
    let id = &cluster.nodes[i].id;
    match cluster.pause(i).await {
        Ok(Some(pid)) => {
            log.count(kind);
            log.say(&format!(
                "fault {n}: SIGSTOP {id} (pid {pid}) for {:.1} s",
                frozen.as_secs_f64()
            ));
        }
        Ok(None) => return,
        Err(e) => return log.fail(format!("SIGSTOP {id}: {e:#}")),
    }
    hold(frozen, &mut stop).await;
    match cluster.resume(i).await {
        Ok(()) => log.say(&format!("        SIGCONT {id}")),
        Err(e) => log.fail(format!("SIGCONT {id}: {e:#}")),
    }
}

async fn partition(
    cluster: &Cluster,
    log: &FaultLog,
    n: u32,
    i: usize,
    mut stop: watch::Receiver<bool>,
    rng: &mut fastrand::Rng,
) {
    let id = &cluster.nodes[i].id;
    let cut = millis(rng, 2000, 8000);
    log.count("partition");
    log.say(&format!(
        "fault {n}: partition {id} (its proxy refuses and cuts) for {:.1} s",
        cut.as_secs_f64()
    ));
    cluster.partition(i, true);
    hold(cut, &mut stop).await;
    cluster.partition(i, false);
    log.say(&format!("        heal {id}"));
}

async fn delay(
    cluster: &Cluster,
    log: &FaultLog,
    n: u32,
    mut stop: watch::Receiver<bool>,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut targets: Vec<usize> = (0..cluster.nodes.len()).collect();
    rng.shuffle(&mut targets);
    targets.truncate(cluster.nodes.len().div_ceil(2));
    targets.sort();
    let lasting = millis(&mut rng, 5000, 15000);
    let names: Vec<&str> = targets
        .iter()
        .map(|&i| cluster.nodes[i].id.as_str())
        .collect();
    log.count("delay");
    log.say(&format!(
        "fault {n}: delay {} on the proxies of {} for {:.1} s",
        Delay::WAN,
        names.join(" "),
        lasting.as_secs_f64()
    ));
    for &i in &targets {
        cluster.set_delay(i, Some(Delay::WAN));
    }
    hold(lasting, &mut stop).await;
    for &i in &targets {
        cluster.set_delay(i, None);
    }
    log.say(&format!("        delays off on {}", names.join(" ")));
}
