//! Key files as other tools see them: every kind of key file pki writes loads in OpenSSL
//! (`openssl pkey`) and is PKCS#8 v1, and key files written before (ring's Ed25519
//! PKCS#8 v2, SEC1 EC keys) still load for signing and TLS.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{agency, new_ca, node};
use lienthong_pki::files::{Overwrite, portable_pkcs8, write_private_key};
use lienthong_pki::{
    CertificateAuthority, KeyKind, TlsFiles, cert_public_key, client_config, load_signing_key,
    server_config,
};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// Every kind of key file pki writes, saved under `dir`: (what, key file, certificate).
fn every_kind_of_key_file(dir: &Path) -> Vec<(&'static str, PathBuf, PathBuf)> {
    let ca = new_ca(dir, "ca");
    let mut files = vec![(
        "CA key (ECDSA P-256)",
        dir.join("ca/ca.key"),
        dir.join("ca/ca.pem"),
    )];
    for (what, identity, kind, stem) in [
        (
            "node key (ECDSA P-256)",
            node("H41"),
            KeyKind::EcdsaP256,
            "node-p256",
        ),
        (
            "node key (Ed25519)",
            node("H42"),
            KeyKind::Ed25519,
            "node-ed25519",
        ),
        (
            "agency key (Ed25519)",
            agency("000.00.00.H41"),
            KeyKind::Ed25519,
            "agency-ed25519",
        ),
        (
            "agency key (ECDSA P-256)",
            agency("000.00.14.H41"),
            KeyKind::EcdsaP256,
            "agency-p256",
        ),
    ] {
        let issued = ca.issue(&identity, &[], &[], kind, 30).unwrap();
        let (cert, key) = issued.save(dir, stem).unwrap();
        files.push((what, key, cert));
    }
    files
}

/// Runs `openssl` with `args`; `None` when there is no `openssl` to run, which fails the
/// test under `CI=true` (CI must run this check) and skips it elsewhere.
fn openssl(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("openssl").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("the openssl command is not installed, and CI=true needs this check");
            }
            eprintln!("SKIPPED: the openssl command is not installed ({e})");
            None
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

#[test]
fn openssl_loads_every_kind_of_key_file_pki_writes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(version) = openssl(&["version"]) else {
        return;
    };
    println!("{}", text(&version.stdout));
    for (what, key, cert) in every_kind_of_key_file(dir.path()) {
        let key = key.to_str().unwrap();
        let loaded = openssl(&["pkey", "-in", key, "-noout"]).unwrap();
        assert!(
            loaded.status.success(),
            "openssl pkey -in {key} -noout ({what}) failed: {}",
            text(&loaded.stderr)
        );
        // The key openssl reads is the certificate's.
        let public = openssl(&["pkey", "-in", key, "-pubout"]).unwrap();
        let in_cert =
            openssl(&["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout"]).unwrap();
        assert!(public.status.success() && in_cert.status.success());
        assert_eq!(
            text(&public.stdout),
            text(&in_cert.stdout),
            "{what}: the public key of {key} is not its certificate's"
        );
        println!("ok   openssl pkey -in {key} -noout: {what}, the certificate's key");
    }
}

/// The version field of a PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey`.
fn pkcs8_version(der: &[u8]) -> u8 {
    assert_eq!(der[0], 0x30, "a SEQUENCE");
    let header = match der[1] {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    assert_eq!(
        &der[header..header + 2],
        &[0x02, 0x01],
        "a one-byte INTEGER"
    );
    der[header + 2]
}

#[test]
fn every_key_file_is_pkcs8_v1() {
    let dir = tempfile::tempdir().unwrap();
    for (what, key, _) in every_kind_of_key_file(dir.path()) {
        let pem = std::fs::read(&key).unwrap();
        assert!(
            pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"),
            "{what}: {}",
            text(&pem)
        );
        let der = PrivateKeyDer::from_pem_slice(&pem).unwrap();
        let PrivateKeyDer::Pkcs8(der) = der else {
            panic!("{what}: not PKCS#8");
        };
        assert_eq!(
            pkcs8_version(der.secret_pkcs8_der()),
            0,
            "{what}: PKCS#8 v1"
        );
        // Readable by its owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{what}");
        }
    }
    // What `issue` hands back is the same form.
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let issued = ca
        .issue(&agency("000.00.00.H41"), &[], &[], KeyKind::Ed25519, 1)
        .unwrap();
    assert_eq!(pkcs8_version(&issued.key_der), 0);
    assert_eq!(
        issued.key_der.len(),
        48,
        "RFC 8410: version, algorithm, seed"
    );
}

#[test]
fn ring_ed25519_pkcs8_v2_becomes_v1_with_the_same_key() {
    let rng = ring::rand::SystemRandom::new();
    let v2 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    assert_eq!(pkcs8_version(v2.as_ref()), 1, "ring writes v2");
    let v1 = portable_pkcs8(v2.as_ref());
    assert_eq!(pkcs8_version(&v1), 0);
    let from_v1 = lienthong_core::sign::SigningKey::from_pkcs8(&v1).unwrap();
    let from_v2 = lienthong_core::sign::SigningKey::from_pkcs8(v2.as_ref()).unwrap();
    assert_eq!(from_v1.public_key(), from_v2.public_key());
    // Keys already v1 pass unchanged, ECDSA ones included.
    assert_eq!(portable_pkcs8(&v1), v1);
    let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &rng,
    )
    .unwrap();
    assert_eq!(portable_pkcs8(p256.as_ref()).as_ref(), p256.as_ref());
}

/// `key` rewritten in the form lienthong wrote before: ring's Ed25519 PKCS#8 v2, with the
/// public key of `cert`.
fn rewrite_as_pkcs8_v2(key: &Path, cert: &Path) {
    let pem = std::fs::read(key).unwrap();
    let PrivateKeyDer::Pkcs8(v1) = PrivateKeyDer::from_pem_slice(&pem).unwrap() else {
        panic!("not PKCS#8");
    };
    let seed = &v1.secret_pkcs8_der()[16..48];
    let cert_der = lienthong_pki::load_certs(cert).unwrap().remove(0);
    let (_, public) = cert_public_key(&cert_der).unwrap();
    let mut v2 = vec![
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v2.extend_from_slice(seed);
    v2.extend_from_slice(&[0x81, 0x21, 0x00]);
    v2.extend_from_slice(&public);
    let old = pem::encode(&pem::Pem::new("PRIVATE KEY", v2));
    std::fs::write(key, old).unwrap();
}

/// `key` (PKCS#8 P-256) rewritten as a SEC1 `EC PRIVATE KEY`.
fn rewrite_as_sec1(key: &Path) {
    let pem = std::fs::read(key).unwrap();
    let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(&pem).unwrap() else {
        panic!("not PKCS#8");
    };
    // The privateKey OCTET STRING of a P-256 PrivateKeyInfo holds the SEC1 structure.
    let der = der.secret_pkcs8_der();
    let sec1 = &der[der.len() - 109..];
    assert_eq!(&sec1[..2], &[0x30, 0x6b], "SEC1 ECPrivateKey");
    std::fs::write(key, pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1))).unwrap();
}

#[test]
fn key_files_written_before_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let files = every_kind_of_key_file(dir.path());
    let (_, node_key, node_cert) = files[1].clone();
    let (_, agency_key, agency_cert) = files[3].clone();
    rewrite_as_sec1(&node_key);
    rewrite_as_pkcs8_v2(&agency_key, &agency_cert);
    assert_eq!(
        pkcs8_version(
            PrivateKeyDer::from_pem_slice(&std::fs::read(&agency_key).unwrap())
                .unwrap()
                .secret_der()
        ),
        1
    );

    // Signing with the old agency key: the signature verifies with the certificate's key.
    let key = load_signing_key(&agency_key).unwrap();
    let cert_der = lienthong_pki::load_certs(&agency_cert).unwrap().remove(0);
    let (algorithm, public) = cert_public_key(&cert_der).unwrap();
    let signature = key.sign(b"canonical bytes").unwrap();
    lienthong_core::sign::verify(algorithm, &public, b"canonical bytes", &signature).unwrap();

    // TLS with both: rustls checks that each key matches its certificate.
    let ca = dir.path().join("ca/ca.pem");
    let tls = |cert: &Path, key: &Path| TlsFiles {
        ca: ca.clone(),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        crls: Vec::new(),
    };
    server_config(&tls(&node_cert, &node_key)).unwrap();
    client_config(&tls(&agency_cert, &agency_key), None).unwrap();

    // Writing a key again writes the portable form.
    let der = PrivateKeyDer::from_pem_slice(&std::fs::read(&agency_key).unwrap()).unwrap();
    write_private_key(&agency_key, der.secret_der(), Overwrite::Replace).unwrap();
    let again = PrivateKeyDer::from_pem_slice(&std::fs::read(&agency_key).unwrap()).unwrap();
    assert_eq!(pkcs8_version(again.secret_der()), 0);
    assert_eq!(
        load_signing_key(&agency_key).unwrap().public_key(),
        key.public_key()
    );
}
