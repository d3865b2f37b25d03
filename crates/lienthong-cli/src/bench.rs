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
use lienthong_node::client::{ClientProfile, DmsClient};
use lienthong_proto::pb;

use lienthong_testkit::{DEV_AGENCIES, RunningNode, generate};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
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
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Accept {
            docs,
            concurrency,
            size,
        } => accept(docs, concurrency.max(1), size).await,
    }
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

async fn accept(docs: usize, concurrency: usize, size: usize) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("lienthong-bench-")
        .tempdir()?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let net = generate(dir.path(), listener.local_addr()?, &DEV_AGENCIES)?;
    let node = RunningNode::start(&net.config, listener).await?;
    println!(
        "bench accept: {docs} signed documents of {size} B, {concurrency} senders over mTLS, durable acks"
    );

    // Senders spread over the first three agencies, each sending to the next one.
    let mut senders = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let (_, path) = &net.profiles[i % 3];
        senders.push(DmsClient::from_profile(&ClientProfile::load(path)?)?);
    }
    let content = "Nội dung văn bản. ".repeat(size / 20 + 1);
    let content: String = content.chars().take(size).collect();

    // Pre-sign so that the figure measures the node, not the sender's signing.
    let prepare = |client: &DmsClient, n: usize| -> anyhow::Result<Vec<pb::Document>> {
        let to = net.profiles[(net
            .profiles
            .iter()
            .position(|(c, _)| c == client.agency())
            .unwrap()
            + 1)
            % 3]
        .0
        .clone();
        (0..n)
            .map(|_| {
                let mut d = client.new_document(vec![to.clone()], "Benchmark");
                d.header.content = content.clone();
                Ok(client.seal(&mut d, &[])?)
            })
            .collect()
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

    let run_phase = |phase: Vec<(DmsClient, Vec<pb::Document>)>| async move {
        let mut tasks = Vec::new();
        for (client, docs) in phase {
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(docs.len());
                for d in docs {
                    let t = Instant::now();
                    client.send_sealed_unverified(d).await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            }));
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
