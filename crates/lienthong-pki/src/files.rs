//! Key, certificate and CRL files (PEM). Private keys are refused when group or others can
//! read them, and are written with mode 0600, in the PKCS#8 form every common tool loads
//! ([`write_private_key`]); every form written before still loads.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use lienthong_core::sign::SigningKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// Parses the private key in the PEM `bytes` read from `path`.
pub(crate) fn parse_private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => Error::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => pem_error(path, e),
    })
}

/// Reads a private key file after checking that only its owner can read it.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    // Check the opened file, not the path, so the file checked is the file read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(read_err)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFileTooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_err)?;
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, e: pem::Error) -> Error {
    Error::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Loads the private key (PKCS#8 v1 or v2, or PKCS#1 / SEC1) from a PEM file that only its owner
/// can read.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    parse_private_key(path, &read_private(path)?)
}

/// Loads a PKCS#8 private key (v1 or v2) for signing documents, receipts and trace
/// entries, from a PEM file that only its owner can read.
pub fn load_signing_key(path: impl AsRef<Path>) -> Result<SigningKey> {
    let path = path.as_ref();
    let invalid = |source| Error::InvalidSigningKey {
        path: path.to_path_buf(),
        source,
    };
    match load_private_key(path)? {
        PrivateKeyDer::Pkcs8(der) => {
            SigningKey::from_pkcs8(der.secret_pkcs8_der()).map_err(invalid)
        }
        _ => Err(invalid(lienthong_core::Error::InvalidKey(
            "the key is not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
        ))),
    }
}

/// Loads every certificate of a PEM file, in file order; fails when there is none.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Loads the certificate revocation lists of several PEM files; each file must hold at
/// least one.
pub fn load_crls<P: AsRef<Path>>(
    paths: &[P],
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let mut crls = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = read(path)?;
        let found = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(path, e))?;
        if found.is_empty() {
            return Err(Error::NoCrl {
                path: path.to_path_buf(),
            });
        }
        crls.extend(found);
    }
    Ok(crls)
}

/// ring (and rcgen with it) encodes an Ed25519 key as PKCS#8 v2: RFC 5958 version 1 with
/// the public key in `[1]`. These are the bytes around the 32-byte seed and the 32-byte
/// public key in that encoding (ring's `ed25519_pkcs8_v2_template.der`).
const ED25519_V2_HEAD: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_V2_PUBLIC_KEY_TAG: [u8; 3] = [0x81, 0x21, 0x00];
/// An Ed25519 key as PKCS#8 v1 (RFC 8410 section 7: version 0, the seed only), before
/// its 32-byte seed.
const ED25519_V1_HEAD: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The PKCS#8 DER of a private key in the form OpenSSL 3.0 (`openssl pkey`), Python
/// `cryptography`, grpcio and ring all load: PKCS#8 v1. OpenSSL 3.0 and `cryptography`
/// refuse ring's Ed25519 PKCS#8 v2, so an Ed25519 key in that form is re-encoded as v1
/// (the public key is derived from the seed by whoever loads it); every other key —
/// ECDSA P-256 and RSA keys as ring and rcgen write them are v1 already — is returned
/// unchanged.
pub fn portable_pkcs8(der: &[u8]) -> Cow<'_, [u8]> {
    let seed = 16..48;
    if der.len() == 83 && der[..16] == ED25519_V2_HEAD && der[48..51] == ED25519_V2_PUBLIC_KEY_TAG {
        let mut v1 = ED25519_V1_HEAD.to_vec();
        v1.extend_from_slice(&der[seed]);
        Cow::Owned(v1)
    } else {
        Cow::Borrowed(der)
    }
}

/// The PEM (`PRIVATE KEY`, `\n` line endings) of a PKCS#8 key, in its
/// [`portable_pkcs8`] form.
pub fn private_key_pem(pkcs8_der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new("PRIVATE KEY", portable_pkcs8(pkcs8_der).into_owned()),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// Writes a private key file: the PKCS#8 key `pkcs8_der` as [`private_key_pem`], mode
/// 0600, atomically. Every key file lienthong writes is written here.
pub fn write_private_key(path: &Path, pkcs8_der: &[u8], overwrite: Overwrite) -> Result<()> {
    write_file(path, private_key_pem(pkcs8_der).as_bytes(), true, overwrite)
}

/// How [`write_file`] treats an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    Replace,
    Refuse,
}

/// Writes `contents` to `path` atomically (temp file in the same directory, fsync,
/// rename), so a node reloading its files never sees half a key. A private file is
/// created with mode 0600 and never exists with wider permissions; others get 0644.
pub(crate) fn write_file(
    path: &Path,
    contents: &[u8],
    private: bool,
    overwrite: Overwrite,
) -> Result<()> {
    let write_err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // NamedTempFile creates its file with mode 0600.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(write_err)?;
    tmp.write_all(contents).map_err(write_err)?;
    #[cfg(unix)]
    if !private {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(write_err)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.as_file().sync_all().map_err(write_err)?;
    match overwrite {
        Overwrite::Replace => tmp.persist(path).map(drop).map_err(|e| write_err(e.error)),
        Overwrite::Refuse => tmp.persist_noclobber(path).map(drop).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::AlreadyExists {
                    path: path.to_path_buf(),
                }
            } else {
                write_err(e.error)
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn key_file(dir: &Path) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let path = dir.join("node.key");
        write_file(
            &path,
            key.serialize_pem().as_bytes(),
            true,
            Overwrite::Replace,
        )
        .unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn rejects_world_readable_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        set_mode(&path, 0o644);
        let err = load_private_key(&path).unwrap_err();
        assert!(
            matches!(err, Error::KeyFileTooOpen { mode: 0o644, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("mode 0644"), "{msg}");
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        assert!(matches!(
            load_signing_key(&path),
            Err(Error::KeyFileTooOpen { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn rejects_group_readable_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        set_mode(&path, 0o640);
        assert!(matches!(
            load_private_key(&path),
            Err(Error::KeyFileTooOpen { mode: 0o640, .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn accepts_owner_only_private_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "written keys are owner-only");
        assert!(matches!(
            load_private_key(&path).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        set_mode(&path, 0o400);
        load_private_key(&path).unwrap();
        let key = load_signing_key(&path).unwrap();
        assert_eq!(
            key.algorithm(),
            lienthong_core::SignatureAlgorithm::EcdsaP256Sha256
        );
    }

    #[test]
    fn rejects_file_without_certificate_or_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        write_file(&path, b"not pem at all\n", true, Overwrite::Replace).unwrap();
        assert!(matches!(
            load_certs(&path),
            Err(Error::NoCertificate { .. })
        ));
        assert!(matches!(
            load_private_key(&path),
            Err(Error::NoPrivateKey { .. })
        ));
        assert!(matches!(load_crls(&[&path]), Err(Error::NoCrl { .. })));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(load_certs(&missing), Err(Error::Read { .. })));
    }

    #[test]
    fn refuses_to_overwrite_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        write_file(&path, b"one", true, Overwrite::Refuse).unwrap();
        let err = write_file(&path, b"two", true, Overwrite::Refuse).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
    }
}
