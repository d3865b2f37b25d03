//! `lienthong`: one binary for nodes, development networks, PKI, DMS-side and operator
//! commands, and benchmarks. Parsing lives here; the work is in the libraries.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod dev;
mod dev_network;
mod dms;
mod edxml;
mod pki;
mod store;

/// mimalloc instead of glibc's malloc: a node allocates and frees many small buffers on
/// several threads (messages, gRPC frames, store keys), where glibc's allocator took 13%
/// of the CPU of `bench network` and mimalloc takes a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for usage and configuration errors (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "lienthong",
    version,
    about = "lienthong — trục liên thông văn bản: a bus for signed official documents between agencies",
    long_about = None,
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a complete local network with a fresh PKI (for development and demos).
    Dev(dev::DevArgs),
    /// Run a node from a configuration file.
    Node {
        /// The node's TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Certificate authority and certificates.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Send a signed document (DMS side).
    Send(dms::SendArgs),
    /// List, watch, fetch and acknowledge the inbox (DMS side).
    Inbox(dms::InboxArgs),
    /// Send a business status notice about a received document (DMS side).
    Status(dms::StatusArgs),
    /// Show a document's transport events and status notices.
    Track(dms::TrackArgs),
    /// Operator commands: health and queue depths of a node.
    #[command(subcommand)]
    Admin(dms::AdminCommand),
    /// edXML (QCVN 102:2016) messages: check one and summarize it.
    #[command(subcommand)]
    Edxml(edxml::EdxmlCommand),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Operations on a node's store, with the node stopped: repair a damaged log.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("LIENTHONG_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// An error that means the user must fix their input or configuration.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    // ring is the only crypto provider; install it before anything touches rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_tracing();
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Node { config } => run_node(config).await,
            Command::Pki(cmd) => pki::run(cmd),
            Command::Send(args) => dms::send(args).await,
            Command::Inbox(args) => dms::inbox(args).await,
            Command::Status(args) => dms::status(args).await,
            Command::Track(args) => dms::track(args).await,
            Command::Admin(cmd) => dms::admin(cmd).await,
            Command::Edxml(cmd) => edxml::run(cmd).await,
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Store(cmd) => store::run(cmd),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<lienthong_client::Error>() {
                // One line: the code and the node's message (for transport failures, a
                // refused certificate or an unreachable node, with the cause underneath).
                Some(
                    lienthong_client::Error::Refused { code, message, .. }
                    | lienthong_client::Error::Transport { code, message },
                ) => eprintln!("error: {code:?}: {message}"),
                _ => match e.downcast_ref::<tonic::Status>() {
                    Some(status) => {
                        eprintln!("error: {:?}: {}", status.code(), status.message());
                        let mut source = std::error::Error::source(status);
                        while let Some(cause) = source {
                            eprintln!("  caused by: {cause}");
                            source = cause.source();
                        }
                    }
                    None => eprintln!("error: {}", one_line(&e)),
                },
            }
            // A damaged log is for the operator to act on before a start, like a bad
            // configuration: its message names the repair command.
            let config_error = e.downcast_ref::<UsageError>().is_some()
                || matches!(
                    e.downcast_ref::<lienthong_node::Error>(),
                    Some(
                        lienthong_node::Error::Config(_)
                            | lienthong_node::Error::Pki(_)
                            | lienthong_node::Error::Store(
                                lienthong_store::Error::DamagedLog { .. }
                            )
                    )
                );
            if config_error {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `e` and its causes on one line, like `{e:#}`, without a cause whose text is already
/// there: the node's errors wrap the store's and PKI's and include their message.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

async fn run_node(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = lienthong_node::NodeConfig::load(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| UsageError(format!("cannot listen on {}: {e}", config.listen)))?;
    let bound = lienthong_node::server::bind(&config, listener).await?;
    eprintln!(
        "node {} listening on https://{} with {} agencies",
        bound.node.id(),
        config.listen,
        bound.node.agencies().len()
    );
    if let Some(addr) = bound.vxp_addr() {
        eprintln!("VXP gateway listening on https://{addr}");
    }
    bound.serve(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("shutting down…");
}
