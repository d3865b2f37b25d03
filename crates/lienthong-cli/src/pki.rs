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
            warn_if_nodes_can_reach(&dir);
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

/// Directories deep below the CA directory's parent that are searched for node configs.
const NODE_SEARCH_DEPTH: usize = 4;
/// Directory entries looked at in that search, at most: a warning is a courtesy, not a
/// reason to walk a whole disk.
const NODE_SEARCH_ENTRIES: usize = 20_000;

/// Warns on stderr when the CA key just written to `ca_dir` is within reach of a node: the
/// directory is inside a node's directory, holds a node config, or is where a node config
/// takes its CA certificate from (`tls.ca`). A node that can read the CA key can issue
/// itself any identity, so production keeps the CA on an offline machine.
fn warn_if_nodes_can_reach(ca_dir: &Path) {
    let Ok(ca_dir) = ca_dir.canonicalize() else {
        return;
    };
    let findings = nodes_near(&ca_dir);
    for (config, why) in &findings {
        eprintln!(
            "warning: the CA key {} is within reach of the node configured in {}: {why}",
            ca_dir.join(lienthong_pki::ca::CA_KEY_FILE).display(),
            config.display()
        );
    }
    if !findings.is_empty() {
        eprintln!(
            "warning: whoever runs or breaks into that node can issue certificates for any node \
             or agency; in production keep the CA on an offline machine and give each node only \
             ca.pem, its own certificate and key, and the CRL (README: Production PKI)"
        );
    }
}

/// Node configs that can reach `ca_dir` (canonical), with why.
fn nodes_near(ca_dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    // A node config beside the CA directory or in any directory above it.
    for dir in ca_dir.ancestors() {
        for (config, _) in node_configs_in(dir) {
            let why = if dir == ca_dir {
                "it is in the same directory".to_string()
            } else {
                format!("{} lies inside that node's directory", ca_dir.display())
            };
            found.push((config, why));
        }
    }
    // Node configs below the CA directory's parent, inside the CA directory or taking
    // their CA certificate from it.
    let root = ca_dir.parent().unwrap_or(ca_dir);
    let mut budget = NODE_SEARCH_ENTRIES;
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if budget == 0 {
                return found;
            }
            budget -= 1;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() && !hidden && depth < NODE_SEARCH_DEPTH {
                stack.push((entry.path(), depth + 1));
            }
        }
        if dir == root || dir == ca_dir {
            // Already reported as an ancestor or the directory itself.
            continue;
        }
        for (config, tls_ca) in node_configs_in(&dir) {
            if config.starts_with(ca_dir) {
                found.push((config, "it is inside the CA directory".to_string()));
            } else if tls_ca.starts_with(ca_dir) {
                found.push((
                    config,
                    format!("its tls.ca is {}, in the CA directory", tls_ca.display()),
                ));
            }
        }
    }
    found
}

/// The node configs (TOML with `node_id` and `tls.ca`) directly in `dir`, with their
/// `tls.ca` resolved as the node resolves it.
fn node_configs_in(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") || !path.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            continue;
        };
        let tls_ca = table
            .get("tls")
            .and_then(|t| t.get("ca"))
            .and_then(|c| c.as_str());
        let (true, Some(tls_ca)) = (table.contains_key("node_id"), tls_ca) else {
            continue;
        };
        let tls_ca = dir.join(tls_ca);
        // As the node would open it; a file not there yet is compared by its directory.
        let resolved = tls_ca.canonicalize().unwrap_or_else(|_| {
            match (
                tls_ca.parent().and_then(|p| p.canonicalize().ok()),
                tls_ca.file_name(),
            ) {
                (Some(parent), Some(name)) => parent.join(name),
                _ => tls_ca.clone(),
            }
        });
        out.push((path, resolved));
    }
    out
}
