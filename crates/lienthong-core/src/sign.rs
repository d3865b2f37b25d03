//! Signing and verification with ring.
//!
//! Keys the project issues are Ed25519 or ECDSA P-256; certificates from government CAs
//! are RSA, so RSA-2048+ PKCS#1 SHA-256 signatures are verified (and can be made from a
//! PKCS#8 RSA key, for tests and for agencies that hold one).

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::Error;

/// The algorithms a lienthong signature may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    Ed25519,
    /// ECDSA over P-256 with SHA-256, signature in ASN.1 DER form.
    EcdsaP256Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    RsaPkcs1Sha256,
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 3] = [
        SignatureAlgorithm::Ed25519,
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::RsaPkcs1Sha256,
    ];

    /// The stable name used on the wire and in canonical bytes.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::Ed25519 => "ed25519",
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SignatureAlgorithm::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
        }
    }

    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| {
                Error::UnsupportedAlgorithm(format!(
                    "{name:?} (supported: ed25519, ecdsa-p256-sha256, rsa-pkcs1-sha256)"
                ))
            })
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signature over some canonical bytes, with the signer's X.509 certificate so that any
/// party holding the CA roots can check who signed.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    pub algorithm: SignatureAlgorithm,
    /// The signer's certificate, DER.
    pub signer_cert: Vec<u8>,
    pub value: Vec<u8>,
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("algorithm", &self.algorithm)
            .field("signer_cert_len", &self.signer_cert.len())
            .field("value", &hex::encode(&self.value))
            .finish()
    }
}

enum KeyPairKind {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key that signs: an agency's or a node's.
pub struct SigningKey {
    pair: KeyPairKind,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.algorithm())
    }
}

impl SigningKey {
    /// Loads a PKCS#8 (DER) private key, detecting Ed25519, ECDSA P-256 or RSA.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let pair = if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            KeyPairKind::Ed25519(k)
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
        {
            KeyPairKind::EcdsaP256(k)
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            KeyPairKind::Rsa(k)
        } else {
            return Err(Error::InvalidKey(
                "not a PKCS#8 Ed25519, ECDSA P-256 or RSA private key".into(),
            ));
        };
        Ok(SigningKey { pair, rng })
    }

    /// A fresh Ed25519 key, returned with its PKCS#8 encoding.
    pub fn generate_ed25519() -> Result<(Self, Vec<u8>), Error> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::InvalidKey("cannot generate an Ed25519 key".into()))?;
        let der = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&der)?, der))
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self.pair {
            KeyPairKind::Ed25519(_) => SignatureAlgorithm::Ed25519,
            KeyPairKind::EcdsaP256(_) => SignatureAlgorithm::EcdsaP256Sha256,
            KeyPairKind::Rsa(_) => SignatureAlgorithm::RsaPkcs1Sha256,
        }
    }

    /// The public key in the form [`verify`] takes: raw Ed25519 key, uncompressed P-256
    /// point, or PKCS#1 `RSAPublicKey` DER — as found in a certificate's SPKI bit string.
    pub fn public_key(&self) -> Vec<u8> {
        match &self.pair {
            KeyPairKind::Ed25519(k) => k.public_key().as_ref().to_vec(),
            KeyPairKind::EcdsaP256(k) => k.public_key().as_ref().to_vec(),
            KeyPairKind::Rsa(k) => k.public_key().as_ref().to_vec(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |_| Error::InvalidKey("signing failed".into());
        Ok(match &self.pair {
            KeyPairKind::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            KeyPairKind::EcdsaP256(k) => k
                .sign(&self.rng, message)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            KeyPairKind::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(failed)?;
                sig
            }
        })
    }
}

/// Verifies `sig` over `message` with `public_key` (in the form of
/// [`SigningKey::public_key`]).
pub fn verify(
    algorithm: SignatureAlgorithm,
    public_key: &[u8],
    message: &[u8],
    sig: &[u8],
) -> Result<(), Error> {
    let alg: &dyn signature::VerificationAlgorithm = match algorithm {
        SignatureAlgorithm::Ed25519 => &signature::ED25519,
        SignatureAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignatureAlgorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
    };
    signature::UnparsedPublicKey::new(alg, public_key)
        .verify(message, sig)
        .map_err(|_| {
            Error::BadSignature(format!(
                "the {algorithm} signature does not match the signed content and key"
            ))
        })
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA-2048 PKCS#8 key, made once with
    /// `openssl genrsa -traditional 2048 | openssl pkcs8 -topk8 -nocrypt -outform DER`,
    /// because ring cannot generate RSA keys.
    const RSA_2048_PKCS8: &[u8] = include_bytes!("../tests/fixtures/rsa2048.pk8");

    fn roundtrip(key: &SigningKey) {
        let msg = b"canonical bytes";
        let sig = key.sign(msg).unwrap();
        verify(key.algorithm(), &key.public_key(), msg, &sig).unwrap();
        let err = verify(key.algorithm(), &key.public_key(), b"other bytes", &sig).unwrap_err();
        assert!(matches!(err, Error::BadSignature(_)), "{err}");
    }

    #[test]
    fn ed25519_signs_and_verifies() {
        roundtrip(&SigningKey::generate_ed25519().unwrap().0);
    }

    #[test]
    fn ecdsa_p256_signs_and_verifies() {
        let rng = SystemRandom::new();
        let der =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = SigningKey::from_pkcs8(der.as_ref()).unwrap();
        assert_eq!(key.algorithm(), SignatureAlgorithm::EcdsaP256Sha256);
        roundtrip(&key);
    }

    #[test]
    fn rsa_2048_sha256_verifies() {
        let key = SigningKey::from_pkcs8(RSA_2048_PKCS8).unwrap();
        assert_eq!(key.algorithm(), SignatureAlgorithm::RsaPkcs1Sha256);
        roundtrip(&key);
    }

    #[test]
    fn rejects_signature_made_with_another_key() {
        let a = SigningKey::generate_ed25519().unwrap().0;
        let b = SigningKey::generate_ed25519().unwrap().0;
        let sig = a.sign(b"x").unwrap();
        assert!(verify(SignatureAlgorithm::Ed25519, &b.public_key(), b"x", &sig).is_err());
    }

    #[test]
    fn rejects_garbage_keys_and_unknown_algorithms() {
        assert!(matches!(
            SigningKey::from_pkcs8(b"nope"),
            Err(Error::InvalidKey(_))
        ));
        assert!(SignatureAlgorithm::parse("rsa-sha1").is_err());
        for a in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::parse(a.as_str()).unwrap(), a);
        }
    }
}
