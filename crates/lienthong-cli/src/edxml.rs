//! `lienthong edxml`: edXML (QCVN 102:2016) messages on the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use lienthong_client::{ClientProfile, DmsClient};
use lienthong_core::directory::DirectoryIndex;
use lienthong_edxml::{Error, SignatureCheck};

use crate::UsageError;

#[derive(Subcommand, Debug)]
pub enum EdxmlCommand {
    /// Check that FILE is an edXML message lienthong can carry, and print a summary.
    ///
    /// Exits 0 when the message is usable; otherwise prints `FILE:LINE: reason` on stderr
    /// and exits 1. An agency identifier that is neither a QĐ 20/2020 code nor an alias
    /// the directory lists, and an XML-DSig signature that does not verify, are warnings
    /// (`FILE:LINE: warning: reason`): whether a message is routed is the node's
    /// decision, with its directory.
    Check {
        /// The edXML message (a document or a status message).
        file: PathBuf,
        /// Refuse the message unless it carries an XML-DSig signature that verifies.
        #[arg(long)]
        require_signature: bool,
        /// Place agency identifiers with the directory of the node this client profile
        /// connects to (legacy codes and platform account ids are aliases there);
        /// without it only QĐ 20/2020 codes are placed.
        #[arg(long, short = 'p')]
        profile: Option<PathBuf>,
    },
}

pub async fn run(cmd: EdxmlCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EdxmlCommand::Check {
            file,
            require_signature,
            profile,
        } => {
            let directory = match profile {
                Some(p) => {
                    let client = DmsClient::from_profile(&ClientProfile::load(&p)?)?;
                    client.current_directory().await?
                }
                None => None,
            };
            check(&file, require_signature, directory.as_deref())
        }
    }
}

fn check(
    file: &Path,
    require_signature: bool,
    directory: Option<&DirectoryIndex>,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    let name = file.display();
    let report = match lienthong_edxml::check(&bytes, directory) {
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
    for (id, placed) in &report.identifiers {
        match placed {
            Ok(code) if code.as_str() != id.value.trim() => {
                println!(
                    "{:<12} {} {:?} is agency {code}",
                    "identifier:", id.field, id.value
                )
            }
            Ok(_) => {}
            Err(e) => eprintln!("{name}:{}: warning: {e}", e.line().unwrap_or(0)),
        }
    }
    let refused = match &report.signature {
        SignatureCheck::Failed { reason } => {
            let severity = if require_signature { "" } else { "warning: " };
            eprintln!(
                "{name}:{}: {severity}the signature does not verify: {reason}",
                report.signature_line
            );
            require_signature
        }
        SignatureCheck::Absent if require_signature => {
            eprintln!(
                "{name}:0: the message carries no XML-DSig signature, and --require-signature asks for one"
            );
            true
        }
        SignatureCheck::Absent | SignatureCheck::Verified { .. } => false,
    };
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
