//! `lienthong bench`: benchmarks that print their figures.
//!
//! `bench accept`: one node in this process, a fresh PKI, `--concurrency` senders each on
//! its own mTLS connection, sending pre-signed 1 KiB documents; every acknowledgement
//! means the document is durable (group-committed sled flush). The node verifies every
//! sender signature and signs every receipt; the load generator does not re-verify the
//! receipts (a DMS does, on its own machine), so the 2 cores go to the node. Prints
//! documents per second and acknowledgement latency percentiles.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use lienthong_client::{ClientProfile, DmsClient};
use lienthong_core::AgencyCode;

use lienthong_devnet::{DEV_AGENCIES, RunningNode, generate};

mod attachment;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Multi-hop delivery: 5 nodes (commune → province → national → province → commune),
    /// signed 1 KiB documents, every hop durable and verified. Prints documents/s
    /// delivered end to end, then end-to-end latency at a fixed offered load.
    Network {
        /// Documents in the throughput phase.
        #[arg(long, default_value_t = 20_000)]
        docs: usize,
        /// Concurrent senders in the throughput phase.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Offered load of the latency phase, documents per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Duration of the latency phase, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
    },
    /// Durable acceptance on one node: signed 1 KiB documents over mTLS.
    Accept {
        /// Documents to send in the measured run.
        #[arg(long, default_value_t = 100_000)]
        docs: usize,
        /// Concurrent senders, each with its own mTLS connection.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Size of each document's content, in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Requests each sender keeps in flight on its connection (HTTP/2 streams);
        /// 1 means each sender waits for an acknowledgement before sending the next.
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
    },
    /// A large attachment across 4 hops: 5 nodes as separate processes (commune →
    /// province → national → province → commune); the DMS streams the file in chunks to
    /// its node, every node pushes it on in chunks, the recipient streams it to a file.
    /// Prints MB/s end to end and the peak RSS (VmHWM) of every node process.
    Attachment {
        /// Attachment size: bytes, or with a unit (KiB, MiB, GiB, KB, MB, GB).
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
        /// Where the network's data goes (about 7 times the size); a temporary directory
        /// under the system's temporary directory by default.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// `1GiB`, `512MiB`, `100MB`, `4096`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Accept {
            docs,
            concurrency,
            size,
            in_flight,
        } => accept(docs, concurrency.max(1), size, in_flight.max(1)).await,
        BenchCommand::Network {
            docs,
            concurrency,
            rate,
            seconds,
        } => network(docs, concurrency.max(1), rate.max(1), seconds).await,
        BenchCommand::Attachment { size, dir } => attachment::run(size, dir).await,
    }
}

/// Signs `n` documents of about `size` bytes from `client` to `to`.
fn presign(
    client: &DmsClient,
    to: &AgencyCode,
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<lienthong_client::Sealed>> {
    let content: String = "Nội dung văn bản. "
        .repeat(size / 20 + 1)
        .chars()
        .take(size)
        .collect();
    (0..n)
        .map(|_| {
            let mut d = client.new_document(vec![to.clone()], "Benchmark");
            d.header.content = content.clone();
            Ok(client.seal(&mut d, &[])?)
        })
        .collect()
}

async fn network(
    docs: usize,
    concurrency: usize,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("lienthong-bench-")
        .tempdir()?;
    let shape = lienthong_devnet::Shape {
        fanout: 1,
        ..lienthong_devnet::Shape::new(2)
    };
    let net = lienthong_devnet::RunningNetwork::start(dir.path(), shape, 0, 1000).await?;
    let from = AgencyCode::parse("001.00.20.H41")?;
    let to = AgencyCode::parse("001.00.20.H42")?;
    println!(
        "bench network: {} nodes, {from} (H41-C1) → H41 → VN → H42 → {to} (H42-C1); signed 1 KiB documents, every hop durable and verified",
        net.net.nodes.len()
    );
    let receiver = net.client(to.as_str())?;
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(net.client(from.as_str())?);
    }

    // Arrivals on the recipient's subscription, timestamped as they come.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut stream = receiver.subscribe(0).await?;
    tokio::spawn(async move {
        while let Some(Ok(entry)) = tokio_stream::StreamExt::next(&mut stream).await {
            if arrived_tx.send((entry.id, Instant::now())).is_err() {
                return;
            }
        }
    });

    // Phase 1: throughput with `concurrency` senders.
    let per_sender = docs.div_ceil(concurrency);
    let t = Instant::now();
    let mut batches = Vec::with_capacity(concurrency);
    for s in &senders {
        batches.push(presign(s, &to, per_sender, 1024)?);
    }
    let total = per_sender * concurrency;
    println!(
        "  signed {total} documents in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (client, docs) in senders.iter().cloned().zip(batches) {
        tasks.push(tokio::spawn(async move {
            for d in docs {
                client.send_sealed_unverified(&d).await?;
            }
            anyhow::Ok(())
        }));
    }
    let mut received = 0usize;
    let mut last_progress = Instant::now();
    while received < total {
        match tokio::time::timeout(Duration::from_secs(60), arrived.recv()).await {
            Ok(Some(_)) => received += 1,
            _ => anyhow::bail!("only {received} of {total} documents arrived"),
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            eprintln!("  … {received}/{total} delivered");
            last_progress = Instant::now();
        }
    }
    let accepted_in = {
        for t in tasks {
            t.await??;
        }
        start.elapsed()
    };
    let elapsed = start.elapsed();
    println!(
        "  throughput: {total} documents delivered end to end in {:.2}s: {:.0} documents/s (senders done after {:.2}s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        accepted_in.as_secs_f64()
    );

    // Phase 2: latency at a fixed offered load, one send every 1/rate s.
    let n = (rate * seconds) as usize;
    let docs = presign(&senders[0], &to, n, 1024)?;
    let mut sent_at: std::collections::HashMap<String, Instant> =
        std::collections::HashMap::with_capacity(n);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = tokio::task::JoinSet::new();
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for (i, d) in docs.into_iter().enumerate() {
        ticker.tick().await;
        sent_at.insert(d.document.id.to_string(), Instant::now());
        let client = senders[i % senders.len()].clone();
        sends.spawn(async move { client.send_sealed_unverified(&d).await });
        while let Ok((id, at)) = arrived.try_recv() {
            if let Some(s) = sent_at.get(&id) {
                latencies.push(at - *s);
            }
        }
    }
    while latencies.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), arrived.recv()).await {
            Ok(Some((id, at))) => {
                if let Some(s) = sent_at.get(&id) {
                    latencies.push(at - *s);
                }
            }
            _ => anyhow::bail!(
                "only {} of {n} documents arrived in the latency phase",
                latencies.len()
            ),
        }
    }
    while let Some(r) = sends.join_next().await {
        r??;
    }
    let offered = n as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "  latency at {rate}/s offered ({offered:.0}/s achieved, {n} documents): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    net.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// Percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn accept(
    docs: usize,
    concurrency: usize,
    size: usize,
    in_flight: usize,
) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("lienthong-bench-")
        .tempdir()?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let net = generate(dir.path(), listener.local_addr()?, &DEV_AGENCIES)?;
    let node = RunningNode::start(&net.config, listener).await?;
    println!(
        "bench accept: {docs} signed documents of {size} B, {concurrency} senders over mTLS with {in_flight} request(s) in flight each, durable acks"
    );

    // Senders spread over the first three agencies, each sending to the next one.
    let mut senders = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let (_, path) = &net.profiles[i % 3];
        senders.push(DmsClient::from_profile(&ClientProfile::load(path)?)?);
    }
    // Pre-sign so that the figure measures the node, not the sender's signing. Sender i
    // writes to the next of the first three agencies.
    let prepare = |client: &DmsClient, n: usize| -> anyhow::Result<Vec<lienthong_client::Sealed>> {
        let i = net
            .profiles
            .iter()
            .position(|(c, _)| c == client.agency())
            .unwrap_or(0);
        presign(client, &net.profiles[(i + 1) % 3].0, n, size)
    };
    let per_sender = docs.div_ceil(concurrency);
    let warmup = 200.min(per_sender);
    let mut batches = Vec::with_capacity(concurrency);
    let t = Instant::now();
    for s in &senders {
        batches.push((prepare(s, warmup)?, prepare(s, per_sender)?));
    }
    println!(
        "  signed {} documents in {:.2}s",
        concurrency * (warmup + per_sender),
        t.elapsed().as_secs_f64()
    );

    let run_phase = |phase: Vec<(DmsClient, Vec<lienthong_client::Sealed>)>| async move {
        let mut tasks = Vec::new();
        for (client, docs) in phase {
            // Each of a sender's `in_flight` streams takes every `in_flight`-th document;
            // they share the sender's one connection.
            let mut streams = vec![Vec::new(); in_flight];
            for (i, d) in docs.into_iter().enumerate() {
                streams[i % in_flight].push(d);
            }
            for docs in streams {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(docs.len());
                    for d in docs {
                        let t = Instant::now();
                        client.send_sealed_unverified(&d).await?;
                        latencies.push(t.elapsed());
                    }
                    anyhow::Ok(latencies)
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        anyhow::Ok(all)
    };
    let (warm, measured): (Vec<_>, Vec<_>) = batches.into_iter().unzip();
    run_phase(senders.iter().cloned().zip(warm).collect()).await?;

    let start = Instant::now();
    let mut latencies = run_phase(senders.iter().cloned().zip(measured).collect()).await?;
    let elapsed = start.elapsed();
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "  accepted {} documents in {:.2}s: {:.0} documents/s",
        latencies.len(),
        elapsed.as_secs_f64(),
        rate
    );
    println!(
        "  acknowledgement latency: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    node.stop().await?;
    Ok(ExitCode::SUCCESS)
}
