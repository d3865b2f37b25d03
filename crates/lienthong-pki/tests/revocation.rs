//! The CA's revocation database: revocations accumulate across CRLs, each CRL is numbered
//! above the last, and a CRL written before the database existed is carried over.

mod common;

use std::path::Path;

use common::{agency, new_ca, node};
use lienthong_pki::revocation::{self, REVOKED_FILE, Reason, Revocations};
use lienthong_pki::{CertificateAuthority, Error, IssuedCert, KeyKind, load_crls};
use x509_parser::extensions::ParsedExtension;

fn issue(ca: &CertificateAuthority, code: &str) -> IssuedCert {
    ca.issue(&agency(code), &[], &[], KeyKind::Ed25519, 30)
        .unwrap()
}

/// (serials, CRL number, reason codes) of the CRL in `path`, after checking it is signed
/// by `ca`.
fn read_crl(ca: &CertificateAuthority, path: &Path) -> (Vec<Vec<u8>>, u64, Vec<Option<u8>>) {
    let crls = load_crls(&[path]).unwrap();
    assert_eq!(crls.len(), 1, "one CRL per file");
    let (_, crl) = x509_parser::parse_x509_crl(crls[0].as_ref()).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    crl.verify_signature(ca_cert.public_key()).unwrap();
    let number = crl
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::CRLNumber(n) => Some(u64::try_from(n).unwrap()),
            _ => None,
        })
        .expect("a CRL number");
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    let reasons = crl
        .iter_revoked_certificates()
        .map(|r| r.reason_code().map(|(_, c)| c.0))
        .collect();
    (serials, number, reasons)
}

#[test]
fn second_revocation_keeps_the_first_in_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let ca_dir = dir.path().join("ca");
    let out = dir.path().join("crl.pem");
    let (a, b) = (issue(&ca, "000.00.00.H41"), issue(&ca, "000.00.14.H41"));

    let first = revocation::revoke(&ca_dir, &[&a.serial], Reason::KeyCompromise, &out).unwrap();
    assert_eq!(first.crl_number, 1);
    let (serials, number, _) = read_crl(&ca, &out);
    assert_eq!((serials, number), (vec![a.serial.clone()], 1));

    let second = revocation::revoke(&ca_dir, &[&b.serial], Reason::Superseded, &out).unwrap();
    assert_eq!(second.crl_number, 2);
    assert_eq!(second.revoked.len(), 2);
    let (serials, number, reasons) = read_crl(&ca, &out);
    assert_eq!(serials, vec![a.serial.clone(), b.serial.clone()]);
    assert_eq!(number, 2, "each CRL is numbered above the last");
    // key-compromise (1) and superseded (4) as given, each kept with its own entry.
    assert_eq!(reasons, vec![Some(1), Some(4)]);

    // The record sits beside the CA key, owner-readable only.
    let db = Revocations::load(&ca_dir).unwrap();
    assert_eq!(db.path(), ca_dir.join(REVOKED_FILE));
    assert_eq!(db.crl_number(), 2);
    assert_eq!(db.find(&a.serial).unwrap().reason, Reason::KeyCompromise);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(db.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn crl_written_elsewhere_still_lists_every_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let ca_dir = dir.path().join("ca");
    let (a, b) = (issue(&ca, "000.00.00.H41"), issue(&ca, "000.00.14.H41"));
    revocation::revoke(
        &ca_dir,
        &[&a.serial],
        Reason::Unspecified,
        dir.path().join("one.pem"),
    )
    .unwrap();
    // The second revocation goes to another file: the database, not the file, is the
    // record, so that file lists both.
    let other = dir.path().join("out/two.pem");
    revocation::revoke(&ca_dir, &[&b.serial], Reason::Unspecified, &other).unwrap();
    let (serials, number, _) = read_crl(&ca, &other);
    assert_eq!(serials, vec![a.serial.clone(), b.serial.clone()]);
    assert_eq!(number, 2);

    // A reissue revokes nothing new and numbers the CRL above the last.
    let again = revocation::reissue(&ca_dir, dir.path().join("one.pem")).unwrap();
    assert_eq!(again.crl_number, 3);
    let (serials, number, _) = read_crl(&ca, &dir.path().join("one.pem"));
    assert_eq!(serials, vec![a.serial.clone(), b.serial.clone()]);
    assert_eq!(number, 3);
}

#[test]
fn revoking_a_serial_again_keeps_its_first_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let ca_dir = dir.path().join("ca");
    let out = dir.path().join("crl.pem");
    let a = issue(&ca, "000.00.00.H41");
    revocation::revoke(&ca_dir, &[&a.serial], Reason::KeyCompromise, &out).unwrap();
    let first = Revocations::load(&ca_dir).unwrap().entries()[0].clone();
    let again = revocation::revoke(&ca_dir, &[&a.serial], Reason::Superseded, &out).unwrap();
    assert_eq!(again.already_revoked, vec![first.clone()]);
    assert_eq!(again.revoked, vec![first]);
    let (serials, _, reasons) = read_crl(&ca, &out);
    assert_eq!(serials, vec![a.serial.clone()]);
    assert_eq!(reasons, vec![Some(1)]);
}

#[test]
fn takes_over_a_crl_written_before_the_database_existed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let ca_dir = dir.path().join("ca");
    let out = dir.path().join("crl.pem");
    let (a, b) = (issue(&ca, "000.00.00.H41"), issue(&ca, "000.00.14.H41"));
    // What `pki revoke` wrote before it kept a database: a CRL numbered with Unix time.
    std::fs::write(&out, ca.revoke(&[&a.serial]).unwrap()).unwrap();
    let (_, old_number, _) = read_crl(&ca, &out);

    let issued = revocation::revoke(&ca_dir, &[&b.serial], Reason::Unspecified, &out).unwrap();
    assert_eq!(issued.merged_from_existing, 1);
    let (serials, number, _) = read_crl(&ca, &out);
    assert_eq!(serials, vec![a.serial.clone(), b.serial.clone()]);
    assert_eq!(number, old_number + 1, "numbered above the CRL it replaces");
}

#[test]
fn refuses_to_merge_a_crl_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let other = new_ca(dir.path(), "other");
    let out = dir.path().join("crl.pem");
    let stranger = other
        .issue(&node("H42"), &[], &[], KeyKind::Ed25519, 30)
        .unwrap();
    std::fs::write(&out, other.revoke(&[&stranger.serial]).unwrap()).unwrap();
    let before = std::fs::read(&out).unwrap();

    let a = issue(&ca, "000.00.00.H41");
    let err = revocation::revoke(
        dir.path().join("ca"),
        &[&a.serial],
        Reason::Unspecified,
        &out,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ForeignCrl { .. }), "{err}");
    assert!(err.to_string().contains("this CA did not sign"), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the other CA's CRL is untouched"
    );
    assert!(!dir.path().join("ca").join(REVOKED_FILE).exists());
}

#[test]
fn rejects_a_damaged_revocation_database() {
    let dir = tempfile::tempdir().unwrap();
    new_ca(dir.path(), "ca");
    let ca_dir = dir.path().join("ca");
    std::fs::write(
        ca_dir.join(REVOKED_FILE),
        "crl_number = 3\n[[revoked]]\nserial = \"zz\"\nrevoked_at = \"2026-01-01T00:00:00Z\"\nreason = \"superseded\"\n",
    )
    .unwrap();
    let err = Revocations::load(&ca_dir).unwrap_err();
    assert!(matches!(err, Error::InvalidRevocationDb { .. }), "{err}");
    assert!(
        err.to_string().contains("serial \"zz\" is not hex"),
        "{err}"
    );
}
