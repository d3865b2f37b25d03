//! `lienthong pki`: a certificate authority and the certificates of nodes and agencies.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use lienthong_core::{AgencyCode, NodeId};
use lienthong_pki::{CertificateAuthority, Identity, KeyKind};

use crate::UsageError;

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a new certificate authority (ca.pem, ca.key) in DIR.
    Init {
        /// Where to write the CA; must not hold one already.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "lienthong CA")]
        name: String,
    },
    /// Issue a certificate for a node or an agency.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Write a CRL revoking certificates by serial number (hex).
    Revoke {
        #[arg(long, default_value = "pki")]
        ca_dir: PathBuf,
        /// Serial numbers in hex, as printed by `issue`.
        #[arg(required = true)]
        serials: Vec<String>,
        /// Where to write the CRL.
        #[arg(long, default_value = "pki/crl.pem")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum IssueCommand {
    /// A node certificate (TLS server and client), ECDSA P-256.
    Node {
        /// The node id, e.g. H41.
        id: String,
        #[command(flatten)]
        common: IssueArgs,
        /// DNS names the node is reached by; repeat for several.
        #[arg(long)]
        dns: Vec<String>,
        /// IP addresses the node is reached by; repeat for several.
        #[arg(long)]
        ip: Vec<IpAddr>,
    },
    /// An agency certificate (TLS client, and the key that signs its documents), Ed25519.
    Agency {
        /// The agency code, e.g. 000.00.00.H41.
        code: String,
        #[command(flatten)]
        common: IssueArgs,
    },
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The CA directory (from `pki init`).
    #[arg(long, default_value = "pki")]
    ca_dir: PathBuf,
    /// Where to write <name>.pem and <name>.key.
    #[arg(long, default_value = "pki")]
    out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

pub fn run(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Init { dir, name } => {
            if dir.join("ca.key").exists() {
                return Err(UsageError(format!(
                    "{} already holds a CA; choose another --dir",
                    dir.display()
                ))
                .into());
            }
            let ca = CertificateAuthority::generate(&name)?;
            ca.save(&dir)?;
            println!("CA {name:?} written to {}/ca.pem and ca.key", dir.display());
        }
        PkiCommand::Issue(issue) => {
            let (identity, stem, common, dns, ip, kind) = match issue {
                IssueCommand::Node {
                    id,
                    common,
                    dns,
                    ip,
                } => {
                    let id = NodeId::parse(&id).map_err(|e| UsageError(e.to_string()))?;
                    let stem = format!("node-{id}");
                    (
                        Identity::Node(id),
                        stem,
                        common,
                        dns,
                        ip,
                        KeyKind::EcdsaP256,
                    )
                }
                IssueCommand::Agency { code, common } => {
                    let code = AgencyCode::parse(&code).map_err(|e| UsageError(e.to_string()))?;
                    let stem = format!("agency-{code}");
                    (
                        Identity::Agency(code),
                        stem,
                        common,
                        Vec::new(),
                        Vec::new(),
                        KeyKind::Ed25519,
                    )
                }
            };
            let ca = CertificateAuthority::load(&common.ca_dir)?;
            let issued = ca.issue(&identity, &dns, &ip, kind, common.days)?;
            let (cert, key) = issued.save(&common.out, &stem)?;
            println!(
                "issued {identity} (serial {}) valid {} days:\n  {}\n  {}",
                hex::encode(&issued.serial),
                common.days,
                cert.display(),
                key.display()
            );
        }
        PkiCommand::Revoke {
            ca_dir,
            serials,
            out,
        } => {
            let ca = CertificateAuthority::load(&ca_dir)?;
            let serials = serials
                .iter()
                .map(|s| {
                    hex::decode(s.trim().trim_start_matches("0x").replace(':', ""))
                        .map_err(|_| UsageError(format!("serial {s:?} is not hex")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let crl = ca.revoke(&serials)?;
            std::fs::write(&out, crl)?;
            println!(
                "CRL with {} serials written to {}",
                serials.len(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
