//! Signer-certificate checks for document signatures.

mod common;

use common::{agency, node};
use lienthong_core::sign::SigningKey;
use lienthong_core::{Signature, SignatureAlgorithm};
use lienthong_pki::{CertificateAuthority, Error, IssuedCert, KeyKind, TrustRoots};
use rustls_pki_types::pem::PemObject;

const MESSAGE: &[u8] = b"canonical bytes of header and attachment digests";

fn sign(issued: &IssuedCert, message: &[u8]) -> Signature {
    let key = SigningKey::from_pkcs8(&issued.key_der).unwrap();
    Signature {
        algorithm: key.algorithm(),
        signer_cert: issued.cert_der.clone(),
        value: key.sign(message).unwrap(),
    }
}

fn setup(kind: KeyKind) -> (CertificateAuthority, TrustRoots, IssuedCert) {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let roots = TrustRoots::from_der([ca.cert_der()]).unwrap();
    let issued = ca
        .issue(&agency("000.00.00.H41"), &[], &[], kind, 30)
        .unwrap();
    (ca, roots, issued)
}

#[test]
fn verifies_agency_signature_and_returns_signer() {
    for kind in [KeyKind::Ed25519, KeyKind::EcdsaP256] {
        let (_, roots, issued) = setup(kind);
        let sig = sign(&issued, MESSAGE);
        assert_eq!(
            roots.verify_signer(&sig, MESSAGE).unwrap(),
            agency("000.00.00.H41")
        );
    }
}

#[test]
fn verifies_node_signature() {
    let (ca, roots, _) = setup(KeyKind::Ed25519);
    let issued = ca
        .issue(&node("H41"), &[], &[], KeyKind::EcdsaP256, 1)
        .unwrap();
    assert_eq!(
        roots
            .verify_signer(&sign(&issued, MESSAGE), MESSAGE)
            .unwrap(),
        node("H41")
    );
}

#[test]
fn rejects_tampered_message() {
    let (_, roots, issued) = setup(KeyKind::Ed25519);
    let sig = sign(&issued, MESSAGE);
    let err = roots.verify_signer(&sig, b"tampered bytes").unwrap_err();
    assert!(matches!(err, Error::BadSignature(_)), "{err}");
}

#[test]
fn rejects_signer_certificate_from_another_ca() {
    let (_, roots, _) = setup(KeyKind::Ed25519);
    let other_ca = CertificateAuthority::generate("other CA").unwrap();
    let issued = other_ca
        .issue(&agency("000.00.00.H41"), &[], &[], KeyKind::Ed25519, 30)
        .unwrap();
    let err = roots
        .verify_signer(&sign(&issued, MESSAGE), MESSAGE)
        .unwrap_err();
    assert!(
        matches!(err, Error::UntrustedSigner(webpki::Error::UnknownIssuer)),
        "{err}"
    );
}

#[test]
fn rejects_algorithm_mismatch() {
    let (_, roots, issued) = setup(KeyKind::Ed25519);
    let mut sig = sign(&issued, MESSAGE);
    sig.algorithm = SignatureAlgorithm::EcdsaP256Sha256;
    let err = roots.verify_signer(&sig, MESSAGE).unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlgorithmMismatch {
                declared: SignatureAlgorithm::EcdsaP256Sha256,
                in_cert: SignatureAlgorithm::Ed25519,
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_expired_signer_certificate() {
    let (_, roots, issued) = setup(KeyKind::Ed25519);
    let sig = sign(&issued, MESSAGE);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(31 * 86_400);
    let err = roots.verify_signer_at(&sig, MESSAGE, later).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UntrustedSigner(webpki::Error::CertExpired { .. })
        ),
        "{err}"
    );
}

#[test]
fn rejects_revoked_signer_certificate() {
    let (ca, roots, issued) = setup(KeyKind::Ed25519);
    let crl = ca.revoke(&[&issued.serial]).unwrap();
    let crls = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(crl.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let roots = roots.with_crls(crls).unwrap();
    let err = roots
        .verify_signer(&sign(&issued, MESSAGE), MESSAGE)
        .unwrap_err();
    assert!(matches!(err, Error::RevokedSigner { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "certificate with serial {} (urn:lienthong:agency:000.00.00.H41) was revoked",
            hex(&issued.serial)
        )),
        "{err}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Trust built from a node's or client's TLS files honours their CRLs, and remembering
/// a checked signer does not let a revoked one through.
#[test]
fn trust_from_tls_files_rejects_signer_revoked_by_their_crl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    ca.save(dir.path().join("ca")).unwrap();
    let revoked = ca
        .issue(&agency("000.00.00.H41"), &[], &[], KeyKind::Ed25519, 30)
        .unwrap();
    let valid = ca
        .issue(&agency("000.00.14.H41"), &[], &[], KeyKind::Ed25519, 30)
        .unwrap();
    let (cert, key) = valid.save(dir.path(), "valid").unwrap();
    let crl = dir.path().join("crl.pem");
    std::fs::write(&crl, ca.revoke(&[&revoked.serial]).unwrap()).unwrap();
    let files = lienthong_pki::TlsFiles {
        ca: dir.path().join("ca/ca.pem"),
        cert,
        key,
        crls: vec![crl],
    };
    let trust = lienthong_pki::CachedTrust::new(TrustRoots::from_files(&files).unwrap());
    assert_eq!(
        trust
            .verify_signer(&sign(&valid, MESSAGE), MESSAGE)
            .unwrap(),
        agency("000.00.14.H41")
    );
    for _ in 0..2 {
        let err = trust
            .verify_signer(&sign(&revoked, MESSAGE), MESSAGE)
            .unwrap_err();
        assert!(matches!(err, Error::RevokedSigner { .. }), "{err}");
    }
}

#[test]
fn trust_roots_load_from_pem_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    ca.save(dir.path()).unwrap();
    let roots = TrustRoots::load(dir.path().join("ca.pem")).unwrap();
    let issued = ca
        .issue(&agency("000.00.00.H41"), &[], &[], KeyKind::Ed25519, 1)
        .unwrap();
    roots
        .verify_signer(&sign(&issued, MESSAGE), MESSAGE)
        .unwrap();

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        TrustRoots::load(&empty),
        Err(Error::NoCertificate { .. })
    ));
}

#[test]
fn cached_trust_checks_every_signature_and_remembers_only_the_chain() {
    let ca = CertificateAuthority::generate("cache CA").unwrap();
    let agency = lienthong_pki::Identity::Agency(
        lienthong_core::AgencyCode::parse("000.00.00.H41").unwrap(),
    );
    let issued = ca.issue(&agency, &[], &[], KeyKind::Ed25519, 30).unwrap();
    let key = lienthong_core::sign::SigningKey::from_pkcs8(&issued.key_der).unwrap();
    let trust = lienthong_pki::CachedTrust::new(TrustRoots::from_der([ca.cert_der()]).unwrap());
    let sign = |msg: &[u8]| lienthong_core::Signature {
        algorithm: key.algorithm(),
        signer_cert: issued.cert_der.clone(),
        value: key.sign(msg).unwrap(),
    };
    let sig = sign(b"one");
    assert_eq!(trust.verify_signer(&sig, b"one").unwrap(), agency);
    // Second time from the cache: still verified against the message.
    assert_eq!(trust.verify_signer(&sign(b"two"), b"two").unwrap(), agency);
    assert!(matches!(
        trust.verify_signer(&sig, b"tampered"),
        Err(lienthong_pki::Error::BadSignature(_))
    ));
    let mut wrong_alg = sign(b"three");
    wrong_alg.algorithm = lienthong_core::sign::SignatureAlgorithm::EcdsaP256Sha256;
    assert!(matches!(
        trust.verify_signer(&wrong_alg, b"three"),
        Err(lienthong_pki::Error::AlgorithmMismatch { .. })
    ));
}
