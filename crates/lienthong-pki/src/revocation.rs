//! The CA's revocation database, `revoked.toml` beside `ca.key`: every certificate the CA
//! has revoked, when and why, and the number of the last CRL it issued.
//!
//! A CRL is always issued from the whole database ([`revoke`], [`reissue`]), so revoking
//! one more certificate never drops an earlier one, and each CRL's number is one higher
//! than the last. The database, not the CRL file, is the record: a CRL may be written to
//! any path (and copied, renamed or lost on the way to the nodes), while the database
//! stays with the CA key and keeps each revocation's original time and reason.
//!
//! A CRL already at the output path, signed by this CA, is merged into the database
//! first. This carries over what a CA revoked before the database existed, and can only
//! add revocations, never take one back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::RevocationReason;
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ca::{CertificateAuthority, hex_string};
use crate::error::{Error, Result};
use crate::files::{Overwrite, write_file};

/// File name of the revocation database inside a CA directory.
pub const REVOKED_FILE: &str = "revoked.toml";

/// Why a certificate was revoked (RFC 5280 §5.3.1), as the CRL says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Unspecified,
    /// The certificate's private key is known or suspected to be in other hands.
    KeyCompromise,
    /// The CA's own key is.
    CaCompromise,
    /// The node or agency changed (merged, renamed, moved to another node).
    AffiliationChanged,
    /// A new certificate replaces it.
    Superseded,
    /// The node or agency no longer exists.
    CessationOfOperation,
    /// It may no longer act as what the certificate says.
    PrivilegeWithdrawn,
}

impl Reason {
    /// Every reason, in the order `--help` lists them.
    pub const ALL: [Reason; 7] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
    ];

    /// The name used in `revoked.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "key-compromise",
            Reason::CaCompromise => "ca-compromise",
            Reason::AffiliationChanged => "affiliation-changed",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessation-of-operation",
            Reason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    pub(crate) fn to_crl(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }

    /// The reason of a CRL entry; codes lienthong does not issue count as unspecified.
    fn from_crl_code(code: u8) -> Reason {
        match code {
            1 => Reason::KeyCompromise,
            2 => Reason::CaCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            9 => Reason::PrivilegeWithdrawn,
            _ => Reason::Unspecified,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Reason::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
                format!(
                    "unknown revocation reason {s:?}; use one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Serial number, big-endian, without leading zero bytes.
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    pub reason: Reason,
}

/// The revocation database of one CA directory.
#[derive(Clone, Debug)]
pub struct Revocations {
    path: PathBuf,
    /// Number of the last CRL issued; the next one gets a higher number.
    crl_number: u64,
    /// In the order they were revoked; each serial once.
    entries: Vec<Revocation>,
}

/// `revoked.toml` as written.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DbFile {
    /// Number of the last CRL issued from this database.
    #[serde(default)]
    crl_number: u64,
    #[serde(default)]
    revoked: Vec<DbEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DbEntry {
    /// Hex, as `lienthong pki issue` prints it.
    serial: String,
    /// RFC 3339.
    revoked_at: String,
    reason: Reason,
}

/// A serial as a CRL or a certificate carries it, without the leading zero byte DER adds
/// before a high bit, so that the same number always compares equal.
fn normalize(serial: &[u8]) -> Vec<u8> {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    serial[start..].to_vec()
}

impl Revocations {
    /// The database of the CA in `ca_dir`; empty when it has none yet.
    pub fn load(ca_dir: impl AsRef<Path>) -> Result<Self> {
        let path = ca_dir.as_ref().join(REVOKED_FILE);
        let invalid = |reason: String| Error::InvalidRevocationDb {
            path: path.clone(),
            reason,
        };
        let file: DbFile = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| invalid(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DbFile::default(),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let mut db = Revocations {
            path: path.clone(),
            crl_number: file.crl_number,
            entries: Vec::with_capacity(file.revoked.len()),
        };
        for entry in file.revoked {
            let serial = hex_decode(&entry.serial)
                .ok_or_else(|| invalid(format!("serial {:?} is not hex", entry.serial)))?;
            let revoked_at = OffsetDateTime::parse(&entry.revoked_at, &Rfc3339).map_err(|e| {
                invalid(format!(
                    "revoked_at {:?} of serial {} is not an RFC 3339 time ({e})",
                    entry.revoked_at, entry.serial
                ))
            })?;
            db.add(&serial, entry.reason, revoked_at);
        }
        Ok(db)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every revoked certificate, in the order they were revoked.
    pub fn entries(&self) -> &[Revocation] {
        &self.entries
    }

    /// The number of the last CRL issued from this database (0 before the first).
    pub fn crl_number(&self) -> u64 {
        self.crl_number
    }

    /// The entry of `serial`, if it is revoked.
    pub fn find(&self, serial: &[u8]) -> Option<&Revocation> {
        let serial = normalize(serial);
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// Records `serial` as revoked at `at` for `reason`. A serial revoked before keeps its
    /// first time and reason; returns whether it is new.
    pub fn add(&mut self, serial: &[u8], reason: Reason, at: OffsetDateTime) -> bool {
        if self.find(serial).is_some() {
            return false;
        }
        self.entries.push(Revocation {
            serial: normalize(serial),
            revoked_at: at,
            reason,
        });
        true
    }

    /// Merges the entries of a CRL that `ca` signed, read from `source`, and makes sure
    /// the next CRL number is above its number. Returns how many serials were new.
    pub fn merge_crl(
        &mut self,
        ca: &CertificateAuthority,
        crl_der: &[u8],
        source: &Path,
    ) -> Result<usize> {
        let invalid = |reason: String| Error::InvalidCrl(format!("{}: {reason}", source.display()));
        let (rest, crl) = x509_parser::parse_x509_crl(crl_der)
            .map_err(|e| invalid(format!("not a DER CRL ({e})")))?;
        if !rest.is_empty() {
            return Err(invalid(format!(
                "{} trailing bytes after the CRL",
                rest.len()
            )));
        }
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der())
            .map_err(|e| invalid(format!("unreadable CA certificate ({e})")))?;
        crl.verify_signature(ca_cert.public_key())
            .map_err(|_| Error::ForeignCrl {
                path: source.to_path_buf(),
            })?;
        if let Some(number) = crl.crl_number() {
            // A number too large for u64 was not made here; leave the counter alone.
            if let Ok(number) = u64::try_from(number) {
                self.crl_number = self.crl_number.max(number);
            }
        }
        let mut added = 0;
        for revoked in crl.iter_revoked_certificates() {
            let reason = revoked
                .reason_code()
                .map(|(_, code)| Reason::from_crl_code(code.0))
                .unwrap_or(Reason::Unspecified);
            if self.add(
                revoked.raw_serial(),
                reason,
                revoked.revocation_date.to_datetime(),
            ) {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Writes the database atomically (owner-readable like the CA key beside it, since it
    /// says what the CA did).
    pub fn save(&self) -> Result<()> {
        let file = DbFile {
            crl_number: self.crl_number,
            revoked: self
                .entries
                .iter()
                .map(|e| {
                    Ok(DbEntry {
                        serial: hex_string(&e.serial),
                        revoked_at: e.revoked_at.format(&Rfc3339).map_err(|err| {
                            Error::InvalidRevocationDb {
                                path: self.path.clone(),
                                reason: format!("cannot write time {}: {err}", e.revoked_at),
                            }
                        })?,
                        reason: e.reason,
                    })
                })
                .collect::<Result<_>>()?,
        };
        let text = toml::to_string_pretty(&file).map_err(|e| Error::InvalidRevocationDb {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let text = format!(
            "# Certificates revoked by the CA beside this file, and the number of the last CRL.\n\
             # Written by `lienthong pki revoke`; every CRL lists all of them.\n\n{text}"
        );
        write_file(&self.path, text.as_bytes(), true, Overwrite::Replace)
    }

    /// Signs the next CRL (number one above the last) listing every entry; the caller
    /// saves the database so that the number is not used twice.
    fn next_crl(&mut self, ca: &CertificateAuthority) -> Result<String> {
        self.crl_number += 1;
        ca.crl(&self.entries, self.crl_number)
    }
}

/// What [`revoke`] and [`reissue`] did.
#[derive(Debug, Clone)]
pub struct IssuedCrl {
    /// The number of the CRL written.
    pub crl_number: u64,
    /// Every certificate it lists.
    pub revoked: Vec<Revocation>,
    /// Of the serials asked for, those that were already revoked (with their first
    /// revocation, which is kept).
    pub already_revoked: Vec<Revocation>,
    /// Serials taken over from the CRL that was at the output path.
    pub merged_from_existing: usize,
    /// The database written.
    pub database: PathBuf,
}

/// Revokes `serials` with the CA in `ca_dir`: records them in its database (keeping any
/// earlier revocation) and writes to `crl_out` a CRL listing every certificate the CA
/// has revoked, numbered one above the last.
pub fn revoke<S: AsRef<[u8]>>(
    ca_dir: impl AsRef<Path>,
    serials: &[S],
    reason: Reason,
    crl_out: impl AsRef<Path>,
) -> Result<IssuedCrl> {
    let ca_dir = ca_dir.as_ref();
    let crl_out = crl_out.as_ref();
    let ca = CertificateAuthority::load(ca_dir)?;
    let mut db = Revocations::load(ca_dir)?;
    let merged_from_existing = merge_existing(&mut db, &ca, crl_out)?;
    let now = OffsetDateTime::now_utc();
    let mut already_revoked = Vec::new();
    for serial in serials {
        let serial = serial.as_ref();
        if normalize(serial).is_empty() {
            return Err(Error::InvalidCertificate(
                "serial 0 is not a certificate serial number".into(),
            ));
        }
        if !db.add(serial, reason, now) {
            already_revoked.extend(db.find(serial).cloned());
        }
    }
    issue(&ca, db, crl_out, already_revoked, merged_from_existing)
}

/// Writes to `crl_out` a fresh CRL from the database of the CA in `ca_dir`, revoking
/// nothing new: for a CRL whose nextUpdate draws near, or a copy for another path.
pub fn reissue(ca_dir: impl AsRef<Path>, crl_out: impl AsRef<Path>) -> Result<IssuedCrl> {
    revoke::<&[u8]>(ca_dir, &[], Reason::Unspecified, crl_out)
}

/// Merges the CRL already at `crl_out`, if any.
fn merge_existing(
    db: &mut Revocations,
    ca: &CertificateAuthority,
    crl_out: &Path,
) -> Result<usize> {
    let bytes = match std::fs::read(crl_out) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(Error::Read {
                path: crl_out.to_path_buf(),
                source,
            });
        }
    };
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: crl_out.to_path_buf(),
            reason: e.to_string(),
        })?;
    if crls.is_empty() {
        return Err(Error::NoCrl {
            path: crl_out.to_path_buf(),
        });
    }
    let mut added = 0;
    for crl in crls {
        added += db.merge_crl(ca, crl.as_ref(), crl_out)?;
    }
    Ok(added)
}

/// Saves the database, then writes the CRL: a crash in between leaves a database that
/// the next CRL is issued from, never a CRL that lists what the database does not.
fn issue(
    ca: &CertificateAuthority,
    mut db: Revocations,
    crl_out: &Path,
    already_revoked: Vec<Revocation>,
    merged_from_existing: usize,
) -> Result<IssuedCrl> {
    let crl = db.next_crl(ca)?;
    db.save()?;
    if let Some(dir) = crl_out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_file(crl_out, crl.as_bytes(), false, Overwrite::Replace)?;
    Ok(IssuedCrl {
        crl_number: db.crl_number,
        revoked: db.entries.clone(),
        already_revoked,
        merged_from_existing,
        database: db.path.clone(),
    })
}

/// Hex with optional `0x` prefix and `:` separators, as tools print serials.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.chars().all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).ok())
        .collect()
}
