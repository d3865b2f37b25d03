//! XML-DSig: verifying signatures made by an independent signer (openssl, committed
//! fixture) and by `sign`, and failing cleanly, with the reason, on everything else.

use lienthong_edxml::{Message, SignatureCheck, SignatureMethod, parse, sign, verify_signature};

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The RSA-2048 key of lienthong-core's tests; `signer.der` is its self-signed certificate.
const RSA_2048_PKCS8: &[u8] = include_bytes!("../../lienthong-core/tests/fixtures/rsa2048.pk8");

fn ring_rsa_sha256(data: &[u8]) -> Result<Vec<u8>, String> {
    let key =
        lienthong_core::sign::SigningKey::from_pkcs8(RSA_2048_PKCS8).map_err(|e| e.to_string())?;
    key.sign(data).map_err(|e| e.to_string())
}

fn signed_sha256() -> Vec<u8> {
    let m = parse(&fixture("edoc_new.edxml")).unwrap();
    sign(
        &m,
        SignatureMethod::RsaSha256,
        &fixture("signer.der"),
        &ring_rsa_sha256,
    )
    .unwrap()
}

fn assert_failed(check: SignatureCheck, reason: &str) {
    match check {
        SignatureCheck::Failed { reason: r } => assert!(r.contains(reason), "{r}"),
        other => panic!("expected a failure with {reason:?}, got {other:?}"),
    }
}

#[test]
fn verifies_the_rsa_sha1_fixture_signed_with_openssl() {
    match verify_signature(&fixture("edoc_signed_sha1.edxml")) {
        SignatureCheck::Verified { algorithm, signer } => {
            assert_eq!(algorithm, "rsa-sha1");
            assert!(signer.contains("Van thu So Thu Nghiem"), "{signer}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn verifies_the_rsa_sha256_fixture_and_a_fresh_signature() {
    for bytes in [fixture("edoc_signed_sha256.edxml"), signed_sha256()] {
        assert!(matches!(
            verify_signature(&bytes),
            SignatureCheck::Verified { ref algorithm, .. } if algorithm == "rsa-sha256"
        ));
    }
}

#[test]
fn a_signed_message_still_verifies_with_crlf_line_ends() {
    let crlf = String::from_utf8(signed_sha256())
        .unwrap()
        .replace('\n', "\r\n");
    assert!(matches!(
        verify_signature(crlf.as_bytes()),
        SignatureCheck::Verified { .. }
    ));
}

#[test]
fn the_signature_is_kept_when_parsed() {
    let Message::Document(d) = parse(&fixture("edoc_signed_sha1.edxml")).unwrap() else {
        panic!()
    };
    let sig = d.signature.unwrap();
    assert!(sig.find(&|e| e.local == "X509Certificate").is_some());
}

#[test]
fn fails_when_the_content_was_changed_after_signing() {
    let text = String::from_utf8(fixture("edoc_signed_sha1.edxml")).unwrap();
    let changed = text.replace("Trần Văn Thử", "Trần Văn Khác");
    assert_failed(
        verify_signature(changed.as_bytes()),
        "does not match DigestValue of Reference #1",
    );
}

#[test]
fn fails_when_the_signature_value_was_changed() {
    let text = String::from_utf8(signed_sha256()).unwrap();
    let i = text.find("<SignatureValue>").unwrap() + "<SignatureValue>".len();
    let flipped = if &text[i..i + 1] == "A" { "B" } else { "A" };
    let changed = format!("{}{flipped}{}", &text[..i], &text[i + 1..]);
    assert_failed(
        verify_signature(changed.as_bytes()),
        "SignatureValue does not verify",
    );
}

#[test]
fn fails_cleanly_on_a_stub_certificate() {
    let text = String::from_utf8(signed_sha256()).unwrap();
    let start = text.find("<X509Certificate>").unwrap() + "<X509Certificate>".len();
    let end = text.find("</X509Certificate>").unwrap();
    let stub = format!("{}TUlJQ3N0dWI={}", &text[..start], &text[end..]);
    assert_failed(
        verify_signature(stub.as_bytes()),
        "not a readable X.509 certificate",
    );
    // The fixture shaped like real traffic: stub digest, stub certificate.
    assert_failed(
        verify_signature(&fixture("edoc_revoke.edxml")),
        "does not match DigestValue",
    );
}

#[test]
fn reports_an_absent_signature_and_an_unsupported_algorithm() {
    assert_eq!(
        verify_signature(&fixture("status_03.edxml")),
        SignatureCheck::Absent
    );
    let text = String::from_utf8(signed_sha256()).unwrap().replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    );
    assert_failed(
        verify_signature(text.as_bytes()),
        "unsupported SignatureMethod",
    );
}

/// Regenerates the signed fixtures: `cargo test -p lienthong-edxml --test signature --
/// --ignored make_signed_fixtures`. RSA-SHA1 is signed by the `openssl` command (ring
/// only verifies SHA-1), with the key converted to PEM in a temporary directory.
#[test]
#[ignore]
fn make_signed_fixtures() {
    let m = parse(&fixture("edoc_new.edxml")).unwrap();
    let cert = fixture("signer.der");
    std::fs::write(fixture_path("edoc_signed_sha256.edxml"), signed_sha256()).unwrap();
    let dir = std::env::temp_dir().join(format!("lienthong-edxml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let der = dir.join("key.pk8");
    let pem = dir.join("key.pem");
    std::fs::write(&der, RSA_2048_PKCS8).unwrap();
    let ok = std::process::Command::new("openssl")
        .args(["pkcs8", "-nocrypt", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem)
        .status()
        .unwrap();
    assert!(ok.success());
    let openssl_sha1 = |data: &[u8]| -> Result<Vec<u8>, String> {
        let input = dir.join("signed-info");
        std::fs::write(&input, data).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha1", "-sign"])
            .arg(&pem)
            .arg(&input)
            .output()
            .map_err(|e| e.to_string())?;
        out.status
            .success()
            .then_some(out.stdout)
            .ok_or("openssl failed".into())
    };
    let signed = sign(&m, SignatureMethod::RsaSha1, &cert, &openssl_sha1).unwrap();
    std::fs::write(fixture_path("edoc_signed_sha1.edxml"), signed).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A signed message imported to the bus and written back after travelling (hops in its
/// core trace) still verifies: the bus's hops are not written into a signed
/// TraceHeaderList, which the signature covers.
#[test]
fn a_signed_message_still_verifies_after_import_travel_and_export() {
    let input = fixture("edoc_signed_sha256.edxml");
    let Message::Document(d) = parse(&input).unwrap() else {
        panic!("a document");
    };
    let mut core = d.to_core_with(0, None).unwrap();
    core.trace.push(lienthong_core::TraceEntry {
        node: lienthong_core::NodeId::parse("VN").unwrap(),
        at: 1_700_000_000_000,
        signature: None,
    });
    let mut back = lienthong_edxml::EdxmlDocument::from_core_with(&core, None).unwrap();
    for (a, original) in back.attachments.iter_mut().zip(&d.attachments) {
        a.content = original.content.clone();
    }
    let out = lienthong_edxml::write(&Message::Document(back)).unwrap();
    assert!(
        matches!(verify_signature(&out), SignatureCheck::Verified { .. }),
        "{:?}",
        verify_signature(&out)
    );
}
