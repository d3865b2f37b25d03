//! `lienthong store`: operations on a node's data directory, run with the node stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use lienthong_store::SledStore;

use crate::UsageError;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Repair a store whose write-ahead log is damaged (the node refuses to start and
    /// names this command): keeps every intact frame, records each damaged range as lost
    /// so that the store opens, and reports what was lost — byte ranges, frames, and the
    /// ids of the messages in them.
    Repair {
        /// The node's data directory (`data_dir` in its configuration).
        #[arg(long)]
        data_dir: PathBuf,
        /// Only report what is damaged; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Repair { data_dir, dry_run } => {
            if !data_dir.join("wal").is_dir() || !data_dir.join("db").is_dir() {
                return Err(UsageError(format!(
                    "{} holds no lienthong store (no db/ and wal/ in it): give the node's data_dir",
                    data_dir.display()
                ))
                .into());
            }
            let report = SledStore::repair(&data_dir, dry_run)?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
