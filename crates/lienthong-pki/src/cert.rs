//! Reading facts out of a DER certificate: whose it is, its public key, its serial and
//! when it expires.

use lienthong_core::SignatureAlgorithm;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};

use crate::error::{Error, Result};
use crate::identity::{Identity, URI_PREFIX};

fn parse(cert_der: &[u8]) -> Result<X509Certificate<'_>> {
    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::InvalidCertificate(format!("not a DER X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(Error::InvalidCertificate(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// The identity a peer's certificate speaks for: its one SAN URI starting with
/// `urn:lienthong:`.
///
/// This reads the certificate only; call it on certificates the TLS layer (or
/// [`crate::TrustRoots`]) has already verified.
pub fn peer_identity(cert_der: &[u8]) -> Result<Identity> {
    let cert = parse(cert_der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::InvalidCertificate(format!("unreadable subjectAltName ({e})")))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(URI_PREFIX) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(Error::NoIdentity),
        [uri] => Identity::from_uri(uri),
        several => Err(Error::SeveralIdentities(
            several.iter().map(|s| s.to_string()).collect(),
        )),
    }
}

/// The certificate's public key as [`lienthong_core::sign::verify`] takes it (the
/// SubjectPublicKeyInfo bit string), with the signature algorithm that key implies.
pub fn cert_public_key(cert_der: &[u8]) -> Result<(SignatureAlgorithm, Vec<u8>)> {
    let cert = parse(cert_der)?;
    let spki = cert.public_key();
    let oid = &spki.algorithm.algorithm;
    let algorithm = if *oid == OID_SIG_ED25519 {
        SignatureAlgorithm::Ed25519
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(curve) if curve == OID_EC_P256 => SignatureAlgorithm::EcdsaP256Sha256,
            Some(curve) => {
                return Err(Error::UnsupportedKey(format!("elliptic curve {curve}")));
            }
            None => {
                return Err(Error::UnsupportedKey(
                    "elliptic-curve key without a named curve".into(),
                ));
            }
        }
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        SignatureAlgorithm::RsaPkcs1Sha256
    } else {
        return Err(Error::UnsupportedKey(format!("key algorithm {oid}")));
    };
    Ok((algorithm, spki.subject_public_key.data.to_vec()))
}

/// When the certificate stops being valid (notAfter), for expiry warnings.
pub fn cert_not_after(cert_der: &[u8]) -> Result<OffsetDateTime> {
    Ok(parse(cert_der)?.validity().not_after.to_datetime())
}

/// The certificate's serial number, big-endian, as [`crate::CertificateAuthority::revoke`]
/// takes it.
pub fn cert_serial(cert_der: &[u8]) -> Result<Vec<u8>> {
    Ok(parse(cert_der)?.raw_serial().to_vec())
}
