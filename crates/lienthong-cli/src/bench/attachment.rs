//! `bench attachment`: one large attachment across 4 hops, every node its own process so
//! that its peak resident memory can be read from `/proc/<pid>/status` (VmHWM).
//!
//! The measured run: the sender's DMS streams the file to its node (UploadAttachment,
//! 1 MiB chunks, each fsynced before the next), sends the signed document naming it,
//! every node pushes the blob on to the next in chunks before handing the document off,
//! and the recipient's DMS streams it from its node into a file and checks size and
//! SHA-256. Generating and hashing the source file happen before the clock starts.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use lienthong_client::{AttachmentSource, ClientProfile, FileAttachment, Incoming};
use lienthong_core::AgencyCode;
use lienthong_devnet::{Shape, generate_network};

const MIB: f64 = 1024.0 * 1024.0;
const TARGET_RSS_MIB: f64 = 64.0;

/// The node processes; killed when dropped.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `/proc/<pid>/status` field in KiB.
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes `size` pseudo-random bytes (xorshift, so nothing compresses or repeats).
fn write_source(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

pub async fn run(size: u64, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let tmp = match &dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new()
                .prefix("lienthong-bench-attachment-")
                .tempdir_in(d)?
        }
        None => tempfile::Builder::new()
            .prefix("lienthong-bench-attachment-")
            .tempdir()?,
    };
    let dir = tmp.path();
    let shape = Shape {
        fanout: 1,
        ..Shape::new(2)
    };
    let n = lienthong_devnet::network_size(shape);
    let mut addrs = Vec::with_capacity(n);
    {
        // Bound and released at once, so that each node process can bind its port.
        let mut reserved = Vec::with_capacity(n);
        for _ in 0..n {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            addrs.push(l.local_addr()?);
            reserved.push(l);
        }
    }
    let net = generate_network(dir, shape, &addrs, 200)?;
    let exe = std::env::current_exe().context("locating the lienthong binary")?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut procs = Processes(Vec::new());
    for node in &net.nodes {
        let config = dir.join("nodes").join(node.id.as_str()).join("node.toml");
        let log = std::fs::File::create(logs.join(format!("{}.log", node.id)))?;
        let child = Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {}", node.id))?;
        procs.0.push((node.id.to_string(), child));
    }
    // Every node answers and holds the signed directory.
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &net.nodes {
        let mut admin = ClientProfile::load(&node.operator_profile)?.admin()?;
        loop {
            let agencies = admin
                .health(lienthong_proto::pb::HealthRequest {})
                .await
                .map(|h| h.into_inner().agencies)
                .unwrap_or(0);
            if agencies as usize == node.agencies.len() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {} did not come up with its directory; see {}",
                node.id,
                logs.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let idle: Vec<u64> = procs
        .0
        .iter()
        .map(|(_, c)| proc_kib(c.id(), "VmRSS:").unwrap_or(0))
        .collect();

    let from = AgencyCode::parse("001.00.20.H41")?;
    let to = AgencyCode::parse("001.00.20.H42")?;
    let sender = lienthong_client::DmsClient::from_profile(&ClientProfile::load(
        net.profile(from.as_str()),
    )?)?;
    let receiver =
        lienthong_client::DmsClient::from_profile(&ClientProfile::load(net.profile(to.as_str()))?)?;
    println!(
        "bench attachment: {} nodes as separate processes, {from} (H41-C1) → H41 → VN → H42 → {to} (H42-C1); one attachment of {:.1} MiB in 1 MiB chunks, fsynced at every hop",
        n,
        size as f64 / MIB
    );

    let source = dir.join("attachment.bin");
    let t = Instant::now();
    write_source(&source, size)?;
    let file = FileAttachment::from_file(&source)?;
    println!(
        "  source file written and hashed in {:.2}s (not counted)",
        t.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let mut document = sender.new_document(vec![to.clone()], "Benchmark: large attachment");
    let (_, reports) = sender
        .send_sources(&mut document, &[AttachmentSource::File(file.clone())])
        .await?;
    let uploaded = start.elapsed();
    let id = document.id.to_string();
    loop {
        if receiver
            .list_inbox(0, 1000)
            .await?
            .iter()
            .any(|e| e.id == id)
        {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(3600),
            "the document never arrived; see {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = start.elapsed();
    let out = dir.join("received");
    std::fs::create_dir_all(&out)?;
    let dest = |_: usize, a: &lienthong_core::Attachment| out.join(format!("{}.received", a.name));
    let Incoming::Document(_) = receiver.fetch_to_files(&id, &dest).await? else {
        anyhow::bail!("{id} is not a document");
    };
    let fetched = start.elapsed();
    let (got_size, got_digest) = lienthong_client::hash_file(&out.join("attachment.bin.received"))?;
    anyhow::ensure!(
        got_size == file.size && got_digest == file.sha256,
        "the received file does not match the one sent"
    );

    let mb = size as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "  upload DMS → H41-C1: {:.2}s ({:.1} MB/s; {} bytes sent, resumed from {})",
        uploaded.as_secs_f64(),
        rate(uploaded),
        reports[0].bytes_sent,
        reports[0].resumed_from
    );
    println!(
        "  relayed over 4 hops (store and forward, each hop durable): in the recipient's inbox after {:.2}s ({:.1} MB/s per hop on average)",
        (delivered - uploaded).as_secs_f64(),
        rate((delivered - uploaded) / 4)
    );
    println!(
        "  fetch H42-C1 → DMS file: {:.2}s ({:.1} MB/s)",
        (fetched - delivered).as_secs_f64(),
        rate(fetched - delivered)
    );
    println!(
        "  end to end (upload start → file verified at the recipient): {:.2}s, {:.1} MB/s; SHA-256 matches",
        fetched.as_secs_f64(),
        rate(fetched)
    );
    println!("  peak RSS per node process (VmHWM; idle RSS before the transfer in brackets):");
    let mut worst = 0f64;
    for ((id, child), idle) in procs.0.iter().zip(&idle) {
        let hwm = proc_kib(child.id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0;
        worst = worst.max(hwm);
        println!(
            "    {id:<7} {hwm:>7.1} MiB  ({:.1} MiB idle)",
            *idle as f64 / 1024.0
        );
    }
    let me = proc_kib(std::process::id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    println!("    (this process, both DMS clients: {me:.1} MiB)");
    println!(
        "  target < {TARGET_RSS_MIB:.0} MiB per node: {}",
        if worst < TARGET_RSS_MIB {
            format!("met (worst {worst:.1} MiB)")
        } else {
            format!("NOT met (worst {worst:.1} MiB)")
        }
    );
    drop(procs);
    Ok(ExitCode::SUCCESS)
}
