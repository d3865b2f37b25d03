//! XML-DSig on edXML messages: verifying the enveloped `Signature` a DMS put in the
//! header (RSA-SHA1 legacy and RSA-SHA256, with ring; the key from `X509Certificate`),
//! and signing a message the same way.
//!
//! What is checked: each `Reference` (`URI=""` for the whole message, or `#id`), its
//! transforms (enveloped-signature, C14N 1.0 and exclusive C14N), its digest (SHA-1 or
//! SHA-256), then the `SignatureValue` over the canonical `SignedInfo`. Whether the
//! certificate is trusted (its chain to a government CA, revocation) is not decided here.

use std::io::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::c14n::{self, Method};
use crate::dom::{self, DSIG_NS, Element, Node, XmlElement};
use crate::error::Error;
use crate::limits::{Limits, MAX_SIGNATURE_REFERENCES};
use crate::model::Message;

/// The outcome of checking a message's XML-DSig signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The message carries no `Signature`.
    Absent,
    /// The signature matches the content and the certificate's key.
    Verified {
        /// `rsa-sha1` or `rsa-sha256`.
        algorithm: String,
        /// The certificate's subject.
        signer: String,
    },
    /// The signature is present and does not verify, with the reason.
    Failed { reason: String },
}

/// XML-DSig signature algorithms lienthong verifies and makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureMethod {
    /// `http://www.w3.org/2000/09/xmldsig#rsa-sha1` — legacy, still what most DMSs send.
    RsaSha1,
    /// `http://www.w3.org/2001/04/xmldsig-more#rsa-sha256`.
    RsaSha256,
}

const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";

impl SignatureMethod {
    pub fn uri(self) -> &'static str {
        match self {
            SignatureMethod::RsaSha1 => RSA_SHA1,
            SignatureMethod::RsaSha256 => RSA_SHA256,
        }
    }
    fn name(self) -> &'static str {
        match self {
            SignatureMethod::RsaSha1 => "rsa-sha1",
            SignatureMethod::RsaSha256 => "rsa-sha256",
        }
    }
    fn digest_uri(self) -> &'static str {
        match self {
            SignatureMethod::RsaSha1 => SHA1,
            SignatureMethod::RsaSha256 => SHA256,
        }
    }
}

pub(crate) fn is_signature(e: &Element<'_>) -> bool {
    e.local == "Signature"
        && (e.ns.as_deref() == Some(DSIG_NS) || dom::is_edxml_ns(e.ns.as_deref()))
        && e.elements().any(|c| c.local == "SignedInfo")
}

/// A child by local name, in any namespace (signatures in the wild are not always in the
/// XML-DSig namespace).
fn child<'e, 'a>(e: &'e Element<'a>, local: &str) -> Option<&'e Element<'a>> {
    e.elements().find(|c| c.local == local)
}

fn b64(text: &str) -> Result<Vec<u8>, String> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(clean).map_err(|e| e.to_string())
}

/// Verifies the XML-DSig signature of the message in `input` (the bytes as received:
/// a signature covers them, not lienthong's model of them).
pub fn verify_signature(input: &[u8]) -> SignatureCheck {
    let root = match dom::read(input, Limits::INPUT) {
        Ok(r) => r,
        Err(e) => {
            return SignatureCheck::Failed {
                reason: format!("the message cannot be read: {e}"),
            };
        }
    };
    let Some(sig) = root.find(&is_signature) else {
        return SignatureCheck::Absent;
    };
    match verify_element(&root, sig) {
        Ok((method, signer)) => SignatureCheck::Verified {
            algorithm: method.name().to_string(),
            signer,
        },
        Err(reason) => SignatureCheck::Failed { reason },
    }
}

struct DigestSink(ring::digest::Context);

impl Write for DigestSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn digest_algorithm(uri: &str) -> Result<&'static ring::digest::Algorithm, String> {
    match uri.trim() {
        SHA1 => Ok(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        SHA256 => Ok(&ring::digest::SHA256),
        other => Err(format!(
            "unsupported DigestMethod {other:?} (supported: sha1, sha256)"
        )),
    }
}

/// The digest of what `reference` points at, after its transforms.
fn reference_digest(
    root: &Element<'_>,
    sig: &Element<'_>,
    reference: &Element<'_>,
    alg: &'static ring::digest::Algorithm,
) -> Result<Vec<u8>, String> {
    let uri = reference.attr("URI").unwrap_or("");
    let apex = if uri.is_empty() {
        root
    } else if let Some(id) = uri.strip_prefix('#') {
        root.find(&|e| {
            e.attrs
                .iter()
                .any(|a| matches!(a.local.as_str(), "Id" | "ID" | "id") && a.value == id)
        })
        .ok_or_else(|| format!("Reference URI {uri:?} names no element of the message"))?
    } else {
        return Err(format!(
            "Reference URI {uri:?} points outside the message; only \"\" and \"#id\" are supported"
        ));
    };
    let mut method = Method::Inclusive { comments: false };
    let mut exclude = None;
    if let Some(transforms) = child(reference, "Transforms") {
        for t in transforms.elements().filter(|t| t.local == "Transform") {
            let a = t.attr("Algorithm").unwrap_or("");
            if a.trim() == ENVELOPED {
                exclude = Some(sig);
            } else if let Some(mut m) = Method::from_uri(a) {
                if let (Method::Exclusive { prefixes, .. }, Some(inc)) =
                    (&mut m, child(t, "InclusiveNamespaces"))
                {
                    *prefixes = inc
                        .attr("PrefixList")
                        .unwrap_or("")
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                }
                method = m;
            } else {
                return Err(format!("unsupported Transform {a:?}"));
            }
        }
    }
    // A `#id` reference without comments; `""` never includes comments either.
    let (Method::Inclusive { comments } | Method::Exclusive { comments, .. }) = &mut method;
    *comments = *comments && !uri.is_empty();
    let scope = dom::in_scope_at(root, apex);
    let mut sink = DigestSink(ring::digest::Context::new(alg));
    c14n::canonicalize(&mut sink, apex, &scope, exclude, &method).map_err(|e| e.to_string())?;
    Ok(sink.0.finish().as_ref().to_vec())
}

fn verify_element(
    root: &Element<'_>,
    sig: &Element<'_>,
) -> Result<(SignatureMethod, String), String> {
    let signed_info = child(sig, "SignedInfo").ok_or("the Signature has no SignedInfo")?;
    let c14n_uri = child(signed_info, "CanonicalizationMethod")
        .and_then(|e| e.attr("Algorithm"))
        .ok_or("SignedInfo has no CanonicalizationMethod")?;
    let c14n_method = Method::from_uri(c14n_uri)
        .ok_or_else(|| format!("unsupported CanonicalizationMethod {c14n_uri:?}"))?;
    let method_uri = child(signed_info, "SignatureMethod")
        .and_then(|e| e.attr("Algorithm"))
        .ok_or("SignedInfo has no SignatureMethod")?;
    let method = match method_uri.trim() {
        RSA_SHA1 => SignatureMethod::RsaSha1,
        RSA_SHA256 => SignatureMethod::RsaSha256,
        other => {
            return Err(format!(
                "unsupported SignatureMethod {other:?} (supported: rsa-sha1, rsa-sha256)"
            ));
        }
    };
    let references: Vec<_> = signed_info
        .elements()
        .filter(|e| e.local == "Reference")
        .collect();
    if references.is_empty() {
        return Err("SignedInfo has no Reference: the signature covers nothing".into());
    }
    if references.len() > MAX_SIGNATURE_REFERENCES {
        return Err(format!(
            "SignedInfo has {} References, more than the {MAX_SIGNATURE_REFERENCES} lienthong verifies: a DMS signs a message with one to three",
            references.len()
        ));
    }
    for (i, r) in references.iter().enumerate() {
        let alg = digest_algorithm(
            child(r, "DigestMethod")
                .and_then(|e| e.attr("Algorithm"))
                .unwrap_or(""),
        )?;
        let expected = b64(&child(r, "DigestValue")
            .map(|e| e.text())
            .unwrap_or_default())
        .map_err(|e| format!("DigestValue of Reference #{} is not base64: {e}", i + 1))?;
        let actual = reference_digest(root, sig, r, alg)?;
        if actual != expected {
            return Err(format!(
                "the digest of the signed content does not match DigestValue of Reference #{}: the message was changed after it was signed",
                i + 1
            ));
        }
    }
    let cert_text = child(sig, "KeyInfo")
        .and_then(|k| child(k, "X509Data"))
        .and_then(|x| child(x, "X509Certificate"))
        .map(|c| c.text())
        .filter(|t| !t.is_empty())
        .ok_or("the Signature has no KeyInfo/X509Data/X509Certificate to verify it with")?;
    let cert_der = b64(&cert_text).map_err(|e| format!("X509Certificate is not base64: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| format!("X509Certificate is not a readable X.509 certificate: {e}"))?;
    let signer = cert.subject().to_string();
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err(format!(
            "the certificate of {signer} holds a {} key, not RSA",
            spki.algorithm.algorithm.to_id_string()
        ));
    }
    let mut canonical = Vec::new();
    c14n::canonicalize(
        &mut canonical,
        signed_info,
        &dom::in_scope_at(root, signed_info),
        None,
        &c14n_method,
    )
    .map_err(|e| e.to_string())?;
    let value = b64(&child(sig, "SignatureValue")
        .map(|e| e.text())
        .unwrap_or_default())
    .map_err(|e| format!("SignatureValue is not base64: {e}"))?;
    let alg: &dyn ring::signature::VerificationAlgorithm = match method {
        SignatureMethod::RsaSha1 => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        SignatureMethod::RsaSha256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
    };
    ring::signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(&canonical, &value)
        .map_err(|_| {
            format!(
                "SignatureValue does not verify with the key of {signer} ({}; RSA keys of 2048 to 8192 bits)",
                method.name()
            )
        })?;
    Ok((method, signer))
}

fn el(local: &str) -> XmlElement {
    Element::new(Some(DSIG_NS), None, local)
}

fn with_attr(mut e: XmlElement, name: &str, value: &str) -> XmlElement {
    e.attrs.push(dom::Attribute {
        prefix: None,
        local: name.to_string(),
        ns: None,
        value: value.to_string(),
    });
    e
}

fn with(mut e: XmlElement, children: Vec<XmlElement>) -> XmlElement {
    e.children = children.into_iter().map(Node::Element).collect();
    e
}

fn with_text(mut e: XmlElement, text: &str) -> XmlElement {
    e.children = vec![Node::Text(text.to_string().into())];
    e
}

/// Makes an RSA PKCS#1 v1.5 signature of the given bytes, or says why it cannot.
pub type RsaSigner<'s> = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + 's;

const DIGEST_SLOT: &str = "lienthong-edxml-digest-slot";
const SIGNATURE_SLOT: &str = "lienthong-edxml-signature-slot";

/// Signs `message` with an enveloped XML-DSig signature (C14N 1.0, `Reference URI=""`)
/// and returns the signed bytes. `sign` makes the RSA PKCS#1 v1.5 signature of the bytes
/// it is given with the hash of `method`; `certificate` (DER) names the signer's key. Any
/// signature the message already has is replaced. Attachments must hold their content.
pub fn sign(
    message: &Message,
    method: SignatureMethod,
    certificate: &[u8],
    sign: &RsaSigner<'_>,
) -> Result<Vec<u8>, Error> {
    let template = with(
        el("Signature"),
        vec![
            with(
                el("SignedInfo"),
                vec![
                    with_attr(el("CanonicalizationMethod"), "Algorithm", C14N),
                    with_attr(el("SignatureMethod"), "Algorithm", method.uri()),
                    with(
                        with_attr(el("Reference"), "URI", ""),
                        vec![
                            with(
                                el("Transforms"),
                                vec![with_attr(el("Transform"), "Algorithm", ENVELOPED)],
                            ),
                            with_attr(el("DigestMethod"), "Algorithm", method.digest_uri()),
                            with_text(el("DigestValue"), DIGEST_SLOT),
                        ],
                    ),
                ],
            ),
            with_text(el("SignatureValue"), SIGNATURE_SLOT),
            with(
                el("KeyInfo"),
                vec![with(
                    el("X509Data"),
                    vec![with_text(
                        el("X509Certificate"),
                        &STANDARD.encode(certificate),
                    )],
                )],
            ),
        ],
    );
    let mut m = message.clone();
    match &mut m {
        Message::Document(d) => d.signature = Some(template),
        Message::Status(s) => s.signature = Some(template),
    }
    let unsigned = crate::write::write(&m)?;
    let fill = |bytes: &[u8], slot: &str, value: &str| -> Result<Vec<u8>, Error> {
        let at = bytes
            .windows(slot.len())
            .position(|w| w == slot.as_bytes())
            .ok_or_else(|| Error::Sign("the signature template was not written".into()))?;
        let mut out = bytes[..at].to_vec();
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(&bytes[at + slot.len()..]);
        Ok(out)
    };
    let digest = {
        let root = dom::read(&unsigned, Limits::WRITTEN)?;
        let sig = root
            .find(&is_signature)
            .ok_or_else(|| Error::Sign("the signature template was not written".into()))?;
        let alg = digest_algorithm(method.digest_uri()).map_err(Error::Sign)?;
        let reference =
            child(child(sig, "SignedInfo").expect("template"), "Reference").expect("template");
        reference_digest(&root, sig, reference, alg).map_err(Error::Sign)?
    };
    let with_digest = fill(&unsigned, DIGEST_SLOT, &STANDARD.encode(digest))?;
    let value = {
        let root = dom::read(&with_digest, Limits::WRITTEN)?;
        let sig = root.find(&is_signature).expect("written above");
        let si = child(sig, "SignedInfo").expect("template");
        let mut canonical = Vec::new();
        c14n::canonicalize(
            &mut canonical,
            si,
            &dom::in_scope_at(&root, si),
            None,
            &Method::Inclusive { comments: false },
        )?;
        sign(&canonical).map_err(Error::Sign)?
    };
    fill(&with_digest, SIGNATURE_SLOT, &STANDARD.encode(value))
}
