//! `lienthong edxml`: edXML (QCVN 102:2016) messages on the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use lienthong_edxml::{Error, SignatureCheck};

use crate::UsageError;

#[derive(Subcommand, Debug)]
pub enum EdxmlCommand {
    /// Check that FILE is an edXML message lienthong can carry, and print a summary.
    ///
    /// Exits 0 when the message is usable and its signature (if any) verifies; otherwise
    /// prints `FILE:LINE: reason` on stderr and exits 1.
    Check {
        /// The edXML message (a document or a status message).
        file: PathBuf,
    },
}

pub fn run(cmd: EdxmlCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EdxmlCommand::Check { file } => check(&file),
    }
}

fn check(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    let name = file.display();
    let report = match lienthong_edxml::check(&bytes) {
        Ok(r) => r,
        Err(e) => {
            let reason = match &e {
                Error::Parse(p) => format!("{} (column {})", p.reason, p.column),
                other => other.to_string(),
            };
            eprintln!("{name}:{}: {reason}", e.line().unwrap_or(0));
            return Ok(ExitCode::FAILURE);
        }
    };
    print!(
        "{}",
        lienthong_edxml::summary(&report.message, &report.signature)
    );
    if let SignatureCheck::Failed { reason } = &report.signature {
        eprintln!(
            "{name}:{}: the signature does not verify: {reason}",
            report.signature_line
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
