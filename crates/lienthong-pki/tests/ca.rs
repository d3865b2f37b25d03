//! The certificate authority: what it issues, and that it survives a save and load.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{agency, new_ca, node};
use lienthong_core::SignatureAlgorithm;
use lienthong_pki::{
    CertificateAuthority, Error, KeyKind, cert_not_after, cert_public_key, cert_serial, load_certs,
    load_crls, peer_identity,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};

#[test]
fn peer_identity_of_issued_node_certificate() {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let issued = ca
        .issue(
            &node("H41"),
            &["h41.lienthong.test".to_string()],
            &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 41))],
            KeyKind::EcdsaP256,
            90,
        )
        .unwrap();
    assert_eq!(peer_identity(&issued.cert_der).unwrap(), node("H41"));
    assert_eq!(issued.identity, node("H41"));

    let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert_der).unwrap();
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(sans.contains(&GeneralName::URI("urn:lienthong:node:H41")));
    assert!(sans.contains(&GeneralName::DNSName("h41.lienthong.test")));
    assert!(sans.contains(&GeneralName::IPAddress(&[10, 0, 0, 41])));
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
    assert!(!cert.is_ca());
    assert_eq!(cert.raw_serial(), issued.serial.as_slice());
    assert_eq!(cert_serial(&issued.cert_der).unwrap(), issued.serial);

    let days_left =
        (cert_not_after(&issued.cert_der).unwrap() - time::OffsetDateTime::now_utc()).whole_days();
    assert!((89..=90).contains(&days_left), "{days_left}");
    let (alg, key) = cert_public_key(&issued.cert_der).unwrap();
    assert_eq!(alg, SignatureAlgorithm::EcdsaP256Sha256);
    assert_eq!(key.len(), 65, "uncompressed P-256 point");
}

#[test]
fn peer_identity_of_issued_agency_certificate() {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let issued = ca
        .issue(&agency("000.00.00.H41"), &[], &[], KeyKind::Ed25519, 365)
        .unwrap();
    assert_eq!(
        peer_identity(&issued.cert_der).unwrap(),
        agency("000.00.00.H41")
    );

    let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert_der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
    let (alg, key) = cert_public_key(&issued.cert_der).unwrap();
    assert_eq!(alg, SignatureAlgorithm::Ed25519);
    let signing_key = lienthong_core::sign::SigningKey::from_pkcs8(&issued.key_der).unwrap();
    assert_eq!(signing_key.public_key(), key);
}

#[test]
fn issued_serials_are_random() {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let a = ca
        .issue(&node("H41"), &[], &[], KeyKind::Ed25519, 1)
        .unwrap();
    let b = ca
        .issue(&node("H41"), &[], &[], KeyKind::Ed25519, 1)
        .unwrap();
    assert_ne!(a.serial, b.serial);
    assert_eq!(a.serial.len(), 16);
}

#[test]
fn rejects_certificate_without_lienthong_uri() {
    let plain = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let err = peer_identity(plain.cert.der()).unwrap_err();
    assert!(matches!(err, Error::NoIdentity), "{err}");
    assert!(err.to_string().contains("urn:lienthong:"), "{err}");
}

#[test]
fn rejects_certificate_with_several_lienthong_uris() {
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    for uri in ["urn:lienthong:node:H41", "urn:lienthong:node:H42"] {
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().unwrap()));
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let err = peer_identity(cert.der()).unwrap_err();
    assert!(
        matches!(&err, Error::SeveralIdentities(uris) if uris.len() == 2),
        "{err}"
    );
}

#[test]
fn rejects_certificate_with_malformed_agency_code() {
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(
        "urn:lienthong:agency:H41".try_into().unwrap(),
    ));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let err = peer_identity(cert.der()).unwrap_err();
    assert!(matches!(err, Error::MalformedIdentity { .. }), "{err}");
}

#[test]
fn rejects_garbage_certificate() {
    assert!(matches!(
        peer_identity(b"not a certificate"),
        Err(Error::InvalidCertificate(_))
    ));
}

#[test]
fn ca_survives_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let loaded = CertificateAuthority::load(dir.path().join("ca")).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(
        load_certs(dir.path().join("ca/ca.pem")).unwrap()[0].as_ref(),
        ca.cert_der()
    );

    // A certificate issued by the loaded CA chains to the original CA certificate.
    let issued = loaded
        .issue(&agency("000.00.00.H41"), &[], &[], KeyKind::Ed25519, 1)
        .unwrap();
    let roots = lienthong_pki::TrustRoots::from_der([ca.cert_der()]).unwrap();
    let key = lienthong_core::sign::SigningKey::from_pkcs8(&issued.key_der).unwrap();
    let sig = lienthong_core::Signature {
        algorithm: key.algorithm(),
        signer_cert: issued.cert_der.clone(),
        value: key.sign(b"x").unwrap(),
    };
    assert_eq!(
        roots.verify_signer(&sig, b"x").unwrap(),
        agency("000.00.00.H41")
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn refuses_to_overwrite_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    new_ca(dir.path(), "ca");
    let other = CertificateAuthority::generate("other").unwrap();
    let err = other.save(dir.path().join("ca")).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn rejects_world_readable_ca_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    new_ca(dir.path(), "ca");
    let key = dir.path().join("ca/ca.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = CertificateAuthority::load(dir.path().join("ca")).unwrap_err();
    assert!(matches!(err, Error::KeyFileTooOpen { .. }), "{err}");
}

#[test]
fn rejects_ca_key_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    new_ca(dir.path(), "a");
    new_ca(dir.path(), "b");
    std::fs::copy(dir.path().join("b/ca.key"), dir.path().join("a/ca.key")).unwrap();
    let err = CertificateAuthority::load(dir.path().join("a")).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
}

#[test]
fn crl_lists_revoked_serials_and_is_signed_by_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let issued = ca
        .issue(&node("H41"), &[], &[], KeyKind::Ed25519, 1)
        .unwrap();
    let crl_pem = ca.revoke(&[&issued.serial]).unwrap();
    let path = dir.path().join("ca.crl");
    std::fs::write(&path, &crl_pem).unwrap();
    let crls = load_crls(&[&path]).unwrap();
    assert_eq!(crls.len(), 1);

    let (_, crl) = x509_parser::parse_x509_crl(crls[0].as_ref()).unwrap();
    let revoked: Vec<&[u8]> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial())
        .collect();
    assert_eq!(revoked, vec![issued.serial.as_slice()]);
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    crl.verify_signature(ca_cert.public_key()).unwrap();
    assert!(
        crl.extensions()
            .iter()
            .any(|e| matches!(e.parsed_extension(), ParsedExtension::CRLNumber(_)))
    );
}
