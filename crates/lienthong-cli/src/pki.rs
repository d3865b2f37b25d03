//! `lienthong pki`: a certificate authority and the certificates of nodes and agencies.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use lienthong_core::{AgencyCode, NodeId};
use lienthong_pki::revocation::{self, IssuedCrl, Reason};
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
    /// Revoke certificates by serial number (hex): record them in the CA's revocation
    /// database (CA_DIR/revoked.toml) and write a CRL listing every certificate the CA
    /// has revoked so far.
    Revoke {
        #[arg(long, default_value = "pki")]
        ca_dir: PathBuf,
        /// Serial numbers in hex, as printed by `issue`.
        #[arg(required = true)]
        serials: Vec<String>,
        /// Why: unspecified, key-compromise, ca-compromise, affiliation-changed,
        /// superseded, cessation-of-operation or privilege-withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: Reason,
        /// Where to write the CRL; a CRL of this CA already there is merged, never
        /// dropped.
        #[arg(long, default_value = "pki/crl.pem")]
        out: PathBuf,
    },
    /// Write a fresh CRL from the CA's revocation database, revoking nothing new (when
    /// the last CRL's next update draws near, or for another path).
    Crl {
        #[arg(long, default_value = "pki")]
        ca_dir: PathBuf,
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
            reason,
            out,
        } => {
            let serials = serials
                .iter()
                .map(|s| {
                    hex::decode(s.trim().trim_start_matches("0x").replace(':', ""))
                        .map_err(|_| UsageError(format!("serial {s:?} is not hex")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let issued = revocation::revoke(&ca_dir, &serials, reason, &out)?;
            report_crl(&issued, &out);
        }
        PkiCommand::Crl { ca_dir, out } => {
            let issued = revocation::reissue(&ca_dir, &out)?;
            report_crl(&issued, &out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says what a CRL lists and where its record is kept.
fn report_crl(issued: &IssuedCrl, out: &Path) {
    for r in &issued.already_revoked {
        println!(
            "serial {} was already revoked on {} ({}); kept as it was",
            hex::encode(&r.serial),
            r.revoked_at,
            r.reason
        );
    }
    if issued.merged_from_existing > 0 {
        println!(
            "{} serials of the CRL that was in {} taken into {}",
            issued.merged_from_existing,
            out.display(),
            issued.database.display()
        );
    }
    println!(
        "CRL number {} listing {} revoked certificates written to {} (record: {})",
        issued.crl_number,
        issued.revoked.len(),
        out.display(),
        issued.database.display()
    );
}
