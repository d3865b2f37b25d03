//! `chaos`: the fault-injection suite (see [`lienthong_testkit::chaos`]). Real node
//! processes on loopback — this binary re-executed in its hidden `node` mode — behind
//! fault-injecting proxies; SIGKILL, SIGTERM, SIGSTOP, partitions and delays while signed
//! documents flow; a checker over every document. The last line printed is
//! `sent=N acked=N delivered=N lost=L duplicated=D`; the exit code is 0 only when the
//! delivery contract held.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    about = "Fault-injection suite: an acknowledged document is never lost and never delivered twice, whatever fails",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Documents to send.
    #[arg(long, default_value_t = 10_000)]
    docs: usize,
    /// Seed of the workload and the fault schedule (printed; random when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Documents in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Documents started per second at most [default: the documents spread over the
    /// fault window, 0 = unpaced; unpaced with --no-faults].
    #[arg(long)]
    rate: Option<f64>,
    /// Inject no faults: a baseline run.
    #[arg(long)]
    no_faults: bool,
    /// Faults go on at least this many seconds, and while documents are being sent
    /// [default: 30, or one second per 100 documents if longer].
    #[arg(long)]
    fault_secs: Option<u64>,
    /// The drain fails when nothing moved for this many seconds.
    #[arg(long, default_value_t = 90)]
    stall_secs: u64,
    /// Put the network here instead of a new temporary directory (kept).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary directory (configs, data, node logs) after a passing run.
    #[arg(long)]
    keep_dir: bool,
    /// 2: VN → 2 provinces → 2 communes each (7 nodes); 3: with districts (15 nodes).
    #[arg(long, default_value_t = 2)]
    tiers: u8,
    /// Checks the checker: wipe a killed node's data directory before restarting it (a
    /// lost disk, outside the contract). The run must fail with lost documents.
    #[arg(long, hide = true)]
    sabotage_wipe_on_kill: bool,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Internal: run one node of a chaos network (started by the suite itself).
    #[command(hide = true)]
    Node {
        #[arg(long)]
        config: PathBuf,
    },
}

fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("LIENTHONG_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    // ring is the only crypto provider; install it before anything touches rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Mode::Node { config }) = cli.mode {
        init_tracing("warn");
        let result = runtime.block_on(lienthong_testkit::chaos::node_process(config));
        // Exit at once: the standard-input watcher holds a blocking read the runtime
        // would wait for on drop.
        match result {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1)
            }
        }
    }
    init_tracing("error");
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this executable to start nodes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    if cli.tiers != 2 && cli.tiers != 3 {
        eprintln!("error: --tiers must be 2 or 3, not {}", cli.tiers);
        return ExitCode::from(64);
    }
    let fault_secs = cli
        .fault_secs
        .unwrap_or_else(|| (cli.docs as u64 / 100).max(30));
    // Spread the documents over the fault window, finishing a little before it ends so
    // that the last ones are still in flight under faults.
    let rate = match cli.rate {
        Some(r) if r > 0.0 => Some(r),
        Some(_) => None,
        None if cli.no_faults => None,
        None => Some((cli.docs as f64 / (fault_secs as f64 * 0.8).max(1.0)).max(1.0)),
    };
    let opts = lienthong_testkit::chaos::Options {
        docs: cli.docs,
        seed,
        concurrency: cli.concurrency.max(1),
        rate,
        faults: !cli.no_faults,
        fault_secs,
        stall_secs: cli.stall_secs.max(1),
        keep_dir: cli.keep_dir || cli.dir.is_some(),
        dir: cli.dir,
        shape: lienthong_testkit::Shape::new(cli.tiers),
        exe,
        wipe_on_kill: cli.sabotage_wipe_on_kill,
    };
    let result = runtime.block_on(lienthong_testkit::chaos::run(opts));
    // Node children are killed on drop of the cluster; do not wait for stray blocking
    // tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
