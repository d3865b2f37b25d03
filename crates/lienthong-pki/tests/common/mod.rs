//! Shared fixtures: a CA in a temp dir and certificates issued into it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use lienthong_core::{AgencyCode, NodeId};
use lienthong_pki::{CertificateAuthority, Identity, IssuedCert, KeyKind, TlsFiles};

pub fn node(id: &str) -> Identity {
    Identity::Node(NodeId::parse(id).unwrap())
}

pub fn agency(code: &str) -> Identity {
    Identity::Agency(AgencyCode::parse(code).unwrap())
}

/// A CA saved under `<dir>/<name>/`.
pub fn new_ca(dir: &Path, name: &str) -> CertificateAuthority {
    let ca = CertificateAuthority::generate(&format!("lienthong test CA {name}")).unwrap();
    ca.save(dir.join(name)).unwrap();
    ca
}

/// Issues a certificate for `identity` (DNS `localhost`, IP 127.0.0.1) and saves it as
/// `<dir>/<stem>.{pem,key}`; returns the TLS files that trust `<dir>/<ca_name>/ca.pem`.
pub fn issue_files(
    dir: &Path,
    ca: &CertificateAuthority,
    ca_name: &str,
    identity: &Identity,
    stem: &str,
) -> (TlsFiles, IssuedCert) {
    let issued = ca
        .issue(
            identity,
            &["localhost".to_string()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            KeyKind::Ed25519,
            30,
        )
        .unwrap();
    let (cert, key) = issued.save(dir, stem).unwrap();
    let files = TlsFiles {
        ca: dir.join(ca_name).join("ca.pem"),
        cert,
        key,
        crls: Vec::new(),
    };
    (files, issued)
}
