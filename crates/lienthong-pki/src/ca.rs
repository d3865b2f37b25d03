//! The certificate authority that mints node and agency certificates and signs CRLs. A dev
//! cluster mints its own; production uses the same code with the CA key kept offline.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use time::{Duration, OffsetDateTime};

use crate::cert::cert_public_key;
use crate::error::{Error, Result};
use crate::files::{
    Overwrite, load_certs, parse_private_key, portable_pkcs8, private_key_pem, read_private,
    write_file, write_private_key,
};
use crate::identity::Identity;
use crate::revocation::{Reason, Revocation};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a CA made by [`CertificateAuthority::generate`] is valid.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a CRL made by [`CertificateAuthority::revoke`] says it is current (its
/// nextUpdate). Verifiers here do not reject stale CRLs; this is advisory.
pub const CRL_VALIDITY_DAYS: i64 = 30;
/// Certificates start being valid this long before they are made, so that a peer whose
/// clock is a little behind accepts a fresh certificate.
const BACKDATE: Duration = Duration::minutes(5);

/// The key type of an issued certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Fast and small; the default for nodes and agencies.
    Ed25519,
    /// For peers whose software cannot handle Ed25519.
    EcdsaP256,
}

/// A lienthong certificate authority: its certificate and signing key.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The issuer's own Debug elides the private key.
        f.debug_struct("CertificateAuthority")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A certificate freshly issued by the CA, with its private key.
#[derive(Clone)]
pub struct IssuedCert {
    pub identity: Identity,
    /// Serial number, big-endian, as [`CertificateAuthority::revoke`] takes it.
    pub serial: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 v1 PEM, as [`IssuedCert::save`] writes it (see
    /// [`crate::files::portable_pkcs8`]).
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8 v1 DER, as [`lienthong_core::sign::SigningKey::from_pkcs8`] takes it.
    pub key_der: Vec<u8>,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("identity", &self.identity)
            .field("serial", &hex_string(&self.serial))
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// Writes `<dir>/<stem>.pem` (0644) and `<dir>/<stem>.key` (0600), each atomically, and
    /// returns their paths (certificate, key).
    pub fn save(&self, dir: impl AsRef<Path>, stem: &str) -> Result<(PathBuf, PathBuf)> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        write_private_key(&key_path, &self.key_der, Overwrite::Replace)?;
        write_file(
            &cert_path,
            self.cert_pem.as_bytes(),
            false,
            Overwrite::Replace,
        )?;
        Ok((cert_path, key_path))
    }
}

impl CertificateAuthority {
    /// A new self-signed CA: ECDSA P-256, valid for [`CA_VALIDITY_DAYS`], allowed to sign
    /// certificates and CRLs.
    pub fn generate(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial()?.into());
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Writes `ca.pem` and `ca.key` (0600) into `dir`, creating it; refuses to replace an
    /// existing CA there.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        for path in [&key_path, &cert_path] {
            if path.exists() {
                return Err(Error::AlreadyExists { path: path.clone() });
            }
        }
        write_private_key(
            &key_path,
            &self.issuer.key().serialize_der(),
            Overwrite::Refuse,
        )?;
        write_file(
            &cert_path,
            self.cert_pem.as_bytes(),
            false,
            Overwrite::Refuse,
        )
    }

    /// Loads a CA saved by [`CertificateAuthority::save`]; the key file must be readable by
    /// its owner only and must match the certificate.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_der = load_certs(&cert_path)?.remove(0);
        let key_bytes = read_private(&key_path)?;
        let key = KeyPair::try_from(&parse_private_key(&key_path, &key_bytes)?)?;
        let (_, cert_key) = cert_public_key(&cert_der)?;
        if key.public_key_raw() != cert_key.as_slice() {
            return Err(Error::KeyMismatch {
                path: key_path,
                cert: cert_path,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(CertificateAuthority {
            cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert_der.to_vec())),
            cert_der: cert_der.to_vec(),
            issuer,
        })
    }

    /// The CA certificate, PEM: the trust root every node and agency is configured with.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues a certificate for `identity` with a fresh key and a random serial.
    ///
    /// - A node certificate carries the identity URI plus `dns_names` and `ip_addrs` as
    ///   SANs, and may be used as TLS server and client (EKU serverAuth + clientAuth).
    /// - An agency certificate carries the identity URI (and any `dns_names` / `ip_addrs`
    ///   given), is a TLS client only (EKU clientAuth), and its key also signs the
    ///   agency's documents.
    ///
    /// Both have key usage digitalSignature.
    pub fn issue(
        &self,
        identity: &Identity,
        dns_names: &[String],
        ip_addrs: &[IpAddr],
        key: KeyKind,
        validity_days: u32,
    ) -> Result<IssuedCert> {
        if validity_days == 0 {
            return Err(Error::InvalidCertificate(
                "a certificate must be valid for at least 1 day".into(),
            ));
        }
        let key = KeyPair::generate_for(match key {
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
            KeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        })?;
        let serial = random_serial()?;
        let now = OffsetDateTime::now_utc();

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let common_name = match identity {
            Identity::Node(id) => format!("lienthong node {id}"),
            Identity::Agency(code) => format!("lienthong agency {code}"),
        };
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(i64::from(validity_days));
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match identity {
            Identity::Node(_) => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Identity::Agency(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let uri = identity.to_uri().try_into()?;
        params.subject_alt_names.push(SanType::URI(uri));
        for name in dns_names {
            let name = name.as_str().try_into().map_err(|_| {
                Error::InvalidCertificate(format!(
                    "DNS name {name:?} is not ASCII; give internationalised names in punycode (xn--...)"
                ))
            })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(ip_addrs.iter().copied().map(SanType::IpAddress));

        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = portable_pkcs8(&key.serialize_der()).into_owned();
        Ok(IssuedCert {
            identity: identity.clone(),
            serial,
            cert_pem: cert.pem(),
            key_pem: private_key_pem(&key_der),
            cert_der: cert.der().to_vec(),
            key_der,
        })
    }

    /// A one-off CRL, PEM, signed by this CA, listing `serials` (big-endian, as in
    /// [`IssuedCert::serial`] or [`crate::cert_serial`]) as revoked now, numbered with the
    /// current Unix time. It lists only these serials: to revoke for real, use
    /// [`crate::revocation::revoke`], which keeps every revocation of the CA in its
    /// database and issues each CRL from all of them.
    pub fn revoke<S: AsRef<[u8]>>(&self, serials: &[S]) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let entries: Vec<Revocation> = serials
            .iter()
            .map(|s| Revocation {
                serial: s.as_ref().to_vec(),
                revoked_at: now,
                reason: Reason::Unspecified,
            })
            .collect();
        self.crl(&entries, now.unix_timestamp().unsigned_abs())
    }

    /// A CRL, PEM, signed by this CA now, listing `revoked` with their times and reasons,
    /// with CRL number `number` (which a newer CRL must exceed).
    pub fn crl(&self, revoked: &[Revocation], number: u64) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(CRL_VALIDITY_DAYS),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: r.revoked_at,
                    reason_code: Some(r.reason.to_crl()),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// 16 random bytes, positive and without a leading zero byte so that the DER INTEGER
/// encodes exactly these bytes.
fn random_serial() -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(bytes)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

pub(crate) fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
